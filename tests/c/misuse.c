/* Misuse of the C ABI must give a status and a message, never undefined behaviour; and the
 * same seed must give the same numbers from C as from Rust (tests/c_abi.rs compares the
 * RESULT lines). Usage: misuse <scratch-dir> */
#include "check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void small_params(eqflow_flow_params *fp) {
    eqflow_flow_params_init(fp, sizeof *fp);
    fp->lattice_size = 4;
    fp->n_frequencies = 4;
    fp->ode_steps = 9;
    fp->batch_size = 8;
    fp->seed = 42;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: misuse <scratch-dir>\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/misuse_flow.safetensors", argv[1]);

    /* version agreement between header and library */
    CHECK(eqflow_version_hex() == EQFLOW_VERSION_HEX);
    CHECK(strcmp(eqflow_version_string(), EQFLOW_VERSION_STRING) == 0);
    CHECK(EQFLOW_VERSION_HEX ==
          (unsigned)((EQFLOW_VERSION_MAJOR << 16) | (EQFLOW_VERSION_MINOR << 8) | EQFLOW_VERSION_PATCH));
    printf("RESULT version %s\n", eqflow_version_string());

    CHECK(strcmp(eqflow_status_name(EQFLOW_STATUS_BUSY), "EQFLOW_STATUS_BUSY") == 0);
    CHECK(strcmp(eqflow_status_name(-7), "EQFLOW_STATUS_UNKNOWN") == 0);
    CHECK(eqflow_backend_available(EQFLOW_BACKEND_CPU) == 1);
    const int cuda = eqflow_backend_available(EQFLOW_BACKEND_CUDA);
    CHECK(cuda == 0 || cuda == 1);
    printf("RESULT cuda available %d\n", cuda);
    CHECK(eqflow_backend_available(99) == 0);

    /* free(NULL) and init(NULL) are no-ops */
    eqflow_context_free(NULL);
    eqflow_flow_free(NULL);
    eqflow_chain_free(NULL);
    eqflow_context_params_init(NULL, sizeof(eqflow_context_params));
    eqflow_flow_params_init(NULL, sizeof(eqflow_flow_params));

    /* context: NULLs, struct_size, backends, thread counts */
    eqflow_context_params cp;
    eqflow_context_params_init(&cp, sizeof cp);
    CHECK(cp.struct_size == sizeof cp && cp.backend == EQFLOW_BACKEND_CPU && cp.threads == 1);
    eqflow_context *ctx = (eqflow_context *)0x1; /* must stay untouched on failure */
    EXPECT(eqflow_context_new(NULL, &ctx), EQFLOW_STATUS_NULL_POINTER, "eqflow_context_new", "'p'");
    CHECK(ctx == (eqflow_context *)0x1);
    EXPECT(eqflow_context_new(&cp, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_context_new", "'out'");
    cp.struct_size = 4;
    EXPECT(eqflow_context_new(&cp, &ctx), EQFLOW_STATUS_BAD_STRUCT_SIZE, "eqflow_context_new", "struct_size");
    cp.struct_size = sizeof cp + 8;
    EXPECT(eqflow_context_new(&cp, &ctx), EQFLOW_STATUS_BAD_STRUCT_SIZE, "eqflow_context_new", "struct_size");
    eqflow_context_params_init(&cp, sizeof cp);
    cp.backend = EQFLOW_BACKEND_CUDA;
    if (!cuda) {
        /* no driver or no device: a status and a message, never an abort */
        EXPECT(eqflow_context_new(&cp, &ctx), EQFLOW_STATUS_NO_DEVICE, "eqflow_context_new", "CUDA");
    }
    cp.device = 1 << 20;
    EXPECT(eqflow_context_new(&cp, &ctx), cuda ? EQFLOW_STATUS_INVALID_ARGUMENT : EQFLOW_STATUS_NO_DEVICE,
           "eqflow_context_new", "CUDA");
    cp.device = 0;
    cp.backend = 7;
    EXPECT(eqflow_context_new(&cp, &ctx), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_context_new", "backend");
    cp.backend = EQFLOW_BACKEND_CPU;
    cp.threads = -1;
    EXPECT(eqflow_context_new(&cp, &ctx), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_context_new", "threads");
    CHECK(ctx == (eqflow_context *)0x1);
    eqflow_context_params_init(&cp, sizeof cp);
    OK(eqflow_context_new(&cp, &ctx));
    CHECK(strcmp(eqflow_last_error_message(), "") == 0);

    /* flow parameters */
    eqflow_flow_params fp;
    small_params(&fp);
    eqflow_flow *flow = NULL;
    EXPECT(eqflow_flow_new(NULL, &fp, &flow), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_new", "'ctx'");
    EXPECT(eqflow_flow_new(ctx, NULL, &flow), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_new", "'p'");
    EXPECT(eqflow_flow_new(ctx, &fp, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_new", "'out'");
    fp.struct_size = sizeof fp - 4;
    EXPECT(eqflow_flow_new(ctx, &fp, &flow), EQFLOW_STATUS_BAD_STRUCT_SIZE, "eqflow_flow_new", "eqflow_flow_params");
    small_params(&fp);
    fp.lattice_size = 1;
    EXPECT(eqflow_flow_new(ctx, &fp, &flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "lattice_size");
    small_params(&fp);
    fp.lambda = -1.0;
    EXPECT(eqflow_flow_new(ctx, &fp, &flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "lambda");
    small_params(&fp);
    fp.m2 = NAN;
    EXPECT(eqflow_flow_new(ctx, &fp, &flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "finite");
    small_params(&fp);
    fp.symmetry = 5;
    EXPECT(eqflow_flow_new(ctx, &fp, &flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "symmetry");
    small_params(&fp);
    fp.n_frequencies = -3;
    EXPECT(eqflow_flow_new(ctx, &fp, &flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "n_frequencies");
    small_params(&fp);
    fp.learning_rate = 0.0;
    EXPECT(eqflow_flow_new(ctx, &fp, &flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "learning_rate");
    small_params(&fp);
    fp.architecture = 9;
    EXPECT(eqflow_flow_new(ctx, &fp, &flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_new", "architecture");
    CHECK(flow == NULL);
    small_params(&fp);
    OK(eqflow_flow_new(ctx, &fp, &flow));

    size_t V = 0;
    EXPECT(eqflow_flow_lattice_volume(flow, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_lattice_volume", "out_volume");
    OK(eqflow_flow_lattice_volume(flow, &V));
    CHECK(V == 16);

    /* training */
    eqflow_train_stats ts;
    memset(&ts, 0, sizeof ts);
    EXPECT(eqflow_flow_train(flow, 1, &ts), EQFLOW_STATUS_BAD_STRUCT_SIZE, "eqflow_flow_train", "out_stats");
    ts.struct_size = sizeof ts;
    EXPECT(eqflow_flow_train(NULL, 1, &ts), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_train", "'flow'");
    EXPECT(eqflow_flow_train(flow, 0, &ts), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_train", "n_steps");
    CHECK(ts.steps_done == 0);
    OK(eqflow_flow_train(flow, 2, &ts));
    CHECK(ts.steps_done == 2 && isfinite(ts.loss) && ts.ess > 0.0 && ts.ess <= 1.0 && ts.seconds >= 0.0);
    printf("RESULT train %.17g %.17g\n", ts.loss, ts.ess);

    /* sampling: short buffers, NULL with a length, outputs untouched on failure */
    enum { N = 3 };
    double phi[N * 16], lq[N], act[N];
    for (int i = 0; i < N * 16; i++) phi[i] = 12345.0;
    EXPECT(eqflow_flow_sample(flow, N, phi, N * 16 - 1, lq, N, act, N), EQFLOW_STATUS_BAD_LENGTH,
           "eqflow_flow_sample", "'phi'");
    EXPECT(eqflow_flow_sample(flow, N, phi, N * 16, lq, N - 1, act, N), EQFLOW_STATUS_BAD_LENGTH,
           "eqflow_flow_sample", "'log_q'");
    EXPECT(eqflow_flow_sample(flow, N, phi, N * 16, lq, N, NULL, N), EQFLOW_STATUS_NULL_POINTER,
           "eqflow_flow_sample", "'action'");
    EXPECT(eqflow_flow_sample(flow, (size_t)-1, phi, N * 16, lq, N, act, N), EQFLOW_STATUS_OUT_OF_MEMORY,
           "eqflow_flow_sample", "overflows");
    CHECK(phi[0] == 12345.0);
    OK(eqflow_flow_sample(flow, N, phi, N * 16, lq, N, act, N));
    double sum = 0.0;
    for (int i = 0; i < N * 16; i++) sum += phi[i];
    printf("RESULT sample %.17g", sum);
    for (int i = 0; i < N; i++) printf(" %.17g %.17g", lq[i], act[i]);
    printf("\n");
    double one_action = 0.0;
    OK(eqflow_flow_sample(flow, 1, NULL, 0, NULL, 0, &one_action, 1)); /* outputs are optional */
    CHECK(one_action > 0.0);

    /* log q of the samples agrees with the sampler's */
    double lq2[N];
    EXPECT(eqflow_flow_log_prob(flow, phi, N * 16 - 1, lq2, N), EQFLOW_STATUS_BAD_LENGTH, "eqflow_flow_log_prob", "phi_len");
    EXPECT(eqflow_flow_log_prob(flow, NULL, N * 16, lq2, N), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_log_prob", "'phi'");
    EXPECT(eqflow_flow_log_prob(flow, phi, N * 16, lq2, N - 1), EQFLOW_STATUS_BAD_LENGTH, "eqflow_flow_log_prob", "'log_q'");
    EXPECT(eqflow_flow_log_prob(flow, phi, N * 16, NULL, 0), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_log_prob", "'log_q'");
    double bad = phi[5];
    phi[5] = INFINITY;
    EXPECT(eqflow_flow_log_prob(flow, phi, N * 16, lq2, N), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_log_prob", "not finite");
    phi[5] = bad;
    OK(eqflow_flow_log_prob(flow, phi, N * 16, lq2, N));
    for (int i = 0; i < N; i++) CHECK(fabs(lq2[i] - lq[i]) < 1e-8 * (1.0 + fabs(lq[i])));

    double ess = -1.0;
    EXPECT(eqflow_flow_ess(flow, 0, &ess), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_ess", "n_samples");
    EXPECT(eqflow_flow_ess(flow, 16, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_ess", "out_ess");
    CHECK(ess == -1.0);
    OK(eqflow_flow_ess(flow, 16, &ess));
    printf("RESULT ess %.17g\n", ess);

    /* chain */
    eqflow_chain *chain = NULL;
    EXPECT(eqflow_chain_new(NULL, 7, &chain), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_new", "'flow'");
    OK(eqflow_chain_new(flow, 7, &chain));
    double st_phi[16], st_lq = 0, st_s = 0;
    EXPECT(eqflow_chain_state(chain, st_phi, 16, &st_lq, &st_s), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_chain_state", "no state");
    enum { STEPS = 5 };
    double cphi[STEPS * 16];
    uint8_t acc[STEPS];
    eqflow_chain_stats cs;
    cs.struct_size = sizeof cs;
    EXPECT(eqflow_chain_step(chain, STEPS, cphi, STEPS * 16, acc, STEPS - 1, &cs), EQFLOW_STATUS_BAD_LENGTH,
           "eqflow_chain_step", "'accepted'");
    cs.struct_size = 3;
    EXPECT(eqflow_chain_step(chain, STEPS, cphi, STEPS * 16, acc, STEPS, &cs), EQFLOW_STATUS_BAD_STRUCT_SIZE,
           "eqflow_chain_step", "out_stats");
    cs.struct_size = sizeof cs;
    OK(eqflow_chain_step(chain, STEPS, cphi, STEPS * 16, acc, STEPS, &cs));
    CHECK(cs.proposed == STEPS && acc[0] == 1);
    printf("RESULT chain %llu %llu", (unsigned long long)cs.proposed, (unsigned long long)cs.accepted);
    for (int i = 0; i < STEPS; i++) printf(" %d", acc[i]);
    printf("\n");
    OK(eqflow_chain_state(chain, st_phi, 16, &st_lq, &st_s));
    CHECK(memcmp(st_phi, cphi + (STEPS - 1) * 16, sizeof st_phi) == 0);
    OK(eqflow_chain_state(chain, NULL, 0, NULL, NULL));
    EXPECT(eqflow_chain_set_state(chain, phi, 15), EQFLOW_STATUS_BAD_LENGTH, "eqflow_chain_set_state", "phi_len");
    EXPECT(eqflow_chain_set_state(chain, NULL, 16), EQFLOW_STATUS_NULL_POINTER, "eqflow_chain_set_state", "'phi'");
    OK(eqflow_chain_set_state(chain, phi, 16));
    OK(eqflow_chain_state(chain, st_phi, 16, &st_lq, &st_s));
    CHECK(memcmp(st_phi, phi, sizeof st_phi) == 0 && fabs(st_lq - lq[0]) < 1e-8 * (1.0 + fabs(lq[0])));
    CHECK(fabs(st_s - act[0]) < 1e-12 * (1.0 + fabs(act[0])));

    /* save / load round trip: the loaded flow continues exactly like the original */
    EXPECT(eqflow_flow_init_from(flow, flow), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_init_from", "same flow");
    EXPECT(eqflow_flow_init_from(flow, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_init_from", "'small'");
    EXPECT(eqflow_flow_save(flow, NULL), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_save", "'path'");
    EXPECT(eqflow_flow_save(flow, ""), EQFLOW_STATUS_INVALID_ARGUMENT, "eqflow_flow_save", "'path'");
    EXPECT(eqflow_flow_save(flow, "/nonexistent-dir/x/y.safetensors"), EQFLOW_STATUS_IO, "eqflow_flow_save", "nonexistent");
    OK(eqflow_flow_save(flow, path));
    eqflow_flow *loaded = NULL;
    EXPECT(eqflow_flow_load(ctx, "/nonexistent-dir/flow", &loaded), EQFLOW_STATUS_IO, "eqflow_flow_load", "nonexistent");
    EXPECT(eqflow_flow_load(NULL, path, &loaded), EQFLOW_STATUS_NULL_POINTER, "eqflow_flow_load", "'ctx'");
    {
        char junk[4096];
        snprintf(junk, sizeof junk, "%s/misuse_junk.safetensors", argv[1]);
        FILE *f = fopen(junk, "wb");
        CHECK(f != NULL);
        if (f) {
            fputs("not a flow", f);
            fclose(f);
        }
        EXPECT(eqflow_flow_load(ctx, junk, &loaded), EQFLOW_STATUS_BAD_FILE, "eqflow_flow_load", "misuse_junk");
    }
    CHECK(loaded == NULL);
    OK(eqflow_flow_load(ctx, path, &loaded));
    double a1[2], a2[2];
    OK(eqflow_flow_sample(flow, 2, NULL, 0, a1, 2, NULL, 0));
    OK(eqflow_flow_sample(loaded, 2, NULL, 0, a2, 2, NULL, 0));
    CHECK(a1[0] == a2[0] && a1[1] == a2[1]);
    eqflow_train_stats t1 = {sizeof t1, 0, 0, 0, 0}, t2 = {sizeof t2, 0, 0, 0, 0};
    OK(eqflow_flow_train(flow, 1, &t1));
    OK(eqflow_flow_train(loaded, 1, &t2));
    CHECK(t1.steps_done == 3 && t2.steps_done == 3 && t1.loss == t2.loss);

    eqflow_chain_free(chain);
    eqflow_flow_free(loaded);
    eqflow_flow_free(flow);
    eqflow_context_free(ctx);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("misuse: all checks passed\n");
    return 0;
}
