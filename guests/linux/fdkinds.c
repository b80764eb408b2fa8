/* Descriptor kinds and calls beyond plain files: eventfd, memfd_create
   (written, read back with preadv, patched with pwritev, mapped), fallocate,
   mlock, and ptrace(PTRACE_TRACEME) as an anti-debugging check makes it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void)
{
    int e = eventfd(3, EFD_CLOEXEC);
    uint64_t v = 4;
    write(e, &v, 8);
    read(e, &v, 8);
    printf("eventfd: %llu\n", (unsigned long long)v);

    int m = memfd_create("scratch", MFD_CLOEXEC);
    write(m, "hello memfd", 11);
    char b1[6] = {0}, b2[6] = {0};
    struct iovec iov[2] = {{b1, 5}, {b2, 5}};
    ssize_t n = preadv(m, iov, 2, 1);
    printf("preadv: %zd %s %s\n", n, b1, b2);
    struct iovec w[1] = {{"XY", 2}};
    pwritev(m, w, 1, 0);
    char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, m, 0);
    printf("memfd mapped: %.11s\n", p);
    int fa = fallocate(m, 0, 0, 8192);
    printf("fallocate: %d size %ld\n", fa, (long)lseek(m, 0, SEEK_END));
    printf("mlock: %d\n", mlock(p, 4096));
    printf("ptrace traceme: %ld\n", ptrace(PTRACE_TRACEME, 0, 0, 0));
    return 0;
}
