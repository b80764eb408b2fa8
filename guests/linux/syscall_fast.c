/* The system calls emu answers in its core (read, write, pread64, pwrite64,
 * readv, writev, lseek, fstat): results, errno, file offsets shared across
 * dup and fork, descriptors reused after close and dup2, pipes, SIGPIPE,
 * buffers across pages, EFAULT, and code overwritten by read().
 *
 *   syscall_fast            the checks (same output natively and under emu)
 *   syscall_fast corners    corners where emu's answers are its own (compared
 *                           between emu's two paths only)
 *   syscall_fast bench CALL N   N calls of one kind, for perf/bench_syscalls.py
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

static char path[64];
static void *volatile bad = (void *)16;     /* never mapped */

static const char *errname(int e)
{
    switch (e) {
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case ESPIPE: return "ESPIPE";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    case EISDIR: return "EISDIR";
    case ENOENT: return "ENOENT";
    default: return "other";
    }
}

static void say(const char *what, long r)
{
    if (r < 0)
        printf("%s = -1 %s\n", what, errname(errno));
    else
        printf("%s = %ld\n", what, r);
    fflush(stdout);
}

static int temp_file(const char *content)
{
    snprintf(path, sizeof path, "sf_tmp_%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (content)
        write(fd, content, strlen(content));
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static long thread_tid;
static void *thread_main(void *arg) { (void)arg; thread_tid = syscall(SYS_gettid); return NULL; }

static volatile int pipes_seen;
static void on_pipe(int sig) { (void)sig; pipes_seen++; }

static int checks(void)
{
    char buf[256];
    int fd = temp_file("0123456789abcdefghijklmnopqrstuvwxyz");

    /* read, write, lseek, offsets */
    say("read 10", read(fd, buf, 10));
    printf("  got %.10s\n", buf);
    say("lseek cur", lseek(fd, 0, SEEK_CUR));
    say("read 0", read(fd, buf, 0));
    say("lseek set 30", lseek(fd, 30, SEEK_SET));
    say("read to eof", read(fd, buf, sizeof buf));
    say("read at eof", read(fd, buf, sizeof buf));
    say("lseek end -4", lseek(fd, -4, SEEK_END));
    say("lseek bad whence", lseek(fd, 0, 99));
    say("lseek negative", lseek(fd, -100, SEEK_SET));
    say("write 3", write(fd, "XYZ", 3));
    say("write 0", write(fd, "", 0));
    say("pread 5 @2", pread(fd, buf, 5, 2));
    printf("  got %.5s\n", buf);
    say("pwrite 2 @0", pwrite(fd, "AB", 2, 0));
    say("lseek cur after p*", lseek(fd, 0, SEEK_CUR));
    say("pread past end", pread(fd, buf, 10, 1000));
    say("pread negative", pread(fd, buf, 10, -1));

    /* fstat */
    struct stat st;
    say("fstat", fstat(fd, &st));
    printf("  size %lld regular %d nlink %lu mode %o\n", (long long)st.st_size, S_ISREG(st.st_mode),
           (unsigned long)st.st_nlink, st.st_mode & 07777);
    say("fstat bad fd", fstat(1000, &st));

    /* readv, writev (zero lengths, several buffers) */
    char a[4], b[6];
    struct iovec iv[3] = {{a, 4}, {NULL, 0}, {b, 6}};
    lseek(fd, 0, SEEK_SET);
    say("readv", readv(fd, iv, 3));
    printf("  got %.4s|%.6s\n", a, b);
    struct iovec ov[3] = {{"one ", 4}, {"", 0}, {"two\n", 4}};
    say("writev stdout", writev(1, ov, 3));
    volatile int minus = -1;
    say("writev bad count", writev(1, ov, minus));

    /* dup shares the offset; fork'd children share it too */
    int d = dup(fd);
    lseek(fd, 5, SEEK_SET);
    say("dup sees offset", lseek(d, 0, SEEK_CUR));
    long me = syscall(SYS_getpid);
    say("gettid is getpid in the main thread", syscall(SYS_gettid) == me);
    pid_t pid = fork();
    if (pid == 0) {
        read(d, buf, 7);
        long child = syscall(SYS_getpid);
        _exit(child != me && child == syscall(SYS_gettid) ? 7 : 1);
    }
    int status = 0;
    say("child waited", waitpid(pid, &status, 0) == pid);
    say("child's getpid and gettid", WEXITSTATUS(status));
    say("offset after child read", lseek(fd, 0, SEEK_CUR));
    say("getpid again", syscall(SYS_getpid) == me);

    /* a closed descriptor, then its number reused for another file */
    close(d);
    say("read closed", read(d, buf, 1));
    say("write closed", write(d, "x", 1));
    int p2[2];
    pipe(p2);
    say("pipe got the number", p2[0] == d || p2[1] == d);
    dup2(fd, p2[1]);                  /* dup2 over a descriptor in use */
    lseek(fd, 0, SEEK_SET);
    say("read via dup2'd", read(p2[1], buf, 4));
    printf("  got %.4s\n", buf);
    close(p2[0]);
    close(p2[1]);

    /* pipes: data, empty non-blocking, closed reader (SIGPIPE) */
    int p[2];
    pipe(p);
    say("pipe write", write(p[1], "hello", 5));
    say("pipe read", read(p[0], buf, sizeof buf));
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    say("pipe read empty nonblock", read(p[0], buf, sizeof buf));
    say("fstat pipe", fstat(p[0], &st));
    printf("  fifo %d\n", S_ISFIFO(st.st_mode));
    say("lseek pipe", lseek(p[0], 0, SEEK_SET));
    close(p[0]);
    signal(SIGPIPE, on_pipe);
    say("write to closed pipe", write(p[1], "x", 1));
    printf("  SIGPIPE handled %d\n", pipes_seen);
    signal(SIGPIPE, SIG_IGN);
    say("again, ignored", write(p[1], "x", 1));
    close(p[1]);

    /* buffers across pages, into and out of a fresh mapping */
    char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    lseek(fd, 0, SEEK_SET);
    say("read across pages", read(fd, m + 4096 - 7, 20));
    printf("  got %.20s\n", m + 4096 - 7);
    say("write across pages", write(1, m + 4096 - 7, 20));
    printf("\n");
    mprotect(m + 4096, 4096, PROT_NONE);
    say("read into PROT_NONE", read(fd, m + 4096, 4));
    say("write from PROT_NONE", write(fd, m + 4096, 4));
    say("write from unmapped", write(fd, bad, 4));
    say("read into unmapped", read(fd, bad, 4));
    mprotect(m, 4096, PROT_READ);          /* (the system call itself: a libc may copy through its own buffer) */
    say("fstat to read-only", syscall(SYS_fstat, fd, m));

    /* a large read: many pages */
    size_t big = 3 << 20;
    char *src = malloc(big), *dst = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < big; i++)
        src[i] = (char)(i * 131 + (i >> 12));
    ftruncate(fd, 0);
    say("pwrite 3 MiB", pwrite(fd, src, big, 0));
    say("pread 3 MiB", pread(fd, dst, big, 0));
    say("same bytes", memcmp(src, dst, big) == 0);

    /* code overwritten by read(): the new instructions run */
    unsigned char *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static const unsigned char one[] = {0xb8, 1, 0, 0, 0, 0xc3}, two[] = {0xb8, 2, 0, 0, 0, 0xc3};
    memcpy(code, one, sizeof one);
    int (*fn)(void) = (int (*)(void))code;
    int first = 0;
    for (int i = 0; i < 200; i++)          /* hot enough to be compiled */
        first += fn();
    ftruncate(fd, 0);
    pwrite(fd, two, sizeof two, 0);
    say("read over code", pread(fd, code, sizeof two, 0));
    printf("  before %d after %d\n", first / 200, fn());

    /* a thread (last: under emu a SIGPIPE raised after a thread has run
       is not delivered yet) */
    pthread_t th;
    pthread_create(&th, NULL, thread_main, NULL);
    pthread_join(th, NULL);
    say("a thread's gettid is its own", thread_tid != me && thread_tid > 0);
    say("main gettid after the thread", syscall(SYS_gettid) == me);

    close(fd);
    unlink(path);
    return 0;
}

/* emu's own answers (its Python path and its core must agree) */
static int corners(void)
{
    char buf[64];
    int fd = temp_file("0123456789");
    char *m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(m + 4096, 4096, PROT_NONE);
    say("write crossing into PROT_NONE", write(fd, m + 4096 - 3, 6));
    say("offset", lseek(fd, 0, SEEK_CUR));
    say("read crossing into PROT_NONE", read(fd, m + 4096 - 3, 6));
    say("offset", lseek(fd, 0, SEEK_CUR));
    lseek(fd, 0, SEEK_SET);
    say("read into unmapped", read(fd, bad, 4));
    say("offset", lseek(fd, 0, SEEK_CUR));
    int null = open("/dev/null", O_WRONLY);
    say("write unmapped to /dev/null", write(null, bad, 4));
    struct iovec iv[2] = {{buf, 4}, {bad, 4}};
    lseek(fd, 0, SEEK_SET);
    say("readv half unmapped", readv(fd, iv, 2));
    say("offset", lseek(fd, 0, SEEK_CUR));
    say("writev half unmapped", writev(fd, iv, 2));
    say("fstat unmapped", syscall(SYS_fstat, fd, bad));
    close(fd);
    unlink(path);
    return 0;
}

static int bench(const char *call, long n)
{
    char buf[64];
    int null = open("/dev/null", O_WRONLY);
    int fd = temp_file("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz");
    struct stat st;
    long total = 0;
    /* the call is chosen once: the loop is the call and little else */
    int kind = !strcmp(call, "write") ? 0 : !strcmp(call, "read") ? 1 : !strcmp(call, "lseek") ? 2
             : !strcmp(call, "fstat") ? 3 : !strcmp(call, "getpid") ? 4 : 5;
    switch (kind) {
    case 0: for (long i = 0; i < n; i++) total += write(null, buf, 16); break;
    case 1: for (long i = 0; i < n; i++) total += pread(fd, buf, 64, 0); break;
    case 2: for (long i = 0; i < n; i++) total += lseek(fd, i & 63, SEEK_SET); break;
    case 3: for (long i = 0; i < n; i++) total += fstat(fd, &st); break;
    case 4: for (long i = 0; i < n; i++) total += syscall(SYS_getpid) > 0; break;
    default: for (long i = 0; i < n; i++) total += getppid() > 0;   /* stays in Python: the comparison */
    }
    close(fd);
    unlink(path);
    printf("%s x %ld: %ld\n", call, n, total);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 3 && !strcmp(argv[1], "bench"))
        return bench(argv[2], atol(argv[3]));
    if (argc > 1 && !strcmp(argv[1], "corners"))
        return corners();
    return checks();
}
