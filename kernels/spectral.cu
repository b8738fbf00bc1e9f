// Convolutions through discrete Fourier transforms, for any L: the device's counterpart of
// src/flow/conv/fft.rs. A 2D transform is a pass along the rows and one along the columns;
// real inputs keep half their spectrum (k1 < L/2 + 1). Each pass has two forms: per output
// a sum of L terms (any L; a convolution of n_c channels then costs O(n_c V L) per field
// instead of the direct sum's O(n_c V^2)), and per line a radix-2 FFT (L a power of two up
// to 64: O(n_c V log L)); the launch code picks.
// Twins: src/cuda/twin.rs (the same passes in f64 on the host); as a whole the path is checked
// against the direct sum of src/flow/conv/direct.rs.
#include "eqflow_kernel_args.h"

__device__ __forceinline__ unsigned long long thread_index() {
    return (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ unsigned int half_len(unsigned int l) { return l / 2 + 1; }

// One thread per (m, x0, k1).
template <typename R>
__device__ void dft_rows(const eqflow_spectral_args &a) {
    unsigned int l = a.l, h = half_len(l);
    unsigned long long t = thread_index();
    if (t >= (unsigned long long)a.m * l * h) return;
    unsigned int k1 = (unsigned int)(t % h);
    const R *x = (const R *)a.input + (t / h) * l;
    const R *tw = (const R *)a.tw;
    R re = (R)0, im = (R)0;
    unsigned int e = 0;
    for (unsigned int x1 = 0; x1 < l; ++x1) {
        re += x[x1] * tw[2 * e];
        im -= x[x1] * tw[2 * e + 1];
        e += k1;
        if (e >= l) e -= l;
    }
    R *o = (R *)a.out + 2 * t;
    o[0] = re;
    o[1] = im;
}

extern "C" __global__ void eqflow_dft_rows_f32(eqflow_spectral_args a) { dft_rows<float>(a); }
extern "C" __global__ void eqflow_dft_rows_f64(eqflow_spectral_args a) { dft_rows<double>(a); }

// One thread per (m, k, k1).
template <typename R>
__device__ void dft_cols(const eqflow_spectral_args &a) {
    unsigned int l = a.l, h = half_len(l);
    unsigned long long t = thread_index();
    if (t >= (unsigned long long)a.m * l * h) return;
    unsigned int k1 = (unsigned int)(t % h), k = (unsigned int)((t / h) % l);
    const R *x = (const R *)a.input + 2 * ((t / ((unsigned long long)h * l)) * l * h + k1);
    const R *tw = (const R *)a.tw;
    R sign = a.mode ? (R)1 : (R)-1;
    R re = (R)0, im = (R)0;
    unsigned int e = 0;
    for (unsigned int j = 0; j < l; ++j) {
        R xr = x[2 * (unsigned long long)j * h], xi = x[2 * (unsigned long long)j * h + 1];
        R c = tw[2 * e], s = sign * tw[2 * e + 1];
        re += xr * c - xi * s;
        im += xr * s + xi * c;
        e += k;
        if (e >= l) e -= l;
    }
    R *o = (R *)a.out + 2 * t;
    o[0] = re;
    o[1] = im;
}

extern "C" __global__ void eqflow_dft_cols_f32(eqflow_spectral_args a) { dft_cols<float>(a); }
extern "C" __global__ void eqflow_dft_cols_f64(eqflow_spectral_args a) { dft_cols<double>(a); }

// One thread per (m, x0, x1).
template <typename R>
__device__ void dft_c2r(const eqflow_spectral_args &a) {
    unsigned int l = a.l, h = half_len(l);
    unsigned long long t = thread_index();
    if (t >= (unsigned long long)a.m * l * l) return;
    unsigned int x1 = (unsigned int)(t % l);
    const R *x = (const R *)a.input + 2 * (t / l) * h;
    const R *tw = (const R *)a.tw;
    R acc = (R)0;
    unsigned int e = 0;
    for (unsigned int k1 = 0; k1 < h; ++k1) {
        R term = x[2 * k1] * tw[2 * e] - x[2 * k1 + 1] * tw[2 * e + 1];
        acc += (k1 == 0 || 2 * k1 == l) ? term : (R)2 * term;
        e += x1;
        if (e >= l) e -= l;
    }
    if (a.mode == 0) {
        ((R *)a.out)[t] = acc * (R)a.scale;
    } else {
        ((double *)a.out)[a.offset + t] += (double)acc * a.scale;
    }
}

extern "C" __global__ void eqflow_dft_c2r_f32(eqflow_spectral_args a) { dft_c2r<float>(a); }
extern "C" __global__ void eqflow_dft_c2r_f64(eqflow_spectral_args a) { dft_c2r<double>(a); }

// The same three passes for L a power of two up to FFT_MAX: one thread per line (a row or a
// column), which it transforms by an in-place radix-2 FFT in its own arrays, O(L log L) per line
// instead of the DFT's O(L^2). Same arguments, same results up to rounding.
#define FFT_MAX 64

__device__ __forceinline__ bool fft_ok(unsigned int l) { return l >= 2 && l <= FFT_MAX && (l & (l - 1)) == 0; }

// x <- sum_n x[n] e^{sign 2 pi i k n / l}, l a power of two; tw as above.
template <typename R>
__device__ void fft_line(R *re, R *im, unsigned int l, const R *tw, R sign) {
    unsigned int bits = 0;
    while ((1u << bits) < l) ++bits;
    for (unsigned int i = 0; i < l; ++i) {
        unsigned int j = 0;
        for (unsigned int b = 0; b < bits; ++b) j |= ((i >> b) & 1u) << (bits - 1 - b);
        if (i < j) {
            R t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
    }
    for (unsigned int len = 2; len <= l; len <<= 1) {
        unsigned int half = len >> 1, step = l / len;
        for (unsigned int i = 0; i < l; i += len) {
            for (unsigned int j = 0; j < half; ++j) {
                R c = tw[2 * j * step], s = sign * tw[2 * j * step + 1];
                unsigned int p = i + j, q = i + j + half;
                R vr = re[q] * c - im[q] * s, vi = re[q] * s + im[q] * c;
                re[q] = re[p] - vr;
                im[q] = im[p] - vi;
                re[p] += vr;
                im[p] += vi;
            }
        }
    }
}

// One thread per (m, x0): the row's half spectrum.
template <typename R>
__device__ void fft_rows(const eqflow_spectral_args &a) {
    unsigned int l = a.l, h = half_len(l);
    unsigned long long t = thread_index();
    if (!fft_ok(l) || t >= (unsigned long long)a.m * l) return;
    const R *x = (const R *)a.input + t * l;
    R re[FFT_MAX], im[FFT_MAX];
    for (unsigned int i = 0; i < l; ++i) {
        re[i] = x[i];
        im[i] = (R)0;
    }
    fft_line(re, im, l, (const R *)a.tw, (R)-1);
    R *o = (R *)a.out + 2 * t * h;
    for (unsigned int k = 0; k < h; ++k) {
        o[2 * k] = re[k];
        o[2 * k + 1] = im[k];
    }
}

extern "C" __global__ void eqflow_fft_rows_f32(eqflow_spectral_args a) { fft_rows<float>(a); }
extern "C" __global__ void eqflow_fft_rows_f64(eqflow_spectral_args a) { fft_rows<double>(a); }

// One thread per (m, k1): the column's transform.
template <typename R>
__device__ void fft_cols(const eqflow_spectral_args &a) {
    unsigned int l = a.l, h = half_len(l);
    unsigned long long t = thread_index();
    if (!fft_ok(l) || t >= (unsigned long long)a.m * h) return;
    unsigned long long base = 2 * ((t / h) * l * h + t % h);
    const R *x = (const R *)a.input + base;
    R re[FFT_MAX], im[FFT_MAX];
    for (unsigned int j = 0; j < l; ++j) {
        re[j] = x[2 * (unsigned long long)j * h];
        im[j] = x[2 * (unsigned long long)j * h + 1];
    }
    fft_line(re, im, l, (const R *)a.tw, a.mode ? (R)1 : (R)-1);
    R *o = (R *)a.out + base;
    for (unsigned int k = 0; k < l; ++k) {
        o[2 * (unsigned long long)k * h] = re[k];
        o[2 * (unsigned long long)k * h + 1] = im[k];
    }
}

extern "C" __global__ void eqflow_fft_cols_f32(eqflow_spectral_args a) { fft_cols<float>(a); }
extern "C" __global__ void eqflow_fft_cols_f64(eqflow_spectral_args a) { fft_cols<double>(a); }

// One thread per (m, x0): the Hermitian extension of the row's half spectrum, transformed
// back; its real part (the weights of eqflow_dft_c2r, implicitly).
template <typename R>
__device__ void fft_c2r(const eqflow_spectral_args &a) {
    unsigned int l = a.l, h = half_len(l);
    unsigned long long t = thread_index();
    if (!fft_ok(l) || t >= (unsigned long long)a.m * l) return;
    const R *x = (const R *)a.input + 2 * t * h;
    R re[FFT_MAX], im[FFT_MAX];
    for (unsigned int k = 0; k < l; ++k) {
        if (k < h) {
            re[k] = x[2 * k];
            im[k] = x[2 * k + 1];
        } else {
            re[k] = x[2 * (l - k)];
            im[k] = -x[2 * (l - k) + 1];
        }
    }
    fft_line(re, im, l, (const R *)a.tw, (R)1);
    for (unsigned int i = 0; i < l; ++i) {
        if (a.mode == 0) {
            ((R *)a.out)[t * l + i] = re[i] * (R)a.scale;
        } else {
            ((double *)a.out)[a.offset + t * l + i] += (double)re[i] * a.scale;
        }
    }
}

extern "C" __global__ void eqflow_fft_c2r_f32(eqflow_spectral_args a) { fft_c2r<float>(a); }
extern "C" __global__ void eqflow_fft_c2r_f64(eqflow_spectral_args a) { fft_c2r<double>(a); }

// Products of spectra; modes in eqflow_kernel_args.h. Threads: (b, k) for mode 0, (b, c, k)
// for mode 1, (c, k) for mode 2 (fields summed in order: deterministic).
template <typename R>
__device__ void spectral_mix(const eqflow_spectral_args &a) {
    unsigned long long nk = (unsigned long long)a.l * half_len(a.l);
    unsigned long long t = thread_index();
    const R *w = (const R *)a.w, *x = (const R *)a.input;
    R *o = (R *)a.out;
    if (a.mode == 0) {
        if (t >= a.m * nk) return;
        unsigned long long b = t / nk, k = t % nk;
        R re = (R)0, im = (R)0;
        for (unsigned int c = 0; c < a.n_c; ++c) {
            const R *wc = w + 2 * (c * nk + k), *xc = x + 2 * ((b * a.n_c + c) * nk + k);
            re += wc[0] * xc[0] - wc[1] * xc[1];
            im += wc[0] * xc[1] + wc[1] * xc[0];
        }
        o[2 * t] = re;
        o[2 * t + 1] = im;
    } else if (a.mode == 1) {
        if (t >= a.m * a.n_c * nk) return;
        unsigned long long k = t % nk, c = (t / nk) % a.n_c, b = t / (nk * a.n_c);
        const R *wc = w + 2 * (c * nk + k), *xb = x + 2 * (b * nk + k);
        o[2 * t] = wc[0] * xb[0] + wc[1] * xb[1];
        o[2 * t + 1] = wc[0] * xb[1] - wc[1] * xb[0];
    } else {
        if (t >= a.n_c * nk) return;
        unsigned long long k = t % nk, c = t / nk;
        double re = 0.0, im = 0.0;
        for (unsigned int b = 0; b < a.m; ++b) {
            const R *wb = w + 2 * (b * nk + k), *xb = x + 2 * ((b * a.n_c + c) * nk + k);
            re += (double)(wb[0] * xb[0] + wb[1] * xb[1]);
            im += (double)(wb[1] * xb[0] - wb[0] * xb[1]);
        }
        o[2 * t] = (R)re;
        o[2 * t + 1] = (R)im;
    }
}

extern "C" __global__ void eqflow_spectral_mix_f32(eqflow_spectral_args a) { spectral_mix<float>(a); }
extern "C" __global__ void eqflow_spectral_mix_f64(eqflow_spectral_args a) { spectral_mix<double>(a); }
