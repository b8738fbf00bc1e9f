// eqflow.hpp: header-only C++17 RAII layer over the C API in eqflow.h.
// Handles are move-only owners (std::unique_ptr with the eqflow_*_free deleter); every
// failing call throws eqflow::Error carrying the status and the library's message.
// Fields follow the flow's layout and variables (eqflow_flow_params::layout, couplings_form).
#ifndef EQFLOW_HPP
#define EQFLOW_HPP

#include "eqflow.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace eqflow {

/// A failed call: the status (EQFLOW_STATUS_*) and the message naming function and argument.
class Error : public std::runtime_error {
  public:
    Error(eqflow_status status, const std::string &message)
        : std::runtime_error(std::string(eqflow_status_name(status)) + ": " + message), status_(status) {}
    eqflow_status status() const noexcept { return status_; }

  private:
    eqflow_status status_;
};

/// Throws eqflow::Error unless `s` is EQFLOW_STATUS_OK.
inline void check(eqflow_status s) {
    if (s != EQFLOW_STATUS_OK) throw Error(s, eqflow_last_error_message());
}

namespace detail {
struct ContextFree {
    void operator()(eqflow_context *p) const noexcept { eqflow_context_free(p); }
};
struct FlowFree {
    void operator()(eqflow_flow *p) const noexcept { eqflow_flow_free(p); }
};
struct ChainFree {
    void operator()(eqflow_chain *p) const noexcept { eqflow_chain_free(p); }
};
} // namespace detail

/// A host action for Flow::set_action: for n fields of `volume` sites (phi, in the flow's layout
/// and variables) write S into action[0..n] and, when force is not null, dS/dphi into
/// force[0..n*volume]; return 0 on success. Anything else, or an exception, makes the eqflow
/// call fail with EQFLOW_STATUS_CALLBACK (the exception does not propagate: it never crosses
/// the C boundary).
using ActionFunction =
    std::function<int(std::size_t n, std::size_t volume, const double *phi, double *action, double *force)>;

namespace detail {
// The C callback behind Flow::set_action(ActionFunction): catches every exception.
inline std::int32_t action_trampoline(void *user, std::size_t n, std::size_t volume, const double *phi,
                                      double *action, double *force) noexcept {
    try {
        return static_cast<std::int32_t>((*static_cast<const ActionFunction *>(user))(n, volume, phi, action, force));
    } catch (...) {
        return -1;
    }
}

// Installs a C++ host action through `set` (eqflow_flow_set_action or eqflow_chain_set_action
// bound to a handle); returns the function to keep alive (null for an empty function).
template <class Set> std::shared_ptr<const ActionFunction> install_action(Set set, ActionFunction action) {
    if (!action) {
        check(set(nullptr, nullptr));
        return nullptr;
    }
    auto held = std::make_shared<const ActionFunction>(std::move(action));
    check(set(action_trampoline, const_cast<void *>(static_cast<const void *>(held.get()))));
    return held;
}
} // namespace detail

/// Defaults of eqflow_context_new (CPU, device 0, 1 thread).
inline eqflow_context_params context_params() {
    eqflow_context_params p;
    eqflow_context_params_init(&p, sizeof p);
    return p;
}

/// Defaults of eqflow_flow_new (see eqflow_flow_params_init).
inline eqflow_flow_params flow_params() {
    eqflow_flow_params p;
    eqflow_flow_params_init(&p, sizeof p);
    return p;
}

/// Backend, device and threads; may be shared between threads.
class Context {
  public:
    explicit Context(const eqflow_context_params &p = context_params()) {
        eqflow_context *c = nullptr;
        check(eqflow_context_new(&p, &c));
        h_.reset(c);
    }
    const eqflow_context *get() const noexcept { return h_.get(); }

  private:
    std::unique_ptr<eqflow_context, detail::ContextFree> h_;
};

/// Independent samples of a flow.
struct Samples {
    std::vector<double> phi, log_q, action;
};

/// Independent samples with single-precision fields (log q and S stay double).
struct FloatSamples {
    std::vector<float> phi;
    std::vector<double> log_q, action;
};

