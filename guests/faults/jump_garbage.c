/* Jumps into a non-executable data page: SIGSEGV, not a host crash. */
#include "sys.h"
static char garbage[64] = {0x0f, 0xff, 0xff, 0xff};
void _start(void)
{
    say("jumping\n");
    ((void (*)(void))garbage)();
    leave(0);
}
