/* fork + pipe + wait, and exec. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child-exec") == 0) {
        printf("exec'd child got %s\n", argc > 2 ? argv[2] : "?");
        return 7;
    }
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        const char msg[] = "message through the pipe";
        write(fds[1], msg, sizeof msg);
        close(fds[1]);
        _exit(5);
    }
    close(fds[1]);
    char buf[100] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf);
    int status;
    waitpid(pid, &status, 0);
    printf("parent read %zd bytes: %s; child exit %d\n", n, buf, WEXITSTATUS(status));

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "child-exec", "hello", (char *)NULL);
        _exit(99);
    }
    waitpid(pid, &status, 0);
    printf("exec child exited %d\n", WEXITSTATUS(status));

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        *(volatile int *)8 = 0;
        _exit(0);
    }
    waitpid(pid, &status, 0);
    printf("crashing child: signaled %d signal %d\n", WIFSIGNALED(status), WTERMSIG(status));
    return 0;
}
