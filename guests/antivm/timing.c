/* timing: the timing-shape detector. Measures with RDTSC the figures an
 * analyst's detector compares against real CPUs, and reports each against
 * the range real x86-64 parts show (docs/stealth.md gives the sources):
 *
 *   div_add   cycles of a dependent 64-bit DIV against a dependent ADD (x10)
 *   cpuid     cycles of RDTSC; CPUID(0); RDTSC (a VM exit: thousands; an
 *             emulator that charges nothing: a handful)
 *   rdtsc     cycles between back-to-back RDTSCs
 *   dram_l1   a load of a CLFLUSHed line against a load of a cached one (x10)
 *
 * One line per figure: "NAME: clean|DETECTED (VALUE in [LO, HI])"; the exit
 * status is the number of detections. Freestanding like antivm.c. */

typedef unsigned long u64;
typedef unsigned int u32;

static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static void say(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    sys3(1, 1, (long)s, n);
}

static void say_num(u64 v)
{
    char b[24];
    int i = 23;
    b[i] = 0;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    say(b + i);
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static u64 median(u64 *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            u64 t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static int detections;

static void report(const char *name, u64 value, u64 lo, u64 hi)
{
    int hit = value < lo || value > hi;
    say(name);
    say(hit ? ": DETECTED (" : ": clean (");
    say_num(value);
    say(" in [");
    say_num(lo);
    say(", ");
    say_num(hi);
    say("])\n");
    detections += hit;
}

#define RUNS 9
#define ITERS 64

/* 8 dependent DIVs (RAX / 1 keeps RAX) or 8 dependent ADDs per iteration */
static u64 time_div(void)
{
    u64 a = 1000, one = 1, t0 = rdtsc();
    for (int i = 0; i < ITERS; i++)
        __asm__ volatile(".rept 8\n xor %%edx, %%edx\n div %1\n .endr" : "+a"(a) : "r"(one) : "rdx", "cc");
    return rdtsc() - t0;
}

static u64 time_add(void)
{
    u64 a = 1000, one = 1, t0 = rdtsc();
    for (int i = 0; i < ITERS; i++)
        __asm__ volatile(".rept 8\n add %1, %0\n .endr" : "+r"(a) : "r"(one) : "cc");
    return rdtsc() - t0;
}

static void check_div_add(void)
{
    u64 r[RUNS];
    for (int k = 0; k < RUNS; k++) {
        u64 d = time_div(), a = time_add();
        r[k] = a ? 10 * d / a : 0;
    }
    /* real parts: DIV r64 14-90 cycles of latency, ADD 1 (Agner Fog's tables) */
    report("div_add", median(r, RUNS), 80, 1200);
}

static void check_cpuid(void)
{
    u64 r[RUNS];
    u32 a, b, c, d;
    for (int k = 0; k < RUNS; k++) {
        u64 t0 = rdtsc();
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
        r[k] = rdtsc() - t0;
    }
    /* bare metal: about 100-250 cycles; under a hypervisor that exits: 1000+ */
    report("cpuid", median(r, RUNS), 60, 999);
}

static void check_rdtsc(void)
{
    u64 r[RUNS];
    for (int k = 0; k < RUNS; k++) {
        u64 t0 = rdtsc();
        r[k] = rdtsc() - t0;
    }
    /* real parts: 18-40 cycles (Intel), up to about 70 (AMD) */
    report("rdtsc", median(r, RUNS), 10, 120);
}

static char lines[64 * 64] __attribute__((aligned(64)));

/* LFENCE orders RDTSC after the instructions before it (SDM Vol. 2B,
 * RDTSC): the second reading waits for the load */
static u64 time_load(volatile u64 *p)
{
    u32 lo, hi, lo2, hi2;
    __asm__ volatile("lfence\n rdtsc\n lfence" : "=a"(lo), "=d"(hi) : : "memory");
    (void)*p;
    __asm__ volatile("lfence\n rdtsc" : "=a"(lo2), "=d"(hi2) : : "memory");
    return ((((u64)hi2 << 32) | lo2) - (((u64)hi << 32) | lo));
}

static void check_dram_l1(void)
{
    u64 hit[RUNS], miss[RUNS];
    for (int k = 0; k < RUNS; k++) {
        volatile u64 *p = (volatile u64 *)(lines + 64 * k);
        (void)*p;                                   /* cached */
        hit[k] = time_load(p);
        __asm__ volatile("clflush (%0)\n mfence" : : "r"(p) : "memory");
        miss[k] = time_load(p);                     /* from DRAM */
    }
    u64 h = median(hit, RUNS), m = median(miss, RUNS);
    /* a DRAM access 150-300 cycles, an L1 hit 4, RDTSC's own 20-40 around both */
    report("dram_l1", h ? 10 * m / h : 0, 30, 400);
}

void __attribute__((used)) cmain(long *sp)
{
    (void)sp;
    check_div_add();
    check_cpuid();
    check_rdtsc();
    check_dram_l1();
    say("detections: ");
    say_num((u64)detections);
    say("\n");
    sys3(231, detections, 0, 0);
    for (;;)
        ;
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n");
