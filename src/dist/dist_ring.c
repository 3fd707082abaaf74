/* The gradient allreduce: our own ring (reduce-scatter then allgather) over
 * MPI_Isend/MPI_Irecv, advanced step by step from ring_progress. Each rank sends
 * 2(N-1)/N of the bytes, the bandwidth optimum, whatever the MPI library's own
 * non-blocking collectives would pick, and every wait knows which neighbour it
 * waits on, so a timeout can name it.
 *
 * Summation order: chunk c is summed along the ring, so the result of an element
 * depends on which chunk it falls in when N > 2. With N = 2 every element is
 * x0 + x1 whatever the bucketing (float addition commutes), so overlap,
 * --no-overlap and any --bucket-kb give bit-identical weights. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "batchlab/core.h"
#include "dist/dist_mpi_internal.h"

static size_t chunk_lo(const ring_op *op, int N, int c) {
    return op->n * (size_t)c / (size_t)N;
}

static int mod(int a, int N) {
    return ((a % N) + N) % N;
}

/* bf16 with round-to-nearest-even (NaN stays NaN). */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Chunks sent and received at step k (see the header of this file). */
static void step_chunks(const bl_dist *d, int k, int *send_c, int *recv_c) {
    int r = d->rank, N = d->size;
    if (k < N - 1) {
        *send_c = mod(r - k, N);
        *recv_c = mod(r - k - 1, N);
    } else {
        int j = k - (N - 1);
        *send_c = mod(r + 1 - j, N);
        *recv_c = mod(r - j, N);
    }
}

static bl_status post_step(bl_dist *d, ring_op *op, bl_error *err) {
    int N = d->size, sc, rc_;
    step_chunks(d, op->step, &sc, &rc_);
    size_t slo = chunk_lo(op, N, sc), sn = chunk_lo(op, N, sc + 1) - slo;
    size_t rlo = chunk_lo(op, N, rc_), rn = chunk_lo(op, N, rc_ + 1) - rlo;
    int right = mod(d->rank + 1, N), left = mod(d->rank - 1, N);
    int reduce = op->step < N - 1, rc;
    if (op->wire_out) {
        /* The sender rounds what it keeps too, so every rank ends with the same values. */
        for (size_t i = 0; i < sn; i++) {
            op->wire_out[i] = to_bf16(op->buf[slo + i]);
            if (!reduce) op->buf[slo + i] = from_bf16(op->wire_out[i]);
        }
        rc = MPI_Isend(op->wire_out, (int)sn, MPI_UINT16_T, right, op->tag, MPI_COMM_WORLD,
                       &op->req[0]);
        if (rc == MPI_SUCCESS)
            rc = MPI_Irecv(op->wire_in, (int)rn, MPI_UINT16_T, left, op->tag, MPI_COMM_WORLD,
                           &op->req[1]);
    } else {
        rc = MPI_Isend(op->buf + slo, (int)sn, MPI_FLOAT, right, op->tag, MPI_COMM_WORLD,
                       &op->req[0]);
        if (rc == MPI_SUCCESS)
            rc = MPI_Irecv(reduce ? op->tmp : op->buf + rlo, (int)rn, MPI_FLOAT, left, op->tag,
                           MPI_COMM_WORLD, &op->req[1]);
    }
    if (rc == MPI_SUCCESS) return BL_OK;
    return dist_break(d, BL_ERR_IO, err, "sending gradients to rank %d failed", right);
}

/* The step's receive is in: fold it into buf. */
static void finish_step(bl_dist *d, ring_op *op) {
    int N = d->size, sc, rc_;
    step_chunks(d, op->step, &sc, &rc_);
    size_t lo = chunk_lo(op, N, rc_), n = chunk_lo(op, N, rc_ + 1) - lo;
    float *dst = op->buf + lo;
    if (op->wire_in) {
        if (op->step < N - 1) /* fp32 accumulation of two bf16 values */
            for (size_t i = 0; i < n; i++)
                dst[i] = from_bf16(to_bf16(dst[i])) + from_bf16(op->wire_in[i]);
        else
            for (size_t i = 0; i < n; i++)
                dst[i] = from_bf16(op->wire_in[i]);
    } else if (op->step < N - 1) {
        for (size_t i = 0; i < n; i++)
            dst[i] += op->tmp[i];
    }
}

bl_status ring_start(bl_dist *d, float *buf, size_t n, bl_error *err) {
    ring_op *op = &d->ops[d->n_ops];
    memset(op, 0, sizeof *op);
    op->buf = buf;
    op->n = n;
    size_t need = n / (size_t)d->size + 1; /* floats: one chunk, or two bf16 chunks */
    float *s = d->scratch + d->scratch_used;
    d->scratch_used += need;
    if (d->dtype == BL_DIST_BF16) {
        op->wire_out = (uint16_t *)s;
        op->wire_in = op->wire_out + need;
    } else {
        op->tmp = s;
    }
    op->tag = d->seq++ & 0x3fff;
    d->n_ops++;
    return post_step(d, op, err);
}

int ring_progress(bl_dist *d) {
    int moved = 0;
    for (int i = d->first_open; i < d->n_ops; i++) {
        ring_op *op = &d->ops[i];
        while (op->step < 2 * (d->size - 1)) {
            int done = 0;
            if (MPI_Testall(2, op->req, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) {
                dist_break(d, BL_ERR_IO, NULL, "the connection to rank %d or %d failed",
                           mod(d->rank - 1, d->size), mod(d->rank + 1, d->size));
                return -1;
            }
            if (!done) break;
            finish_step(d, op);
            moved++;
            d->last_moved = bl_now_sec();
            if (++op->step < 2 * (d->size - 1) && post_step(d, op, NULL)) return -1;
        }
        if (i == d->first_open && op->step == 2 * (d->size - 1)) d->first_open++;
    }
    return moved;
}

int ring_waiting_on(const bl_dist *d) {
    for (int i = d->first_open; i < d->n_ops; i++) {
        const ring_op *op = &d->ops[i];
        if (op->step >= 2 * (d->size - 1)) continue;
        int flag = 0;
        /* MPI_Request_get_status does not free the request. */
        MPI_Request_get_status(op->req[1], &flag, MPI_STATUS_IGNORE);
        return flag ? mod(d->rank + 1, d->size) : mod(d->rank - 1, d->size);
    }
    return mod(d->rank - 1, d->size);
}

bl_status dist_break(bl_dist *d, bl_status st, bl_error *err, const char *fmt, ...) {
    if (!d->broken) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->broken_msg, sizeof d->broken_msg, fmt, ap);
        va_end(ap);
        d->broken = st;
    }
    return bl_fail(err, d->broken, "%s", d->broken_msg);
}
