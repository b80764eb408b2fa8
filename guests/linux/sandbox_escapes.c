/* Ways out of `emu run --sandbox` that a check on path strings misses; one
 * line per attempt, "blocked" or "ESCAPED". argv: 1 the sandbox directory
 * (writable), 2 a directory outside it (must stay empty), 3 a file outside
 * it (must stay untouched), 4 a host datagram socket outside it (must
 * receive nothing), 5 the pid of a host process outside the guest's tree
 * (its priority must stay). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *what, int escaped) {
    printf("%-44s %s\n", what, escaped ? "ESCAPED" : "blocked");
    fflush(stdout);
}

/* the auxiliary vector /proc/self/auxv gives is the one this program got */
static int own_auxv(void) {
    unsigned long v[128];
    int fd = open("/proc/self/auxv", O_RDONLY);
    if (fd < 0)
        return 1;                    /* refused: nothing of the emulator's either */
    ssize_t n = read(fd, v, sizeof v);
    close(fd);
    int entry = 0;
    for (ssize_t i = 0; i + 1 < n / (ssize_t)sizeof(long); i += 2)
        if (v[i] == AT_ENTRY)
            entry = v[i + 1] == getauxval(AT_ENTRY);
    return entry;
}

/* does the file (read whole) contain the text? */
static int file_mentions(const char *path, const char *text) {
    static char buf[1 << 20];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += k;
    close(fd);
    buf[got] = 0;
    return strstr(buf, text) != NULL;
}

static int exists(const char *p) {
    struct stat s;
    return lstat(p, &s) == 0;
}

