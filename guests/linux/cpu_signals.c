/* CPU exceptions as Linux reports them to a SA_SIGINFO handler (signal,
 * si_code, si_addr, trapno, err, RIP), the x87 stack across a signal
 * handler, TF single-stepping (one SIGTRAP per instruction), and the i386
 * system-call ABI (int 0x80) from 64-bit code. Addresses are printed
 * relative to labels, so the output is the same natively and under emu. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile int got_sig, got_code;
static volatile long got_addr, got_rip, got_trapno, got_err;

static void on_fault(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = (long)si->si_addr;
    got_rip = uc->uc_mcontext.gregs[REG_RIP];
    got_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
    got_err = uc->uc_mcontext.gregs[REG_ERR];
    siglongjmp(env, 1);
}

extern char f_div[], f_ud[], f_int3[], f_int3_end[], f_icebp_end[], f_int41[], f_hlt[], f_wr[], f_rd[], f_kern[],
    f_sse[], f_x87[];
static char *page_ro, *page_none;

static void report(const char *name, long addr_base, long rip_base) {
    printf("%-12s sig %2d code %3d addr %s trapno %2ld err %#lx rip %s\n", name, got_sig, got_code,
           got_addr == addr_base ? "expected" : got_addr == 0 ? "0" : "OTHER", got_trapno, got_err,
           got_rip == rip_base ? "expected" : "OTHER");
}

#define TRY(name, asm_body, addr_base, rip_base)                 \
    do {                                                         \
        got_sig = 0;                                             \
        if (sigsetjmp(env, 1) == 0) {                            \
            asm volatile(asm_body ::: "memory", "rax", "rdx", "rcx"); \
            printf("%-12s no signal\n", name);                   \
        } else                                                   \
            report(name, (long)(addr_base), (long)(rip_base));   \
    } while (0)

extern float one, zero;
extern unsigned csr;
static void exceptions(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, 0);
    page_ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page_none = mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TRY("divide", "xor %%ecx,%%ecx; mov $1,%%eax; xor %%edx,%%edx\n.globl f_div\nf_div: div %%ecx", f_div, f_div);
    TRY("ud2", ".globl f_ud\nf_ud: ud2", f_ud, f_ud);
    TRY("int3", ".globl f_int3\nf_int3: int3\n.globl f_int3_end\nf_int3_end: nop", 0, f_int3_end);
    TRY("icebp", ".byte 0xf1\n.globl f_icebp_end\nf_icebp_end: nop", f_icebp_end, f_icebp_end);
    TRY("int 0x41", ".globl f_int41\nf_int41: int $0x41", 0, f_int41);
    TRY("hlt", ".globl f_hlt\nf_hlt: hlt", 0, f_hlt);
    TRY("write ro", "mov page_ro(%%rip),%%rax\n.globl f_wr\nf_wr: movb $1,(%%rax)", page_ro, f_wr);
    TRY("read none", "mov page_none(%%rip),%%rax\n.globl f_rd\nf_rd: movb (%%rax),%%al", page_none, f_rd);
    TRY("write unmapped", "mov $0x1000,%%eax\nmovb $1,(%%rax)", 0x1000, got_rip);
    TRY("kernel addr", "movabs $0xffff888000000000,%%rax\n.globl f_kern\nf_kern: movb (%%rax),%%al",
        0xffff888000000000UL, f_kern);
    TRY("noncanonical", "movabs $0x8000000000000000,%%rax\nmovb (%%rax),%%al", 0, got_rip);
    /* csr: divide-by-zero unmasked */
    got_sig = 0;
    if (sigsetjmp(env, 1) == 0) {
        asm volatile("ldmxcsr csr(%%rip)\nmovss one(%%rip),%%xmm0\n.globl f_sse\nf_sse: divss zero(%%rip),%%xmm0"
                     ::: "memory", "xmm0");
        printf("sse divide   no signal\n");
    } else
        report("sse divide", (long)f_sse, (long)f_sse);
    unsigned normal = 0x1f80;
    asm volatile("ldmxcsr %0" :: "m"(normal));
}

float one = 1.0f, zero = 0.0f;
unsigned csr = 0x1f80 & ~0x200;

/* ---- the x87 stack across a handler that uses the x87 itself ---- */
static volatile double in_handler;
static void on_usr1(int sig) {
    double x = 2.0;
    asm volatile("fldpi\nfldl %1\nfmulp\nfstpl %0" : "=m"(x) : "m"(x));
    in_handler = x;
    (void)sig;
}

static void x87_across_handler(void) {
    signal(SIGUSR1, on_usr1);
    double a = 1.5, b = -2.25, r1, r2, r3;
    unsigned short cw = 0x27f, cw_after;       /* 53-bit precision: kept across the handler */
    asm volatile("fldcw %0\nfldl %1\nfldl %2\nfldz" :: "m"(cw), "m"(a), "m"(b));
    raise(SIGUSR1);
    asm volatile("fstpl %0\nfstpl %1\nfstpl %2\nfnstcw %3" : "=m"(r1), "=m"(r2), "=m"(r3), "=m"(cw_after));
    printf("x87 across handler: %g %g %g cw %#x, handler computed %.6f\n", r1, r2, r3, cw_after, in_handler);
    unsigned short def = 0x37f;
    asm volatile("fldcw %0" :: "m"(def));
}

/* ---- TF single-step ---- */
static volatile int traps, first_code;
static volatile long trap_rips[16];
extern char f_step[];
static void on_trap(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    if (traps < 16)
        trap_rips[traps] = uc->uc_mcontext.gregs[REG_RIP] - (long)f_step;
    if (!traps)
        first_code = si->si_code;
    traps++;
    (void)sig;
}

static void single_step(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &sa, 0);
    asm volatile("pushfq\norq $0x100,(%%rsp)\npopfq\n.globl f_step\nf_step: nop\nnop\nmov $5,%%eax\nadd %%eax,%%eax\n"
                 "pushfq\nandq $~0x100,(%%rsp)\npopfq\nnop" ::: "rax", "memory", "cc");
    printf("single-step: %d traps, si_code %d, at", traps, first_code);
    for (int i = 0; i < traps && i < 16; i++)
        printf(" +%ld", trap_rips[i]);
    printf("\n");
}

/* ---- int 0x80 ---- */
static const char msg[] = "int 0x80 write\n";
static void int80(void) {
    long r;
    fflush(stdout);
    asm volatile("int $0x80" : "=a"(r) : "a"(4), "b"(1), "c"(msg), "d"(sizeof msg - 1) : "memory");
    printf("int 0x80 write -> %ld\n", r);
    asm volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");
    printf("int 0x80 getpid matches: %s\n", r == getpid() ? "yes" : "no");
    asm volatile("int $0x80" : "=a"(r) : "a"(1000) : "memory");
    printf("int 0x80 unknown -> %ld\n", r);
}

int main(void) {
    setvbuf(stdout, 0, _IOLBF, 0);
    exceptions();
    x87_across_handler();
    single_step();
    int80();
    fflush(stdout);
    asm volatile("int $0x80" :: "a"(1), "b"(42));     /* i386 exit(42) */
    return 0;
}
