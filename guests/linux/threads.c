/* pthreads with a mutex and condition variables: a bounded queue. */
#include <pthread.h>
#include <stdio.h>

#define N 4
#define ITEMS 500

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static int queue[8], head, tail, count, done;
static long total;

static void *producer(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < ITEMS; i++) {
        pthread_mutex_lock(&lock);
        while (count == 8)
            pthread_cond_wait(&not_full, &lock);
        queue[tail] = (int)(id * 1000 + i);
        tail = (tail + 1) % 8;
        count++;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    long sum = 0;
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (count == 0 && !done)
            pthread_cond_wait(&not_empty, &lock);
        if (count == 0 && done) {
            pthread_mutex_unlock(&lock);
            break;
        }
        sum += queue[head];
        head = (head + 1) % 8;
        count--;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    total += sum;
    pthread_mutex_unlock(&lock);
    return (void *)sum;
}

int main(void)
{
    pthread_t p[N], c[2];
    for (long i = 0; i < N; i++)
        pthread_create(&p[i], NULL, producer, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_create(&c[i], NULL, consumer, NULL);
    for (int i = 0; i < N; i++)
        pthread_join(p[i], NULL);
    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 2; i++)
        pthread_join(c[i], NULL);
    long expect = 0;
    for (long id = 0; id < N; id++)
        for (int i = 0; i < ITEMS; i++)
            expect += id * 1000 + i;
    printf("consumed total %ld, expected %ld\n", total, expect);
    return total != expect;
}
