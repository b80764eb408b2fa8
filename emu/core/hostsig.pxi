# Host signals that must stop a running vCPU. The Linux personality carries
# guest signals between the host processes of a guest tree as host signals
# (kill, SIGCHLD, the terminal's SIGTTIN/SIGTTOU/SIGTSTP...). Python runs its
# signal handlers only between bytecodes, never while a vCPU runs without the
# GIL, so this C handler, chained in front of Python's, asks the running vCPU
# to exit at its next block (EV_STOP) and keeps the kernel's siginfo
# (sender, code, status, value), which Python's handlers never see.

cdef extern from *:
    """
    #include <signal.h>
    typedef struct { long pid, uid, code, status, value, seen; } emu_hostsig_t;
    static emu_hostsig_t emu_hostsig_info[65];
    static struct sigaction emu_hostsig_chained[65];
    static void (*emu_hostsig_kick)(void) = 0;

    static void emu_hostsig_handler(int sig, siginfo_t* info, void* ctx) {
        if (sig <= 0 || sig >= 65)
            return;
        emu_hostsig_t* r = &emu_hostsig_info[sig];
        if (info) {
            r->pid = info->si_pid; r->uid = info->si_uid; r->code = info->si_code;
            r->status = info->si_status; r->value = (long)info->si_value.sival_ptr;
        }
        r->seen = 1;
        if (emu_hostsig_kick)
            emu_hostsig_kick();
        struct sigaction* o = &emu_hostsig_chained[sig];
        if (o->sa_flags & SA_SIGINFO) {
            if (o->sa_sigaction)
                o->sa_sigaction(sig, info, ctx);
        } else if (o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN) {
            o->sa_handler(sig);
        }
    }

    /* Put the handler in front of whatever handles sig now (Python's). */
    static int emu_hostsig_install(int sig) {
        struct sigaction cur, mine;
        if (sig <= 0 || sig >= 65 || sigaction(sig, NULL, &cur))
            return -1;
        if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == emu_hostsig_handler)
            return 0;
        emu_hostsig_chained[sig] = cur;
        mine = cur;
        mine.sa_sigaction = emu_hostsig_handler;
        mine.sa_flags = (cur.sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
        return sigaction(sig, &mine, NULL);
    }

    static void emu_hostsig_set_kick(void (*fn)(void)) { emu_hostsig_kick = fn; }

    /* Ctrl-C through the Python API: while Python's own SIGINT handler is in
       place, ours goes in front of it, so a vCPU running without the GIL stops
       at its next block and Vcpu.run() raises KeyboardInterrupt (one sigaction
       call per run(); nothing per block). */
    static void emu_sigint_ensure(void) {
        struct sigaction cur;
        if (sigaction(SIGINT, NULL, &cur))
            return;
        if (cur.sa_flags & SA_SIGINFO) {
            if (cur.sa_sigaction == emu_hostsig_handler)
                return;
        } else if (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN) {
            return;
        }
        emu_hostsig_install(SIGINT);
    }
    """
    ctypedef struct emu_hostsig_t:
        long pid, uid, code, status, value, seen
    emu_hostsig_t emu_hostsig_info[65]
    int emu_hostsig_install(int sig) nogil
    void emu_hostsig_set_kick(void (*fn)() noexcept nogil) nogil
    void emu_sigint_ensure() nogil

cdef Mach* hostsig_mach = NULL

# every live machine (PhysMachine registers its Mach): a host signal stops the
# vCPU each one is running, in whatever thread
cdef enum:
    MAX_LIVE_MACHS = 4096
cdef Mach* live_machs[MAX_LIVE_MACHS]
memset(live_machs, 0, sizeof(live_machs))

cdef void live_mach_add(Mach* m) noexcept:
    cdef int i
    for i in range(MAX_LIVE_MACHS):
        if live_machs[i] == NULL:
            live_machs[i] = m
            return

cdef void live_mach_remove(Mach* m) noexcept:
    cdef int i
    for i in range(MAX_LIVE_MACHS):
        if live_machs[i] == m:
            live_machs[i] = NULL

cdef void hostsig_kick() noexcept nogil:
    cdef Mach* m
    cdef Cpu* c
    cdef int i
    for i in range(MAX_LIVE_MACHS):
        m = live_machs[i]
        if m != NULL:
            c = m.running
            if c != NULL:
                emu_atomic_or32(&c.events, EV_STOP)

emu_hostsig_set_kick(hostsig_kick)


def host_siginfo(int sig):
    """The siginfo of the last host signal `sig` taken since the last call:
    (pid, uid, code, status, value), or None."""
    cdef emu_hostsig_t* r
    if sig <= 0 or sig >= 65:
        return None
    r = &emu_hostsig_info[sig]
    if not r.seen:
        return None
    r.seen = 0
    return (r.pid, r.uid, r.code, r.status, r.value)
