/* eqflow from C: create -> train a few steps -> sample -> Metropolis -> save -> load -> free.
 *
 *   cargo build --release --lib
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude examples/c/minimal.c \
 *      -Ltarget/release -leqflow -Wl,-rpath,$PWD/target/release -lm -o minimal
 *   ./minimal /tmp/flow.safetensors
 */
#include "eqflow.h"
#include <stdio.h>
#include <stdlib.h>

/* every call returns a status; on failure the message names the function and argument */
#define TRY(call)                                                                              \
    do {                                                                                       \
        eqflow_status s_ = (call);                                                             \
        if (s_ != EQFLOW_STATUS_OK) {                                                          \
            fprintf(stderr, "%s failed: %s (%d): %s\n", #call, eqflow_status_name(s_), (int)s_, \
                    eqflow_last_error_message());                                              \
            goto done;                                                                         \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "minimal_flow.safetensors";
    int rc = 1;
    eqflow_context *ctx = NULL;
    eqflow_flow *flow = NULL, *loaded = NULL;
    eqflow_chain *chain = NULL;
    double *phi = NULL;

    if (eqflow_version_hex() != EQFLOW_VERSION_HEX) {
        fprintf(stderr, "header %s but library %s\n", EQFLOW_VERSION_STRING, eqflow_version_string());
        return 1;
    }

    eqflow_context_params cp;
    eqflow_context_params_init(&cp, sizeof cp);
    cp.threads = 1;
    TRY(eqflow_context_new(&cp, &ctx));

    eqflow_flow_params fp;
    eqflow_flow_params_init(&fp, sizeof fp);
    fp.lattice_size = 4; /* a small lattice and a light architecture keep the example quick */
    fp.m2 = -4.0;
    fp.lambda = 6.975;
    fp.n_frequencies = 8;
    fp.ode_steps = 18;
    fp.batch_size = 16;
    fp.seed = 1;
    TRY(eqflow_flow_new(ctx, &fp, &flow));

    size_t V = 0;
    TRY(eqflow_flow_lattice_volume(flow, &V));

    eqflow_train_stats ts = {sizeof ts, 0, 0.0, 0.0, 0.0};
    TRY(eqflow_flow_train(flow, 5, &ts));
    printf("trained %llu steps: loss %.4f, batch ESS %.3f\n", (unsigned long long)ts.steps_done, ts.loss, ts.ess);

    enum { N = 4 };
    phi = malloc(N * V * sizeof *phi);
    if (!phi) goto done;
    double log_q[N], action[N];
    TRY(eqflow_flow_sample(flow, N, phi, N * V, log_q, N, action, N));
    for (int i = 0; i < N; i++) printf("sample %d: log q %.4f, S %.4f\n", i, log_q[i], action[i]);

    TRY(eqflow_chain_new(flow, 7, &chain));
    eqflow_chain_stats cs = {.struct_size = sizeof cs};
    TRY(eqflow_chain_step(chain, 50, NULL, 0, NULL, 0, &cs));
    printf("metropolis: %llu of %llu accepted (%.2f)\n", (unsigned long long)cs.accepted,
           (unsigned long long)cs.proposed, cs.acceptance);

    TRY(eqflow_flow_save(flow, path));
    TRY(eqflow_flow_load(ctx, path, &loaded));
    double ess = 0.0;
    TRY(eqflow_flow_ess(loaded, 64, &ess));
    printf("loaded %s: ESS %.3f\n", path, ess);
    rc = 0;

done:
    free(phi);
    eqflow_chain_free(chain);
    eqflow_flow_free(loaded);
    eqflow_flow_free(flow);
    eqflow_context_free(ctx);
    if (rc == 0) printf("minimal: ok\n");
    return rc;
}
