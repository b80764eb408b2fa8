/* CPU corner cases where the fault, and where it is reported, matter:
 * branches to non-canonical addresses fault at the branch (#GP, RIP at the
 * JMP/CALL/RET, nothing pushed or popped), a non-canonical access through SS
 * is #SS (SIGBUS) and through another segment #GP (SIGSEGV), instructions
 * longer than 15 bytes are #GP even when invalid, and MOV from CS/SS reads
 * Linux's user selectors. Printed relative to labels, so the output is the
 * same natively and under emu. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

static sigjmp_buf env;
static volatile int got_sig, got_code;
static volatile long got_rip, got_trapno, got_err, got_rsp;
long saved_rsp;
long nc_target = 0x0000800000000000L;      /* the first non-canonical address */
static char altstack[65536];

static void on_fault(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    got_sig = sig;
    got_code = si->si_code;
    got_rip = uc->uc_mcontext.gregs[REG_RIP];
    got_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
    got_err = uc->uc_mcontext.gregs[REG_ERR];
    got_rsp = uc->uc_mcontext.gregs[REG_RSP];
    siglongjmp(env, 1);
}

extern char c_jmp[], c_jmpm[], c_call[], c_callm[], c_ret[], c_jcc[], c_push[], c_loadsp[], c_loadbp[], c_loadbx[],
    c_long1[], c_long2[], c_long3[], c_long4[], c_long5[], c_long6[], c_long7[], c_short[], c_pop[];

static void report(const char *name, const char *label) {
    long d = got_rsp - saved_rsp;
    char rsp[32];
    if (got_rsp == nc_target || got_rsp == nc_target + 8)
        snprintf(rsp, sizeof rsp, "non-canonical");
    else if (d > -4096 && d < 4096)
        snprintf(rsp, sizeof rsp, "%+ld", d);
    else
        snprintf(rsp, sizeof rsp, "elsewhere");
    printf("%-10s sig %2d code %3d trapno %2ld err %#lx rip %s rsp %s\n", name, got_sig, got_code, got_trapno,
           got_err, got_rip == (long)label ? "at-insn" : "OTHER", rsp);
}

/* each body saves RSP first; RBX, RBP, R12 are restored by siglongjmp */
#define TRY(name, label, body)                                               \
    do {                                                                     \
        got_sig = 0;                                                         \
        if (sigsetjmp(env, 1) == 0) {                                        \
            asm volatile("mov %%rsp, saved_rsp(%%rip)\n" body                \
                         ::: "memory", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"); \
            printf("%-10s no signal\n", name);                               \
        } else                                                               \
            report(name, label);                                             \
    } while (0)

int main(void) {
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGBUS, &sa, 0);
    sigaction(SIGILL, &sa, 0);

    TRY("jmp-reg", c_jmp, "mov nc_target(%%rip), %%rax\n c_jmp: jmp *%%rax\n");
    TRY("jmp-mem", c_jmpm, "c_jmpm: jmp *nc_target(%%rip)\n");
    TRY("call-reg", c_call, "mov nc_target(%%rip), %%rax\n c_call: call *%%rax\n");
    TRY("call-mem", c_callm, "c_callm: call *nc_target(%%rip)\n");
    TRY("ret", c_ret, "push nc_target(%%rip)\n mov %%rsp, saved_rsp(%%rip)\n c_ret: ret\n");
    TRY("push-nc", c_push, "mov nc_target(%%rip), %%rsp\n add $8, %%rsp\n c_push: push %%rax\n");
    TRY("pop-nc", c_pop, "mov nc_target(%%rip), %%rsp\n c_pop: pop %%rax\n");
    TRY("load-rsp", c_loadsp, "mov nc_target(%%rip), %%rsp\n c_loadsp: mov 8(%%rsp), %%rax\n");
    TRY("load-rbp", c_loadbp, "push %%rbp\n mov %%rsp, saved_rsp(%%rip)\n mov nc_target(%%rip), %%rbp\n"
                              " c_loadbp: mov (%%rbp), %%rax\n");
    TRY("load-rbx", c_loadbx, "push %%rbx\n mov %%rsp, saved_rsp(%%rip)\n mov nc_target(%%rip), %%rbx\n"
                              " c_loadbx: mov (%%rbx), %%rax\n");
    /* 16 bytes: 14 operand-size prefixes and UD2 */
    TRY("long-ud2", c_long1, "c_long1: .byte 0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,"
                             "0x0f,0x0b\n");
    /* 16 bytes: 15 prefixes and NOP */
    TRY("long-nop", c_long2, "c_long2: .byte 0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,"
                             "0x66,0x90\n");
    /* 16 bytes: 15 prefixes and an opcode invalid in 64-bit mode (PUSH ES) */
    TRY("long-inv", c_long3, "c_long3: .byte 0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,"
                             "0x2e,0x06\n");
    /* 20 bytes: 10 prefixes and MOV RAX, imm64 */
    TRY("long-imm", c_long4, "c_long4: .byte 0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,0x2e,"
                             "0x48,0xb8,1,2,3,4,5,6,7,8\n");
    /* 16 bytes: 14 prefixes and 0F 04, an undefined opcode */
    TRY("long-0f", c_long5, "c_long5: .byte 0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,"
                            "0x0f,0x04\n");
    /* 16 bytes: LOCK on a register form (#UD at 15 bytes or fewer) */
    TRY("long-lock", c_long6, "c_long6: .byte 0xf0,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,"
                              "0x01,0xc0\n");
    /* 16 bytes: LEA with a register operand */
    TRY("long-lea", c_long7, "c_long7: .byte 0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,"
                             "0x8d,0xc0\n");
    /* 15 bytes: 13 prefixes and UD2 is #UD */
    TRY("ud2-15", c_short, "c_short: .byte 0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,0x66,"
                           "0x0f,0x0b\n");

    unsigned cs, ssel, ds, es;
    asm volatile("mov %%cs, %0\n mov %%ss, %1\n mov %%ds, %2\n mov %%es, %3" : "=r"(cs), "=r"(ssel), "=r"(ds), "=r"(es));
    printf("selectors cs %#x ss %#x ds %#x es %#x\n", cs, ssel, ds, es);
    unsigned short m16;
    asm volatile("movw %%cs, %0" : "=m"(m16));
    printf("mov cs to memory %#x\n", m16);
    return 0;
}
