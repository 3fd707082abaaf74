// The CUDA backend's kernels (src/backend/cuda/*.cu, rewritten by gen.py) run
// on the CPU under emu.h, against the CPU backend's kernels at the baseline
// level: bit for bit where the arithmetic is the same (elementwise passes,
// pooling, dropout masks, optimizer updates), within tight tolerances for
// the reductions (other summation orders, in double). Covers NaN/Inf, ties,
// bad labels, NULL options, in-place calls, partial Philox blocks, and empty
// inputs. No GPU needed: this is what CI can check of the CUDA kernels.
#include "emu.h"
#include <cstdint>
#include <vector>
#include <string>
#include <array>
#include "batchlab/backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_util.cuh"
#include "backend/dropout_mask.h"

thread_local EmuDim threadIdx, blockIdx;
EmuDim blockDim, gridDim;
std::barrier<> *emu_bar;
std::vector<EmuWarp> *emu_warps;
std::atomic<int> emu_or;
unsigned char *emu_dyn_smem;
long emu_launches;

static const bl_kernels *KC;
static bl_backend *BE;
static int fails = 0, checks = 0;
static cudaStream_t S = nullptr;
static double scratch[BLK_SCRATCH_DOUBLES];

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd() {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static float frand() {
    return (float)((rnd() >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static std::vector<float> vrand(size_t n, float sc = 1.0f) {
    std::vector<float> v(n);
    for (auto &x : v)
        x = frand() * sc;
    return v;
}
static std::vector<float> vint(size_t n, int range) { // small integers: ties
    std::vector<float> v(n);
    for (auto &x : v)
        x = (float)(rnd() % range);
    return v;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            fails++;                                                                               \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static bool same_bits(const float *a, const float *b, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0 && !(std::isnan(a[i]) && std::isnan(b[i]))) {
            printf("  %s: first diff at %zu: %.9g vs %.9g\n", what, i, a[i], b[i]);
            return false;
        }
    return true;
}
static bool close(const float *a, const float *b, size_t n, double tol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (std::isnan(a[i]) != std::isnan(b[i]) || d > tol * (1 + fabs((double)b[i]))) {
            printf("  %s: diff at %zu: %.9g vs %.9g\n", what, i, a[i], b[i]);
            return false;
        }
    }
    return true;
}
static bool closed(double a, double b, double tol) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return fabs(a - b) <= tol * (1 + fabs(b));
}

static void t_bias_act() {
    int shapes[][2] = {{1, 1}, {7, 10}, {33, 300}, {5, 1025}};
    for (auto &sh : shapes)
        for (int withb = 0; withb < 2; withb++)
            for (int relu = 0; relu < 2; relu++) {
                int rows = sh[0], cols = sh[1];
                auto out = vrand((size_t)rows * cols), b = vrand(cols);
                out[0] = -0.0f;
                if (out.size() > 3) out[3] = NAN;
                auto ref = out;
                const float *bp = withb ? b.data() : nullptr;
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < cols; j++) {
                        float &o = ref[(size_t)r * cols + j];
                        if (bp && relu) {
                            float v = o + bp[j];
                            o = v < 0.0f ? 0.0f : v;
                        } else if (bp)
                            o += bp[j];
                        else if (relu)
                            o = o < 0.0f ? 0.0f : o;
                    }
                blk_bias_act_rows(S, out.data(), bp, rows, cols, relu);
                CHECK(same_bits(out.data(), ref.data(), out.size(), "bias_act_rows"), "rows %d %d",
                      rows, cols);
            }
    int cs[][3] = {{2, 3, 49}, {3, 5, 1}, {1, 64, 784}, {4, 7, 13}};
    for (auto &sh : cs)
        for (int withb = 0; withb < 2; withb++)
            for (int relu = 0; relu < 2; relu++) {
                int B = sh[0], K = sh[1], PQ = sh[2];
                auto out = vrand((size_t)B * K * PQ), b = vrand(K);
                out[0] = -0.0f;
                auto ref = out;
                const float *bp = withb ? b.data() : nullptr;
                if (bp || relu)
                    for (int i = 0; i < B; i++)
                        for (int k = 0; k < K; k++)
                            for (int q = 0; q < PQ; q++) {
                                float &o = ref[((size_t)i * K + k) * PQ + q];
                                float v = bp ? bp[k] : 0.0f;
                                float x = o + v;
                                o = relu ? (x < 0.0f ? 0.0f : x) : x;
                            }
                blk_bias_act_channels(S, out.data(), bp, B, K, PQ, relu);
                CHECK(same_bits(out.data(), ref.data(), out.size(), "bias_act_channels"), "ch");
            }
    auto g = vrand(1000), y = vrand(1000), ref = g;
    for (int i = 0; i < 1000; i++)
        ref[i] = y[i] > 0.0f ? g[i] : 0.0f;
    blk_relu_mask(S, g.data(), y.data(), 1000);
    CHECK(same_bits(g.data(), ref.data(), 1000, "relu_mask"), "relu_mask");
}

static void t_bias_grad() {
    std::vector<std::array<int, 3>> shapes = {
        {1, 1, 1},   {37, 10, 1}, {130, 256, 1}, {33, 1024, 1},  {3, 5, 49},
        {9, 4, 784}, {2, 3, 7},   {40, 2, 3},    {300, 1024, 1}, {20, 2, 1}};
    if (getenv("EMU_QUICK")) shapes = {{64, 3, 784}, {20000, 10, 1}, {2100, 1024, 1}};
    for (auto &sh : shapes) {
        int B = sh[0], C = sh[1], HW = sh[2];
        auto g = vrand((size_t)B * C * HW);
        auto db = vrand(C);
        std::vector<double> ref(C);
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int b = 0; b < B; b++)
                for (int h = 0; h < HW; h++)
                    s += g[((size_t)b * C + c) * HW + h];
            ref[c] = db[c] + s;
        }
        if (HW == 1)
            blk_bias_grad_rows(S, db.data(), g.data(), B, C);
        else
            blk_bias_grad_channels(S, db.data(), g.data(), B, C, HW);
        bool ok = true;
        for (int c = 0; c < C; c++)
            ok &= closed(db[c], ref[c], 1e-6);
        CHECK(ok, "bias grad %d %d %d", B, C, HW);
    }
}

