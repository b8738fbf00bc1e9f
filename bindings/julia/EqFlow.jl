# EqFlow.jl: Julia bindings of the eqflow C API (include/eqflow.h), with ccall and finalizers.
# Set ENV["EQFLOW_LIB"] to the path of libeqflow.so (default: "libeqflow" on the loader path).
# Constants mirror eqflow.h (tests/c_abi.rs checks every #define of the header against this file).
module EqFlow

export Context, Flow, Chain, EqFlowError, train!, sample!, sample_float!, log_prob!, ess!, save, load_flow,
       chain_step!, chain_run!, set_flip!, observables, reset_observables!, load_chain, set_state!, chain_state,
       reweight!, lattice_volume, restart_schedule!, set_gradient!

const libeqflow = get(ENV, "EQFLOW_LIB", "libeqflow")

const EQFLOW_STATUS_OK = Int32(0)
const EQFLOW_STATUS_INVALID_ARGUMENT = Int32(100)
const EQFLOW_STATUS_NULL_POINTER = Int32(101)
const EQFLOW_STATUS_BAD_LENGTH = Int32(102)
const EQFLOW_STATUS_BAD_STRUCT_SIZE = Int32(103)
const EQFLOW_STATUS_BUSY = Int32(104)
const EQFLOW_STATUS_IO = Int32(105)
const EQFLOW_STATUS_BAD_FILE = Int32(106)
const EQFLOW_STATUS_MISMATCH = Int32(107)
const EQFLOW_STATUS_OUT_OF_MEMORY = Int32(108)
const EQFLOW_STATUS_POISONED = Int32(109)
const EQFLOW_STATUS_CALLBACK = Int32(110)
const EQFLOW_STATUS_NO_DEVICE = Int32(200)
const EQFLOW_STATUS_DEVICE = Int32(201)
const EQFLOW_STATUS_NON_FINITE = Int32(300)
const EQFLOW_STATUS_NO_CONVERGENCE = Int32(301)
const EQFLOW_STATUS_PANIC = Int32(900)
const EQFLOW_STATUS_INTERNAL = Int32(901)
const EQFLOW_BACKEND_CPU = Int32(0)
const EQFLOW_BACKEND_CUDA = Int32(1)
const EQFLOW_ARCH_SEED = Int32(0)
const EQFLOW_ARCH_REFINED = Int32(1)
const EQFLOW_FROM_PRESET = Int32(0)
const EQFLOW_SYMMETRY_FULL = Int32(1)
const EQFLOW_SYMMETRY_TRANSLATIONS = Int32(2)
const EQFLOW_FEATURES_ODD = Int32(1)
const EQFLOW_FEATURES_NON_ODD = Int32(2)
const EQFLOW_PRECISION_F64 = Int32(0)
const EQFLOW_PRECISION_F32 = Int32(1)
const EQFLOW_LAYOUT_X1_FASTEST = Int32(0)   # index = x0*L + x1 (C order)
const EQFLOW_LAYOUT_X0_FASTEST = Int32(1)   # index = x1*L + x0: a Julia L×L matrix phi[x0+1, x1+1]
const EQFLOW_LAYOUT_EVEN_ODD = Int32(2)     # even sites first, then odd, each x1 fastest
const EQFLOW_COUPLINGS_STANDARD = Int32(0)  # (m2, lambda)
const EQFLOW_FLOW_CONTINUOUS = Int32(0)    # the equivariant continuous flow
const EQFLOW_FLOW_REALNVP = Int32(1)       # the RealNVP baseline
const EQFLOW_GRADIENT_TOTAL = Int32(0)     # training gradient: total derivative (default)
const EQFLOW_GRADIENT_PATH = Int32(1)      # training gradient: path gradient
const EQFLOW_COUPLINGS_HOPPING = Int32(1)   # (kappa, lambda_tilde); fields are phi/sqrt(kappa)

# Layouts of the C structs (Julia's isbits structs follow the C ABI's alignment rules).
mutable struct ContextParams
    struct_size::Csize_t
    backend::Int32
    device::Int32
    threads::Int32
end

mutable struct FlowParams
    struct_size::Csize_t
    lattice_size::Int32
    m2::Float64
    lambda::Float64
    n_frequencies::Int32
    time_kernel_size::Int32
    ode_steps::Int32
    symmetry::Int32
    features::Int32
    batch_size::Int32
    learning_rate::Float64
    seed::UInt64
    architecture::Int32
    precision::Int32
    layout::Int32
    couplings_form::Int32
    kappa::Float64
    lambda_tilde::Float64
    flow_type::Int32       # EQFLOW_FLOW_*
    warmup_steps::Int32
    micro_batch::Int32     # gradient accumulation (0: the whole batch)
    coarse_ode_steps::Int32 # RK4 steps of the first coarse_steps training steps (0: none)
    coarse_steps::Int32
