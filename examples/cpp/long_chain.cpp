// A long Metropolis chain in bounded memory: train a small flow at L x L, then run N chain steps
// in blocks with eqflow_chain_run (save_every = 0: no fields come back; the chain measures every
// step into records that merge pairwise, so memory stays bounded however long the chain). Every
// block prints the throughput and the peak RSS (getrusage); the end prints the observables with
// Gamma-method errors and tau_int.
//
// The few training steps here give a poor flow (low acceptance, long tau_int) at large L; for
// physics, train a flow elsewhere (e.g. the eqflow CLI), save it and pass its file as the sixth
// argument: it is loaded instead (L then comes from the file; train steps may be 0).
//
//   g++ -std=c++17 -O2 -Wall -Wextra -Werror -Iinclude -Ibindings/cpp examples/cpp/long_chain.cpp
//       -Ltarget/release -leqflow -Wl,-rpath,$PWD/target/release -o long_chain
//   ./long_chain [L = 32] [N = 1000000] [block = N/20] [threads = 1] [train steps = 300] [flow file]
#include "eqflow.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// Peak resident set size of this process in KiB (Linux reports ru_maxrss in KiB).
long peak_rss_kib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

// lambda on the m2 = -4 line of the paper's lattice sizes (SPEC section 2); 6.008 otherwise.
double preset_lambda(int L) {
    switch (L) {
    case 6: return 6.975;
    case 8: return 6.008;
    case 10: return 5.550;
    case 12: return 5.276;
    case 14: return 5.113;
    case 20: return 4.807;
    case 32: return 4.572;
    case 64: return 4.398;
    default: return 6.008;
    }
}

unsigned long long arg(int argc, char **argv, int i, unsigned long long fallback) {
    return argc > i ? std::strtoull(argv[i], nullptr, 10) : fallback;
}

} // namespace

int main(int argc, char **argv) {
    const int L = static_cast<int>(arg(argc, argv, 1, 32));
    const std::size_t n_steps = arg(argc, argv, 2, 1000000);
    const std::size_t block = std::max<std::size_t>(1, arg(argc, argv, 3, std::max<std::size_t>(1, n_steps / 20)));
    const int threads = static_cast<int>(arg(argc, argv, 4, 1));
    const std::uint64_t train_steps = arg(argc, argv, 5, 300);
    try {
        auto cp = eqflow::context_params();
        cp.threads = threads;
        eqflow::Context ctx(cp);

        // a small architecture: the point is the chain, not the flow's quality
        auto fp = eqflow::flow_params();
        fp.lattice_size = L;
        fp.m2 = -4.0;
        fp.lambda = preset_lambda(L);
        fp.n_frequencies = 4;
        fp.time_kernel_size = 4;
        fp.ode_steps = 6; // a multiple of time_kernel_size - 1 (hat kernel)
        fp.batch_size = 16;
        fp.learning_rate = 0.01;
        fp.seed = 1;
        eqflow::Flow flow = argc > 6 ? eqflow::Flow::load(ctx, argv[6]) : eqflow::Flow(ctx, fp);
        const int side = static_cast<int>(std::lround(std::sqrt(double(flow.volume()))));
        if (argc > 6)
            std::printf("loaded %s: L = %d, %d thread(s)\n", argv[6], side, threads);
        else
            std::printf("new flow: L = %d, m2 = -4, lambda = %.3f, %d thread(s)\n", side, fp.lambda, threads);
        if (train_steps > 0) {
            auto t0 = std::chrono::steady_clock::now();
            auto ts = flow.train(train_steps);
            double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("trained %llu steps in %.1f s (loss %.3f, batch ESS %.3f)\n", (unsigned long long)ts.steps_done,
                        train_s, ts.loss, ts.ess);
        }

        eqflow::Chain chain(flow, 7);
        chain.set_flip(true); // the Z2 flip update: exact and free for the odd flow
        long first_rss = 0;
        double chain_s = 0.0;
        std::size_t done = 0;
        for (int b = 1; done < n_steps; b++) {
            std::size_t n = std::min(block, n_steps - done);
            auto tb = std::chrono::steady_clock::now();
            eqflow_chain_stats st = chain.run(n); // no fields kept: bounded memory
            double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count();
            chain_s += s;
            done += n;
            long rss = peak_rss_kib();
            if (b == 1) first_rss = rss;
            std::printf("block %d: %zu steps (total %zu), acceptance %.3f, %.0f steps/s, peak RSS %.1f MiB\n", b, n,
                        done, st.acceptance, double(n) / s, rss / 1024.0);
            std::fflush(stdout);
        }
        long last_rss = peak_rss_kib();
        eqflow_chain_stats st = chain.stats();
        eqflow_observables ob = chain.observables();
        std::printf("chain: %llu steps measured, acceptance %.4f, %llu of %llu flips accepted\n",
                    (unsigned long long)st.measured, st.acceptance, (unsigned long long)st.flips_accepted,
                    (unsigned long long)st.flips_proposed);
        std::printf("<|M|> = %.5f +- %.5f   (tau_int %.2f)\n", ob.abs_m, ob.abs_m_err, ob.tau_int_abs_m);
        std::printf("chi2  = %.4f +- %.4f   (tau_int %.2f)\n", ob.chi2, ob.chi2_err, ob.tau_int_chi2);
        std::printf("L m_p = %.4f +- %.4f, xi = %.4f +- %.4f, Binder U = %.5f +- %.5f\n", ob.l_m_p, ob.l_m_p_err, ob.xi,
                    ob.xi_err, ob.binder, ob.binder_err);
        std::printf("throughput %.1f steps/s (%.3f ms/step); peak RSS %.1f MiB after block 1, %.1f MiB at the end\n",
                    double(n_steps) / chain_s, 1e3 * chain_s / double(n_steps), first_rss / 1024.0, last_rss / 1024.0);
        std::printf("RESULT peak_rss_kib %ld %ld\n", first_rss, last_rss);
        std::printf("RESULT steps_per_second %.3f\n", double(n_steps) / chain_s);
        std::printf("long_chain: ok\n");
        return 0;
    } catch (const eqflow::Error &e) {
        std::fprintf(stderr, "eqflow error %d: %s\n", (int)e.status(), e.what());
        return 1;
    }
}