static bl_pool_dims pdims(int B, int C, int H, int W, int k, int s) {
    bl_pool_dims d = {B, C, H, W, k, s, (H - k) / s + 1, (W - k) / s + 1};
    return d;
}

static void t_pool() {
    bl_pool_dims ds[] = {pdims(2, 3, 8, 8, 2, 2), pdims(2, 3, 7, 9, 3, 2), pdims(1, 2, 6, 6, 3, 1),
                         pdims(3, 2, 5, 5, 2, 3), pdims(1, 1, 4, 4, 4, 1), pdims(2, 2, 9, 7, 2, 1)};
    for (auto &d : ds)
        for (int ties = 0; ties < 2; ties++) {
            size_t ni = (size_t)d.B * d.C * d.H * d.W, no = (size_t)d.B * d.C * d.P * d.Q;
            auto in = ties ? vint(ni, 3) : vrand(ni);
            if (!ties) {
                in[5] = NAN;
                in[0] = NAN;
            }
            std::vector<float> o1(no), o2(no), dout = vrand(no), g1(ni, 7.0f), g2(ni, 9.0f);
            std::vector<int32_t> a1(no), a2(no);
            blk_maxpool_forward(S, o1.data(), a1.data(), in.data(), &d);
            KC->maxpool_forward(nullptr, o2.data(), a2.data(), in.data(), &d);
            CHECK(same_bits(o1.data(), o2.data(), no, "maxpool out") && a1 == a2,
                  "maxpool fwd k%d s%d", d.k, d.stride);
            blk_maxpool_backward(S, g1.data(), dout.data(), a2.data(), &d);
            KC->maxpool_backward(nullptr, g2.data(), dout.data(), a2.data(), &d);
            CHECK(same_bits(g1.data(), g2.data(), ni, "maxpool din"), "maxpool bwd k%d s%d", d.k,
                  d.stride);
            blk_avgpool_forward(S, o1.data(), in.data(), &d);
            KC->avgpool_forward(nullptr, o2.data(), in.data(), &d);
            CHECK(same_bits(o1.data(), o2.data(), no, "avgpool out"), "avgpool fwd");
            std::fill(g1.begin(), g1.end(), 5.0f);
            blk_avgpool_backward(S, g1.data(), dout.data(), &d);
            KC->avgpool_backward(nullptr, g2.data(), dout.data(), &d);
            CHECK(same_bits(g1.data(), g2.data(), ni, "avgpool din"), "avgpool bwd k%d s%d", d.k,
                  d.stride);
        }
}

