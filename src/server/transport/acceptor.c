/* acceptor.c - the listening socket, and every connection until its first
 * request head is complete (docs/server.md, "Connections").
 *
 * One thread, one epoll set.  A new connection is counted against
 * --max-connections and --max-connections-per-ip (refused with a JSON 503
 * and Retry-After when over), then watched until its first request head has
 * arrived: the bytes are peeked (MSG_PEEK), never consumed, and checked by
 * etd_head_check -- request line, header syntax, sizes, Host,
 * Content-Length, Transfer-Encoding -- so a malformed first request gets a
 * JSON error from the daemon, not libmicrohttpd's HTML page.  A head that
 * does not arrive within --header-timeout of its first byte gets a 408; a
 * connection that sends nothing is closed after --timeout.  A good head and
 * its connection go to libmicrohttpd (MHD_add_connection), which reads the
 * same bytes again.  Until then a connection costs a file descriptor and
 * this small struct: no thread, no buffer (the peek goes into one scratch
 * buffer of this thread).
 *
 * Refused connections are answered, shut down for writing and read until
 * the client closes (at most 2 s), so that close() does not turn into a
 * reset that would destroy the answer in flight. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/transport/transport_internal.h"

#define LINGER_S 2.0
#define MAX_LINGERING 1024
#define IP_BUCKETS 4096

typedef struct pconn {
    struct pconn *prev, *next;
    int fd;
    struct timespec t0;         /* accepted; the first byte; answered (closing) */
    bool got;                   /* a byte has arrived */
    bool closing;               /* answered: reading until the client closes */
    struct sockaddr_storage addr;
    socklen_t alen;
} pconn;

typedef struct ipent {
    struct ipent *next;
    uint8_t key[16];
    int n;
} ipent;

struct etd_acceptor {
    etd_server *s;
    int lfd, epfd, evfd, reserve_fd;
    pthread_t th;
    bool started;
    bool (*hand)(etd_server *s, int fd, const struct sockaddr *a, socklen_t alen);
    pconn *list;
    int npending, nclosing;     /* the acceptor thread's */
    atomic_long pending;        /* connections not handed over (closing ones included) */
    atomic_long total;          /* every open connection, handed over or not */
    atomic_ullong refused;      /* answered by the acceptor (limits, bad heads, timeouts) */
    atomic_bool stop;
    pthread_mutex_t ip_mu;
    ipent *ip[IP_BUCKETS];
    char scratch[ETD_HEAD_MAX + 1];
};

static int tag_listen, tag_event;

/* ---------------------------------------------------------------- per-address counts */

static bool ip_key(const struct sockaddr *a, uint8_t key[16])
{
    memset(key, 0, 16);
    if (!a)
        return false;
    if (a->sa_family == AF_INET) {
        memcpy(key + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
        key[10] = key[11] = 0xff; /* as v4-mapped v6: one key for both spellings */
        return true;
    }
    if (a->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
        return true;
    }
    return false;
}

static unsigned ip_hash(const uint8_t key[16])
{
    unsigned h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % IP_BUCKETS;
}

/* Add d (+1 / -1) to the address's count; returns the new count. */
static int ip_add(etd_acceptor *a, const struct sockaddr *sa, int d)
{
    uint8_t key[16];
    if (!a->s->o.max_conns_per_ip || !ip_key(sa, key))
        return 0;
    unsigned h = ip_hash(key);
    pthread_mutex_lock(&a->ip_mu);
    ipent **pp = &a->ip[h], *e;
    while ((e = *pp) && memcmp(e->key, key, 16) != 0)
        pp = &e->next;
    int n = 0;
    if (!e && d > 0 && (e = calloc(1, sizeof *e))) {
        memcpy(e->key, key, 16);
        e->next = a->ip[h];
        a->ip[h] = e;
        pp = &a->ip[h];
    }
    if (e) {
        e->n += d;
        n = e->n;
        if (e->n <= 0) {
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&a->ip_mu);
    return n;
}

static void addr_str(const struct sockaddr *sa, char *out, size_t cap)
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

void etd_acceptor_closed(etd_acceptor *a, const struct sockaddr *addr, socklen_t alen)
{
    (void)alen;
    atomic_fetch_sub(&a->total, 1);
    if (addr)
        ip_add(a, addr, -1);
}

void etd_acceptor_counts(etd_acceptor *a, long *pending, long *total, unsigned long long *refused)
{
    *pending = atomic_load(&a->pending);
    *total = atomic_load(&a->total);
    *refused = atomic_load(&a->refused);
}

/* ---------------------------------------------------------------- the listening socket */

int etd_listen(const struct sockaddr *sa, socklen_t alen, const char *shown, etd_err *e)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        etd_fail(e, ETD_EIO, "cannot create a socket for %s: %s", shown, strerror(errno));
        return -1;
    }
    /* SO_REUSEADDR only lets a restarted daemon bind while old connections
     * linger in TIME_WAIT; two listeners on one port need SO_REUSEPORT,
     * which is never set: a port has one owner */
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, sa, alen) != 0 || listen(fd, 4096) != 0) {
        int err = errno;
        close(fd);
        etd_fail(e, ETD_EIO, "cannot bind %s: %s", shown,
                 err == EADDRINUSE ? "address in use" : err == EACCES ? "permission denied"
                 : err == EADDRNOTAVAIL ? "address not available on this machine"
                 : strerror(err));
        return -1;
    }
    return fd;
}

