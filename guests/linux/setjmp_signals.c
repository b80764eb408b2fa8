/* setjmp/longjmp, signal handlers, a fault caught by a handler. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static jmp_buf env;
static sigjmp_buf senv;
static volatile sig_atomic_t got;

static void on_usr1(int sig) { got = sig; }

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got = sig;
    if (si->si_addr == (void *)0x40)
        siglongjmp(senv, 2);
    siglongjmp(senv, 3);
}

static int depth(int n)
{
    if (n == 0)
        longjmp(env, 42);
    return depth(n - 1) + 1;
}

int main(void)
{
    int r = setjmp(env);
    if (r == 0)
        depth(50);
    printf("longjmp returned %d\n", r);

    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    printf("handler saw signal %d\n", got);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    r = sigsetjmp(senv, 1);
    if (r == 0) {
        *(volatile int *)0x40 = 1;
        puts("not reached");
    }
    printf("fault handler: signal %d, jumped back with %d\n", got, r);

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    sigprocmask(SIG_SETMASK, &old, &set);
    printf("mask had SIGUSR1: %d\n", sigismember(&set, SIGUSR1));

    signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    puts("ignored SIGUSR1");
    signal(SIGPIPE, SIG_DFL);
    return 0;
}