static void t_act() {
    const size_t n = 3001;
    auto in = vrand(n, 6.0f);
    in[0] = 0.0f, in[1] = -0.0f, in[2] = 40.0f, in[3] = -40.0f, in[4] = -100.0f, in[5] = NAN;
    auto dout = vrand(n);
    for (int a = 0; a < 5; a++) {
        std::vector<float> o1(n), o2(n), g1(n), g2(n);
        blk_act_forward(S, o1.data(), in.data(), n, (bl_act)a, 0.1f);
        KC->act_forward(nullptr, o2.data(), in.data(), n, (bl_act)a, 0.1f);
        CHECK(same_bits(o1.data(), o2.data(), n, "act fwd"), "act fwd %d", a);
        blk_act_backward(S, g1.data(), dout.data(), in.data(), o2.data(), n, (bl_act)a, 0.1f);
        KC->act_backward(nullptr, g2.data(), dout.data(), in.data(), o2.data(), n, (bl_act)a, 0.1f);
        CHECK(same_bits(g1.data(), g2.data(), n, "act bwd"), "act bwd %d", a);
    }
}

static void t_dropout() {
    size_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 1000, 4099};
    uint64_t firsts[] = {0, 1, 2, 3, 1001, (1ull << 32) * 4 - 2};
    float ps[] = {0.0f, 0.3f, 0.5f, 1.0f};
    for (size_t n : ns)
        for (uint64_t f : firsts)
            for (float p : ps) {
                bl_dropout_key key = {77 + f, 5, 3, f};
                auto in = vrand(n), dout = vrand(n);
                std::vector<float> o1(n, 1e30f), o2(n), g1(n), g2(n);
                std::vector<uint8_t> m1(n, 9), m2(n, 7);
                blk_dropout_forward(S, o1.data(), m1.data(), in.data(), n, p, &key);
                KC->dropout_forward(nullptr, o2.data(), m2.data(), in.data(), n, p, &key);
                CHECK(m1 == m2 && same_bits(o1.data(), o2.data(), n, "dropout out"),
                      "dropout n %zu first %llu p %g", n, (unsigned long long)f, p);
                blk_dropout_backward(S, g1.data(), dout.data(), m2.data(), n, p);
                KC->dropout_backward(nullptr, g2.data(), dout.data(), m2.data(), n, p);
                CHECK(same_bits(g1.data(), g2.data(), n, "dropout din"), "dropout bwd");
            }
}

