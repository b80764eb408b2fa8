/* Stores through a bad pointer (tests/test_trace.py: the fault report
   names the instruction). */
void _start(void)
{
    *(volatile int *)0x10 = 1;
    for (;;)
        ;
}
