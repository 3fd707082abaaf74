/* Dense layers at small batch (2 <= B <= SKINNY_MAX_B): the three products
 * written out directly instead of calling sgemm.
 *
 * Why: with a handful of rows, OpenBLAS's sgemm still packs the whole weight
 * matrix (read 4 MB, write 4 MB for the MLP's 1024x1024 layer) before it
 * multiplies, and splits tiny blocks over its threads. The MLP step at B=8
 * spent 1.9 ms in sgemm on 31 MFLOP (50 GFLOP/s). Here each weight row is
 * read once from memory and used for every sample while it sits in L1:
 *   forward  out(B,O)  = in(B,I) w(O,I)^T   4 samples x a few rows of dot products
 *   din      din(B,I)  = g(B,O) w(O,I)      a block of columns x 4 samples of axpys
 *   dw       dw(O,I)  += g(B,O)^T in(B,I)   one row of dw at a time, all samples
 * with vector accumulators (GCC vector extensions) as wide as the ISA level
 * this file is compiled for (cpu_isa_rename.h: once per level), and register
 * blocks sized to that level's register file: AVX-512 has 32 registers of 16
 * floats, AVX2 and SSE 16 of 8 and 4. The AVX-512 blocks (16 accumulators)
 * spilled on AVX2 and ran several times slower than sgemm there. The work is
 * split over the pool's threads by rows of the output. Each output element is
 * one thread's work in a fixed order, so the results do not depend on the
 * thread count; they differ from sgemm's in the last bits (a different
 * summation order), as sgemm's own do between thread counts and ISA levels.
 * The kernel tests hold every level to the same tolerance against the double
 * reference.
 *
 * The bench's sgemm limit must still count these products as GEMMs:
 * cpu_gemm_note() reports each one's shape (a weak hook, empty in the library). */
#include <string.h>
#include "backend/cpu/cpu.h"

/* VW: floats per vector. FWD_ROWS: weight rows per forward register block
 * (4 samples x FWD_ROWS accumulators, plus FWD_ROWS weight vectors and one
 * sample vector, must fit the register file). DIN_VECS: vectors of columns
 * per input-gradient block (4 x DIN_VECS accumulators + DIN_VECS weights). */
#if defined(__AVX512F__)
#define VW 16
#define FWD_ROWS 4
#define DIN_VECS 4
#elif defined(__AVX__)
#define VW 8
#define FWD_ROWS 2
#define DIN_VECS 3
#else
#define VW 4
#define FWD_ROWS 2
#define DIN_VECS 3
#endif
#define DIN_COLS (DIN_VECS * VW)

typedef float vf __attribute__((vector_size(VW * sizeof(float))));

static inline vf loadv(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void storev(float *p, vf v) {
    memcpy(p, &v, sizeof v);
}

static inline float sumv(vf v) {
    float s = 0.0f;
    for (int l = 0; l < VW; l++)
        s += v[l];
    return s;
}

/* ---- forward: out[b][o] = dot(x[b], w[o]) ------------------------------------ */

/* A block of NB samples x NR weight rows, with NB and NR constants after
 * inlining, so that the NB*NR accumulators and the NR weight vectors stay in
 * registers (checked in the assembly: no stack operands). Every output has
 * its own accumulator and the same order of operations whatever block it
 * falls in, so the results do not depend on the blocking or the threads. */
static inline __attribute__((always_inline)) void dots_block(float *out, int ldo, const float *x,
                                                             const float *w, int I, const int NB,
                                                             const int NR) {
    vf acc[4][4];
    for (int b = 0; b < NB; b++)
        for (int r = 0; r < NR; r++)
            acc[b][r] = (vf){0};
    int i = 0;
    for (; i + VW <= I; i += VW) {
        vf wv[4];
        for (int r = 0; r < NR; r++)
            wv[r] = loadv(w + (size_t)r * I + i);
        for (int b = 0; b < NB; b++) {
            const vf u = loadv(x + (size_t)b * I + i);
            for (int r = 0; r < NR; r++)
                acc[b][r] += u * wv[r];
        }
    }
    for (int b = 0; b < NB; b++)
        for (int r = 0; r < NR; r++) {
            float s = sumv(acc[b][r]);
            for (int k = i; k < I; k++)
                s += x[(size_t)b * I + k] * w[(size_t)r * I + k];
            out[(size_t)b * ldo + r] = s;
        }
}

/* Rows per block for nb samples: as many as the registers hold (FWD_ROWS
 * at 4 samples; with fewer samples, more rows share each weight load). */
#define DOTS(nb, nr) dots_block(out, ldo, x, w, I, nb, nr)
static void dots_rows(float *out, int ldo, const float *x, const float *w, int I, int nb, int nr) {
    switch (nb * 8 + nr) {
    case 4 * 8 + 4:
#if FWD_ROWS == 4
        DOTS(4, 4);
#else
        DOTS(4, 2);
        dots_block(out + 2, ldo, x, w + 2 * (size_t)I, I, 4, 2);
#endif
        return;
    case 3 * 8 + 4:
        DOTS(3, 4);
        return;
    case 2 * 8 + 4:
        DOTS(2, 4);
        return;
    case 1 * 8 + 4:
        DOTS(1, 4);
        return;
    }
    /* the last rows of the layer (O not a multiple of 4): one row at a time */
    for (int r = 0; r < nr; r++, out++, w += I)
        switch (nb) {
        case 4:
            DOTS(4, 1);
            break;
        case 3:
            DOTS(3, 1);
            break;
        case 2:
            DOTS(2, 1);
            break;
        default:
            DOTS(1, 1);
            break;
        }
}
#undef DOTS

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
            dots_rows(out, a->O, x, w, a->I, nb, nr);
        }
    }
}

