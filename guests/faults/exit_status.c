/* Exits with status 42 after printing its argument count. */
#include "sys.h"
void __attribute__((used)) cmain(long *sp)
{
    long argc = sp[0];
    char msg[] = "argc=0\n";
    msg[5] = '0' + (char)argc;
    say(msg);
    leave(42);
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n");
