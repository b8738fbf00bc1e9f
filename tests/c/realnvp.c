/* RealNVP through the C ABI (eqflow_flow_params.flow_type = EQFLOW_FLOW_REALNVP): every
 * flow and chain function works with it.
 *
 * - training lowers the loss from the untrained flow's;
 * - log q of its own samples (computed by the exact inverse) equals the forward log q to 1e-10,
 *   also in the even-odd layout, where the fields are the permuted default-layout fields;
 * - save -> load: the same type comes back and draws the samples the original draws next;
 * - a chain steps, measures, flips (log q recomputed: RealNVP is not Z2-equivariant) and its
 *   checkpoint continues bit for bit;
 * - a host action (the phi^4 action written here) gives the same accept sequence as the built-in
 *   one;
 * - misuse: continuous-flow architecture fields with RealNVP, an unknown flow type and
 *   eqflow_flow_init_from between RealNVP flows give 100, and nothing is created.
 * Usage: realnvp <scratch-dir> */
#include "check.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 4, V = L * L, N = 8, STEPS = 400 };

static double close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (1.0 + fabs(b)); }

static eqflow_flow_params realnvp_params(int layout) {
    eqflow_flow_params fp;
    eqflow_flow_params_init(&fp, sizeof fp);
    fp.flow_type = EQFLOW_FLOW_REALNVP;
    fp.lattice_size = L;
    fp.lambda = 6.975;
    fp.batch_size = 32;
    fp.learning_rate = 1e-3;
    fp.warmup_steps = 5;
    fp.seed = 21;
    fp.layout = layout;
    return fp;
}