void cpu_skinny_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w, int B,
                        int I, int O) {
    cpu_gemm_note(0, 1, B, O, I);
    skinny_arg a = {.out = out, .x = in, .w = w, .B = B, .I = I, .O = O};
    const size_t blocks = ((size_t)O + 3) / 4, per = (size_t)(65536 / ((size_t)I * B + 1)) + 1;
    cpu_par_for(pool, blocks, 1, per, forward_blocks, &a);
}

/* ---- input gradient: din[b][i] = sum_o g[b][o] w[o][i] ------------------------ */

#if VW >= 16

/* nb samples x DIN_COLS columns starting at column i, over all O rows. */
static inline __attribute__((always_inline)) void axpys(float *din, const float *g, const float *w,
                                                        int I, int O, int i, int nb) {
    vf acc[4][DIN_VECS] = {{{0}}};
    for (int o = 0; o < O; o++) {
        const float *wr = w + (size_t)o * I + i;
        vf wv[DIN_VECS];
        for (int v = 0; v < DIN_VECS; v++)
            wv[v] = loadv(wr + VW * v);
        for (int b = 0; b < nb; b++) {
            const float gb = g[(size_t)b * O + o];
            for (int v = 0; v < DIN_VECS; v++)
                acc[b][v] += gb * wv[v];
        }
    }
    for (int b = 0; b < nb; b++)
        for (int v = 0; v < DIN_VECS; v++)
            storev(din + (size_t)b * I + i + VW * v, acc[b][v]);
}

