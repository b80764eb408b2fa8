/* Tries every way out of a sandbox or a guest root that we know of; prints
   one line per attempt: "blocked" or "ESCAPED". argv[1]: a directory the
   guest may write; argv[2]: a host file that must stay untouched;
   argv[3]: a host file whose content must stay unreadable ("-" to skip). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

static void report(const char *what, int escaped)
{
    printf("%-40s %s\n", what, escaped ? "ESCAPED" : "blocked");
    failures += escaped;
}

static int try_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0)
        return 0;
    int ok = write(fd, "x", 1) == 1;
    close(fd);
    return ok;
}

static int try_read(const char *path, const char *secret)
{
    char buf[256] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 && strstr(buf, secret) != NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    const char *box = argv[1], *outside = argv[2], *secret_file = argv[3];
    char p[1024], q[1024];

    snprintf(p, sizeof p, "%s/inside.txt", box);
    printf("%-40s %s\n", "write inside", try_write(p) ? "ok" : "FAILED");

    report("write absolute path outside", try_write(outside));
    snprintf(p, sizeof p, "%s/../../../../../../../..%s", box, outside);
    report("write via ..", try_write(p));

    snprintf(p, sizeof p, "%s/abs-link", box);
    symlink(outside, p);
    report("write through absolute symlink", try_write(p));

    snprintf(p, sizeof p, "%s/rel-link", box);
    snprintf(q, sizeof q, "../../../../../../../..%s", outside);
    symlink(q, p);
    report("write through relative symlink", try_write(p));

    snprintf(p, sizeof p, "/proc/self/root%s", outside);
    report("write via /proc/self/root", try_write(p));

    snprintf(p, sizeof p, "%s/inside.txt", box);
    report("rename out", rename(p, outside) == 0);

    snprintf(p, sizeof p, "%s/hardlink", box);
    int linked = link(outside, p) == 0;
    report("hard link to outside file", linked && try_write(p));

    report("truncate outside", truncate(outside, 0) == 0);
    report("chmod outside", chmod(outside, 0777) == 0);
    report("unlink outside", unlink(outside) == 0);
    snprintf(p, sizeof p, "%s.new-dir", outside);
    report("mkdir outside", mkdir(p, 0755) == 0);

    if (strcmp(secret_file, "-") != 0) {
        /* with --root the host's files must be out of reach */
        report("read host file by absolute path", try_read(secret_file, "secret"));
        snprintf(p, sizeof p, "../../../../../../../..%s", secret_file);
        report("read host file via ..", try_read(p, "secret"));
        snprintf(p, sizeof p, "%s/read-link", box);
        symlink(secret_file, p);
        report("read host file via symlink", try_read(p, "secret"));
        snprintf(p, sizeof p, "/proc/self/root%s", secret_file);
        report("read host file via /proc/self/root", try_read(p, "secret"));
    }

    int s = socket(AF_INET, SOCK_STREAM, 0);
    report("open a network socket", s >= 0);
    return failures;
}
