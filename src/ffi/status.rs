//! Status codes of the C ABI: the numbers of [`crate::error::Status`], as `#define`s.
//!
//! Groups by hundreds, never renumbered: 1xx caller errors, 2xx device errors,
//! 3xx numerical errors, 9xx internal errors.

use crate::error::Status;
use std::ffi::c_char;

/// The return type of every fallible function: 0 (`EQFLOW_STATUS_OK`) on success,
/// 1xx caller errors, 2xx device errors, 3xx numerical errors, 9xx internal errors.
/// `eqflow_last_error_message()` then names the function and the argument at fault.
pub type eqflow_status = i32;

/// Success.
pub const EQFLOW_STATUS_OK: i32 = 0;
/// An argument is invalid (a value out of range, a non-finite number).
pub const EQFLOW_STATUS_INVALID_ARGUMENT: i32 = 100;
/// A pointer that must not be NULL was NULL.
pub const EQFLOW_STATUS_NULL_POINTER: i32 = 101;
/// A buffer is shorter than the call needs.
pub const EQFLOW_STATUS_BAD_LENGTH: i32 = 102;
/// A struct's `struct_size` is not one this library knows.
pub const EQFLOW_STATUS_BAD_STRUCT_SIZE: i32 = 103;
/// A handle is in use by another thread.
pub const EQFLOW_STATUS_BUSY: i32 = 104;
/// A file could not be read or written.
pub const EQFLOW_STATUS_IO: i32 = 105;
/// A file is corrupt, truncated or of an unknown format version.
pub const EQFLOW_STATUS_BAD_FILE: i32 = 106;
/// A file or configuration does not match (e.g. another lattice size).
pub const EQFLOW_STATUS_MISMATCH: i32 = 107;
/// The operation needs more memory than allowed or available.
pub const EQFLOW_STATUS_OUT_OF_MEMORY: i32 = 108;
/// A handle was poisoned by an earlier internal panic; free it.
pub const EQFLOW_STATUS_POISONED: i32 = 109;
/// A host callback (the custom action of `eqflow_flow_set_action`) returned non-zero.
pub const EQFLOW_STATUS_CALLBACK: i32 = 110;
/// No device of the requested backend is present.
pub const EQFLOW_STATUS_NO_DEVICE: i32 = 200;
/// A device call failed.
pub const EQFLOW_STATUS_DEVICE: i32 = 201;
/// A computation produced a non-finite value.
pub const EQFLOW_STATUS_NON_FINITE: i32 = 300;
/// An iteration did not converge.
pub const EQFLOW_STATUS_NO_CONVERGENCE: i32 = 301;
/// An internal panic was caught at the boundary (a bug: please report it).
pub const EQFLOW_STATUS_PANIC: i32 = 900;
/// Any other internal failure.
pub const EQFLOW_STATUS_INTERNAL: i32 = 901;

/// Every status: (Rust status, C number, C name).
pub(crate) const TABLE: [(Status, i32, &std::ffi::CStr); 18] = [
    (Status::Ok, EQFLOW_STATUS_OK, c"EQFLOW_STATUS_OK"),
    (Status::InvalidArgument, EQFLOW_STATUS_INVALID_ARGUMENT, c"EQFLOW_STATUS_INVALID_ARGUMENT"),
    (Status::NullPointer, EQFLOW_STATUS_NULL_POINTER, c"EQFLOW_STATUS_NULL_POINTER"),
    (Status::BadLength, EQFLOW_STATUS_BAD_LENGTH, c"EQFLOW_STATUS_BAD_LENGTH"),
    (Status::BadStructSize, EQFLOW_STATUS_BAD_STRUCT_SIZE, c"EQFLOW_STATUS_BAD_STRUCT_SIZE"),
    (Status::Busy, EQFLOW_STATUS_BUSY, c"EQFLOW_STATUS_BUSY"),
    (Status::Io, EQFLOW_STATUS_IO, c"EQFLOW_STATUS_IO"),
    (Status::BadFile, EQFLOW_STATUS_BAD_FILE, c"EQFLOW_STATUS_BAD_FILE"),
    (Status::Mismatch, EQFLOW_STATUS_MISMATCH, c"EQFLOW_STATUS_MISMATCH"),
    (Status::OutOfMemory, EQFLOW_STATUS_OUT_OF_MEMORY, c"EQFLOW_STATUS_OUT_OF_MEMORY"),
    (Status::Poisoned, EQFLOW_STATUS_POISONED, c"EQFLOW_STATUS_POISONED"),
    (Status::Callback, EQFLOW_STATUS_CALLBACK, c"EQFLOW_STATUS_CALLBACK"),
    (Status::NoDevice, EQFLOW_STATUS_NO_DEVICE, c"EQFLOW_STATUS_NO_DEVICE"),
    (Status::Device, EQFLOW_STATUS_DEVICE, c"EQFLOW_STATUS_DEVICE"),
    (Status::NonFinite, EQFLOW_STATUS_NON_FINITE, c"EQFLOW_STATUS_NON_FINITE"),
    (Status::NoConvergence, EQFLOW_STATUS_NO_CONVERGENCE, c"EQFLOW_STATUS_NO_CONVERGENCE"),
    (Status::Panic, EQFLOW_STATUS_PANIC, c"EQFLOW_STATUS_PANIC"),
    (Status::Internal, EQFLOW_STATUS_INTERNAL, c"EQFLOW_STATUS_INTERNAL"),
];

// The C numbers are the Rust enum's discriminants: checked at compile time.
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].0 as i32 == TABLE[i].1);
        i += 1;
    }
};

/// The C number of a Rust status.
pub(crate) fn code(s: Status) -> eqflow_status {
    s as i32
}

/// The name of a status code as a static NUL-terminated string, e.g. "EQFLOW_STATUS_BUSY";
/// "EQFLOW_STATUS_UNKNOWN" for a number this library does not know. Never NULL.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn eqflow_status_name(status: eqflow_status) -> *const c_char {
    TABLE.iter().find(|t| t.1 == status).map_or(c"EQFLOW_STATUS_UNKNOWN".as_ptr(), |t| t.2.as_ptr())
}