/* ---------------------------------------------------------------- connections */

static void pc_unlink(etd_acceptor *a, pconn *pc)
{
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        a->list = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    pc->prev = pc->next = NULL;
}

/* Close a connection the acceptor still owns. */
static void pc_close(etd_acceptor *a, pconn *pc)
{
    epoll_ctl(a->epfd, EPOLL_CTL_DEL, pc->fd, NULL);
    close(pc->fd);
    pc_unlink(a, pc);
    if (pc->closing)
        a->nclosing--;
    a->npending--;
    atomic_fetch_sub(&a->pending, 1);
    atomic_fetch_sub(&a->total, 1);
    ip_add(a, (struct sockaddr *)&pc->addr, -1);
    free(pc);
}

/* Method and path of the head in buf (for the access log), "-" if none. */
static void head_names(const char *buf, size_t n, char *method, size_t mcap, char *path,
                       size_t pcap)
{
    snprintf(method, mcap, "-");
    snprintf(path, pcap, "-");
    if (!n)
        return;
    const char *sp = memchr(buf, ' ', n < 16 ? n : 16);
    if (!sp)
        return;
    snprintf(method, mcap, "%.*s", (int)(sp - buf), buf);
    const char *t = sp + 1, *e = t;
    while (e < buf + n && *e != ' ' && *e != '?' && *e != '\r' && *e != '\n')
        e++;
    snprintf(path, pcap, "%.*s", (int)(e - t), t);
    for (char *c = method; *c; c++)
        if ((unsigned char)*c < 0x21 || (unsigned char)*c >= 0x7f)
            *c = '?';
    for (char *c = path; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
}

/* Answer pc (JSON error, Connection: close) and linger until the client
 * closes; head: what it sent so far (for the log line). */
static void pc_answer(etd_acceptor *a, pconn *pc, int status, const char *msg, bool retry,
                      const char *head, size_t hn)
{
    char resp[1024];
    int n = etd_raw_error(resp, sizeof resp, status, msg, retry);
    ssize_t w = send(pc->fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(pc->fd, SHUT_WR);
    atomic_fetch_add(&a->refused, 1);
    char method[16], path[256];
    head_names(head, hn, method, sizeof method, path, sizeof path);
    double secs = etd_since(&pc->t0);
    etd_server *s = a->s;
    etd_http_metrics_record(s->metrics, etd_http_metrics_slot(s->metrics, -1, -1, ""),
                            w == n ? status : 0, secs);
    etd_log_access(s, method, path, w == n ? status : 0, secs, w == n);
    if (a->nclosing >= MAX_LINGERING) {
        pc_close(a, pc);
        return;
    }
    pc->closing = true;
    a->nclosing++;
    clock_gettime(CLOCK_MONOTONIC, &pc->t0);
}

/* New bytes on pc (or its first look): read on until the head is complete,
 * then answer a bad one or hand it over. */
static void pc_input(etd_acceptor *a, pconn *pc)
{
    if (pc->closing) { /* discard until the client closes */
        for (;;) {
            ssize_t n = recv(pc->fd, a->scratch, sizeof a->scratch, MSG_DONTWAIT);
            if (n > 0)
                continue;
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                pc_close(a, pc);
            return;
        }
    }
    ssize_t n = recv(pc->fd, a->scratch, ETD_HEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
        pc_close(a, pc); /* the client gave up before sending a request */
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            pc_close(a, pc);
        return;
    }
    if (!pc->got) {
        pc->got = true;
        clock_gettime(CLOCK_MONOTONIC, &pc->t0); /* the header deadline runs from here */
    }
    etd_verdict v;
    if (etd_head_check(a->scratch, (size_t)n, &v) < 0)
        return; /* incomplete: wait for more */
    if (v.status) {
        pc_answer(a, pc, v.status, v.msg, false, a->scratch, (size_t)n);
        return;
    }
    if (atomic_load(&a->stop)) {
        pc_answer(a, pc, 503, "server is shutting down", false, a->scratch, (size_t)n);
        return;
    }
    /* a good head: libmicrohttpd takes the connection (and its counts) */
    epoll_ctl(a->epfd, EPOLL_CTL_DEL, pc->fd, NULL);
    pc_unlink(a, pc);
    a->npending--;
    atomic_fetch_sub(&a->pending, 1);
    if (!a->hand(a->s, pc->fd, (struct sockaddr *)&pc->addr, pc->alen)) {
        /* it closed the socket */
        atomic_fetch_sub(&a->total, 1);
        ip_add(a, (struct sockaddr *)&pc->addr, -1);
    }
    free(pc);
}

/* Out of file descriptors: accept with the spare one and answer 503, so
 * the listening socket does not stay readable for ever. */
static void accept_emfile(etd_acceptor *a)
{
    if (a->reserve_fd < 0)
        return;
    close(a->reserve_fd);
    int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        char resp[512];
        int n = etd_raw_error(resp, sizeof resp, 503, "server is out of file descriptors", true);
        if (send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* the client is gone already */
        }
        close(fd);
        atomic_fetch_add(&a->refused, 1);
    }
    a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_some(etd_acceptor *a)
{
    etd_server *s = a->s;
    for (int k = 0; k < 256; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(a->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                accept_emfile(a);
            return; /* EAGAIN: none left; others: try again at the next wakeup */
        }
        pconn *pc = calloc(1, sizeof *pc);
        if (!pc) {
            close(fd);
            continue;
        }
        pc->fd = fd;
        memcpy(&pc->addr, &ss, sl);
        pc->alen = sl;
        clock_gettime(CLOCK_MONOTONIC, &pc->t0);
        long total = atomic_fetch_add(&a->total, 1) + 1;
        int per_ip = ip_add(a, (struct sockaddr *)&ss, +1);
        a->npending++;
        atomic_fetch_add(&a->pending, 1);
        pc->next = a->list;
        if (a->list)
            a->list->prev = pc;
        a->list = pc;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = pc};
        if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            pc_close(a, pc);
            continue;
        }
        char msg[200];
        if (s->o.max_conns_per_ip && per_ip > (int)s->o.max_conns_per_ip) {
            char who[64];
            addr_str((struct sockaddr *)&ss, who, sizeof who);
            snprintf(msg, sizeof msg, "too many connections from %s: the limit is %u per client "
                     "address (--max-connections-per-ip)", who, s->o.max_conns_per_ip);
            pc_answer(a, pc, 503, msg, true, NULL, 0);
        } else if (total > (long)s->o.max_conns) {
            snprintf(msg, sizeof msg, "server at its connection limit of %u (--max-connections); "
                     "retry later", s->o.max_conns);
            pc_answer(a, pc, 503, msg, true, NULL, 0);
        } else {
            pc_input(a, pc); /* the head may be there already */
        }
    }
}

