/* Reads stdin and a file (argv[1]) and prints their sizes and a hash of
 * both, plus what the system says about itself (uname, pid, the file's
 * size from stat): the outside world a replay log must hold
 * (tests/test_replay.py). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static size_t slurp(int fd, uint64_t *h) {
    unsigned char buf[1000];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return total;
        *h = fnv(*h, buf, (size_t)n);
        total += (size_t)n;
    }
}

int main(int argc, char **argv) {
    uint64_t h = 14695981039346656037ULL;
    size_t in = slurp(0, &h);
    size_t fsz = 0;
    long long st_size = -1;
    if (argc > 1) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) {
            printf("cannot open %s\n", argv[1]);
            return 2;
        }
        struct stat st;
        if (fstat(fd, &st) == 0)
            st_size = (long long)st.st_size;
        fsz = slurp(fd, &h);
        close(fd);
    }
    struct utsname u;
    uname(&u);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h = fnv(h, (const unsigned char *)&ts, sizeof ts);
    printf("stdin %zu bytes, file %zu bytes (stat %lld)\n", in, fsz, st_size);
    printf("hash %016llx\n", (unsigned long long)h);
    printf("machine %s, pid parity %d\n", u.machine, (int)(getpid() & 1));
    fprintf(stderr, "done\n");
    return (int)(h & 7);
}
