// One RK4 stage's vector field, fused: for each field (one block of threads)
// the features h_j(u) of features.cu, the convolution k = sum_j W_j * h_j by the spectral
// path of spectral.cu (the kernel's prepared spectrum times each channel's transform, summed
// over channels in Fourier space, one inverse transform) and the divergence
// sum_j beta_j sum_x h'_j(u_x) of density.cu, with nothing but k and div leaving the block:
// the feature banks (n_h x V per field) that the unfused sequence writes and reads back never
// exist. A channel at a time lives in shared memory (its values, then its row transforms); the
// products summed over channels stay in registers, each thread owning fixed frequencies.
// Each transform pairs its outputs k and k + l/2 (columns) or k and l/2 - k (rows, half
// spectra), which share their terms up to the sign of the odd ones: half the sums of a plain
// DFT. Architectures without feature mixing (n_c = n_h); l even, at most FIELD_LMAX_F32 /
// FIELD_LMAX_F64.
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

// LMAX: the largest side; MAXT: the most threads per block; ACC: the most column pairs
// (k0, k0 + l/2) of frequencies a thread owns (the launch code sizes blocks so that every
// pair has an owner: l/2 (l/2 + 1) <= ACC blockDim.x).
template <typename R, unsigned int LMAX, unsigned int MAXT, unsigned int ACC>
__device__ void field_stage(const eqflow_field_stage_args &a) {
    const unsigned int HMAX = LMAX / 2 + 1;
    __shared__ R hs[LMAX * LMAX];                         // channel j at every site
    __shared__ R rs_re[LMAX * HMAX], rs_im[LMAX * HMAX];  // its row transforms (x0, k1)
    __shared__ R cs[LMAX], sn[LMAX];                      // cos, sin(2 pi e / l)
    __shared__ double part[MAXT];
    unsigned int l = a.l, h = l / 2 + 1, v = l * l, hl = l / 2;
    unsigned int np = hl * h;       // column pairs
    unsigned int hq = (h + 1) / 2;  // row pairs (k1, l/2 - k1) per row, k1 < hq
    unsigned int nr = l * hq;
    unsigned int tid = threadIdx.x, nt = blockDim.x;
    unsigned long long b = blockIdx.x;
    // uniform over the block (the launch code guarantees all of it)
    if (b >= a.n || l > LMAX || (l & 1u) || nt > MAXT || np > ACC * nt) return;
    const R *u = (const R *)a.u + b * v;
    const R *omega = (const R *)a.omega, *spec = (const R *)a.spectrum, *beta = (const R *)a.beta;
    for (unsigned int i = tid; i < l; i += nt) {
        cs[i] = ((const R *)a.tw)[2 * i];
        sn[i] = ((const R *)a.tw)[2 * i + 1];
    }
    // the products summed over channels at (k0, k1) and (k0 + l/2, k1)
    R a0r[ACC], a0i[ACC], a1r[ACC], a1i[ACC];
#pragma unroll
    for (unsigned int i = 0; i < ACC; ++i) a0r[i] = a0i[i] = a1r[i] = a1i[i] = (R)0;
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
        // rows: rs[x0][k] = sum_x1 hs[x0][x1] e^{-2 pi i k x1 / l} for k = k1 and l/2 - k1 at
        // once, from the sums over even and odd x1 (e^{-2 pi i (l/2) x1 / l} = (-1)^x1)
        for (unsigned int t = tid; t < nr; t += nt) {
            unsigned int x0 = t / hq, k1 = t % hq, e = 0;
            const R *row = hs + x0 * l;
            R ce = (R)0, se = (R)0, co = (R)0, so = (R)0;
            for (unsigned int x1 = 0; x1 < l; x1 += 2) {
                R xe = row[x1], xo = row[x1 + 1];
                ce += xe * cs[e];
                se += xe * sn[e];
                unsigned int eo = e + k1;
                if (eo >= l) eo -= l;
                co += xo * cs[eo];
                so += xo * sn[eo];
                e = eo + k1;
                if (e >= l) e -= l;
            }
            rs_re[x0 * h + k1] = ce + co;
            rs_im[x0 * h + k1] = -(se + so);
            unsigned int k2 = hl - k1;
            if (k2 != k1) {
                rs_re[x0 * h + k2] = ce - co;
                rs_im[x0 * h + k2] = se - so;
            }
        }
        __syncthreads();
        // columns at k0 and k0 + l/2 (even and odd x0 again), times W_j's spectrum, summed
        // over j (as eqflow_spectral_mix mode 0)
        const R *wj = spec + 2ull * j * l * h;
#pragma unroll
        for (unsigned int i = 0; i < ACC; ++i) {
            unsigned int p = tid + i * nt;
            if (p < np) {
                unsigned int k0 = p / h, k1 = p % h, e = 0;
                R er = (R)0, ei = (R)0, o_r = (R)0, o_i = (R)0;
                for (unsigned int x0 = 0; x0 < l; x0 += 2) {
                    R xr = rs_re[x0 * h + k1], xi = rs_im[x0 * h + k1], c = cs[e], s = sn[e];
                    er += xr * c + xi * s;
                    ei += xi * c - xr * s;
                    unsigned int eo = e + k0;
                    if (eo >= l) eo -= l;
                    xr = rs_re[(x0 + 1) * h + k1];
                    xi = rs_im[(x0 + 1) * h + k1];
                    c = cs[eo];
                    s = sn[eo];
                    o_r += xr * c + xi * s;
                    o_i += xi * c - xr * s;
                    e = eo + k0;
                    if (e >= l) e -= l;
                }
                unsigned int t0 = k0 * h + k1, t1 = (k0 + hl) * h + k1;
                R xr = er + o_r, xi = ei + o_i, wr = wj[2 * t0], wi = wj[2 * t0 + 1];
                a0r[i] += wr * xr - wi * xi;
                a0i[i] += wr * xi + wi * xr;
                xr = er - o_r;
                xi = ei - o_i;
                wr = wj[2 * t1];
                wi = wj[2 * t1 + 1];
                a1r[i] += wr * xr - wi * xi;
                a1i[i] += wr * xi + wi * xr;
            }
        }
    }
    // the divergence (the block's partial sums reduced in a fixed order)
    // (threads past the largest power of two p2 <= nt fold onto the first ones)
    part[tid] = dsum;
    __syncthreads();
    unsigned int p2 = 1;
    while (2 * p2 <= nt) p2 *= 2;
    if (tid >= p2) part[tid - p2] += part[tid];
    __syncthreads();
    for (unsigned int w = p2 / 2; w > 0; w /= 2) {
        if (tid < w) part[tid] += part[tid + w];
        __syncthreads();
    }
    if (tid == 0) ((double *)a.div)[b] = part[0];
    // inverse columns: y[x0][k1] = sum_k0 acc[k0][k1] e^{+2 pi i k0 x0 / l}, at x0 and x0 + l/2
