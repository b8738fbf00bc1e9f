/* HMC and observables from C: the reference sampler reproduces chi2 at L = 6 (seed Table 1:
 * 1.064(1) from an independent HMC) within its own Gamma-method error, and misuse gives
 * statuses, not crashes. */
#include "eqflow.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call) do { eqflow_status st_ = (call); if (st_ != EQFLOW_STATUS_OK) { \
    printf("FAIL %s: %s (%s)\n", #call, eqflow_status_name(st_), eqflow_last_error_message()); return 1; } } while (0)
#define EXPECT(call, want) do { eqflow_status st_ = (call); if (st_ != (want)) { \
    printf("FAIL %s gave %s, expected %s\n", #call, eqflow_status_name(st_), eqflow_status_name(want)); return 1; } } while (0)

int main(void) {
    eqflow_hmc_params hp;
    eqflow_hmc_params_init(&hp, sizeof hp);
    hp.lattice_size = 6; hp.m2 = -4.0; hp.lambda = 6.975; hp.step_size = 0.1; hp.n_leapfrog = 10; hp.seed = 9;
    eqflow_hmc *hmc = NULL;
    EXPECT(eqflow_hmc_new(&hp, NULL, 5, &hmc), EQFLOW_STATUS_NULL_POINTER);
    CHECK(eqflow_hmc_new(&hp, NULL, 0, &hmc));
    const size_t V = 36, N = 30000;
    double acc = 0.0;
    CHECK(eqflow_hmc_run(hmc, 500, NULL, 0, NULL, 0, &acc)); /* thermalise */
    double *phi = malloc(N * V * sizeof *phi);
    uint8_t *flags = malloc(N);
    if (!phi || !flags) return 1;
    EXPECT(eqflow_hmc_run(hmc, N, phi, N * V - 1, NULL, 0, NULL), EQFLOW_STATUS_BAD_LENGTH);
    CHECK(eqflow_hmc_run(hmc, N, phi, N * V, flags, N, &acc));
    eqflow_observables ob = {0};
    ob.struct_size = sizeof ob;
    CHECK(eqflow_observables_compute(6, phi, N * V, &ob));
    double dev = fabs(ob.chi2 - 1.064) / sqrt(ob.chi2_err * ob.chi2_err + 0.001 * 0.001);
    printf("HMC L=6: acceptance %.3f, chi2 %.4f(%.4f), L*m_p %.3f(%.3f), tau_int |M| %.2f, %.1f sigma from 1.064\n",
           acc, ob.chi2, ob.chi2_err, ob.l_m_p, ob.l_m_p_err, ob.tau_int_abs_m, dev);
    if (!(dev < 4.0) || !(ob.chi2_err > 0.0) || ob.n != N) { printf("FAIL: chi2 off\n"); return 1; }
    EXPECT(eqflow_observables_compute(6, phi, 5 * V, &ob), EQFLOW_STATUS_INVALID_ARGUMENT); /* < 10 configs */
    EXPECT(eqflow_observables_compute(6, phi, N * V - 1, &ob), EQFLOW_STATUS_BAD_LENGTH);
    EXPECT(eqflow_observables_compute(1, phi, V, &ob), EQFLOW_STATUS_INVALID_ARGUMENT);
    EXPECT(eqflow_observables_compute(6, phi, N * V, NULL), EQFLOW_STATUS_NULL_POINTER);
    eqflow_observables bad = ob;
    bad.struct_size = 3;
    EXPECT(eqflow_observables_compute(6, phi, N * V, &bad), EQFLOW_STATUS_BAD_STRUCT_SIZE);
    double s[36];
    CHECK(eqflow_hmc_state(hmc, s, 36));
    s[0] = NAN;
    EXPECT(eqflow_hmc_set_state(hmc, s, 36), EQFLOW_STATUS_INVALID_ARGUMENT);
    EXPECT(eqflow_hmc_set_state(hmc, s, 35), EQFLOW_STATUS_BAD_LENGTH);
    eqflow_hmc_free(hmc);
    eqflow_hmc_free(NULL);
    free(phi);
    free(flags);
    printf("hmc_observables: ok\n");
    return 0;
}
