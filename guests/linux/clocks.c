/* clocks: every clock a Linux program can read (RDTSC, clock_gettime
 * MONOTONIC and BOOTTIME, gettimeofday, time, /proc/uptime, /proc/stat's
 * btime, sysinfo) must tell one time across every way of letting time
 * pass: nanosleep; select and poll timing out on a pipe that never becomes
 * ready; select used as a sleep; alarm() and setitimer() signals
 * interrupting nanosleep, select, pselect, sigsuspend, pause, a blocked
 * pipe read and waitpid;
 * sigtimedwait; a periodic ITIMER_REAL while the program computes; POSIX
 * timers (SI_TIMER siginfo, overruns, SIGEV_NONE); and
 * timerfds (read, poll, select with a pipe, epoll_wait, a read restarted
 * after an SA_RESTART handler).
 *
 * For each interval the program prints whether the clocks' deltas agree
 * (within 1 ms or 1%, /proc/uptime within its 10 ms resolution, time()
 * within its second) and whether the interval lasted as asked (up to 2 ms or
 * 2% late; the periodic timer's signals 10 ms more). With -v it also prints
 * the raw deltas (identical across runs under `emu run --time virtual`). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long long u64;
typedef long long s64;

static int verbose;
static double tsc_hz;          /* from CPUID 0x15, else calibrated */
static volatile sig_atomic_t alarms;

struct snap {
    u64 tsc;
    s64 mono_ns, tod_us, time_s, up_cs;
};