/* Deadlines: heads within --header-timeout of their first byte, a first
 * byte within --timeout, lingering closes within LINGER_S. */
static void sweep(etd_acceptor *a, bool stopping)
{
    etd_server *s = a->s;
    for (pconn *pc = a->list, *next; pc; pc = next) {
        next = pc->next;
        double t = etd_since(&pc->t0);
        if (pc->closing) {
            if (t > (stopping ? 0.5 : LINGER_S))
                pc_close(a, pc);
        } else if (stopping) {
            if (!pc->got || t > 0.2) { /* a moment for its head, for the log line */
                ssize_t n = recv(pc->fd, a->scratch, ETD_HEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
                pc_answer(a, pc, 503, "server is shutting down", false, a->scratch,
                          n > 0 ? (size_t)n : 0);
            }
        } else if (pc->got && t > s->o.header_timeout) {
            char msg[160];
            snprintf(msg, sizeof msg, "request head not complete within %g s (--header-timeout)",
                     s->o.header_timeout);
            ssize_t n = recv(pc->fd, a->scratch, ETD_HEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
            pc_answer(a, pc, 408, msg, false, a->scratch, n > 0 ? (size_t)n : 0);
        } else if (!pc->got && t > s->o.timeout) {
            pc_close(a, pc); /* idle since it connected: as libmicrohttpd's idle timeout */
        }
    }
}

static void *acceptor_main(void *arg)
{
    etd_acceptor *a = arg;
    struct epoll_event evs[256];
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);
    struct timespec stop_t0 = {0};
    bool stopping = false;
    for (;;) {
        int n = epoll_wait(a->epfd, evs, 256, stopping ? 20 : 250);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &tag_listen) {
                accept_some(a);
            } else if (p == &tag_event) {
                uint64_t v;
                if (read(a->evfd, &v, sizeof v) < 0) {
                    /* nothing to do: the flag is what counts */
                }
            } else {
                pc_input(a, p);
            }
        }
        if (!stopping && atomic_load(&a->stop)) {
            stopping = true;
            clock_gettime(CLOCK_MONOTONIC, &stop_t0);
        }
        if (stopping || etd_since(&last) >= 0.25) {
            sweep(a, stopping);
            clock_gettime(CLOCK_MONOTONIC, &last);
        }
        /* stopping: what is queued in the kernel is accepted and answered
         * 503 until the queue has been empty for a while (at most ~2 s) */
        if (stopping && (etd_since(&stop_t0) > 2.0 || (!a->list && etd_since(&stop_t0) > 0.1)))
            break;
    }
    while (a->list)
        pc_close(a, a->list);
    return NULL;
}