/// A flow: one thread at a time (concurrent use throws Error with EQFLOW_STATUS_BUSY).
class Flow {
  public:
    Flow(const Context &ctx, const eqflow_flow_params &p) {
        eqflow_flow *f = nullptr;
        check(eqflow_flow_new(ctx.get(), &p, &f));
        h_.reset(f);
    }
    /// Loads a flow saved with save().
    static Flow load(const Context &ctx, const std::string &path) {
        eqflow_flow *f = nullptr;
        check(eqflow_flow_load(ctx.get(), path.c_str(), &f));
        return Flow(f);
    }
    std::size_t volume() const {
        std::size_t v = 0;
        check(eqflow_flow_lattice_volume(h_.get(), &v));
        return v;
    }
    eqflow_train_stats train(std::uint64_t n_steps) {
        eqflow_train_stats s{};
        s.struct_size = sizeof s;
        check(eqflow_flow_train(h_.get(), n_steps, &s));
        return s;
    }
    Samples sample(std::size_t n) {
        Samples s;
        s.phi.resize(n * volume());
        s.log_q.resize(n);
        s.action.resize(n);
        check(eqflow_flow_sample(h_.get(), n, s.phi.data(), s.phi.size(), s.log_q.data(), n, s.action.data(), n));
        return s;
    }
    FloatSamples sample_float(std::size_t n) {
        FloatSamples s;
        s.phi.resize(n * volume());
        s.log_q.resize(n);
        s.action.resize(n);
        check(eqflow_flow_sample_float(h_.get(), n, s.phi.data(), s.phi.size(), s.log_q.data(), n, s.action.data(),
                                       n));
        return s;
    }
    /// Reweighted estimates from n_samples >= 2 fresh samples, to lambda + delta_lambda.
    eqflow_reweighted reweight(std::size_t n_samples, double delta_lambda = 0.0) {
        eqflow_reweighted r{};
        r.struct_size = sizeof r;
        check(eqflow_flow_reweight(h_.get(), n_samples, delta_lambda, &r));
        return r;
    }
    std::vector<double> log_prob(const std::vector<double> &phi) {
        std::vector<double> lq(phi.size() / volume());
        check(eqflow_flow_log_prob(h_.get(), phi.data(), phi.size(), lq.data(), lq.size()));
        return lq;
    }
    double ess(std::size_t n_samples) {
        double e = 0.0;
        check(eqflow_flow_ess(h_.get(), n_samples, &e));
        return e;
    }
    void save(const std::string &path) const { check(eqflow_flow_save(h_.get(), path.c_str())); }
    /// Seeds this flow from one trained on a smaller (or the same) lattice, of the same
    /// architecture or a narrower one (fewer frequencies, a coarser time kernel).
    void init_from(const Flow &small) { check(eqflow_flow_init_from(h_.get(), small.get())); }
    /// A new learning-rate schedule from the step reached (parameters and Adam's moments kept);
    /// decay_steps 0 keeps the flow's decay.
    /// EQFLOW_GRADIENT_TOTAL (default) or EQFLOW_GRADIENT_PATH.
    void set_gradient(std::int32_t gradient) { check(eqflow_flow_set_gradient(h_.get(), gradient)); }
    void restart_schedule(double learning_rate, double decay_steps = 0.0, std::uint64_t warmup_steps = 0) {
        check(eqflow_flow_restart_schedule(h_.get(), learning_rate, decay_steps, warmup_steps));
    }
    /// Train and propose against a host action (see eqflow_action_fn; nullptr: built-in phi^4).
    /// The callback must not throw: report failure by returning non-zero.
    void set_action(eqflow_action_fn action, void *user_data) {
        check(eqflow_flow_set_action(h_.get(), action, user_data));
        action_.reset();
    }
    /// Train and propose against a C++ host action (an empty function: the built-in phi^4).
    /// Exceptions it throws are caught and reported as EQFLOW_STATUS_CALLBACK. The function is
    /// kept alive by this flow and by the chains created while it is set.
    void set_action(ActionFunction action) {
        eqflow_flow *f = h_.get();
        action_ = detail::install_action(
            [f](eqflow_action_fn fn, void *ud) { return eqflow_flow_set_action(f, fn, ud); }, std::move(action));
    }
    eqflow_flow *get() const noexcept { return h_.get(); }
    /// The C++ host action set with set_action(ActionFunction), if any (chains share it).
    std::shared_ptr<const ActionFunction> action_function() const noexcept { return action_; }

  private:
    explicit Flow(eqflow_flow *f) : h_(f) {}
    std::shared_ptr<const ActionFunction> action_; // the user_data of the trampoline; outlives h_
    std::unique_ptr<eqflow_flow, detail::FlowFree> h_;
};

