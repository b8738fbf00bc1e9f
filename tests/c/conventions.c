/* Boundary conventions from C (src/conventions.rs): field layouts, the hopping form, float
 * sample buffers and versioned struct sizes.
 *
 * - Layouts: a flow created with EQFLOW_LAYOUT_X0_FASTEST or EQFLOW_LAYOUT_EVEN_ODD and a fixed
 *   seed gives the fields of the default-layout flow with the same seed, permuted by the
 *   documented index formula; log q, S, chain accept flags and chain states agree; log_prob and
 *   set_state/state take and give fields in the flow's layout.
 * - Hopping form: kappa, lambda_tilde = 0.5 on the m2 = -4 line give fields phi/sqrt(kappa) of the
 *   standard flow with the same seed, log q + (V/2) log kappa, S + V lambda_tilde (checked against
 *   the hopping-form action computed here), the same chain and the same observables (of phi). A
 *   host action in hopping variables and the even-odd layout trains like the built-in one.
 * - eqflow_flow_sample_float gives (float) of the double samples of the same seed.
 * - A version-1 eqflow_flow_params (struct_size = offsetof(layout)) is accepted and gives the
 *   defaults of the appended fields; other sizes are EQFLOW_STATUS_BAD_STRUCT_SIZE. */
#include "check.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPECT_STATUS(call, want)                                                                     \
    do {                                                                                       \
        eqflow_status s_ = (call);                                                             \
        if (s_ != (want)) {                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s -> %s (%s), want %s\n", __FILE__, __LINE__, #call, \
                    eqflow_status_name(s_), eqflow_last_error_message(), eqflow_status_name(want)); \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* |a - b| <= tol (1 + |b|) */
static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (1.0 + fabs(b)); }

static eqflow_context *ctx;

static void base_params(eqflow_flow_params *fp, int L) {
    eqflow_flow_params_init(fp, sizeof *fp);
    fp->lattice_size = L;
    fp->m2 = -4.0;
    fp->lambda = 6.975;
    fp->n_frequencies = 4;
    fp->ode_steps = 9;
    fp->batch_size = 8;
    fp->seed = 21;
}

/* a flow trained a few steps, so that it is not the identity map */
static eqflow_flow *make_flow(const eqflow_flow_params *fp, eqflow_train_stats *ts_out) {
    eqflow_flow *f = NULL;
    OK(eqflow_flow_new(ctx, fp, &f));
    eqflow_train_stats ts = {sizeof ts, 0, 0.0, 0.0, 0.0};
    OK(eqflow_flow_train(f, 3, &ts));
    if (ts_out) *ts_out = ts;
    return f;
}

/* the documented index of site (x0, x1) in a field buffer of the layout */
static size_t user_index(int layout, int L, int x0, int x1) {
    size_t V = (size_t)L * L, i = (size_t)x0 * L + x1;
    switch (layout) {
    case EQFLOW_LAYOUT_X1_FASTEST:
        return i;
    case EQFLOW_LAYOUT_X0_FASTEST:
        return (size_t)x1 * L + x0;
    case EQFLOW_LAYOUT_EVEN_ODD: {
        int parity = (x0 + x1) % 2;
        size_t rank = 0; /* rank among the sites of its parity, x1 fastest */
        for (size_t j = 0; j < i; j++)
            if ((int)((j / L + j % L) % 2) == parity) rank++;
        if (L % 2 == 0 && rank != i / 2) {
            fprintf(stderr, "FAIL: even-odd rank %zu of (%d, %d) is not (x0*L + x1)/2\n", rank, x0, x1);
            failures++;
        }
        return rank + (parity ? (V + 1) / 2 : 0);
    }
    default:
        abort();
    }
}

/* user[n*V + user_index(x)] == internal[n*V + x0*L + x1], exactly */
static int permuted_equal(int layout, int L, size_t n, const double *user, const double *ref) {
    size_t V = (size_t)L * L;
    for (size_t k = 0; k < n; k++)
        for (int x0 = 0; x0 < L; x0++)
            for (int x1 = 0; x1 < L; x1++)
                if (user[k * V + user_index(layout, L, x0, x1)] != ref[k * V + (size_t)x0 * L + x1]) return 0;
    return 1;
}

static const char *layout_name(int layout) {
    return layout == EQFLOW_LAYOUT_X1_FASTEST ? "x1-fastest" : layout == EQFLOW_LAYOUT_X0_FASTEST ? "x0-fastest" : "even-odd";
}

static void check_layouts(int L, const char *dir) {
    enum { N = 3, STEPS = 30 };
    const size_t V = (size_t)L * L;
    eqflow_flow_params fp;
    base_params(&fp, L);
    eqflow_flow *ref = make_flow(&fp, NULL);
    double *phi_r = malloc(N * V * sizeof *phi_r), *phi_l = malloc(N * V * sizeof *phi_l);
    double *ch_r = malloc(STEPS * V * sizeof *ch_r), *ch_l = malloc(STEPS * V * sizeof *ch_l);
    double *st = malloc(V * sizeof *st);
    if (!phi_r || !phi_l || !ch_r || !ch_l || !st) exit(1);
    double lq_r[N], s_r[N], lq_l[N], s_l[N], lq2[N];
    uint8_t acc_r[STEPS], acc_l[STEPS];
    const int layouts[] = {EQFLOW_LAYOUT_X1_FASTEST, EQFLOW_LAYOUT_X0_FASTEST, EQFLOW_LAYOUT_EVEN_ODD};
    for (int li = 0; li < 3; li++) {
        int layout = layouts[li];
        base_params(&fp, L);
        fp.layout = layout;
        eqflow_flow *f = make_flow(&fp, NULL);
        /* the same seed: the same fields, permuted */
        OK(eqflow_flow_sample(ref, N, phi_r, N * V, lq_r, N, s_r, N));
        OK(eqflow_flow_sample(f, N, phi_l, N * V, lq_l, N, s_l, N));
        CHECK(permuted_equal(layout, L, N, phi_l, phi_r));
        for (int i = 0; i < N; i++) CHECK(lq_l[i] == lq_r[i] && s_l[i] == s_r[i]);
        /* log_prob takes fields in the flow's layout */
        OK(eqflow_flow_log_prob(f, phi_l, N * V, lq2, N));
        for (int i = 0; i < N; i++) CHECK(close_to(lq2[i], lq_l[i], 1e-10));

        /* chains: the same accept flags and fields; set_state/state round trip in the layout */
        eqflow_chain *cr = NULL, *cl = NULL;
        OK(eqflow_chain_new(ref, 5, &cr));
        OK(eqflow_chain_new(f, 5, &cl));
        OK(eqflow_chain_step(cr, STEPS, ch_r, STEPS * V, acc_r, STEPS, NULL));
        OK(eqflow_chain_step(cl, STEPS, ch_l, STEPS * V, acc_l, STEPS, NULL));
        CHECK(memcmp(acc_r, acc_l, sizeof acc_r) == 0);
        CHECK(permuted_equal(layout, L, STEPS, ch_l, ch_r));
        double lq_st = 0.0, s_st = 0.0;
        OK(eqflow_chain_set_state(cl, phi_l + 2 * V, V));
        OK(eqflow_chain_state(cl, st, V, &lq_st, &s_st));
        CHECK(memcmp(st, phi_l + 2 * V, V * sizeof *st) == 0);
        CHECK(close_to(lq_st, lq_l[2], 1e-10) && close_to(s_st, s_l[2], 1e-12));
        OK(eqflow_chain_set_state(cr, phi_r + 2 * V, V));
        OK(eqflow_chain_step(cr, STEPS, ch_r, STEPS * V, acc_r, STEPS, NULL));
        OK(eqflow_chain_step(cl, STEPS, ch_l, STEPS * V, acc_l, STEPS, NULL));
        CHECK(memcmp(acc_r, acc_l, sizeof acc_r) == 0 && permuted_equal(layout, L, STEPS, ch_l, ch_r));
        int n_acc = 0;
        for (int i = 0; i < STEPS; i++) n_acc += acc_l[i];
        printf("L = %d %s: fields permuted as documented, chain %d/%d accepted\n", L, layout_name(layout), n_acc, STEPS);

        /* the layout is saved with the flow */
        if (layout == EQFLOW_LAYOUT_EVEN_ODD) {
            char path[4096];
            snprintf(path, sizeof path, "%s/conventions_eo_%d.safetensors", dir, L);
            eqflow_flow *loaded = NULL;
            OK(eqflow_flow_save(f, path));
            OK(eqflow_flow_load(ctx, path, &loaded));
            OK(eqflow_flow_sample(ref, N, phi_r, N * V, NULL, 0, NULL, 0));
            OK(eqflow_flow_sample(loaded, N, phi_l, N * V, NULL, 0, NULL, 0));
            CHECK(permuted_equal(layout, L, N, phi_l, phi_r));
            eqflow_flow_free(loaded);
            /* and with a chain checkpoint: the loaded chain gives its fields in the layout */
            eqflow_chain *lc = NULL;
            snprintf(path, sizeof path, "%s/conventions_eo_chain_%d.safetensors", dir, L);
            OK(eqflow_chain_save(cl, path));
            OK(eqflow_chain_load(ctx, path, &lc));
            OK(eqflow_chain_state(lc, st, V, &lq_st, NULL));
            CHECK(memcmp(st, ch_l + (STEPS - 1) * V, V * sizeof *st) == 0);
            OK(eqflow_chain_step(cl, STEPS, ch_l, STEPS * V, acc_l, STEPS, NULL));
            OK(eqflow_chain_step(lc, STEPS, ch_r, STEPS * V, acc_r, STEPS, NULL));
            CHECK(memcmp(ch_l, ch_r, STEPS * V * sizeof *ch_l) == 0 && memcmp(acc_l, acc_r, sizeof acc_l) == 0);
            eqflow_chain_free(lc);
        }
        eqflow_chain_free(cr);
        eqflow_chain_free(cl);
        eqflow_flow_free(f);
        /* the next layout's flow starts from the same sample stream position as ref */
        eqflow_flow_free(ref);
        base_params(&fp, L);
        ref = make_flow(&fp, NULL);
    }
    eqflow_flow_free(ref);
    free(phi_r);
    free(phi_l);
    free(ch_r);
    free(ch_l);
    free(st);
}

/* S_hop = sum_x [-2 kappa sum_mu p_x p_{x+mu} + p_x^2 + lambda_tilde (p_x^2 - 1)^2] of a field in
 * the layout `idx` (idx[x0*L + x1] = the buffer index of the site); its force if `force`. */
typedef struct {
    int L;
    double kappa, lambda_tilde;
    const size_t *idx;
    long calls;
} hopping;

static double hopping_action(const hopping *h, const double *p, double *force) {
    int L = h->L;
    double s = 0.0;
    for (int a = 0; a < L; a++)
        for (int b = 0; b < L; b++) {
            double x = p[h->idx[a * L + b]];
            double up = p[h->idx[((a + 1) % L) * L + b]], right = p[h->idx[a * L + (b + 1) % L]];
            double dn = p[h->idx[((a + L - 1) % L) * L + b]], left = p[h->idx[a * L + (b + L - 1) % L]];
            s += -2.0 * h->kappa * x * (up + right) + x * x + h->lambda_tilde * (x * x - 1.0) * (x * x - 1.0);
            if (force)
                force[h->idx[a * L + b]] = -2.0 * h->kappa * (up + right + dn + left) + 2.0 * x +
                                           4.0 * h->lambda_tilde * x * (x * x - 1.0);
        }
    return s;
}

static int hopping_callback(void *user, size_t n, size_t volume, const double *phi, double *action, double *force) {
    hopping *h = (hopping *)user;
    h->calls++;
    if (volume != (size_t)h->L * h->L) return 5;
    for (size_t k = 0; k < n; k++) action[k] = hopping_action(h, phi + k * volume, force ? force + k * volume : NULL);
    return 0;
}

static void check_hopping(const char *dir) {
    enum { L = 6, V = L * L, N = 4, STEPS = 300 };
    const double lambda_tilde = 0.5, kappa = sqrt(0.5 / 6.975);
    /* the same theory in the standard form: m2 = (1 - 2 lambda_tilde)/kappa - 4 = -4 and
     * lambda = lambda_tilde/kappa^2, which is 6.975 up to rounding */
    const double lambda = lambda_tilde / (kappa * kappa);
    CHECK(fabs(lambda - 6.975) < 1e-12);
    eqflow_flow_params fp;
    base_params(&fp, L);
    fp.lambda = lambda;
    eqflow_train_stats ts_s, ts_h;
    eqflow_flow *fs = make_flow(&fp, &ts_s);
    base_params(&fp, L);
    fp.couplings_form = EQFLOW_COUPLINGS_HOPPING;
    fp.kappa = kappa;
    fp.lambda_tilde = lambda_tilde;
    fp.m2 = NAN; /* ignored in the hopping form */
    fp.lambda = -1.0;
    eqflow_flow *fh = make_flow(&fp, &ts_h);
    printf("hopping: training loss %.12g (standard %.12g, difference %.12g; (V/2) log kappa + V lambda_tilde = %.12g)\n",
           ts_h.loss, ts_s.loss, ts_h.loss - ts_s.loss, 0.5 * V * log(kappa) + V * lambda_tilde);
    CHECK(close_to(ts_h.loss, ts_s.loss, 1e-10) ||
          close_to(ts_h.loss, ts_s.loss + 0.5 * V * log(kappa) + V * lambda_tilde, 1e-10));

    double phi_s[N * V], phi_h[N * V], lq_s[N], lq_h[N], s_s[N], s_h[N], lq2[N];
    OK(eqflow_flow_sample(fs, N, phi_s, N * V, lq_s, N, s_s, N));
    OK(eqflow_flow_sample(fh, N, phi_h, N * V, lq_h, N, s_h, N));
    size_t idx[L * L];
    for (size_t i = 0; i < V; i++) idx[i] = i;
    hopping h = {L, kappa, lambda_tilde, idx, 0};
    double max_rel = 0.0;
    for (size_t i = 0; i < N * V; i++) {
        double want = phi_s[i] / sqrt(kappa);
        double rel = fabs(phi_h[i] - want) / fabs(want);
        if (rel > max_rel) max_rel = rel;
    }
    CHECK(max_rel < 1e-14);
    for (int i = 0; i < N; i++) {
        CHECK(close_to(lq_h[i], lq_s[i] + 0.5 * V * log(kappa), 1e-10));
        CHECK(close_to(s_h[i], s_s[i] + V * lambda_tilde, 1e-10));
        double s_c = hopping_action(&h, phi_h + i * V, NULL);
        CHECK(close_to(s_h[i], s_c, 1e-10));
        if (i == 0)
            printf("hopping: field ratio rel. err %.2g; log q %.10f = %.10f + (V/2) log kappa; S_hop %.10f, from C %.10f\n",
                   max_rel, lq_h[0], lq_s[0], s_h[0], s_c);
    }
    OK(eqflow_flow_log_prob(fh, phi_h, N * V, lq2, N));
    for (int i = 0; i < N; i++) CHECK(close_to(lq2[i], lq_h[i], 1e-10));

    /* the same physics: accept/reject sequence, fields, state and observables of phi */
    double *ch_s = malloc(STEPS * V * sizeof *ch_s), *ch_h = malloc(STEPS * V * sizeof *ch_h);
    if (!ch_s || !ch_h) exit(1);
    uint8_t acc_s[STEPS], acc_h[STEPS];
    eqflow_chain *cs = NULL, *ch = NULL;
    OK(eqflow_chain_new(fs, 8, &cs));
    OK(eqflow_chain_new(fh, 8, &ch));
    OK(eqflow_chain_step(cs, STEPS, ch_s, STEPS * V, acc_s, STEPS, NULL));
    OK(eqflow_chain_step(ch, STEPS, ch_h, STEPS * V, acc_h, STEPS, NULL));
    CHECK(memcmp(acc_s, acc_h, sizeof acc_s) == 0);
    int fields_ok = 1, n_acc = 0;
    for (size_t i = 0; i < STEPS * V; i++) fields_ok &= close_to(ch_h[i], ch_s[i] / sqrt(kappa), 1e-14);
    for (int i = 0; i < STEPS; i++) n_acc += acc_h[i];
    CHECK(fields_ok);
    double lq_cs, s_cs, lq_ch, s_ch;
    OK(eqflow_chain_state(cs, NULL, 0, &lq_cs, &s_cs));
    OK(eqflow_chain_state(ch, NULL, 0, &lq_ch, &s_ch));
    CHECK(close_to(lq_ch, lq_cs + 0.5 * V * log(kappa), 1e-10) && close_to(s_ch, s_cs + V * lambda_tilde, 1e-10));
    CHECK(close_to(s_ch, hopping_action(&h, ch_h + (STEPS - 1) * V, NULL), 1e-10));
    eqflow_observables os = {0}, oh = {0};
    os.struct_size = sizeof os;
    oh.struct_size = sizeof oh;
    OK(eqflow_chain_observables(cs, &os));
    OK(eqflow_chain_observables(ch, &oh));
    CHECK(os.n == STEPS && oh.n == STEPS && os.abs_m == oh.abs_m && os.abs_m_err == oh.abs_m_err &&
          os.chi2 == oh.chi2 && os.chi2_err == oh.chi2_err && os.binder == oh.binder &&
          os.tau_int_abs_m == oh.tau_int_abs_m);
    CHECK(memcmp(&os, &oh, sizeof os) == 0);
    printf("hopping: chain %d/%d accepted as in the standard form; <|M|> of phi %.6f(%.6f), chi2 %.6f(%.6f)\n", n_acc,
           STEPS, oh.abs_m, oh.abs_m_err, oh.chi2, oh.chi2_err);
    /* the hopping form is saved with a chain checkpoint */
    {
        char path[4096];
        snprintf(path, sizeof path, "%s/conventions_hopping_chain.safetensors", dir);
        eqflow_chain *lc = NULL;
        double st1[V], st2[V], lq1, lq2, a1, a2;
        OK(eqflow_chain_save(ch, path));
        OK(eqflow_chain_load(ctx, path, &lc));
        OK(eqflow_chain_state(ch, st1, V, &lq1, &a1));
        OK(eqflow_chain_state(lc, st2, V, &lq2, &a2));
        CHECK(memcmp(st1, st2, sizeof st1) == 0 && lq1 == lq2 && a1 == a2);
        OK(eqflow_chain_step(ch, 20, ch_h, 20 * V, acc_h, 20, NULL));
        OK(eqflow_chain_step(lc, 20, ch_s, 20 * V, acc_s, 20, NULL));
        CHECK(memcmp(ch_h, ch_s, 20 * V * sizeof *ch_h) == 0 && memcmp(acc_h, acc_s, 20) == 0);
        eqflow_chain_free(lc);
    }
    /* set_state takes the hopping variables */
    OK(eqflow_chain_set_state(ch, phi_h, V));
    OK(eqflow_chain_state(ch, NULL, 0, &lq_ch, &s_ch));
    CHECK(close_to(lq_ch, lq_h[0], 1e-10) && close_to(s_ch, s_h[0], 1e-10));

    /* reweighting: observables of phi, identical for both forms */
    eqflow_reweighted rs = {0}, rh = {0};
    rs.struct_size = sizeof rs;
    rh.struct_size = sizeof rh;
    OK(eqflow_flow_reweight(fs, 64, 0.0, &rs));
    OK(eqflow_flow_reweight(fh, 64, 0.0, &rh));
    CHECK(rs.n == 64 && rs.abs_m == rh.abs_m && rs.chi2 == rh.chi2 && rs.abs_m_err == rh.abs_m_err &&
          rs.ess == rh.ess && rs.binder == rh.binder);
    printf("hopping: reweighted <|M|> %.6f(%.6f) in both forms, log Z %.6f vs %.6f\n", rh.abs_m, rh.abs_m_err, rh.log_z,
           rs.log_z);
    eqflow_chain_free(cs);
    eqflow_chain_free(ch);
    free(ch_s);
    free(ch_h);

    /* a host action in the user's conventions (hopping variables, even-odd layout) trains and
     * proposes like the built-in action of the same flow */
    size_t eo[L * L];
    for (int a = 0; a < L; a++)
        for (int b = 0; b < L; b++) eo[a * L + b] = user_index(EQFLOW_LAYOUT_EVEN_ODD, L, a, b);
    hopping he = {L, kappa, lambda_tilde, eo, 0};
    fp.layout = EQFLOW_LAYOUT_EVEN_ODD;
    eqflow_flow *builtin = NULL, *hosted = NULL;
    OK(eqflow_flow_new(ctx, &fp, &builtin));
    OK(eqflow_flow_new(ctx, &fp, &hosted));
    OK(eqflow_flow_set_action(hosted, hopping_callback, &he));
    eqflow_train_stats tb = {sizeof tb, 0, 0, 0, 0}, th = {sizeof th, 0, 0, 0, 0};
    OK(eqflow_flow_train(builtin, 3, &tb));
    OK(eqflow_flow_train(hosted, 3, &th));
    CHECK(he.calls >= 3 && close_to(th.loss, tb.loss, 1e-9));
    OK(eqflow_flow_sample(builtin, N, phi_s, N * V, lq_s, N, s_s, N));
    OK(eqflow_flow_sample(hosted, N, phi_h, N * V, lq_h, N, s_h, N));
    for (int i = 0; i < N; i++) {
        CHECK(close_to(s_h[i], s_s[i], 1e-10) && close_to(lq_h[i], lq_s[i], 1e-9));
        CHECK(close_to(s_h[i], hopping_action(&he, phi_h + i * V, NULL), 1e-10));
    }
    eqflow_chain *cb = NULL, *chh = NULL;
    uint8_t a1[50], a2[50];
    OK(eqflow_chain_new(builtin, 3, &cb));
    OK(eqflow_chain_new(hosted, 3, &chh));
    OK(eqflow_chain_step(cb, 50, NULL, 0, a1, 50, NULL));
    OK(eqflow_chain_step(chh, 50, NULL, 0, a2, 50, NULL));
    CHECK(memcmp(a1, a2, sizeof a1) == 0);
    printf("hopping + even-odd host action: loss %.10f vs built-in %.10f (%ld calls)\n", th.loss, tb.loss, he.calls);
    eqflow_chain_free(cb);
    eqflow_chain_free(chh);
    eqflow_flow_free(builtin);
    eqflow_flow_free(hosted);
    eqflow_flow_free(fs);
    eqflow_flow_free(fh);
}

static void check_float_samples(void) {
    enum { L = 4, V = L * L, N = 3 };
    eqflow_flow_params fp;
    for (int variant = 0; variant < 2; variant++) {
        base_params(&fp, L);
        if (variant == 1) { /* in other conventions too */
            fp.layout = EQFLOW_LAYOUT_X0_FASTEST;
            fp.couplings_form = EQFLOW_COUPLINGS_HOPPING;
            fp.kappa = 0.27;
            fp.lambda_tilde = 0.5;
        }
        eqflow_flow *a = make_flow(&fp, NULL), *b = make_flow(&fp, NULL);
        double phi[N * V], lq[N], s[N], lqf[N], sf[N];
        float phif[N * V];
        OK(eqflow_flow_sample(a, N, phi, N * V, lq, N, s, N));
        OK(eqflow_flow_sample_float(b, N, phif, N * V, lqf, N, sf, N));
        int same = 1;
        for (size_t i = 0; i < N * V; i++) same &= phif[i] == (float)phi[i];
        CHECK(same);
        for (int i = 0; i < N; i++) CHECK(lqf[i] == lq[i] && sf[i] == s[i]);
        /* the streams advanced alike; short float buffers are errors */
        EXPECT_STATUS(eqflow_flow_sample_float(b, N, phif, N * V - 1, NULL, 0, NULL, 0), EQFLOW_STATUS_BAD_LENGTH);
        OK(eqflow_flow_sample(a, 1, phi, V, NULL, 0, NULL, 0));
        OK(eqflow_flow_sample_float(b, 1, phif, V, NULL, 0, NULL, 0));
        for (size_t i = 0; i < V; i++) same &= phif[i] == (float)phi[i];
        CHECK(same);
        eqflow_flow_free(a);
        eqflow_flow_free(b);
    }
    printf("float samples: (float) of the double samples\n");
}

/* the version-4 training fields: micro-batches give the whole batch's loss; a coarse
 * schedule trains its first steps exactly as a flow of the coarse N_t does */
static void check_training_fields(void) {
    const int L = 3;
    eqflow_flow_params fp;
    eqflow_train_stats ta = {sizeof ta, 0, 0.0, 0.0, 0.0}, tb = ta;
    eqflow_flow *a = NULL, *b = NULL;
    base_params(&fp, L);
    OK(eqflow_flow_new(ctx, &fp, &a));
    fp.micro_batch = 3; /* 8 = 3 + 3 + 2 */
    OK(eqflow_flow_new(ctx, &fp, &b));
    for (int k = 0; k < 2; k++) {
        OK(eqflow_flow_train(a, 1, &ta));
        OK(eqflow_flow_train(b, 1, &tb));
        CHECK(close_to(ta.loss, tb.loss, 1e-5));
    }
    eqflow_flow_free(a);
    eqflow_flow_free(b);
    base_params(&fp, L);
    fp.coarse_ode_steps = 3;
    fp.coarse_steps = 2;
    OK(eqflow_flow_new(ctx, &fp, &a));
    base_params(&fp, L);
    fp.ode_steps = 3;
    OK(eqflow_flow_new(ctx, &fp, &b));
    for (int k = 0; k < 2; k++) {
        OK(eqflow_flow_train(a, 1, &ta));
        OK(eqflow_flow_train(b, 1, &tb));
        CHECK(ta.loss == tb.loss);
    }
    eqflow_flow_free(a);
    eqflow_flow_free(b);
    eqflow_flow *untouched = (eqflow_flow *)0x1;
    base_params(&fp, L);
    fp.micro_batch = -1;
    EXPECT(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "micro_batch");
    base_params(&fp, L);
    fp.coarse_steps = -5;
    EXPECT(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "coarse_steps");
    CHECK(untouched == (eqflow_flow *)0x1);
    printf("micro_batch and the coarse schedule through the C ABI: ok\n");
}

static void check_struct_sizes(void) {
    enum { L = 4, V = L * L, N = 2 };
    eqflow_flow_params fp;
    eqflow_flow *f = NULL, *ref = NULL;
    /* version 1: the appended fields are not read (garbage there is ignored) */
    base_params(&fp, L);
    fp.struct_size = offsetof(eqflow_flow_params, layout);
    fp.layout = 77;
    fp.couplings_form = 99;
    fp.kappa = -1.0;
    fp.lambda_tilde = NAN;
    OK(eqflow_flow_new(ctx, &fp, &f));
    base_params(&fp, L);
    OK(eqflow_flow_new(ctx, &fp, &ref));
    double p1[N * V], p2[N * V], l1[N], l2[N];
    OK(eqflow_flow_sample(f, N, p1, N * V, l1, N, NULL, 0));
    OK(eqflow_flow_sample(ref, N, p2, N * V, l2, N, NULL, 0));
    CHECK(memcmp(p1, p2, sizeof p1) == 0 && l1[0] == l2[0] && l1[1] == l2[1]);
    eqflow_flow_free(f);
    f = NULL;
    /* other sizes are rejected */
    eqflow_flow *untouched = (eqflow_flow *)0x1;
    size_t bad[] = {sizeof fp + 8,
                    offsetof(eqflow_flow_params, couplings_form),
                    offsetof(eqflow_flow_params, layout) - 8,
                    offsetof(eqflow_flow_params, kappa),
                    offsetof(eqflow_flow_params, warmup_steps),
                    offsetof(eqflow_flow_params, flow_type) - 8,
                    offsetof(eqflow_flow_params, coarse_ode_steps)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        base_params(&fp, L);
        fp.struct_size = bad[i];
        EXPECT_STATUS(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_BAD_STRUCT_SIZE);
        CHECK(strstr(eqflow_last_error_message(), "eqflow_flow_params") != NULL);
    }
    CHECK(untouched == (eqflow_flow *)0x1);
    /* version 2 (up to lambda_tilde): flow_type and warmup_steps are not read */
    base_params(&fp, L);
    fp.struct_size = offsetof(eqflow_flow_params, flow_type);
    fp.flow_type = 55;
    fp.warmup_steps = -3;
    OK(eqflow_flow_new(ctx, &fp, &f));
    OK(eqflow_flow_sample(f, N, p1, N * V, l1, N, NULL, 0));
    CHECK(memcmp(p1, p2, sizeof p1) == 0 && l1[0] == l2[0] && l1[1] == l2[1]);
    eqflow_flow_free(f);
    f = NULL;
    /* version 3 (up to warmup_steps): micro_batch and the coarse schedule are not read */
    base_params(&fp, L);
    fp.struct_size = offsetof(eqflow_flow_params, micro_batch);
    fp.micro_batch = -7;
    fp.coarse_ode_steps = -1;
    OK(eqflow_flow_new(ctx, &fp, &f));
    OK(eqflow_flow_sample(f, N, p1, N * V, l1, N, NULL, 0));
    CHECK(memcmp(p1, p2, sizeof p1) == 0 && l1[0] == l2[0] && l1[1] == l2[1]);
    eqflow_flow_free(f);
    f = NULL;
    printf("struct_size %zu (version 1), %zu (version 2) and %zu (version 3) accepted, %zu rejected: %s\n",
           offsetof(eqflow_flow_params, layout), offsetof(eqflow_flow_params, flow_type),
           offsetof(eqflow_flow_params, micro_batch), offsetof(eqflow_flow_params, warmup_steps),
           eqflow_last_error_message());
    /* invalid values of the appended fields */
    base_params(&fp, L);
    fp.layout = 3;
    EXPECT_STATUS(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(eqflow_last_error_message(), "layout") != NULL);
    base_params(&fp, L);
    fp.couplings_form = 2;
    EXPECT_STATUS(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(eqflow_last_error_message(), "couplings_form") != NULL);
    base_params(&fp, L);
    fp.couplings_form = EQFLOW_COUPLINGS_HOPPING;
    fp.kappa = 0.0;
    EXPECT_STATUS(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT);
    fp.kappa = NAN;
    EXPECT_STATUS(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT);
    fp.kappa = 0.27;
    fp.lambda_tilde = -0.1;
    EXPECT_STATUS(eqflow_flow_new(ctx, &fp, &untouched), EQFLOW_STATUS_INVALID_ARGUMENT);
    CHECK(untouched == (eqflow_flow *)0x1);
    /* the defaults of the appended fields */
    eqflow_flow_params_init(&fp, sizeof fp);
    CHECK(fp.layout == EQFLOW_LAYOUT_X1_FASTEST && fp.couplings_form == EQFLOW_COUPLINGS_STANDARD &&
          fp.lambda_tilde == 0.5 && fp.kappa > 0.0);
    /* init of a version-1 struct writes only its prefix */
    eqflow_flow_params v1;
    memset(&v1, 0xAB, sizeof v1);
    eqflow_flow_params_init(&v1, offsetof(eqflow_flow_params, layout));
    const unsigned char *raw = (const unsigned char *)&v1;
    int tail_untouched = v1.struct_size == offsetof(eqflow_flow_params, layout) && v1.lattice_size == 8;
    for (size_t i = offsetof(eqflow_flow_params, layout); i < sizeof v1; i++) tail_untouched &= raw[i] == 0xAB;
    CHECK(tail_untouched);

    /* eqflow_chain_stats of version 1 (up to acceptance): only that prefix is written */
    eqflow_chain *c = NULL;
    OK(eqflow_chain_new(ref, 1, &c));
    OK(eqflow_chain_step(c, 12, NULL, 0, NULL, 0, NULL));
    eqflow_chain_stats cs;
    memset(&cs, 0xCD, sizeof cs);
    cs.struct_size = offsetof(eqflow_chain_stats, non_finite);
    OK(eqflow_chain_step(c, 0, NULL, 0, NULL, 0, &cs));
    CHECK(cs.proposed == 12 && cs.accepted >= 1 && cs.acceptance == (double)cs.accepted / 12.0);
    CHECK(cs.non_finite == 0xCDCDCDCDCDCDCDCDull && cs.measured == 0xCDCDCDCDCDCDCDCDull);
    cs.struct_size = sizeof cs;
    OK(eqflow_chain_step(c, 0, NULL, 0, NULL, 0, &cs));
    CHECK(cs.non_finite == 0 && cs.flips_proposed == 0 && cs.flips_accepted == 0 && cs.measured == 12);
    cs.struct_size = sizeof cs - 8;
    EXPECT_STATUS(eqflow_chain_step(c, 0, NULL, 0, NULL, 0, &cs), EQFLOW_STATUS_BAD_STRUCT_SIZE);
    EXPECT_STATUS(eqflow_chain_run(c, 1, 0, NULL, 0, &cs), EQFLOW_STATUS_BAD_STRUCT_SIZE);
    eqflow_observables ob;
    ob.struct_size = sizeof ob - 8;
    EXPECT_STATUS(eqflow_chain_observables(c, &ob), EQFLOW_STATUS_BAD_STRUCT_SIZE);
    eqflow_reweighted rw;
    rw.struct_size = sizeof rw - 8; /* the size before ess_err was appended: accepted */
    OK(eqflow_flow_reweight(ref, 8, 0.0, &rw));
    rw.struct_size = sizeof rw - 16;
    EXPECT_STATUS(eqflow_flow_reweight(ref, 8, 0.0, &rw), EQFLOW_STATUS_BAD_STRUCT_SIZE);
    rw.struct_size = sizeof rw + 8;
    EXPECT_STATUS(eqflow_flow_reweight(ref, 8, 0.0, &rw), EQFLOW_STATUS_BAD_STRUCT_SIZE);
    eqflow_chain_free(c);
    eqflow_flow_free(ref);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    eqflow_context_params cp;
    eqflow_context_params_init(&cp, sizeof cp);
    OK(eqflow_context_new(&cp, &ctx));
    check_layouts(4, dir);
    check_layouts(5, dir);
    check_hopping(dir);
    check_float_samples();
    check_struct_sizes();
    check_training_fields();
    eqflow_context_free(ctx);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("conventions: ok\n");
    return 0;
}
