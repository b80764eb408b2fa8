/* surfaces: dumps every machine surface a Linux program can read, for
 * tests/test_stealth.py to hold against the machine template (and against
 * the host: no host value may show).
 *
 *   cpuid LEAF SUB EAX EBX ECX EDX     every leaf up to the maximum basic
 *                                      and extended ones, with sub-leaves
 *   uname SYSNAME|RELEASE|VERSION|MACHINE
 *   affinity MASK                      sched_getaffinity
 *   auxv HWCAP HWCAP2 PLATFORM         from the initial stack
 *   file PATH LEN / contents           each argument naming a file
 *   dir PATH / names                   each argument starting with "d:"
 *
 * Freestanding like antivm.c. */

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

static void out(const char *s, long n) { sys3(1, 1, (long)s, n); }
static void say(const char *s) { out(s, len(s)); }

static void hex(u64 v)
{
    char b[20];
    int i = 19;
    b[i] = 0;
    do {
        b[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    b[--i] = 'x';
    b[--i] = '0';
    say(b + i);
}

static void cpuid(u32 leaf, u32 sub, u32 r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static void dump_leaf(u32 leaf, u32 sub)
{
    u32 r[4];
    cpuid(leaf, sub, r);
    say("cpuid ");
    hex(leaf);
    say(" ");
    hex(sub);
    for (int i = 0; i < 4; i++) {
        say(" ");
        hex(r[i]);
    }
    say("\n");
}

static void dump_cpuid(void)
{
    u32 r[4];
    cpuid(0, 0, r);
    u32 max = r[0];
    for (u32 l = 0; l <= max && l < 0x40; l++) {
        u32 subs = (l == 4 || l == 0xB || l == 0xD || l == 7) ? 5 : 1;
        for (u32 s = 0; s < subs; s++)
            dump_leaf(l, s);
    }
    dump_leaf(0x40000000, 0);
    cpuid(0x80000000, 0, r);
    u32 emax = r[0];
    for (u32 l = 0x80000000; l <= emax && l < 0x80000040; l++)
        dump_leaf(l, 0);
}

static char buf[1 << 16];

static void dump_file(const char *path)
{
    long fd = sys3(2, (long)path, 0, 0), n = 0, k;
    say("file ");
    say(path);
    if (fd < 0) {
        say(" -1\n");
        return;
    }
    while (n < (long)sizeof buf && (k = sys3(0, fd, (long)(buf + n), sizeof buf - n)) > 0)
        n += k;
    sys3(3, fd, 0, 0);
    say(" ");
    hex((u64)n);
    say("\n");
    out(buf, n);
    say("\n");
}

static void dump_dir(const char *path)
{
    long fd = sys3(2, (long)path, 0x10000, 0), n;       /* O_DIRECTORY */
    say("dir ");
    say(path);
    say("\n");
    if (fd < 0) {
        say("-1\n");
        return;
    }
    while ((n = sys3(217, fd, (long)buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            unsigned short reclen = *(unsigned short *)(buf + off + 16);
            const char *name = buf + off + 19;
            if (!(name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))) {
                say(name);
                say("\n");
            }
            off += reclen;
        }
    }
    sys3(3, fd, 0, 0);
    say("end\n");
}

void __attribute__((used)) cmain(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    while (*envp)
        envp++;
    u64 *aux = (u64 *)(envp + 1);
    u64 hwcap = 0, hwcap2 = 0;
    const char *plat = "";
    for (; aux[0]; aux += 2) {
        if (aux[0] == 16)
            hwcap = aux[1];
        else if (aux[0] == 26)
            hwcap2 = aux[1];
        else if (aux[0] == 15)
            plat = (const char *)aux[1];
    }
    dump_cpuid();
    static char u[6 * 65];
    sys3(63, (long)u, 0, 0);
    say("uname ");
    for (int i = 0; i < 5; i++) {
        if (i == 1)
            continue;                                   /* the host name is the user's to set */
        say(u + 65 * i);
        say("|");
    }
    say("\n");
    u64 mask[16] = {0};
    long r = sys3(204, 0, sizeof mask, (long)mask);
    say("affinity ");
    hex(r > 0 ? mask[0] : 0);
    say("\nauxv ");
    hex(hwcap);
    say(" ");
    hex(hwcap2);
    say(" ");
    say(plat);
    say("\n");
    for (long i = 1; i < argc; i++) {
        if (argv[i][0] == 'd' && argv[i][1] == ':')
            dump_dir(argv[i] + 2);
        else
            dump_file(argv[i]);
    }
    sys3(231, 0, 0, 0);
    for (;;)
        ;
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n");
