/* Hashing: FNV-1a (64-bit) byte by byte, and a 64-bit mixer (the
 * splitmix64 finalizer) folded over the buffer's 64-bit words, REPS rounds
 * each seeded with the previous round's results. */
#include "../include/rt.h"

#ifndef SIZE
#define SIZE (1 << 20)
#endif
#ifndef REPS
#define REPS 24
#endif

static u8 buf[SIZE];

static u64 fnv1a(u64 h, const u8 *p, u64 n)
{
    for (u64 i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3UL;
    }
    return h;
}

static inline u64 mix64(u64 z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
    return z ^ (z >> 31);
}

static u64 mixfold(u64 h, const u8 *p, u64 n)
{
    const u64 *w = (const u64 *)p;
    for (u64 i = 0; i < n / 8; i++)
        h = mix64(h ^ w[i]) + i;
    return h;
}

int main(void)
{
    rng_seed(0xFEEDFACE);
    for (u64 i = 0; i < SIZE; i += 8) {
        u64 v = rng_next();
        for (int k = 0; k < 8; k++)
            buf[i + k] = (u8)(v >> (8 * k));
    }
    u64 f = 0xcbf29ce484222325UL, m = 0;
    for (int rep = 0; rep < REPS; rep++) {
        f = fnv1a(f, buf, SIZE);
        m = mixfold(m ^ f, buf, SIZE);
    }
    out_str("hash size=");
    out_dec(SIZE);
    out_str(" reps=");
    out_dec(REPS);
    out_str(" fnv=");
    out_hex(f, 16);
    out_str(" mix=");
    out_hex(m, 16);
    out_char('\n');
    out_flush();
    return 0;
}
