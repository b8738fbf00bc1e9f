! eqflow from Fortran: create a flow, train it, sample, run a Metropolis chain, save and load.
!   gfortran -std=f2008 -Wall bindings/fortran/eqflow.f90 examples/fortran/train_sample.f90 \
!     -Ltarget/release -leqflow -Wl,-rpath,$PWD/target/release -o train_sample
program train_sample
  use, intrinsic :: iso_c_binding
  use eqflow
  implicit none
  type(eqflow_context_params) :: cp
  type(eqflow_flow_params) :: fp
  type(eqflow_train_stats) :: ts
  type(eqflow_chain_stats), target :: cs
  type(c_ptr) :: ctx, flow, loaded, chain
  integer(c_size_t) :: v
  integer(c_size_t), parameter :: n = 4
  real(c_double), allocatable, target :: phi(:)
  real(c_double), target :: log_q(n), action(n)
  real(c_double) :: lq2(n), ess
  character(len=*), parameter :: path = 'fortran_flow.safetensors'
  integer :: i

  if (eqflow_backend_available(EQFLOW_BACKEND_CPU) /= 1) stop 1
  call eqflow_context_params_init(cp, c_sizeof(cp))
  call check(eqflow_context_new(cp, ctx))

  call eqflow_flow_params_init(fp, c_sizeof(fp))
  fp%lattice_size = 4
  fp%lambda = 6.975d0
  fp%n_frequencies = 8
  fp%ode_steps = 18
  fp%batch_size = 16
  fp%seed = 2
  call check(eqflow_flow_new(ctx, fp, flow))
  call check(eqflow_flow_lattice_volume(flow, v))

  ts%struct_size = c_sizeof(ts)
  call check(eqflow_flow_train(flow, 5_c_int64_t, ts))
  print '(a,i0,a,f8.4,a,f6.3)', 'trained ', ts%steps_done, ' steps: loss ', ts%loss, ', ESS ', ts%ess

  allocate(phi(n * v))
  call check(eqflow_flow_sample(flow, n, c_loc(phi), n * v, c_loc(log_q), n, c_loc(action), n))
  call check(eqflow_flow_log_prob(flow, phi, n * v, lq2, n))
  do i = 1, int(n)
    if (abs(lq2(i) - log_q(i)) > 1d-8 * (1d0 + abs(log_q(i)))) stop 2
  end do
  print '(a,4f10.4)', 'log q ', log_q

  ! a short buffer is an error with a message, not a crash
  if (eqflow_flow_sample(flow, n, c_loc(phi), n * v - 1, c_null_ptr, 0_c_size_t, c_null_ptr, 0_c_size_t) &
      /= EQFLOW_STATUS_BAD_LENGTH) stop 3
  print '(a,a)', 'expected error: ', eqflow_string(eqflow_last_error_message())

  call check(eqflow_chain_new(flow, 9_c_int64_t, chain))
  cs%struct_size = c_sizeof(cs)
  call check(eqflow_chain_step(chain, 40_c_size_t, c_null_ptr, 0_c_size_t, c_null_ptr, 0_c_size_t, c_loc(cs)))
  print '(a,i0,a,i0)', 'metropolis accepted ', cs%accepted, ' of ', cs%proposed

  call check(eqflow_flow_save(flow, path // c_null_char))
  call check(eqflow_flow_load(ctx, path // c_null_char, loaded))
  call check(eqflow_flow_ess(loaded, 32_c_size_t, ess))
  print '(a,f6.3)', 'loaded flow ESS ', ess

  call eqflow_chain_free(chain)
  call eqflow_flow_free(loaded)
  call eqflow_flow_free(flow)
  call eqflow_context_free(ctx)
  print '(a)', 'train_sample: ok'

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
