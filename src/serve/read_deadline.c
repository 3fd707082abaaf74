/* A whole request must arrive within --read-timeout-s: headers and body together, counted
 * from the connection's start or from the end of the previous response on a kept-alive
 * connection. libmicrohttpd's own timeout is an inactivity timeout: a client that sends a
 * byte every few seconds resets it forever and holds a socket for as long as it likes
 * (slowloris). The access handler cannot help either, since libmicrohttpd calls it only
 * once the headers are in.
 *
 * So every connection gets a watch from libmicrohttpd's connection-notify hook (started,
 * closed), armed at its start and again after each response, and disarmed once its
 * request has been read whole. A watcher thread sleeps until the earliest deadline; a
 * connection still reading at its deadline is sent a 408 (it has written nothing yet, so
 * the reply cannot interleave with one of ours) and shut down, and libmicrohttpd then
 * sees the end of stream and closes it through its normal path, callbacks and counters
 * included. The watch list's mutex is held from the deadline check to shutdown(), and
 * libmicrohttpd notifies "closed" before it closes the socket, so the descriptor shut
 * down is always still the connection's and never a reused number. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "server_internal.h"
#include "core/alloc.h"

struct conn_watch {
    int fd;
    uint64_t deadline_ns; /* 0: not armed (its request is read, or it is being answered) */
    conn_watch *prev, *next;
};

#define TIMEOUT_BODY "{\"error\": \"the request did not arrive whole within the read timeout\"}"

static void *watcher_main(void *arg) {
    read_deadlines *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        uint64_t now = bl_now_ns(), next = 0;
        for (conn_watch *c = w->head; c; c = c->next) {
            if (!c->deadline_ns) continue;
            if (c->deadline_ns <= now) {
                c->deadline_ns = 0; /* counted first: the client may look once it reads */
                atomic_fetch_add(&w->expired, 1);
                if (w->m) bl_metrics_count_failure(w->m, BL_FAIL_READ_TIMEOUT);
                (void)!send(c->fd, w->reply, strlen(w->reply), MSG_DONTWAIT | MSG_NOSIGNAL);
                shutdown(c->fd, SHUT_RDWR);
            } else if (!next || c->deadline_ns < next) {
                next = c->deadline_ns;
            }
        }
        /* Sleep to the earliest deadline (at least 10 ms, so a crowd of deadlines is
         * handled in a few scans), or until a watch is armed or the server stops. */
        uint64_t wake = next ? (next > now + 10000000ULL ? next : now + 10000000ULL)
                             : now + 3600ULL * 1000000000ULL;
        struct timespec ts = {(time_t)(wake / 1000000000ULL), (long)(wake % 1000000000ULL)};
        w->sleeping_until = next ? wake : 0;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

bl_status read_deadlines_start(read_deadlines *w, unsigned timeout_s, bl_serve_metrics *m,
                               bl_error *err) {
    memset(w, 0, sizeof *w);
    w->m = m;
    w->timeout_ns = (uint64_t)timeout_s * 1000000000ULL;
    snprintf(w->reply, sizeof w->reply,
             "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(TIMEOUT_BODY), TIMEOUT_BODY);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* bl_now_ns's clock */
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&w->thread, NULL, watcher_main, w);
    if (e) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return bl_fail(err, BL_ERR_NOMEM, "server: cannot start the read-timeout thread: %s",
                       strerror(e));
    }
    w->started = 1;
    return BL_OK;
}

void read_deadlines_stop(read_deadlines *w) {
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    for (conn_watch *c = w->head, *n; c; c = n) { /* none once the daemon has stopped */
        n = c->next;
        bl_free(c);
    }
    w->head = NULL;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    w->started = 0;
}

/* Mutex held. Wake the watcher only when c's deadline is earlier than its sleep. */
static void arm_locked(read_deadlines *w, conn_watch *c) {
    c->deadline_ns = bl_now_ns() + w->timeout_ns;
    if (!w->sleeping_until || c->deadline_ns < w->sleeping_until) pthread_cond_signal(&w->cv);
}

void read_deadlines_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe) {
    read_deadlines *w = &((bl_server *)cls)->deadlines;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_watch *c = ci ? bl_calloc(1, sizeof *c) : NULL;
        *socket_context = c;
        if (!c) return; /* out of memory: the inactivity timeout still bounds it */
        c->fd = ci->connect_fd;
        pthread_mutex_lock(&w->mu);
        c->next = w->head;
        if (w->head) w->head->prev = c;
        w->head = c;
        arm_locked(w, c);
        pthread_mutex_unlock(&w->mu);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_watch *c = *socket_context;
        *socket_context = NULL;
        if (!c) return;
        pthread_mutex_lock(&w->mu);
        if (c->prev)
            c->prev->next = c->next;
        else
            w->head = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&w->mu);
        bl_free(c);
    }
}

static conn_watch *watch_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void read_deadlines_disarm(read_deadlines *w, struct MHD_Connection *conn) {
    conn_watch *c = watch_of(conn);
    if (!c) return;
    pthread_mutex_lock(&w->mu);
    c->deadline_ns = 0;
    pthread_mutex_unlock(&w->mu);
}

void read_deadlines_rearm(read_deadlines *w, struct MHD_Connection *conn) {
    conn_watch *c = watch_of(conn);
    if (!c) return;
    pthread_mutex_lock(&w->mu);
    arm_locked(w, c);
    pthread_mutex_unlock(&w->mu);
}