static void t_bn() {
    std::vector<std::array<int, 3>> shapes = {{4, 3, 5},    {16, 70, 1}, {1, 2, 9},
                                              {7, 5, 13},   {32, 8, 49}, {2, 300, 1},
                                              {3, 1030, 1}, {1, 3, 1},   {200, 1030, 1}};
    if (getenv("EMU_QUICK")) shapes = {{64, 3, 784}, {7, 5, 13}, {2100, 1024, 1}};
    for (auto &sh : shapes)
        for (int variant = 0; variant < 3; variant++) {
            if (getenv("EMU_QUICK") && sh[1] == 1024 && variant) continue;
            int B = sh[0], C = sh[1], HW = sh[2];
            size_t n = (size_t)B * C * HW;
            auto in = vrand(n, 3.0f);
            for (auto &x : in)
                x += 2.0f;
            auto dout = vrand(n), gamma = vrand(C), beta = vrand(C), rm = vrand(C), rv = vrand(C);
            for (auto &x : rv)
                x = 1.0f + fabsf(x);
            bool aff = variant != 1, run = variant != 2;
            const float *gp = aff ? gamma.data() : nullptr, *bp = aff ? beta.data() : nullptr;
            std::vector<float> o1(n), o2(n), m1(C), m2(C), r1(C), r2(C), rm1 = rm, rm2 = rm,
                                                                         rv1 = rv, rv2 = rv;
            blk_batchnorm_forward_train(S, o1.data(), m1.data(), r1.data(),
                                        run ? rm1.data() : nullptr, run ? rv1.data() : nullptr,
                                        in.data(), gp, bp, B, C, HW, 0.1f, 1e-5f);
            KC->batchnorm_forward_train(nullptr, o2.data(), m2.data(), r2.data(),
                                        run ? rm2.data() : nullptr, run ? rv2.data() : nullptr,
                                        in.data(), gp, bp, B, C, HW, 0.1f, 1e-5f);
            CHECK(close(o1.data(), o2.data(), n, 2e-5, "bn out") &&
                      close(m1.data(), m2.data(), C, 1e-6, "bn mean") &&
                      close(r1.data(), r2.data(), C, 2e-5, "bn rstd") &&
                      close(rm1.data(), rm2.data(), C, 1e-6, "rm") &&
                      close(rv1.data(), rv2.data(), C, 2e-5, "rv"),
                  "bn train %d %d %d v%d", B, C, HW, variant);
            // in place
            std::vector<float> inp = in, m3(C), r3(C);
            blk_batchnorm_forward_train(S, inp.data(), m3.data(), r3.data(), nullptr, nullptr,
                                        inp.data(), gp, bp, B, C, HW, 0.1f, 1e-5f);
            CHECK(same_bits(inp.data(), o1.data(), n, "bn in place"), "bn in place");
            // backward
            auto dg1 = vrand(C), db1 = vrand(C), dg2 = dg1, db2 = db1;
            std::vector<float> g1(n, 1e30f), g2(n);
            bool wantdin = variant != 2;
            blk_batchnorm_backward(S, wantdin ? g1.data() : nullptr, dg1.data(), db1.data(),
                                   dout.data(), in.data(), m2.data(), r2.data(), gp, B, C, HW);
            KC->batchnorm_backward(nullptr, wantdin ? g2.data() : nullptr, dg2.data(), db2.data(),
                                   dout.data(), in.data(), m2.data(), r2.data(), gp, B, C, HW);
            CHECK((!wantdin || close(g1.data(), g2.data(), n, 5e-5, "bn din")) &&
                      close(dg1.data(), dg2.data(), C, 1e-5, "dgamma") &&
                      close(db1.data(), db2.data(), C, 1e-5, "dbeta"),
                  "bn bwd %d %d %d", B, C, HW);
            if (wantdin) { // in place din == dout
                auto d3 = dout, dg3 = dg1, db3 = db1;
                blk_batchnorm_backward(S, d3.data(), dg3.data(), db3.data(), d3.data(), in.data(),
                                       m2.data(), r2.data(), gp, B, C, HW);
                CHECK(same_bits(d3.data(), g1.data(), n, "bn din in place"), "bn bwd in place");
            }
            blk_batchnorm_forward_eval(S, o1.data(), in.data(), gp, bp, rm.data(), rv.data(), B, C,
                                       HW, 1e-5f);
            KC->batchnorm_forward_eval(nullptr, o2.data(), in.data(), gp, bp, rm.data(), rv.data(),
                                       B, C, HW, 1e-5f);
            CHECK(same_bits(o1.data(), o2.data(), n, "bn eval"), "bn eval %d %d %d", B, C, HW);
        }
}

