/* Page faults of every kind a program takes (under emu most are resolved in
   the core, core/demand.pxi): demand-zero anonymous memory, a large
   initialised .data section mapped lazily, copy-on-write after fork, guard
   pages (PROT_NONE), writes to read-only memory, unmapped memory, mprotect
   after pages were populated, MAP_SHARED and MAP_PRIVATE file mappings. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define BIG (256 << 10)

/* 256 KiB of initialised data: only the pages read below are ever copied in */
static unsigned int table[BIG / 4] = {[0] = 11, [1000] = 22, [BIG / 8] = 33, [BIG / 4 - 1] = 44};
static char zeros[1 << 20];     /* .bss */

static sigjmp_buf env;
static volatile void *fault_addr;
static volatile int fault_code;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    siglongjmp(env, 1);
}

/* 1 when touching p (a read, or a write of v) faults; the fault's address must be p */
static int faults(volatile char *p, int write)
{
    fault_addr = 0;
    if (sigsetjmp(env, 1) == 0) {
        if (write)
            *p = 1;
        else
            (void)*p;
        return 0;
    }
    if (fault_addr != (void *)p)
        printf("wrong fault address %p for %p\n", (void *)fault_addr, (void *)p);
    return 1;
}

static const char *code_name(int c)
{
    return c == SEGV_MAPERR ? "MAPERR" : c == SEGV_ACCERR ? "ACCERR" : "other";
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);

    /* lazily mapped .data and .bss */
    printf("data: %u %u %u %u, bss %d\n", table[0], table[1000], table[BIG / 8], table[BIG / 4 - 1],
           zeros[12345] + zeros[sizeof zeros - 1]);

    /* demand-zero: reads see zeros, writes stick, page by page */
    size_t n = 8 << 20;
    unsigned char *a = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i += 3 * PAGE)
        sum += a[i + 7];
    for (size_t i = 0; i < n; i += PAGE)
        a[i + (i / PAGE) % PAGE] = (unsigned char)(i / PAGE);
    for (size_t i = 0; i < n; i += PAGE)
        sum += a[i + (i / PAGE) % PAGE] + a[(i + 1000) % n];
    printf("demand-zero: sum %lu\n", sum);

    /* copy-on-write after fork: each side keeps its own pages, touched
       before the fork or first touched after it */
    int fd[2];
    if (pipe(fd) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        unsigned long s = 0;
        for (size_t i = 0; i < n; i += PAGE) {
            s += a[i + (i / PAGE) % PAGE];
            a[i + (i / PAGE) % PAGE] = 0xee;
        }
        unsigned char *b = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (int i = 0; i < 64; i++)
            b[i * PAGE] = (unsigned char)i;
        table[2000] = 77;
        s += b[63 * PAGE] + table[2000];
        if (write(fd[1], &s, sizeof s) != sizeof s)
            _exit(1);
        _exit(0);
    }
    unsigned long child_sum = 0;
    if (read(fd[0], &child_sum, sizeof child_sum) != sizeof child_sum)
        return 1;
    waitpid(pid, NULL, 0);
    unsigned long mine = 0;
    for (size_t i = 0; i < n; i += PAGE)
        mine += a[i + (i / PAGE) % PAGE];
    printf("fork: child saw %lu, parent still has %lu, table[2000] %u\n", child_sum, mine, table[2000]);

    /* guard pages, read-only and unmapped memory */
    char *g = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(g + PAGE, PAGE, PROT_NONE);
    g[0] = 1;
    g[2 * PAGE] = 2;
    int f1 = faults(g + PAGE + 8, 0);
    int c1 = fault_code;
    int f2 = faults(g + PAGE, 1);
    printf("guard page: read faults %d (%s), write faults %d, neighbours %d %d\n", f1, code_name(c1), f2, g[0],
           g[2 * PAGE]);
    char *ro = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int f3 = faults(ro + 5, 0);
    int f4 = faults(ro + PAGE + 5, 1);
    int c4 = fault_code;
    printf("read-only: read faults %d (reads %d), write faults %d (%s)\n", f3, ro[5], f4, code_name(c4));
    char *u = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    u[0] = 3;
    munmap(u, 4 * PAGE);
    int f5 = faults(u, 0);
    int c5 = fault_code;
    int f6 = faults(u + 3 * PAGE, 1);
    printf("unmapped: faults %d (%s) %d\n", f5, code_name(c5), f6);
    /* mprotect after the core populated pages */
    char *m = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 4; i++)
        m[i * PAGE] = (char)(i + 1);
    mprotect(m, 2 * PAGE, PROT_READ);
    int f7 = faults(m, 1), f8 = faults(m + 2 * PAGE, 1);
    mprotect(m, 4 * PAGE, PROT_NONE);
    int f9 = faults(m + 3 * PAGE, 0);
    mprotect(m, 4 * PAGE, PROT_READ | PROT_WRITE);
    printf("mprotect: %d %d %d, kept %d %d %d %d\n", f7, f8, f9, m[0], m[PAGE], m[2 * PAGE], m[3 * PAGE]);

    /* file mappings: MAP_SHARED writes reach the file, MAP_PRIVATE ones do not */
    char path[] = "/tmp/emu-pagefaults-XXXXXX";
    int ffd = mkstemp(path);
    if (ffd < 0)
        return 1;
    unlink(path);
    char buf[3 * PAGE];
    for (int i = 0; i < (int)sizeof buf; i++)
        buf[i] = (char)('a' + i % 26);
    if (write(ffd, buf, sizeof buf) != sizeof buf)
        return 1;
    char *sh = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ffd, 0);
    char *pv = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, ffd, 0);
    printf("file: shared %c%c private %c%c\n", sh[0], sh[PAGE + 1], pv[2], pv[2 * PAGE + 3]);
    sh[PAGE + 1] = 'S';
    pv[2] = 'P';
    msync(sh, 3 * PAGE, MS_SYNC);
    char back[4] = {0};
    pread(ffd, back, 3, PAGE);
    char back2[4] = {0};
    pread(ffd, back2, 3, 0);
    printf("file after writes: %s %s, private sees %c\n", back, back2, pv[2]);
    munmap(sh, 3 * PAGE);
    munmap(pv, 3 * PAGE);
    close(ffd);
    return 0;
}