etd_acceptor *etd_acceptor_start(etd_server *s, int fd,
                                 bool (*hand)(etd_server *s, int fd, const struct sockaddr *a,
                                              socklen_t alen))
{
    etd_acceptor *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->s = s;
    a->lfd = fd;
    a->hand = hand;
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    a->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pthread_mutex_init(&a->ip_mu, NULL);
    atomic_init(&a->pending, 0);
    atomic_init(&a->total, 0);
    atomic_init(&a->refused, 0);
    atomic_init(&a->stop, false);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = &tag_listen};
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &tag_event};
    if (a->epfd < 0 || a->evfd < 0 || epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &le) != 0 ||
        epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->evfd, &ee) != 0 ||
        pthread_create(&a->th, NULL, acceptor_main, a) != 0) {
        if (a->epfd >= 0)
            close(a->epfd);
        if (a->evfd >= 0)
            close(a->evfd);
        if (a->reserve_fd >= 0)
            close(a->reserve_fd);
        pthread_mutex_destroy(&a->ip_mu);
        free(a);
        return NULL;
    }
    a->started = true;
    return a;
}

void etd_acceptor_stop(etd_acceptor *a)
{
    if (!a || !a->started)
        return;
    atomic_store(&a->stop, true);
    uint64_t one = 1;
    if (write(a->evfd, &one, sizeof one) < 0) {
        /* the thread also notices the flag at its next tick */
    }
    pthread_join(a->th, NULL);
    a->started = false;
    close(a->lfd);
    close(a->epfd);
    close(a->evfd);
    if (a->reserve_fd >= 0)
        close(a->reserve_fd);
    a->lfd = a->epfd = a->evfd = a->reserve_fd = -1;
}

void etd_acceptor_free(etd_acceptor *a)
{
    if (!a)
        return;
    etd_acceptor_stop(a);
    for (int i = 0; i < IP_BUCKETS; i++)
        while (a->ip[i]) {
            ipent *e = a->ip[i];
            a->ip[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&a->ip_mu);
    free(a);
}