end

mutable struct TrainStats
    struct_size::Csize_t
    steps_done::UInt64
    loss::Float64
    ess::Float64
    seconds::Float64
end

mutable struct ChainStats
    struct_size::Csize_t
    proposed::UInt64
    accepted::UInt64
    acceptance::Float64
    non_finite::UInt64
    flips_proposed::UInt64
    flips_accepted::UInt64
    measured::UInt64
end
ChainStats() = ChainStats(sizeof(ChainStats), 0, 0, 0, 0, 0, 0, 0)

"""Observables with errors and τ_int (eqflow_observables)."""
mutable struct Observables
    struct_size::Csize_t
    n::UInt64
    abs_m::Float64
    abs_m_err::Float64
    chi2::Float64
    chi2_err::Float64
    l_m_p::Float64
    l_m_p_err::Float64
    xi::Float64
    xi_err::Float64
    binder::Float64
    binder_err::Float64
    tau_int_abs_m::Float64
    tau_int_chi2::Float64
end
Observables() = Observables(sizeof(Observables), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

"""Reweighted estimates of independent flow samples (eqflow_reweighted)."""
mutable struct Reweighted
    struct_size::Csize_t
    n::UInt64
    ess::Float64
    log_z::Float64
    log_z_err::Float64
    m::Float64
    m_err::Float64
    abs_m::Float64
    abs_m_err::Float64
    chi2::Float64
    chi2_err::Float64
    binder::Float64
    binder_err::Float64
    l_m_p::Float64
    l_m_p_err::Float64
    ess_err::Float64
end
Reweighted() = Reweighted(sizeof(Reweighted), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

struct EqFlowError <: Exception
    status::Int32
    message::String
end
Base.showerror(io::IO, e::EqFlowError) = print(io, status_name(e.status), ": ", e.message)

status_name(s::Integer) = unsafe_string(ccall((:eqflow_status_name, libeqflow), Cstring, (Int32,), s))
last_error_message() = unsafe_string(ccall((:eqflow_last_error_message, libeqflow), Cstring, ()))
version_string() = unsafe_string(ccall((:eqflow_version_string, libeqflow), Cstring, ()))
version_hex() = ccall((:eqflow_version_hex, libeqflow), UInt32, ())
backend_available(b::Integer) = ccall((:eqflow_backend_available, libeqflow), Int32, (Int32,), b) == 1

check(s::Int32) = s == EQFLOW_STATUS_OK ? nothing : throw(EqFlowError(s, last_error_message()))

function ContextParams()
    p = ContextParams(0, 0, 0, 0)
    ccall((:eqflow_context_params_init, libeqflow), Cvoid, (Ref{ContextParams}, Csize_t), p, sizeof(ContextParams))
    p
end

function FlowParams(; kwargs...)
    p = FlowParams(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ccall((:eqflow_flow_params_init, libeqflow), Cvoid, (Ref{FlowParams}, Csize_t), p, sizeof(FlowParams))
    for (k, v) in kwargs
        setfield!(p, k, convert(fieldtype(FlowParams, k), v))
    end
    p
end

"""Backend, device and threads; may be shared between threads."""
mutable struct Context
    ptr::Ptr{Cvoid}
    function Context(p::ContextParams=ContextParams())
        out = Ref{Ptr{Cvoid}}(C_NULL)
        check(ccall((:eqflow_context_new, libeqflow), Int32, (Ref{ContextParams}, Ref{Ptr{Cvoid}}), p, out))
        finalizer(c -> ccall((:eqflow_context_free, libeqflow), Cvoid, (Ptr{Cvoid},), c.ptr), new(out[]))
    end
end

"""A flow; one task/thread at a time (concurrent use throws EqFlowError with EQFLOW_STATUS_BUSY)."""
mutable struct Flow
    ptr::Ptr{Cvoid}
    function Flow(ptr::Ptr{Cvoid})
        finalizer(f -> ccall((:eqflow_flow_free, libeqflow), Cvoid, (Ptr{Cvoid},), f.ptr), new(ptr))
    end
end

function Flow(ctx::Context, p::FlowParams)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:eqflow_flow_new, libeqflow), Int32, (Ptr{Cvoid}, Ref{FlowParams}, Ref{Ptr{Cvoid}}), ctx.ptr, p, out))
    Flow(out[])
end

function load_flow(ctx::Context, path::AbstractString)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:eqflow_flow_load, libeqflow), Int32, (Ptr{Cvoid}, Cstring, Ref{Ptr{Cvoid}}), ctx.ptr, path, out))
    Flow(out[])
end

