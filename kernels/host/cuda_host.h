/* Host emulation of the CUDA C the kernels use, for testing them without a GPU.
 *
 * The kernels (the .cu files of kernels/) are compiled unchanged as C++ for the CPU (src/cuda/emulate.rs
 * generates one translation unit per file: this header, then the .cu inside a namespace) and
 * launched with the grid and block sizes the Rust launch code computes. Every thread of a
 * block is a coroutine (ucontext) on one OS thread: __syncthreads() yields to a scheduler that
 * resumes each live thread once per round, which is exactly a block barrier; a barrier that
 * not every live thread of the block reaches (divergent __syncthreads, undefined on a GPU) is
 * reported as an error instead. Blocks run one after another, so `static` stands in for
 * __shared__. One launch at a time (a mutex): the one stream of the device.
 *
 * What this checks: the kernels' arithmetic, indexing, bounds guards, launch geometry and
 * argument structs. What it cannot: PTX code generation, the driver, memory models beyond a
 * barrier, warp-level behaviour, device math functions (the host's libm is used).
 */
#ifndef EQFLOW_CUDA_HOST_H
#define EQFLOW_CUDA_HOST_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

struct eqflow_emu_dim3 {
    unsigned int x, y, z;
};

/* The running thread's coordinates (one OS thread runs a launch at a time). */
extern eqflow_emu_dim3 blockIdx, threadIdx, blockDim, gridDim;

void eqflow_emu_syncthreads();

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __syncthreads() eqflow_emu_syncthreads()

/* Runs body() for every thread of a grid x block launch; `syncs` says whether the kernel
 * uses __syncthreads (then threads are coroutines; otherwise a plain loop). Returns 0, or
 * a message (static storage) on a divergent barrier or a resource failure. */
const char *eqflow_emu_run(unsigned int grid, unsigned int block, bool syncs, void (*body)(const void *),
                           const void *args);

#endif
