/* stdio, malloc and qsort: the C library's bread and butter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    unsigned seed = 12345;
    int n = 2000, i;
    int *v = malloc(n * sizeof *v);
    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (int)(seed >> 8) % 100000 - 50000;
    }
    qsort(v, n, sizeof *v, cmp_int);
    long sum = 0;
    for (i = 0; i < n; i++)
        sum += (long)v[i] * (i + 1);
    printf("sorted %d ints: min %d max %d weighted sum %ld\n", n, v[0], v[n - 1], sum);

    char *words[] = {"pear", "apple", "fig", "banana", "cherry", "kiwi", "date", "elderberry"};
    qsort(words, 8, sizeof *words, cmp_str);
    for (i = 0; i < 8; i++)
        printf("%s%c", words[i], i == 7 ? '\n' : ' ');

    /* many allocations of many sizes, freed out of order, then realloc growth */
    void *blocks[512];
    for (i = 0; i < 512; i++) {
        blocks[i] = malloc((size_t)(i * 37 % 4000) + 1);
        memset(blocks[i], i & 0xff, (size_t)(i * 37 % 4000) + 1);
    }
    long check = 0;
    for (i = 0; i < 512; i += 2)
        free(blocks[i]);
    for (i = 1; i < 512; i += 2)
        check += ((unsigned char *)blocks[i])[0];
    for (i = 1; i < 512; i += 2)
        free(blocks[i]);
    char *s = NULL;
    size_t len = 0;
    for (i = 0; i < 300; i++) {
        char piece[32];
        int k = snprintf(piece, sizeof piece, "%d,", i * i);
        s = realloc(s, len + k + 1);
        memcpy(s + len, piece, (size_t)k + 1);
        len += (size_t)k;
    }
    printf("check %ld, string length %zu, tail %s\n", check, len, s + len - 12);
    free(s);
    void *big = malloc(10 << 20);        /* mmap'd by malloc */
    memset(big, 7, 10 << 20);
    printf("big block byte %d\n", ((char *)big)[(10 << 20) - 1]);
    free(big);

    char buf[64];
    printf("strtol %ld %ld, strlen %zu, strchr %s\n", strtol("-12345", NULL, 10), strtol("ff", NULL, 16),
           strlen("hello, world"), strchr("find:me", ':'));
    snprintf(buf, sizeof buf, "%08x|%-6s|%+d|%5.2s|%%", 0xbeef, "ab", 7, "xyz");
    puts(buf);
    printf("argc %d\n", argc);
    for (i = 1; i < argc; i++)
        printf("argv[%d] %s\n", i, argv[i]);
    fputs("to stderr\n", stderr);
    return 3;
}