function lattice_volume(f::Flow)
    v = Ref{Csize_t}(0)
    check(ccall((:eqflow_flow_lattice_volume, libeqflow), Int32, (Ptr{Cvoid}, Ref{Csize_t}), f.ptr, v))
    Int(v[])
end

function train!(f::Flow, n_steps::Integer)
    s = TrainStats(sizeof(TrainStats), 0, 0, 0, 0)
    check(ccall((:eqflow_flow_train, libeqflow), Int32, (Ptr{Cvoid}, UInt64, Ref{TrainStats}), f.ptr, n_steps, s))
    s
end

"""n samples: (phi as a V×n matrix, field after field; log q; action)."""
function sample!(f::Flow, n::Integer)
    v = lattice_volume(f)
    phi = Matrix{Float64}(undef, v, n)
    lq = Vector{Float64}(undef, n)
    s = Vector{Float64}(undef, n)
    check(ccall((:eqflow_flow_sample, libeqflow), Int32,
                (Ptr{Cvoid}, Csize_t, Ptr{Float64}, Csize_t, Ptr{Float64}, Csize_t, Ptr{Float64}, Csize_t),
                f.ptr, n, phi, length(phi), lq, n, s, n))
    phi, lq, s
end

"""n samples with single-precision fields: (phi as a V×n Float32 matrix; log q; action)."""
function sample_float!(f::Flow, n::Integer)
    v = lattice_volume(f)
    phi = Matrix{Float32}(undef, v, n)
    lq = Vector{Float64}(undef, n)
    s = Vector{Float64}(undef, n)
    check(ccall((:eqflow_flow_sample_float, libeqflow), Int32,
                (Ptr{Cvoid}, Csize_t, Ptr{Float32}, Csize_t, Ptr{Float64}, Csize_t, Ptr{Float64}, Csize_t),
                f.ptr, n, phi, length(phi), lq, n, s, n))
    phi, lq, s
end

"""Reweighted estimates from `n` >= 2 fresh samples, to λ + `delta_lambda` (0: the flow's target)."""
function reweight!(f::Flow, n::Integer, delta_lambda::Real=0.0)
    r = Reweighted()
    check(ccall((:eqflow_flow_reweight, libeqflow), Int32, (Ptr{Cvoid}, Csize_t, Float64, Ref{Reweighted}),
                f.ptr, n, delta_lambda, r))
    r
end

function log_prob!(f::Flow, phi::AbstractArray{Float64})
    phi = Array{Float64}(phi)
    lq = Vector{Float64}(undef, length(phi) ÷ lattice_volume(f))
    check(ccall((:eqflow_flow_log_prob, libeqflow), Int32, (Ptr{Cvoid}, Ptr{Float64}, Csize_t, Ptr{Float64}, Csize_t),
                f.ptr, phi, length(phi), lq, length(lq)))
    lq
end

function ess!(f::Flow, n::Integer)
    e = Ref{Float64}(0)
    check(ccall((:eqflow_flow_ess, libeqflow), Int32, (Ptr{Cvoid}, Csize_t, Ref{Float64}), f.ptr, n, e))
    e[]
end

save(f::Flow, path::AbstractString) =
    check(ccall((:eqflow_flow_save, libeqflow), Int32, (Ptr{Cvoid}, Cstring), f.ptr, path))

"""Use a host action: `cfun` from `@cfunction(f, Int32, (Ptr{Cvoid}, Csize_t, Csize_t, Ptr{Cdouble},
Ptr{Cdouble}, Ptr{Cdouble}))` following eqflow_action_fn; `C_NULL` restores the built-in one.
Keep `cfun` and `user` alive while the flow (and its chains) may call it."""
set_action!(f::Flow, cfun::Ptr{Cvoid}, user::Ptr{Cvoid}=C_NULL) =
    check(ccall((:eqflow_flow_set_action, libeqflow), Int32, (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}), f.ptr, cfun, user))

"""A Metropolis chain over a frozen snapshot of a flow; one task/thread at a time."""
mutable struct Chain
    ptr::Ptr{Cvoid}
    volume::Int
    function Chain(ptr::Ptr{Cvoid}, volume::Integer)
        finalizer(c -> ccall((:eqflow_chain_free, libeqflow), Cvoid, (Ptr{Cvoid},), c.ptr), new(ptr, volume))
    end
end

function Chain(f::Flow, seed::Integer)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:eqflow_chain_new, libeqflow), Int32, (Ptr{Cvoid}, UInt64, Ref{Ptr{Cvoid}}), f.ptr, seed, out))
    Chain(out[], lattice_volume(f))
end

# V of a chain
function chain_volume(ptr::Ptr{Cvoid})
    v = Ref{Csize_t}(0)
    check(ccall((:eqflow_chain_lattice_volume, libeqflow), Int32, (Ptr{Cvoid}, Ref{Csize_t}), ptr, v))
    Int(v[])
