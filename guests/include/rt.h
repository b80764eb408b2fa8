/* A tiny freestanding runtime for emu's guest programs: no libc, raw Linux
 * x86-64 system calls, output through write(2), exit through exit_group(2).
 * Include it in exactly one translation unit (it defines _start). */
#ifndef EMU_GUEST_RT_H
#define EMU_GUEST_RT_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;
typedef int i32;

#define SYS_write 1
#define SYS_exit_group 231

static inline long sys_write(int fd, const void *buf, u64 len)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"((long)SYS_write), "D"((long)fd), "S"(buf), "d"(len)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline __attribute__((noreturn)) void sys_exit_group(int status)
{
    __asm__ volatile("syscall" : : "a"((long)SYS_exit_group), "D"((long)status) : "rcx", "r11", "memory");
    for (;;)
        __asm__ volatile("hlt");
}

int main(void);

/* Entry point: the kernel (or emu's runner) jumps here with RSP pointing at
 * argc. Align the stack as the ABI wants for a call, run main, exit with its
 * return value. */
__asm__(".text\n"
        ".globl _start\n"
        ".type _start, @function\n"
        "_start:\n"
        "    xor %ebp, %ebp\n"
        "    and $-16, %rsp\n"
        "    call main\n"
        "    mov %eax, %edi\n"
        "    mov $231, %eax\n"
        "    syscall\n"
        "    hlt\n");

/* The compiler may still emit calls to these for block copies/clears. */
void *memset(void *d, int c, u64 n)
{
    volatile u8 *p = d;
    while (n--)
        *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, u64 n)
{
    volatile u8 *p = d;
    const u8 *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

/* ---- output: a small line buffer ---- */
static char out_buf[256];
static u32 out_len;

static void out_flush(void)
{
    u32 off = 0;
    while (off < out_len) {
        long k = sys_write(1, out_buf + off, out_len - off);
        if (k <= 0)
            break;
        off += (u32)k;
    }
    out_len = 0;
}

static void out_char(char ch)
{
    if (out_len == sizeof(out_buf))
        out_flush();
    out_buf[out_len++] = ch;
}

static void out_str(const char *s)
{
    while (*s)
        out_char(*s++);
}

static void out_dec(u64 v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        out_char(tmp[--n]);
}

static void out_hex(u64 v, int digits)
{
    static const char hexd[] = "0123456789abcdef";
    out_str("0x");
    for (int i = digits - 1; i >= 0; i--)
        out_char(hexd[(v >> (4 * i)) & 15]);
}

/* ---- a deterministic pseudo-random generator (xorshift64*) ----
 * perf/... and tests/ reproduce it in Python to check results. */
static u64 rng_state;

static void rng_seed(u64 seed)
{
    rng_state = seed ? seed : 0x9e3779b97f4a7c15UL;
}

static u64 rng_next(void)
{
    u64 x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dUL;
}

#endif
