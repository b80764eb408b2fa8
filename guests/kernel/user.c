/* The user programs: one image, copied into every process's own pages; the
   argument in RDI picks the program. Runs at CPL 3 with no writable data
   except the stack and the data page (USER_DATA). */
#include "abi.h"

typedef unsigned long u64;

static inline long sys_call(long n, long a, long b) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}
static inline long int80(long n, long a, long b) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "D"(a), "S"(b) : "memory");
    return r;
}
static inline u64 rdtsc(void) {
    unsigned lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static long slen(const char *s) { long n = 0; while (s[n]) n++; return n; }
static void puts_(const char *s) { sys_call(SYS_WRITE, (long)s, slen(s)); }

/* line builder on the stack */
struct line { char b[160]; int n; };
static void la(struct line *l, const char *s) { while (*s && l->n < 158) l->b[l->n++] = *s++; }
static void lu(struct line *l, u64 v) {
    char t[24]; int k = 0;
    do { t[k++] = '0' + v % 10; v /= 10; } while (v);
    while (k && l->n < 158) l->b[l->n++] = t[--k];
}
static void lend(struct line *l, int via80) {
    l->b[l->n++] = '\n';
    if (via80) int80(SYS_WRITE, (long)l->b, l->n);
    else sys_call(SYS_WRITE, (long)l->b, l->n);
    l->n = 0;
}

static void prog_a(long pid) {
    struct line l = {0};
    for (int i = 0; i < 5; i++) {
        la(&l, "A: step "); lu(&l, i); la(&l, " (pid "); lu(&l, pid); la(&l, ")"); lend(&l, 0);
        sys_call(SYS_YIELD, 0, 0);
    }
    la(&l, "A: done"); lend(&l, 0);
    sys_call(SYS_EXIT, 0, 0);
}

static void prog_b(long pid) {
    struct line l = {0};
    for (int i = 0; i < 4; i++) {
        u64 t0 = int80(SYS_TICKS, 0, 0);
        int80(SYS_SLEEP, 3, 0);
        u64 t1 = int80(SYS_TICKS, 0, 0);
        la(&l, "B: slept "); lu(&l, t1 - t0 >= 3 ? 3 : t1 - t0); la(&l, " ticks, step "); lu(&l, i);
        la(&l, " (pid "); lu(&l, pid); la(&l, ")"); lend(&l, 1);
    }
    la(&l, "B: done"); lend(&l, 1);
    int80(SYS_EXIT, 0, 0);
}

static void prog_c(long pid) {
    /* count primes below 30000 by trial division: long enough to be preempted */
    volatile u64 *data = (volatile u64 *)USER_DATA;
    u64 count = 0;
    for (u64 n = 2; n < 30000; n++) {
        int p = 1;
        for (u64 d = 2; d * d <= n; d++) if (n % d == 0) { p = 0; break; }
        count += p;
    }
    data[0] = count;
    struct line l = {0};
    la(&l, "C: primes below 30000: "); lu(&l, data[0]); la(&l, " (pid "); lu(&l, pid); la(&l, ")"); lend(&l, 0);
    sys_call(SYS_EXIT, 0, 0);
}

#define BENCH_N 1000
static void prog_ping(long pid) {
    struct line l = {0};
    u64 t0 = rdtsc();
    for (int i = 0; i < BENCH_N; i++) sys_call(SYS_YIELD, 0, 0);
    u64 t1 = rdtsc();
    la(&l, "bench: pid "); lu(&l, pid); la(&l, " yield loop "); lu(&l, BENCH_N); la(&l, " iterations: ");
    lu(&l, t1 - t0); la(&l, " cycles"); lend(&l, 0);
    sys_call(SYS_EXIT, 0, 0);
}

static void prog_intbench(long pid) {
    struct line l = {0};
    u64 t0 = rdtsc();
    for (int i = 0; i < BENCH_N; i++) __asm__ volatile("int $0x81" ::: "memory");
    u64 t1 = rdtsc();
    la(&l, "bench: int 0x81 round trip "); lu(&l, (t1 - t0) / BENCH_N); la(&l, " cycles"); lend(&l, 0);
    sys_call(SYS_EXIT, 0, 0);
}

static void prog_sysbench(long pid) {
    struct line l = {0};
    u64 t0 = rdtsc();
    for (int i = 0; i < BENCH_N; i++) sys_call(SYS_GETPID, 0, 0);
    u64 t1 = rdtsc();
    la(&l, "bench: syscall round trip "); lu(&l, (t1 - t0) / BENCH_N); la(&l, " cycles"); lend(&l, 0);
    sys_call(SYS_EXIT, 0, 0);
}

static const char *test_names[N_TESTS] = {
    "read kernel memory", "write kernel memory", "write a read-only page", "execute an NX page",
    "hlt", "cli", "in", "out", "wrmsr", "mov to cr3", "lgdt", "invlpg",
    "read another process's page", "read an unmapped user page", "write() from a kernel pointer",
};

static void prog_test(long pid, int t, u64 arg) {
    struct line l = {0};
    la(&l, "T"); lu(&l, t); la(&l, ": pid "); lu(&l, pid); la(&l, " tries to "); la(&l, test_names[t]); lend(&l, 0);
    volatile u64 *p;
    switch (t) {
    case 0: p = (volatile u64 *)0x100000; (void)*p; break;
    case 1: p = (volatile u64 *)0x100000; *p = 0xdead; break;
    case 2: p = (volatile u64 *)USER_CODE; *p = 0xdead; break;
    case 3: {
        volatile unsigned char *d = (volatile unsigned char *)USER_DATA + 0x100;
        d[0] = 0xc3;                                   /* ret */
        ((void (*)(void))(USER_DATA + 0x100))();
        break;
    }
    case 4: __asm__ volatile("hlt"); break;
    case 5: __asm__ volatile("cli"); break;
    case 6: { unsigned char v; __asm__ volatile("inb $0x64, %0" : "=a"(v)); break; }
    case 7: __asm__ volatile("outb %0, $0x80" :: "a"((unsigned char)1)); break;
    case 8: __asm__ volatile("wrmsr" :: "c"(0xc0000082), "a"(0), "d"(0)); break;
    case 9: __asm__ volatile("mov %0, %%cr3" :: "r"((u64)0x1000) : "memory"); break;
    case 10: { unsigned char g[10] = {0}; __asm__ volatile("lgdt %0" :: "m"(g)); break; }
    case 11: __asm__ volatile("invlpg (%0)" :: "r"((u64)0x100000) : "memory"); break;
    case 12: p = (volatile u64 *)arg; (void)*p; break;     /* another process's data page, by physical address */
    case 13: p = (volatile u64 *)(USER_BASE + 0x180000); (void)*p; break;
    case 14: {
        long r = sys_call(SYS_WRITE, 0x100000, 16);
        la(&l, "T14: write(kernel pointer) returned "); if (r < 0) { la(&l, "-"); lu(&l, -r); } else lu(&l, r);
        lend(&l, 0);
        sys_call(SYS_EXIT, 0, 0);
    }
    }
    la(&l, "T"); lu(&l, t); la(&l, ": NOT STOPPED"); lend(&l, 0);
    sys_call(SYS_EXIT, 1, 0);
}

__attribute__((section(".text.start"), used))
void _start(long prog, u64 arg) {
    long pid = sys_call(SYS_GETPID, 0, 0);
    if (prog == PROG_A) prog_a(pid);
    else if (prog == PROG_B) prog_b(pid);
    else if (prog == PROG_C) prog_c(pid);
    else if (prog == PROG_PING) prog_ping(pid);
    else if (prog == PROG_INTBENCH) prog_intbench(pid);
    else if (prog == PROG_SYSBENCH) prog_sysbench(pid);
    else if (prog >= PROG_TEST && prog < PROG_TEST + N_TESTS) prog_test(pid, prog - PROG_TEST, arg);
    puts_("unknown program\n");
    sys_call(SYS_EXIT, 127, 0);
    for (;;) ;
}
