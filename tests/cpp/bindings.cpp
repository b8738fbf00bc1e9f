// The C++ layer (bindings/cpp/eqflow.hpp) over the newer C functions: sample_float, reweight,
// Chain::run/set_flip/observables/reset_observables/save/load, and set_action(std::function),
// whose exceptions must come back as EQFLOW_STATUS_CALLBACK instead of crossing into the library.
#include "eqflow.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

int failures = 0;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                       \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

// S and dS/dphi of S = sum_x [sum_mu (phi_{x+mu} - phi_x)^2 + m2 phi^2 + lambda phi^4], x1 fastest.
struct Phi4 {
    int L;
    double m2, lambda;
    int operator()(std::size_t n, std::size_t volume, const double *phi, double *action, double *force) const {
        if (volume != std::size_t(L * L)) return 7;
        for (std::size_t k = 0; k < n; k++) {
            const double *f = phi + k * volume;
            double s = 0.0;
            for (int a = 0; a < L; a++)
                for (int b = 0; b < L; b++) {
                    double x = f[a * L + b], up = f[((a + 1) % L) * L + b], right = f[a * L + (b + 1) % L];
                    double dn = f[((a + L - 1) % L) * L + b], left = f[a * L + (b + L - 1) % L];
                    s += (up - x) * (up - x) + (right - x) * (right - x) + m2 * x * x + lambda * x * x * x * x;
                    if (force)
                        force[k * volume + a * L + b] =
                            2.0 * (4.0 * x - up - dn - left - right) + 2.0 * m2 * x + 4.0 * lambda * x * x * x;
                }
            action[k] = s;
        }
        return 0;
    }
};

eqflow_flow_params small(int L) {
    auto fp = eqflow::flow_params();
    fp.lattice_size = L;
    fp.m2 = -4.0;
    fp.lambda = 6.975;
    fp.n_frequencies = 4;
    fp.ode_steps = 9;
    fp.batch_size = 8;
    fp.seed = 17;
    return fp;
}

template <class F> eqflow_status status_of(F &&f) {
    try {
        f();
    } catch (const eqflow::Error &e) {
        return e.status();
    }
    return EQFLOW_STATUS_OK;
}

} // namespace

