// The two terms of log q (SPEC §3): the prior density log r(z) and the exact divergence
// div f = sum_j beta_j sum_x h'_j(phi_x), the twins of flow/grad.rs log_prior and the
// divergence in flow/vector_field.rs (VectorField::eval). Both accumulate in f64.
#include "eqflow_kernel_args.h"

#define DENSITY_THREADS 256

__device__ __forceinline__ double block_sum(double s, double *part) {
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    return part[0];
}

// One block of DENSITY_THREADS threads per field: a thread per feature row j sums the row
// in order in the real type (as the CPU does), then the rows are reduced in f64.
template <typename R>
__device__ void divergence(const eqflow_divergence_args &a) {
    __shared__ double part[DENSITY_THREADS];
    unsigned int b = blockIdx.x;
    if (b >= a.n) return;
    const R *hp = (const R *)a.hp + (unsigned long long)b * a.n_h * a.v;
    const R *beta = (const R *)a.beta;
    double s = 0.0;
    for (unsigned int j = threadIdx.x; j < a.n_h; j += blockDim.x) {
        const R *row = hp + (unsigned long long)j * a.v;
        R rs = (R)0;
        for (unsigned int x = 0; x < a.v; ++x) rs += row[x];
        s += (double)(beta[j] * rs);
    }
    double tot = block_sum(s, part);
    if (threadIdx.x == 0) ((double *)a.div)[b] = tot;
}

extern "C" __global__ void eqflow_divergence_f32(eqflow_divergence_args a) { divergence<float>(a); }
extern "C" __global__ void eqflow_divergence_f64(eqflow_divergence_args a) { divergence<double>(a); }

// One block of DENSITY_THREADS threads per field.
template <typename R>
__device__ void log_prior(const eqflow_log_prior_args &a) {
    __shared__ double part[DENSITY_THREADS];
    unsigned int b = blockIdx.x;
    if (b >= a.n) return;
    const R *z = (const R *)a.z + (unsigned long long)b * a.v;
    double s = 0.0;
    for (unsigned int x = threadIdx.x; x < a.v; x += blockDim.x) {
        double zx = (double)z[x];
        s += zx * zx;
    }
    double tot = block_sum(s, part);
    // log(2 pi) as the CPU's (2.0 * PI).ln()
    if (threadIdx.x == 0) ((double *)a.out)[b] = -0.5 * tot - 0.5 * (double)a.v * 1.8378770664093453;
}

extern "C" __global__ void eqflow_log_prior_f32(eqflow_log_prior_args a) { log_prior<float>(a); }
extern "C" __global__ void eqflow_log_prior_f64(eqflow_log_prior_args a) { log_prior<double>(a); }
