/* Dense layers at small batch (2 <= B <= SKINNY_MAX_B): the three products
 * written out directly instead of calling sgemm.
 *
 * Why: with a handful of rows, OpenBLAS's sgemm still packs the whole weight
 * matrix (read 4 MB, write 4 MB for the MLP's 1024x1024 layer) before it
 * multiplies, and splits tiny blocks over its threads. The MLP step at B=8
 * spent 1.9 ms in sgemm on 31 MFLOP (50 GFLOP/s). Here each weight row is
 * read once from memory and used for every sample while it sits in L1:
 *   forward  out(B,O)  = in(B,I) w(O,I)^T   4 rows x 4 samples of dot products
 *   din      din(B,I)  = g(B,O) w(O,I)      64 columns x 4 samples of axpys
 *   dw       dw(O,I)  += g(B,O)^T in(B,I)   one row of dw at a time, all samples
 * with 16-float vector accumulators (GCC vector extensions: AVX-512, AVX2 or
 * SSE, whatever the build targets), split over the pool's threads by rows of
 * the output. Each output element is one thread's work in a fixed order, so
 * the results do not depend on the thread count; they differ from sgemm's in
 * the last bits (a different summation order), as sgemm's own do between
 * thread counts. The kernel tests hold them to the same tolerance against the
 * double reference.
 *
 * The bench's sgemm limit must still count these products as GEMMs:
 * cpu_gemm_note() reports each one's shape (a weak hook, empty in the library). */
#include <string.h>
#include "backend/cpu/cpu.h"

typedef float v16 __attribute__((vector_size(64)));

static inline v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store16(float *p, v16 v) {
    memcpy(p, &v, sizeof v);
}

static inline float sum16(v16 v) {
    float s = 0.0f;
    for (int l = 0; l < 16; l++)
        s += v[l];
    return s;
}

/* ---- forward: out[b][o] = dot(x[b], w[o]) ------------------------------------ */

/* The full 4 samples x 4 rows block, written out so that the four weight
 * vectors and sixteen accumulators stay in registers (with arrays, GCC
 * reloaded both operands of every FMA and ran at a third of the speed). */
static void dots4x4(float *out, int ldo, const float *x, const float *w, int I) {
    const float *x0 = x, *x1 = x + I, *x2 = x + 2 * (size_t)I, *x3 = x + 3 * (size_t)I;
    const float *w0 = w, *w1 = w + I, *w2 = w + 2 * (size_t)I, *w3 = w + 3 * (size_t)I;
    v16 a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0}, a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
    v16 a20 = {0}, a21 = {0}, a22 = {0}, a23 = {0}, a30 = {0}, a31 = {0}, a32 = {0}, a33 = {0};
    int i = 0;
    for (; i + 16 <= I; i += 16) {
        const v16 v0 = load16(w0 + i), v1 = load16(w1 + i), v2 = load16(w2 + i),
                  v3 = load16(w3 + i);
        v16 u = load16(x0 + i);
        a00 += u * v0, a01 += u * v1, a02 += u * v2, a03 += u * v3;
        u = load16(x1 + i);
        a10 += u * v0, a11 += u * v1, a12 += u * v2, a13 += u * v3;
        u = load16(x2 + i);
        a20 += u * v0, a21 += u * v1, a22 += u * v2, a23 += u * v3;
        u = load16(x3 + i);
        a30 += u * v0, a31 += u * v1, a32 += u * v2, a33 += u * v3;
    }
    const v16 acc[4][4] = {
        {a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
    for (int b = 0; b < 4; b++)
        for (int r = 0; r < 4; r++) {
            float s = sum16(acc[b][r]);
            for (int k = i; k < I; k++)
                s += x[(size_t)b * I + k] * w[(size_t)r * I + k];
            out[(size_t)b * ldo + r] = s;
        }
}

/* Any block of nb <= 4 samples x nr <= 4 rows (the edges): same arithmetic,
 * so a result does not depend on which block it fell in. */
static void dots(float *out, int ldo, const float *x, const float *w, int I, int nb, int nr) {
    if (nb == 4 && nr == 4) {
        dots4x4(out, ldo, x, w, I);
        return;
    }
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < nr; r++) {
            const float *xb = x + (size_t)b * I, *wr = w + (size_t)r * I;
            v16 acc = {0};
            int i = 0;
            for (; i + 16 <= I; i += 16)
                acc += load16(xb + i) * load16(wr + i);
            float s = sum16(acc);
            for (int k = i; k < I; k++)
                s += xb[k] * wr[k];
            out[(size_t)b * ldo + r] = s;
        }
}

typedef struct {
    float *out, *dw;
    const float *x, *w, *g;
    int B, I, O;
} skinny_arg;

/* items: blocks of 4 output rows */
static void forward_blocks(void *p, size_t lo, size_t hi) {
    const skinny_arg *a = p;
    for (size_t blk = lo; blk < hi; blk++) {
        const int o = (int)blk * 4, nr = a->O - o < 4 ? a->O - o : 4;
        const float *w = a->w + (size_t)o * a->I;
        for (int b = 0; b < a->B; b += 4) {
            const int nb = a->B - b < 4 ? a->B - b : 4;
            float *out = a->out + (size_t)b * a->O + o;
            const float *x = a->x + (size_t)b * a->I;
            dots(out, a->O, x, w, a->I, nb, nr);
        }
    }
}

