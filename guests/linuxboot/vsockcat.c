/* vsockcat: the guest side of emu's vsock tests (Debian's busybox has no
 * AF_VSOCK client). Freestanding, raw system calls, no libc.
 *
 *   vsockcat CID PORT    connect; send stdin, shut down writing, print the reply
 *   vsockcat -l PORT     accept one connection; read to its end, send it back
 *                        upper-cased, close
 */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;

static long sc(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

enum { SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_socket = 41, SYS_connect = 42, SYS_accept = 43,
       SYS_shutdown = 48, SYS_bind = 49, SYS_listen = 50, SYS_exit_group = 231 };
enum { AF_VSOCK = 40, SOCK_STREAM = 1, SHUT_WR = 1 };

struct sockaddr_vm { u16 family, reserved; u32 port, cid; unsigned char flags, zero[3]; };

static char buf[65536];

static void die(const char *m, long e)
{
    long n = 0;
    while (m[n]) n++;
    sc(SYS_write, 2, (long)m, n);
    sc(SYS_exit_group, e < 0 ? -e : 1, 0, 0);
}

static u32 num(const char *s)
{
    u32 v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (u32)(*s++ - '0');
    return v;
}

static long readall(int fd, char *p, long cap)
{
    long got = 0, n;
    while (got < cap && (n = sc(SYS_read, fd, (long)(p + got), cap - got)) > 0) got += n;
    return got;
}

static void writeall(int fd, const char *p, long n)
{
    long k;
    while (n > 0 && (k = sc(SYS_write, fd, (long)p, n)) > 0) { p += k; n -= k; }
}

static int run(int argc, char **argv)
{
    struct sockaddr_vm a = {0};
    long s, c, n;
    a.family = AF_VSOCK;
    if (argc == 3 && argv[1][0] == '-' && argv[1][1] == 'l') {
        a.cid = 0xffffffffu;          /* VMADDR_CID_ANY */
        a.port = num(argv[2]);
        s = sc(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
        if (s < 0) die("vsockcat: socket\n", s);
        if ((n = sc(SYS_bind, s, (long)&a, sizeof a)) < 0) die("vsockcat: bind\n", n);
        if ((n = sc(SYS_listen, s, 1, 0)) < 0) die("vsockcat: listen\n", n);
        c = sc(SYS_accept, s, 0, 0);
        if (c < 0) die("vsockcat: accept\n", c);
        n = readall(c, buf, sizeof buf);
        for (long i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] -= 32;
        writeall(c, buf, n);
        sc(SYS_close, c, 0, 0);
        return 0;
    }
    if (argc != 3) die("usage: vsockcat CID PORT | vsockcat -l PORT\n", 2);
    a.cid = num(argv[1]);
    a.port = num(argv[2]);
    s = sc(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0) die("vsockcat: socket\n", s);
    if ((n = sc(SYS_connect, s, (long)&a, sizeof a)) < 0) die("vsockcat: connect\n", n);
    n = readall(0, buf, sizeof buf);
    writeall(s, buf, n);
    sc(SYS_shutdown, s, SHUT_WR, 0);
    while ((n = sc(SYS_read, s, (long)buf, sizeof buf)) > 0) writeall(1, buf, n);
    return 0;
}

__attribute__((used)) static void start_c(long *sp)
{
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    sc(SYS_exit_group, run(argc, argv), 0, 0);
}

__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call start_c\n hlt\n");
