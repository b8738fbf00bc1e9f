/* Chain features from C: bounded-memory runs, streaming observables, the Z2 flip update,
 * bit-for-bit checkpoints, reweighting, out-of-memory requests and frozen snapshots.
 *
 * - eqflow_chain_run with save_every = 0 and k: the fields are every k-th of what
 *   eqflow_chain_step gives for the same seed, and the counters and observables agree.
 * - eqflow_chain_observables equals eqflow_observables_compute over the same fields (the chain
 *   is short enough to be unbinned); fewer than 10 steps, or a reset, give 100.
 * - flip on: flips_proposed about half the steps, all accepted (the action is even).
 * - save -> load -> continue is bit-identical to an uninterrupted chain (fields, log q, S,
 *   flags, counters, observables); a flow file, a truncated or a junk file give 106.
 * - eqflow_flow_reweight: finite values with errors; n_samples 1 gives 100.
 * - a request of SIZE_MAX/64 samples gives EQFLOW_STATUS_OUT_OF_MEMORY, and the flow still works.
 * - a chain holds a frozen snapshot: training the flow does not change its log q, and it keeps
 *   stepping after the flow is freed.
 * Small (L = 4) so that it runs under valgrind in seconds. Usage: chain_features <scratch-dir> */
#include "check.h"
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 4, V = L * L };

static eqflow_chain_stats stats_of(eqflow_chain *c) {
    eqflow_chain_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    OK(eqflow_chain_step(c, 0, NULL, 0, NULL, 0, &s));
    return s;
}

static eqflow_observables observables_of(const eqflow_chain *c) {
    eqflow_observables o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    OK(eqflow_chain_observables(c, &o));
    return o;
}

static int same_stats(eqflow_chain_stats a, eqflow_chain_stats b) {
    return a.proposed == b.proposed && a.accepted == b.accepted && a.non_finite == b.non_finite &&
           a.flips_proposed == b.flips_proposed && a.flips_accepted == b.flips_accepted && a.measured == b.measured &&
           memcmp(&a.acceptance, &b.acceptance, sizeof a.acceptance) == 0;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) exit(1);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* eqflow_chain_run against eqflow_chain_step, and the chain's observables */