int main(int argc, char **argv) {
    const std::string dir = argc > 1 ? argv[1] : ".";
    try {
        eqflow::Context ctx;
        const int L = 4;
        eqflow::Flow a(ctx, small(L)), b(ctx, small(L));
        a.train(3);
        b.train(3);

        // float samples are the rounded double samples of the same seed
        auto d = a.sample(3);
        auto f = b.sample_float(3);
        bool same = f.phi.size() == d.phi.size();
        for (std::size_t i = 0; same && i < d.phi.size(); i++) same = f.phi[i] == float(d.phi[i]);
        CHECK(same && f.log_q == d.log_q && f.action == d.action);

        auto r = a.reweight(64);
        CHECK(r.n == 64 && std::isfinite(r.chi2) && r.chi2_err > 0.0 && r.ess > 0.0 && r.ess <= 1.0);
        CHECK(status_of([&] { a.reweight(1); }) == EQFLOW_STATUS_INVALID_ARGUMENT);
        CHECK(status_of([&] { a.restart_schedule(-1.0); }) == EQFLOW_STATUS_INVALID_ARGUMENT);
        CHECK(status_of([&] { a.set_gradient(7); }) == EQFLOW_STATUS_INVALID_ARGUMENT);

        // run: every k-th field of step(); observables; flips; reset
        eqflow::Chain c1(a, 3), c2(a, 3);
        std::vector<double> all, every5;
        c1.step(40, &all);
        auto st = c2.run(40, 5, &every5);
        CHECK(every5.size() == 8 * std::size_t(L * L) && st.proposed == 40 && st.measured == 40);
        CHECK(std::memcmp(every5.data(), all.data() + 4 * L * L, L * L * sizeof(double)) == 0);
        CHECK(std::memcmp(every5.data() + 7 * L * L, all.data() + 39 * L * L, L * L * sizeof(double)) == 0);
        auto o1 = c1.observables(), o2 = c2.observables();
        CHECK(o1.n == 40 && std::memcmp(&o1, &o2, sizeof o1) == 0);
        c2.set_flip(true);
        st = c2.run(200);
        CHECK(st.flips_proposed > 50 && st.flips_accepted == st.flips_proposed);
        c2.reset_observables();
        CHECK(c2.stats().measured == 0 && status_of([&] { c2.observables(); }) == EQFLOW_STATUS_INVALID_ARGUMENT);

        // save / load: Chain::load finds V and continues bit for bit
        const std::string path = dir + "/cpp_chain.safetensors";
        c2.save(path);
        auto c3 = eqflow::Chain::load(ctx, path);
        CHECK(c3.volume() == std::size_t(L * L));
        std::vector<double> p2, p3;
        c2.step(20, &p2);
        c3.step(20, &p3);
        CHECK(p2 == p3);
        double lq2 = 0, lq3 = 0;
        CHECK(c2.state(&lq2) == c3.state(&lq3) && lq2 == lq3);
        CHECK(status_of([&] { eqflow::Chain::load(ctx, dir + "/missing.safetensors"); }) == EQFLOW_STATUS_IO);
        {
            eqflow::Context ctx6;
            eqflow::Flow f6(ctx6, small(6));
            eqflow::Chain c6(f6, 1);
            c6.save(dir + "/cpp_chain6.safetensors");
            auto l6 = eqflow::Chain::load(ctx6, dir + "/cpp_chain6.safetensors"); // no state yet
            CHECK(l6.volume() == 36);
        }

        // set_action(std::function): the same training as the built-in action
        eqflow::Flow builtin(ctx, small(L)), hosted(ctx, small(L));
        long calls = 0;
        hosted.set_action([&calls, p = Phi4{L, -4.0, 6.975}](std::size_t n, std::size_t v, const double *phi,
                                                               double *action, double *force) {
            calls++;
            return p(n, v, phi, action, force);
        });
        auto tb = builtin.train(2), th = hosted.train(2);
        CHECK(calls >= 2 && std::fabs(tb.loss - th.loss) < 1e-9 * std::fabs(tb.loss));
        // a chain created now keeps the function alive after the flow drops it
        eqflow::Chain hc(hosted, 4), bc(builtin, 4);

        // an exception in the host action: EQFLOW_STATUS_CALLBACK, nothing changed, no crash
        hosted.set_action([](std::size_t, std::size_t, const double *, double *, double *) -> int {
            throw std::runtime_error("host action failed");
        });
        CHECK(status_of([&] { hosted.train(1); }) == EQFLOW_STATUS_CALLBACK);
        CHECK(std::string(eqflow_last_error_message()).find("host action") != std::string::npos);
        eqflow::Chain throwing(hosted, 4);
        CHECK(status_of([&] { throwing.step(3); }) == EQFLOW_STATUS_CALLBACK);
        hosted.set_action([](std::size_t, std::size_t, const double *, double *, double *) { return 9; });
        CHECK(status_of([&] { hosted.train(1); }) == EQFLOW_STATUS_CALLBACK);
        hosted.set_action(eqflow::ActionFunction()); // back to the built-in action
        CHECK(hosted.train(1).steps_done == 3);

        long before = calls;
        auto fh = hc.step(30), fb = bc.step(30);
        CHECK(fh == fb && calls > before); // still the first function, held by the chain

        // RealNVP behind the same classes: trains, samples, chains
        auto rp = eqflow::flow_params();
        rp.flow_type = EQFLOW_FLOW_REALNVP;
        rp.lattice_size = L;
        rp.batch_size = 8;
        rp.learning_rate = 1e-3;
        eqflow::Flow rn(ctx, rp);
        CHECK(rn.train(3).steps_done == 3);
        eqflow::Chain rc(rn, 2);
        CHECK(rc.run(50).proposed == 50);
        rp.ode_steps = 9;
        CHECK(status_of([&] { eqflow::Flow bad(ctx, rp); }) == EQFLOW_STATUS_INVALID_ARGUMENT);
        std::printf("bindings.cpp: float samples, reweight (chi2 %.4f +- %.4f), run/observables (<|M|> %.4f), "
                    "flips %llu/%llu, save/load, host action (%ld calls)\n",
                    r.chi2, r.chi2_err, o1.abs_m, (unsigned long long)st.flips_accepted,
                    (unsigned long long)st.flips_proposed, calls);
    } catch (const eqflow::Error &e) {
        std::fprintf(stderr, "unexpected eqflow error %d: %s\n", (int)e.status(), e.what());
        return 1;
    }
    if (failures) {
        std::fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    std::printf("bindings.cpp: ok\n");
    return 0;
}
