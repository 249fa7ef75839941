/* Fused CPU kernels, float32: the resettable Mamba-1 selective scan (ssmrl/kernels/selective.py) and the
 * resettable depthwise causal conv (ssmrl/kernels/conv.py; at the end of this file).
 *
 *   dt_t = softplus(dt_raw_t) (optional)
 *   h_t = exp(dt_t A) keep_t h_{t-1} + dt_t x_t B_t        (per batch b, channel d: h is a vector over N)
 *   y_t = C_t . h_t,   out_t = (y_t + D x_t) silu(z_t)     (D and z optional)
 *
 * The torch backend materialises (B, L, Dm, N) grids for exp(dt A), the states and every gradient: about
 * twenty passes over tensors far larger than the caches. Here each batch row runs its whole sequence with its
 * (N, Dm) state in L1, vectorised over channels; the backward recomputes the row's L states into a scratch buffer
 * ((L + 1) N Dm floats, in L2 at Decision Mamba's sizes) and then runs the reverse scan, so nothing of size
 * B*L*Dm*N is ever stored. (A first version vectorised over the N state entries of one channel: 2.3x slower.)
 * Fusing softplus, D and the gate saves the separate passes torch makes over (B, L, Dm) for each of them.
 *
 * forward(x, dt, A, B, C, keep, h0, D, z, softplus, out, hL)
 *   x, dt, z, out: (Bsz, L, Dm); A: (Dm, N); B, C: (Bsz, L, N); keep: (Bsz, L) (1 = carry, 0 = reset before t) or
 *   None; h0: (Bsz, Dm, N) or None; D: (Dm,) or None; hL: (Bsz, Dm, N) written.
 * backward(x, dt, A, B, C, keep, h0, D, z, softplus, gout, ghL, gx, gdt, gA, gB, gC, gh0, gD, gz)
 *   gout: (Bsz, L, Dm); ghL: (Bsz, Dm, N) or None; every g* after ghL is written (gdt is the gradient of dt_raw
 *   when softplus is set; gh0, gD, gz exactly when h0, D, z are given).
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

/* exp for the decays, inlined so that the loops vectorise without a libmvec call (the forward spent most of its
 * time in expf): x = k ln2 + r with |r| <= ln2/2, exp(r) by Cephes' degree-5 minimax polynomial (about 1 ulp),
 * times 2^k built from the exponent bits. Arguments are clamped to [-87.3, 88.3], where 2^k stays a normal
 * float (k in [-126, 127]); beyond 88.3 the result saturates at exp(88.3) ~ 2e38 instead of overflowing. */
static inline float exp_approx(float x) {
    x = fminf(fmaxf(x, -87.3f), 88.3f);
    const float k = rintf(x * 1.44269504f);
    const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int i; float f; } two_k = {.i = ((int)k + 127) << 23};
    return p * two_k.f;
}

/* The epilogue and prologue fused into the kernels (optional, as mamba-ssm's selective_scan_fn):
 *   dt = softplus(dt_raw) when softplus is set (torch's threshold: dt_raw > 20 passes through),
 *   out = (y + D x) * silu(z)   (the D term when D is given, the gate when z is given). */
static inline float softplus_f(float v) { return v > 20.0f ? v : log1pf(exp_approx(v)); }
static inline float sigmoid_f(float v) { return 1.0f / (1.0f + exp_approx(-v)); }

static inline void load_dt(const float *dtr, int softplus, Py_ssize_t Dm, float *dtv) {
    if (softplus) {
#pragma omp simd
        for (Py_ssize_t d = 0; d < Dm; d++) dtv[d] = softplus_f(dtr[d]);
    } else {
        memcpy(dtv, dtr, sizeof(float) * Dm);
    }
}

/* The loops keep per-channel arrays (A, a state, their gradients) as (N, Dm) so that channels are contiguous;
 * the buffers outside are (Dm, N). to_state_layout: src (Dm, N), or NULL for zeros -> dst (N, Dm);
 * from_state_layout: the way back. */
static void to_state_layout(Py_ssize_t Dm, Py_ssize_t N, const float *src, float *dst) {
    for (Py_ssize_t n = 0; n < N; n++)
        for (Py_ssize_t d = 0; d < Dm; d++) dst[n * Dm + d] = src ? src[d * N + n] : 0.0f;
}

static void from_state_layout(Py_ssize_t Dm, Py_ssize_t N, const float *src, float *dst) {
    for (Py_ssize_t d = 0; d < Dm; d++)
        for (Py_ssize_t n = 0; n < N; n++) dst[d * N + n] = src[n * Dm + d];
}

