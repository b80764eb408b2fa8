/* Maps a whole file read-only (MAP_PRIVATE) and reads a byte from a few
 * pages spread over it: a huge sparse file must cost only those pages. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    struct stat s;
    if (fd < 0 || fstat(fd, &s))
        return 1;
    unsigned char *m = mmap(0, s.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return 2;
    unsigned sum = 0;
    for (long off = 0; off < s.st_size; off += s.st_size / 8)
        sum += m[off];
    sum += m[s.st_size - 1];
    printf("size %ld sum %u\n", (long)s.st_size, sum);
    return 0;
}
