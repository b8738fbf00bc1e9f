/* Argument structs of the eqflow CUDA kernels: one plain-data struct per entry point,
 * passed by value. Mirrored field for field by #[repr(C)] structs in src/cuda/args.rs;
 * a test compiles this header with the system C compiler and compares sizeof/offsetof.
 *
 * Only fixed-size types: device pointers are `unsigned long long` (CUdeviceptr), counts
 * `unsigned int`, reals `double`. Pointer fields name the element type in a comment; the
 * f32 and f64 entry points of one kernel share its struct. Layouts follow SPEC §1: a batch
 * of n fields is n·V reals, field after field, x1 fastest.
 */
#ifndef EQFLOW_KERNEL_ARGS_H
#define EQFLOW_KERNEL_ARGS_H

/* rng.cu: raw Philox4x32-10 words of sub-counters 0..count-1 of one (seed, stream, index). */
typedef struct eqflow_philox_args {
    unsigned long long out;   /* u32[4 * count] */
    unsigned long long seed;
    unsigned long long index;
    unsigned int stream;
    unsigned int count;
} eqflow_philox_args;

/* rng.cu: z[i][k] = the k-th standard normal of (seed, stream, first + i), i < n, k < v
 * (Rng::fill_normal, rounded to the real type). */
typedef struct eqflow_prior_args {
    unsigned long long z;     /* R[n * v] */
    unsigned long long seed;
    unsigned long long first;
    unsigned int stream;
    unsigned int n;
    unsigned int v;
    unsigned int pad0;
} eqflow_prior_args;

/* rng.cu: u[i] = Rng::new(seed, stream, first + i).uniform(k), i < n. */
typedef struct eqflow_uniform_args {
    unsigned long long u;     /* f64[n] */
    unsigned long long seed;
    unsigned long long first;
    unsigned int stream;
    unsigned int k;
    unsigned int n;
    unsigned int pad0;
} eqflow_uniform_args;

/* action.cu: S of each of n fields (f64 out) and, for the force kernel, dS/dphi (f64). */
typedef struct eqflow_action_args {
    unsigned long long phi;   /* R[n * l * l] */
    unsigned long long out;   /* action: f64[n]; force: f64[n * l * l] */
    double m2;
    double lambda;
    unsigned int n;
    unsigned int l;
} eqflow_action_args;

/* features.cu: h and h' = dh/dphi (n_h x V each per field) of n fields u.
 * kind 0 = odd (sin), 1 = non-odd (sin, cos, 1); linear != 0 appends the row phi. */
typedef struct eqflow_features_args {
    unsigned long long u;     /* R[n * v] */
    unsigned long long omega; /* R[n_omega] */
    unsigned long long h;     /* R[n * n_h * v] */
    unsigned long long hp;    /* R[n * n_h * v] */
    unsigned int n;
    unsigned int v;
    unsigned int n_omega;
    unsigned int n_h;
    unsigned int kind;
    unsigned int linear;
} eqflow_features_args;

/* features.cu: g = F~ h per field (F~ is n_c x n_h, row-major), the feature mixing. */
typedef struct eqflow_mix_args {
    unsigned long long f;     /* R[n_c * n_h] */
    unsigned long long h;     /* R[n * n_h * v] */
    unsigned long long g;     /* R[n * n_c * v] */
    unsigned int n;
    unsigned int v;
    unsigned int n_h;
    unsigned int n_c;
} eqflow_mix_args;

/* conv.cu: out[b][x] = sum_c sum_y w[c][(x - y) mod L] g[b][c][y] (direct sum). */
typedef struct eqflow_conv_args {
    unsigned long long w;     /* R[n_c * l * l] */
    unsigned long long g;     /* R[n * n_c * l * l] */
    unsigned long long out;   /* R[n * l * l] */
    unsigned int n;
    unsigned int l;
    unsigned int n_c;
    unsigned int pad0;
} eqflow_conv_args;

/* density.cu: div[b] = sum_j (beta_j * sum_x h'_j(x)) (f64 out), the divergence. */
typedef struct eqflow_divergence_args {
    unsigned long long hp;    /* R[n * n_h * v] */
    unsigned long long beta;  /* R[n_h] */
    unsigned long long div;   /* f64[n] */
    unsigned int n;
    unsigned int v;
    unsigned int n_h;
    unsigned int pad0;
} eqflow_divergence_args;

