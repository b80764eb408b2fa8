/* Executes UD2: SIGILL. */
#include "sys.h"
void _start(void)
{
    say("ud2\n");
    __asm__ volatile("ud2");
    leave(0);
}
