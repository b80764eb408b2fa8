/* Descriptor kinds and calls beyond plain files: eventfd, memfd_create
   (written, read back with preadv, patched with pwritev, mapped), fallocate,
   mlock, a descriptor passed to another process with sendmsg/recvmsg
   (SCM_RIGHTS), and ptrace(PTRACE_TRACEME) as an anti-debugging check
   makes it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
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
    fflush(stdout);

    /* a child sends the memfd over a socket pair; the parent reads through it */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        char tag[] = "fd:", more[] = "here";
        struct iovec parts[2] = {{tag, 3}, {more, 4}};
        union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } c;
        memset(&c, 0, sizeof c);
        struct msghdr mh = {0};
        mh.msg_iov = parts;
        mh.msg_iovlen = 2;
        mh.msg_control = c.buf;
        mh.msg_controllen = sizeof c.buf;
        struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
        ch->cmsg_level = SOL_SOCKET;
        ch->cmsg_type = SCM_RIGHTS;
        ch->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(ch), &m, sizeof(int));
        _exit(sendmsg(sv[0], &mh, 0) == 7 ? 0 : 1);
    }
    char got[8] = {0};
    struct iovec in = {got, sizeof got - 1};
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } rc;
    struct msghdr rh = {0};
    rh.msg_iov = &in;
    rh.msg_iovlen = 1;
    rh.msg_control = rc.buf;
    rh.msg_controllen = sizeof rc.buf;
    ssize_t r = recvmsg(sv[1], &rh, 0);
    int status;
    waitpid(pid, &status, 0);
    struct cmsghdr *rch = CMSG_FIRSTHDR(&rh);
    int passed = -1;
    if (rch && rch->cmsg_type == SCM_RIGHTS)
        memcpy(&passed, CMSG_DATA(rch), sizeof(int));
    char head[12] = {0};
    pread(passed, head, 11, 0);
    printf("recvmsg: %zd \"%s\" child %d, passed fd %s, reads \"%s\"\n", r, got, WEXITSTATUS(status),
           passed >= 0 && passed != m ? "new" : "bad", head);
    /* last: once traced, a signal (SIGCHLD...) would stop this process natively */
    printf("ptrace traceme: %ld\n", ptrace(PTRACE_TRACEME, 0, 0, 0));
    return 0;
}
