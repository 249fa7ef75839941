/* Fused CPU kernels, float32: the resettable Mamba-1 selective scan (ssmrl/kernels/selective.py) and the
 * resettable depthwise causal conv (ssmrl/kernels/conv.py; at the end of this file).
 *
 *   h_t = exp(dt_t A) keep_t h_{t-1} + dt_t x_t B_t        (per batch b, channel d: h is a vector over N)
 *   y_t = C_t . h_t
 *
 * The torch backend materialises (B, L, Dm, N) grids for exp(dt A), the states and every gradient: about
 * twenty passes over tensors far larger than the caches. Here each batch row runs its whole sequence with its
 * (N, Dm) state in L1, vectorised over channels; the backward recomputes the row's L states into a scratch buffer
 * ((L + 1) N Dm floats, in L2 at Decision Mamba's sizes) and then runs the reverse scan, so nothing of size
 * B*L*Dm*N is ever stored. (A first version vectorised over the N state entries of one channel: 2.3x slower.)
 *
 * forward(x, dt, A, B, C, keep, h0, y, hL)
 *   x, dt, y: (Bsz, L, Dm); A: (Dm, N); B, C: (Bsz, L, N); keep: (Bsz, L) (1 = carry, 0 = reset before t) or None;
 *   h0: (Bsz, Dm, N) or None; hL: (Bsz, Dm, N) written.
 * backward(x, dt, A, B, C, keep, h0, gy, ghL, gx, gdt, gA, gB, gC, gh0)
 *   gy: (Bsz, L, Dm); ghL: (Bsz, Dm, N); outputs gx, gdt (Bsz, L, Dm), gA (Dm, N), gB, gC (Bsz, L, N) and gh0
 *   (Bsz, Dm, N, or None) are written (zeroed here first).
 * All buffers are float32 and C-contiguous; every size is checked against x's and A's shapes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static int get(PyObject *obj, Buf *b, int writable, Py_ssize_t count, const char *name) {
    b->held = 0;
    if (obj == Py_None) return 0;
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s float32 buffer", name, writable ? " writable" : "");
        return -1;
    }
    b->held = 1;
    if (b->view.itemsize != 4 || b->view.format == NULL || strcmp(b->view.format, "f") != 0) {
        PyErr_Format(PyExc_TypeError, "%s must hold float32", name);
        return -1;
    }
    if (b->view.len != count * 4) {
        PyErr_Format(PyExc_ValueError, "%s has %zd values, expected %zd", name, b->view.len / 4, count);
        return -1;
    }
    return 0;
}

static void release(Buf *bufs, int n) {
    for (int i = 0; i < n; i++)
        if (bufs[i].held) PyBuffer_Release(&bufs[i].view);
}

#define F(b) ((float *)(b).view.buf)
#define OPT(b) ((b).held ? (float *)(b).view.buf : NULL)

/* One build serves every x86-64 CPU: gcc compiles these loops for AVX-512, AVX2 and baseline SSE2 and picks
 * one at load time (the wide variants call libmvec's 16- or 8-wide expf). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* Layout inside the loops: one batch row at a time, the state as (N, Dm) so that every inner loop runs over
 * contiguous channels (16 lanes of AVX-512) with no horizontal sums except the two per (t, n) that dB and dC need.
 * AT is A transposed to (N, Dm). */