end

"""Seeds `f` from a flow trained on a smaller (or the same) lattice, of the same architecture or a narrower one (fewer frequencies, a coarser time kernel): see `eqflow_flow_init_from`."""
function init_from!(f::Flow, small::Flow)
    check(ccall((:eqflow_flow_init_from, libeqflow), Int32, (Ptr{Cvoid}, Ptr{Cvoid}), f.ptr, small.ptr))
    f
end

"""Starts a new learning-rate schedule at the step `f` has reached (parameters and Adam's
moments kept): base rate `lr`, a tenfold decay every `decay_steps` (0: the flow's schedule
kept), `warmup_steps` of linear warm-up."""
function restart_schedule!(f::Flow, lr::Real; decay_steps::Real = 0.0, warmup_steps::Integer = 0)
    check(ccall((:eqflow_flow_restart_schedule, libeqflow), Int32, (Ptr{Cvoid}, Float64, Float64, UInt64),
                f.ptr, lr, decay_steps, warmup_steps))
    f
end

"""Chooses the training gradient estimator: `EQFLOW_GRADIENT_TOTAL` or `EQFLOW_GRADIENT_PATH`."""
function set_gradient!(f::Flow, gradient::Integer)
    check(ccall((:eqflow_flow_set_gradient, libeqflow), Int32, (Ptr{Cvoid}, Int32), f.ptr, gradient))
    f
end

"""Loads a chain saved with `save(chain, path)`; it continues bit for bit."""
function load_chain(ctx::Context, path::AbstractString)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:eqflow_chain_load, libeqflow), Int32, (Ptr{Cvoid}, Cstring, Ref{Ptr{Cvoid}}), ctx.ptr, path, out))
    Chain(out[], chain_volume(out[]))
end

save(c::Chain, path::AbstractString) =
    check(ccall((:eqflow_chain_save, libeqflow), Int32, (Ptr{Cvoid}, Cstring), c.ptr, path))

"""n steps in bounded memory: every `save_every`-th field (V×(n÷save_every); none for 0) and the ChainStats."""
function chain_run!(c::Chain, n::Integer, save_every::Integer=0)
    k = save_every == 0 ? 0 : n ÷ save_every
    phi = Matrix{Float64}(undef, c.volume, k)
    st = ChainStats()
    GC.@preserve phi check(ccall((:eqflow_chain_run, libeqflow), Int32,
                                 (Ptr{Cvoid}, Csize_t, Csize_t, Ptr{Float64}, Csize_t, Ref{ChainStats}),
                                 c.ptr, n, save_every, k == 0 ? Ptr{Float64}(C_NULL) : pointer(phi), length(phi), st))
    phi, st
end

"""The Z2 flip update φ → −φ after each step (off by default)."""
set_flip!(c::Chain, on::Bool) =
    check(ccall((:eqflow_chain_set_flip, libeqflow), Int32, (Ptr{Cvoid}, Int32), c.ptr, on ? 1 : 0))

"""The observables of every step measured so far (at least 10), with errors and τ_int."""
function observables(c::Chain)
    o = Observables()
    check(ccall((:eqflow_chain_observables, libeqflow), Int32, (Ptr{Cvoid}, Ref{Observables}), c.ptr, o))
    o
end

reset_observables!(c::Chain) =
    check(ccall((:eqflow_chain_reset_observables, libeqflow), Int32, (Ptr{Cvoid},), c.ptr))

"""n Metropolis steps: (fields V×n, accept flags, running ChainStats)."""
function chain_step!(c::Chain, n::Integer)
    phi = Matrix{Float64}(undef, c.volume, n)
    acc = Vector{UInt8}(undef, n)
    st = ChainStats()
    check(ccall((:eqflow_chain_step, libeqflow), Int32,
                (Ptr{Cvoid}, Csize_t, Ptr{Float64}, Csize_t, Ptr{UInt8}, Csize_t, Ref{ChainStats}),
                c.ptr, n, phi, length(phi), acc, n, st))
    phi, acc .== 1, st
end

function set_state!(c::Chain, phi::AbstractVector{Float64})
    phi = Vector{Float64}(phi)
    check(ccall((:eqflow_chain_set_state, libeqflow), Int32, (Ptr{Cvoid}, Ptr{Float64}, Csize_t), c.ptr, phi, length(phi)))
end

function chain_state(c::Chain)
    phi = Vector{Float64}(undef, c.volume)
    lq = Ref{Float64}(0)
    s = Ref{Float64}(0)
    check(ccall((:eqflow_chain_state, libeqflow), Int32, (Ptr{Cvoid}, Ptr{Float64}, Csize_t, Ref{Float64}, Ref{Float64}),
                c.ptr, phi, length(phi), lq, s))
    phi, lq[], s[]
end

end # module
