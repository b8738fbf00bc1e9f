// The phi^4 action and its force (SPEC §2), the twin of src/action.rs:
//   S = sum_x [ sum_mu (phi_{x+mu} - phi_x)^2 + m2 phi_x^2 + lambda phi_x^4 ]
//   dS/dphi_x = 2 (4 phi_x - sum of the 4 neighbours) + 2 m2 phi_x + 4 lambda phi_x^3
// computed in f64 from fields of either precision.
#include "eqflow_kernel_args.h"

#define ACTION_THREADS 256

// One block of ACTION_THREADS threads per field; f64 tree reduction.
template <typename R>
__device__ void action(const eqflow_action_args &a) {
    __shared__ double part[ACTION_THREADS];
    unsigned int b = blockIdx.x, l = a.l, v = l * l;
    if (b >= a.n) return;
    const R *phi = (const R *)a.phi + (unsigned long long)b * v;
    double s = 0.0;
    for (unsigned int i = threadIdx.x; i < v; i += blockDim.x) {
        unsigned int x0 = i / l, x1 = i % l;
        double p = (double)phi[i];
        double d0 = (double)phi[((x0 + 1) % l) * l + x1] - p;
        double d1 = (double)phi[x0 * l + (x1 + 1) % l] - p;
        double p2 = p * p;
        s += d0 * d0 + d1 * d1 + a.m2 * p2 + a.lambda * p2 * p2;
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) ((double *)a.out)[b] = part[0];
}

extern "C" __global__ void eqflow_action_f32(eqflow_action_args a) { action<float>(a); }
extern "C" __global__ void eqflow_action_f64(eqflow_action_args a) { action<double>(a); }

// One thread per site of the batch.
template <typename R>
__device__ void force(const eqflow_action_args &a) {
    unsigned int l = a.l, v = l * l;
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (unsigned long long)a.n * v) return;
    unsigned long long base = t - t % v;
    unsigned int i = (unsigned int)(t % v), x0 = i / l, x1 = i % l;
    const R *phi = (const R *)a.phi + base;
    double p = (double)phi[i];
    double nb = (double)phi[((x0 + 1) % l) * l + x1] + (double)phi[((x0 + l - 1) % l) * l + x1] +
                (double)phi[x0 * l + (x1 + 1) % l] + (double)phi[x0 * l + (x1 + l - 1) % l];
    ((double *)a.out)[t] = 2.0 * (4.0 * p - nb) + 2.0 * a.m2 * p + 4.0 * a.lambda * p * p * p;
}

extern "C" __global__ void eqflow_force_f32(eqflow_action_args a) { force<float>(a); }
extern "C" __global__ void eqflow_force_f64(eqflow_action_args a) { force<double>(a); }