int main(int argc, char **argv) {
    if (argc < 6)
        return 2;
    const char *box = argv[1], *outdir = argv[2], *outfile = argv[3], *hostsock = argv[4];
    int victim = atoi(argv[5]);
    char p[512], q[512];

    /* 1. a component swapped for a symlink between the check and the open */
    snprintf(p, sizeof p, "%s/d", box);
    mkdir(p, 0755);
    pid_t kid = fork();
    if (kid == 0) {
        char real[512], link[512];
        snprintf(real, sizeof real, "%s/d.real", box);
        snprintf(link, sizeof link, "%s/d", box);
        for (;;) {
            rename(link, real);
            symlink(outdir, link);
            unlink(link);
            rename(real, link);
        }
    }
    snprintf(q, sizeof q, "%s/d/raced", box);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int tries = 0;
    do {
        int fd = open(q, O_WRONLY | O_CREAT, 0644);
        if (fd >= 0)
            close(fd);
        unlink(q);
        tries++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while (t1.tv_sec - t0.tv_sec < 2);
    kill(kid, SIGKILL);
    waitpid(kid, 0, 0);
    snprintf(q, sizeof q, "%s/raced", outdir);
    report("write through a component swapped in a race", exists(q));

    /* 2. futimens / fchmod / fchown / ftruncate / fallocate on a read-only
     * descriptor of a file outside */
    int ro = open(outfile, O_RDONLY);
    struct timespec old[2] = {{0, 0}, {0, 0}};
    report("futimens on a read-only outside descriptor", ro >= 0 && futimens(ro, old) == 0);
    report("utimensat(fd, NULL) on it", ro >= 0 && syscall(280, ro, NULL, old, 0) == 0);
    report("fchmod on it", ro >= 0 && fchmod(ro, 0777) == 0);
    report("fchown on it", ro >= 0 && fchown(ro, getuid(), getgid()) == 0);
    int rw = open(outfile, O_RDONLY);
    report("chmod of the outside file", chmod(outfile, 0600) == 0);
    report("utimensat by path outside", utimensat(AT_FDCWD, outfile, old, 0) == 0);
    close(rw);
    /* reopening the read-only descriptor for writing through /proc/self/fd */
    snprintf(p, sizeof p, "/proc/self/fd/%d", ro);
    int w = open(p, O_WRONLY | O_APPEND);
    report("reopen it for writing via /proc/self/fd", w >= 0 && write(w, "x", 1) == 1);
    if (w >= 0)
        close(w);
    /* stdout is the host's: no fchmod through it either */
    report("fchmod of stdout (a host file)", fchmod(1, 0777) == 0);

    /* 3. a socketpair socket bound to a path outside */
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/sock", outdir);
    bind(sv[0], (struct sockaddr *)&a, sizeof a);
    report("bind a socketpair socket outside", exists(a.sun_path));

    /* 4. a datagram socketpair socket connecting to a host socket */
    int sv2[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv2);
    struct sockaddr_un h = {.sun_family = AF_UNIX};
    snprintf(h.sun_path, sizeof h.sun_path, "%s", hostsock);
    int c = connect(sv2[0], (struct sockaddr *)&h, sizeof h);
    int s1 = c == 0 && send(sv2[0], "ESCAPED", 7, 0) == 7;
    int s2 = sendto(sv2[1], "ESCAPED", 7, 0, (struct sockaddr *)&h, sizeof h) == 7;
    report("connect/send to a host socket outside", s1 || s2);
    /* the abstract namespace reaches host services too */
    struct sockaddr_un ab = {.sun_family = AF_UNIX};
    memcpy(ab.sun_path, "\0emu-test-abstract", 18);
    report("bind in the abstract namespace", bind(sv2[1], (struct sockaddr *)&ab, 2 + 18) == 0);

    /* 5. processes outside the guest's tree */
    errno = 0;
    int before = getpriority(PRIO_PROCESS, victim);
    report("see a host process's priority", errno == 0 && before != -1);
    report("setpriority on a host process", setpriority(PRIO_PROCESS, victim, 19) == 0);
    report("setpriority on all the user's processes", setpriority(PRIO_USER, 0, 19) == 0);
    report("kill a host process", kill(victim, 0) == 0);
    report("prlimit of a host process", prlimit(victim, RLIMIT_NOFILE, 0, &(struct rlimit){0}) == 0);

    /* 6. the emulator's own memory and pointers */
    /* /proc/self/mem is this process's memory (the guest's, through its page
     * tables), never the emulator's: a store through it lands in our buffer */
    static char mark[] = "guest bytes";
    int m = open("/proc/self/mem", O_RDWR);
    int theirs = m >= 0 && (pwrite(m, "GUEST", 5, (off_t)(unsigned long)mark) != 5 || memcmp(mark, "GUEST", 5) != 0);
    report("/proc/self/mem is the emulator's memory", theirs);
    /* /proc/self/auxv and smaps are this program's (emu/linux/procfs.py), not the emulator's */
    report("read /proc/self/auxv (emu's)", !own_auxv());
    report("read /proc/self/smaps (emu's)", file_mentions("/proc/self/smaps", "python"));
    snprintf(p, sizeof p, "/proc/%d/mem", getppid());
    report("open the parent's /proc/PID/mem", open(p, O_RDWR) >= 0);
    /* and inside the sandbox the same calls work */
    snprintf(p, sizeof p, "%s/mine", box);
    int mine = open(p, O_RDWR | O_CREAT, 0644);
    int ok = mine >= 0 && futimens(mine, old) == 0 && fchmod(mine, 0600) == 0 && ftruncate(mine, 10) == 0 &&
             chmod(p, 0644) == 0 && utimensat(AT_FDCWD, p, old, 0) == 0;
    printf("%-44s %s\n", "change a file inside", ok ? "ok" : "FAILED");
    int in[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, in);
    struct sockaddr_un ia = {.sun_family = AF_UNIX};
    snprintf(ia.sun_path, sizeof ia.sun_path, "%s/in.sock", box);
    char got[8] = {0};
    ok = bind(in[0], (struct sockaddr *)&ia, sizeof ia) == 0 &&
         sendto(in[1], "hi", 2, 0, (struct sockaddr *)&ia, sizeof ia) == 2 && recv(in[0], got, 8, 0) == 2;
    printf("%-44s %s\n", "a socket inside", ok && !strcmp(got, "hi") ? "ok" : "FAILED");
    printf("race tries %s\n", tries > 10 ? "many" : "few");
    return 0;
}
