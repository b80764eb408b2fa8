/* Two threads talking through pipes: each blocks in read() until the other
   writes (a ping-pong of 200 rounds), then a producer thread feeds the main
   thread through a pipe with pauses; then waits in poll, select and
   epoll_wait that another thread ends (or that time out while it runs).
   Under emu a blocking call must not stop the other thread. */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2], feed[2];

static void *player(void *arg)
{
    (void)arg;
    int v;
    for (;;) {
        if (read(ping[0], &v, sizeof v) != sizeof v || v < 0)
            break;
        v += 1;
        write(pong[1], &v, sizeof v);
    }
    return NULL;
}

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) {
        usleep(2000);
        char msg[16];
        int n = snprintf(msg, sizeof msg, "part %d;", i);
        write(feed[1], msg, n);
    }
    close(feed[1]);
    return NULL;
}

static int wake[2], efd;
static volatile int spinning = 1;

static void *waker(void *arg)
{
    (void)arg;
    usleep(3000);
    write(wake[1], "w", 1);       /* ends the select */
    usleep(3000);
    uint64_t one = 1;
    write(efd, &one, 8);          /* ends the epoll_wait */
    return NULL;
}

static void *spinner(void *arg)
{
    (void)arg;
    volatile unsigned long x = 0;
    while (spinning)
        x++;
    return NULL;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

int main(void)
{
    pipe(ping);
    pipe(pong);
    pipe(feed);
    pthread_t a, b;
    pthread_create(&a, NULL, player, NULL);
    int v = 0;
    for (int i = 0; i < 200; i++) {
        write(ping[1], &v, sizeof v);
        read(pong[0], &v, sizeof v);
        v += 1;
    }
    int stop = -1;
    write(ping[1], &stop, sizeof stop);
    pthread_join(a, NULL);
    printf("ping-pong: %d\n", v);

    pthread_create(&b, NULL, producer, NULL);
    char buf[128] = {0};
    size_t got = 0;
    ssize_t n;
    while ((n = read(feed[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    pthread_join(b, NULL);
    printf("fed: %s\n", buf);

    /* a poll that times out while another thread computes */
    int idle[2];
    pipe(idle);
    pthread_t c;
    pthread_create(&c, NULL, spinner, NULL);
    struct pollfd pf = {idle[0], POLLIN, 0};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int pr = poll(&pf, 1, 30);
    long waited = ms_since(&t0);
    spinning = 0;
    pthread_join(c, NULL);
    printf("poll: %d after >= 30 ms: %s\n", pr, waited >= 29 ? "yes" : "no");

    /* select and epoll_wait that another thread ends */
    pipe(wake);
    efd = eventfd(0, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN, {.u64 = 7}};
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    pthread_t w;
    pthread_create(&w, NULL, waker, NULL);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(wake[0], &rs);
    int sr = select(wake[0] + 1, &rs, NULL, NULL, NULL);
    struct epoll_event out;
    int er = epoll_wait(ep, &out, 1, -1);
    pthread_join(w, NULL);
    printf("select: %d ready %d; epoll_wait: %d data %llu\n", sr, FD_ISSET(wake[0], &rs) != 0, er,
           (unsigned long long)out.data.u64);
    return 0;
}
