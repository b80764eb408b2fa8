/* System calls with out-of-range arguments: each must fail with the errno
 * Linux gives (never an emulator error). Compared with a native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%-32s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
}

int main(void) {
    gid_t big[1] = {0xFFFFFFFFu};
    show("setgroups gid -1", syscall(SYS_setgroups, 1, big));
    show("setgroups size -1", syscall(SYS_setgroups, -1, big));
    show("setgroups size 1<<20", syscall(SYS_setgroups, 1 << 20, big));
    struct timespec ts[2] = {{0, 2000000000L}, {0, 0}};
    show("utimensat nsec 2e9", syscall(SYS_utimensat, AT_FDCWD, "/tmp", ts, 0));
    int fd = open("/proc/self/exe", O_RDONLY);
    show("mmap unaligned offset", (long)syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, fd, 123));
    show("mmap offset 1<<63", (long)syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE, fd, 1UL << 63));
    show("ftruncate -1", syscall(SYS_ftruncate, fd, -1L));
    char b[8];
    show("readlink size 0", syscall(SYS_readlink, "/proc/self/exe", b, 0));
    show("socket family 9999", syscall(SYS_socket, 9999, SOCK_STREAM, 0));
    show("lseek whence 77", syscall(SYS_lseek, fd, 0, 77));
    show("dup2 to -5", syscall(SYS_dup2, fd, -5));
    show("fcntl cmd 99999", syscall(SYS_fcntl, fd, 99999, 0));
    show("openat bad dirfd", syscall(SYS_openat, 12345, "x", O_RDONLY));
    show("open path 0x1", syscall(SYS_open, (char *)1, O_RDONLY));
    show("kill signal 99", syscall(SYS_kill, getpid(), 99));
    show("rt_sigaction signal 0", syscall(SYS_rt_sigaction, 0, 0, 0, 8));
    show("clock_gettime clock 999", syscall(SYS_clock_gettime, 999, ts));
    show("nanosleep nsec -1", syscall(SYS_nanosleep, &(struct timespec){0, -1}, 0));
    show("getrlimit resource 999", syscall(SYS_getrlimit, 999, b));
    return 0;
}
