// The full-lattice convolution of feature channels with the displacement kernel
// (SPEC §3.1): out[b][x] = sum_c sum_y W[c][(x - y) mod L] g[b][c][y]. The direct sum,
// the twin of src/flow/conv/direct.rs: correctness first, O(V^2 n_c) per field.
#include "eqflow_kernel_args.h"

// One thread per output site of the batch.
template <typename R>
__device__ void conv_direct(const eqflow_conv_args &a) {
    unsigned int l = a.l, v = l * l;
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (unsigned long long)a.n * v) return;
    unsigned long long b = t / v;
    unsigned int x = (unsigned int)(t % v), x0 = x / l, x1 = x % l;
    const R *w = (const R *)a.w;
    const R *g = (const R *)a.g + b * a.n_c * v;
    R acc = (R)0;
    for (unsigned int c = 0; c < a.n_c; ++c) {
        const R *wc = w + (unsigned long long)c * v;
        const R *gc = g + (unsigned long long)c * v;
        for (unsigned int y0 = 0; y0 < l; ++y0) {
            unsigned int r0 = ((x0 + l - y0) % l) * l;
            for (unsigned int y1 = 0; y1 < l; ++y1) acc += wc[r0 + (x1 + l - y1) % l] * gc[y0 * l + y1];
        }
    }
    ((R *)a.out)[t] = acc;
}

extern "C" __global__ void eqflow_conv_direct_f32(eqflow_conv_args a) { conv_direct<float>(a); }
extern "C" __global__ void eqflow_conv_direct_f64(eqflow_conv_args a) { conv_direct<double>(a); }
