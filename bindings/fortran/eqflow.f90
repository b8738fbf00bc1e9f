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
