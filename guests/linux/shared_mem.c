/* Memory shared across fork: MAP_SHARED|MAP_ANONYMOUS and a MAP_SHARED file
   mapping; parent and children see each other's writes (a counter bumped
   by several children in turn, a ping-pong through the shared page), while
   MAP_PRIVATE memory stays private to each process. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void wait_child(pid_t pid)
{
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("child %s\n", WIFEXITED(status) ? "failed" : "died");
}

int main(void)
{
    volatile long *shared = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    volatile long *priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED || priv == MAP_FAILED)
        return 1;
    shared[0] = 1;
    shared[512] = 100;         /* the second page, touched before the fork */
    priv[0] = 7;
    for (int i = 0; i < 4; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            shared[0] *= 3;
            shared[512] += i;
            shared[1024] += 10 * (i + 1);   /* the third page, first touched in a child */
            priv[0] = 99;
            _exit(0);
        }
        wait_child(pid);
    }
    printf("anonymous shared: %ld %ld %ld, private: %ld\n", shared[0], shared[512], shared[1024], priv[0]);

    /* ping-pong: the child waits for the parent's value and answers */
    volatile int *flag = (volatile int *)(shared + 256);
    pid_t pid = fork();
    if (pid == 0) {
        while (*flag != 1)
            usleep(100);
        *flag = 2;
        _exit(0);
    }
    *flag = 1;
    while (*flag != 2)
        usleep(100);
    wait_child(pid);
    printf("ping-pong: %d\n", *flag);

    /* a shared mapping of a file: the child's write reaches the file, and the
       parent's unmap of its own (unchanged) copy does not undo it */
    char path[] = "shared_mem.tmp";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 4096) < 0)
        return 2;
    char *f = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (f == MAP_FAILED)
        return 3;
    strcpy(f, "parent");
    pid = fork();
    if (pid == 0) {
        strcpy(f, "written by the child");
        msync(f, 4096, MS_SYNC);
        _exit(0);
    }
    wait_child(pid);
    char buf[32] = {0};
    pread(fd, buf, sizeof buf - 1, 0);
    printf("file after the child's msync: %s\n", buf);
    munmap(f, 4096);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, sizeof buf - 1, 0);
    printf("file after the parent's munmap: %s\n", buf);
    close(fd);
    unlink(path);
    munmap((void *)shared, 3 * 4096);
    return 0;
}
