/* One file, many views, as Linux keeps them coherent: a store through a
 * MAP_SHARED mapping is what read(2) and a second mapping see at once, a
 * write(2) shows in the mapping, a child process that maps the file itself
 * sees the parent's stores and the parent its; a memfd mapped twice, one
 * writable view and one executable view, runs what the JIT-style writer
 * just stored (and the new code after a rewrite); process-shared futexes
 * and POSIX semaphores (sem_init pshared in shared memory, sem_open in
 * /dev/shm) between processes; /proc/self/mem reads and writes this
 * process's memory (a read-only page too); rseq registers. The output is
 * the same natively and under emu. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void file_views(void) {
    char buf[32] = {0};
    int fd = open("shared.bin", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 8192))
        exit(2);
    char *a = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *b = mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 4096);
    strcpy(a, "stored through a");
    pread(fd, buf, 16, 0);
    printf("read(2) after a store: %s\n", buf);
    strcpy(a + 4096, "second page");
    printf("second mapping sees: %s\n", b);
    pwrite(fd, "WRITTEN", 7, 0);
    printf("mapping after write(2): %.16s\n", a);
    pid_t c = fork();
    if (c == 0) {
        int cfd = open("shared.bin", O_RDWR);
        char *m = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
        printf("child's own mapping sees: %.16s\n", m);
        strcpy(m + 100, "from the child");
        munmap(m, 4096);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("parent sees the child's store: %s\n", a + 100);
    munmap(a, 8192);
    munmap(b, 4096);
    close(fd);
    unlink("shared.bin");
}

typedef int (*fn_t)(void);

static void jit(void) {
    int fd = memfd_create("jit", 0);
    if (fd < 0 || ftruncate(fd, 4096))
        exit(3);
    unsigned char *w = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *x = mmap(0, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    unsigned char code[] = {0xb8, 42, 0, 0, 0, 0xc3};      /* mov eax, 42; ret */
    memcpy(w, code, sizeof code);
    __builtin___clear_cache((char *)x, (char *)x + sizeof code);
    printf("jit: the executable view runs %d\n", ((fn_t)x)());
    w[1] = 43;
    printf("jit: after a rewrite %d\n", ((fn_t)x)());
    munmap(w, 4096);
    munmap(x, 4096);
    close(fd);
}

static long futex(uint32_t *uaddr, int op, uint32_t val) {
    return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

static void futexes(void) {
    uint32_t *word = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sem_t *sem = (sem_t *)(word + 16);
    sem_init(sem, 1, 0);
    pid_t c = fork();
    if (c == 0) {
        usleep(50000);
        __atomic_store_n(word, 1, __ATOMIC_SEQ_CST);
        futex(word, FUTEX_WAKE, 1);
        sem_post(sem);
        _exit(0);
    }
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == 0)
        futex(word, FUTEX_WAIT, 0);
    printf("futex: woken by the other process, word %u\n", *word);
    sem_wait(sem);
    printf("sem_init(pshared): posted by the other process\n");
    waitpid(c, NULL, 0);
    char name[64];
    snprintf(name, sizeof name, "/emu-shared-views-%d", getpid());
    sem_t *named = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
    if (named == SEM_FAILED) {
        printf("sem_open: %s\n", strerror(errno));
        return;
    }
    c = fork();
    if (c == 0) {
        sem_t *mine = sem_open(name, 0);
        usleep(50000);
        sem_post(mine);
        _exit(0);
    }
    sem_wait(named);
    int v = -1;
    sem_getvalue(named, &v);
    printf("sem_open: posted by the other process, value now %d\n", v);
    waitpid(c, NULL, 0);
    sem_close(named);
    sem_unlink(name);
}

static const char rodata[] = "read-only data";

static void proc_mem(void) {
    static char data[] = "writable data";
    char buf[32] = {0};
    int fd = open("/proc/self/mem", O_RDWR);
    if (fd < 0) {
        printf("/proc/self/mem: %s\n", strerror(errno));
        return;
    }
    printf("pread: %zd \"%s\"\n", pread(fd, buf, 13, (off_t)(uintptr_t)data), buf);
    printf("pwrite: %zd, now \"%s\"\n", pwrite(fd, "WRITE", 5, (off_t)(uintptr_t)data), data);
    printf("pwrite to a read-only page: %zd, now \"%s\"\n", pwrite(fd, "FORCE", 5, (off_t)(uintptr_t)rodata),
           rodata);
    lseek(fd, (off_t)(uintptr_t)data, SEEK_SET);
    memset(buf, 0, sizeof buf);
    printf("lseek+read: %zd \"%s\"\n", read(fd, buf, 13), buf);
    errno = 0;
    ssize_t n = pread(fd, buf, 8, 0x1000);
    printf("read at an unmapped address: %zd %s\n", n, strerror(errno));
    close(fd);
}

static void rseq_reg(void) {
    static __attribute__((aligned(32))) struct { uint32_t cpu_id_start, cpu_id; uint64_t cs; uint32_t flags, pad[3]; } r;
    /* libc may have registered the thread already: then EBUSY is as good as 0 */
    long ret = syscall(334, &r, 32, 0, 0x53053053);
    printf("rseq register: %s\n", ret == 0 ? "ok" : errno == EBUSY ? "ok" : errno == EINVAL ? "ok (libc has one)" : strerror(errno));
    errno = 0;
    printf("rseq with a bad length: %s\n", syscall(334, &r, 12, 0, 0) < 0 ? strerror(errno) : "accepted");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    file_views();
    jit();
    futexes();
    proc_mem();
    rseq_reg();
    return 0;
}
