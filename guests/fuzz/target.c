/* The function `emu fuzz` tests fuzz (tests/test_fuzz_cli.py): parse() crashes
   on inputs that start with "FUZ!", checked one byte at a time so edge
   coverage leads a fuzzer there; it copies its input with malloc first, so
   every call makes system calls (brk) the snapshot must undo. main() feeds
   it stdin: running the program natively on a crashing input is the oracle. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int parse(const unsigned char *data, size_t n)
{
    unsigned char *d = malloc(n + 1);
    int r = 0;
    memcpy(d, data, n);
    if (n >= 4 && d[0] == 'F') {
        r = 1;
        if (d[1] == 'U') {
            r = 2;
            if (d[2] == 'Z') {
                r = 3;
                if (d[3] == '!')
                    *(volatile int *)16 = r;
            }
        }
    }
    free(d);
    return r;
}

int main(void)
{
    static unsigned char buf[4096];
    ssize_t n = read(0, buf, sizeof buf);
    return parse(buf, n < 0 ? 0 : (size_t)n);
}