/* density.cu: log r(z_b) = -1/2 sum z^2 - (V/2) log 2 pi (f64 out), the prior density. */
typedef struct eqflow_log_prior_args {
    unsigned long long z;     /* R[n * v] */
    unsigned long long out;   /* f64[n] */
    unsigned int n;
    unsigned int v;
} eqflow_log_prior_args;

/* rk4.cu: u = phi + c * k, the stage point (len = n * V reals). */
typedef struct eqflow_rk4_point_args {
    unsigned long long phi;   /* R[len] */
    unsigned long long k;     /* R[len] */
    unsigned long long u;     /* R[len] */
    double c;
    unsigned long long len;
} eqflow_rk4_point_args;

/* rk4.cu: out = base + h/6 (k1 + 2 k2 + 2 k3 + k4) per site, and
 * neg_div[b] -= h/6 (d1 + 2 d2 + 2 d3 + d4) per field. */
typedef struct eqflow_rk4_combine_args {
    unsigned long long base;  /* R[n * v] */
    unsigned long long k1;    /* R[n * v] */
    unsigned long long k2;
    unsigned long long k3;
    unsigned long long k4;
    unsigned long long out;   /* R[n * v]; may equal base */
    unsigned long long d1;    /* f64[n] */
    unsigned long long d2;
    unsigned long long d3;
    unsigned long long d4;
    unsigned long long neg_div; /* f64[n], accumulated */
    double h;
    unsigned int n;
    unsigned int v;
} eqflow_rk4_combine_args;

/* metropolis.cu: one independence Metropolis chain over m proposals (one thread).
 * state[i] = index of the proposal that is the chain state after step i, -1 for the state
 * the chain had before (cur_*, when has_state != 0), -2 while it has none;
 * accepted[i] = 1 if step i accepted its proposal, else 0. */
typedef struct eqflow_metropolis_args {
    unsigned long long log_q;    /* f64[m] */
    unsigned long long action;   /* f64[m] */
    unsigned long long u;        /* f64[m]: uniform(0) of (seed, Metropolis, first + i) */
    unsigned long long state;    /* i32[m] */
    unsigned long long accepted; /* i32[m] */
    double cur_log_q;
    double cur_action;
    unsigned int m;
    int has_state;
} eqflow_metropolis_args;

/* train.cu: the weights of one time slot from the parameters (SlotWeights::new):
 * wt[c][r] = (R) sum_a W[orbit_of[r]][a][c] kp[slot][a], summed in f64 in order of a; also
 * w0[slot][c] = wt[c][0]. */
typedef struct eqflow_slot_weights_args {
    unsigned long long w;        /* f64[n_orb * n_tc * n_c]: the parameters W */
    unsigned long long kp;       /* f64[n_slots * n_tc]: K'(t_s) */
    unsigned long long orbit_of; /* u32[v] */
    unsigned long long wt;       /* R[n_c * v]: this slot's */
    unsigned long long w0;       /* R[n_slots * n_c] */
    unsigned int slot;
    unsigned int n_c;
    unsigned int n_tc;
    unsigned int v;
} eqflow_slot_weights_args;

/* train.cu: the divergence weights of one slot: beta[j] = sum_c wt[c][0] f[c][j] (in R, in
 * order of c), or wt[j][0] without feature mixing (f = 0, n_h = n_c). */
typedef struct eqflow_slot_beta_args {
    unsigned long long wt;       /* R[n_c * v] */
    unsigned long long f;        /* R[n_c * n_h] or 0 */
    unsigned long long beta;     /* R[n_h] */
    unsigned int n_c;
    unsigned int n_h;
    unsigned int v;
    unsigned int pad0;
} eqflow_slot_beta_args;

/* train.cu: the backward pass of the convolution (conv::direct::backward):
 * a[b][c][y] = sum_x w[c][(x - y) mod L] kbar[b][x]  (input kernel), and
 * wbar[slot][c][r] += sum_b sum_x kbar[b][x] g[b][c][(x - r) mod L]  (f64, kernel kernel). */
