/* A translation must not outlive mprotect: an instruction that straddles a
   page boundary runs once; then its second page is made PROT_NONE and it
   runs again. The fetch must fault at that instruction (RIP = its address,
   si_addr = the protected page), as on hardware. Prints what it saw. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

static sigjmp_buf jb;
static volatile uintptr_t fault_addr, fault_rip;

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    fault_addr = (uintptr_t)si->si_addr;
    fault_rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    siglongjmp(jb, 1);
}

int main(void) {
    uint8_t *p = mmap(0, 8192, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *insn = p + 4096 - 5;           /* movabs rax, imm64 (10 bytes): 5 on each page */
    static const uint8_t code[] = {0x48, 0xB8, 1, 2, 3, 4, 5, 6, 7, 8, 0xC3};
    struct sigaction sa;
    memcpy(insn, code, sizeof code);
    uint64_t (*fn)(void) = (uint64_t (*)(void))insn;
    for (int i = 0; i < 3; i++)             /* run it enough to be translated and cached */
        printf("run %d: %#llx\n", i, (unsigned long long)fn());
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    mprotect(p + 4096, 4096, PROT_NONE);
    if (sigsetjmp(jb, 1) == 0) {
        printf("after mprotect: %#llx (no fault!)\n", (unsigned long long)fn());
    } else {
        printf("fault: si_addr = page2%+ld, rip = insn%+ld\n", (long)(fault_addr - (uintptr_t)(p + 4096)),
               (long)(fault_rip - (uintptr_t)insn));
    }
    mprotect(p + 4096, 4096, PROT_READ | PROT_EXEC);
    printf("again: %#llx\n", (unsigned long long)fn());
    return 0;
}
