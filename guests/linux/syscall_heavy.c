/* A system-call-bound workload: small reads, writes, seeks and identity calls. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    int null = open("/dev/null", O_WRONLY);
    int self = open("/proc/self/exe", O_RDONLY);
    char buf[64];
    long total = 0;
    for (int i = 0; i < n; i++) {
        total += write(null, buf, 16);
        lseek(self, (i * 64) % 4096, SEEK_SET);
        total += read(self, buf, sizeof buf);
        total += getppid() > 0;
    }
    printf("%d iterations, %ld bytes moved\n", n, total);
    return 0;
}
