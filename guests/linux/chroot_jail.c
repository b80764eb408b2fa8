/* chroot with Linux's rules: `..` stops at the new root, an absolute
 * symbolic link resolves inside it, while a directory descriptor opened
 * before the chroot, and fchdir to it, still reach outside (chroot changes
 * neither descriptors nor the working directory). Run in an empty working
 * directory; without CAP_SYS_CHROOT it says EPERM and stops. The output is
 * the same natively and under emu. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0)
        exit(2);
    close(fd);
}

static void show(const char *what, int dirfd, const char *path) {
    char buf[64] = {0};
    int fd = openat(dirfd, path, O_RDONLY);
    if (fd < 0) {
        printf("%-34s -> %s\n", what, strerror(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0 && buf[n - 1] == '\n')
        buf[n - 1] = 0;
    printf("%-34s -> \"%s\"\n", what, buf);
}

/* The classic way out for root: fchdir to a descriptor from outside, `..`
 * to the top, chroot(".") there. It reaches the top of what the process can
 * see; under emu that is the emulator's root, and writes stay in the sandbox. */
static int escape(int outside) {
    if (fchdir(outside))
        return 4;
    for (int i = 0; i < 64; i++)
        if (chdir(".."))
            return 5;
    if (chroot("."))
        printf("chroot(.): %s\n", strerror(errno));
    show("escaped: /marker", AT_FDCWD, "/marker");
    show("escaped: /../marker_above", AT_FDCWD, "/../marker_above");
    int fd = open("/escaped", O_WRONLY | O_CREAT, 0644);
    printf("create /escaped                    -> %s\n", fd < 0 ? strerror(errno) : "created");
    return 0;
}

int main(int argc, char **argv) {
    mkdir("jail", 0755);
    mkdir("jail/sub", 0755);
    put("secret", "outside\n");
    put("jail/inside", "inside\n");
    if (symlink("/inside", "jail/sub/abs") || symlink("/../../../secret", "jail/sub/abs_up") ||
        symlink("../../../../secret", "jail/sub/rel_up"))
        return 2;
    int outside = open(".", O_RDONLY | O_DIRECTORY);
    if (chroot("jail") != 0) {
        printf("chroot: %s\n", strerror(errno));
        return 0;
    }
    /* before any chdir: the working directory is still outside (Linux keeps it) */
    show("cwd kept: secret", AT_FDCWD, "secret");
    if (argc > 1 && strcmp(argv[1], "escape") == 0)
        return escape(outside);
    if (chdir("/"))
        return 3;
    char cwd[256];
    printf("%-34s -> %s\n", "getcwd after chdir(/)", getcwd(cwd, sizeof cwd) ? cwd : strerror(errno));
    show("/inside", AT_FDCWD, "/inside");
    show("/../../secret", AT_FDCWD, "/../../secret");
    show("../../../secret", AT_FDCWD, "../../../secret");
    show("sub/abs (-> /inside)", AT_FDCWD, "sub/abs");
    show("sub/abs_up (-> /../../../secret)", AT_FDCWD, "sub/abs_up");
    show("sub/rel_up (-> ../../../../secret)", AT_FDCWD, "sub/rel_up");
    show("openat(outside fd, secret)", outside, "secret");
    show("openat(outside fd, jail/inside)", outside, "jail/inside");
    struct stat a, b;
    stat("/", &a);
    stat("/..", &b);
    printf("%-34s -> %s\n", "stat(/..) is stat(/)", a.st_ino == b.st_ino && a.st_dev == b.st_dev ? "yes" : "no");
    if (fchdir(outside))
        return 4;
    show("after fchdir(outside): secret", AT_FDCWD, "secret");
    printf("%-34s -> %s\n", "getcwd after fchdir",
           getcwd(cwd, sizeof cwd) ? (strncmp(cwd, "(unreachable)", 13) == 0 ? "(unreachable)..." : "reachable")
                                   : strerror(errno));
    if (chdir("jail"))
        return 5;
    show("back in the jail: inside", AT_FDCWD, "inside");
    show("and .. from it: secret", AT_FDCWD, "../secret");
    return 0;
}
