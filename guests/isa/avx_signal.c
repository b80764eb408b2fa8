/* YMM registers survive signal delivery: the main loop keeps a value in
   ymm8-ymm15 (asm) while a handler that clobbers every YMM register runs
   from SIGALRM/raise; the kernel (and emu) save and restore the AVX state
   in the signal frame. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile int hits;

static void handler(int sig) {
    (void)sig;
    __asm__ volatile("vpcmpeqd %%ymm0, %%ymm0, %%ymm0\n\t"
                     "vmovdqa %%ymm0, %%ymm8\n\tvmovdqa %%ymm0, %%ymm9\n\tvmovdqa %%ymm0, %%ymm15\n\t"
                     "vxorps %%ymm10, %%ymm10, %%ymm10" ::: "xmm0", "xmm8", "xmm9", "xmm10", "xmm15");
    hits++;
}

int main(void) {
    uint8_t in[32], out[4][32];
    for (int i = 0; i < 32; i++) in[i] = (uint8_t)(i * 7 + 1);
    long pid = getpid(), ret;
    signal(SIGUSR1, handler);
    /* one asm block: nothing between setting the registers and reading them
       back but kill(2) itself, whose signal runs the handler on the way back */
    __asm__ volatile("vmovdqu %5, %%ymm8\n\tvpaddb %%ymm8, %%ymm8, %%ymm9\n\t"
                     "vpaddb %%ymm9, %%ymm8, %%ymm10\n\tvpsubb %%ymm8, %%ymm10, %%ymm15\n\t"
                     "syscall\n\t"
                     "vmovdqu %%ymm8, %0\n\tvmovdqu %%ymm9, %1\n\tvmovdqu %%ymm10, %2\n\tvmovdqu %%ymm15, %3"
                     : "=m"(out[0]), "=m"(out[1]), "=m"(out[2]), "=m"(out[3]), "=a"(ret)
                     : "m"(in), "a"((long)SYS_kill), "D"(pid), "S"((long)SIGUSR1)
                     : "rcx", "r11", "memory", "xmm8", "xmm9", "xmm10", "xmm15");
    (void)ret;
    int ok = hits == 1;
    for (int i = 0; i < 32; i++)
        ok &= out[0][i] == in[i] && out[1][i] == (uint8_t)(2 * in[i]) && out[2][i] == (uint8_t)(3 * in[i])
              && out[3][i] == (uint8_t)(2 * in[i]);
    printf("handler ran %d time(s); ymm8-10,15 intact: %s\n", hits, ok ? "yes" : "NO");
    return !ok;
}
