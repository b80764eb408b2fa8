/* The program tests/test_gdb.py debugs under `emu run --gdb` and natively
   (the oracle): a loop with a call, a global to watch, floating point for
   the x87/SSE registers. Built with -g -O0 so every variable lives in
   memory where gdb finds it. */
#include <stdio.h>

volatile int counter;
double scale = 1.5;

int square(int x)
{
    return x * x;
}

int main(void)
{
    int total = 0;
    for (int i = 0; i < 3; i++) {
        counter = counter + 1;
        total += square(i);
    }
    double d = total * scale;
    printf("total=%d counter=%d d=%g\n", total, counter, d);
    return total;
}
