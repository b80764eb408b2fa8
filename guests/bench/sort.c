/* Sorting: quicksort (median of three, insertion sort for short runs) and
 * heapsort on arrays of pseudo-random 32-bit keys, REPS rounds with fresh
 * keys. Each result is checked to be ordered and folded into a checksum. */
#include "../include/rt.h"

#ifndef N
#define N 150000
#endif
#ifndef REPS
#define REPS 6
#endif

static u32 a[N];

static void insertion(u32 *v, i64 lo, i64 hi)
{
    for (i64 i = lo + 1; i <= hi; i++) {
        u32 x = v[i];
        i64 j = i - 1;
        while (j >= lo && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

static inline void swap(u32 *v, i64 i, i64 j)
{
    u32 t = v[i];
    v[i] = v[j];
    v[j] = t;
}

static void quicksort(u32 *v, i64 lo, i64 hi)
{
    while (hi - lo > 16) {
        i64 mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo]) swap(v, mid, lo);
        if (v[hi] < v[lo]) swap(v, hi, lo);
        if (v[hi] < v[mid]) swap(v, hi, mid);
        u32 pivot = v[mid];
        i64 i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                swap(v, i, j);
                i++;
                j--;
            }
        }
        /* recurse into the smaller half, loop on the larger */
        if (j - lo < hi - i) {
            quicksort(v, lo, j);
            lo = i;
        } else {
            quicksort(v, i, hi);
            hi = j;
        }
    }
    insertion(v, lo, hi);
}

static void sift(u32 *v, u64 root, u64 n)
{
    u32 x = v[root];
    for (;;) {
        u64 child = 2 * root + 1;
        if (child >= n)
            break;
        if (child + 1 < n && v[child + 1] > v[child])
            child++;
        if (v[child] <= x)
            break;
        v[root] = v[child];
        root = child;
    }
    v[root] = x;
}

static void heapsort(u32 *v, u64 n)
{
    for (u64 i = n / 2; i-- > 0;)
        sift(v, i, n);
    for (u64 end = n - 1; end > 0; end--) {
        swap(v, 0, end);
        sift(v, 0, end);
    }
}

int main(void)
{
    u64 check = 0;
    int ordered = 1;
    rng_seed(0xC0FFEE);
    for (int rep = 0; rep < REPS; rep++) {
        for (u64 i = 0; i < N; i++)
            a[i] = (u32)(rng_next() >> 32);
        if (rep & 1)
            heapsort(a, N);
        else
            quicksort(a, 0, N - 1);
        for (u64 i = 0; i < N; i++) {
            if (i && a[i - 1] > a[i])
                ordered = 0;
            check = check * 31 + a[i];
        }
    }
    out_str("sort n=");
    out_dec(N);
    out_str(" reps=");
    out_dec(REPS);
    out_str(" check=");
    out_hex(check, 16);
    out_str(ordered ? " sorted\n" : " UNSORTED\n");
    out_flush();
    return ordered ? 0 : 1;
}
