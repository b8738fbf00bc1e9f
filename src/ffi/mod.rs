//! The C ABI (`include/eqflow.h`, generated from this module by cbindgen).
//!
//! # API conventions
//!
//! - Names: `eqflow_<type>_<verb>`; constants `EQFLOW_<GROUP>_<NAME>`.
//! - Every fallible function returns `eqflow_status` (0 = `EQFLOW_STATUS_OK`; 1xx caller,
//!   2xx device, 3xx numerical, 9xx internal errors). On failure
//!   `eqflow_last_error_message()` names the function and the argument.
//! - Arguments: receiver, inputs, outputs; arrays as (pointer, length); outputs are written
//!   only on success. Fields are V = L*L doubles, x1 fastest (`index = x0*L + x1`); a batch
//!   of n fields is n*V doubles, field after field.
//! - Constructors `eqflow_<type>_new(..., eqflow_<type> **out)`; `eqflow_<type>_free(NULL)`
//!   is a no-op.
//! - Parameter structs start with `size_t struct_size`, get defaults from `_params_init`,
//!   and only ever gain fields at the end.
//! - No panic crosses the boundary: it becomes `EQFLOW_STATUS_PANIC` and poisons the handle.
//!   The library never exits or aborts and has no global init/finalise.
//! - A handle used by two threads at once returns `EQFLOW_STATUS_BUSY`.
#![allow(non_camel_case_types)]

pub mod action;
pub mod boundary;
pub mod chain;
pub mod context;
pub mod flow;
pub mod hmc;
pub mod status;

#[cfg(test)]
mod tests;

use std::ffi::c_char;

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < b.len() {
        assert!(b[i].is_ascii_digit());
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// The library's version as (major << 16) | (minor << 8) | patch, from Cargo.toml.
pub(crate) const VERSION_HEX: u32 = (parse_u32(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
    | (parse_u32(env!("CARGO_PKG_VERSION_MINOR")) << 8)
    | parse_u32(env!("CARGO_PKG_VERSION_PATCH"));

/// The version of the library that is running, as `(major << 16) | (minor << 8) | patch`:
/// compare with `EQFLOW_VERSION_HEX`, the version of the header compiled against.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn eqflow_version_hex() -> u32 {
    VERSION_HEX
}

/// The version of the library that is running, e.g. "0.1.0" (static; never NULL):
/// compare with `EQFLOW_VERSION_STRING`.
///
/// Thread safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn eqflow_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the calling thread's last failed call, naming the function and the
/// argument ("" after a successful call). Never NULL; valid until the thread's next
/// eqflow call.
///
/// Thread safety: per thread; may be called from any thread.
#[no_mangle]
pub extern "C" fn eqflow_last_error_message() -> *const c_char {
    boundary::last_error_ptr()
}
