/* A flow used from two threads at once: the second caller gets EQFLOW_STATUS_BUSY (never a
 * crash or a wait), and the flow works normally afterwards. Separate chains over one flow may
 * run in two threads at once. */
#include "eqflow.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

static eqflow_flow *flow;
static atomic_int done;
static long trainer_busy;

/* trains, retrying while the other thread holds the flow */
static void *trainer(void *arg) {
    eqflow_train_stats ts;
    ts.struct_size = sizeof ts;
    eqflow_status st;
    while ((st = eqflow_flow_train(flow, 40, &ts)) == EQFLOW_STATUS_BUSY) trainer_busy++;
    *(eqflow_status *)arg = st;
    atomic_store(&done, 1);
    return NULL;
}

static void *chain_runner(void *arg) {
    eqflow_chain *c = (eqflow_chain *)arg;
    eqflow_chain_stats cs;
    cs.struct_size = sizeof cs;
    return eqflow_chain_step(c, 200, NULL, 0, NULL, 0, &cs) == EQFLOW_STATUS_OK ? arg : NULL;
}

int main(void) {
    eqflow_context_params cp;
    eqflow_context_params_init(&cp, sizeof cp);
    eqflow_context *ctx = NULL;
    if (eqflow_context_new(&cp, &ctx)) return 1;
    eqflow_flow_params fp;
    eqflow_flow_params_init(&fp, sizeof fp);
    fp.lattice_size = 6; fp.m2 = -4.0; fp.lambda = 6.975; fp.n_frequencies = 8; fp.ode_steps = 18;
    fp.batch_size = 32;
    if (eqflow_flow_new(ctx, &fp, &flow)) return 1;

    pthread_t t;
    eqflow_status train_status = -1;
    if (pthread_create(&t, NULL, trainer, &train_status)) return 1;
    long busy = 0, ok = 0, other = 0;
    while (!atomic_load(&done)) {
        double ess = 0.0;
        eqflow_status st = eqflow_flow_ess(flow, 1, &ess);
        if (st == EQFLOW_STATUS_BUSY) busy++;
        else if (st == EQFLOW_STATUS_OK) ok++;
        else other++;
    }
    pthread_join(t, NULL);
    printf("concurrent calls: %ld BUSY, %ld OK, %ld other; trainer: %s after %ld BUSY\n", busy, ok, other,
           eqflow_status_name(train_status), trainer_busy);
    if (busy + trainer_busy == 0 || other != 0 || train_status != EQFLOW_STATUS_OK) { printf("FAIL\n"); return 1; }
    double ess = 0.0;
    if (eqflow_flow_ess(flow, 8, &ess) != EQFLOW_STATUS_OK) { printf("FAIL: flow unusable after contention\n"); return 1; }

    /* two chains over the same flow, one per thread */
    eqflow_chain *a = NULL, *b = NULL;
    if (eqflow_chain_new(flow, 1, &a) || eqflow_chain_new(flow, 2, &b)) return 1;
    pthread_t ta, tb;
    void *ra = NULL, *rb = NULL;
    pthread_create(&ta, NULL, chain_runner, a);
    pthread_create(&tb, NULL, chain_runner, b);
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    if (ra != a || rb != b) { printf("FAIL: parallel chains\n"); return 1; }
    eqflow_chain_free(a);
    eqflow_chain_free(b);
    eqflow_flow_free(flow);
    eqflow_context_free(ctx);
    printf("threads: ok\n");
    return 0;
}
