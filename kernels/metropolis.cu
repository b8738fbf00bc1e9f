// Independence Metropolis-Hastings accept/reject (SPEC §5), the twin of the step loop of
// src/mcmc/metropolis.rs (Chain::run, without the Z2 flip update): accept proposal i with
// probability min(1, exp[(-S_i - log q_i) - (-S - log q)]); a non-finite log q or S is
// rejected; without a state the first finite proposal is accepted.
#include "eqflow_kernel_args.h"

// Sequential by nature: one thread walks the m proposals (launch <<<1, 1>>>).
extern "C" __global__ void eqflow_metropolis(eqflow_metropolis_args a) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const double *lq = (const double *)a.log_q, *s = (const double *)a.action, *u = (const double *)a.u;
    int *state = (int *)a.state, *accepted = (int *)a.accepted;
    int has = a.has_state, cur = -1;
    double cur_lq = a.cur_log_q, cur_s = a.cur_action;
    for (unsigned int i = 0; i < a.m; ++i) {
        int acc;
        if (!isfinite(lq[i]) || !isfinite(s[i])) {
            acc = 0;
        } else if (!has) {
            acc = 1;
        } else {
            double log_ratio = (-s[i] - lq[i]) - (-cur_s - cur_lq);
            acc = log_ratio >= 0.0 || u[i] < exp(log_ratio);
        }
        if (acc) {
            has = 1;
            cur = (int)i;
            cur_lq = lq[i];
            cur_s = s[i];
        }
        accepted[i] = acc;
        state[i] = has ? cur : -2;
    }
}
