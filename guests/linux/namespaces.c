/* Namespaces as an unprivileged Linux process meets them (issue 20):
 * unshare of what a single-threaded process shares with no one succeeds,
 * an unknown flag is EINVAL, a namespace is EPERM without CAP_SYS_ADMIN;
 * pivot_root is EPERM before its paths are looked at; setns of a closed
 * descriptor is EBADF, of a file that is no namespace EINVAL. Run as root,
 * it first becomes nobody (65534), so natively and under emu it is the
 * unprivileged process in both runs. With the argument "userns" it also
 * tries CLONE_NEWUSER (Linux may allow that to any user; emu refuses it). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%-40s %s\n", what, r < 0 ? strerror(errno) : "ok");
}

int main(int argc, char **argv) {
    if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0)) {
        perror("dropping root");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "userns") == 0) {
        show("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
        return 0;
    }
    show("unshare(0)", unshare(0));
    show("unshare(CLONE_FILES)", unshare(CLONE_FILES));
    show("unshare(CLONE_FS)", unshare(CLONE_FS));
    show("unshare(CLONE_SYSVSEM)", unshare(CLONE_SYSVSEM));
    show("unshare(CLONE_VM|CLONE_SIGHAND|CLONE_THREAD)", unshare(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD));
    show("unshare(0x1, an unknown flag)", unshare(0x1));
    show("unshare(CLONE_NEWNS|0x1)", unshare(CLONE_NEWNS | 0x1));
    show("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
    show("unshare(CLONE_NEWUTS)", unshare(CLONE_NEWUTS));
    show("unshare(CLONE_NEWIPC)", unshare(CLONE_NEWIPC));
    show("unshare(CLONE_NEWNET)", unshare(CLONE_NEWNET));
    show("unshare(CLONE_NEWPID)", unshare(CLONE_NEWPID));
    show("unshare(CLONE_NEWCGROUP)", unshare(CLONE_NEWCGROUP));
    show("pivot_root(\".\", \".\")", syscall(SYS_pivot_root, ".", "."));
    show("pivot_root(\"/nonexistent\", \"/x\")", syscall(SYS_pivot_root, "/nonexistent", "/x"));
    show("setns(-1, 0)", setns(-1, 0));
    int fd = open("/", O_RDONLY | O_DIRECTORY);
    show("setns(a directory, 0)", setns(fd, 0));
    show("setns(a directory, CLONE_NEWNS)", setns(fd, CLONE_NEWNS));
    close(fd);
    return 0;
}
