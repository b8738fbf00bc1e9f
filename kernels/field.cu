// One RK4 stage's vector field, fused: for each field (one block of FIELD_THREADS threads)
// the features h_j(u) of features.cu, the convolution k = sum_j W_j * h_j by the spectral
// path of spectral.cu (the kernel's prepared spectrum times each channel's transform, summed
// over channels in Fourier space, one inverse transform) and the divergence
// sum_j beta_j sum_x h'_j(u_x) of density.cu, with nothing but k and div leaving the block:
// the feature banks (n_h x V per field) that the unfused sequence writes and reads back never
// exist. A channel at a time lives in shared memory (its values, then its row transforms); the
// products summed over channels stay in registers, each thread owning fixed frequencies.
// Architectures without feature mixing (n_c = n_h); l <= FIELD_LMAX_F32 / FIELD_LMAX_F64.
// Twin: features + conv + divergence of src/cuda/twin.rs (the unfused sequence).
#include "eqflow_kernel_args.h"

template <typename R> __device__ __forceinline__ void field_sin_cos(R x, R *s, R *c);
template <> __device__ __forceinline__ void field_sin_cos<float>(float x, float *s, float *c) { sincosf(x, s, c); }
template <> __device__ __forceinline__ void field_sin_cos<double>(double x, double *s, double *c) { sincos(x, s, c); }

// Row j of features.cu at one site: odd: sin(w_j u); non-odd: then cos(w_b u), then 1; then
// u if linear (the last row).
template <typename R>
__device__ __forceinline__ void feature_row(unsigned int j, R u, const R *omega, unsigned int nw, unsigned int kind,
                                            R *h, R *hp) {
    R s, c;
    if (j < nw) {
        R w = omega[j];
        field_sin_cos<R>(w * u, &s, &c);
        *h = s;
        *hp = w * c;
    } else if (kind == 1 && j < 2 * nw) {
        R w = omega[j - nw];
        field_sin_cos<R>(w * u, &s, &c);
        *h = c;
        *hp = -w * s;
    } else if (kind == 1 && j == 2 * nw) {
        *h = (R)1;
        *hp = (R)0;
    } else {
        *h = u;
        *hp = (R)1;
    }
}