CLONES static void scan_forward(Py_ssize_t bsz, Py_ssize_t L, Py_ssize_t Dm, Py_ssize_t N, const float *x,
                                const float *dt, const float *A, const float *Bm, const float *Cm, const float *keep,
                                const float *h0, float *y, float *hL, float *h, float *AT, float *u) {
    for (Py_ssize_t d = 0; d < Dm; d++)
        for (Py_ssize_t n = 0; n < N; n++) AT[n * Dm + d] = A[d * N + n];
    for (Py_ssize_t i = 0; i < bsz; i++) {
        for (Py_ssize_t n = 0; n < N; n++)
            for (Py_ssize_t d = 0; d < Dm; d++) h[n * Dm + d] = h0 ? h0[(i * Dm + d) * N + n] : 0.0f;
        for (Py_ssize_t t = 0; t < L; t++) {
            const Py_ssize_t row = (i * L + t) * Dm;
            const float *dtr = dt + row, *xr = x + row, *bt = Bm + (i * L + t) * N, *ct = Cm + (i * L + t) * N;
            const float k = keep ? keep[i * L + t] : 1.0f;
            float *yr = y + row;
#pragma omp simd
            for (Py_ssize_t d = 0; d < Dm; d++) {
                u[d] = dtr[d] * xr[d];
                yr[d] = 0.0f;
            }
            for (Py_ssize_t n = 0; n < N; n++) {
                const float bn = bt[n], cn = ct[n], *an = AT + n * Dm;
                float *hn = h + n * Dm;
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) {
                    const float hv = expf(dtr[d] * an[d]) * k * hn[d] + u[d] * bn;
                    hn[d] = hv;
                    yr[d] += cn * hv;
                }
            }
        }
        for (Py_ssize_t n = 0; n < N; n++)
            for (Py_ssize_t d = 0; d < Dm; d++) hL[(i * Dm + d) * N + n] = h[n * Dm + d];
    }
}

/* hs: (L + 1, N, Dm) states of one batch row (hs[0] = h_{-1}); g: (N, Dm) running d loss / d h_t; gAT: (N, Dm)
 * accumulated over the batch; gu, gea, u: (Dm,) per step. The decays are recomputed in the reverse pass (an exp
 * is cheaper than a second (L, N, Dm) buffer that no longer fits the cache). */
