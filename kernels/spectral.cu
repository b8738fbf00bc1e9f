// Convolutions through discrete Fourier transforms, for any L: the device's counterpart of
// src/flow/conv/fft.rs. A 2D transform is a pass along the rows and one along the columns,
// each output summing L terms, so a convolution of n_c channels costs O(n_c V L) per field
// instead of the direct sum's O(n_c V^2). Real inputs keep half their spectrum (k1 < L/2 + 1).
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
