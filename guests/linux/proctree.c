/* A process tree with Linux semantics: a pipeline of children with wait,
 * kill between processes, SIGCHLD with si_code/si_status on exit, kill,
 * stop and continue, waitpid with WUNTRACED and WCONTINUED, SIGKILL of a
 * child that computes, /dev/fd reopening the process's own file, and
 * sysinfo's units. The output is the same natively and under emu. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

static void pipeline(void) {
    int p[2];
    if (pipe(p))
        exit(1);
    pid_t a = fork();
    if (a == 0) {                       /* writer */
        close(p[0]);
        for (int i = 0; i < 3; i++)
            dprintf(p[1], "line %d\n", i);
        _exit(0);
    }
    pid_t b = fork();
    if (b == 0) {                       /* reader: counts bytes, exits with the count */
        close(p[1]);
        char buf[256];
        int n = 0, r;
        while ((r = read(p[0], buf, sizeof buf)) > 0)
            n += r;
        _exit(n);
    }
    close(p[0]);
    close(p[1]);
    int st;                             /* each child by its pid: which ends first is up to the scheduler */
    if (waitpid(a, &st, 0) == a)
        printf("pipeline: writer exited %d\n", WEXITSTATUS(st));
    if (waitpid(b, &st, 0) == b)
        printf("pipeline: reader counted %d bytes\n", WEXITSTATUS(st));
}

static volatile sig_atomic_t chld_code, chld_status, chld_pid_ok, chld_count;
static pid_t expect_pid;
static void on_chld(int sig, siginfo_t *si, void *ctx) {
    chld_code = si->si_code;
    chld_status = si->si_status;
    chld_pid_ok = si->si_pid == expect_pid;
    chld_count++;
    (void)sig, (void)ctx;
}

static void wait_chld(sigset_t *old) {
    while (!chld_count)
        sigsuspend(old);
    printf("  SIGCHLD si_code %d si_status %d si_pid %s\n", (int)chld_code, (int)chld_status,
           chld_pid_ok ? "the child" : "OTHER");
    chld_count = 0;
}

static void on_usr1(int sig) { _exit(7); (void)sig; }

static void signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, &old);
    int st;

    /* exit status through SIGCHLD and wait */
    pid_t c = fork();
    if (c == 0)
        _exit(5);
    expect_pid = c;
    printf("child exits 5:\n");
    wait_chld(&old);
    waitpid(c, &st, 0);
    printf("  waitpid: exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));

    /* kill(2) to another process: its handler runs */
    c = fork();
    if (c == 0) {
        signal(SIGUSR1, on_usr1);
        kill(getppid(), SIGUSR2);          /* ready */
        for (;;)
            pause();
    }
    expect_pid = c;
    int sig;
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigwait(&usr2, &sig);
    printf("kill(child, SIGUSR1) -> %d\n", kill(c, SIGUSR1));
    wait_chld(&old);
    waitpid(c, &st, 0);
    printf("  waitpid: exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));

    /* stop, continue, terminate */
    c = fork();
    if (c == 0) {
        for (;;)
            pause();
    }
    expect_pid = c;
    kill(c, SIGSTOP);
    printf("SIGSTOP:\n");
    wait_chld(&old);
    waitpid(c, &st, WUNTRACED);
    printf("  waitpid WUNTRACED: stopped %d by %d\n", WIFSTOPPED(st), WSTOPSIG(st));
    kill(c, SIGCONT);
    printf("SIGCONT:\n");
    wait_chld(&old);
    waitpid(c, &st, WCONTINUED);
    printf("  waitpid WCONTINUED: continued %d\n", WIFCONTINUED(st));
    kill(c, SIGTERM);
    printf("SIGTERM:\n");
    wait_chld(&old);
    waitpid(c, &st, 0);
    printf("  waitpid: signaled %d by %d\n", WIFSIGNALED(st), WTERMSIG(st));

    /* SIGKILL of a child that computes: only the child dies */
    c = fork();
    if (c == 0) {
        kill(getppid(), SIGUSR2);
        for (volatile unsigned long i = 0;; i++)
            ;
    }
    expect_pid = c;
    sigwait(&usr2, &sig);
    kill(c, SIGKILL);
    printf("SIGKILL of a computing child:\n");
    wait_chld(&old);
    waitpid(c, &st, 0);
    printf("  waitpid: signaled %d by %d; the parent goes on\n", WIFSIGNALED(st), WTERMSIG(st));
    printf("kill(no such process) -> %d\n", kill(c, 0));
    sigprocmask(SIG_SETMASK, &old, 0);
}

static void dev_fd(void) {
    char path[64], buf[8];
    int fd = open("/proc/self/exe", O_RDONLY);
    int n = read(fd, buf, 4);                   /* the descriptor's offset moves to 4 */
    snprintf(path, sizeof path, "/dev/fd/%d", fd);
    int again = open(path, O_RDONLY);           /* a new open file: offset 0 */
    n = read(again, buf, 4);
    printf("/dev/fd/N reopens: %s, own offset %ld, original at %ld\n", n == 4 && !memcmp(buf, "\177ELF", 4) ? "yes" : "no",
           (long)lseek(again, 0, SEEK_CUR), (long)lseek(fd, 0, SEEK_CUR));
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int third = open(path, O_RDONLY);
    printf("/proc/self/fd/N reopens: %s\n", third >= 0 && read(third, buf, 4) == 4 && !memcmp(buf, "\177ELF", 4) ? "yes" : "no");
    printf("/dev/fd/99 (not open) -> %d\n", open("/dev/fd/99", O_RDONLY));
    close(fd), close(again), close(third);
    int p[2];
    if (pipe(p))
        exit(1);
    write(p[1], "via pipe", 8);
    snprintf(path, sizeof path, "/dev/fd/%d", p[0]);
    int r = open(path, O_RDONLY);
    memset(buf, 0, sizeof buf);
    printf("/dev/fd of a pipe reads: %.8s\n", read(r, buf, 8) == 8 ? buf : "nothing");
}

static void sysinfo_units(void) {
    struct sysinfo si;
    sysinfo(&si);
    printf("sysinfo: mem_unit %u, totalram > 0 %d, freeram <= totalram %d, procs > 0 %d, _SC_PHYS_PAGES > 0 %d\n",
           si.mem_unit, si.totalram > 0, si.freeram <= si.totalram, si.procs > 0, sysconf(_SC_PHYS_PAGES) > 0);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    pipeline();
    signals();
    dev_fd();
    sysinfo_units();
    return 0;
}
