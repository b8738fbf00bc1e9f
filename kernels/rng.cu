// Counter-based random numbers: Philox4x32-10 keyed by (seed, stream, index), the twin of
// src/rng.rs (same words bit for bit; normals via the same Box-Muller arithmetic in f64).
#include "eqflow_kernel_args.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

struct Words {
    unsigned int w[4];
};

__device__ __forceinline__ Words philox4x32(unsigned int c0, unsigned int c1, unsigned int c2, unsigned int c3,
                                            unsigned int k0, unsigned int k1) {
    for (int r = 0; r < 10; ++r) {
        unsigned long long p0 = (unsigned long long)PHILOX_M0 * c0;
        unsigned long long p1 = (unsigned long long)PHILOX_M1 * c2;
        unsigned int n0 = (unsigned int)(p1 >> 32) ^ c1 ^ k0;
        unsigned int n1 = (unsigned int)p1;
        unsigned int n2 = (unsigned int)(p0 >> 32) ^ c3 ^ k1;
        unsigned int n3 = (unsigned int)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    Words out;
    out.w[0] = c0; out.w[1] = c1; out.w[2] = c2; out.w[3] = c3;
    return out;
}

// Rng::block: counter (j, index lo, index hi, stream), key (seed lo, seed hi).
__device__ __forceinline__ Words rng_block(unsigned long long seed, unsigned int stream, unsigned long long index,
                                           unsigned int j) {
    return philox4x32(j, (unsigned int)index, (unsigned int)(index >> 32), stream, (unsigned int)seed,
                      (unsigned int)(seed >> 32));
}

// A uniform in [0, 1) with 53 random bits (rng.rs to_unit).
__device__ __forceinline__ double to_unit(unsigned int a, unsigned int b) {
    unsigned long long x = ((unsigned long long)a << 21) ^ (unsigned long long)b;
    return (double)(x & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

extern "C" __global__ void eqflow_philox_words(eqflow_philox_args a) {
    unsigned int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= a.count) return;
    Words b = rng_block(a.seed, a.stream, a.index, j);
    unsigned int *out = (unsigned int *)a.out;
    for (int i = 0; i < 4; ++i) out[4 * (unsigned long long)j + i] = b.w[i];
}

// One thread per (field i, pair j): sites 2j and 2j + 1 of field i.
template <typename R>
__device__ void prior_normal(const eqflow_prior_args &a) {
    unsigned int pairs = (a.v + 1) / 2;
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (unsigned long long)a.n * pairs) return;
    unsigned int i = (unsigned int)(t / pairs), j = (unsigned int)(t % pairs);
    Words b = rng_block(a.seed, a.stream, a.first + i, j);
    double u1 = 1.0 - to_unit(b.w[0], b.w[1]);
    double u2 = to_unit(b.w[2], b.w[3]);
    double r = sqrt(-2.0 * log(u1));
    double s, c;
    sincos(6.283185307179586 * u2, &s, &c);
    R *z = (R *)a.z + (unsigned long long)i * a.v;
    z[2 * j] = (R)(r * c);
    if (2 * j + 1 < a.v) z[2 * j + 1] = (R)(r * s);
}

extern "C" __global__ void eqflow_prior_normal_f32(eqflow_prior_args a) { prior_normal<float>(a); }
extern "C" __global__ void eqflow_prior_normal_f64(eqflow_prior_args a) { prior_normal<double>(a); }

extern "C" __global__ void eqflow_uniform(eqflow_uniform_args a) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n) return;
    Words b = rng_block(a.seed, a.stream, a.first + i, a.k);
    ((double *)a.u)[i] = to_unit(b.w[0], b.w[1]);
}