CLONES static void scan_backward(Py_ssize_t bsz, Py_ssize_t L, Py_ssize_t Dm, Py_ssize_t N, const float *x,
                                 const float *dt, const float *A, const float *Bm, const float *Cm,
                                 const float *keep, const float *h0, const float *gy, const float *ghL, float *gx,
                                 float *gdt, float *gA, float *gB, float *gC, float *gh0, float *hs, float *g,
                                 float *AT, float *gAT, float *gu, float *gea, float *u) {
    const Py_ssize_t S = N * Dm;
    for (Py_ssize_t d = 0; d < Dm; d++)
        for (Py_ssize_t n = 0; n < N; n++) AT[n * Dm + d] = A[d * N + n];
    memset(gAT, 0, sizeof(float) * S);
    for (Py_ssize_t i = 0; i < bsz; i++) {
        for (Py_ssize_t n = 0; n < N; n++)
            for (Py_ssize_t d = 0; d < Dm; d++) hs[n * Dm + d] = h0 ? h0[(i * Dm + d) * N + n] : 0.0f;
        for (Py_ssize_t t = 0; t < L; t++) { /* recompute the states */
            const Py_ssize_t row = (i * L + t) * Dm;
            const float *dtr = dt + row, *xr = x + row, *bt = Bm + (i * L + t) * N;
            const float k = keep ? keep[i * L + t] : 1.0f;
            for (Py_ssize_t n = 0; n < N; n++) {
                const float bn = bt[n], *an = AT + n * Dm, *prev = hs + t * S + n * Dm;
                float *cur = hs + (t + 1) * S + n * Dm;
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) cur[d] = expf(dtr[d] * an[d]) * k * prev[d] + dtr[d] * xr[d] * bn;
            }
        }
        for (Py_ssize_t n = 0; n < N; n++)
            for (Py_ssize_t d = 0; d < Dm; d++) g[n * Dm + d] = ghL ? ghL[(i * Dm + d) * N + n] : 0.0f;
        for (Py_ssize_t t = L - 1; t >= 0; t--) { /* reverse scan */
            const Py_ssize_t row = (i * L + t) * Dm;
            const float *dtr = dt + row, *xr = x + row, *gyr = gy + row;
            const float *bt = Bm + (i * L + t) * N, *ct = Cm + (i * L + t) * N;
            const float k = keep ? keep[i * L + t] : 1.0f;
            float *gbt = gB + (i * L + t) * N, *gct = gC + (i * L + t) * N;
#pragma omp simd
            for (Py_ssize_t d = 0; d < Dm; d++) {
                u[d] = dtr[d] * xr[d];
                gu[d] = 0.0f;
                gea[d] = 0.0f;
            }
            for (Py_ssize_t n = 0; n < N; n++) {
                const float bn = bt[n], cn = ct[n], *an = AT + n * Dm;
                const float *cur = hs + (t + 1) * S + n * Dm, *prev = hs + t * S + n * Dm;
                float *gn_ = g + n * Dm, *gan = gAT + n * Dm;
                float acc_c = 0.0f, acc_b = 0.0f;
#pragma omp simd reduction(+ : acc_c, acc_b)
                for (Py_ssize_t d = 0; d < Dm; d++) {
                    const float gn = gn_[d] + gyr[d] * cn; /* total d loss / d h_t */
                    acc_c += gyr[d] * cur[d];
                    acc_b += u[d] * gn;
                    gu[d] += gn * bn;
                    const float da = expf(dtr[d] * an[d]) * k;
                    const float gexp = gn * prev[d] * da; /* d loss / d (dt A) */
                    gea[d] += gexp * an[d];
                    gan[d] += gexp * dtr[d];
                    gn_[d] = gn * da;
                }
                gct[n] = acc_c;
                gbt[n] = acc_b;
            }
#pragma omp simd
            for (Py_ssize_t d = 0; d < Dm; d++) {
                gx[row + d] = gu[d] * dtr[d];
                gdt[row + d] = gu[d] * xr[d] + gea[d];
            }
        }
        if (gh0)
            for (Py_ssize_t n = 0; n < N; n++)
                for (Py_ssize_t d = 0; d < Dm; d++) gh0[(i * Dm + d) * N + n] = g[n * Dm + d];
    }
    for (Py_ssize_t d = 0; d < Dm; d++)
        for (Py_ssize_t n = 0; n < N; n++) gA[d * N + n] = gAT[n * Dm + d];
}

