/* What the two files of the HTTP server share: the server itself (server.c handles
 * requests, server_life.c starts and stops it). */
#ifndef BL_SERVER_INTERNAL_H
#define BL_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include "serve_internal.h"

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
};

/* server.c: libmicrohttpd's access handler and request-completed callback. */
enum MHD_Result server_handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls);
void server_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe);

#endif
