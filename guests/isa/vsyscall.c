/* The legacy vsyscall page: old static binaries call time() at
   0xffffffffff600400 and gettimeofday() at 0xffffffffff600000. */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

int main(void) {
    time_t (*vtime)(time_t *) = (time_t (*)(time_t *))0xffffffffff600400UL;
    int (*vgtod)(struct timeval *, void *) = (int (*)(struct timeval *, void *))0xffffffffff600000UL;
    time_t t1 = 0, t0 = time(0);
    time_t r = vtime(&t1);
    struct timeval tv;
    int k = vgtod(&tv, 0);
    printf("time ok: %d\n", r == t1 && r >= t0 && r - t0 < 5);
    printf("gettimeofday ok: %d\n", k == 0 && tv.tv_sec >= t0 && tv.tv_sec - t0 < 5);
    return 0;
}
