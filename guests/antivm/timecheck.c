/* timecheck: reads every clock a Linux guest has (RDTSC, RDTSCP, CPUID 0x15,
 * clock_gettime MONOTONIC/REALTIME, gettimeofday, time), sleeps 1.5 s with
 * nanosleep and reads them again, then once more after a futex wait that
 * times out after 0.25 s; prints the raw values, one "name value"
 * per line, for tests/test_determinism.py to check they tell one time. */
typedef unsigned long u64;
typedef unsigned int u32;

static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static long sys3_6(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}

static void say(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    sys3(1, 1, (long)s, n);
}

static void put(const char *name, u64 v)
{
    char b[24];
    int i = 23;
    b[i] = 0;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    say(name);
    say(" ");
    say(b + i);
    say("\n");
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static void sample(const char *tag)
{
    long ts[2], tv[2];
    u32 lo, hi, aux;
    say(tag);
    say("\n");
    put("tsc", rdtsc());
    sys3(228, 1, (long)ts, 0);
    put("mono_ns", (u64)ts[0] * 1000000000ul + (u64)ts[1]);
    sys3(228, 0, (long)ts, 0);
    put("real_ns", (u64)ts[0] * 1000000000ul + (u64)ts[1]);
    sys3(96, (long)tv, 0, 0);
    put("tod_us", (u64)tv[0] * 1000000ul + (u64)tv[1]);
    put("time_s", (u64)sys3(201, 0, 0, 0));
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    put("tscp", ((u64)hi << 32) | lo);
}

void __attribute__((used)) cmain(long *sp)
{
    u32 a, b, c, d;
    long req[2] = {1, 500000000};
    (void)sp;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x15), "c"(0));
    put("cpuid15_den", a);
    put("cpuid15_num", b);
    put("cpuid15_crystal", c);
    sample("before");
    sys3(35, (long)req, 0, 0);
    sample("after");
    {
        static int word;
        long rel[2] = {0, 250000000};
        long r = sys3_6(202, (long)&word, 0 /* FUTEX_WAIT */, 0, (long)rel);
        put("futex_etimedout", r == -110);
    }
    sample("futex");
    sys3(231, 0, 0, 0);
    for (;;)
        ;
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n");
