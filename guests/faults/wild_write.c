/* Writes to an unmapped address: the guest must die of SIGSEGV. */
#include "sys.h"
void _start(void)
{
    say("before\n");
    *(volatile long *)0x10 = 1;
    say("after\n");
    leave(0);
}
