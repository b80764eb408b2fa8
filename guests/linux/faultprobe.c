/* Reads lines of hex instruction bytes on stdin; runs each from the start of
 * an executable page (registers zeroed but RSP, the bytes followed by INT3)
 * and prints how it ended: the signal, trapno, and the faulting RIP as an
 * offset into the bytes. The same input natively and under emu must print
 * the same lines (tests/test_cpu_corners.py, tools/fuzz.py). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

static sigjmp_buf env;
static volatile int got_sig;
static volatile long got_rip, got_trapno;
static char altstack[65536];
static unsigned char *code;

static void on_fault(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    (void)si;
    got_sig = sig;
    got_rip = uc->uc_mcontext.gregs[REG_RIP];
    got_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
    siglongjmp(env, 1);
}

int main(void) {
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, 0);
    code = mmap(0, 8192, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        unsigned n = 0, b;
        char *p = line;
        int k;
        memset(code, 0xcc, 8192);
        while (n < 64 && sscanf(p, "%2x%n", &b, &k) == 1) {
            code[n++] = (unsigned char)b;
            p += k;
        }
        got_sig = 0;
        if (sigsetjmp(env, 1) == 0) {
            asm volatile("xor %%eax, %%eax\n xor %%ecx, %%ecx\n xor %%edx, %%edx\n xor %%esi, %%esi\n"
                         "xor %%edi, %%edi\n xor %%r8d, %%r8d\n xor %%r9d, %%r9d\n xor %%r10d, %%r10d\n"
                         "xor %%r11d, %%r11d\n call *%0\n"
                         :: "b"(code) : "memory", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11");
            printf("returned\n");
        } else {
            long off = got_rip - (long)code;
            if (off >= 0 && off < 8192)
                printf("sig %d trapno %ld at %+ld\n", got_sig, got_trapno, off);
            else
                printf("sig %d trapno %ld elsewhere\n", got_sig, got_trapno);
        }
        fflush(stdout);
    }
    return 0;
}