static void t_losses() {
    int shapes[][2] = {{1, 1}, {5, 10}, {33, 7}, {128, 10}, {9, 100}, {17, 33}, {3, 2}};
    for (auto &sh : shapes)
        for (int variant = 0; variant < 3; variant++) {
            int B = sh[0], K = sh[1];
            size_t n = (size_t)B * K;
            auto x = variant == 1 ? vint(n, 3) : vrand(n, 5.0f);
            for (size_t i = 0; i < n; i += 3)
                x[i] *= 6.0f;
            std::vector<int32_t> lab(B);
            for (int b = 0; b < B; b++)
                lab[b] = (int32_t)(rnd() % K);
            if (variant == 2) {
                lab[B / 2] = K; // bad label: NaN loss
                if (K > 2) x[1] = NAN;
                if (B > 2) x[(size_t)2 * K] = NAN; // row 2 starts with NaN
            }
            std::vector<float> p1(n), p2(n), d1(n), d2(n);
            double loss = -1;
            int corr = -5, corr2 = 0;
            blk_softmax_xent_forward(S, scratch, &loss, &corr, p1.data(), x.data(), lab.data(), B,
                                     K);
            double loss2 =
                KC->softmax_xent_forward(nullptr, p2.data(), &corr2, x.data(), lab.data(), B, K);
            CHECK(closed(loss, loss2, 1e-9) && corr == corr2 &&
                      close(p1.data(), p2.data(), n, 1e-6, "probs"),
                  "xent fwd %d %d v%d: %.17g %.17g %d %d", B, K, variant, loss, loss2, corr, corr2);
            blk_softmax_xent_backward(S, d1.data(), p2.data(), lab.data(), B, K, 0.25f);
            KC->softmax_xent_backward(nullptr, d2.data(), p2.data(), lab.data(), B, K, 0.25f);
            CHECK(same_bits(d1.data(), d2.data(), n, "xent bwd"), "xent bwd");
            // mse
            std::vector<float> t1(n, 5.0f), t2(n, 6.0f);
            double l1 = -1, l2 = -2;
            int c1 = -3, c2 = 0;
            blk_mse_forward(S, scratch, &l1, &c1, t1.data(), x.data(), lab.data(), B, K);
            BE->ops->mse_forward(BE, &l2, &c2, t2.data(), x.data(), lab.data(), B, K);
            CHECK(closed(l1, l2, 1e-12) && c1 == c2 && same_bits(t1.data(), t2.data(), n, "target"),
                  "mse fwd %d %d v%d: %.17g %.17g %d %d", B, K, variant, l1, l2, c1, c2);
            blk_mse_backward(S, d1.data(), x.data(), t2.data(), B, K, 0.5f);
            KC->mse_backward(nullptr, d2.data(), x.data(), t2.data(), B, K, 0.5f);
            CHECK(same_bits(d1.data(), d2.data(), n, "mse bwd"), "mse bwd");
        }
    // B == 0 and K == 0
    double loss = 7;
    int corr = 7;
    blk_softmax_xent_forward(S, scratch, &loss, &corr, nullptr, nullptr, nullptr, 0, 10);
    CHECK(loss == 0.0 && corr == 0, "xent B=0");
    int32_t lab0 = 0;
    blk_softmax_xent_forward(S, scratch, &loss, &corr, nullptr, nullptr, &lab0, 1, 0);
    CHECK(std::isnan(loss) && corr == 0, "xent K=0");
    loss = 7, corr = 7;
    blk_mse_forward(S, scratch, &loss, &corr, nullptr, nullptr, nullptr, 0, 10);
    CHECK(loss == 0.0 && corr == 0, "mse B=0");
}

static void t_example() {
    int shapes[][3] = {{1, 1, 1}, {9, 13, 5}, {40, 70, 33}, {3, 0, 4}};
    for (auto &sh : shapes)
        for (int bias = 0; bias < 2; bias++) {
            int B = sh[0], I = sh[1], O = sh[2];
            auto dz = vrand((size_t)B * O), x = vrand((size_t)B * I);
            for (int o = 0; o < O; o++)
                dz[o] = 0.0f;           // row 0: zero gradient
            if (I > 0) x[0] = INFINITY; // never read: g == 0
            double s1 = -1, s2 = 0;
            blk_per_example_sumsq(S, scratch, &s1, dz.data(), x.data(), B, I, O, bias);
            BE->ops->per_example_sumsq(BE, &s2, dz.data(), x.data(), B, I, O, bias);
            CHECK(closed(s1, s2, 1e-12), "per example %d %d %d: %.17g %.17g", B, I, O, s1, s2);
        }
}