typedef struct eqflow_conv_backward_args {
    unsigned long long w;        /* R[n_c * l * l]: W_t of the slot */
    unsigned long long kbar;     /* R[n * l * l] */
    unsigned long long g;        /* R[n * n_c * l * l] */
    unsigned long long a;        /* R[n * n_c * l * l] */
    unsigned long long wbar;     /* f64[n_slots * n_c * l * l] */
    unsigned int n;
    unsigned int l;
    unsigned int n_c;
    unsigned int slot;
} eqflow_conv_backward_args;

/* train.cu: the backward pass of the features (Features::backward) at stage point u:
 * ubar[b][x] = sum_j hbar[b][j][x] h'[b][j][x] - dbar sum_k beta_k omega_k^2 h_k[b][x] (sine and
 * cosine rows); and the block reductions beta_bar[slot][j] += dbar sum_{b,x} h'_j (blocks
 * 0..n_h) and omega_bar[k] += sum_{b,x} [hbar dh/domega + dbar beta dh'/domega] (blocks
 * n_h..n_h + n_omega). */
typedef struct eqflow_features_backward_args {
    unsigned long long u;        /* R[n * v] */
    unsigned long long omega;    /* R[n_omega] */
    unsigned long long h;        /* R[n * n_h * v] */
    unsigned long long hp;       /* R[n * n_h * v] */
    unsigned long long hbar;     /* R[n * n_h * v] */
    unsigned long long beta;     /* R[n_h]: the slot's divergence weights */
    unsigned long long ubar;     /* R[n * v] */
    unsigned long long beta_bar; /* f64[n_slots * n_h] */
    unsigned long long omega_bar;/* f64[n_omega] */
    double dbar;
    unsigned int n;
    unsigned int v;
    unsigned int n_omega;
    unsigned int n_h;
    unsigned int kind;
    unsigned int slot;
} eqflow_features_backward_args;

/* train.cu: fbar[c][j] += sum_b sum_x a[b][c][x] h[b][j][x] (f64), the mixing's cotangent. */
typedef struct eqflow_outer_args {
    unsigned long long a;        /* R[n * n_c * v] */
    unsigned long long h;        /* R[n * n_h * v] */
    unsigned long long fbar;     /* f64[n_c * n_h] */
    unsigned int n;
    unsigned int v;
    unsigned int n_c;
    unsigned int n_h;
} eqflow_outer_args;

/* train.cu: y = alpha x + beta y over len elements (alpha, beta rounded to R; beta = 0
 * overwrites y, NaN included); with x64 != 0, x is f64 and y = (R)(alpha x64) + beta y. */
typedef struct eqflow_axpby_args {
    unsigned long long x;        /* R[len], or f64[len] with x64 */
    unsigned long long y;        /* R[len] */
    double alpha;
    double beta;
    unsigned long long len;
    unsigned int x64;
    unsigned int pad0;
} eqflow_axpby_args;

/* train.cu: the parameter gradient from the accumulated cotangents (VectorField::vjp's tail),
 * summed over slots s:
 *   w0bar[s][c] = sum_j beta_bar[s][j] f[c][j] (or beta_bar[s][c]),
 *   wo_bar[s][o][c] = sum_{r in orbit o} wbar[s][c][r] + [o = orbit of 0] w0bar[s][c],
 *   gw[o][a][c] = sum_s kp[s][a] wo_bar[s][o][c]     (threads 0 .. n_orb n_tc n_c),
 *   kp_bar[s][a] = sum_{o,c} w[o][a][c] wo_bar[s][o][c] (threads after those, n_slots n_tc),
 *   gf[c][j] = (sum_s w0[s][c] beta_bar[s][j] + fbar[c][j]) / n_h (threads after those).
 * wo_bar is computed into scratch by the first phase (blocks of threads 0 .. n_slots n_orb n_c
 * with phase = 0), the contractions by phase = 1. */
