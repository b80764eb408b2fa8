/* File I/O in a temporary directory: create, write, read, stat, list, rename, remove. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

int main(void)
{
    char dir[] = "/tmp/emu-fileio-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[256];
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/file%d.txt", dir, i);
        FILE *f = fopen(path, "w");
        for (int j = 0; j <= i * 100; j++)
            fprintf(f, "line %d of file %d\n", j, i);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/file3.txt", dir);
    struct stat sb;
    stat(path, &sb);
    printf("file3 size %lld regular %d\n", (long long)sb.st_size, S_ISREG(sb.st_mode));
    int fd = open(path, O_RDONLY);
    char buf[32];
    lseek(fd, 100, SEEK_SET);
    ssize_t n = read(fd, buf, 20);
    buf[n] = 0;
    printf("at 100: %s|\n", buf);
    n = pread(fd, buf, 10, 0);
    buf[n] = 0;
    printf("pread: %s|\n", buf);
    close(fd);

    char newpath[256];
    snprintf(newpath, sizeof newpath, "%s/renamed.txt", dir);
    rename(path, newpath);
    mkdir(strcat(strcpy(path, dir), "/sub"), 0755);

    DIR *d = opendir(dir);
    char *names[16];
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) && k < 16)
        if (e->d_name[0] != '.')
            names[k++] = strdup(e->d_name);
    closedir(d);
    qsort(names, k, sizeof *names, cmp);
    for (int i = 0; i < k; i++)
        printf("entry %s\n", names[i]);

    FILE *f = fopen(newpath, "a+");
    fputs("appended\n", f);
    fseek(f, -9, SEEK_END);
    fgets(buf, sizeof buf, f);
    fclose(f);
    printf("last line: %s", buf);

    for (int i = 0; i < k; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (strcmp(names[i], "sub") == 0)
            rmdir(path);
        else
            unlink(path);
    }
    printf("rmdir %d, access after %d\n", rmdir(dir), access(dir, F_OK));
    return 0;
}
