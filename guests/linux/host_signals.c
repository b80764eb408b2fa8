/* Host signals sent to `emu run` while the guest computes (tests/
 * test_harden_signals.py). Modes:
 *   handlers      SIGINT/SIGTERM/SIGHUP handlers; spins until one runs, then
 *                 prints it and exits 3
 *   default       spins with default actions (the signal ends it)
 *   blocked       SIGINT blocked: spins for ever (a second Ctrl-C ends emu)
 *   child         forks a child that spins and prints its pid; waits for it
 *                 and prints how it ended
 *   shared FILE   maps FILE (256 pages) MAP_SHARED, fills every page, spins */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_sig(int s) { got = s; }

static void spin(void) {
    volatile unsigned long i = 0;
    while (!got)
        i++;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "default";
    if (!strcmp(mode, "handlers")) {
        signal(SIGINT, on_sig);
        signal(SIGTERM, on_sig);
        signal(SIGHUP, on_sig);
        printf("ready\n");
        fflush(stdout);
        spin();
        printf("handler ran for signal %d\n", (int)got);
        return 3;
    }
    if (!strcmp(mode, "blocked")) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGINT);
        sigprocmask(SIG_BLOCK, &s, 0);
    }
    if (!strcmp(mode, "child")) {
        pid_t kid = fork();
        if (kid == 0) {
            spin();
            return 0;
        }
        printf("child %d\n", (int)kid);
        fflush(stdout);
        int st;
        if (waitpid(kid, &st, 0) != kid)
            return 1;
        if (WIFSIGNALED(st))
            printf("child killed by signal %d\n", WTERMSIG(st));
        else
            printf("child exited %d\n", WEXITSTATUS(st));
        return 0;
    }
    if (!strcmp(mode, "shared") && argc > 2) {
        int fd = open(argv[2], O_RDWR);
        unsigned char *m = mmap(0, 256 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            return 1;
        for (int i = 0; i < 256; i++)
            memset(m + 4096 * i, 'A' + i % 26, 4096);
    }
    printf("ready\n");
    fflush(stdout);
    spin();
    return 0;
}
