// eqflow.hpp: header-only C++17 RAII layer over the C API in eqflow.h.
// Handles are move-only owners (std::unique_ptr with the eqflow_*_free deleter); every
// failing call throws eqflow::Error carrying the status and the library's message.
#ifndef EQFLOW_HPP
#define EQFLOW_HPP

#include "eqflow.h"

#include <cstddef>
#include <cstdint>
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
    /// Train and propose against a host action (see eqflow_action_fn; nullptr: built-in phi^4).
    /// The callback must not throw: report failure by returning non-zero.
    void set_action(eqflow_action_fn action, void *user_data) { check(eqflow_flow_set_action(h_.get(), action, user_data)); }
    eqflow_flow *get() const noexcept { return h_.get(); }

  private:
    explicit Flow(eqflow_flow *f) : h_(f) {}
    std::unique_ptr<eqflow_flow, detail::FlowFree> h_;
};

/// A Metropolis chain over a frozen snapshot of a flow; one thread at a time.
class Chain {
  public:
    Chain(Flow &flow, std::uint64_t seed) : volume_(flow.volume()) {
        eqflow_chain *c = nullptr;
        check(eqflow_chain_new(flow.get(), seed, &c));
        h_.reset(c);
    }
    /// Runs n steps; returns the accept flags (the chain's fields go to *phi if given).
    std::vector<std::uint8_t> step(std::size_t n, std::vector<double> *phi = nullptr) {
        std::vector<std::uint8_t> acc(n);
        if (phi) phi->resize(n * volume_);
        check(eqflow_chain_step(h_.get(), n, phi ? phi->data() : nullptr, phi ? phi->size() : 0, acc.data(), n,
                                nullptr));
        return acc;
    }
    eqflow_chain_stats stats() {
        eqflow_chain_stats s{};
        s.struct_size = sizeof s;
        check(eqflow_chain_step(h_.get(), 0, nullptr, 0, nullptr, 0, &s));
        return s;
    }
    void set_state(const std::vector<double> &phi) { check(eqflow_chain_set_state(h_.get(), phi.data(), phi.size())); }
    std::vector<double> state(double *log_q = nullptr, double *action = nullptr) const {
        std::vector<double> phi(volume_);
        check(eqflow_chain_state(h_.get(), phi.data(), phi.size(), log_q, action));
        return phi;
    }

  private:
    std::size_t volume_;
    std::unique_ptr<eqflow_chain, detail::ChainFree> h_;
};

} // namespace eqflow

#endif // EQFLOW_HPP
