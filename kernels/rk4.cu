// The RK4 step of the field and its log-density (SPEC §3.3), the twins of
// src/flow/ode.rs: stage points u_i = phi + c_i k_{i-1}, and the combination
// phi' = phi + h/6 (k1 + 2 k2 + 2 k3 + k4), -int div f -= h/6 (d1 + 2 d2 + 2 d3 + d4).
#include "eqflow_kernel_args.h"

// One thread per site; c is exactly representable in R (the host rounds it).
template <typename R>
__device__ void rk4_point(const eqflow_rk4_point_args &a) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.len) return;
    ((R *)a.u)[i] = ((const R *)a.phi)[i] + (R)a.c * ((const R *)a.k)[i];
}

extern "C" __global__ void eqflow_rk4_point_f32(eqflow_rk4_point_args a) { rk4_point<float>(a); }
extern "C" __global__ void eqflow_rk4_point_f64(eqflow_rk4_point_args a) { rk4_point<double>(a); }

// One thread per site; threads 0..n-1 also update the log-density of field i.
template <typename R>
__device__ void rk4_combine(const eqflow_rk4_combine_args &a) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long len = (unsigned long long)a.n * a.v;
    if (i < len) {
        R h6 = (R)a.h / (R)6;
        R two = (R)2;
        const R *k1 = (const R *)a.k1, *k2 = (const R *)a.k2, *k3 = (const R *)a.k3, *k4 = (const R *)a.k4;
        ((R *)a.out)[i] = ((const R *)a.base)[i] + h6 * (k1[i] + two * k2[i] + two * k3[i] + k4[i]);
    }
    if (i < a.n) {
        const double *d1 = (const double *)a.d1, *d2 = (const double *)a.d2;
        const double *d3 = (const double *)a.d3, *d4 = (const double *)a.d4;
        ((double *)a.neg_div)[i] -= a.h / 6.0 * (d1[i] + 2.0 * d2[i] + 2.0 * d3[i] + d4[i]);
    }
}

extern "C" __global__ void eqflow_rk4_combine_f32(eqflow_rk4_combine_args a) { rk4_combine<float>(a); }
extern "C" __global__ void eqflow_rk4_combine_f64(eqflow_rk4_combine_args a) { rk4_combine<double>(a); }
