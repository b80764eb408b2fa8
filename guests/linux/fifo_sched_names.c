/* Special files, scheduling attributes and task names as Linux gives them:
 * a FIFO made with mkfifo blocks its opener until the other end is there
 * (between processes), stat says S_IFIFO, mknod makes what it is asked or
 * fails with Linux's errno; CPU affinity and the scheduling policy agree
 * with the CPUs /proc/cpuinfo lists and pass to a child; the task name is
 * the program's, truncated to 15 bytes, changed by PR_SET_NAME and seen in
 * /proc/PID/comm and stat by another process. Run in an empty directory:
 * the output is the same natively and under emu. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* the system calls themselves: glibc's and musl's POSIX wrappers for these
 * do not call the kernel (the kernel's policies are per thread) */
#define setscheduler(pid, pol, sp) syscall(SYS_sched_setscheduler, pid, pol, sp)
#define getscheduler(pid) syscall(SYS_sched_getscheduler, pid)
#define getparam(pid, sp) syscall(SYS_sched_getparam, pid, sp)

static const char *err(long r) { return r < 0 ? strerror(errno) : "ok"; }

static const char *kind(mode_t m) {
    return S_ISFIFO(m) ? "fifo" : S_ISCHR(m) ? "char device" : S_ISBLK(m) ? "block device" : S_ISSOCK(m) ? "socket"
         : S_ISREG(m) ? "regular" : S_ISDIR(m) ? "directory" : "other";
}

static void fifos(void) {
    printf("mkfifo: %s\n", err(mkfifo("f", 0600)));
    struct stat sb;
    stat("f", &sb);
    printf("stat: %s, mode %o\n", kind(sb.st_mode), sb.st_mode & 0777);
    printf("mkfifo again: %s\n", err(mkfifo("f", 0600)));
    /* without a reader, a non-blocking writer is refused; a non-blocking reader is not */
    printf("open O_WRONLY|O_NONBLOCK, no reader: %s\n", err(open("f", O_WRONLY | O_NONBLOCK)));
    int r = open("f", O_RDONLY | O_NONBLOCK);
    printf("open O_RDONLY|O_NONBLOCK: %s\n", err(r));
    char buf[64];
    printf("read, no writer yet: %zd\n", read(r, buf, sizeof buf));
    close(r);
    /* a blocking open waits for the other process */
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        int w = open("f", O_WRONLY);
        dprintf(w, "through the fifo\n");
        close(w);
        _exit(0);
    }
    int rd = open("f", O_RDONLY);                  /* blocks until the child opens */
    ssize_t n, total = 0;
    while ((n = read(rd, buf + total, sizeof buf - 1 - total)) > 0)
        total += n;
    buf[total] = 0;
    printf("blocking open and read: %s", buf);
    close(rd);
    int st;
    waitpid(c, &st, 0);
    printf("writer exited %d\n", WEXITSTATUS(st));
    unlink("f");
}

static void nodes(void) {
    struct stat sb;
    printf("mknod S_IFREG: %s", err(mknod("r", S_IFREG | 0640, 0)));
    stat("r", &sb);
    printf(" (%s, size %lld)\n", kind(sb.st_mode), (long long)sb.st_size);
    printf("mknod mode 0: %s", err(mknod("z", 0640, 0)));
    stat("z", &sb);
    printf(" (%s)\n", kind(sb.st_mode));
    printf("mknod S_IFIFO: %s", err(mknod("p", S_IFIFO | 0600, 0)));
    stat("p", &sb);
    printf(" (%s)\n", kind(sb.st_mode));
    printf("mknod S_IFSOCK: %s", err(mknod("s", S_IFSOCK | 0600, 0)));
    lstat("s", &sb);
    printf(" (%s)\n", kind(sb.st_mode));
    printf("mknod S_IFDIR: %s\n", err(mknod("d", S_IFDIR | 0700, 0)));
    printf("mknod S_IFLNK: %s\n", err(mknod("l", S_IFLNK | 0700, 0)));
    printf("mknod existing: %s\n", err(mknod("r", S_IFIFO | 0600, 0)));
    printf("mknod existing as device: %s\n", err(mknod("r", S_IFCHR | 0600, makedev(1, 3))));
    int r = mknod("c", S_IFCHR | 0600, makedev(1, 3));
    int root = geteuid() == 0;
    if (r == 0) {
        stat("c", &sb);
        printf("mknod S_IFCHR 1,3: ok (%s %u,%u)\n", kind(sb.st_mode), major(sb.st_rdev), minor(sb.st_rdev));
    } else {
        printf("mknod S_IFCHR 1,3: %s (%s)\n", strerror(errno), root ? "root" : "not root");
    }
    unlink("r"), unlink("z"), unlink("p"), unlink("s"), unlink("c");
}

static int cpuinfo_cpus(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "processor", 9) == 0)
            n++;
    if (f)
        fclose(f);
    return n;
}

