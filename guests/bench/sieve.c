/* Sieve of Eratosthenes over a byte array: counts the primes below N and
 * sums them, REPS times. Prints one line that tests compare with Python. */
#include "../include/rt.h"

#ifndef N
#define N 2000000
#endif
#ifndef REPS
#define REPS 8
#endif

static u8 composite[N];

int main(void)
{
    u64 count = 0, sum = 0, total = 0;
    for (int rep = 0; rep < REPS; rep++) {
        for (u64 i = 0; i < N; i++)
            composite[i] = 0;
        for (u64 i = 2; i * i < N; i++) {
            if (composite[i])
                continue;
            for (u64 j = i * i; j < N; j += i)
                composite[j] = 1;
        }
        count = 0;
        sum = 0;
        for (u64 i = 2; i < N; i++) {
            if (!composite[i]) {
                count++;
                sum += i;
            }
        }
        total += count;
    }
    out_str("sieve n=");
    out_dec(N);
    out_str(" reps=");
    out_dec(REPS);
    out_str(" primes=");
    out_dec(count);
    out_str(" sum=");
    out_dec(sum);
    out_str(" total=");
    out_dec(total);
    out_char('\n');
    out_flush();
    return 0;
}