#pragma unroll
    for (unsigned int i = 0; i < ACC; ++i) {
        unsigned int p = tid + i * nt;
        if (p < np) {
            unsigned int k0 = p / h, k1 = p % h;
            rs_re[k0 * h + k1] = a0r[i];
            rs_im[k0 * h + k1] = a0i[i];
            rs_re[(k0 + hl) * h + k1] = a1r[i];
            rs_im[(k0 + hl) * h + k1] = a1i[i];
        }
    }
    __syncthreads();
#pragma unroll
    for (unsigned int i = 0; i < ACC; ++i) {
        unsigned int p = tid + i * nt;
        if (p < np) {
            unsigned int x0 = p / h, k1 = p % h, e = 0;
            R er = (R)0, ei = (R)0, o_r = (R)0, o_i = (R)0;
            for (unsigned int k0 = 0; k0 < l; k0 += 2) {
                R xr = rs_re[k0 * h + k1], xi = rs_im[k0 * h + k1], c = cs[e], s = sn[e];
                er += xr * c - xi * s;
                ei += xr * s + xi * c;
                unsigned int eo = e + x0;
                if (eo >= l) eo -= l;
                xr = rs_re[(k0 + 1) * h + k1];
                xi = rs_im[(k0 + 1) * h + k1];
                c = cs[eo];
                s = sn[eo];
                o_r += xr * c - xi * s;
                o_i += xr * s + xi * c;
                e = eo + x0;
                if (e >= l) e -= l;
            }
            a0r[i] = er + o_r;
            a0i[i] = ei + o_i;
            a1r[i] = er - o_r;
            a1i[i] = ei - o_i;
        }
    }
    __syncthreads();
#pragma unroll
    for (unsigned int i = 0; i < ACC; ++i) {
        unsigned int p = tid + i * nt;
        if (p < np) {
            unsigned int x0 = p / h, k1 = p % h;
            rs_re[x0 * h + k1] = a0r[i];
            rs_im[x0 * h + k1] = a0i[i];
            rs_re[(x0 + hl) * h + k1] = a1r[i];
            rs_im[(x0 + hl) * h + k1] = a1i[i];
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

extern "C" __global__ void __launch_bounds__(FIELD_MAX_THREADS) eqflow_field_stage_f32(eqflow_field_stage_args a) {
    field_stage<float, FIELD_LMAX_F32, FIELD_MAX_THREADS, 2>(a);
}
extern "C" __global__ void __launch_bounds__(FIELD_MAX_THREADS) eqflow_field_stage_f64(eqflow_field_stage_args a) {
    field_stage<double, FIELD_LMAX_F64, FIELD_MAX_THREADS, 2>(a);
}
extern "C" __global__ void __launch_bounds__(FIELD_SMALL_MAX_THREADS) eqflow_field_stage_small_f32(eqflow_field_stage_args a) {
    field_stage<float, FIELD_SMALL_LMAX, FIELD_SMALL_MAX_THREADS, 1>(a);
}
extern "C" __global__ void __launch_bounds__(FIELD_SMALL_MAX_THREADS) eqflow_field_stage_small_f64(eqflow_field_stage_args a) {
    field_stage<double, FIELD_SMALL_LMAX, FIELD_SMALL_MAX_THREADS, 1>(a);
}