template <typename R, unsigned int LMAX>
__device__ void field_stage(const eqflow_field_stage_args &a) {
    const unsigned int HMAX = LMAX / 2 + 1;
    const unsigned int ACC = (LMAX * HMAX + FIELD_THREADS - 1) / FIELD_THREADS;
    __shared__ R hs[LMAX * LMAX];          // channel j at every site
    __shared__ R rs_re[LMAX * HMAX], rs_im[LMAX * HMAX];  // its row transforms (x0, k1)
    __shared__ R cs[LMAX], sn[LMAX];       // cos, sin(2 pi e / l)
    __shared__ double part[FIELD_THREADS];
    unsigned int l = a.l, h = l / 2 + 1, v = l * l, nk = l * h;
    unsigned int tid = threadIdx.x, nt = blockDim.x;
    unsigned long long b = blockIdx.x;
    // uniform over the block (the launch code guarantees neither)
    if (b >= a.n || l > LMAX || nt != FIELD_THREADS) return;
    const R *u = (const R *)a.u + b * v;
    const R *omega = (const R *)a.omega, *spec = (const R *)a.spectrum, *beta = (const R *)a.beta;
    for (unsigned int i = tid; i < l; i += nt) {
        cs[i] = ((const R *)a.tw)[2 * i];
        sn[i] = ((const R *)a.tw)[2 * i + 1];
    }
    R acc_re[ACC], acc_im[ACC];
#pragma unroll
    for (unsigned int i = 0; i < ACC; ++i) acc_re[i] = acc_im[i] = (R)0;
    double dsum = 0.0;
    for (unsigned int j = 0; j < a.n_h; ++j) {
        __syncthreads();  // the previous channel's reads of hs and rs are done
        R dj = (R)0;
        for (unsigned int x = tid; x < v; x += nt) {
            R hv, hpv;
            feature_row<R>(j, u[x], omega, a.n_omega, a.kind, &hv, &hpv);
            hs[x] = hv;
            dj += hpv;
        }
        dsum += (double)beta[j] * (double)dj;
        __syncthreads();
        // rows: rs[x0][k1] = sum_x1 hs[x0][x1] e^{-2 pi i k1 x1 / l}
        for (unsigned int t = tid; t < nk; t += nt) {
            unsigned int x0 = t / h, k1 = t % h, e = 0;
            const R *row = hs + x0 * l;
            R re = (R)0, im = (R)0;
            for (unsigned int x1 = 0; x1 < l; ++x1) {
                re += row[x1] * cs[e];
                im -= row[x1] * sn[e];
                e += k1;
                if (e >= l) e -= l;
            }
            rs_re[t] = re;
            rs_im[t] = im;
        }
        __syncthreads();
        // columns (k0), times W_j's spectrum, summed over j (as eqflow_spectral_mix mode 0)
        const R *wj = spec + 2ull * j * nk;
#pragma unroll
        for (unsigned int i = 0; i < ACC; ++i) {
            unsigned int t = tid + i * FIELD_THREADS;
            if (t < nk) {
                unsigned int k0 = t / h, k1 = t % h, e = 0;
                R re = (R)0, im = (R)0;
                for (unsigned int x0 = 0; x0 < l; ++x0) {
                    R xr = rs_re[x0 * h + k1], xi = rs_im[x0 * h + k1], c = cs[e], s = sn[e];
                    re += xr * c + xi * s;
                    im += xi * c - xr * s;
                    e += k0;
                    if (e >= l) e -= l;
                }
                R wr = wj[2 * t], wi = wj[2 * t + 1];
                acc_re[i] += wr * re - wi * im;
                acc_im[i] += wr * im + wi * re;
            }
        }
    }
    // the divergence (the block's partial sums reduced in a fixed order)
    part[tid] = dsum;
    __syncthreads();
    for (unsigned int w = nt / 2; w > 0; w /= 2) {
        if (tid < w) part[tid] += part[tid + w];
        __syncthreads();
    }
    if (tid == 0) ((double *)a.div)[b] = part[0];
    // inverse columns: y[x0][k1] = sum_k0 acc[k0][k1] e^{+2 pi i k0 x0 / l}
#pragma unroll
    for (unsigned int i = 0; i < ACC; ++i) {
        unsigned int t = tid + i * FIELD_THREADS;
        if (t < nk) {
            rs_re[t] = acc_re[i];
            rs_im[t] = acc_im[i];
        }
    }
    __syncthreads();
#pragma unroll
    for (unsigned int i = 0; i < ACC; ++i) {
        unsigned int t = tid + i * FIELD_THREADS;
        if (t < nk) {
            unsigned int x0 = t / h, k1 = t % h, e = 0;
            R re = (R)0, im = (R)0;
            for (unsigned int k0 = 0; k0 < l; ++k0) {
                R xr = rs_re[k0 * h + k1], xi = rs_im[k0 * h + k1], c = cs[e], s = sn[e];
                re += xr * c - xi * s;
                im += xr * s + xi * c;
                e += x0;
                if (e >= l) e -= l;
            }
            acc_re[i] = re;
            acc_im[i] = im;
        }
    }
    __syncthreads();
#pragma unroll
    for (unsigned int i = 0; i < ACC; ++i) {
        unsigned int t = tid + i * FIELD_THREADS;
        if (t < nk) {
            rs_re[t] = acc_re[i];
            rs_im[t] = acc_im[i];
        }
    }
    __syncthreads();
    // rows back to real values (the Hermitian half spectrum's weights of eqflow_dft_c2r)
    R scale = (R)(1.0 / (double)v);
    R *k = (R *)a.k + b * v;
    for (unsigned int x = tid; x < v; x += nt) {
        unsigned int x0 = x / l, x1 = x % l, e = 0;
        R sum = (R)0;
        for (unsigned int k1 = 0; k1 < h; ++k1) {
            R term = rs_re[x0 * h + k1] * cs[e] - rs_im[x0 * h + k1] * sn[e];
            sum += (k1 == 0 || 2 * k1 == l) ? term : (R)2 * term;
            e += x1;
            if (e >= l) e -= l;
        }
        k[x] = sum * scale;
    }
}

extern "C" __global__ void eqflow_field_stage_f32(eqflow_field_stage_args a) { field_stage<float, FIELD_LMAX_F32>(a); }
extern "C" __global__ void eqflow_field_stage_f64(eqflow_field_stage_args a) { field_stage<double, FIELD_LMAX_F64>(a); }