static void check_run_and_observables(eqflow_flow *flow) {
    enum { N = 60, K = 7 };
    double *ref = malloc(N * V * sizeof *ref), saved[(N / K) * V];
    if (!ref) exit(1);
    eqflow_chain *a = NULL, *b = NULL, *c = NULL;
    OK(eqflow_chain_new(flow, 5, &a));
    OK(eqflow_chain_new(flow, 5, &b));
    OK(eqflow_chain_new(flow, 5, &c));
    OK(eqflow_chain_step(a, N, ref, N * V, NULL, 0, NULL));

    /* save_every = 0: no fields, the same chain */
    eqflow_chain_stats sb;
    memset(&sb, 0, sizeof sb);
    sb.struct_size = sizeof sb;
    EXPECT(eqflow_chain_run(b, N, 0, saved, sizeof saved / sizeof saved[0], &sb), EQFLOW_STATUS_INVALID_ARGUMENT,
           "eqflow_chain_run", "save_every");
    CHECK(sb.proposed == 0);
    OK(eqflow_chain_run(b, N, 0, NULL, 0, &sb));
    CHECK(same_stats(sb, stats_of(a)) && sb.proposed == N && sb.measured == N);
    double sa[V], sbf[V], lqa, lqb, sa_s, sb_s;
    OK(eqflow_chain_state(a, sa, V, &lqa, &sa_s));
    OK(eqflow_chain_state(b, sbf, V, &lqb, &sb_s));
    CHECK(memcmp(sa, sbf, sizeof sa) == 0 && lqa == lqb && sa_s == sb_s);

    /* save_every = K: fields after steps K-1, 2K-1, ... */
    EXPECT(eqflow_chain_run(c, N, K, saved, (N / K) * V - 1, NULL), EQFLOW_STATUS_BAD_LENGTH, "eqflow_chain_run",
           "phi_out");
    OK(eqflow_chain_run(c, N, K, saved, (N / K) * V, NULL));
    int every_kth = 1;
    for (int j = 0; j < N / K; j++) every_kth &= memcmp(saved + j * V, ref + ((j + 1) * K - 1) * V, V * sizeof *ref) == 0;
    CHECK(every_kth);
    CHECK(same_stats(stats_of(c), stats_of(a)));

    /* streaming observables = those of the fields */
    eqflow_observables oa = observables_of(a), ob = observables_of(b), oc = observables_of(c), of;
    memset(&of, 0, sizeof of);
    of.struct_size = sizeof of;
    OK(eqflow_observables_compute(L, ref, N * V, &of));
    CHECK(oa.n == N && of.n == N);
    CHECK(oa.abs_m == of.abs_m && oa.abs_m_err == of.abs_m_err && oa.chi2 == of.chi2 && oa.chi2_err == of.chi2_err &&
          oa.binder == of.binder && oa.binder_err == of.binder_err && oa.tau_int_abs_m == of.tau_int_abs_m &&
          oa.tau_int_chi2 == of.tau_int_chi2);
    CHECK(memcmp(&oa, &of, sizeof oa) == 0 && memcmp(&oa, &ob, sizeof oa) == 0 && memcmp(&oa, &oc, sizeof oa) == 0);
    printf("chain_run: every %d-th field as eqflow_chain_step; <|M|> %.6f(%.6f), chi2 %.6f(%.6f), tau_int %.3f, "
           "as eqflow_observables_compute\n",
           K, oa.abs_m, oa.abs_m_err, oa.chi2, oa.chi2_err, oa.tau_int_abs_m);

    /* reset: measured 0, counters kept; fewer than 10 measured steps is an error */
    OK(eqflow_chain_reset_observables(a));
    eqflow_chain_stats s = stats_of(a);
    CHECK(s.measured == 0 && s.proposed == N);
    EXPECT(eqflow_chain_observables(a, &of), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_chain_observables", "");
    OK(eqflow_chain_run(a, 9, 0, NULL, 0, NULL));
    EXPECT(eqflow_chain_observables(a, &of), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_chain_observables", "");
    OK(eqflow_chain_run(a, 1, 0, NULL, 0, NULL));
    of = observables_of(a);
    CHECK(of.n == 10 && stats_of(a).measured == 10);
    eqflow_chain *fresh = NULL;
    OK(eqflow_chain_new(flow, 6, &fresh));
    OK(eqflow_chain_step(fresh, 5, NULL, 0, NULL, 0, NULL));
    EXPECT(eqflow_chain_observables(fresh, &of), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_chain_observables", "");
    EXPECT(eqflow_chain_observables(fresh, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_observables", "'out'");
    EXPECT(eqflow_chain_observables(NULL, &of), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_observables", "'chain'");
    EXPECT(eqflow_chain_run(NULL, 1, 0, NULL, 0, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_run", "'chain'");
    EXPECT(eqflow_chain_set_flip(NULL, 1), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_set_flip", "'chain'");
    EXPECT(eqflow_chain_reset_observables(NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_reset_observables",
           "'chain'");
    eqflow_chain_free(fresh);
    eqflow_chain_free(a);
    eqflow_chain_free(b);
    eqflow_chain_free(c);
    free(ref);
}

static void check_flip(eqflow_flow *flow) {
    enum { N = 400 };
    eqflow_chain *c = NULL;
    OK(eqflow_chain_new(flow, 11, &c));
    OK(eqflow_chain_run(c, N, 0, NULL, 0, NULL));
    eqflow_chain_stats off = stats_of(c);
    CHECK(off.flips_proposed == 0 && off.flips_accepted == 0);
    OK(eqflow_chain_set_flip(c, 1));
    OK(eqflow_chain_run(c, N, 0, NULL, 0, NULL));
    eqflow_chain_stats on = stats_of(c);
    /* binomial(400, 1/2): mean 200, sd 10 */
    CHECK(on.flips_proposed >= 150 && on.flips_proposed <= 250);
    CHECK(on.flips_accepted == on.flips_proposed);
    CHECK(on.proposed == 2 * N && on.measured == 2 * N);
    OK(eqflow_chain_set_flip(c, 0));
    OK(eqflow_chain_run(c, 50, 0, NULL, 0, NULL));
    CHECK(stats_of(c).flips_proposed == on.flips_proposed);
    printf("flip: %llu of %d steps proposed a flip, %llu accepted\n", (unsigned long long)on.flips_proposed, N,
           (unsigned long long)on.flips_accepted);
    eqflow_chain_free(c);
}

static void check_checkpoint(eqflow_context *ctx, eqflow_flow *flow, const char *dir) {
    enum { WARM = 50, N = 70 };
    char path[4096], flow_path[4096], junk[4096];
    snprintf(path, sizeof path, "%s/chain.safetensors", dir);
    snprintf(flow_path, sizeof flow_path, "%s/flow.safetensors", dir);
    snprintf(junk, sizeof junk, "%s/junk.safetensors", dir);
    double *p1 = malloc(N * V * sizeof *p1), *p2 = malloc(N * V * sizeof *p2);
    if (!p1 || !p2) exit(1);
    uint8_t a1[N], a2[N];
    eqflow_chain *c = NULL, *loaded = NULL;
    OK(eqflow_chain_new(flow, 9, &c));
    OK(eqflow_chain_set_flip(c, 1));
    OK(eqflow_chain_run(c, WARM, 0, NULL, 0, NULL));
    OK(eqflow_chain_save(c, path));
    /* the uninterrupted chain */
    OK(eqflow_chain_step(c, N, p1, N * V, a1, N, NULL));
    /* the restored one */
    OK(eqflow_chain_load(ctx, path, &loaded));
    OK(eqflow_chain_step(loaded, N, p2, N * V, a2, N, NULL));
    CHECK(memcmp(p1, p2, N * V * sizeof *p1) == 0 && memcmp(a1, a2, sizeof a1) == 0);
    eqflow_chain_stats s1 = stats_of(c), s2 = stats_of(loaded);
    CHECK(same_stats(s1, s2) && s1.flips_proposed > 0 && s2.measured == WARM + N);
    double lq1, lq2, act1, act2;
    OK(eqflow_chain_state(c, NULL, 0, &lq1, &act1));
    OK(eqflow_chain_state(loaded, NULL, 0, &lq2, &act2));
    CHECK(memcmp(&lq1, &lq2, sizeof lq1) == 0 && memcmp(&act1, &act2, sizeof act1) == 0);
    eqflow_observables o1 = observables_of(c), o2 = observables_of(loaded);
    CHECK(memcmp(&o1, &o2, sizeof o1) == 0);
    printf("checkpoint: %d steps after load bit-identical (log q %.17g, %llu flips)\n", N, lq2,
           (unsigned long long)s2.flips_proposed);
    eqflow_chain_free(loaded);
    loaded = NULL;

    /* a chain without a state round-trips too */
    eqflow_chain *empty = NULL;
    OK(eqflow_chain_new(flow, 12, &empty));
    OK(eqflow_chain_save(empty, path));
    OK(eqflow_chain_load(ctx, path, &loaded));
    EXPECT(eqflow_chain_state(loaded, NULL, 0, NULL, NULL), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_chain_state",
           "no state");
    OK(eqflow_chain_step(empty, 5, p1, 5 * V, NULL, 0, NULL));
    OK(eqflow_chain_step(loaded, 5, p2, 5 * V, NULL, 0, NULL));
    CHECK(memcmp(p1, p2, 5 * V * sizeof *p1) == 0);
    eqflow_chain_free(loaded);
    loaded = NULL;
    eqflow_chain_free(empty);

    /* files that are not chain checkpoints */
    eqflow_chain *untouched = (eqflow_chain *)0x1;
    OK(eqflow_flow_save(flow, flow_path));
    EXPECT(eqflow_chain_load(ctx, flow_path, &untouched), EQFLOW_STATUS_BAD_FILE, "eqflow_chain_load", "flow.safetensors");
    printf("flow file as a chain: %s\n", eqflow_last_error_message());
    OK(eqflow_chain_save(c, path));
    size_t n = 0;
    unsigned char *bytes = read_file(path, &n);
    CHECK(bytes != NULL && n > 100);
    if (bytes) {
        write_file(junk, bytes, n / 2); /* truncated */
        EXPECT(eqflow_chain_load(ctx, junk, &untouched), EQFLOW_STATUS_BAD_FILE, "eqflow_chain_load", "junk");
        write_file(junk, bytes, 7); /* shorter than the header length */
        EXPECT(eqflow_chain_load(ctx, junk, &untouched), EQFLOW_STATUS_BAD_FILE, "eqflow_chain_load", "junk");
        unsigned char *corrupt = malloc(n);
        if (!corrupt) exit(1);
        memcpy(corrupt, bytes, n);
        for (size_t i = 8; i < 40 && i < n; i++) corrupt[i] = '#'; /* the JSON header */
        write_file(junk, corrupt, n);
        EXPECT(eqflow_chain_load(ctx, junk, &untouched), EQFLOW_STATUS_BAD_FILE, "eqflow_chain_load", "junk");
        write_file(junk, "not a chain", 11);
        EXPECT(eqflow_chain_load(ctx, junk, &untouched), EQFLOW_STATUS_BAD_FILE, "eqflow_chain_load", "junk");
        free(corrupt);
        free(bytes);
    }
    EXPECT(eqflow_chain_load(ctx, "/nonexistent-dir/chain", &untouched), EQFLOW_STATUS_IO, "eqflow_chain_load",
           "nonexistent");
    EXPECT(eqflow_chain_load(NULL, path, &untouched), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_load", "'ctx'");
    EXPECT(eqflow_chain_load(ctx, path, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_load", "'out'");
    EXPECT(eqflow_chain_save(c, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_save", "'path'");
    EXPECT(eqflow_chain_save(c, ""), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_chain_save", "'path'");
    EXPECT(eqflow_chain_save(c, "/nonexistent-dir/x/chain"), EQFLOW_STATUS_IO, "eqflow_chain_save", "nonexistent");
    EXPECT(eqflow_chain_save(NULL, path), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_save", "'chain'");
    CHECK(untouched == (eqflow_chain *)0x1);
    eqflow_chain_free(c);
    free(p1);
    free(p2);
}

static int finite_with_error(double x, double err) { return isfinite(x) && isfinite(err) && err > 0.0; }

static void check_reweight(eqflow_flow *flow) {
    eqflow_reweighted r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    OK(eqflow_flow_reweight(flow, 256, 0.0, &r));
    CHECK(r.n == 256 && r.ess > 0.0 && r.ess <= 1.0 && isfinite(r.ess_err) && r.ess_err > 0.0);
    /* a caller compiled before ess_err existed: its smaller struct_size is accepted and the
     * appended field is not written */
    eqflow_reweighted old;
    memset(&old, 0, sizeof old);
    old.struct_size = offsetof(eqflow_reweighted, ess_err);
    old.ess_err = -7.0;
    OK(eqflow_flow_reweight(flow, 64, 0.0, &old));
    CHECK(old.n == 64 && old.ess > 0.0 && old.ess_err == -7.0);
    CHECK(finite_with_error(r.log_z, r.log_z_err) && finite_with_error(r.m, r.m_err) &&
          finite_with_error(r.abs_m, r.abs_m_err) && finite_with_error(r.chi2, r.chi2_err) &&
          finite_with_error(r.binder, r.binder_err));
    /* L m_p: defined (with an error) or, from 256 samples of a weak flow, undefined (both NaN) */
    CHECK((isfinite(r.l_m_p) && isfinite(r.l_m_p_err)) || (isnan(r.l_m_p) && isnan(r.l_m_p_err)));
    CHECK(r.abs_m >= fabs(r.m) - 3.0 * r.m_err && r.chi2 > 0.0);
    printf("reweight: ESS %.3f(%.3f), log Z %.4f(%.4f), <|M|> %.4f(%.4f), chi2 %.4f(%.4f), L m_p %.3f(%.3f)\n", r.ess, r.ess_err, r.log_z,
           r.log_z_err, r.abs_m, r.abs_m_err, r.chi2, r.chi2_err, r.l_m_p, r.l_m_p_err);
    eqflow_reweighted d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    OK(eqflow_flow_reweight(flow, 256, 0.05, &d));
    CHECK(d.n == 256 && isfinite(d.log_z) && finite_with_error(d.abs_m, d.abs_m_err) && d.ess > 0.0 && d.ess <= 1.0);
    eqflow_reweighted untouched = r;
    EXPECT(eqflow_flow_reweight(flow, 1, 0.0, &r), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_reweight", "n_samples");
    EXPECT(eqflow_flow_reweight(flow, 0, 0.0, &r), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_reweight", "n_samples");
    EXPECT(eqflow_flow_reweight(flow, 8, 0.0, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_reweight", "'out'");
    EXPECT(eqflow_flow_reweight(NULL, 8, 0.0, &r), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_reweight", "'flow'");
    CHECK(memcmp(&untouched, &r, sizeof r) == 0);
}

static void check_out_of_memory(eqflow_flow *flow) {
    const size_t huge = SIZE_MAX / 64;
    EXPECT(eqflow_flow_sample(flow, huge, NULL, 0, NULL, 0, NULL, 0), EQFLOW_STATUS_OUT_OF_MEMORY,
           "eqflow_flow_sample", "");
    printf("out of memory: %s\n", eqflow_last_error_message());
    /* large but not overflowing: 2^36 fields of 16 sites */
    EXPECT(eqflow_flow_sample(flow, (size_t)1 << 36, NULL, 0, NULL, 0, NULL, 0), EQFLOW_STATUS_OUT_OF_MEMORY,
           "eqflow_flow_sample", "GiB");
    EXPECT(eqflow_flow_sample_float(flow, huge, NULL, 0, NULL, 0, NULL, 0), EQFLOW_STATUS_OUT_OF_MEMORY,
           "eqflow_flow_sample_float", "");
    eqflow_reweighted r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    EXPECT(eqflow_flow_reweight(flow, huge, 0.0, &r), EQFLOW_STATUS_OUT_OF_MEMORY, "eqflow_flow_reweight", "");
    eqflow_chain *c = NULL;
    OK(eqflow_chain_new(flow, 2, &c));
    /* the fields to return are reserved before any step: 2^40 saved fields are refused (the
     * buffer is never written, so its stated length is not checked against real memory) */
    EXPECT(eqflow_chain_run(c, (size_t)1 << 40, 1, (double *)&r, (size_t)1 << 45, NULL), EQFLOW_STATUS_OUT_OF_MEMORY,
           "eqflow_chain_run", "");
    eqflow_chain_free(c);
    /* the flow is unharmed */
    double lq[2];
    OK(eqflow_flow_sample(flow, 2, NULL, 0, lq, 2, NULL, 0));
    CHECK(isfinite(lq[0]) && isfinite(lq[1]));
}

static void check_frozen_snapshot(eqflow_flow *flow) {
    eqflow_chain *c = NULL;
    double phi[V], after[V], lq0, lq1, s0, s1, flow_lq0, flow_lq1;
    OK(eqflow_chain_new(flow, 4, &c));
    OK(eqflow_chain_step(c, 20, NULL, 0, NULL, 0, NULL));
    OK(eqflow_chain_state(c, phi, V, &lq0, &s0));
    OK(eqflow_flow_log_prob(flow, phi, V, &flow_lq0, 1));
    CHECK(flow_lq0 == lq0 || fabs(flow_lq0 - lq0) < 1e-10 * (1.0 + fabs(lq0)));
    eqflow_train_stats ts = {sizeof ts, 0, 0, 0, 0};
    OK(eqflow_flow_train(flow, 5, &ts));
    OK(eqflow_flow_log_prob(flow, phi, V, &flow_lq1, 1));
    OK(eqflow_chain_state(c, after, V, &lq1, &s1));
    CHECK(memcmp(phi, after, sizeof phi) == 0 && lq1 == lq0 && s1 == s0);
    CHECK(flow_lq1 != flow_lq0); /* training changed the flow, not the chain's snapshot */
    /* set_state uses the snapshot's log q, not the trained flow's */
    OK(eqflow_chain_set_state(c, phi, V));
    OK(eqflow_chain_state(c, NULL, 0, &lq1, NULL));
    CHECK(fabs(lq1 - lq0) < 1e-10 * (1.0 + fabs(lq0)));
    printf("frozen snapshot: chain log q %.10f kept while the trained flow gives %.10f\n", lq1, flow_lq1);
    eqflow_flow_free(flow); /* the chain holds its own snapshot */
    eqflow_chain_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    OK(eqflow_chain_run(c, 100, 0, NULL, 0, &s));
    OK(eqflow_chain_step(c, 3, NULL, 0, NULL, 0, &s));
    CHECK(s.proposed == 123 && s.measured == 123);
    eqflow_observables o = observables_of(c);
    CHECK(o.n == 123 && isfinite(o.chi2));
    eqflow_chain_free(c);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    eqflow_context_params cp;
    eqflow_context_params_init(&cp, sizeof cp);
    eqflow_context *ctx = NULL;
    OK(eqflow_context_new(&cp, &ctx));
    eqflow_flow_params fp;
    eqflow_flow_params_init(&fp, sizeof fp);
    fp.lattice_size = L;
    fp.lambda = 6.975;
    fp.n_frequencies = 4;
    fp.ode_steps = 9;
    fp.batch_size = 16;
    fp.learning_rate = 0.02;
    fp.seed = 13;
    eqflow_flow *flow = NULL;
    OK(eqflow_flow_new(ctx, &fp, &flow));
    eqflow_train_stats ts = {sizeof ts, 0, 0, 0, 0};
    OK(eqflow_flow_train(flow, 60, &ts));
    printf("flow: loss %.4f, batch ESS %.3f\n", ts.loss, ts.ess);

    check_run_and_observables(flow);
    check_flip(flow);
    check_checkpoint(ctx, flow, dir);
    check_reweight(flow);
    check_out_of_memory(flow);
    check_frozen_snapshot(flow); /* frees the flow */
    eqflow_context_free(ctx);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("chain_features: ok\n");
    return 0;
}
