! The Fortran interfaces of the newer C functions and struct fields (bindings/fortran/eqflow.f90):
! a flow in Fortran order (EQFLOW_LAYOUT_X0_FASTEST: phi(x0, x1) is a plain L x L array) and
! hopping variables, float samples, chain_run with flips, chain observables, chain save/load,
! reweighting, HMC and eqflow_observables_compute. Run by tests/c_abi.rs where gfortran exists.
program new_api
  use, intrinsic :: iso_c_binding
  use eqflow
  implicit none
  integer, parameter :: L = 4, n = 3
  integer(c_size_t), parameter :: V = L * L
  type(eqflow_context_params) :: cp
  type(eqflow_flow_params) :: fp
  type(eqflow_train_stats) :: ts
  type(eqflow_chain_stats), target :: cs, cs2
  type(eqflow_observables) :: ob, ob2
  type(eqflow_reweighted) :: rw
  type(eqflow_hmc_params) :: hp
  type(c_ptr) :: ctx, fa, fb, fc, chain, loaded, hmc, missing
  real(c_double), target :: phi_a(V, n), phi_c(V, n), lq_a(n), lq_b(n), s_a(n), s_b(n)
  real(c_float), target :: phi_b(V, n)
  real(c_double), target :: saved(V, 5), run1(V, 20), run2(V, 20), hphi(V, 200), acc
  real(c_double) :: field(0:L-1, 0:L-1), state(V), lq, act
  character(len=*), parameter :: path = 'fortran_chain.safetensors'
  integer :: i, x0, x1

  call eqflow_context_params_init(cp, c_sizeof(cp))
  call check(eqflow_context_new(cp, ctx))

  ! hopping form on the m2 = -4 line, fields in Fortran order
  call eqflow_flow_params_init(fp, c_sizeof(fp))
  if (fp%layout /= EQFLOW_LAYOUT_X1_FASTEST .or. fp%couplings_form /= EQFLOW_COUPLINGS_STANDARD) stop 10
  fp%lattice_size = L
  fp%n_frequencies = 4
  fp%ode_steps = 9
  fp%batch_size = 8
  fp%seed = 3
  fp%couplings_form = EQFLOW_COUPLINGS_HOPPING
  fp%kappa = sqrt(0.5d0 / 6.975d0)
  fp%lambda_tilde = 0.5d0
  call check(eqflow_flow_new(ctx, fp, fc))            ! C order
  fp%layout = EQFLOW_LAYOUT_X0_FASTEST
  call check(eqflow_flow_new(ctx, fp, fa))
  call check(eqflow_flow_new(ctx, fp, fb))
  ts%struct_size = c_sizeof(ts)
  call check(eqflow_flow_train(fa, 2_c_int64_t, ts))
  call check(eqflow_flow_train(fb, 2_c_int64_t, ts))
  call check(eqflow_flow_train(fc, 2_c_int64_t, ts))

  call check(eqflow_flow_sample(fa, int(n, c_size_t), c_loc(phi_a), n * V, c_loc(lq_a), int(n, c_size_t), &
                                c_loc(s_a), int(n, c_size_t)))
  call check(eqflow_flow_sample_float(fb, int(n, c_size_t), c_loc(phi_b), n * V, c_loc(lq_b), int(n, c_size_t), &
                                      c_loc(s_b), int(n, c_size_t)))
  call check(eqflow_flow_sample(fc, int(n, c_size_t), c_loc(phi_c), n * V, c_null_ptr, 0_c_size_t, &
                                c_null_ptr, 0_c_size_t))
  if (any(phi_b /= real(phi_a, c_float)) .or. any(lq_b /= lq_a) .or. any(s_b /= s_a)) stop 11
  ! Fortran order: field(x0, x1) of flow a is element x0*L + x1 of the C-order flow's field
  do i = 1, n
    field = reshape(phi_a(:, i), [L, L])
    do x0 = 0, L - 1
      do x1 = 0, L - 1
        if (field(x0, x1) /= phi_c(x0 * L + x1 + 1, i)) stop 12
      end do
    end do
  end do
  print '(a,f10.4,a,f10.4)', 'float samples and Fortran order ok; log q ', lq_a(1), ', S_hop ', s_a(1)

  ! a chain with flips, in bounded memory, with its observables
  call check(eqflow_chain_new(fa, 5_c_int64_t, chain))
  call check(eqflow_chain_set_flip(chain, 1_c_int32_t))
  cs%struct_size = c_sizeof(cs)
  call check(eqflow_chain_run(chain, 40_c_size_t, 8_c_size_t, c_loc(saved), 5 * V, c_loc(cs)))
  if (cs%proposed /= 40 .or. cs%measured /= 40 .or. cs%flips_proposed < 1 .or. &
      cs%flips_accepted /= cs%flips_proposed .or. cs%non_finite /= 0) stop 13
  call check(eqflow_chain_state(chain, state, V, lq, act))
  if (any(state /= saved(:, 5))) stop 14
  ob%struct_size = c_sizeof(ob)
  call check(eqflow_chain_observables(chain, ob))
  if (ob%n /= 40 .or. .not. (ob%chi2_err > 0d0)) stop 15
  print '(a,i0,a,i0,a,f8.4,a,f8.4,a)', 'chain: ', cs%flips_accepted, ' of ', cs%flips_proposed, &
    ' flips; chi2 ', ob%chi2, ' (', ob%chi2_err, ')'

  ! save -> load -> continue bit for bit
  call check(eqflow_chain_save(chain, path // c_null_char))
  call check(eqflow_chain_load(ctx, path // c_null_char, loaded))
  call check(eqflow_chain_run(chain, 20_c_size_t, 1_c_size_t, c_loc(run1), 20 * V, c_null_ptr))
  call check(eqflow_chain_run(loaded, 20_c_size_t, 1_c_size_t, c_loc(run2), 20 * V, c_null_ptr))
  if (any(run1 /= run2)) stop 16
  ob2%struct_size = c_sizeof(ob2)
  call check(eqflow_chain_observables(loaded, ob2))
  if (ob2%n /= 60) stop 17
  call check(eqflow_chain_reset_observables(loaded))
  cs2%struct_size = c_sizeof(cs2)
  call check(eqflow_chain_step(loaded, 0_c_size_t, c_null_ptr, 0_c_size_t, c_null_ptr, 0_c_size_t, c_loc(cs2)))
  if (cs2%measured /= 0 .or. cs2%proposed /= 60) stop 18
  if (eqflow_chain_load(ctx, 'missing.safetensors' // c_null_char, missing) /= EQFLOW_STATUS_IO) stop 19

  ! reweighting
  rw%struct_size = c_sizeof(rw)
  call check(eqflow_flow_reweight(fa, 64_c_size_t, 0d0, rw))
  if (rw%n /= 64 .or. .not. (rw%ess > 0d0 .and. rw%ess <= 1d0)) stop 20
  if (eqflow_flow_reweight(fa, 1_c_size_t, 0d0, rw) /= EQFLOW_STATUS_INVALID_ARGUMENT) stop 21
  print '(a,f8.4,a,f8.4,a)', 'reweighted <|M|> ', rw%abs_m, ' (', rw%abs_m_err, ')'

  ! HMC and the observables of given fields
  call eqflow_hmc_params_init(hp, c_sizeof(hp))
  hp%lattice_size = L
  hp%lambda = 6.975d0
  hp%seed = 4
  call check(eqflow_hmc_new(hp, c_null_ptr, 0_c_size_t, hmc))
  call check(eqflow_hmc_run(hmc, 200_c_size_t, c_loc(hphi), 200 * V, c_null_ptr, 0_c_size_t, c_loc(acc)))
  call check(eqflow_observables_compute(int(L, c_int32_t), hphi, 200 * V, ob))
  if (ob%n /= 200 .or. .not. (acc > 0d0)) stop 22
  call check(eqflow_hmc_state(hmc, state, V))
  if (any(state /= hphi(:, 200))) stop 23
  call check(eqflow_hmc_set_state(hmc, state, V))
  print '(a,f6.3,a,f8.4)', 'hmc acceptance ', acc, ', chi2 ', ob%chi2

  ! RealNVP through the same functions (the appended flow_type/warmup_steps fields): a
  ! continuous-flow field with RealNVP is refused, log q by the inverse matches the samples'
  call eqflow_flow_params_init(fp, c_sizeof(fp))
  if (fp%flow_type /= EQFLOW_FLOW_CONTINUOUS .or. fp%warmup_steps /= 0) stop 30
  fp%lattice_size = L
  fp%batch_size = 8
  fp%learning_rate = 1d-3
  fp%flow_type = EQFLOW_FLOW_REALNVP
  fp%warmup_steps = 2
  fp%n_frequencies = 4
  if (eqflow_flow_new(ctx, fp, fb) /= EQFLOW_STATUS_INVALID_ARGUMENT) stop 31
  fp%n_frequencies = 0
  call eqflow_flow_free(fb)
  call check(eqflow_flow_new(ctx, fp, fb))
  call check(eqflow_flow_train(fb, 3_c_int64_t, ts))
  if (ts%steps_done /= 3) stop 32
  call check(eqflow_flow_restart_schedule(fb, 1d-4, 0d0, 0_c_int64_t))
  if (eqflow_flow_restart_schedule(fb, -1d0, 0d0, 0_c_int64_t) /= EQFLOW_STATUS_INVALID_ARGUMENT) stop 34
  call check(eqflow_flow_train(fb, 1_c_int64_t, ts))
  if (ts%steps_done /= 4) stop 35
  if (eqflow_flow_set_gradient(fb, EQFLOW_GRADIENT_PATH) /= EQFLOW_STATUS_INVALID_ARGUMENT) stop 36
  call check(eqflow_flow_sample(fb, int(n, c_size_t), c_loc(phi_a), n * V, c_loc(lq_a), int(n, c_size_t), &
                                c_null_ptr, 0_c_size_t))
  call check(eqflow_flow_log_prob(fb, phi_a, n * V, lq_b, int(n, c_size_t)))
  if (maxval(abs(lq_b - lq_a)) > 1d-9 * maxval(abs(lq_a))) stop 33
  print '(a,es10.2)', 'realnvp: log q by the inverse agrees to ', maxval(abs(lq_b - lq_a))

  call eqflow_hmc_free(hmc)
  call eqflow_chain_free(loaded)
  call eqflow_chain_free(chain)
  call eqflow_flow_free(fa)
  call eqflow_flow_free(fb)
  call eqflow_flow_free(fc)
  call eqflow_context_free(ctx)
  print '(a)', 'new_api: ok'

contains

  subroutine check(status)
    integer(c_int32_t), intent(in) :: status
    if (status /= EQFLOW_STATUS_OK) then
      print '(a,a,a,a)', 'eqflow error ', eqflow_string(eqflow_status_name(status)), ': ', &
        eqflow_string(eqflow_last_error_message())
      stop 1
    end if
  end subroutine

end program