/* Sizes from x (Bsz, L, Dm) and A (Dm, N), passed as ints by the Python wrapper and checked via buffer lengths. */
static PyObject *forward(PyObject *self, PyObject *args) {
    PyObject *o[9];
    Py_ssize_t bsz, L, Dm, N;
    if (!PyArg_ParseTuple(args, "nnnnOOOOOOOOO", &bsz, &L, &Dm, &N, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &o[8]))
        return NULL;
    Buf b[9];
    memset(b, 0, sizeof b);
    const Py_ssize_t seq = bsz * L * Dm, state = bsz * Dm * N, bn = bsz * L * N;
    const char *names[9] = {"x", "dt", "A", "B", "C", "keep", "h0", "y", "hL"};
    const Py_ssize_t counts[9] = {seq, seq, Dm * N, bn, bn, bsz * L, state, seq, state};
    const int writable[9] = {0, 0, 0, 0, 0, 0, 0, 1, 1};
    for (int i = 0; i < 9; i++) {
        if ((i < 5 || i > 6) && o[i] == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s is required", names[i]);
            release(b, 9);
            return NULL;
        }
        if (get(o[i], &b[i], writable[i], counts[i], names[i]) < 0) {
            release(b, 9);
            return NULL;
        }
    }
    const float *x = F(b[0]), *dt = F(b[1]), *A = F(b[2]), *Bm = F(b[3]), *Cm = F(b[4]);
    const float *keep = OPT(b[5]), *h0 = OPT(b[6]);
    float *y = F(b[7]), *hL = F(b[8]);
    float *h = malloc(sizeof(float) * N * Dm), *AT = malloc(sizeof(float) * N * Dm), *u = malloc(sizeof(float) * Dm);
    if (!h || !AT || !u) {
        free(h), free(AT), free(u);
        release(b, 9);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    scan_forward(bsz, L, Dm, N, x, dt, A, Bm, Cm, keep, h0, y, hL, h, AT, u);
    Py_END_ALLOW_THREADS
    free(h), free(AT), free(u);
    release(b, 9);
    Py_RETURN_NONE;
}

static PyObject *backward(PyObject *self, PyObject *args) {
    PyObject *o[15];
    Py_ssize_t bsz, L, Dm, N;
    if (!PyArg_ParseTuple(args, "nnnnOOOOOOOOOOOOOOO", &bsz, &L, &Dm, &N, &o[0], &o[1], &o[2], &o[3], &o[4],
                          &o[5], &o[6], &o[7], &o[8], &o[9], &o[10], &o[11], &o[12], &o[13], &o[14]))
        return NULL;
    Buf b[15];
    memset(b, 0, sizeof b);
    const Py_ssize_t seq = bsz * L * Dm, state = bsz * Dm * N, bn = bsz * L * N;
    const char *names[15] = {"x", "dt", "A", "B", "C", "keep", "h0", "gy", "ghL",
                             "gx", "gdt", "gA", "gB", "gC", "gh0"};
    const Py_ssize_t counts[15] = {seq, seq, Dm * N, bn, bn, bsz * L, state, seq, state,
                                   seq, seq, Dm * N, bn, bn, state};
    for (int i = 0; i < 15; i++) {
        const int optional = (i == 5 || i == 6 || i == 8 || i == 14);
        if (!optional && o[i] == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s is required", names[i]);
            release(b, 15);
            return NULL;
        }
        if (get(o[i], &b[i], i >= 9, counts[i], names[i]) < 0) {
            release(b, 15);
            return NULL;
        }
    }
    const float *x = F(b[0]), *dt = F(b[1]), *A = F(b[2]), *Bm = F(b[3]), *Cm = F(b[4]);
    const float *keep = OPT(b[5]), *h0 = OPT(b[6]), *gy = F(b[7]), *ghL = OPT(b[8]);
    float *gx = F(b[9]), *gdt = F(b[10]), *gA = F(b[11]), *gB = F(b[12]), *gC = F(b[13]), *gh0 = OPT(b[14]);
    /* scratch: states h_{-1..L-1} and decays dA_0..L-1 of one (b, d), and the running state gradient */
    const Py_ssize_t S = N * Dm;
    float *hs = malloc(sizeof(float) * (L + 1) * S), *g = malloc(sizeof(float) * S), *AT = malloc(sizeof(float) * S);
    float *gAT = malloc(sizeof(float) * S), *gu = malloc(sizeof(float) * Dm), *gea = malloc(sizeof(float) * Dm);
    float *u = malloc(sizeof(float) * Dm);
    if (!hs || !g || !AT || !gAT || !gu || !gea || !u) {
        free(hs), free(g), free(AT), free(gAT), free(gu), free(gea), free(u);
        release(b, 15);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    scan_backward(bsz, L, Dm, N, x, dt, A, Bm, Cm, keep, h0, gy, ghL, gx, gdt, gA, gB, gC, gh0, hs, g, AT, gAT, gu,
                  gea, u);
    Py_END_ALLOW_THREADS
    free(hs), free(g), free(AT), free(gAT), free(gu), free(gea), free(u);
    release(b, 15);
    Py_RETURN_NONE;
}


/* ---------------------------------------------------------------------------------------------------------
 * Depthwise causal conv with resets (ssmrl/kernels/conv.py), float32:
 *   y[b,t,c] = bias[c] + sum_k valid(b,t,k) w[c,k] in(b, t-W+1+k, c)
 * in(b,p,c) = x[b,p,c] for p >= 0, prev[b, p+W-1, c] for p < 0 (the carried state, oldest first, (B, W-1, C));
 * valid(b,t,k): the input lies in the episode of step t (no `first` in (p, t]; carried inputs only when no
 * `first` in [0, t]). The torch path builds the same mask from cumsum(first).
 */
CLONES static void conv_forward_loops(Py_ssize_t bsz, Py_ssize_t L, Py_ssize_t C, Py_ssize_t W, const float *x,
                                      const float *prev, const float *w, const float *bias,
                                      const unsigned char *first, float *y) {
    for (Py_ssize_t i = 0; i < bsz; i++) {
        Py_ssize_t last = -(W + 1); /* most recent reset at or before t; "none" reaches below every tap */
        for (Py_ssize_t t = 0; t < L; t++) {
            if (first && first[i * L + t]) last = t;
            float *yt = y + (i * L + t) * C;
            for (Py_ssize_t c = 0; c < C; c++) yt[c] = bias ? bias[c] : 0.0f;
            for (Py_ssize_t k = 0; k < W; k++) {
                const Py_ssize_t p = t - W + 1 + k;
                if (p < last) continue; /* before this step's episode (or carried across a reset) */
                const float *src = p >= 0 ? x + (i * L + p) * C : (prev ? prev + (i * (W - 1) + p + W - 1) * C : NULL);
                if (!src) continue;
#pragma omp simd
                for (Py_ssize_t c = 0; c < C; c++) yt[c] += w[c * W + k] * src[c];
            }
        }
    }
}

/* gx, gprev (or NULL) and gw are written here; gbias is the caller's sum of gy. */
CLONES static void conv_backward_loops(Py_ssize_t bsz, Py_ssize_t L, Py_ssize_t C, Py_ssize_t W, const float *x,
                                       const float *prev, const float *w, const unsigned char *first,
                                       const float *gy, float *gx, float *gprev, float *gw, float *wt) {
    /* gw accumulates per tap in a (W, C) buffer so the inner loop runs over contiguous channels */
    memset(wt, 0, sizeof(float) * W * C);
    memset(gx, 0, sizeof(float) * bsz * L * C);
    if (gprev) memset(gprev, 0, sizeof(float) * bsz * (W - 1) * C);
    for (Py_ssize_t i = 0; i < bsz; i++) {
        Py_ssize_t last = -(W + 1);
        for (Py_ssize_t t = 0; t < L; t++) {
            if (first && first[i * L + t]) last = t;
            const float *g = gy + (i * L + t) * C;
            for (Py_ssize_t k = 0; k < W; k++) {
                const Py_ssize_t p = t - W + 1 + k;
                if (p < last) continue;
                const float *src;
                float *dst;
                if (p >= 0) {
                    src = x + (i * L + p) * C;
                    dst = gx + (i * L + p) * C;
                } else if (prev) {
                    src = prev + (i * (W - 1) + p + W - 1) * C;
                    dst = gprev ? gprev + (i * (W - 1) + p + W - 1) * C : NULL;
                } else {
                    continue;
                }
                float *acc = wt + k * C;
                if (dst) {
#pragma omp simd
                    for (Py_ssize_t c = 0; c < C; c++) dst[c] += w[c * W + k] * g[c];
                }
#pragma omp simd
                for (Py_ssize_t c = 0; c < C; c++) acc[c] += g[c] * src[c];
            }
        }
    }
    for (Py_ssize_t k = 0; k < W; k++)
        for (Py_ssize_t c = 0; c < C; c++) gw[c * W + k] = wt[k * C + c];
}

static int get_bytes(PyObject *obj, Buf *b, Py_ssize_t count, const char *name) {
    b->held = 0;
    if (obj == Py_None) return 0;
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    b->held = 1;
    if (b->view.len != count) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, expected %zd", name, b->view.len, count);
        return -1;
    }
    return 0;
}

/* conv_forward(B, L, C, W, x, prev, w, bias, first, y): first is a uint8/bool (B, L) buffer or None. */
static PyObject *conv_forward(PyObject *self, PyObject *args) {
    PyObject *o[6];
    Py_ssize_t bsz, L, C, W;
    if (!PyArg_ParseTuple(args, "nnnnOOOOOO", &bsz, &L, &C, &W, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5]))
        return NULL;
    Buf b[6];
    memset(b, 0, sizeof b);
    if (o[0] == Py_None || o[2] == Py_None || o[5] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "x, w and y are required");
        return NULL;
    }
    if (get(o[0], &b[0], 0, bsz * L * C, "x") < 0 || get(o[1], &b[1], 0, bsz * (W - 1) * C, "prev") < 0 ||
        get(o[2], &b[2], 0, C * W, "w") < 0 || get(o[3], &b[3], 0, C, "bias") < 0 ||
        get_bytes(o[4], &b[4], bsz * L, "first") < 0 || get(o[5], &b[5], 1, bsz * L * C, "y") < 0) {
        release(b, 6);
        return NULL;
    }
    const unsigned char *first = b[4].held ? (const unsigned char *)b[4].view.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    conv_forward_loops(bsz, L, C, W, F(b[0]), OPT(b[1]), F(b[2]), OPT(b[3]), first, F(b[5]));
    Py_END_ALLOW_THREADS
    release(b, 6);
    Py_RETURN_NONE;
}