/// A Metropolis chain over a frozen snapshot of a flow; one thread at a time.
class Chain {
  public:
    Chain(Flow &flow, std::uint64_t seed) : volume_(flow.volume()), action_(flow.action_function()) {
        eqflow_chain *c = nullptr;
        check(eqflow_chain_new(flow.get(), seed, &c));
        h_.reset(c);
    }
    /// Loads a chain saved with save(); it continues bit for bit. A chain saved while it used a
    /// host action needs set_action() again before it steps (files cannot hold code).
    static Chain load(const Context &ctx, const std::string &path) {
        eqflow_chain *c = nullptr;
        check(eqflow_chain_load(ctx.get(), path.c_str(), &c));
        std::unique_ptr<eqflow_chain, detail::ChainFree> h(c);
        std::size_t v = volume_of(c);
        return Chain(std::move(h), v);
    }
    std::size_t volume() const noexcept { return volume_; }
    /// Sets the chain's host action (nullptr: built-in phi^4); the callback must not throw.
    void set_action(eqflow_action_fn action, void *user_data) {
        check(eqflow_chain_set_action(h_.get(), action, user_data));
        action_.reset();
    }
    /// Sets the chain's C++ host action (exceptions become EQFLOW_STATUS_CALLBACK); kept alive
    /// by the chain.
    void set_action(ActionFunction action) {
        eqflow_chain *c = h_.get();
        action_ = detail::install_action(
            [c](eqflow_action_fn fn, void *ud) { return eqflow_chain_set_action(c, fn, ud); }, std::move(action));
    }
    /// Runs n steps; returns the accept flags (the chain's fields go to *phi if given).
    std::vector<std::uint8_t> step(std::size_t n, std::vector<double> *phi = nullptr) {
        std::vector<std::uint8_t> acc(n);
        if (phi) phi->resize(n * volume_);
        check(eqflow_chain_step(h_.get(), n, phi ? phi->data() : nullptr, phi ? phi->size() : 0, acc.data(), n,
                                nullptr));
        return acc;
    }
    /// Runs n steps in bounded memory (observables accumulate in the chain); with save_every > 0
    /// and phi given, every save_every-th field goes to *phi (n / save_every fields).
    eqflow_chain_stats run(std::size_t n, std::size_t save_every = 0, std::vector<double> *phi = nullptr) {
        eqflow_chain_stats s{};
        s.struct_size = sizeof s;
        double *out = nullptr;
        std::size_t len = 0;
        if (phi) {
            phi->resize(save_every == 0 ? 0 : n / save_every * volume_);
            if (!phi->empty()) {
                out = phi->data();
                len = phi->size();
            }
        }
        check(eqflow_chain_run(h_.get(), n, save_every, out, len, &s));
        return s;
    }
    eqflow_chain_stats stats() {
        eqflow_chain_stats s{};
        s.struct_size = sizeof s;
        check(eqflow_chain_step(h_.get(), 0, nullptr, 0, nullptr, 0, &s));
        return s;
    }
    /// The Z2 flip update phi -> -phi after each step (off by default).
    void set_flip(bool on) { check(eqflow_chain_set_flip(h_.get(), on ? 1 : 0)); }
    /// Observables of every step measured so far (at least 10), with errors and tau_int.
    eqflow_observables observables() const {
        eqflow_observables o{};
        o.struct_size = sizeof o;
        check(eqflow_chain_observables(h_.get(), &o));
        return o;
    }
    void reset_observables() { check(eqflow_chain_reset_observables(h_.get())); }
    void save(const std::string &path) const { check(eqflow_chain_save(h_.get(), path.c_str())); }
    void set_state(const std::vector<double> &phi) { check(eqflow_chain_set_state(h_.get(), phi.data(), phi.size())); }
    std::vector<double> state(double *log_q = nullptr, double *action = nullptr) const {
        std::vector<double> phi(volume_);
        check(eqflow_chain_state(h_.get(), phi.data(), phi.size(), log_q, action));
        return phi;
    }

    eqflow_chain *get() const noexcept { return h_.get(); }

  private:
    Chain(std::unique_ptr<eqflow_chain, detail::ChainFree> h, std::size_t volume)
        : volume_(volume), h_(std::move(h)) {}
    static std::size_t volume_of(const eqflow_chain *c) {
        std::size_t v = 0;
        check(eqflow_chain_lattice_volume(c, &v));
        return v;
    }
    std::size_t volume_;
    std::shared_ptr<const ActionFunction> action_; // keeps the flow's C++ host action alive
    std::unique_ptr<eqflow_chain, detail::ChainFree> h_;
};

} // namespace eqflow

#endif // EQFLOW_HPP
