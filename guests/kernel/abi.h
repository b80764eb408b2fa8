/* Shared between the kernel and its user programs. */
#ifndef ABI_H
#define ABI_H

#define USER_BASE   0x8000000000ULL        /* PML4 slot 1: user space */
#define USER_CODE   USER_BASE              /* program image, read + execute */
#define USER_DATA   (USER_BASE + 0x80000)  /* one page, read + write, no execute */
#define USER_STACK_TOP (USER_BASE + 0x100000)
#define USER_STACK_PAGES 4
#define USER_LIMIT  (USER_BASE + 0x200000)

#define SYS_WRITE  0
#define SYS_EXIT   1
#define SYS_YIELD  2
#define SYS_GETPID 3
#define SYS_SLEEP  4
#define SYS_TICKS  5

/* programs (the argument a process starts with, in RDI) */
#define PROG_A        0     /* prints, yields (SYSCALL) */
#define PROG_B        1     /* prints, sleeps (INT 0x80) */
#define PROG_C        2     /* computes: preempted by the timer */
#define PROG_PING     3     /* bench: yield ping-pong */
#define PROG_INTBENCH 4     /* bench: INT 0x81 round trips */
#define PROG_SYSBENCH 5     /* bench: SYSCALL round trips */
#define PROG_TEST     16    /* + n: isolation test n */

#define N_TESTS 15
#endif
