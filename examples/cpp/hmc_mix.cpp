// An existing-style HMC code for 2D phi^4 (S = sum_x [sum_mu (phi_{x+mu} - phi_x)^2 + m2 phi^2
// + lambda phi^4], fields x1 fastest) that interleaves its own HMC trajectories with flow
// Metropolis proposals through eqflow_chain_set_state, printing acceptances and chi2.
//
//   g++ -std=c++17 -Wall -Wextra -Werror -Iinclude -Ibindings/cpp examples/cpp/hmc_mix.cpp
//       -Ltarget/release -leqflow -Wl,-rpath,$PWD/target/release -o hmc_mix && ./hmc_mix
#include "eqflow.hpp"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace {

struct Phi4 {
    int L;
    double m2, lambda;

    double action(const std::vector<double> &phi) const {
        double s = 0.0;
        for (int x0 = 0; x0 < L; x0++)
            for (int x1 = 0; x1 < L; x1++) {
                double p = phi[x0 * L + x1];
                double d0 = phi[((x0 + 1) % L) * L + x1] - p, d1 = phi[x0 * L + (x1 + 1) % L] - p;
                s += d0 * d0 + d1 * d1 + m2 * p * p + lambda * p * p * p * p;
            }
        return s;
    }
    // dS/dphi_x = 2 (-Laplace phi)_x + 2 m2 phi_x + 4 lambda phi_x^3
    void force(const std::vector<double> &phi, std::vector<double> &f) const {
        for (int x0 = 0; x0 < L; x0++)
            for (int x1 = 0; x1 < L; x1++) {
                double p = phi[x0 * L + x1];
                double nb = phi[((x0 + 1) % L) * L + x1] + phi[((x0 + L - 1) % L) * L + x1] +
                            phi[x0 * L + (x1 + 1) % L] + phi[x0 * L + (x1 + L - 1) % L];
                f[x0 * L + x1] = 2.0 * (4.0 * p - nb) + 2.0 * m2 * p + 4.0 * lambda * p * p * p;
            }
    }
};

// One leapfrog trajectory with a Metropolis test; returns whether it was accepted.
bool hmc_trajectory(const Phi4 &th, std::vector<double> &phi, std::mt19937_64 &rng, int n_md, double dt) {
    std::normal_distribution<double> gauss;
    std::uniform_real_distribution<double> uni;
    const size_t V = phi.size();
    std::vector<double> p(V), q = phi, f(V);
    double h0 = th.action(q);
    for (auto &pi : p) {
        pi = gauss(rng);
        h0 += 0.5 * pi * pi;
    }
    th.force(q, f);
    for (int k = 0; k < n_md; k++) {
        for (size_t i = 0; i < V; i++) p[i] -= 0.5 * dt * f[i];
        for (size_t i = 0; i < V; i++) q[i] += dt * p[i];
        th.force(q, f);
        for (size_t i = 0; i < V; i++) p[i] -= 0.5 * dt * f[i];
    }
    double h1 = th.action(q);
    for (double pi : p) h1 += 0.5 * pi * pi;
    if (h1 <= h0 || uni(rng) < std::exp(h0 - h1)) {
        phi = q;
        return true;
    }
    return false;
}

} // namespace

int main() {
    try {
        const Phi4 th{4, -4.0, 6.975};
        eqflow::Context ctx;
        auto fp = eqflow::flow_params();
        fp.lattice_size = th.L;
        fp.m2 = th.m2;
        fp.lambda = th.lambda;
        fp.n_frequencies = 8;
        fp.ode_steps = 18;
        fp.batch_size = 16;
        fp.learning_rate = 0.02;
        fp.seed = 3;
        eqflow::Flow flow(ctx, fp);
        auto ts = flow.train(60);
        std::printf("flow trained %llu steps: loss %.4f, ESS %.3f\n", (unsigned long long)ts.steps_done, ts.loss,
                    ts.ess);

        eqflow::Chain chain(flow, 11);
        const size_t V = flow.volume();
        std::vector<double> phi(V, 0.5);
        std::mt19937_64 rng(5);
        int hmc_acc = 0, flow_acc = 0;
        const int n_iter = 200, n_therm = 20;
        double m_sum = 0.0, m2_sum = 0.0;
        int n_meas = 0;
        std::vector<double> next;
        for (int it = 0; it < n_iter; it++) {
            hmc_acc += hmc_trajectory(th, phi, rng, 10, 0.05);
            chain.set_state(phi); // hand the HMC configuration to the flow chain ...
            auto acc = chain.step(1, &next);
            flow_acc += acc[0];
            phi = next; // ... and continue HMC from the chain's state
            if (it >= n_therm) {
                double m = 0.0;
                for (double x : phi) m += x;
                m /= double(V);
                m_sum += m;
                m2_sum += m * m;
                n_meas++;
            }
        }
        double mean = m_sum / n_meas, chi2 = double(V) * (m2_sum / n_meas - mean * mean);
        std::printf("hmc acceptance %.3f\n", double(hmc_acc) / n_iter);
        std::printf("flow acceptance %.3f\n", double(flow_acc) / n_iter);
        std::printf("chi2 %.4f\n", chi2);

        // errors arrive as exceptions carrying the status
        try {
            chain.set_state(std::vector<double>(V + 1, 0.0));
            std::printf("expected an exception\n");
            return 1;
        } catch (const eqflow::Error &e) {
            if (e.status() != EQFLOW_STATUS_BAD_LENGTH) return 1;
            std::printf("caught: %s\n", e.what());
        }
        std::printf("hmc_mix: ok\n");
        return 0;
    } catch (const eqflow::Error &e) {
        std::fprintf(stderr, "eqflow error %d: %s\n", (int)e.status(), e.what());
        return 1;
    }
}
