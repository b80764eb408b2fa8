/* Computes for ever (tests/test_gdb.py interrupts it with gdb's Ctrl-C). */
volatile unsigned long spins;

void _start(void)
{
    for (;;)
        spins = spins * 3 + 1;
}