static void t_flat() {
    size_t ns[] = {0, 1, 5, 1000, 3001, 70000};
    for (size_t n : ns) {
        auto x = vrand(n);
        double s = -1, r = KC->sumsq(nullptr, x.data(), n);
        blk_sumsq(S, scratch, &s, x.data(), n);
        CHECK(closed(s, r, 1e-13), "sumsq %zu", n);
        int f = -1;
        blk_all_finite(S, scratch, &f, x.data(), n);
        CHECK(f == 1, "finite %zu", n);
        if (n) {
            float bad[] = {NAN, INFINITY, -INFINITY};
            size_t where[] = {0, n / 2, n - 1};
            for (float bv : bad)
                for (size_t w : where) {
                    auto z = x;
                    z[w] = bv;
                    blk_all_finite(S, scratch, &f, z.data(), n);
                    CHECK(f == 0, "not finite %zu at %zu", n, w);
                }
            auto z = x;
            z[0] = 3.4e38f;
            blk_all_finite(S, scratch, &f, z.data(), n);
            CHECK(f == 1, "huge finite");
        }
        auto y = vrand(n), y2 = y, z1 = x, z2 = x;
        blk_axpy(S, y.data(), x.data(), n, 0.3f);
        KC->axpy(nullptr, y2.data(), x.data(), n, 0.3f);
        CHECK(same_bits(y.data(), y2.data(), n, "axpy"), "axpy");
        blk_scale(S, z1.data(), n, -2.5f);
        KC->scale(nullptr, z2.data(), n, -2.5f);
        CHECK(same_bits(z1.data(), z2.data(), n, "scale"), "scale");
        blk_fill(S, z1.data(), n, 0.75f);
        KC->fill(nullptr, z2.data(), n, 0.75f);
        CHECK(same_bits(z1.data(), z2.data(), n, "fill"), "fill");
        for (int mode = 0; mode < 6; mode++) {
            auto p1 = vrand(n), g = vrand(n), b1 = vrand(n), p2 = p1, b2 = b1;
            float mom = mode == 0 ? 0.0f : 0.9f;
            int nest = mode & 1, first = (mode >> 1) & 1;
            blk_sgd_step(S, p1.data(), b1.data(), g.data(), n, 0.1f, mom, nest, 1e-4f, first);
            KC->sgd_step(nullptr, p2.data(), b2.data(), g.data(), n, 0.1f, mom, nest, 1e-4f, first);
            CHECK(same_bits(p1.data(), p2.data(), n, "sgd p") &&
                      same_bits(b1.data(), b2.data(), n, "sgd buf"),
                  "sgd mode %d", mode);
        }
        for (int dec = 0; dec < 2; dec++)
            for (long t : {0L, 1L, 7L}) {
                auto p1 = vrand(n), g = vrand(n), m1 = vrand(n), v1 = vrand(n);
                for (auto &q : v1)
                    q = fabsf(q);
                auto p2 = p1, m2 = m1, v2 = v1;
                blk_adam_step(S, p1.data(), m1.data(), v1.data(), g.data(), n, 1e-3f, 0.9f, 0.999f,
                              1e-8f, 0.01f, dec, t);
                KC->adam_step(nullptr, p2.data(), m2.data(), v2.data(), g.data(), n, 1e-3f, 0.9f,
                              0.999f, 1e-8f, 0.01f, dec, t);
                CHECK(same_bits(p1.data(), p2.data(), n, "adam p") &&
                          same_bits(m1.data(), m2.data(), n, "adam m") &&
                          same_bits(v1.data(), v2.data(), n, "adam v"),
                      "adam dec %d t %ld", dec, t);
            }
    }
}

int main(int argc, char **argv) {
    KC = bl_cpu_kernels();
    bl_error err;
    if (bl_backend_get(&BE, "cpu", &err) != BL_OK) return 2;
    const char *why;
    printf("isa %s; ", bl_cpu_isa_name(bl_cpu_isa_selected(&why)));
    printf("cpu kernels: %s; BLK_MAX_BLOCKS %d BLK_RED_BLOCKS %d\n", KC->name, BLK_MAX_BLOCKS,
           BLK_RED_BLOCKS);
    std::string only = argc > 1 ? argv[1] : "";
    struct {
        const char *name;
        void (*f)();
    } tests[] = {{"bias_act", t_bias_act}, {"bias_grad", t_bias_grad}, {"pool", t_pool},
                 {"act", t_act},           {"dropout", t_dropout},     {"bn", t_bn},
                 {"losses", t_losses},     {"example", t_example},     {"flat", t_flat}};
    for (auto &t : tests)
        if (only.empty() || only == t.name) {
            int f0 = fails;
            t.f();
            printf("%-10s %s\n", t.name, fails == f0 ? "ok" : "FAILED");
        }
    printf("%d checks, %d failures, %ld launches\n", checks, fails, emu_launches);
    return fails != 0;
}
