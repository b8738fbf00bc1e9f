// Site features h_j(phi) and h'_j = dh_j/dphi (SPEC §3.1-3.2), the twin of
// src/flow/features.rs (Features::eval), and the feature mixing g = F~ h.
// Rows: odd: sin(w_b u) for b < n_omega; non-odd: then cos(w_b u), then 1; then u if linear.
#include "eqflow_kernel_args.h"

template <typename R> __device__ __forceinline__ void sin_cos(R x, R *s, R *c);
template <> __device__ __forceinline__ void sin_cos<float>(float x, float *s, float *c) { sincosf(x, s, c); }
template <> __device__ __forceinline__ void sin_cos<double>(double x, double *s, double *c) { sincos(x, s, c); }

// One thread per site of the batch.
template <typename R>
__device__ void features(const eqflow_features_args &a) {
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (unsigned long long)a.n * a.v) return;
    unsigned long long b = t / a.v;
    unsigned int x = (unsigned int)(t % a.v), v = a.v, nw = a.n_omega;
    R u = ((const R *)a.u)[t];
    const R *omega = (const R *)a.omega;
    R *h = (R *)a.h + b * a.n_h * v + x;
    R *hp = (R *)a.hp + b * a.n_h * v + x;
    for (unsigned int j = 0; j < nw; ++j) {
        R w = omega[j], s, c;
        sin_cos<R>(w * u, &s, &c);
        h[j * v] = s;
        hp[j * v] = w * c;
        if (a.kind == 1) {
            h[(nw + j) * v] = c;
            hp[(nw + j) * v] = -w * s;
        }
    }
    unsigned int row = nw;
    if (a.kind == 1) {
        row = 2 * nw;
        h[row * v] = (R)1;
        hp[row * v] = (R)0;
        row += 1;
    }
    if (a.linear) {
        h[row * v] = u;
        hp[row * v] = (R)1;
    }
}

extern "C" __global__ void eqflow_features_f32(eqflow_features_args a) { features<float>(a); }
extern "C" __global__ void eqflow_features_f64(eqflow_features_args a) { features<double>(a); }

// g[b][c][x] = sum_j F~[c][j] h[b][j][x]; one thread per (b, c, x).
template <typename R>
__device__ void mix(const eqflow_mix_args &a) {
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long per = (unsigned long long)a.n_c * a.v;
    if (t >= (unsigned long long)a.n * per) return;
    unsigned long long b = t / per;
    unsigned int c = (unsigned int)((t % per) / a.v), x = (unsigned int)(t % a.v);
    const R *f = (const R *)a.f + (unsigned long long)c * a.n_h;
    const R *h = (const R *)a.h + b * a.n_h * a.v + x;
    R acc = (R)0;
    for (unsigned int j = 0; j < a.n_h; ++j) acc += f[j] * h[(unsigned long long)j * a.v];
    ((R *)a.g)[t] = acc;
}

extern "C" __global__ void eqflow_mix_f32(eqflow_mix_args a) { mix<float>(a); }
extern "C" __global__ void eqflow_mix_f64(eqflow_mix_args a) { mix<double>(a); }