void cpu_skinny_forward(float *out, const float *in, const float *w, int B, int I, int O) {
    cpu_gemm_note(0, 1, B, O, I);
    skinny_arg a = {.out = out, .x = in, .w = w, .B = B, .I = I, .O = O};
    const size_t blocks = ((size_t)O + 3) / 4, per = (size_t)(65536 / ((size_t)I * B + 1)) + 1;
    cpu_par_for(blocks, 1, per, forward_blocks, &a);
}

/* ---- input gradient: din[b][i] = sum_o g[b][o] w[o][i] ------------------------ */

/* nb samples x 64 columns (4 vectors) starting at column i, over all O rows. */
static inline __attribute__((always_inline)) void axpys(float *din, const float *g, const float *w,
                                                        int I, int O, int i, int nb) {
    v16 acc[4][4] = {{{0}}};
    for (int o = 0; o < O; o++) {
        const float *wr = w + (size_t)o * I + i;
        v16 w0 = load16(wr), w1 = load16(wr + 16), w2 = load16(wr + 32), w3 = load16(wr + 48);
        for (int b = 0; b < nb; b++) {
            const float gb = g[(size_t)b * O + o];
            acc[b][0] += gb * w0, acc[b][1] += gb * w1;
            acc[b][2] += gb * w2, acc[b][3] += gb * w3;
        }
    }
    for (int b = 0; b < nb; b++)
        for (int v = 0; v < 4; v++)
            store16(din + (size_t)b * I + i + 16 * v, acc[b][v]);
}

/* items: blocks of 64 input columns; the last partial block is done scalar */
static void din_blocks(void *p, size_t lo, size_t hi) {
    const skinny_arg *a = p;
    const int I = a->I, O = a->O;
    for (size_t blk = lo; blk < hi; blk++) {
        const int i = (int)blk * 64;
        for (int b = 0; b < a->B; b += 4) {
            const int nb = a->B - b < 4 ? a->B - b : 4;
            float *din = a->out + (size_t)b * I;
            const float *g = a->g + (size_t)b * O;
            if (i + 64 > I) { /* tail columns */
                for (int bb = 0; bb < nb; bb++)
                    for (int c = i; c < I; c++) {
                        float s = 0.0f;
                        for (int o = 0; o < O; o++)
                            s += g[(size_t)bb * O + o] * a->w[(size_t)o * I + c];
                        din[(size_t)bb * I + c] = s;
                    }
                continue;
            }
            switch (nb) {
            case 1:
                axpys(din, g, a->w, I, O, i, 1);
                break;
            case 2:
                axpys(din, g, a->w, I, O, i, 2);
                break;
            case 3:
                axpys(din, g, a->w, I, O, i, 3);
                break;
            default:
                axpys(din, g, a->w, I, O, i, 4);
                break;
            }
        }
    }
}

void cpu_skinny_din(float *din, const float *g, const float *w, int B, int I, int O) {
    cpu_gemm_note(0, 0, B, I, O);
    skinny_arg a = {.out = din, .g = g, .w = w, .B = B, .I = I, .O = O};
    const size_t blocks = ((size_t)I + 63) / 64, per = (size_t)(65536 / (64 * (size_t)O + 1)) + 1;
    cpu_par_for(blocks, 1, per, din_blocks, &a);
}

/* ---- weight gradient: dw[o][i] += sum_b g[b][o] x[b][i] ----------------------- */

static void dw_rows(void *p, size_t lo, size_t hi) {
    const skinny_arg *a = p;
    const int I = a->I, O = a->O, B = a->B;
    for (size_t o = lo; o < hi; o++) {
        float *restrict d = a->dw + o * (size_t)I;
        int i = 0;
        for (; i + 16 <= I; i += 16) {
            v16 acc = load16(d + i);
            for (int b = 0; b < B; b++)
                acc += a->g[(size_t)b * O + o] * load16(a->x + (size_t)b * I + i);
            store16(d + i, acc);
        }
        for (; i < I; i++) {
            float s = d[i];
            for (int b = 0; b < B; b++)
                s += a->g[(size_t)b * O + o] * a->x[(size_t)b * I + i];
            d[i] = s;
        }
    }
}

void cpu_skinny_dw(float *dw, const float *g, const float *in, int B, int I, int O) {
    cpu_gemm_note(1, 0, O, I, B);
    skinny_arg a = {.dw = dw, .g = g, .x = in, .B = B, .I = I, .O = O};
    const size_t per = (size_t)(32768 / ((size_t)I + 1)) + 1;
    cpu_par_for((size_t)O, 1, per, dw_rows, &a);
}

/* Empty unless a program (bench_step) defines its own to record the shapes. */
__attribute__((weak)) void cpu_gemm_note(int trans_a, int trans_b, int M, int N, int K) {
    (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K;
}
