/* Fused max-pool + area resize of Atari frames (the hot path of envs.atari_common, see envs/frame_ops.py).
 *
 * pool_area(a, b, out, acc, ysrc, ydst, yw, xsrc, xdst, xw)
 *   a, b   uint8 (H, W, C) C-contiguous frames; b may be None (no pooling)
 *   out    uint8 (h, w, C) C-contiguous, written
 *   acc    float32 (h, W, C) scratch
 *   ysrc, ydst, yw and xsrc, xdst, xw: area tables (int32 src index, int32 dst index, float32 weight), one
 *          entry per (src, dst) overlap, computed in Python like OpenCV's INTER_AREA tables
 * Vertical pass first (whole rows, vectorisable), then horizontal; rounding half to even like cv2's uint8 cast.
 * All shapes are checked here as well as in Python: a wrong buffer never reads or writes out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static int get_buf(PyObject *obj, Buf *b, int writable, const char *name) {
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s buffer", name, writable ? " writable" : "");
        return -1;
    }
    b->held = 1;
    return 0;
}

static void release(Buf *bufs, int n) {
    for (int i = 0; i < n; i++)
        if (bufs[i].held) PyBuffer_Release(&bufs[i].view);
}

/* line = float(max(a, b)) (or float(a) when b is NULL), n values; tmp: n bytes of scratch. Two simple loops
 * (byte max, then widening) so that both vectorise. */
static void pool_row(const uint8_t *restrict a, const uint8_t *restrict b, uint8_t *restrict tmp,
                     float *restrict line, Py_ssize_t n) {
    if (b) {
        for (Py_ssize_t i = 0; i < n; i++) tmp[i] = a[i] > b[i] ? a[i] : b[i];
        a = tmp;
    }
    for (Py_ssize_t i = 0; i < n; i++) line[i] = (float)a[i];
}

/* dst += w * src, n values */
static void axpy(float *restrict dst, const float *restrict src, float w, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) dst[i] += w * src[i];
}

static PyObject *pool_area(PyObject *self, PyObject *args) {
    PyObject *oa, *ob, *oout, *oacc, *oys, *oyd, *oyw, *oxs, *oxd, *oxw;
    Py_ssize_t H, W, C, h, w;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOnnnnn", &oa, &ob, &oout, &oacc, &oys, &oyd, &oyw, &oxs, &oxd, &oxw,
                          &H, &W, &C, &h, &w))
        return NULL;
    Buf bufs[10];
    memset(bufs, 0, sizeof(bufs));
    const int pooled = ob != Py_None;
    if (get_buf(oa, &bufs[0], 0, "a") || (pooled && get_buf(ob, &bufs[1], 0, "b")) ||
        get_buf(oout, &bufs[2], 1, "out") || get_buf(oacc, &bufs[3], 1, "acc") || get_buf(oys, &bufs[4], 0, "ysrc") ||
        get_buf(oyd, &bufs[5], 0, "ydst") || get_buf(oyw, &bufs[6], 0, "yw") || get_buf(oxs, &bufs[7], 0, "xsrc") ||
        get_buf(oxd, &bufs[8], 0, "xdst") || get_buf(oxw, &bufs[9], 0, "xw")) {
        release(bufs, 10);
        return NULL;
    }
    const Py_ssize_t ny = bufs[4].view.len / 4, nx = bufs[7].view.len / 4, row = W * C;
    if (bufs[0].view.len != H * row || (pooled && bufs[1].view.len != H * row) || bufs[2].view.len != h * w * C ||
        bufs[3].view.len != (Py_ssize_t)sizeof(float) * h * row || bufs[5].view.len != ny * 4 ||
        bufs[6].view.len != ny * 4 || bufs[8].view.len != nx * 4 || bufs[9].view.len != nx * 4) {
        release(bufs, 10);
        PyErr_SetString(PyExc_ValueError, "pool_area: buffer sizes do not match (H, W, C), (h, w) and the tables");
        return NULL;
    }
    const uint8_t *a = bufs[0].view.buf, *b = pooled ? bufs[1].view.buf : NULL;
    uint8_t *out = bufs[2].view.buf;
    float *acc = bufs[3].view.buf;
    const int32_t *ys = bufs[4].view.buf, *yd = bufs[5].view.buf, *xs = bufs[7].view.buf, *xd = bufs[8].view.buf;
    const float *yw = bufs[6].view.buf, *xw = bufs[9].view.buf;
    for (Py_ssize_t k = 0; k < ny; k++)
        if (ys[k] < 0 || ys[k] >= H || yd[k] < 0 || yd[k] >= h) goto bad_table;
    for (Py_ssize_t k = 0; k < nx; k++)
        if (xs[k] < 0 || xs[k] >= W || xd[k] < 0 || xd[k] >= w) goto bad_table;

    Py_BEGIN_ALLOW_THREADS
    memset(acc, 0, sizeof(float) * h * row);
    float line[row > 0 ? row : 1];
    uint8_t tmp[row > 0 ? row : 1];
    Py_ssize_t loaded = -1;
    for (Py_ssize_t k = 0; k < ny; k++) {
        if (ys[k] != loaded) {  /* the table is sorted by source row: each row is pooled and converted once */
            loaded = ys[k];
            pool_row(a + loaded * row, b ? b + loaded * row : NULL, tmp, line, row);
        }
        axpy(acc + yd[k] * row, line, yw[k], row);
    }
    float sums[w * C > 0 ? w * C : 1];
    for (Py_ssize_t y = 0; y < h; y++) {
        const float *src = acc + y * row;
        memset(sums, 0, sizeof(float) * w * C);
        if (C == 3) {  /* RGB: a fixed inner length lets the compiler unroll it */
            for (Py_ssize_t k = 0; k < nx; k++) {
                const float *s = src + xs[k] * 3;
                float *d = sums + xd[k] * 3;
                const float wk = xw[k];
                d[0] += wk * s[0];
                d[1] += wk * s[1];
                d[2] += wk * s[2];
            }
        } else {
            for (Py_ssize_t k = 0; k < nx; k++) {
                const float *s = src + xs[k] * C;
                float *d = sums + xd[k] * C;
                const float wk = xw[k];
                for (Py_ssize_t c = 0; c < C; c++) d[c] += wk * s[c];
            }
        }
        uint8_t *o = out + y * w * C;
        for (Py_ssize_t i = 0; i < w * C; i++) {
            /* Round half to even like cv2's uint8 cast: adding and removing 1.5 * 2^23 leaves the float rounded
             * to an integer in the default rounding mode (|x| < 2^22); unlike lrintf it vectorises. Without
             * -ffast-math the compiler keeps both operations. */
            const float x = sums[i] < 0.0f ? 0.0f : (sums[i] > 255.0f ? 255.0f : sums[i]);
            o[i] = (uint8_t)(int)((x + 12582912.0f) - 12582912.0f);
        }
    }
    Py_END_ALLOW_THREADS
    release(bufs, 10);
    Py_RETURN_NONE;

bad_table:
    release(bufs, 10);
    PyErr_SetString(PyExc_ValueError, "pool_area: a table index is out of range");
    return NULL;
}

static PyMethodDef methods[] = {
    {"pool_area", pool_area, METH_VARARGS, "Fused max-pool of two uint8 frames and area resize (see module doc)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_frame_ops",
                                    "Fused max-pool + area resize for Atari frames.", -1, methods};

PyMODINIT_FUNC PyInit__frame_ops(void) { return PyModule_Create(&module); }