/* conv_backward(B, L, C, W, x, prev, w, first, gy, gx, gprev, gw) */
static PyObject *conv_backward(PyObject *self, PyObject *args) {
    PyObject *o[8];
    Py_ssize_t bsz, L, C, W;
    if (!PyArg_ParseTuple(args, "nnnnOOOOOOOO", &bsz, &L, &C, &W, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7]))
        return NULL;
    Buf b[8];
    memset(b, 0, sizeof b);
    if (o[0] == Py_None || o[2] == Py_None || o[4] == Py_None || o[5] == Py_None || o[7] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "x, w, gy, gx and gw are required");
        return NULL;
    }
    if (get(o[0], &b[0], 0, bsz * L * C, "x") < 0 || get(o[1], &b[1], 0, bsz * (W - 1) * C, "prev") < 0 ||
        get(o[2], &b[2], 0, C * W, "w") < 0 || get_bytes(o[3], &b[3], bsz * L, "first") < 0 ||
        get(o[4], &b[4], 0, bsz * L * C, "gy") < 0 || get(o[5], &b[5], 1, bsz * L * C, "gx") < 0 ||
        get(o[6], &b[6], 1, bsz * (W - 1) * C, "gprev") < 0 || get(o[7], &b[7], 1, C * W, "gw") < 0) {
        release(b, 8);
        return NULL;
    }
    float *wt = malloc(sizeof(float) * W * C);
    if (!wt) {
        release(b, 8);
        return PyErr_NoMemory();
    }
    const unsigned char *first = b[3].held ? (const unsigned char *)b[3].view.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    conv_backward_loops(bsz, L, C, W, F(b[0]), OPT(b[1]), F(b[2]), first, F(b[4]), F(b[5]), OPT(b[6]), F(b[7]), wt);
    Py_END_ALLOW_THREADS
    free(wt);
    release(b, 8);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"forward", forward, METH_VARARGS, "Selective scan forward (see the file header)."},
    {"backward", backward, METH_VARARGS, "Selective scan backward (see the file header)."},
    {"conv_forward", conv_forward, METH_VARARGS, "Depthwise causal conv with resets, forward."},
    {"conv_backward", conv_backward, METH_VARARGS, "Depthwise causal conv with resets, backward."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_selective_cpu", NULL, -1, methods};

PyMODINIT_FUNC PyInit__selective_cpu(void) { return PyModule_Create(&module); }