/* Layout inside the loops: one batch row at a time, the state as (N, Dm) so that every inner loop runs over
 * contiguous channels (16 lanes of AVX-512) with no horizontal sums except the two per (t, n) that dB and dC need.
 * AT is A transposed to (N, Dm); dtv holds one step's dt (Dm,). */
CLONES static void scan_forward(Py_ssize_t bsz, Py_ssize_t L, Py_ssize_t Dm, Py_ssize_t N, const float *x,
                                const float *dt, const float *A, const float *Bm, const float *Cm, const float *keep,
                                const float *h0, const float *D, const float *z, int softplus, float *y, float *hL,
                                float *h, float *AT, float *u, float *dtv) {
    to_state_layout(Dm, N, A, AT);
    for (Py_ssize_t i = 0; i < bsz; i++) {
        to_state_layout(Dm, N, h0 ? h0 + i * Dm * N : NULL, h);
        for (Py_ssize_t t = 0; t < L; t++) {
            const Py_ssize_t row = (i * L + t) * Dm;
            const float *xr = x + row, *bt = Bm + (i * L + t) * N, *ct = Cm + (i * L + t) * N;
            const float k = keep ? keep[i * L + t] : 1.0f;
            float *yr = y + row;
            load_dt(dt + row, softplus, Dm, dtv);
#pragma omp simd
            for (Py_ssize_t d = 0; d < Dm; d++) {
                u[d] = dtv[d] * xr[d];
                yr[d] = 0.0f;
            }
            for (Py_ssize_t n = 0; n < N; n++) {
                const float bn = bt[n], cn = ct[n], *an = AT + n * Dm;
                float *hn = h + n * Dm;
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) {
                    const float hv = exp_approx(dtv[d] * an[d]) * k * hn[d] + u[d] * bn;
                    hn[d] = hv;
                    yr[d] += cn * hv;
                }
            }
            if (D) {
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) yr[d] += D[d] * xr[d];
            }
            if (z) {
                const float *zr = z + row;
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) yr[d] *= zr[d] * sigmoid_f(zr[d]);
            }
        }
        from_state_layout(Dm, N, h, hL + i * Dm * N);
    }
}

/* hs: (L + 1, N, Dm) states of one batch row (hs[0] = h_{-1}); g: (N, Dm) running d loss / d h_t; gAT: (N, Dm)
 * accumulated over the batch; gu, gea, u, dtv, gys, ys: (Dm,) per step. The decays are recomputed in the reverse pass
 * (an exp is cheaper than a second (L, N, Dm) buffer that no longer fits the cache). gout is d loss / d out; with
 * the fused epilogue, gys = gout silu(z) is the gradient of the scan's own y, and ys (= C . h_t, accumulated in the
 * reverse pass) gives gz = gout (ys + D x) silu'(z). */
