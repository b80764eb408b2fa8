/* The smallest emu guest: print a greeting through write(2), exit 0. */
#include "../include/rt.h"

int main(void)
{
    static const char msg[] = "Hello from emu!\n";
    sys_write(1, msg, sizeof(msg) - 1);
    return 0;
}