typedef struct eqflow_param_grad_args {
    unsigned long long wbar;     /* f64[n_slots * n_c * v] */
    unsigned long long beta_bar; /* f64[n_slots * n_h] */
    unsigned long long fbar;     /* f64[n_c * n_h] or 0 */
    unsigned long long f;        /* R[n_c * n_h] or 0 (the mixing F~) */
    unsigned long long w0;       /* R[n_slots * n_c]: W_t[c][0] of every slot */
    unsigned long long orbit_start; /* u32[n_orb + 1] */
    unsigned long long orbit_sites; /* u32[v] */
    unsigned long long w;        /* f64[n_orb * n_tc * n_c] */
    unsigned long long kp;       /* f64[n_slots * n_tc] */
    unsigned long long wo_bar;   /* f64[n_slots * n_orb * n_c] (scratch) */
    unsigned long long gw;       /* f64[n_orb * n_tc * n_c] */
    unsigned long long kp_bar;   /* f64[n_slots * n_tc] */
    unsigned long long gf;       /* f64[n_c * n_h] or 0 */
    unsigned int n_slots;
    unsigned int n_orb;
    unsigned int n_tc;
    unsigned int n_c;
    unsigned int n_h;
    unsigned int v;
    unsigned int orbit0;
    unsigned int phase;
} eqflow_param_grad_args;

/* spectral.cu: convolutions through discrete Fourier transforms (any L). Spectra of real
 * L x L arrays keep k1 < K1 = L/2 + 1 and are stored [m][k0][k1] as (re, im) pairs of R;
 * tw[2j], tw[2j + 1] = cos, sin(2 pi j / L).
 *   eqflow_dft_rows:  out[m][x0][k1] = sum_x1 input[m][x0][x1] e^{-2 pi i k1 x1 / L}   (in real)
 *   eqflow_dft_cols:  out[m][k][k1] = sum_j in[m][j][k1] e^{-+2 pi i j k / L}  (mode 0: -, 1: +)
 *   eqflow_dft_c2r:   r[m][x0][x1] = scale sum_{k1 < K1} w(k1) Re(in[m][x0][k1] e^{2 pi i k1 x1 / L}),
 *                     w = 1 at k1 = 0 and 2 k1 = L, else 2; mode 0: out (R) = r, mode 1: out (f64)
 *                     [offset + ...] += r
 *   eqflow_spectral_mix (n fields, n_c channels, per frequency k):
 *     mode 0: out[b][k] = sum_c w[c][k] in[b][c][k]          (forward)
 *     mode 1: out[b][c][k] = conj(w[c][k]) in[b][k]         (the input's cotangent)
 *     mode 2: out[c][k] = sum_b w[b][k] conj(in[b][c][k])   (the kernel's cotangent; f64 sums) */
typedef struct eqflow_spectral_args {
    unsigned long long input;
    unsigned long long out;
    unsigned long long tw;       /* R[2 l] */
    unsigned long long w;        /* mix only */
    double scale;                /* c2r only */
    unsigned long long offset;   /* c2r mode 1 only */
    unsigned int m;              /* arrays (dft), fields (mix) */
    unsigned int l;
    unsigned int n_c;            /* mix only */
    unsigned int mode;
} eqflow_spectral_args;

/* field.cu: one RK4 stage's vector field of n fields, fused (features, the spectral
 * convolution, the divergence) with one block per field, for architectures without feature
 * mixing (n_c = n_h) and l even, l <= FIELD_LMAX_F32 (f32) or FIELD_LMAX_F64 (f64); the
 * _small entry points take l <= FIELD_SMALL_LMAX (less shared memory: more blocks per SM).
 * k = sum_j W_j * h_j(u), div = sum_j beta_j sum_x h'_j(u_x). Threads per block: a multiple
 * of 32, at most FIELD_MAX_THREADS, enough for every row pair of a channel in one round (two
 * where they exceed FIELD_MAX_THREADS; src/cuda/launch.rs field_threads). */
#define FIELD_MAX_THREADS 1024
#define FIELD_SMALL_MAX_THREADS 512
#define FIELD_LMAX_F32 64
#define FIELD_LMAX_F64 44
#define FIELD_SMALL_LMAX 32
typedef struct eqflow_field_stage_args {
    unsigned long long u;        /* R[n * v] */
    unsigned long long omega;    /* R[n_omega] */
    unsigned long long spectrum; /* R[n_h * l * (l/2+1) * 2]: W's spectrum (eqflow_dft_cols) */
    unsigned long long beta;     /* R[n_h] */
    unsigned long long tw;       /* R[2 l]: cos, sin(2 pi j / l) */
    unsigned long long k;        /* R[n * v], written */
    unsigned long long div;      /* double[n], written */
    unsigned int n;
    unsigned int l;
    unsigned int n_omega;
    unsigned int n_h;
    unsigned int kind;
    unsigned int linear;
} eqflow_field_stage_args;

#endif
