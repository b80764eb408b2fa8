/* Minimal system-call wrappers for freestanding guests. */
static inline long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
static inline void say(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    sys3(1, 1, (long)s, n);
}
static inline void __attribute__((noreturn)) leave(int status)
{
    sys3(231, status, 0, 0);
    for (;;)
        ;
}
