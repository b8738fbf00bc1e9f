//! `#[repr(C)]` mirrors of the kernels' argument structs in `kernels/eqflow_kernel_args.h`,
//! field for field (device pointers as u64). A test compiles the header with the system C
//! compiler and compares every size and offset with these.

macro_rules! kernel_args {
    ($( $(#[$doc:meta])* $name:ident => $c:literal { $( $f:ident : $t:ty ),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            #[derive(Debug, Clone, Copy, Default, PartialEq)]
            pub struct $name { $( #[doc = concat!("`", stringify!($f), "` of `", $c, "`.")] pub $f: $t ),* }
        )*
        /// (C name, size, [(field, offset)]) of every mirror, for the layout test.
        pub fn layouts() -> Vec<(&'static str, usize, Vec<(&'static str, usize)>)> {
            vec![$( ($c, std::mem::size_of::<$name>(), vec![$( (stringify!($f), std::mem::offset_of!($name, $f)) ),*]) ),*]
        }
    };
}

kernel_args! {
    /// Raw Philox words (rng.cu).
    PhiloxArgs => "eqflow_philox_args" { out: u64, seed: u64, index: u64, stream: u32, count: u32 }
    /// Prior normals (rng.cu).
    PriorArgs => "eqflow_prior_args" { z: u64, seed: u64, first: u64, stream: u32, n: u32, v: u32, pad0: u32 }
    /// Uniforms (rng.cu).
    UniformArgs => "eqflow_uniform_args" { u: u64, seed: u64, first: u64, stream: u32, k: u32, n: u32, pad0: u32 }
    /// Action and force (action.cu).
    ActionArgs => "eqflow_action_args" { phi: u64, out: u64, m2: f64, lambda: f64, n: u32, l: u32 }
    /// Features (features.cu).
    FeaturesArgs => "eqflow_features_args" {
        u: u64, omega: u64, h: u64, hp: u64, n: u32, v: u32, n_omega: u32, n_h: u32, kind: u32, linear: u32
    }
    /// Feature mixing (features.cu).
    MixArgs => "eqflow_mix_args" { f: u64, h: u64, g: u64, n: u32, v: u32, n_h: u32, n_c: u32 }
    /// Direct convolution (conv.cu).
    ConvArgs => "eqflow_conv_args" { w: u64, g: u64, out: u64, n: u32, l: u32, n_c: u32, pad0: u32 }
    /// Divergence (density.cu).
    DivergenceArgs => "eqflow_divergence_args" { hp: u64, beta: u64, div: u64, n: u32, v: u32, n_h: u32, pad0: u32 }
    /// Prior log-density (density.cu).
    LogPriorArgs => "eqflow_log_prior_args" { z: u64, out: u64, n: u32, v: u32 }
    /// RK4 stage point (rk4.cu).
    Rk4PointArgs => "eqflow_rk4_point_args" { phi: u64, k: u64, u: u64, c: f64, len: u64 }
    /// RK4 combination (rk4.cu).
    Rk4CombineArgs => "eqflow_rk4_combine_args" {
        base: u64, k1: u64, k2: u64, k3: u64, k4: u64, out: u64,
        d1: u64, d2: u64, d3: u64, d4: u64, neg_div: u64, h: f64, n: u32, v: u32
    }
    /// Metropolis accept/reject (metropolis.cu).
    MetropolisArgs => "eqflow_metropolis_args" {
        log_q: u64, action: u64, u: u64, state: u64, accepted: u64,
        cur_log_q: f64, cur_action: f64, m: u32, has_state: i32
    }
    /// Slot weights from the parameters (train.cu).
    SlotWeightsArgs => "eqflow_slot_weights_args" {
        w: u64, kp: u64, orbit_of: u64, wt: u64, w0: u64, slot: u32, n_c: u32, n_tc: u32, v: u32
    }
    /// Divergence weights of the slots (train.cu).
    SlotBetaArgs => "eqflow_slot_beta_args" { wt: u64, f: u64, beta: u64, n_c: u32, n_h: u32, v: u32, pad0: u32 }
    /// Backward pass of the convolution (train.cu).
    ConvBackwardArgs => "eqflow_conv_backward_args" {
        w: u64, kbar: u64, g: u64, a: u64, wbar: u64, n: u32, l: u32, n_c: u32, slot: u32
    }
    /// Backward pass of the features (train.cu).
    FeaturesBackwardArgs => "eqflow_features_backward_args" {
        u: u64, omega: u64, h: u64, hp: u64, hbar: u64, beta: u64, ubar: u64, beta_bar: u64, omega_bar: u64,
        dbar: f64, n: u32, v: u32, n_omega: u32, n_h: u32, kind: u32, slot: u32
    }
    /// The mixing's cotangent (train.cu).
    OuterArgs => "eqflow_outer_args" { a: u64, h: u64, fbar: u64, n: u32, v: u32, n_c: u32, n_h: u32 }
    /// y = αx + βy (train.cu).
    AxpbyArgs => "eqflow_axpby_args" { x: u64, y: u64, alpha: f64, beta: f64, len: u64, x64: u32, pad0: u32 }
    /// The parameter gradient (train.cu).
    ParamGradArgs => "eqflow_param_grad_args" {
        wbar: u64, beta_bar: u64, fbar: u64, f: u64, w0: u64, orbit_start: u64, orbit_sites: u64, w: u64,
        kp: u64, wo_bar: u64, gw: u64, kp_bar: u64, gf: u64,
        n_slots: u32, n_orb: u32, n_tc: u32, n_c: u32, n_h: u32, v: u32, orbit0: u32, phase: u32
    }
    /// The passes of the Fourier-space convolution (spectral.cu).
    SpectralArgs => "eqflow_spectral_args" {
        input: u64, out: u64, tw: u64, w: u64, scale: f64, offset: u64, m: u32, l: u32, n_c: u32, mode: u32
    }
    /// One stage's fused vector field (field.cu).
    FieldStageArgs => "eqflow_field_stage_args" {
        u: u64, omega: u64, spectrum: u64, beta: u64, tw: u64, k: u64, div: u64,
        n: u32, l: u32, n_omega: u32, n_h: u32, kind: u32, linear: u32
    }
}

// SAFETY: plain-data #[repr(C)] structs of integers and floats, passed by value to kernels
// whose parameter is the C struct of the same layout (checked by `tests::args_match_header`).
macro_rules! device_repr {
    ($($t:ty),*) => { $( unsafe impl cudarc::driver::DeviceRepr for $t {} )* };
}
device_repr!(
    PhiloxArgs,
    PriorArgs,
    UniformArgs,
    ActionArgs,
    FeaturesArgs,
    MixArgs,
    ConvArgs,
    DivergenceArgs,
    LogPriorArgs,
    Rk4PointArgs,
    Rk4CombineArgs,
    MetropolisArgs,
    SlotWeightsArgs,
    SlotBetaArgs,
    ConvBackwardArgs,
    FeaturesBackwardArgs,
    OuterArgs,
    AxpbyArgs,
    ParamGradArgs,
    SpectralArgs,
    FieldStageArgs
);
