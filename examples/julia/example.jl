# eqflow from Julia:  EQFLOW_LIB=target/release/libeqflow.so julia examples/julia/example.jl
include(joinpath(@__DIR__, "..", "..", "bindings", "julia", "EqFlow.jl"))
using .EqFlow

EqFlow.version_hex() > 0 || error("no version")
ctx = Context()
flow = Flow(ctx, EqFlow.FlowParams(lattice_size=4, lambda=6.975, n_frequencies=8, ode_steps=18, batch_size=16, seed=4))
st = train!(flow, 5)
println("trained $(st.steps_done) steps: loss $(round(st.loss, digits=4)), ESS $(round(st.ess, digits=3))")
phi, lq, s = sample!(flow, 4)
lq2 = log_prob!(flow, phi)
maximum(abs.(lq2 .- lq)) < 1e-8 * (1 + maximum(abs.(lq))) || error("log q mismatch")
chain = Chain(flow, 5)
_, acc, cs = chain_step!(chain, 40)
println("metropolis accepted $(cs.accepted) of $(cs.proposed)")
try
    set_state!(chain, zeros(3))
    error("expected an EqFlowError")
catch e
    e isa EqFlowError && e.status == EqFlow.EQFLOW_STATUS_BAD_LENGTH || rethrow()
    println("caught: ", sprint(showerror, e))
end
path = joinpath(mktempdir(), "flow.safetensors")
save(flow, path)
loaded = load_flow(ctx, path)
println("loaded flow ESS $(round(ess!(loaded, 32), digits=3))")
println("example.jl: ok")