/* items: blocks of DIN_COLS input columns; the last partial block is done scalar */
static void din_blocks(void *p, size_t lo, size_t hi) {
    const skinny_arg *a = p;
    const int I = a->I, O = a->O;
    for (size_t blk = lo; blk < hi; blk++) {
        const int i = (int)blk * DIN_COLS;
        for (int b = 0; b < a->B; b += 4) {
            const int nb = a->B - b < 4 ? a->B - b : 4;
            float *din = a->out + (size_t)b * I;
            const float *g = a->g + (size_t)b * O;
            if (i + DIN_COLS > I) { /* tail columns */
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

void cpu_skinny_din(bl_cpu_pool *pool, float *din, const float *g, const float *w, int B, int I,
                    int O) {
    cpu_gemm_note(0, 0, B, I, O);
    skinny_arg a = {.out = din, .g = g, .w = w, .B = B, .I = I, .O = O};
    const size_t blocks = ((size_t)I + DIN_COLS - 1) / DIN_COLS,
                 per = (size_t)(65536 / (DIN_COLS * (size_t)O + 1)) + 1;
    cpu_par_for(pool, blocks, 1, per, din_blocks, &a);
}
#else
/* Narrower vectors stream the weights row by row instead. The AVX-512 order
 * above walks a strip of columns down all O rows, and with I = 1024 those
 * rows are 4 KB apart: the critical stride, where every row's lines fall in
 * one L1 set and a few L2 sets. With AVX-512's 64-column strips that cost
 * little; with AVX2's 24 it made every load an L3 access (725 us at B = 4 for
 * the 1024 x 1024 layer, twice sgemm). Here a chunk of DIN_CHUNK columns of
 * din stays in L1 as the accumulator, and each group of 4 weight rows is read
 * once, contiguously, per pair of samples:
 *   din[b][c] = (((0 + g[b][0] w[0][c]) + g[b][1] w[1][c]) + ...)   in o order,
 * whatever the chunk or thread, so results do not depend on the threads. */
#define DIN_CHUNK (32 * VW)

static inline __attribute__((always_inline)) void din_tile(float *din, const float *g,
                                                           const float *w, int I, int O, int c0,
                                                           int c1, int first, const int NB,
                                                           const int NR) {
    vf gb[2][4];
    for (int b = 0; b < NB; b++)
        for (int r = 0; r < NR; r++)
            gb[b][r] = (vf){0} + g[(size_t)b * O + r];
    int i = c0;
    for (; i + VW <= c1; i += VW) {
        vf wv[4];
        for (int r = 0; r < NR; r++)
            wv[r] = loadv(w + (size_t)r * I + i);
        for (int b = 0; b < NB; b++) {
            vf acc = first ? (vf){0} : loadv(din + (size_t)b * I + i);
            for (int r = 0; r < NR; r++)
                acc += gb[b][r] * wv[r];
            storev(din + (size_t)b * I + i, acc);
        }
    }
    for (; i < c1; i++)
        for (int b = 0; b < NB; b++) {
            float acc = first ? 0.0f : din[(size_t)b * I + i];
            for (int r = 0; r < NR; r++)
                acc += g[(size_t)b * O + r] * w[(size_t)r * I + i];
            din[(size_t)b * I + i] = acc;
        }
}

/* items: chunks of DIN_CHUNK input columns */
static void din_chunks(void *p, size_t lo, size_t hi) {
    const skinny_arg *a = p;
    const int I = a->I, O = a->O, B = a->B;
    for (size_t chunk = lo; chunk < hi; chunk++) {
        const int c0 = (int)chunk * DIN_CHUNK, c1 = I - c0 < DIN_CHUNK ? I : c0 + DIN_CHUNK;
        for (int o = 0; o < O; o += 4) {
            const int nr = O - o < 4 ? O - o : 4;
            const float *w = a->w + (size_t)o * I;
            for (int b = 0; b < B; b += 2) {
                float *din = a->out + (size_t)b * I;
                const float *g = a->g + (size_t)b * O + o;
                const int nb = B - b < 2 ? 1 : 2;
                switch (nb * 8 + nr) {
                case 2 * 8 + 4:
                    din_tile(din, g, w, I, O, c0, c1, o == 0, 2, 4);
                    break;
                case 1 * 8 + 4:
                    din_tile(din, g, w, I, O, c0, c1, o == 0, 1, 4);
                    break;
                default: /* the last rows of the layer, one at a time */
                    for (int r = 0; r < nr; r++)
                        if (nb == 2)
                            din_tile(din, g + r, w + (size_t)r * I, I, O, c0, c1, o + r == 0, 2, 1);
                        else
                            din_tile(din, g + r, w + (size_t)r * I, I, O, c0, c1, o + r == 0, 1, 1);
                }
            }
        }
    }
}

void cpu_skinny_din(bl_cpu_pool *pool, float *din, const float *g, const float *w, int B, int I,
                    int O) {
    cpu_gemm_note(0, 0, B, I, O);
    skinny_arg a = {.out = din, .g = g, .w = w, .B = B, .I = I, .O = O};
    const size_t chunks = ((size_t)I + DIN_CHUNK - 1) / DIN_CHUNK,
                 per = (size_t)(65536 / ((size_t)DIN_CHUNK * O + 1)) + 1;
    cpu_par_for(pool, chunks, 1, per, din_chunks, &a);
}
#endif

/* ---- weight gradient: dw[o][i] += sum_b g[b][o] x[b][i] ----------------------- */

/* One row of dw with NB (a constant after inlining) samples: the NB scalars
 * g[b][o] are hoisted, and each vector of the row is loaded, updated in
 * sample order and stored once. */
static inline __attribute__((always_inline)) void dw_row(float *restrict d, const float *g,
                                                         const float *x, int I, int O,
                                                         const int NB) {
    float gs[SKINNY_DW_MAX_B];
    for (int b = 0; b < NB; b++)
        gs[b] = g[(size_t)b * O];
    int i = 0;
    for (; i + VW <= I; i += VW) {
        vf acc = loadv(d + i);
        for (int b = 0; b < NB; b++)
            acc += gs[b] * loadv(x + (size_t)b * I + i);
        storev(d + i, acc);
    }
    for (; i < I; i++) {
        float s = d[i];
        for (int b = 0; b < NB; b++)
            s += gs[b] * x[(size_t)b * I + i];
        d[i] = s;
    }
}

static void dw_rows(void *p, size_t lo, size_t hi) {
    const skinny_arg *a = p;
    const int I = a->I, O = a->O;
    for (size_t o = lo; o < hi; o++) {
        float *d = a->dw + o * (size_t)I;
        const float *g = a->g + o;
        switch (a->B) {
        case 1:
            dw_row(d, g, a->x, I, O, 1);
            break;
        case 2:
            dw_row(d, g, a->x, I, O, 2);
            break;
        case 3:
            dw_row(d, g, a->x, I, O, 3);
            break;
#if SKINNY_DW_MAX_B > 4
        case 4:
            dw_row(d, g, a->x, I, O, 4);
            break;
        case 5:
            dw_row(d, g, a->x, I, O, 5);
            break;
        case 6:
            dw_row(d, g, a->x, I, O, 6);
            break;
        case 7:
            dw_row(d, g, a->x, I, O, 7);
            break;
#endif
        default:
            dw_row(d, g, a->x, I, O, SKINNY_DW_MAX_B);
            break;
        }
    }
}

void cpu_skinny_dw(bl_cpu_pool *pool, float *dw, const float *g, const float *in, int B, int I,
                   int O) {
    cpu_gemm_note(1, 0, O, I, B);
    skinny_arg a = {.dw = dw, .g = g, .x = in, .B = B, .I = I, .O = O};
    const size_t per = (size_t)(32768 / ((size_t)I + 1)) + 1;
    cpu_par_for(pool, (size_t)O, 1, per, dw_rows, &a);
}
