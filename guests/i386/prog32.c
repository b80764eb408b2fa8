/* An i386 program for emu's 32-bit (compatibility mode) tests: built with
 * gcc -m32 -static at test time, run natively and under `emu run`; the
 * outputs must be the same. It exercises what 32-bit code does differently:
 * 32-bit stack frames and calls, 64-bit arithmetic in register pairs,
 * x87/SSE floating point, TLS through %gs, string instructions with ESI/EDI,
 * the heap (brk) and large allocations (mmap2), and the i386 system calls. */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>

static __thread int tls_counter = 41;
static jmp_buf jb;

static uint64_t fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void jump(int v) { longjmp(jb, v); }

/* instruction forms that exist, or differ, in 32-bit code */
static void forms(void)
{
    uint32_t a = 5, b = 0, c = 0, d = 0, r[8];
    uint64_t cmp = 0x1111222233334444ULL, mem = cmp, nv = 0x5555666677778888ULL;
    uint32_t lo, hi;
    unsigned char src[32], dst[32];
    /* 40-4F are INC/DEC here: inc eax twice, dec eax once */
    __asm__ volatile(".byte 0x40, 0x40, 0x48" : "+a"(a));
    /* PUSHA / POPA round trip with a changed EBX in between */
    __asm__ volatile("pusha\n\tmovl $0x1234, %%ebx\n\tpopa" : "+b"(b) : : "memory");
    /* PUSHA's layout: EDI at the lowest address, the ESP before at slot 3 */
    __asm__ volatile("movl $11, %%eax\n\tmovl $22, %%ecx\n\tpusha\n\t"
                     "movl 0(%%esp), %%edx\n\tmovl %%edx, 0(%1)\n\tmovl 28(%%esp), %%edx\n\tmovl %%edx, 4(%1)\n\t"
                     "movl 24(%%esp), %%edx\n\tmovl %%edx, 8(%1)\n\tmovl 12(%%esp), %%edx\n\tsubl %%esp, %%edx\n\t"
                     "movl %%edx, 12(%1)\n\tpopa"
                     : : "D"(0), "S"(r) : "eax", "ecx", "edx", "memory");
    /* CMPXCHG8B: a 64-bit compare-exchange from 32-bit code */
    lo = (uint32_t)cmp; hi = (uint32_t)(cmp >> 32);
    __asm__ volatile("lock cmpxchg8b %0" : "+m"(mem), "+a"(lo), "+d"(hi)
                     : "b"((uint32_t)nv), "c"((uint32_t)(nv >> 32)) : "cc");
    /* MUL into EDX:EAX, SHLD, BSWAP, LOOP on ECX, REP MOVSB / STOSL with ESI/EDI */
    __asm__ volatile("mull %3" : "=a"(c), "=d"(d) : "a"(0x87654321u), "r"(0x12345u) : "cc");
    printf("forms: inc/dec=%u popa-kept=%u pusha edi=%u eax=%u ecx=%u esp-slot=%u\n", a, b, r[0], r[1], r[2], r[3]);
    printf("forms: cmpxchg8b=%016llx mul=%08x:%08x\n", (unsigned long long)mem, d, c);
    __asm__ volatile("shldl $8, %2, %0\n\tbswap %1" : "+r"(c), "+r"(d) : "r"(0xABCDEF01u) : "cc");
    a = 0;
    __asm__ volatile("movl $10, %%ecx\n1:\n\taddl $3, %0\n\tloop 1b" : "+r"(a) : : "ecx", "cc");
    for (int i = 0; i < 32; i++) src[i] = (unsigned char)(i * 13);
    __asm__ volatile("rep movsb" : : "S"(src), "D"(dst), "c"(32) : "memory");
    __asm__ volatile("rep stosl" : : "D"(dst + 16), "a"(0x41424344), "c"(4) : "memory");
    printf("forms: shld=%08x bswap=%08x loop=%u movs=%u,%u stos=%c%c\n", c, d, a, dst[5], dst[15], dst[16], dst[19]);
}

int main(int argc, char **argv)
{
    uint64_t x = 0x123456789abcdefULL;
    int64_t s = -1234567890123LL;
    double d = 1.0;
    long double ld = 1.0L;
    int i, arr[64];
    char *big, buf[256];
    for (i = 0; i < 20; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        d = d * 1.25 + i / 3.0;
        ld = ld * 1.125L + i;
    }
    printf("argc=%d sizeof(long)=%zu sizeof(void*)=%zu\n", argc, sizeof(long), sizeof(void *));
    printf("x=%016llx x/7=%llu x%%1000=%llu s/3=%lld s>>5=%lld\n", (unsigned long long)x,
           (unsigned long long)(x / 7), (unsigned long long)(x % 1000), (long long)(s / 3), (long long)(s >> 5));
    printf("d=%.6f ld=%.6Lf ratio=%.6f\n", d, ld, (double)(d / (ld + 1)));
    printf("fib(25)=%llu\n", (unsigned long long)fib(25));
    for (i = 0; i < 64; i++)
        arr[i] = (i * 7919) % 101;
    qsort(arr, 64, sizeof(int), cmp);
    printf("sorted: %d %d %d ... %d\n", arr[0], arr[1], arr[2], arr[63]);
    tls_counter++;
    printf("tls=%d\n", tls_counter);
    big = malloc(1 << 20);                   /* above the mmap threshold */
    memset(big, 'z', 1 << 20);
    memcpy(buf, big + 1000, 100);
    buf[100] = 0;
    printf("big[0]=%c len=%zu\n", big[0], strlen(buf));
    free(big);
    if ((i = setjmp(jb)) == 0)
        jump(7);
    printf("longjmp returned %d\n", i);
    snprintf(buf, sizeof buf, "%s|%5.2f|%-6s|%x", "fmt", 3.14159, "left", 0xbeef);
    puts(buf);
    printf("pid>0: %d\n", getpid() > 0);
    forms();
    return 3;
}
