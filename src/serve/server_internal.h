/* What the two files of the HTTP server share: the server itself (server.c handles
 * requests, server_life.c starts and stops it). */
#ifndef BL_SERVER_INTERNAL_H
#define BL_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include "serve_internal.h"

/* read_deadline.c: the whole-request read timeout (--read-timeout-s). */
typedef struct conn_watch conn_watch;
typedef struct read_deadlines {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    pthread_t thread;
    conn_watch *head;
    uint64_t timeout_ns, sleeping_until;
    int stop, started;
    atomic_uint_fast64_t expired; /* connections closed with a 408 */
    bl_serve_metrics *m;          /* counts them as failures (read_timeout) */
    char reply[256];
} read_deadlines;

struct bl_server {
    struct MHD_Daemon *d;
    bl_batcher *b;
    bl_serve_metrics *m;
    bl_model_runner runner;
    bl_kserve_model km;
    char name[128];
    char *metadata;
    size_t max_body;
    int port;
    pthread_mutex_t conn_mu; /* orders suspend before resume */
    pthread_mutex_t stop_mu;
    atomic_int draining, stop_now;
    int stopped;
    atomic_long inflight; /* accepted requests whose response is not finished */
    atomic_uint_fast64_t accepted, answered, unanswered, cancelled;
    long queued_at_stop;
    pthread_mutex_t stage_mu;
    bl_latency_hist *stages; /* [BL_STAGES], ns */
    read_deadlines deadlines;
};

/* server.c: libmicrohttpd's access handler and request-completed callback. */
enum MHD_Result server_handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls);
void server_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe);

/* read_deadline.c. start/stop: the watcher thread; notify: libmicrohttpd's connection
 * hook (cls is the server); disarm: the connection's request has been read whole;
 * rearm: its response is done, the next request's clock starts. */
bl_status read_deadlines_start(read_deadlines *w, unsigned timeout_s, bl_serve_metrics *m,
                               bl_error *err);
void read_deadlines_stop(read_deadlines *w);
void read_deadlines_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe);
void read_deadlines_disarm(read_deadlines *w, struct MHD_Connection *conn);
void read_deadlines_rearm(read_deadlines *w, struct MHD_Connection *conn);

#endif