/* phi^4 with the SPEC's conventions, for the host-action check (x1-fastest layout) */
static int32_t phi4(void *user, size_t n, size_t vol, const double *phi, double *s, double *force) {
    (void)user;
    (void)force;
    const double m2 = -4.0, lam = 6.975;
    for (size_t k = 0; k < n; k++) {
        const double *p = phi + k * vol;
        double acc = 0.0;
        for (int x0 = 0; x0 < L; x0++)
            for (int x1 = 0; x1 < L; x1++) {
                double f = p[x0 * L + x1];
                double up = p[((x0 + 1) % L) * L + x1], right = p[x0 * L + (x1 + 1) % L];
                acc += (up - f) * (up - f) + (right - f) * (right - f) + m2 * f * f + lam * f * f * f * f;
            }
        s[k] = acc;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    eqflow_context_params cp;
    eqflow_context_params_init(&cp, sizeof cp);
    eqflow_context *ctx = NULL;
    OK(eqflow_context_new(&cp, &ctx));

    eqflow_flow_params fp = realnvp_params(EQFLOW_LAYOUT_X1_FASTEST);
    eqflow_flow *flow = NULL;
    OK(eqflow_flow_new(ctx, &fp, &flow));
    eqflow_train_stats first = {sizeof first, 0, 0, 0, 0}, last = {sizeof last, 0, 0, 0, 0};
    OK(eqflow_flow_train(flow, 1, &first));
    OK(eqflow_flow_train(flow, 299, &last));
    printf("realnvp: loss %.4f after 1 step, %.4f after %llu steps (batch ESS %.3f)\n", first.loss, last.loss,
           (unsigned long long)last.steps_done, last.ess);
    CHECK(last.steps_done == 300 && last.loss < first.loss);

    /* exact inverse: log q of its own samples */
    double phi[N * V], lq[N], s[N], lq2[N];
    OK(eqflow_flow_sample(flow, N, phi, N * V, lq, N, s, N));
    OK(eqflow_flow_log_prob(flow, phi, N * V, lq2, N));
    for (int i = 0; i < N; i++) CHECK(close_to(lq2[i], lq[i], 1e-10));

    /* the same flow in the even-odd layout: permuted fields, same log q */
    eqflow_flow_params fe = realnvp_params(EQFLOW_LAYOUT_EVEN_ODD);
    eqflow_flow *a = NULL, *b = NULL;
    OK(eqflow_flow_new(ctx, &fe, &a));
    fe.layout = EQFLOW_LAYOUT_X1_FASTEST;
    OK(eqflow_flow_new(ctx, &fe, &b));
    double pa[N * V], pb[N * V], la[N], lb[N], la2[N];
    OK(eqflow_flow_sample(a, N, pa, N * V, la, N, NULL, 0));
    OK(eqflow_flow_sample(b, N, pb, N * V, lb, N, NULL, 0));
    OK(eqflow_flow_log_prob(a, pa, N * V, la2, N));
    for (int i = 0; i < N; i++) {
        CHECK(la[i] == lb[i] && close_to(la2[i], la[i], 1e-10));
        for (int x0 = 0; x0 < L; x0++)
            for (int x1 = 0; x1 < L; x1++) {
                int site = x0 * L + x1, eo = site / 2 + ((x0 + x1) % 2 ? V / 2 : 0);
                CHECK(pa[i * V + eo] == pb[i * V + site]);
            }
    }
    eqflow_flow_free(a);
    eqflow_flow_free(b);

    /* save -> load: a RealNVP flow comes back and continues the sample stream */
    char path[4096];
    snprintf(path, sizeof path, "%s/realnvp.safetensors", dir);
    OK(eqflow_flow_save(flow, path));
    eqflow_flow *loaded = NULL;
    OK(eqflow_flow_load(ctx, path, &loaded));
    OK(eqflow_flow_sample(flow, N, pa, N * V, la, N, NULL, 0));
    OK(eqflow_flow_sample(loaded, N, pb, N * V, lb, N, NULL, 0));
    CHECK(memcmp(pa, pb, sizeof pa) == 0 && memcmp(la, lb, sizeof la) == 0);
    eqflow_flow_free(loaded);
    printf("realnvp: log q by the inverse, layouts, save/load: checked\n");

    /* a chain with flips, its checkpoint continued bit for bit */
    eqflow_chain *c = NULL, *d = NULL;
    OK(eqflow_chain_new(flow, 5, &c));
    OK(eqflow_chain_set_flip(c, 1));
    eqflow_chain_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    OK(eqflow_chain_step(c, STEPS, NULL, 0, NULL, 0, &st));
    double acc = (double)st.accepted / (double)st.proposed;
    printf("realnvp chain: acceptance %.3f, flips %llu/%llu accepted\n", acc, (unsigned long long)st.flips_accepted,
           (unsigned long long)st.flips_proposed);
    CHECK(st.proposed == STEPS && st.accepted > 0 && st.accepted < STEPS && st.flips_proposed > 0);
    eqflow_observables o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    OK(eqflow_chain_observables(c, &o));
    CHECK(o.chi2 > 0.0 && isfinite(o.chi2_err));
    snprintf(path, sizeof path, "%s/realnvp_chain.safetensors", dir);
    OK(eqflow_chain_save(c, path));
    OK(eqflow_chain_load(ctx, path, &d));
    uint8_t f1[STEPS], f2[STEPS];
    double s1[STEPS * V], s2[STEPS * V];
    OK(eqflow_chain_step(c, STEPS, s1, STEPS * V, f1, STEPS, NULL));
    OK(eqflow_chain_step(d, STEPS, s2, STEPS * V, f2, STEPS, NULL));
    CHECK(memcmp(f1, f2, sizeof f1) == 0 && memcmp(s1, s2, sizeof s1) == 0);
    eqflow_chain_free(c);
    eqflow_chain_free(d);

    /* a host action equal to the built-in one: the same chain */
    OK(eqflow_chain_new(flow, 9, &c));
    OK(eqflow_chain_new(flow, 9, &d));
    OK(eqflow_chain_set_action(d, phi4, NULL));
    OK(eqflow_chain_step(c, STEPS, NULL, 0, f1, STEPS, NULL));
    OK(eqflow_chain_step(d, STEPS, NULL, 0, f2, STEPS, NULL));
    CHECK(memcmp(f1, f2, sizeof f1) == 0);
    eqflow_chain_free(c);
    eqflow_chain_free(d);
    printf("realnvp chain: checkpoint continued bit for bit; host action gives the same accepts\n");

    /* misuse */
    eqflow_flow *untouched = (eqflow_flow *)0x1;
    fp = realnvp_params(EQFLOW_LAYOUT_X1_FASTEST);
    fp.n_frequencies = 4;
    EXPECT(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "n_frequencies");
    fp = realnvp_params(EQFLOW_LAYOUT_X1_FASTEST);
    fp.flow_type = 7;
    EXPECT(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "flow_type");
    fp = realnvp_params(EQFLOW_LAYOUT_X1_FASTEST);
    fp.coarse_ode_steps = 18;
    EXPECT(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "coarse_ode_steps");
    fp = realnvp_params(EQFLOW_LAYOUT_X1_FASTEST);
    fp.warmup_steps = -1;
    EXPECT(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "warmup_steps");
    CHECK(untouched == (eqflow_flow *)0x1);
    fp = realnvp_params(EQFLOW_LAYOUT_X1_FASTEST);
    fp.lattice_size = 6;
    OK(eqflow_flow_new(ctx, &fp, &a));
    EXPECT(eqflow_flow_init_from(a, flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_init_from", "RealNVP");
    eqflow_flow_free(a);

    eqflow_flow_free(flow);
    eqflow_context_free(ctx);
    if (failures == 0) printf("realnvp: ok\n");
    return failures ? 1 : 0;
}
