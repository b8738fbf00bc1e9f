// Training on the device: the slot weights from the parameters, and the backward pass of the
// vector field (VectorField::vjp) as kernels, with f64 accumulation of every parameter
// cotangent. Twins: src/cuda/twin.rs (built from SlotWeights::new, conv::direct::backward,
// Features::backward and the tail of VectorField::vjp).
#include "eqflow_kernel_args.h"

#define TRAIN_THREADS 256

template <typename R> __device__ __forceinline__ void sin_cos(R x, R *s, R *c);
template <> __device__ __forceinline__ void sin_cos<float>(float x, float *s, float *c) { sincosf(x, s, c); }
template <> __device__ __forceinline__ void sin_cos<double>(double x, double *s, double *c) { sincos(x, s, c); }

__device__ __forceinline__ unsigned long long thread_index() {
    return (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
}

// f64 tree reduction over the block (blockDim.x a power of two, TRAIN_THREADS at most).
__device__ __forceinline__ double block_sum(double s, double *part) {
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    double tot = part[0];
    __syncthreads();
    return tot;
}

// One thread per (c, r).
template <typename R>
__device__ void slot_weights(const eqflow_slot_weights_args &a) {
    unsigned long long t = thread_index();
    if (t >= (unsigned long long)a.n_c * a.v) return;
    unsigned int c = (unsigned int)(t / a.v), r = (unsigned int)(t % a.v);
    unsigned int o = ((const unsigned int *)a.orbit_of)[r];
    const double *w = (const double *)a.w + ((unsigned long long)o * a.n_tc) * a.n_c + c;
    const double *kp = (const double *)a.kp + (unsigned long long)a.slot * a.n_tc;
    double acc = 0.0;
    for (unsigned int i = 0; i < a.n_tc; ++i) acc += w[(unsigned long long)i * a.n_c] * kp[i];
    ((R *)a.wt)[t] = (R)acc;
    if (r == 0) ((R *)a.w0)[(unsigned long long)a.slot * a.n_c + c] = (R)acc;
}

extern "C" __global__ void eqflow_slot_weights_f32(eqflow_slot_weights_args a) { slot_weights<float>(a); }
extern "C" __global__ void eqflow_slot_weights_f64(eqflow_slot_weights_args a) { slot_weights<double>(a); }

// One thread per j.
template <typename R>
__device__ void slot_beta(const eqflow_slot_beta_args &a) {
    unsigned long long j = thread_index();
    if (j >= a.n_h) return;
    const R *wt = (const R *)a.wt;
    R acc;
    if (a.f) {
        const R *f = (const R *)a.f;
        acc = (R)0;
        for (unsigned int c = 0; c < a.n_c; ++c) acc = acc + wt[(unsigned long long)c * a.v] * f[(unsigned long long)c * a.n_h + j];
    } else {
        acc = wt[j * a.v];
    }
    ((R *)a.beta)[j] = acc;
}

extern "C" __global__ void eqflow_slot_beta_f32(eqflow_slot_beta_args a) { slot_beta<float>(a); }
extern "C" __global__ void eqflow_slot_beta_f64(eqflow_slot_beta_args a) { slot_beta<double>(a); }

// a[b][c][y] = sum_x W[c][(x - y) mod L] kbar[b][x]: one thread per (b, c, y).
template <typename R>
__device__ void conv_backward_input(const eqflow_conv_backward_args &a) {
    unsigned int l = a.l, v = l * l;
    unsigned long long t = thread_index();
    unsigned long long per = (unsigned long long)a.n_c * v;
    if (t >= (unsigned long long)a.n * per) return;
    unsigned long long b = t / per;
    unsigned int c = (unsigned int)((t % per) / v), y = (unsigned int)(t % v), y0 = y / l, y1 = y % l;
    const R *w = (const R *)a.w + (unsigned long long)c * v;
    const R *kb = (const R *)a.kbar + b * v;
    R acc = (R)0;
    for (unsigned int x0 = 0; x0 < l; ++x0) {
        unsigned int r0 = ((x0 + l - y0) % l) * l;
        for (unsigned int x1 = 0; x1 < l; ++x1) acc += w[r0 + (x1 + l - y1) % l] * kb[x0 * l + x1];
    }
    ((R *)a.a)[t] = acc;
}

extern "C" __global__ void eqflow_conv_backward_input_f32(eqflow_conv_backward_args a) { conv_backward_input<float>(a); }
extern "C" __global__ void eqflow_conv_backward_input_f64(eqflow_conv_backward_args a) { conv_backward_input<double>(a); }

// wbar[slot][c][r] += sum_b sum_x kbar[b][x] g[b][c][(x - r) mod L]: one thread per (c, r),
// fields and sites in order (deterministic).
template <typename R>
__device__ void conv_backward_kernel(const eqflow_conv_backward_args &a) {
    unsigned int l = a.l, v = l * l;
    unsigned long long t = thread_index();
    if (t >= (unsigned long long)a.n_c * v) return;
    unsigned int c = (unsigned int)(t / v), r = (unsigned int)(t % v), r0 = r / l, r1 = r % l;
    double acc = 0.0;
    for (unsigned int b = 0; b < a.n; ++b) {
        const R *kb = (const R *)a.kbar + (unsigned long long)b * v;
        const R *g = (const R *)a.g + ((unsigned long long)b * a.n_c + c) * v;
        R part = (R)0;
        for (unsigned int x0 = 0; x0 < l; ++x0) {
            unsigned int y0 = ((x0 + l - r0) % l) * l;
            for (unsigned int x1 = 0; x1 < l; ++x1) part += kb[x0 * l + x1] * g[y0 + (x1 + l - r1) % l];
        }
        acc += (double)part;
    }
    ((double *)a.wbar)[(unsigned long long)a.slot * a.n_c * v + t] += acc;
}

extern "C" __global__ void eqflow_conv_backward_kernel_f32(eqflow_conv_backward_args a) { conv_backward_kernel<float>(a); }
extern "C" __global__ void eqflow_conv_backward_kernel_f64(eqflow_conv_backward_args a) { conv_backward_kernel<double>(a); }

// ubar at one site, in the order of Features::backward: the rows j, then per frequency the
// h'' terms of its sine (and cosine) row. One thread per (b, x).
template <typename R>
__device__ void features_backward(const eqflow_features_backward_args &a) {
    unsigned long long t = thread_index();
    if (t >= (unsigned long long)a.n * a.v) return;
    unsigned long long b = t / a.v;
    unsigned int x = (unsigned int)(t % a.v), v = a.v, nw = a.n_omega;
    const R *h = (const R *)a.h + b * a.n_h * v + x;
    const R *hp = (const R *)a.hp + b * a.n_h * v + x;
    const R *hb = (const R *)a.hbar + b * a.n_h * v + x;
    const R *beta = (const R *)a.beta;
    const R *omega = (const R *)a.omega;
    R ub = (R)0;
    for (unsigned int j = 0; j < a.n_h; ++j) ub = ub + hb[(unsigned long long)j * v] * hp[(unsigned long long)j * v];
    R db = (R)a.dbar;
    for (unsigned int k = 0; k < nw; ++k) {
        R w = omega[k];
        R kb = db * beta[k];
        ub = ub - kb * w * w * h[(unsigned long long)k * v];
        if (a.kind == 1) {
            R kc = db * beta[nw + k];
            ub = ub - kc * w * w * h[(unsigned long long)(nw + k) * v];
        }
    }
    ((R *)a.ubar)[t] = ub;
}

extern "C" __global__ void eqflow_features_backward_f32(eqflow_features_backward_args a) { features_backward<float>(a); }
extern "C" __global__ void eqflow_features_backward_f64(eqflow_features_backward_args a) { features_backward<double>(a); }

// One block per output: blocks j < n_h reduce beta_bar[slot][j], blocks n_h + k reduce
// omega_bar[k]. Threads stride over fields; each sums its field in R in site order (as the
// CPU does per field), the fields are reduced in f64.
template <typename R>
__device__ void features_grad(const eqflow_features_backward_args &a) {
    __shared__ double part[TRAIN_THREADS];
    unsigned int blk = blockIdx.x, v = a.v, nw = a.n_omega;
    if (blk >= a.n_h + nw) return;
    R db = (R)a.dbar;
    const R *beta = (const R *)a.beta;
    double s_acc = 0.0;
    for (unsigned int b = threadIdx.x; b < a.n; b += blockDim.x) {
        const R *u = (const R *)a.u + (unsigned long long)b * v;
        const R *h = (const R *)a.h + (unsigned long long)b * a.n_h * v;
        const R *hp = (const R *)a.hp + (unsigned long long)b * a.n_h * v;
        const R *hbar = (const R *)a.hbar + (unsigned long long)b * a.n_h * v;
        if (blk < a.n_h) {
            const R *p = hp + (unsigned long long)blk * v;
            R sp = (R)0;
            for (unsigned int x = 0; x < v; ++x) sp = sp + p[x];
            s_acc += a.dbar * (double)sp;
        } else {
            unsigned int k = blk - a.n_h;
            R w = ((const R *)a.omega)[k];
            const R *hb = hbar + (unsigned long long)k * v;
            const R *sn = h + (unsigned long long)k * v;
            R kb = db * beta[k];
            R g1 = (R)0, g2 = (R)0;
            const R *cs = a.kind == 1 ? h + (unsigned long long)(nw + k) * v : 0;
            for (unsigned int x = 0; x < v; ++x) {
                // cos(w u): the cosine row of non-odd features, else recomputed
                R s, c;
                if (cs) {
                    c = cs[x];
                } else {
                    sin_cos<R>(w * u[x], &s, &c);
                }
                g1 = g1 + hb[x] * u[x] * c;
                g2 = g2 + (c - w * u[x] * sn[x]);
            }
            s_acc += (double)g1 + (double)(kb * g2);
            if (a.kind == 1) {
                const R *hbc = hbar + (unsigned long long)(nw + k) * v;
                R kc = db * beta[nw + k];
                R c1 = (R)0, c2 = (R)0;
                for (unsigned int x = 0; x < v; ++x) {
                    c1 = c1 - hbc[x] * u[x] * sn[x];
                    c2 = c2 - (sn[x] + w * u[x] * cs[x]);
                }
                s_acc += (double)c1 + (double)(kc * c2);
            }
        }
    }
    double tot = block_sum(s_acc, part);
    if (threadIdx.x == 0) {
        if (blk < a.n_h)
            ((double *)a.beta_bar)[(unsigned long long)a.slot * a.n_h + blk] += tot;
        else
            ((double *)a.omega_bar)[blk - a.n_h] += tot;
    }
}

extern "C" __global__ void eqflow_features_grad_f32(eqflow_features_backward_args a) { features_grad<float>(a); }
extern "C" __global__ void eqflow_features_grad_f64(eqflow_features_backward_args a) { features_grad<double>(a); }

// fbar[c][j] += sum_b sum_x a[b][c][x] h[b][j][x]: one thread per (c, j), per field in R.
template <typename R>
__device__ void outer(const eqflow_outer_args &a) {
    unsigned long long t = thread_index();
    if (t >= (unsigned long long)a.n_c * a.n_h) return;
    unsigned int c = (unsigned int)(t / a.n_h), j = (unsigned int)(t % a.n_h), v = a.v;
    double acc = 0.0;
    for (unsigned int b = 0; b < a.n; ++b) {
        const R *ab = (const R *)a.a + ((unsigned long long)b * a.n_c + c) * v;
        const R *hb = (const R *)a.h + ((unsigned long long)b * a.n_h + j) * v;
        R part = (R)0;
        for (unsigned int x = 0; x < v; ++x) part += ab[x] * hb[x];
        acc += (double)part;
    }
    ((double *)a.fbar)[t] += acc;
}

extern "C" __global__ void eqflow_outer_f32(eqflow_outer_args a) { outer<float>(a); }
extern "C" __global__ void eqflow_outer_f64(eqflow_outer_args a) { outer<double>(a); }

// y = alpha x + beta y (or (R)(alpha x64) + beta y): one thread per element.
template <typename R>
__device__ void axpby(const eqflow_axpby_args &a) {
    unsigned long long i = thread_index();
    if (i >= a.len) return;
    R *y = (R *)a.y;
    R ax = a.x64 ? (R)(a.alpha * ((const double *)a.x)[i]) : (R)a.alpha * ((const R *)a.x)[i];
    y[i] = a.beta == 0.0 ? ax : ax + (R)a.beta * y[i];
}

extern "C" __global__ void eqflow_axpby_f32(eqflow_axpby_args a) { axpby<float>(a); }
extern "C" __global__ void eqflow_axpby_f64(eqflow_axpby_args a) { axpby<double>(a); }

// The parameter gradient (see the header). Phase 0: one thread per (s, o, c) of wo_bar.
// Phase 1: one thread per gw, then per kp_bar, then per gf element.
template <typename R>
__device__ void param_grad(const eqflow_param_grad_args &a) {
    unsigned long long t = thread_index();
    unsigned int nc = a.n_c, nh = a.n_h, ntc = a.n_tc, norb = a.n_orb, v = a.v;
    const double *bb = (const double *)a.beta_bar;
    const R *f = (const R *)a.f;
    if (a.phase == 0) {
        if (t >= (unsigned long long)a.n_slots * norb * nc) return;
        unsigned int s = (unsigned int)(t / ((unsigned long long)norb * nc));
        unsigned int o = (unsigned int)((t / nc) % norb), c = (unsigned int)(t % nc);
        const double *wb = (const double *)a.wbar + ((unsigned long long)s * nc + c) * v;
        const unsigned int *start = (const unsigned int *)a.orbit_start;
        const unsigned int *sites = (const unsigned int *)a.orbit_sites;
        double acc = 0.0;
        for (unsigned int i = start[o]; i < start[o + 1]; ++i) acc += wb[sites[i]];
        if (o == a.orbit0) {
            double w0bar = 0.0;
            if (f) {
                for (unsigned int j = 0; j < nh; ++j) w0bar += bb[(unsigned long long)s * nh + j] * (double)f[(unsigned long long)c * nh + j];
            } else {
                w0bar = bb[(unsigned long long)s * nh + c];
            }
            acc += w0bar;
        }
        ((double *)a.wo_bar)[t] = acc;
        return;
    }
    const double *wo = (const double *)a.wo_bar;
    const double *kp = (const double *)a.kp;
    unsigned long long n_gw = (unsigned long long)norb * ntc * nc, n_kp = (unsigned long long)a.n_slots * ntc;
    if (t < n_gw) {
        unsigned int o = (unsigned int)(t / ((unsigned long long)ntc * nc));
        unsigned int i = (unsigned int)((t / nc) % ntc), c = (unsigned int)(t % nc);
        double acc = 0.0;
        for (unsigned int s = 0; s < a.n_slots; ++s)
            acc += kp[(unsigned long long)s * ntc + i] * wo[((unsigned long long)s * norb + o) * nc + c];
        ((double *)a.gw)[t] = acc;
        return;
    }
    t -= n_gw;
    if (t < n_kp) {
        unsigned int s = (unsigned int)(t / ntc), i = (unsigned int)(t % ntc);
        const double *w = (const double *)a.w;
        double acc = 0.0;
        for (unsigned int o = 0; o < norb; ++o)
            for (unsigned int c = 0; c < nc; ++c)
                acc += w[((unsigned long long)o * ntc + i) * nc + c] * wo[((unsigned long long)s * norb + o) * nc + c];
        ((double *)a.kp_bar)[t] = acc;
        return;
    }
    t -= n_kp;
    if (!f || t >= (unsigned long long)nc * nh) return;
    unsigned int c = (unsigned int)(t / nh), j = (unsigned int)(t % nh);
    const R *w0 = (const R *)a.w0;
    double acc = 0.0;
    for (unsigned int s = 0; s < a.n_slots; ++s)
        acc += (double)w0[(unsigned long long)s * nc + c] * bb[(unsigned long long)s * nh + j];
    ((double *)a.gf)[t] = (acc + ((const double *)a.fbar)[t]) / (double)nh;
}

extern "C" __global__ void eqflow_param_grad_f32(eqflow_param_grad_args a) { param_grad<float>(a); }
extern "C" __global__ void eqflow_param_grad_f64(eqflow_param_grad_args a) { param_grad<double>(a); }
