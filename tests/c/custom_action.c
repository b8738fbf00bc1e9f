/* A host-supplied action through eqflow_flow_set_action: a C implementation of the phi^4
 * action must give the same training losses as the built-in one for the same seed, and a
 * failing callback must give EQFLOW_STATUS_CALLBACK and change nothing. */
#include "eqflow.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct { int L; double m2, lambda; long calls; } phi4;

static int phi4_action(void *user, size_t n, size_t volume, const double *phi, double *action, double *force) {
    phi4 *p = (phi4 *)user;
    int L = p->L;
    p->calls++;
    if ((size_t)(L * L) != volume) return 7;
    for (size_t k = 0; k < n; k++) {
        const double *f = phi + k * volume;
        double s = 0.0;
        for (int a = 0; a < L; a++) {
            for (int b = 0; b < L; b++) {
                double x = f[a * L + b];
                double up = f[((a + 1) % L) * L + b], right = f[a * L + (b + 1) % L];
                double dn = f[((a + L - 1) % L) * L + b], left = f[a * L + (b + L - 1) % L];
                s += (up - x) * (up - x) + (right - x) * (right - x) + p->m2 * x * x + p->lambda * x * x * x * x;
                if (force) force[k * volume + a * L + b] = 2.0 * (4.0 * x - up - dn - left - right) + 2.0 * p->m2 * x + 4.0 * p->lambda * x * x * x;
            }
        }
        action[k] = s;
    }
    return 0;
}

static int failing_action(void *user, size_t n, size_t volume, const double *phi, double *action, double *force) {
    (void)user; (void)n; (void)volume; (void)phi; (void)action; (void)force;
    return 3;
}

#define CHECK(call) do { eqflow_status st_ = (call); if (st_ != EQFLOW_STATUS_OK) { \
    printf("FAIL %s: %s (%s)\n", #call, eqflow_status_name(st_), eqflow_last_error_message()); return 1; } } while (0)

int main(void) {
    eqflow_context_params cp;
    eqflow_context_params_init(&cp, sizeof cp);
    eqflow_context *ctx = NULL;
    CHECK(eqflow_context_new(&cp, &ctx));
    eqflow_flow_params fp;
    eqflow_flow_params_init(&fp, sizeof fp);
    fp.lattice_size = 4; fp.m2 = -4.0; fp.lambda = 6.0; fp.n_frequencies = 4; fp.ode_steps = 9;
    fp.batch_size = 16; fp.seed = 5;
    eqflow_flow *builtin = NULL, *hosted = NULL;
    CHECK(eqflow_flow_new(ctx, &fp, &builtin));
    CHECK(eqflow_flow_new(ctx, &fp, &hosted));
    phi4 user = {4, -4.0, 6.0, 0};
    CHECK(eqflow_flow_set_action(hosted, phi4_action, &user));
    eqflow_train_stats a = {sizeof a, 0, 0, 0, 0}, b = {sizeof b, 0, 0, 0, 0};
    CHECK(eqflow_flow_train(builtin, 3, &a));
    CHECK(eqflow_flow_train(hosted, 3, &b));
    if (fabs(a.loss - b.loss) > 1e-9 * fabs(a.loss) || user.calls < 3) {
        printf("FAIL: losses %.12g vs %.12g, %ld calls\n", a.loss, b.loss, user.calls);
        return 1;
    }
    /* a chain over the hosted flow proposes with the host's action */
    eqflow_chain *chain = NULL;
    CHECK(eqflow_chain_new(hosted, 1, &chain));
    eqflow_chain_stats cs = {.struct_size = sizeof cs};
    long before = user.calls;
    CHECK(eqflow_chain_step(chain, 20, NULL, 0, NULL, 0, &cs));
    if (user.calls == before) { printf("FAIL: chain did not use the host action\n"); return 1; }
    /* a failing callback: status CALLBACK, steps unchanged */
    CHECK(eqflow_flow_set_action(hosted, failing_action, NULL));
    eqflow_status st = eqflow_flow_train(hosted, 1, &b);
    if (st != EQFLOW_STATUS_CALLBACK || b.steps_done != 3) {
        printf("FAIL: failing action gave %s, steps %llu\n", eqflow_status_name(st), (unsigned long long)b.steps_done);
        return 1;
    }
    printf("callback error message: %s\n", eqflow_last_error_message());
    CHECK(eqflow_flow_set_action(hosted, NULL, NULL)); /* back to the built-in action */
    CHECK(eqflow_flow_train(hosted, 1, &b));
    eqflow_chain_free(chain);
    eqflow_flow_free(builtin);
    eqflow_flow_free(hosted);
    eqflow_context_free(ctx);
    printf("custom_action: ok (losses %.10g %.10g)\n", a.loss, b.loss);
    return 0;
}
