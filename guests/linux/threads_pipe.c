/* Two threads talking through pipes: each blocks in read() until the other
   writes (a ping-pong of 200 rounds), then a producer thread feeds the main
   thread through a pipe with pauses. Under emu a blocking read must not stop
   the other thread. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
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
    return 0;
}
