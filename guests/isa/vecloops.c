/* Loops GCC vectorises with -O3 -march=x86-64-v3 (AVX2, FMA, BMI): integer
   and floating-point arithmetic, reductions, gathers, shuffles, bit tricks,
   with a checksum of everything printed. The same output natively and in emu. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 4099
static float fa[N], fb[N], fc[N];
static double da[N], db[N];
static int32_t ia[N], ib[N], idx[N];
static uint8_t bytes[N];
static uint64_t h = 1469598103934665603ULL;

static void mix(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ULL; }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20;     /* perf/bench_avx.py runs more */
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        fa[i] = (float)(s >> 8) / 65536.0f - 100.0f;
        fb[i] = (float)(i % 97) * 0.25f + 0.5f;
        da[i] = fa[i] * 1.0000001;
        db[i] = (double)(s % 1000) / 7.0;
        ia[i] = (int32_t)s;
        ib[i] = (int32_t)(s >> 3) - 5000;
        idx[i] = (int32_t)((s >> 5) % N);
        bytes[i] = (uint8_t)(s >> 13);
    }
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < N; i++) fc[i] = fmaf(fa[i], fb[i], fc[i]) * 0.5f;      /* FMA */
        for (int i = 0; i < N; i++) da[i] = da[i] * 0.75 + db[i] / (1.0 + fabs(da[i]));
        for (int i = 0; i < N; i++) ia[i] = (ia[i] >> 3) + ib[i] * (i & 7) - (ia[i] < ib[i] ? ib[i] : ia[i]);
        for (int i = 0; i < N; i++) ib[i] = ia[idx[i]] ^ (ib[i] << (i & 15));      /* gather, variable shift */
        for (int i = 0; i < N; i++) bytes[i] = (uint8_t)(bytes[i] + (bytes[(i * 7) % N] >> 1)) | (i & 1);
    }
    float fsum = 0; double dsum = 0; int64_t isum = 0; unsigned pop = 0; int mx = -2147483647;
    for (int i = 0; i < N; i++) { fsum += fc[i]; dsum += da[i]; isum += ia[i]; mx = ia[i] > mx ? ia[i] : mx; }
    for (int i = 0; i < N; i++) pop += __builtin_popcount((unsigned)ib[i]) + __builtin_ctz((unsigned)ib[i] | 1u << 31);
    mix(fc, sizeof fc); mix(da, sizeof da); mix(ia, sizeof ia); mix(ib, sizeof ib); mix(bytes, sizeof bytes);
    printf("fsum %.6e dsum %.12e isum %lld max %d pop %u\n", fsum, dsum, (long long)isum, mx, pop);
    printf("checksum %016llx\n", (unsigned long long)h);
    printf("sqrt %.17g exp %.17g\n", sqrt(dsum < 0 ? -dsum : dsum), exp(fsum > 50 ? 50 : fsum < -50 ? -50 : fsum));
    return 0;
}