static void sched(void) {
    cpu_set_t set;
    int ncpu = cpuinfo_cpus();
    CPU_ZERO(&set);
    printf("getaffinity: %s", err(sched_getaffinity(0, sizeof set, &set)));
    printf(", %s /proc/cpuinfo's CPUs\n", CPU_COUNT(&set) == ncpu ? "as many as" : "not");
    CPU_ZERO(&set);
    printf("getaffinity(pid 1): %s", err(sched_getaffinity(1, sizeof set, &set)));
    printf(", %s\n", CPU_COUNT(&set) == ncpu ? "all of them" : "not all");
    printf("getaffinity, 4-byte buffer: %s\n", err(syscall(204, 0, 4, &set)));
    printf("getaffinity, no such pid: %s\n", err(sched_getaffinity(0x3ffffff0, sizeof set, &set)));
    CPU_ZERO(&set);
    printf("setaffinity, empty mask: %s\n", err(sched_setaffinity(0, sizeof set, &set)));
    CPU_SET(ncpu + 5, &set);
    printf("setaffinity, only a CPU that does not exist: %s\n", err(sched_setaffinity(0, sizeof set, &set)));
    CPU_SET(0, &set);
    printf("setaffinity, CPU 0 and one that does not exist: %s", err(sched_setaffinity(0, sizeof set, &set)));
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    printf(", now %d CPU(s), CPU 0 %s\n", CPU_COUNT(&set), CPU_ISSET(0, &set) ? "in" : "out");
    printf("policy %d, FIFO priorities %d..%d, OTHER %d..%d, bad policy max %d\n", (int)getscheduler(0),
           sched_get_priority_min(SCHED_FIFO), sched_get_priority_max(SCHED_FIFO),
           sched_get_priority_min(SCHED_OTHER), sched_get_priority_max(SCHED_OTHER), sched_get_priority_max(42));
    struct sched_param sp = {.sched_priority = 0};
    printf("setscheduler FIFO 0: %s\n", err(setscheduler(0, SCHED_FIFO, &sp)));
    sp.sched_priority = 5;
    printf("setscheduler OTHER 5: %s\n", err(setscheduler(0, SCHED_OTHER, &sp)));
    printf("setscheduler 42: %s\n", err(setscheduler(0, 42, &sp)));
    sp.sched_priority = 10;
    int r = setscheduler(0, SCHED_RR, &sp);
    printf("setscheduler RR 10: %s\n", err(r));
    if (r == 0) {
        struct sched_param got;
        getparam(0, &got);
        printf("  policy %d priority %d\n", (int)getscheduler(0), got.sched_priority);
        pid_t c = fork();
        if (c == 0) {
            getparam(0, &got);
            printf("  child inherits policy %d priority %d\n", (int)getscheduler(0), got.sched_priority);
            fflush(stdout);
            _exit(0);
        }
        waitpid(c, NULL, 0);
        sp.sched_priority = 0;
        printf("  back to OTHER: %s, policy %d\n", err(setscheduler(0, SCHED_OTHER, &sp)), (int)getscheduler(0));
    }
    errno = 0;
    int before = getpriority(PRIO_PROCESS, 0);
    int want = before + 3 > 19 ? 19 - before : 3;
    printf("nice(3) raises the nice value as asked (up to 19): %s\n", nice(3) - before == want ? "yes" : "no");
    printf("getpriority agrees: %s\n", getpriority(PRIO_PROCESS, 0) - before == want ? "yes" : "no");
    printf("getpriority(PRIO_PROCESS, no such pid): %s\n", err(getpriority(PRIO_PROCESS, 0x3ffffff0)));
    printf("setpriority(bad which): %s\n", err(setpriority(7, 0, 0)));
}

static void names(const char *argv0) {
    char name[32] = {0}, buf[256];
    prctl(PR_GET_NAME, name);
    const char *base = strrchr(argv0, '/') ? strrchr(argv0, '/') + 1 : argv0;
    printf("PR_GET_NAME is the program's name cut to 15 bytes: %s\n", strncmp(name, base, 15) == 0 && strlen(name) ==
           (strlen(base) < 15 ? strlen(base) : 15) ? "yes" : "no");
    FILE *f = fopen("/proc/self/comm", "r");
    fgets(buf, sizeof buf, f);
    fclose(f);
    printf("/proc/self/comm the same: %s\n", strncmp(buf, name, strlen(name)) == 0 ? "yes" : "no");
    prctl(PR_SET_NAME, "a-rather-long-task-name");
    prctl(PR_GET_NAME, name);
    printf("after PR_SET_NAME: %s\n", name);
    f = fopen("/proc/self/stat", "r");
    fgets(buf, sizeof buf, f);
    fclose(f);
    printf("/proc/self/stat name field: %.*s\n", (int)(strrchr(buf, ')') - strchr(buf, '(') + 1), strchr(buf, '('));
    int p[2], q[2];
    pipe(p), pipe(q);
    pid_t c = fork();
    if (c == 0) {
        prctl(PR_SET_NAME, "kid");
        write(p[1], "x", 1);
        read(q[0], buf, 1);                         /* stay until the parent has looked */
        _exit(0);
    }
    read(p[0], buf, 1);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", c);
    f = fopen(path, "r");
    fgets(buf, sizeof buf, f);
    fclose(f);
    printf("the child's /proc/PID/comm: %s", buf);
    snprintf(path, sizeof path, "/proc/%d/stat", c);
    f = fopen(path, "r");
    fgets(buf, sizeof buf, f);
    fclose(f);
    printf("the child's /proc/PID/stat: pid %s, name %.*s\n", atoi(buf) == c ? "right" : "wrong",
           (int)(strrchr(buf, ')') - strchr(buf, '(') + 1), strchr(buf, '('));
    write(q[1], "x", 1);
    waitpid(c, NULL, 0);
}

int main(int argc, char **argv) {
    (void)argc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    fifos();
    nodes();
    sched();
    names(argv[0]);
    return 0;
}