CLONES static void scan_backward(Py_ssize_t bsz, Py_ssize_t L, Py_ssize_t Dm, Py_ssize_t N, const float *x,
                                 const float *dt, const float *A, const float *Bm, const float *Cm,
                                 const float *keep, const float *h0, const float *D, const float *z, int softplus,
                                 const float *gout, const float *ghL, float *gx, float *gdt, float *gA, float *gB,
                                 float *gC, float *gh0, float *gD, float *gz, float *hs, float *g, float *AT,
                                 float *gAT, float *gu, float *gea, float *u, float *dtv, float *gys, float *ys) {
    const Py_ssize_t S = N * Dm;
    to_state_layout(Dm, N, A, AT);
    memset(gAT, 0, sizeof(float) * S);
    if (gD) memset(gD, 0, sizeof(float) * Dm);
    for (Py_ssize_t i = 0; i < bsz; i++) {
        to_state_layout(Dm, N, h0 ? h0 + i * Dm * N : NULL, hs);
        for (Py_ssize_t t = 0; t < L; t++) { /* recompute the states */
            const Py_ssize_t row = (i * L + t) * Dm;
            const float *xr = x + row, *bt = Bm + (i * L + t) * N;
            const float k = keep ? keep[i * L + t] : 1.0f;
            load_dt(dt + row, softplus, Dm, dtv);
            for (Py_ssize_t n = 0; n < N; n++) {
                const float bn = bt[n], *an = AT + n * Dm, *prev = hs + t * S + n * Dm;
                float *cur = hs + (t + 1) * S + n * Dm;
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++)
                    cur[d] = exp_approx(dtv[d] * an[d]) * k * prev[d] + dtv[d] * xr[d] * bn;
            }
        }
        to_state_layout(Dm, N, ghL ? ghL + i * Dm * N : NULL, g);
        for (Py_ssize_t t = L - 1; t >= 0; t--) { /* reverse scan */
            const Py_ssize_t row = (i * L + t) * Dm;
            const float *xr = x + row, *gor = gout + row, *zr = z ? z + row : NULL;
            const float *bt = Bm + (i * L + t) * N, *ct = Cm + (i * L + t) * N;
            const float k = keep ? keep[i * L + t] : 1.0f;
            float *gbt = gB + (i * L + t) * N, *gct = gC + (i * L + t) * N;
            load_dt(dt + row, softplus, Dm, dtv);
#pragma omp simd
            for (Py_ssize_t d = 0; d < Dm; d++) {
                u[d] = dtv[d] * xr[d];
                gu[d] = 0.0f;
                gea[d] = 0.0f;
                ys[d] = 0.0f;
                gys[d] = gor[d];
            }
            if (zr) {
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) gys[d] *= zr[d] * sigmoid_f(zr[d]);
            }
            for (Py_ssize_t n = 0; n < N; n++) {
                const float bn = bt[n], cn = ct[n], *an = AT + n * Dm;
                const float *cur = hs + (t + 1) * S + n * Dm, *prev = hs + t * S + n * Dm;
                float *gn_ = g + n * Dm, *gan = gAT + n * Dm;
                float acc_c = 0.0f, acc_b = 0.0f;
#pragma omp simd reduction(+ : acc_c, acc_b)
                for (Py_ssize_t d = 0; d < Dm; d++) {
                    const float gn = gn_[d] + gys[d] * cn; /* total d loss / d h_t */
                    acc_c += gys[d] * cur[d];
                    acc_b += u[d] * gn;
                    gu[d] += gn * bn;
                    ys[d] += cn * cur[d];
                    const float da = exp_approx(dtv[d] * an[d]) * k;
                    const float gexp = gn * prev[d] * da; /* d loss / d (dt A) */
                    gea[d] += gexp * an[d];
                    gan[d] += gexp * dtv[d];
                    gn_[d] = gn * da;
                }
                gct[n] = acc_c;
                gbt[n] = acc_b;
            }
            /* one branch-free loop per optional term, so that each vectorises */
            const float *dtraw = dt + row;
#pragma omp simd
            for (Py_ssize_t d = 0; d < Dm; d++) {
                gdt[row + d] = gu[d] * xr[d] + gea[d];
                gx[row + d] = gu[d] * dtv[d];
            }
            if (softplus) {
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) gdt[row + d] *= sigmoid_f(dtraw[d]);
            }
            if (D) {
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) {
                    gx[row + d] += gys[d] * D[d];
                    gD[d] += gys[d] * xr[d];
                    ys[d] += D[d] * xr[d];
                }
            }
            if (z) {
#pragma omp simd
                for (Py_ssize_t d = 0; d < Dm; d++) {
                    const float s = sigmoid_f(zr[d]);
                    gz[row + d] = gor[d] * ys[d] * s * (1.0f + zr[d] * (1.0f - s));
                }
            }
        }
        if (gh0)
            from_state_layout(Dm, N, g, gh0 + i * Dm * N);
    }
    from_state_layout(Dm, N, gAT, gA);
}

/* Parses the Python objects in order into bufs, each with its expected float count; entries flagged optional
 * may be None, entries flagged writable are outputs. Returns 0 or -1 with the error set (bufs released). */
static int get_all(PyObject **o, Buf *b, int count, const char *const *names, const Py_ssize_t *counts,
                   const int *optional, const int *writable) {
    memset(b, 0, sizeof(Buf) * count);
    for (int i = 0; i < count; i++) {
        if (!optional[i] && o[i] == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s is required", names[i]);
            release(b, count);
            return -1;
        }
        if (get(o[i], &b[i], writable[i], counts[i], names[i]) < 0) {
            release(b, count);
            return -1;
        }
    }
    return 0;
}

/* forward(Bsz, L, Dm, N, x, dt, A, B, C, keep, h0, D, z, softplus, y, hL): sizes from x (Bsz, L, Dm) and A (Dm, N),
 * checked against every buffer's length. */
