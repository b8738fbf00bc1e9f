! eqflow.f90: Fortran 2008 (iso_c_binding) interface to the C API in include/eqflow.h.
! Handles are type(c_ptr); parameter structs are bind(C) types with the C layout; every
! function returns an eqflow status (0 = EQFLOW_STATUS_OK). The constants mirror eqflow.h
! (tests/c_abi.rs checks every #define of the header against this file).
! Strings passed to the library end in c_null_char: trim(path)//c_null_char.
module eqflow
  use, intrinsic :: iso_c_binding
  implicit none
  private :: c_strlen

  integer(c_int32_t), parameter :: EQFLOW_STATUS_OK = 0
  integer(c_int32_t), parameter :: EQFLOW_STATUS_INVALID_ARGUMENT = 100
  integer(c_int32_t), parameter :: EQFLOW_STATUS_NULL_POINTER = 101
  integer(c_int32_t), parameter :: EQFLOW_STATUS_BAD_LENGTH = 102
  integer(c_int32_t), parameter :: EQFLOW_STATUS_BAD_STRUCT_SIZE = 103
  integer(c_int32_t), parameter :: EQFLOW_STATUS_BUSY = 104
  integer(c_int32_t), parameter :: EQFLOW_STATUS_IO = 105
  integer(c_int32_t), parameter :: EQFLOW_STATUS_BAD_FILE = 106
  integer(c_int32_t), parameter :: EQFLOW_STATUS_MISMATCH = 107
  integer(c_int32_t), parameter :: EQFLOW_STATUS_OUT_OF_MEMORY = 108
  integer(c_int32_t), parameter :: EQFLOW_STATUS_POISONED = 109
  integer(c_int32_t), parameter :: EQFLOW_STATUS_CALLBACK = 110
  integer(c_int32_t), parameter :: EQFLOW_STATUS_NO_DEVICE = 200
  integer(c_int32_t), parameter :: EQFLOW_STATUS_DEVICE = 201
  integer(c_int32_t), parameter :: EQFLOW_STATUS_NON_FINITE = 300
  integer(c_int32_t), parameter :: EQFLOW_STATUS_NO_CONVERGENCE = 301
  integer(c_int32_t), parameter :: EQFLOW_STATUS_PANIC = 900
  integer(c_int32_t), parameter :: EQFLOW_STATUS_INTERNAL = 901
  integer(c_int32_t), parameter :: EQFLOW_BACKEND_CPU = 0
  integer(c_int32_t), parameter :: EQFLOW_BACKEND_CUDA = 1
  integer(c_int32_t), parameter :: EQFLOW_ARCH_SEED = 0
  integer(c_int32_t), parameter :: EQFLOW_ARCH_REFINED = 1
  integer(c_int32_t), parameter :: EQFLOW_FROM_PRESET = 0
  integer(c_int32_t), parameter :: EQFLOW_SYMMETRY_FULL = 1
  integer(c_int32_t), parameter :: EQFLOW_SYMMETRY_TRANSLATIONS = 2
  integer(c_int32_t), parameter :: EQFLOW_FEATURES_ODD = 1
  integer(c_int32_t), parameter :: EQFLOW_FEATURES_NON_ODD = 2
  integer(c_int32_t), parameter :: EQFLOW_PRECISION_F64 = 0
  integer(c_int32_t), parameter :: EQFLOW_PRECISION_F32 = 1
  integer(c_int32_t), parameter :: EQFLOW_LAYOUT_X1_FASTEST = 0   ! index = x0*L + x1 (C order)
  integer(c_int32_t), parameter :: EQFLOW_LAYOUT_X0_FASTEST = 1   ! index = x1*L + x0: phi(0:L-1, 0:L-1) as phi(x0, x1)
  integer(c_int32_t), parameter :: EQFLOW_LAYOUT_EVEN_ODD = 2     ! even sites first, then odd, each x1 fastest
  integer(c_int32_t), parameter :: EQFLOW_COUPLINGS_STANDARD = 0  ! (m2, lambda)
  integer(c_int32_t), parameter :: EQFLOW_FLOW_CONTINUOUS = 0   ! the equivariant continuous flow
  integer(c_int32_t), parameter :: EQFLOW_FLOW_REALNVP = 1      ! the RealNVP baseline
  integer(c_int32_t), parameter :: EQFLOW_GRADIENT_TOTAL = 0    ! training gradient: total derivative
  integer(c_int32_t), parameter :: EQFLOW_GRADIENT_PATH = 1     ! training gradient: path gradient
  integer(c_int32_t), parameter :: EQFLOW_COUPLINGS_HOPPING = 1   ! (kappa, lambda_tilde); fields phi/sqrt(kappa)

  type, bind(C) :: eqflow_context_params
    integer(c_size_t) :: struct_size
    integer(c_int32_t) :: backend
    integer(c_int32_t) :: device
    integer(c_int32_t) :: threads
  end type

  type, bind(C) :: eqflow_flow_params
    integer(c_size_t) :: struct_size
    integer(c_int32_t) :: lattice_size
    real(c_double) :: m2
    real(c_double) :: lambda
    integer(c_int32_t) :: n_frequencies
    integer(c_int32_t) :: time_kernel_size
    integer(c_int32_t) :: ode_steps
    integer(c_int32_t) :: symmetry
    integer(c_int32_t) :: features
    integer(c_int32_t) :: batch_size
    real(c_double) :: learning_rate
    integer(c_int64_t) :: seed          ! uint64_t in C
    integer(c_int32_t) :: architecture
    integer(c_int32_t) :: precision
    ! appended in version 2 (a version-1 caller sets struct_size to the offset of layout)
    integer(c_int32_t) :: layout         ! EQFLOW_LAYOUT_*
    integer(c_int32_t) :: couplings_form ! EQFLOW_COUPLINGS_*
    real(c_double) :: kappa
    real(c_double) :: lambda_tilde
    ! appended in version 3 (a version-2 caller sets struct_size to the offset of flow_type)
    integer(c_int32_t) :: flow_type      ! EQFLOW_FLOW_*
    integer(c_int32_t) :: warmup_steps   ! linear learning-rate warm-up steps
    ! appended in version 4 (a version-3 caller sets struct_size to the offset of micro_batch)
    integer(c_int32_t) :: micro_batch      ! gradient accumulation: fields per micro-batch (0: all)
    integer(c_int32_t) :: coarse_ode_steps ! RK4 steps of the first coarse_steps training steps (0: none)
    integer(c_int32_t) :: coarse_steps
  end type

  type, bind(C) :: eqflow_train_stats
    integer(c_size_t) :: struct_size
    integer(c_int64_t) :: steps_done    ! uint64_t in C
    real(c_double) :: loss
    real(c_double) :: ess
    real(c_double) :: seconds
  end type

  type, bind(C) :: eqflow_chain_stats
    integer(c_size_t) :: struct_size
    integer(c_int64_t) :: proposed      ! uint64_t in C
    integer(c_int64_t) :: accepted      ! uint64_t in C
    real(c_double) :: acceptance
    ! appended in version 2
    integer(c_int64_t) :: non_finite      ! uint64_t in C
    integer(c_int64_t) :: flips_proposed  ! uint64_t in C
    integer(c_int64_t) :: flips_accepted  ! uint64_t in C
    integer(c_int64_t) :: measured        ! uint64_t in C
  end type

  ! Observables with errors (eqflow_chain_observables, eqflow_observables_compute); set
  ! struct_size = c_sizeof(ob) before the call.
  type, bind(C) :: eqflow_observables
    integer(c_size_t) :: struct_size
    integer(c_int64_t) :: n             ! uint64_t in C
    real(c_double) :: abs_m
    real(c_double) :: abs_m_err
    real(c_double) :: chi2
    real(c_double) :: chi2_err
    real(c_double) :: l_m_p
    real(c_double) :: l_m_p_err
    real(c_double) :: xi
    real(c_double) :: xi_err
    real(c_double) :: binder
    real(c_double) :: binder_err
    real(c_double) :: tau_int_abs_m
    real(c_double) :: tau_int_chi2
  end type

  ! Reweighted estimates of eqflow_flow_reweight; set struct_size = c_sizeof(rw) before the call.
  type, bind(C) :: eqflow_reweighted
    integer(c_size_t) :: struct_size
    integer(c_int64_t) :: n             ! uint64_t in C
    real(c_double) :: ess
    real(c_double) :: log_z
    real(c_double) :: log_z_err
    real(c_double) :: m
    real(c_double) :: m_err
    real(c_double) :: abs_m
    real(c_double) :: abs_m_err
    real(c_double) :: chi2
    real(c_double) :: chi2_err
    real(c_double) :: binder
    real(c_double) :: binder_err
    real(c_double) :: l_m_p
    real(c_double) :: l_m_p_err
    real(c_double) :: ess_err           ! the jackknife error of ess
  end type

  type, bind(C) :: eqflow_hmc_params
    integer(c_size_t) :: struct_size
    integer(c_int32_t) :: lattice_size
    real(c_double) :: m2
    real(c_double) :: lambda
    real(c_double) :: step_size
    integer(c_int32_t) :: n_leapfrog
    integer(c_int64_t) :: seed          ! uint64_t in C
  end type

  interface
    function eqflow_version_hex() bind(C, name="eqflow_version_hex")
      import :: c_int32_t
      integer(c_int32_t) :: eqflow_version_hex
    end function
    function eqflow_version_string() bind(C, name="eqflow_version_string")
      import :: c_ptr
      type(c_ptr) :: eqflow_version_string
    end function
    function eqflow_status_name(status) bind(C, name="eqflow_status_name")
      import :: c_ptr, c_int32_t
      integer(c_int32_t), value :: status
      type(c_ptr) :: eqflow_status_name
    end function
    function eqflow_last_error_message() bind(C, name="eqflow_last_error_message")
      import :: c_ptr
      type(c_ptr) :: eqflow_last_error_message
    end function
    function eqflow_backend_available(backend) bind(C, name="eqflow_backend_available")
      import :: c_int32_t
      integer(c_int32_t), value :: backend
      integer(c_int32_t) :: eqflow_backend_available
    end function

    subroutine eqflow_context_params_init(p, struct_size) bind(C, name="eqflow_context_params_init")
      import :: eqflow_context_params, c_size_t
      type(eqflow_context_params), intent(inout) :: p
      integer(c_size_t), value :: struct_size
    end subroutine
    function eqflow_context_new(p, out) bind(C, name="eqflow_context_new")
      import :: eqflow_context_params, c_ptr, c_int32_t
      type(eqflow_context_params), intent(in) :: p
      type(c_ptr), intent(out) :: out
      integer(c_int32_t) :: eqflow_context_new
    end function
    subroutine eqflow_context_free(ctx) bind(C, name="eqflow_context_free")
      import :: c_ptr
      type(c_ptr), value :: ctx
    end subroutine

    subroutine eqflow_flow_params_init(p, struct_size) bind(C, name="eqflow_flow_params_init")
      import :: eqflow_flow_params, c_size_t
      type(eqflow_flow_params), intent(inout) :: p
      integer(c_size_t), value :: struct_size
    end subroutine
    function eqflow_flow_new(ctx, p, out) bind(C, name="eqflow_flow_new")
      import :: eqflow_flow_params, c_ptr, c_int32_t
      type(c_ptr), value :: ctx
      type(eqflow_flow_params), intent(in) :: p
      type(c_ptr), intent(out) :: out
      integer(c_int32_t) :: eqflow_flow_new
    end function
    subroutine eqflow_flow_free(flow) bind(C, name="eqflow_flow_free")
      import :: c_ptr
      type(c_ptr), value :: flow
    end subroutine
    function eqflow_flow_lattice_volume(flow, out_volume) bind(C, name="eqflow_flow_lattice_volume")
      import :: c_ptr, c_size_t, c_int32_t
      type(c_ptr), value :: flow
      integer(c_size_t), intent(out) :: out_volume
      integer(c_int32_t) :: eqflow_flow_lattice_volume
    end function
    function eqflow_flow_train(flow, n_steps, out_stats) bind(C, name="eqflow_flow_train")
      import :: c_ptr, c_int64_t, c_int32_t, eqflow_train_stats
      type(c_ptr), value :: flow
      integer(c_int64_t), value :: n_steps
      type(eqflow_train_stats), intent(inout) :: out_stats
      integer(c_int32_t) :: eqflow_flow_train
    end function
    ! phi, log_q, action: c_loc of arrays, or c_null_ptr with length 0
    function eqflow_flow_sample(flow, n, phi, phi_len, log_q, log_q_len, action, action_len) &
        bind(C, name="eqflow_flow_sample")
      import :: c_ptr, c_size_t, c_int32_t
      type(c_ptr), value :: flow
      integer(c_size_t), value :: n
      type(c_ptr), value :: phi
      integer(c_size_t), value :: phi_len
      type(c_ptr), value :: log_q
      integer(c_size_t), value :: log_q_len
      type(c_ptr), value :: action
      integer(c_size_t), value :: action_len
      integer(c_int32_t) :: eqflow_flow_sample
    end function
    ! eqflow_flow_sample with a real(c_float) field buffer (phi: c_loc of a real(c_float) array)
    function eqflow_flow_sample_float(flow, n, phi, phi_len, log_q, log_q_len, action, action_len) &
        bind(C, name="eqflow_flow_sample_float")
      import :: c_ptr, c_size_t, c_int32_t
      type(c_ptr), value :: flow
      integer(c_size_t), value :: n
      type(c_ptr), value :: phi
      integer(c_size_t), value :: phi_len
      type(c_ptr), value :: log_q
      integer(c_size_t), value :: log_q_len
      type(c_ptr), value :: action
      integer(c_size_t), value :: action_len
      integer(c_int32_t) :: eqflow_flow_sample_float
    end function
    function eqflow_flow_reweight(flow, n_samples, delta_lambda, out) bind(C, name="eqflow_flow_reweight")
      import :: c_ptr, c_size_t, c_int32_t, c_double, eqflow_reweighted
      type(c_ptr), value :: flow
      integer(c_size_t), value :: n_samples
      real(c_double), value :: delta_lambda
      type(eqflow_reweighted), intent(inout) :: out
      integer(c_int32_t) :: eqflow_flow_reweight
    end function
    function eqflow_flow_log_prob(flow, phi, phi_len, log_q, log_q_len) bind(C, name="eqflow_flow_log_prob")
      import :: c_ptr, c_size_t, c_int32_t, c_double
      type(c_ptr), value :: flow
      real(c_double), intent(in) :: phi(*)
      integer(c_size_t), value :: phi_len
      real(c_double), intent(out) :: log_q(*)
      integer(c_size_t), value :: log_q_len
      integer(c_int32_t) :: eqflow_flow_log_prob
    end function
    function eqflow_flow_ess(flow, n_samples, out_ess) bind(C, name="eqflow_flow_ess")
      import :: c_ptr, c_size_t, c_int32_t, c_double
      type(c_ptr), value :: flow
      integer(c_size_t), value :: n_samples
      real(c_double), intent(out) :: out_ess
      integer(c_int32_t) :: eqflow_flow_ess
    end function
    ! action: a bind(C) function (user_data, n_fields, volume, phi, action, force) returning
    ! integer(c_int32_t), passed with c_funloc; c_null_funptr restores the built-in action
    function eqflow_flow_set_action(flow, action, user_data) bind(C, name="eqflow_flow_set_action")
      import :: c_ptr, c_funptr, c_int32_t
      type(c_ptr), value :: flow
      type(c_funptr), value :: action
      type(c_ptr), value :: user_data
      integer(c_int32_t) :: eqflow_flow_set_action
    end function
    function eqflow_flow_init_from(flow, small) bind(C, name="eqflow_flow_init_from")
      import :: c_ptr, c_int32_t
      type(c_ptr), value :: flow
      type(c_ptr), value :: small
      integer(c_int32_t) :: eqflow_flow_init_from
    end function
    function eqflow_flow_restart_schedule(flow, learning_rate, decay_steps, warmup_steps) &
        bind(C, name="eqflow_flow_restart_schedule")
      import :: c_ptr, c_double, c_int64_t, c_int32_t
      type(c_ptr), value :: flow
      real(c_double), value :: learning_rate, decay_steps
      integer(c_int64_t), value :: warmup_steps
      integer(c_int32_t) :: eqflow_flow_restart_schedule
    end function
    function eqflow_flow_set_gradient(flow, gradient) bind(C, name="eqflow_flow_set_gradient")
      import :: c_ptr, c_int32_t
      type(c_ptr), value :: flow
      integer(c_int32_t), value :: gradient
      integer(c_int32_t) :: eqflow_flow_set_gradient
    end function
    function eqflow_flow_save(flow, path) bind(C, name="eqflow_flow_save")
      import :: c_ptr, c_char, c_int32_t
      type(c_ptr), value :: flow
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int32_t) :: eqflow_flow_save
    end function
    function eqflow_flow_load(ctx, path, out) bind(C, name="eqflow_flow_load")
      import :: c_ptr, c_char, c_int32_t
      type(c_ptr), value :: ctx
      character(kind=c_char), intent(in) :: path(*)
      type(c_ptr), intent(out) :: out
      integer(c_int32_t) :: eqflow_flow_load
    end function

    function eqflow_chain_new(flow, seed, out) bind(C, name="eqflow_chain_new")
      import :: c_ptr, c_int64_t, c_int32_t
      type(c_ptr), value :: flow
      integer(c_int64_t), value :: seed
      type(c_ptr), intent(out) :: out
      integer(c_int32_t) :: eqflow_chain_new
    end function
    subroutine eqflow_chain_free(chain) bind(C, name="eqflow_chain_free")
      import :: c_ptr
      type(c_ptr), value :: chain
    end subroutine
    ! phi_out, accepted (integer(c_int8_t) flags), out_stats: c_loc(...) or c_null_ptr
    function eqflow_chain_step(chain, n_steps, phi_out, phi_out_len, accepted, accepted_len, out_stats) &
        bind(C, name="eqflow_chain_step")
      import :: c_ptr, c_size_t, c_int32_t
      type(c_ptr), value :: chain
      integer(c_size_t), value :: n_steps
      type(c_ptr), value :: phi_out
      integer(c_size_t), value :: phi_out_len
      type(c_ptr), value :: accepted
      integer(c_size_t), value :: accepted_len
      type(c_ptr), value :: out_stats
      integer(c_int32_t) :: eqflow_chain_step
    end function
    ! bounded memory: every save_every-th field into phi_out (c_null_ptr with 0 when save_every = 0);
    ! out_stats: c_loc(stats) or c_null_ptr
    function eqflow_chain_run(chain, n_steps, save_every, phi_out, phi_out_len, out_stats) &
        bind(C, name="eqflow_chain_run")
      import :: c_ptr, c_size_t, c_int32_t
      type(c_ptr), value :: chain
      integer(c_size_t), value :: n_steps
      integer(c_size_t), value :: save_every
      type(c_ptr), value :: phi_out
      integer(c_size_t), value :: phi_out_len
      type(c_ptr), value :: out_stats
      integer(c_int32_t) :: eqflow_chain_run
    end function
    function eqflow_chain_lattice_volume(chain, out_volume) bind(C, name="eqflow_chain_lattice_volume")
      import :: c_ptr, c_int32_t, c_size_t
      type(c_ptr), value :: chain
      integer(c_size_t), intent(out) :: out_volume
      integer(c_int32_t) :: eqflow_chain_lattice_volume
    end function
    ! action: as for eqflow_flow_set_action; needed after loading a chain saved with a host action
    function eqflow_chain_set_action(chain, action, user_data) bind(C, name="eqflow_chain_set_action")
      import :: c_ptr, c_funptr, c_int32_t
      type(c_ptr), value :: chain
      type(c_funptr), value :: action
      type(c_ptr), value :: user_data
      integer(c_int32_t) :: eqflow_chain_set_action
    end function
    function eqflow_chain_set_flip(chain, on) bind(C, name="eqflow_chain_set_flip")
      import :: c_ptr, c_int32_t
      type(c_ptr), value :: chain
      integer(c_int32_t), value :: on
      integer(c_int32_t) :: eqflow_chain_set_flip
    end function
    function eqflow_chain_observables(chain, out) bind(C, name="eqflow_chain_observables")
      import :: c_ptr, c_int32_t, eqflow_observables
      type(c_ptr), value :: chain
      type(eqflow_observables), intent(inout) :: out
      integer(c_int32_t) :: eqflow_chain_observables
    end function
    function eqflow_chain_reset_observables(chain) bind(C, name="eqflow_chain_reset_observables")
      import :: c_ptr, c_int32_t
      type(c_ptr), value :: chain
      integer(c_int32_t) :: eqflow_chain_reset_observables
    end function
    function eqflow_chain_save(chain, path) bind(C, name="eqflow_chain_save")
      import :: c_ptr, c_char, c_int32_t
      type(c_ptr), value :: chain
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int32_t) :: eqflow_chain_save
    end function
    function eqflow_chain_load(ctx, path, out) bind(C, name="eqflow_chain_load")
      import :: c_ptr, c_char, c_int32_t
      type(c_ptr), value :: ctx
      character(kind=c_char), intent(in) :: path(*)
      type(c_ptr), intent(out) :: out
      integer(c_int32_t) :: eqflow_chain_load
    end function
    function eqflow_chain_set_state(chain, phi, phi_len) bind(C, name="eqflow_chain_set_state")
      import :: c_ptr, c_size_t, c_int32_t, c_double
      type(c_ptr), value :: chain
      real(c_double), intent(in) :: phi(*)
      integer(c_size_t), value :: phi_len
      integer(c_int32_t) :: eqflow_chain_set_state
    end function
    function eqflow_chain_state(chain, phi, phi_len, log_q, action) bind(C, name="eqflow_chain_state")
      import :: c_ptr, c_size_t, c_int32_t, c_double
      type(c_ptr), value :: chain
      real(c_double), intent(out) :: phi(*)
      integer(c_size_t), value :: phi_len
      real(c_double), intent(out) :: log_q
      real(c_double), intent(out) :: action
      integer(c_int32_t) :: eqflow_chain_state
    end function

    subroutine eqflow_hmc_params_init(p, struct_size) bind(C, name="eqflow_hmc_params_init")
      import :: eqflow_hmc_params, c_size_t
      type(eqflow_hmc_params), intent(inout) :: p
      integer(c_size_t), value :: struct_size
    end subroutine
    ! initial: c_loc of V numbers, or c_null_ptr with 0 (start from phi = 0)
    function eqflow_hmc_new(p, initial, initial_len, out) bind(C, name="eqflow_hmc_new")
      import :: eqflow_hmc_params, c_ptr, c_size_t, c_int32_t
      type(eqflow_hmc_params), intent(in) :: p
      type(c_ptr), value :: initial
      integer(c_size_t), value :: initial_len
      type(c_ptr), intent(out) :: out
      integer(c_int32_t) :: eqflow_hmc_new
    end function
    subroutine eqflow_hmc_free(hmc) bind(C, name="eqflow_hmc_free")
      import :: c_ptr
      type(c_ptr), value :: hmc
    end subroutine
    ! phi_out, accepted (integer(c_int8_t) flags), out_acceptance (real(c_double)): c_loc(...) or c_null_ptr
    function eqflow_hmc_run(hmc, n, phi_out, phi_out_len, accepted, accepted_len, out_acceptance) &
        bind(C, name="eqflow_hmc_run")
      import :: c_ptr, c_size_t, c_int32_t
      type(c_ptr), value :: hmc
      integer(c_size_t), value :: n
      type(c_ptr), value :: phi_out
      integer(c_size_t), value :: phi_out_len
      type(c_ptr), value :: accepted
      integer(c_size_t), value :: accepted_len
      type(c_ptr), value :: out_acceptance
      integer(c_int32_t) :: eqflow_hmc_run
    end function
    function eqflow_hmc_state(hmc, phi, phi_len) bind(C, name="eqflow_hmc_state")
      import :: c_ptr, c_size_t, c_int32_t, c_double
      type(c_ptr), value :: hmc
      real(c_double), intent(out) :: phi(*)
      integer(c_size_t), value :: phi_len
      integer(c_int32_t) :: eqflow_hmc_state
    end function
    function eqflow_hmc_set_state(hmc, phi, phi_len) bind(C, name="eqflow_hmc_set_state")
      import :: c_ptr, c_size_t, c_int32_t, c_double
      type(c_ptr), value :: hmc
      real(c_double), intent(in) :: phi(*)
      integer(c_size_t), value :: phi_len
      integer(c_int32_t) :: eqflow_hmc_set_state
    end function
    ! phi: n configurations of V = lattice_size**2 sites, x1 fastest (C order)
    function eqflow_observables_compute(lattice_size, phi, phi_len, out) bind(C, name="eqflow_observables_compute")
      import :: c_int32_t, c_size_t, c_double, eqflow_observables
      integer(c_int32_t), value :: lattice_size
      real(c_double), intent(in) :: phi(*)
      integer(c_size_t), value :: phi_len
      type(eqflow_observables), intent(inout) :: out
      integer(c_int32_t) :: eqflow_observables_compute
    end function

    function c_strlen(s) bind(C, name="strlen")
      import :: c_ptr, c_size_t
      type(c_ptr), value :: s
      integer(c_size_t) :: c_strlen
    end function
  end interface

contains

  !> A NUL-terminated C string (e.g. eqflow_last_error_message()) as a Fortran string.
  function eqflow_string(p) result(s)
    type(c_ptr), intent(in) :: p
    character(len=:), allocatable :: s
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    if (.not. c_associated(p)) then
      s = ''
      return
    end if
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate(character(len=n) :: s)
    do i = 1, n
      s(i:i) = chars(i)
    end do
  end function

end module eqflow
