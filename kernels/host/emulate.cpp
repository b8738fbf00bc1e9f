// The launch runtime of the host emulation (see cuda_host.h): blocks one after another,
// the threads of a block as ucontext coroutines when the kernel synchronises.
#include "cuda_host.h"

#include <mutex>
#include <ucontext.h>
#include <vector>

eqflow_emu_dim3 blockIdx, threadIdx, blockDim, gridDim;

namespace {

const size_t STACK_BYTES = 256 * 1024;

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    bool done = false;
    bool at_barrier = false;
};

std::mutex launch_mutex;
ucontext_t scheduler;
std::vector<Fiber> fibers;
unsigned int current = 0;
bool in_fibers = false;
const char *loop_error = nullptr;
void (*run_body)(const void *) = nullptr;
const void *run_args = nullptr;

void fiber_entry(int t) {
    (void)t;
    run_body(run_args);
    fibers[current].done = true;
    // returning resumes uc_link, the scheduler
}

const char *run_block_fibers(unsigned int block) {
    if (fibers.size() < block) fibers.resize(block);
    for (unsigned int t = 0; t < block; ++t) {
        Fiber &f = fibers[t];
        if (f.stack.size() != STACK_BYTES) f.stack.assign(STACK_BYTES, 0);
        f.done = false;
        f.at_barrier = false;
        if (getcontext(&f.ctx) != 0) return "emulator: getcontext failed";
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = &scheduler;
        makecontext(&f.ctx, (void (*)())fiber_entry, 1, (int)t);
    }
    for (;;) {
        unsigned int waiting = 0, finished = 0;
        for (unsigned int t = 0; t < block; ++t) {
            Fiber &f = fibers[t];
            if (f.done) continue;
            current = t;
            threadIdx = {t, 0, 0};
            f.at_barrier = false;
            if (swapcontext(&scheduler, &f.ctx) != 0) return "emulator: swapcontext failed";
            if (f.done)
                ++finished;
            else
                ++waiting;
        }
        if (waiting == 0) return nullptr;
        if (finished != 0) return "emulator: divergent __syncthreads (some threads of a block exited while others wait at a barrier)";
    }
}

}  // namespace

void eqflow_emu_syncthreads() {
    if (!in_fibers) {
        loop_error = "emulator: __syncthreads in a kernel launched as a plain loop (the generator missed it)";
        return;
    }
    Fiber &f = fibers[current];
    f.at_barrier = true;
    swapcontext(&f.ctx, &scheduler);
}

const char *eqflow_emu_run(unsigned int grid, unsigned int block, bool syncs, void (*body)(const void *),
                           const void *args) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    if (grid == 0 || block == 0 || block > 1024) return "emulator: invalid launch geometry (grid 0, block 0 or block > 1024)";
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    run_body = body;
    run_args = args;
    loop_error = nullptr;
    in_fibers = syncs;
    for (unsigned int b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        if (syncs) {
            const char *e = run_block_fibers(block);
            if (e) {
                in_fibers = false;
                return e;
            }
        } else {
            for (unsigned int t = 0; t < block; ++t) {
                threadIdx = {t, 0, 0};
                body(args);
            }
            if (loop_error) return loop_error;
        }
    }
    in_fibers = false;
    return nullptr;
}