static u64 rdtsc(void)
{
    unsigned lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static void cpuid(unsigned leaf, unsigned *a, unsigned *b, unsigned *c, unsigned *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static s64 ns_of(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (s64)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static s64 uptime_cs(s64 *idle_cs)
{
    char buf[128];
    int fd = open("/proc/uptime", O_RDONLY);
    long n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    s64 a, b, c, d;
    if (sscanf(buf, "%lld.%lld %lld.%lld", &a, &b, &c, &d) != 4)
        return -1;
    if (idle_cs)
        *idle_cs = c * 100 + d;
    return a * 100 + b;
}

static void take(struct snap *s)
{
    struct timeval tv;
    s->up_cs = uptime_cs(0);
    s->tsc = rdtsc();
    s->mono_ns = ns_of(CLOCK_MONOTONIC);
    gettimeofday(&tv, 0);
    s->tod_us = (s64)tv.tv_sec * 1000000 + tv.tv_usec;
    s->time_s = time(0);
}

static s64 absl(s64 x) { return x < 0 ? -x : x; }

/* Compare the deltas of every clock over [a, b] with CLOCK_MONOTONIC's, and
 * that against the time asked for (asked_ns; slack: how late it may end). */
static void report(const char *what, const struct snap *a, const struct snap *b, s64 asked_ns, s64 slack)
{
    s64 mono = b->mono_ns - a->mono_ns;
    s64 tol = mono / 100 > 1000000 ? mono / 100 : 1000000;
    s64 tsc = (s64)((double)(b->tsc - a->tsc) * 1e9 / tsc_hz);
    s64 tod = (b->tod_us - a->tod_us) * 1000;
    s64 tim = (b->time_s - a->time_s) * 1000000000LL;
    s64 up = (b->up_cs - a->up_cs) * 10000000LL;
    int ok_tsc = absl(tsc - mono) <= tol;
    int ok_tod = absl(tod - mono) <= tol;
    int ok_time = absl(tim - mono) < 1000000000LL + tol;
    int ok_up = absl(up - mono) <= 10000000LL + tol;
    int ok_len = mono >= asked_ns && mono <= asked_ns + 2 * tol + slack;
    printf("%s: clocks %s", what, ok_tsc && ok_tod && ok_time && ok_up ? "agree" : "DISAGREE");
    if (!ok_tsc || !ok_tod || !ok_time || !ok_up)
        printf(" (tsc %d tod %d time %d uptime %d)", ok_tsc, ok_tod, ok_time, ok_up);
    printf(", %s\n", ok_len ? "lasted as asked" : "did NOT last as asked");
    if (verbose)
        printf("  raw: mono %lld tsc %lld tod %lld time %lld uptime %lld\n", mono, tsc, tod, tim, up);
}

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static volatile int timer_code, timer_value;

static void on_timer(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    timer_code = si->si_code;
    timer_value = si->si_value.sival_int;
}

static void handler(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;            /* no SA_RESTART: the interrupted call fails with EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, 0);
}

static const char *err(long r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    return errno == EINTR ? "-1 EINTR" : errno == EINVAL ? "-1 EINVAL" : "-1 other";
}

int main(int argc, char **argv)
{
    struct snap a, b;
    int p[2];
    verbose = argc > 1 && !strcmp(argv[1], "-v");
    setvbuf(stdout, 0, _IONBF, 0);

    unsigned ea, eb, ec, ed;
    cpuid(0, &ea, &eb, &ec, &ed);
    if (ea >= 0x15) {
        cpuid(0x15, &ea, &eb, &ec, &ed);
        if (ea && eb && ec)
            tsc_hz = (double)ec * eb / ea;
    }
    if (tsc_hz == 0) {             /* calibrate against CLOCK_MONOTONIC */
        struct timespec t = {0, 100000000};
        u64 t0 = rdtsc();
        s64 m0 = ns_of(CLOCK_MONOTONIC);
        nanosleep(&t, 0);
        tsc_hz = (double)(rdtsc() - t0) * 1e9 / (double)(ns_of(CLOCK_MONOTONIC) - m0);
    }
    if (pipe(p) != 0)
        return 1;

    /* /proc/uptime and sysinfo tell CLOCK_BOOTTIME */
    s64 idle;
    s64 up = uptime_cs(&idle);
    s64 boot = ns_of(CLOCK_BOOTTIME);
    struct sysinfo si;
    sysinfo(&si);
    s64 boot2 = ns_of(CLOCK_BOOTTIME);
    printf("uptime vs CLOCK_BOOTTIME: %s\n", up >= 0 && absl(up * 10000000LL - boot) <= 20000000LL ? "agree" : "DISAGREE");
    printf("uptime idle <= uptime: %s\n", idle >= 0 && idle <= up * 64 ? "yes" : "no");
    printf("sysinfo uptime vs CLOCK_BOOTTIME: %s\n",
           si.uptime >= boot / 1000000000LL && si.uptime <= boot2 / 1000000000LL + 1 ? "agree" : "DISAGREE");

    /* the coarse clocks trail the precise ones by less than their resolution */
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC_COARSE, &res);
    s64 coarse = ns_of(CLOCK_MONOTONIC_COARSE), fine = ns_of(CLOCK_MONOTONIC);
    s64 rcoarse = ns_of(CLOCK_REALTIME_COARSE), rfine = ns_of(CLOCK_REALTIME);
    s64 resn = res.tv_sec * 1000000000LL + res.tv_nsec;
    printf("coarse clocks within their resolution: %s\n",
           resn >= 1000000 && coarse <= fine && fine - coarse <= resn + 1000000 && rcoarse <= rfine &&
           rfine - rcoarse <= resn + 1000000 ? "yes" : "no");
    printf("clock_gettime(10) -> %s\n", err(clock_gettime(10, &res)));

    /* /proc/stat's btime + uptime is the time of day */
    long long btime = -1;
    FILE *st = fopen("/proc/stat", "r");
    char line[512];
    while (st && fgets(line, sizeof line, st))
        if (!strncmp(line, "btime ", 6))
            btime = atoll(line + 6);
    if (st)
        fclose(st);
    s64 up2 = uptime_cs(0);
    long long tnow = time(0);
    printf("btime + uptime vs time(): %s\n", btime > 0 && absl(btime + up2 / 100 - tnow) <= 2 ? "agree" : "DISAGREE");

    /* nanosleep */
    struct timespec req = {0, 200000000};
    take(&a);
    long r = nanosleep(&req, 0);
    take(&b);
    printf("nanosleep 200ms -> %s\n", err(r));
    report("nanosleep 200ms", &a, &b, 200000000, 0);

    /* select timing out on a pipe nobody writes (we hold the write end) */
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    struct timeval tv = {0, 100000};
    take(&a);
    r = syscall(SYS_select, p[0] + 1, &rd, 0, 0, &tv);
    take(&b);
    printf("select pipe 100ms -> %s, fd still set %d, time left %ld.%06ld\n", err(r), FD_ISSET(p[0], &rd),
           (long)tv.tv_sec, (long)tv.tv_usec);
    report("select pipe 100ms", &a, &b, 100000000, 0);

    /* poll timing out on the same pipe */
    struct pollfd pf = {p[0], POLLIN, 0};
    take(&a);
    r = poll(&pf, 1, 100);
    take(&b);
    printf("poll pipe 100ms -> %s, revents %d\n", err(r), pf.revents);
    report("poll pipe 100ms", &a, &b, 100000000, 0);

    /* a ready fd: no time passes */
    if (write(p[1], "x", 1) != 1)
        return 1;
    take(&a);
    r = poll(&pf, 1, 5000);
    take(&b);
    printf("poll ready pipe -> %s, revents %d, returned at once %s\n", err(r), pf.revents,
           b.mono_ns - a.mono_ns < 100000000 ? "yes" : "no");
    char c;
    if (read(p[0], &c, 1) != 1)
        return 1;

    /* select used as a sleep */
    tv.tv_sec = 0;
    tv.tv_usec = 300000;
    take(&a);
    r = syscall(SYS_select, 0, 0, 0, 0, &tv);
    take(&b);
    printf("select sleep 300ms -> %s, time left %ld.%06ld\n", err(r), (long)tv.tv_sec, (long)tv.tv_usec);
    report("select sleep 300ms", &a, &b, 300000000, 0);

    /* alarm() interrupts a nanosleep: EINTR, the time not slept in rem */
    handler(SIGALRM, on_alarm);
    alarm(7);
    unsigned prev = alarm(1);
    struct timespec rem = {0, 0};
    req.tv_sec = 5;
    req.tv_nsec = 0;
    take(&a);
    r = nanosleep(&req, &rem);
    take(&b);
    s64 rem_ns = rem.tv_sec * 1000000000LL + rem.tv_nsec;
    printf("alarm 1s during nanosleep 5s -> %s, previous alarm %u, alarms %d, rem about 4s %s\n", err(r), prev,
           (int)alarms, absl(rem_ns - 4000000000LL) <= 20000000LL ? "yes" : "no");
    report("alarm 1s during nanosleep 5s", &a, &b, 1000000000, 0);

    /* alarm() interrupts select used as a sleep: EINTR, the time left written back */
    alarm(1);
    tv.tv_sec = 3;
    tv.tv_usec = 0;
    take(&a);
    r = syscall(SYS_select, 0, 0, 0, 0, &tv);
    take(&b);
    s64 left = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
    printf("alarm 1s during select 3s -> %s, alarms %d, time left about 2s %s\n", err(r), (int)alarms,
           absl(left - 2000000000LL) <= 20000000LL ? "yes" : "no");
    report("alarm 1s during select 3s", &a, &b, 1000000000, 0);

    /* a timer's signal interrupts a read blocked on a pipe nobody writes */
    struct itimerval in300 = {{0, 0}, {0, 300000}};
    alarms = 0;
    take(&a);
    setitimer(ITIMER_REAL, &in300, 0);
    r = read(p[0], &c, 1);
    take(&b);
    printf("setitimer 300ms during a blocked pipe read -> %s, alarms %d\n", err(r), (int)alarms);
    report("setitimer 300ms during pipe read", &a, &b, 300000000, 0);

    /* ... and a waitpid for a child blocked until we write to it */
    int go[2];
    if (pipe(go) != 0)
        return 1;
    pid_t kid = fork();
    if (kid == 0) {
        close(go[1]);
        _exit(read(go[0], &c, 1) == 1 ? 3 : 4);
    }
    close(go[0]);
    alarms = 0;
    int wst = 0;
    take(&a);
    setitimer(ITIMER_REAL, &in300, 0);
    r = waitpid(kid, &wst, 0);
    take(&b);
    printf("setitimer 300ms during waitpid -> %s, alarms %d\n", err(r), (int)alarms);
    report("setitimer 300ms during waitpid", &a, &b, 300000000, 0);
    if (write(go[1], "g", 1) != 1)
        return 1;
    r = waitpid(kid, &wst, 0);
    close(go[1]);
    printf("waitpid again -> child %s, status %d\n", r == kid ? "reaped" : "LOST", WIFEXITED(wst) ? WEXITSTATUS(wst) : -1);

    /* setitimer + pause */
    struct itimerval it = {{0, 0}, {0, 250000}}, cur;
    take(&a);
    setitimer(ITIMER_REAL, &it, 0);
    getitimer(ITIMER_REAL, &cur);
    printf("getitimer after setitimer 250ms: %s\n",
           cur.it_value.tv_sec == 0 && cur.it_value.tv_usec > 0 && cur.it_value.tv_usec <= 250000 ? "ok" : "WRONG");
    r = pause();
    take(&b);
    printf("setitimer 250ms + pause -> %s, alarms %d\n", err(r), (int)alarms);
    report("setitimer 250ms + pause", &a, &b, 250000000, 0);

    /* a periodic timer while computing (no system calls in the loop) */
    alarms = 0;
    it.it_interval.tv_usec = 2000;
    it.it_value.tv_usec = 2000;
    take(&a);
    setitimer(ITIMER_REAL, &it, 0);
    volatile u64 spin = 0;
    while (alarms < 3)
        spin++;
    take(&b);
    it.it_value.tv_usec = 0;
    setitimer(ITIMER_REAL, &it, 0);
    getitimer(ITIMER_REAL, &cur);
    printf("periodic 2ms timer while computing: %d signals, disarmed %s\n", (int)alarms,
           cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0 ? "yes" : "no");
    report("periodic 2ms timer x3", &a, &b, 6000000, 10000000);
    if (verbose)
        printf("  spins %llu\n", (unsigned long long)spin);

    /* a blocked SIGALRM: pselect and sigsuspend let it in with their
       temporary mask (EINTR after the handler), and the mask comes back */
    sigset_t blk, empty, now;
    sigemptyset(&blk);
    sigaddset(&blk, SIGALRM);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &blk, 0);
    alarms = 0;
    alarm(1);
    struct timespec pts = {3, 0};
    take(&a);
    r = pselect(0, 0, 0, 0, &pts, &empty);
    take(&b);
    sigprocmask(SIG_BLOCK, 0, &now);
    printf("alarm 1s during pselect 3s (SIGALRM let in) -> %s, alarms %d, blocked again %d\n", err(r), (int)alarms,
           sigismember(&now, SIGALRM));
    report("alarm 1s during pselect 3s", &a, &b, 1000000000, 0);
    alarm(1);
    take(&a);
    r = sigsuspend(&empty);
    take(&b);
    sigprocmask(SIG_BLOCK, 0, &now);
    printf("alarm 1s during sigsuspend -> %s, alarms %d, blocked again %d\n", err(r), (int)alarms,
           sigismember(&now, SIGALRM));
    report("alarm 1s during sigsuspend", &a, &b, 1000000000, 0);
    /* sigtimedwait takes the blocked signal, no handler runs */
    siginfo_t sinfo;
    struct timespec wt = {5, 0};
    alarm(1);
    take(&a);
    r = sigtimedwait(&blk, &sinfo, &wt);
    take(&b);
    printf("sigtimedwait 5s with alarm 1s -> %s, si_signo %d, alarms %d\n", err(r), sinfo.si_signo, (int)alarms);
    report("sigtimedwait with alarm 1s", &a, &b, 1000000000, 0);
    wt.tv_sec = 0;
    wt.tv_nsec = 200000000;
    take(&a);
    r = sigtimedwait(&blk, &sinfo, &wt);
    take(&b);
    printf("sigtimedwait 200ms, nothing comes -> %s\n", r < 0 && errno == EAGAIN ? "-1 EAGAIN" : err(r));
    report("sigtimedwait 200ms timeout", &a, &b, 200000000, 0);
    sigprocmask(SIG_UNBLOCK, &blk, 0);

    /* POSIX timers: an absolute CLOCK_REALTIME one-shot with SIGUSR1 and a value */
    struct sigaction si1;
    memset(&si1, 0, sizeof si1);
    si1.sa_sigaction = on_timer;
    si1.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &si1, 0);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR1;
    sev.sigev_value.sival_int = 1234;
    timer_t t1, t2, t3;
    struct itimerspec pcur;
    timer_create(CLOCK_REALTIME, &sev, &t1);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    rt.tv_nsec += 100000000;
    if (rt.tv_nsec >= 1000000000) {
        rt.tv_sec++;
        rt.tv_nsec -= 1000000000;
    }
    struct itimerspec abs1 = {{0, 0}, rt};
    take(&a);
    timer_settime(t1, TIMER_ABSTIME, &abs1, 0);
    r = pause();
    take(&b);
    printf("timer_create REALTIME absolute +100ms, pause -> %s, SI_TIMER %d, value %d\n", err(r),
           timer_code == SI_TIMER, timer_value);
    report("POSIX timer 100ms", &a, &b, 100000000, 0);
    timer_delete(t1);
    printf("timer_gettime after timer_delete -> %s\n", err(timer_gettime(t1, &pcur)));
    /* a periodic 1 ms MONOTONIC timer whose blocked signal waits: the expirations become overruns */
    sev.sigev_signo = SIGUSR2;
    timer_create(CLOCK_MONOTONIC, &sev, &t2);
    sigset_t u2;
    sigemptyset(&u2);
    sigaddset(&u2, SIGUSR2);
    sigprocmask(SIG_BLOCK, &u2, 0);
    struct itimerspec per = {{0, 1000000}, {0, 1000000}};
    struct timespec nap = {0, 10500000};
    timer_settime(t2, 0, &per, 0);
    nanosleep(&nap, 0);
    r = sigtimedwait(&u2, &sinfo, 0);
    int ovr = timer_getoverrun(t2);
    printf("periodic 1ms timer, signal blocked for 10.5ms -> sigtimedwait %s, SI_TIMER %d, overrun about 9 %s\n",
           err(r), sinfo.si_code == SI_TIMER, sinfo.si_overrun >= 8 && sinfo.si_overrun <= 11 && ovr == sinfo.si_overrun ? "yes" : "no");
    if (verbose)
        printf("  overrun %d\n", ovr);
    timer_delete(t2);
    sigprocmask(SIG_UNBLOCK, &u2, 0);
    /* SIGEV_NONE: no signal, the timer counts down */
    sev.sigev_notify = SIGEV_NONE;
    timer_create(CLOCK_MONOTONIC, &sev, &t3);
    struct itimerspec one = {{0, 0}, {1, 0}};
    timer_settime(t3, 0, &one, 0);
    nap.tv_nsec = 250000000;
    nanosleep(&nap, 0);
    timer_gettime(t3, &pcur);
    printf("SIGEV_NONE timer 1s after 250ms: about 750ms left %s\n",
           pcur.it_value.tv_sec == 0 && pcur.it_value.tv_nsec > 700000000 && pcur.it_value.tv_nsec <= 750000000 ? "yes" : "no");
    timer_delete(t3);

    /* timerfd: a blocking read waits for the first expiry */
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 50000000}, {0, 150000000}}, cits;
    u64 ticks = 0;
    take(&a);
    timerfd_settime(tfd, 0, &its, 0);
    timerfd_gettime(tfd, &cits);
    r = read(tfd, &ticks, 8);
    take(&b);
    printf("timerfd 150ms read -> %s, expirations %llu, gettime ok %s\n", err(r), ticks,
           cits.it_value.tv_sec == 0 && cits.it_value.tv_nsec > 0 && cits.it_value.tv_nsec <= 150000000 &&
           cits.it_interval.tv_nsec == 50000000 ? "yes" : "no");
    report("timerfd 150ms read", &a, &b, 150000000, 0);
    /* the interval: poll wakes at the next expiry */
    struct pollfd tp = {tfd, POLLIN, 0};
    take(&a);
    r = poll(&tp, 1, 1000);
    take(&b);
    r = read(tfd, &ticks, 8);
    printf("timerfd poll -> revents %d, read %s, expirations %llu\n", tp.revents, err(r), ticks);
    report("timerfd interval 50ms poll", &a, &b, 40000000, 12000000);
    /* select on the timer fd and a pipe nobody writes: the timer answers */
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    FD_SET(tfd, &rd);
    take(&a);
    r = select((tfd > p[0] ? tfd : p[0]) + 1, &rd, 0, 0, 0);
    take(&b);
    printf("timerfd+pipe select -> %s, timer set %d, pipe set %d\n", err(r), FD_ISSET(tfd, &rd), FD_ISSET(p[0], &rd));
    r = read(tfd, &ticks, 8);
    report("timerfd+pipe select", &a, &b, 40000000, 12000000);
    /* epoll_wait */
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN, {.u64 = 77}}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    take(&a);
    r = epoll_wait(ep, &got, 1, 1000);
    take(&b);
    printf("timerfd epoll_wait -> %s, data %llu\n", err(r), (unsigned long long)got.data.u64);
    report("timerfd epoll_wait", &a, &b, 40000000, 12000000);
    r = read(tfd, &ticks, 8);
    /* a timer signal with an SA_RESTART handler does not end a blocking timerfd read */
    struct sigaction sr;
    memset(&sr, 0, sizeof sr);
    sr.sa_handler = on_alarm;
    sr.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sr, 0);
    alarms = 0;
    struct itimerspec once = {{0, 0}, {0, 500000000}};
    struct itimerval soon = {{0, 0}, {0, 200000}};
    take(&a);
    timerfd_settime(tfd, 0, &once, 0);
    setitimer(ITIMER_REAL, &soon, 0);
    r = read(tfd, &ticks, 8);
    take(&b);
    printf("timerfd 500ms read, SA_RESTART alarm at 200ms -> %s, expirations %llu, alarms %d\n", err(r), ticks,
           (int)alarms);
    report("timerfd read restarted", &a, &b, 500000000, 0);
    handler(SIGALRM, on_alarm);
    /* disarmed and non-blocking: EAGAIN */
    memset(&its, 0, sizeof its);
    timerfd_settime(tfd, 0, &its, 0);
    fcntl(tfd, F_SETFL, O_NONBLOCK);
    r = read(tfd, &ticks, 8);
    printf("disarmed non-blocking timerfd read -> %s\n", r < 0 && errno == EAGAIN ? "-1 EAGAIN" : err(r));
    close(ep);
    close(tfd);

    /* invalid timeouts */
    struct timespec bad = {0, 1000000000};
    tv.tv_sec = 0;
    tv.tv_usec = -1;
    r = syscall(SYS_ppoll, &pf, 1, &bad, 0, 8);
    printf("ppoll nsec 1e9 -> %s\n", err(r));
    r = syscall(SYS_pselect6, 0, 0, 0, 0, &bad, 0);
    printf("pselect6 nsec 1e9 -> %s\n", err(r));
    r = syscall(SYS_select, 0, 0, 0, 0, &tv);
    printf("select usec -1 -> %s\n", err(r));
    bad.tv_sec = -1;
    bad.tv_nsec = 0;
    r = nanosleep(&bad, 0);
    printf("nanosleep sec -1 -> %s\n", err(r));
    r = setitimer(ITIMER_REAL, &(struct itimerval){{0, 0}, {0, 1000000}}, 0);
    printf("setitimer usec 1e6 -> %s\n", err(r));
    return 0;
}
