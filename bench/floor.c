/* The floor of the same-time pairs: the least a closed-model HTTP/1.1 load client can do.
 *
 * Usage: floor URL CONNECTIONS SECONDS     (URL: http://<IPv4 address>:<port>/<path>)
 *
 * CONNECTIONS keep-alive connections, each sending the next GET as soon as the response to the
 * last one is whole, for SECONDS; then it prints "requests N errors E" and exits 0. One thread,
 * one level-triggered epoll set, one read() and one write() per response; a response is whole
 * once its headers end and Content-Length bytes of body followed (no chunked bodies: nginx's
 * /hello and /dynamic send a length). Each latency goes into a log-bucket histogram, so the
 * floor measures what a load tester must and no more. A timerfd in the set ends the run: the
 * waits carry no timeout (a timeout arms a kernel timer on every wait that blocks).
 *
 * bench.cli builds it with the system C compiler and pairs slogate with it as with wrk: the
 * ratio says how far slogate's engine is from a loop with no interpreter at all.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUFFER 65536
#define MAX_CONNECTIONS 4096

struct conn {
    int fd;
    int have;              /* bytes of the response so far */
    long long sent_ns;     /* when its request went out */
    char data[BUFFER];
};

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Return the length of the whole response at the start of data[0:n], 0 if not whole yet, -1 if
 * it is not one this client reads (no Content-Length, or more than the buffer). */
static int whole(const char *data, int n) {
    const char *end = memmem(data, n, "\r\n\r\n", 4), *line = data, *next;
    long length = -1;
    if (end == NULL)
        return n >= BUFFER ? -1 : 0;
    for (;;) {  /* each header line once: the one before the blank line has no \n before end */
        if (strncasecmp(line, "content-length:", 15) == 0)
            length = strtol(line + 15, NULL, 10);
        next = memchr(line, '\n', end - line);
        if (next == NULL)
            break;
        line = next + 1;
    }
    if (length < 0 || end + 4 - data + length > BUFFER)
        return -1;
    return end + 4 - data + length <= n ? (int)(end + 4 - data + length) : 0;
}

int main(int argc, char **argv) {
    char host[64], path[1024] = "", request[1200];
    int port, connections, request_size, epoll_fd, timer_fd, i;
    double seconds;
    long long requests = 0, errors = 0, histogram[64] = {0};
    struct sockaddr_in address = {.sin_family = AF_INET};
    struct itimerspec stop = {{0, 0}, {0, 0}};
    struct epoll_event event, events[512];
    struct conn *conns;
    if (argc != 4 || sscanf(argv[1], "http://%63[0-9.]:%d/%1023s", host, &port, path) < 2
        || (connections = atoi(argv[2])) < 1 || connections > MAX_CONNECTIONS
        || (seconds = atof(argv[3])) <= 0 || inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        fprintf(stderr, "usage: floor http://<IPv4>:<port>/<path> CONNECTIONS SECONDS\n");
        return 2;
    }
    address.sin_port = htons(port);
    request_size = snprintf(request, sizeof request, "GET /%s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                            path, host, port);
    conns = calloc(connections, sizeof *conns);
    epoll_fd = epoll_create1(0);
    timer_fd = timerfd_create(CLOCK_MONOTONIC, 0);
    if (conns == NULL || epoll_fd < 0 || timer_fd < 0) {
        perror("floor");
        return 1;
    }
    for (i = 0; i < connections; i++) {
        int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
            perror("floor: connect");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        conns[i].fd = fd;
        event.events = EPOLLIN;
        event.data.u32 = i;
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
    }
    event.events = EPOLLIN;
    event.data.u32 = connections;  /* the end of the run */
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, timer_fd, &event);
    stop.it_value.tv_sec = (time_t)seconds;
    stop.it_value.tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9);
    timerfd_settime(timer_fd, 0, &stop, NULL);
    for (i = 0; i < connections; i++) {
        conns[i].sent_ns = now_ns();
        if (write(conns[i].fd, request, request_size) != request_size) {
            perror("floor: write");
            return 1;
        }
    }
    for (;;) {
        int ready = epoll_wait(epoll_fd, events, 512, -1), k;
        if (ready < 0 && errno == EINTR)
            continue;
        for (k = 0; k < ready; k++) {
            struct conn *c;
            int got, size;
            long long at, latency;
            if (events[k].data.u32 == (unsigned)connections)
                goto done;
            c = &conns[events[k].data.u32];
            got = read(c->fd, c->data + c->have, BUFFER - c->have);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN)
                    continue;
                fprintf(stderr, "floor: the server closed a connection\n");
                return 1;
            }
            c->have += got;
            size = whole(c->data, c->have);
            if (size == 0)
                continue;
            if (size < 0 || size != c->have) {
                fprintf(stderr, "floor: a response this client does not read\n");
                return 1;
            }
            at = now_ns();
            latency = at - c->sent_ns;
            histogram[63 - __builtin_clzll((unsigned long long)latency | 1)]++;
            requests++;
            if (memcmp(c->data + 9, "200", 3) != 0)
                errors++;
            c->have = 0;
            c->sent_ns = at;
            if (write(c->fd, request, request_size) != request_size) {
                perror("floor: write");
                return 1;
            }
        }
    }
done:
    {
        long long below = 0;
        for (i = 0; i < 63 && below + histogram[i] < requests - requests / 100; i++)
            below += histogram[i];
        printf("requests %lld errors %lld p99_below_us %.1f\n", requests, errors,
               (double)(2ULL << i) / 1000.0);
    }
    return 0;
}