static PyObject *forward(PyObject *self, PyObject *args) {
    PyObject *o[11];
    Py_ssize_t bsz, L, Dm, N;
    int softplus;
    if (!PyArg_ParseTuple(args, "nnnnOOOOOOOOOpOO", &bsz, &L, &Dm, &N, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &o[8], &softplus, &o[9], &o[10]))
        return NULL;
    Buf b[11];
    const Py_ssize_t seq = bsz * L * Dm, state = bsz * Dm * N, bn = bsz * L * N;
    const char *const names[11] = {"x", "dt", "A", "B", "C", "keep", "h0", "D", "z", "y", "hL"};
    const Py_ssize_t counts[11] = {seq, seq, Dm * N, bn, bn, bsz * L, state, Dm, seq, seq, state};
    const int optional[11] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0};
    const int writable[11] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    if (get_all(o, b, 11, names, counts, optional, writable) < 0) return NULL;
    float *h = malloc(sizeof(float) * N * Dm), *AT = malloc(sizeof(float) * N * Dm);
    float *u = malloc(sizeof(float) * Dm), *dtv = malloc(sizeof(float) * Dm);
    if (!h || !AT || !u || !dtv) {
        free(h), free(AT), free(u), free(dtv);
        release(b, 11);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    scan_forward(bsz, L, Dm, N, F(b[0]), F(b[1]), F(b[2]), F(b[3]), F(b[4]), OPT(b[5]), OPT(b[6]), OPT(b[7]),
                 OPT(b[8]), softplus, F(b[9]), F(b[10]), h, AT, u, dtv);
    Py_END_ALLOW_THREADS
    free(h), free(AT), free(u), free(dtv);
    release(b, 11);
    Py_RETURN_NONE;
}

/* backward(Bsz, L, Dm, N, x, dt, A, B, C, keep, h0, D, z, softplus, gout, ghL, gx, gdt, gA, gB, gC, gh0, gD, gz):
 * the g* outputs after ghL are written (gh0, gD, gz only when h0, D, z were given). */
static PyObject *backward(PyObject *self, PyObject *args) {
    PyObject *o[19];
    Py_ssize_t bsz, L, Dm, N;
    int softplus;
    if (!PyArg_ParseTuple(args, "nnnnOOOOOOOOOpOOOOOOOOOO", &bsz, &L, &Dm, &N, &o[0], &o[1], &o[2], &o[3], &o[4],
                          &o[5], &o[6], &o[7], &o[8], &softplus, &o[9], &o[10], &o[11], &o[12], &o[13], &o[14],
                          &o[15], &o[16], &o[17], &o[18]))
        return NULL;
    Buf b[19];
    const Py_ssize_t seq = bsz * L * Dm, state = bsz * Dm * N, bn = bsz * L * N;
    const char *const names[19] = {"x", "dt", "A", "B", "C", "keep", "h0", "D", "z", "gout", "ghL",
                                   "gx", "gdt", "gA", "gB", "gC", "gh0", "gD", "gz"};
    const Py_ssize_t counts[19] = {seq, seq, Dm * N, bn, bn, bsz * L, state, Dm, seq, seq, state,
                                   seq, seq, Dm * N, bn, bn, state, Dm, seq};
    const int optional[19] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1};
    const int writable[19] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    if (get_all(o, b, 19, names, counts, optional, writable) < 0) return NULL;
    if ((o[6] == Py_None) != (o[16] == Py_None) || (o[7] == Py_None) != (o[17] == Py_None) ||
        (o[8] == Py_None) != (o[18] == Py_None)) {
        PyErr_SetString(PyExc_TypeError, "gh0, gD and gz must be given exactly when h0, D and z are");
        release(b, 19);
        return NULL;
    }
    /* scratch: the states h_{-1..L-1} of one batch row, the running state gradient and per-step vectors */
    const Py_ssize_t S = N * Dm;
    float *hs = malloc(sizeof(float) * (L + 1) * S), *g = malloc(sizeof(float) * S), *AT = malloc(sizeof(float) * S);
    float *gAT = malloc(sizeof(float) * S), *vec = malloc(sizeof(float) * 6 * Dm);
    if (!hs || !g || !AT || !gAT || !vec) {
        free(hs), free(g), free(AT), free(gAT), free(vec);
        release(b, 19);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    scan_backward(bsz, L, Dm, N, F(b[0]), F(b[1]), F(b[2]), F(b[3]), F(b[4]), OPT(b[5]), OPT(b[6]), OPT(b[7]),
                  OPT(b[8]), softplus, F(b[9]), OPT(b[10]), F(b[11]), F(b[12]), F(b[13]), F(b[14]), F(b[15]),
                  OPT(b[16]), OPT(b[17]), OPT(b[18]), hs, g, AT, gAT, vec, vec + Dm, vec + 2 * Dm, vec + 3 * Dm,
                  vec + 4 * Dm, vec + 5 * Dm);
    Py_END_ALLOW_THREADS
    free(hs), free(g), free(AT), free(gAT), free(vec);
    release(b, 19);
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
