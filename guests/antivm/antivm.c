/* antivm: the published anti-VM checks (pafish / al-khaser style) that apply
 * to a Linux x86-64 user-mode program. One line per check, "DETECTED" or
 * "clean"; the exit status is the number of detections.
 *
 * Freestanding (no libc, integer registers only) so it runs on any emu
 * build; built by guests/antivm/build.py. */

typedef unsigned long u64;
typedef unsigned int u32;

static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

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

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

/* substring search; nocase: ASCII case-insensitive */
static int contains(const char *hay, long n, const char *needle, int nocase)
{
    long m = len(needle);
    for (long i = 0; i + m <= n; i++) {
        long j = 0;
        while (j < m && (nocase ? lower(hay[i + j]) == lower(needle[j]) : hay[i + j] == needle[j]))
            j++;
        if (j == m)
            return 1;
    }
    return 0;
}

static void cpuid(u32 leaf, u32 sub, u32 r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

/* the whole file (up to cap-1 bytes), NUL terminated; -1 if it cannot be opened */
static long slurp(const char *path, char *buf, long cap)
{
    long fd = sys3(2, (long)path, 0, 0);
    long n = 0, k;
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

static void regs_str(char *out, const u32 *regs, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = (char)(regs[i] >> (8 * k));
    out[4 * n] = 0;
}

/* 1. CPUID.1:ECX[31], the hypervisor-present bit */
static void check_hv_bit(void)
{
    u32 r[4];
    cpuid(1, 0, r);
    report("cpuid_hypervisor_bit", (int)(r[2] >> 31), "");
}

/* 2. hypervisor vendor leaf 0x40000000: known vendor signatures */
static const char *const hv_vendors[] = {
    "VMwareVMware", "Microsoft Hv", "KVMKVMKVM", "XenVMMXenVMM", "prl hyperv  ", " lrpepyh  vr",
    "VBoxVBoxVBox", "TCGTCGTCGTCG", "bhyve bhyve ", "ACRNACRNACRN", "QNXQVMBSQG", "EmuEmuEmuEmu",
    "Jailhouse", "SRESRESRESR", "UnisysSpar64", "LKVMLKVMLKVM", 0};

static void check_hv_vendor(void)
{
    u32 r[4], v[3];
    char s[16];
    int hit = 0;
    cpuid(0x40000000, 0, r);
    v[0] = r[1];
    v[1] = r[2];
    v[2] = r[3];
    regs_str(s, v, 3);
    for (int i = 0; hv_vendors[i]; i++)
        if (eq(s, hv_vendors[i], len(hv_vendors[i])))
            hit = 1;
    report("cpuid_hypervisor_vendor", hit, hit ? s : "");
}

/* 3. CPU vendor string: a real one */
static void check_vendor(void)
{
    static const char *const real[] = {"GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls",
                                       "  Shanghai  ", 0};
    u32 r[4], v[3];
    char s[16];
    int ok = 0;
    cpuid(0, 0, r);
    v[0] = r[1];
    v[1] = r[3];
    v[2] = r[2];
    regs_str(s, v, 3);
    for (int i = 0; real[i]; i++)
        if (eq(s, real[i], 12))
            ok = 1;
    report("cpuid_vendor", !ok, s);
}

/* 4. brand string (0x80000002-4): present, and no virtual CPU model names */
static void check_brand(void)
{
    static const char *const bad[] = {"QEMU", "Virtual", "KVM", "VMware", "Xen", "Bochs", "Emu", "TCG", 0};
    u32 r[4], all[12];
    char s[52];
    int hit = 0;
    cpuid(0x80000000, 0, r);
    if (r[0] < 0x80000004) {
        report("cpuid_brand_string", 1, "no brand leaves");
        return;
    }
    for (int i = 0; i < 3; i++) {
        cpuid(0x80000002 + i, 0, r);
        for (int k = 0; k < 4; k++)
            all[4 * i + k] = r[k];
    }
    regs_str(s, all, 12);
    if (!s[0])
        hit = 1;
    for (int i = 0; bad[i]; i++)
        if (contains(s, len(s), bad[i], 0))
            hit = 1;
    report("cpuid_brand_string", hit, s);
}

/* 5. RDTSC around CPUID (a VM exit makes CPUID take thousands of cycles):
 * average over 100 runs, the median of 11 such averages against 1000 cycles;
 * a zero average (a TSC that does not move) counts as detected too */
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

static void check_rdtsc_cpuid(void)
{
    u64 avg[11];
    u32 r[4];
    for (int k = 0; k < 11; k++) {
        u64 sum = 0;
        for (int i = 0; i < 100; i++) {
            u64 t1 = rdtsc();
            cpuid(0, 0, r);
            u64 t2 = rdtsc();
            sum += t2 - t1;
        }
        avg[k] = sum / 100;
    }
    u64 m = median(avg, 11);
    char d[32];
    char *p = d;
    const char *pre = "avg cycles ";
    while (*pre)
        *p++ = *pre++;
    u64 v = m;
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        *p++ = tmp[--i];
    *p = 0;
    report("rdtsc_cpuid_exit", m >= 1000 || m == 0, d);
}

/* 6. consecutive RDTSC deltas (pafish rdtsc_diff): a trapped RDTSC takes
 * far longer than the ~25-40 cycles of a real one; threshold 750 */
static void check_rdtsc_delta(void)
{
    u64 avg[11];
    for (int k = 0; k < 11; k++) {
        u64 sum = 0;
        for (int i = 0; i < 100; i++) {
            u64 t1 = rdtsc();
            u64 t2 = rdtsc();
            sum += t2 - t1;
        }
        avg[k] = sum / 100;
    }
    u64 m = median(avg, 11);
    report("rdtsc_consecutive", m >= 750 || m == 0, "");
}

static char buf[1 << 16];

/* 7. the "hypervisor" flag in /proc/cpuinfo */
static void check_cpuinfo(void)
{
    long n = slurp("/proc/cpuinfo", buf, sizeof buf);
    int hit = 0;
    if (n > 0) {
        /* the flags lines only */
        for (long i = 0; i < n; i++) {
            if ((i == 0 || buf[i - 1] == '\n') && eq(buf + i, "flags", 5)) {
                long e = i;
                while (e < n && buf[e] != '\n')
                    e++;
                if (contains(buf + i, e - i, " hypervisor", 0))
                    hit = 1;
            }
        }
    }
    report("cpuinfo_hypervisor_flag", hit, n < 0 ? "unreadable" : "");
}

/* 8. DMI strings naming a virtual machine */
static void check_dmi(void)
{
    static const char *const files[] = {"sys_vendor", "product_name", "board_vendor", "bios_vendor",
                                        "board_name", "bios_version", "product_version", "chassis_vendor", 0};
    static const char *const nocase[] = {"VMware", "VirtualBox", "innotek", "QEMU", "KVM", "Xen", "Bochs",
                                         "Parallels", "Virtual Machine", "HVM domU", "Amazon EC2", "Google Compute",
                                         "OpenStack", "bhyve", 0};
    char path[64];
    int hit = 0;
    for (int f = 0; files[f]; f++) {
        const char *pre = "/sys/class/dmi/id/";
        char *p = path;
        while (*pre)
            *p++ = *pre++;
        for (const char *q = files[f]; *q;)
            *p++ = *q++;
        *p = 0;
        long n = slurp(path, buf, 256);
        if (n <= 0)
            continue;
        for (int i = 0; nocase[i]; i++)
            if (contains(buf, n, nocase[i], 1))
                hit = 1;
        if (contains(buf, n, "emu", 0))
            hit = 1;
        if (hit) {
            report("dmi_strings", 1, files[f]);
            return;
        }
    }
    report("dmi_strings", 0, "");
}

/* 9. the kernel release names a hypervisor or an emulator (uname -r) */
static void check_uname(void)
{
    static const char *const bad[] = {"emu", "kvm", "xen", "qemu", "vbox", "hyperv", "vmware", 0};
    static char u[6 * 65];
    int hit = 0;
    sys3(63, (long)u, 0, 0);
    const char *rel = u + 2 * 65;
    for (int i = 0; bad[i]; i++)
        if (contains(rel, len(rel), bad[i], 1))
            hit = 1;
    report("kernel_release", hit, rel);
}

/* 10. descriptor-table registers (the "Red Pill" / "No Pill" / ScoopyNG
   family, adapted to 64-bit Linux): SIDT/SGDT at ring 3 give addresses in the
   kernel half on every Linux (the kernel's own tables, or UMIP's fixed
   stand-ins), STR the TSS selector 0x40, SMSW a CR0 with PE and PG; an
   emulator that never set them up shows zeros */
static void check_descriptor_tables(void)
{
    struct __attribute__((packed)) { unsigned short limit; u64 base; } idt = {0, 0}, gdt = {0, 0};
    unsigned short tr = 0xffff;
    u64 msw = 0;
    __asm__ volatile("sidt %0" : "=m"(idt));
    __asm__ volatile("sgdt %0" : "=m"(gdt));
    __asm__ volatile("str %0" : "=m"(tr));
    __asm__ volatile("smsw %0" : "=r"(msw));
    int hit = idt.base < 0xffff800000000000ULL || gdt.base < 0xffff800000000000ULL || tr != 0x40 ||
              (msw & 0x80000001ULL) != 0x80000001ULL;
    report("descriptor_tables", hit, "");
}

void __attribute__((used)) cmain(long *sp)
{
    (void)sp;
    check_hv_bit();
    check_hv_vendor();
    check_vendor();
    check_brand();
    check_rdtsc_cpuid();
    check_rdtsc_delta();
    check_cpuinfo();
    check_dmi();
    check_uname();
    check_descriptor_tables();
    say("detections: ");
    say_num((u64)detections);
    say("\n");
    sys3(231, detections, 0, 0);
    for (;;)
        ;
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n");
