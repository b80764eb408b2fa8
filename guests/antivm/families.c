/* families: detector families an analyst would try beyond the published
 * checks of antivm.c. One line per check, "DETECTED" or "clean", each
 * prefixed with its family:
 *
 *   coherence.*   CPUID against the OS's files (CPU count, caches, brand,
 *                 flags, kernel version)
 *   exception.*   fault semantics: signal, si_code, trap number, error code,
 *                 FPU state in the frame, single-step, int 0x80, rseq, vDSO
 *   proc.*        /proc files that would show the emulator's own process
 *
 * The exit status is the number of detections. Freestanding like antivm.c
 * (tests/test_stealth_families.py runs it). */

typedef unsigned long u64;
typedef unsigned int u32;

static long sys6(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
#define sys3(n, a, b, c) sys6(n, a, b, c, 0)

static long len(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    return n;
}

static void say(const char *s) { sys3(1, 1, (long)s, len(s)); }

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

static int eq(const char *a, const char *b, long n)
{
    for (long i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static int contains(const char *hay, long n, const char *needle)
{
    long m = len(needle);
    for (long i = 0; i + m <= n; i++)
        if (eq(hay + i, needle, m))
            return 1;
    return 0;
}

static long to_num(const char *s)
{
    long v = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return v;
}

static void cpuid(u32 leaf, u32 sub, u32 r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static long slurp(const char *path, char *buf, long cap)
{
    long fd = sys3(2, (long)path, 0, 0), n = 0, k;
    if (fd < 0)
        return -1;
    while (n < cap - 1 && (k = sys3(0, fd, (long)(buf + n), cap - 1 - n)) > 0)
        n += k;
    sys3(3, fd, 0, 0);
    buf[n] = 0;
    return n;
}

static int detections;

static void report(const char *name, int hit, const char *detail)
{
    say(name);
    say(hit ? ": DETECTED" : ": clean");
    if (detail && detail[0]) {
        say(" (");
        say(detail);
        say(")");
    }
    say("\n");
    detections += hit;
}

static char buf[1 << 16];
static char buf2[1 << 12];

/* the value after "key<tabs>: " on the first line starting with key, or 0 */
static const char *field(const char *text, long n, const char *key)
{
    long m = len(key);
    for (long i = 0; i < n; i++)
        if ((i == 0 || text[i - 1] == '\n') && eq(text + i, key, m) && (text[i + m] == '\t' || text[i + m] == ':')) {
            const char *p = text + i + m;
            while (*p == '\t' || *p == ' ' || *p == ':')
                p++;
            return p;
        }
    return 0;
}

/* ---- coherence: CPUID against the OS ---- */

static int count_lines_starting(const char *t, long n, const char *key)
{
    int c = 0;
    for (long i = 0; i < n; i++)
        if ((i == 0 || t[i - 1] == '\n') && eq(t + i, key, len(key)))
            c++;
    return c;
}

/* "0-3" / "0" / "0,2-3": how many CPUs */
static int cpulist_count(const char *s)
{
    int total = 0;
    while (*s >= '0' && *s <= '9') {
        long a = to_num(s), b;
        while (*s >= '0' && *s <= '9')
            s++;
        b = a;
        if (*s == '-') {
            s++;
            b = to_num(s);
            while (*s >= '0' && *s <= '9')
                s++;
        }
        total += (int)(b - a + 1);
        if (*s == ',')
            s++;
    }
    return total;
}

static void coherence_cpu_count(void)
{
    long n = slurp("/proc/cpuinfo", buf, sizeof buf);
    int info = n > 0 ? count_lines_starting(buf, n, "processor") : -1;
    u64 mask[16] = {0};
    long r = sys3(204, 0, sizeof mask, (long)mask);
    int aff = 0;
    for (int i = 0; r > 0 && i < 16; i++)
        for (u64 m = mask[i]; m; m &= m - 1)
            aff++;
    int online = slurp("/sys/devices/system/cpu/online", buf2, sizeof buf2) > 0 ? cpulist_count(buf2) : -1;
    report("coherence.cpu_count", info != aff || info != online, "");
}

static void coherence_caches(void)
{
    u32 r[4];
    cpuid(0, 0, r);
    int hit = r[0] < 4;
    if (!hit) {
        cpuid(4, 0, r);
        if ((r[0] & 0x1f) == 0)
            hit = 1;                                        /* leaf 4 empty */
        else {
            u64 size = (u64)((r[1] >> 22) + 1) * ((r[1] >> 12 & 0x3ff) + 1) * ((r[1] & 0xfff) + 1) * (r[2] + 1);
            long n = slurp("/sys/devices/system/cpu/cpu0/cache/index0/size", buf2, sizeof buf2);
            if (n <= 0 || (u64)to_num(buf2) * 1024 != size)
                hit = 1;
        }
    }
    report("coherence.caches", hit, "");
}

static void coherence_brand_flags(void)
{
    u32 r[4], all[12];
    char brand[52];
    for (int i = 0; i < 3; i++) {
        cpuid(0x80000002 + i, 0, r);
        for (int k = 0; k < 4; k++)
            all[4 * i + k] = r[k];
    }
    for (int i = 0; i < 48; i++)
        brand[i] = (char)(all[i / 4] >> (8 * (i % 4)));
    brand[48] = 0;
    const char *b = brand;
    while (*b == ' ')
        b++;
    long n = slurp("/proc/cpuinfo", buf, sizeof buf);
    const char *mn = n > 0 ? field(buf, n, "model name") : 0;
    int hit = !mn || !eq(mn, b, len(b)) || mn[len(b)] != '\n';
    /* flags: SSE4.2, POPCNT, AES, AVX as CPUID says */
    const char *fl = n > 0 ? field(buf, n, "flags") : 0;
    long fn = 0;
    while (fl && fl[fn] && fl[fn] != '\n')
        fn++;
    cpuid(1, 0, r);
    static const struct { const char *name; int bit; } f[] = {{" sse4_2", 20}, {" popcnt", 23}, {" aes", 25},
                                                             {" avx", 28}, {" hypervisor", 31}};
    for (int i = 0; fl && i < 5; i++) {
        char pat[16];
        long m = len(f[i].name);
        for (long k = 0; k <= m; k++)
            pat[k] = f[i].name[k];
        int shown = 0;
        for (long k = 0; k + m <= fn; k++)
            if (eq(fl + k, pat, m) && (k + m == fn || fl[k + m] == ' '))
                shown = 1;
        if (shown != (int)(r[2] >> f[i].bit & 1))
            hit = 1;
    }
    /* the brand's frequency against cpuinfo's cpu MHz */
    const char *at = 0;
    for (const char *p = b; *p; p++)
        if (p[0] == '@')
            at = p;
    const char *mhz = n > 0 ? field(buf, n, "cpu MHz") : 0;
    if (at && mhz) {
        long ghz100 = to_num(at + 1) * 100 + to_num(at + 4);     /* "@ 3.20GHz" -> 320 */
        if (to_num(mhz) != ghz100 * 10)
            hit = 1;
    }
    report("coherence.brand_flags", hit, b);
}

static void coherence_kernel(void)
{
    static char u[6 * 65];
    sys3(63, (long)u, 0, 0);
    long n = slurp("/proc/version", buf, sizeof buf);
    const char *rel = u + 2 * 65, *ver = u + 3 * 65;
    report("coherence.kernel", n <= 0 || !contains(buf, n, rel) || !contains(buf, n, ver), rel);
}

/* ---- exceptions ---- */

struct ksigaction {
    void (*handler)(int, void *, void *);
    u64 flags;
    void (*restorer)(void);
    u64 mask;
};

static volatile int got_sig, got_code;
static volatile u64 got_addr, got_trapno, got_err, got_fpregs, resume_at;

extern void restorer(void);
__asm__(".text\nrestorer:\n mov $15, %eax\n syscall\n");

static void handler(int sig, void *si, void *uc)
{
    u64 *gregs = (u64 *)((char *)uc + 40);
    got_sig = sig;
    got_code = *(int *)((char *)si + 8);
    got_addr = *(u64 *)((char *)si + 16);
    got_trapno = gregs[20];
    got_err = gregs[19];
    got_fpregs = gregs[23];
    gregs[17] &= ~0x100ULL;                 /* EFL: TF off */
    gregs[16] = resume_at;                  /* RIP */
}

static void catch_all(void)
{
    static const int sigs[] = {4, 5, 7, 8, 11};
    struct ksigaction a = {handler, 0x04000004 | 0x40000000, restorer, 0};   /* SA_SIGINFO|SA_RESTORER|SA_NODEFER */
    for (int i = 0; i < 5; i++)
        sys6(13, sigs[i], (long)&a, 0, 8);
}

static void expect(const char *name, int sig, int code, u64 trapno, long err)
{
    int hit = got_sig != sig || got_code != code || got_trapno != trapno || (err >= 0 && got_err != (u64)err) ||
              !got_fpregs;
    char d[64], *p = d;
    const char *pre = "sig ";
    while (*pre)
        *p++ = *pre++;
    *p++ = (char)('0' + got_sig / 10);
    *p++ = (char)('0' + got_sig % 10);
    pre = " code ";
    while (*pre)
        *p++ = *pre++;
    int c = got_code;
    *p++ = (char)('0' + (c / 100) % 10);
    *p++ = (char)('0' + (c / 10) % 10);
    *p++ = (char)('0' + c % 10);
    pre = " trap ";
    while (*pre)
        *p++ = *pre++;
    *p++ = (char)('0' + (got_trapno / 10) % 10);
    *p++ = (char)('0' + got_trapno % 10);
    if (!got_fpregs) {
        pre = " no-fpu-state";
        while (*pre)
            *p++ = *pre++;
    }
    *p = 0;
    report(name, hit, d);
    got_sig = got_code = 0;
    got_trapno = got_err = got_fpregs = 0;
}

#define FAULT(label, insns)                                                                            \
    __asm__ volatile("lea 1f(%%rip), %%rax\n mov %%rax, %0\n" insns "\n1:\n"                          \
                     : "=m"(resume_at) : : "rax", "rcx", "rdx", "memory", "cc")

static void exceptions(void)
{
    catch_all();
    FAULT(div0, "xor %%ecx, %%ecx\n xor %%edx, %%edx\n mov $1, %%eax\n div %%ecx");
    expect("exception.divide_error", 8, 1, 0, 0);                   /* SIGFPE FPE_INTDIV, #DE */
    FAULT(ud, "ud2");
    expect("exception.invalid_opcode", 4, 2, 6, 0);                 /* SIGILL ILL_ILLOPN, #UD */
    FAULT(nullr, "mov 0x10, %%rax");
    expect("exception.page_fault_read", 11, 1, 14, 4);              /* SIGSEGV SEGV_MAPERR, #PF user read */
    int maperr_addr_ok = got_addr == 0 || 1;
    (void)maperr_addr_ok;
    FAULT(rowrite, "lea restorer(%%rip), %%rcx\n movb $0, (%%rcx)");
    expect("exception.page_fault_write_ro", 11, 2, 14, 7);          /* SEGV_ACCERR, present+write+user */
    FAULT(brk, "int3");
    expect("exception.breakpoint", 5, 0x80, 3, 0);                  /* SIGTRAP SI_KERNEL, #BP */
    FAULT(hlt, "hlt");
    expect("exception.privileged", 11, 0x80, 13, 0);                /* SIGSEGV SI_KERNEL, #GP(0) */
    FAULT(tf, "pushf\n orq $0x100, (%%rsp)\n popf\n nop\n nop");
    expect("exception.single_step", 5, 2, 1, -1);                   /* SIGTRAP TRAP_TRACE, #DB */
    long pid64 = sys3(39, 0, 0, 0), pid32;
    __asm__ volatile("int $0x80" : "=a"(pid32) : "a"(20) : "memory");
    report("exception.int80", pid32 != pid64, "");
    long r = sys6(334, 0, 0, 0, 0);                                 /* rseq(NULL, 0, 0, 0) */
    report("exception.rseq", r == -38, "");                         /* ENOSYS */
}

/* ---- /proc ---- */

static u64 auxv_entry = 0, auxv_vdso = 0;

static void proc_leaks(const char *argv0)
{
    static const char *const bad[] = {"python", "emu/", "_core", ".pyenv", "site-packages", 0};
    static const char *const files[] = {"/proc/self/maps", "/proc/self/smaps", "/proc/self/cmdline",
                                        "/proc/self/status", "/proc/self/stat", 0};
    static const char *const names[] = {"proc.maps", "proc.smaps", "proc.cmdline", "proc.status", "proc.stat"};
    for (int f = 0; files[f]; f++) {
        long n = slurp(files[f], buf, sizeof buf);
        int hit = n <= 0;
        for (int i = 0; n > 0 && bad[i]; i++)
            if (contains(buf, n, bad[i]))
                hit = 1;
        report(names[f], hit, n <= 0 ? "unreadable" : "");
    }
    /* /proc/self/auxv must be this process's: AT_ENTRY as on the stack */
    long n = slurp("/proc/self/auxv", buf, sizeof buf);
    u64 entry = 0;
    for (long i = 0; i + 16 <= n; i += 16)
        if (*(u64 *)(buf + i) == 9)
            entry = *(u64 *)(buf + i + 8);
    report("proc.auxv", n <= 0 || entry != auxv_entry, "");
    /* the parent: no interpreter in its command line */
    long ppid = sys3(110, 0, 0, 0);
    char path[40] = "/proc/", *p = path + 6;
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + ppid % 10);
        ppid /= 10;
    } while (ppid);
    while (k)
        *p++ = tmp[--k];
    const char *tail = "/cmdline";
    while (*tail)
        *p++ = *tail++;
    *p = 0;
    n = slurp(path, buf, sizeof buf);
    int hit = 0;
    for (int i = 0; n > 0 && bad[i]; i++)
        if (contains(buf, n, bad[i]))
            hit = 1;
    report("proc.parent_cmdline", hit, "");
    /* exe: the program, not the interpreter */
    long m = sys3(89, (long)"/proc/self/exe", (long)buf2, sizeof buf2 - 1);
    buf2[m > 0 ? m : 0] = 0;
    hit = m <= 0;
    for (int i = 0; m > 0 && bad[i]; i++)
        if (contains(buf2, m, bad[i]))
            hit = 1;
    (void)argv0;
    report("proc.exe", hit, "");
    report("proc.vdso", auxv_vdso == 0, "");                        /* AT_SYSINFO_EHDR */
}

void __attribute__((used)) cmain(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    while (*envp)
        envp++;
    for (u64 *aux = (u64 *)(envp + 1); aux[0]; aux += 2) {
        if (aux[0] == 9)
            auxv_entry = aux[1];
        if (aux[0] == 33)
            auxv_vdso = aux[1];
    }
    coherence_cpu_count();
    coherence_caches();
    coherence_brand_flags();
    coherence_kernel();
    exceptions();
    proc_leaks(argv[0]);
    say("detections: ");
    say_num((u64)detections);
    say("\n");
    sys3(231, detections, 0, 0);
    for (;;)
        ;
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n");
