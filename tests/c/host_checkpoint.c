/* A chain saved while it used a host action: files cannot hold code, so the loaded chain
 * refuses to step (EQFLOW_STATUS_INVALID_ARGUMENT) until eqflow_chain_set_action gives it the
 * action again; then it continues bit for bit. Also eqflow_chain_lattice_volume. */
#include "eqflow.h"
#include <stdio.h>
#include <string.h>

typedef struct {
    int L;
    double m2, lambda;
} phi4;

static int act(void *u, size_t n, size_t vol, const double *phi, double *a, double *force) {
    const phi4 *p = u;
    int L = p->L;
    for (size_t k = 0; k < n; k++) {
        const double *f = phi + k * vol;
        double s = 0;
        for (int x = 0; x < L; x++)
            for (int y = 0; y < L; y++) {
                double v = f[x * L + y], up = f[((x + 1) % L) * L + y], r = f[x * L + (y + 1) % L];
                double dn = f[((x + L - 1) % L) * L + y], l = f[x * L + (y + L - 1) % L];
                s += (up - v) * (up - v) + (r - v) * (r - v) + p->m2 * v * v + p->lambda * v * v * v * v;
                if (force) force[k * vol + x * L + y] = 2 * (4 * v - up - dn - l - r) + 2 * p->m2 * v + 4 * p->lambda * v * v * v;
            }
        a[k] = s;
    }
    return 0;
}

#define OK(c)                                                                                                          \
    do {                                                                                                               \
        eqflow_status s_ = (c);                                                                                        \
        if (s_) {                                                                                                      \
            printf("FAIL %s: %s\n", #c, eqflow_last_error_message());                                                  \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

int main(int argc, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/host_chain.safetensors", argc > 1 ? argv[1] : ".");
    eqflow_context_params cp;
    eqflow_context_params_init(&cp, sizeof cp);
    eqflow_context *ctx;
    OK(eqflow_context_new(&cp, &ctx));
    eqflow_flow_params fp;
    eqflow_flow_params_init(&fp, sizeof fp);
    fp.lattice_size = 4;
    fp.lambda = 6.975;
    fp.n_frequencies = 4;
    fp.ode_steps = 9;
    fp.batch_size = 8;
    fp.seed = 1;
    eqflow_flow *flow;
    OK(eqflow_flow_new(ctx, &fp, &flow));
    phi4 host = {4, -4.0, 1.0}; /* differs from the built-in action (lambda 1, not 6.975) */
    OK(eqflow_flow_set_action(flow, act, &host));
    eqflow_chain *c, *l;
    OK(eqflow_chain_new(flow, 3, &c));
    OK(eqflow_chain_step(c, 20, NULL, 0, NULL, 0, NULL));
    OK(eqflow_chain_save(c, path));
    OK(eqflow_chain_load(ctx, path, &l));
    size_t v = 0;
    OK(eqflow_chain_lattice_volume(l, &v));
    if (v != 16) {
        printf("FAIL: chain volume %zu, want 16\n", v);
        return 1;
    }
    eqflow_status st = eqflow_chain_step(l, 1, NULL, 0, NULL, 0, NULL);
    if (st != EQFLOW_STATUS_INVALID_ARGUMENT || !strstr(eqflow_last_error_message(), "host action")) {
        printf("FAIL: a loaded chain without its host action stepped (status %d: %s)\n", (int)st,
               eqflow_last_error_message());
        return 1;
    }
    OK(eqflow_chain_set_action(l, act, &host));
    uint8_t a1[200], a2[200];
    double s1, s2;
    OK(eqflow_chain_step(c, 200, NULL, 0, a1, 200, NULL));
    OK(eqflow_chain_step(l, 200, NULL, 0, a2, 200, NULL));
    OK(eqflow_chain_state(c, NULL, 0, NULL, &s1));
    OK(eqflow_chain_state(l, NULL, 0, NULL, &s2));
    if (memcmp(a1, a2, sizeof a1) != 0 || s1 != s2) {
        printf("FAIL: the restored chain differs (S %.17g vs %.17g)\n", s1, s2);
        return 1;
    }
    printf("host-action checkpoint: refused until the action is set, then 200 identical steps (S %.6f)\n", s1);
    eqflow_chain_free(c);
    eqflow_chain_free(l);
    eqflow_flow_free(flow);
    eqflow_context_free(ctx);
    return 0;
}
