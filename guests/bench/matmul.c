/* Integer matrix multiply: C = A x B on D x D matrices of 32-bit integers
 * (arithmetic modulo 2^32), i-k-j loop order, REPS rounds where the result
 * feeds the next round's A. Prints a checksum of the last C. */
#include "../include/rt.h"

#ifndef D
#define D 160
#endif
#ifndef REPS
#define REPS 8
#endif

static u32 A[D][D], B[D][D], C[D][D];

int main(void)
{
    rng_seed(0xABCDEF);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            u64 r = rng_next();
            A[i][j] = (u32)(r >> 48);
            B[i][j] = (u32)(r >> 16) & 0xffff;
        }
    for (int rep = 0; rep < REPS; rep++) {
        for (int i = 0; i < D; i++) {
            for (int j = 0; j < D; j++)
                C[i][j] = 0;
            for (int k = 0; k < D; k++) {
                u32 aik = A[i][k];
                for (int j = 0; j < D; j++)
                    C[i][j] += aik * B[k][j];
            }
        }
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
                A[i][j] = C[i][j] ^ (u32)(i + j);
    }
    u64 check = 0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++)
            check = check * 1000003 + C[i][j];
    out_str("matmul d=");
    out_dec(D);
    out_str(" reps=");
    out_dec(REPS);
    out_str(" check=");
    out_hex(check, 16);
    out_char('\n');
    out_flush();
    return 0;
}
