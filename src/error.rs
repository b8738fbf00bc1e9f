//! The one error type of the library and its mapping to C status codes.

use std::fmt;

/// Status codes of the C ABI, grouped by hundreds and never renumbered:
/// 1xx caller errors, 2xx device errors, 3xx numerical errors, 9xx internal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// An argument is invalid (a value out of range, a non-finite number).
    InvalidArgument = 100,
    /// A pointer that must not be NULL was NULL.
    NullPointer = 101,
    /// A buffer is shorter (or longer) than the call needs.
    BadLength = 102,
    /// A parameter struct's `struct_size` is not one this library knows.
    BadStructSize = 103,
    /// A handle is in use by another thread.
    Busy = 104,
    /// A file could not be read or written.
    Io = 105,
    /// A file is corrupt, truncated or of an unknown format version.
    BadFile = 106,
    /// A flow file or configuration does not match (e.g. another lattice size).
    Mismatch = 107,
    /// The operation needs more memory than allowed or available.
    OutOfMemory = 108,
    /// A handle was poisoned by an earlier panic.
    Poisoned = 109,
    /// A host callback (a custom action) reported failure.
    Callback = 110,
    /// No device of the requested backend is present.
    NoDevice = 200,
    /// A device call failed.
    Device = 201,
    /// A computation produced a non-finite value.
    NonFinite = 300,
    /// An iteration did not converge.
    NoConvergence = 301,
    /// A panic was caught at the boundary.
    Panic = 900,
    /// Any other internal failure.
    Internal = 901,
}

/// The library's error: a status and a message naming what went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The status group of the error.
    pub status: Status,
    /// A message that names the function or argument at fault.
    pub message: String,
}

impl Error {
    /// A new error with the given status and message.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Error { status, message: message.into() }
    }
    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Status::InvalidArgument, message)
    }
    /// A buffer of the wrong length.
    pub fn length(what: &str, got: usize, want: usize) -> Self {
        Self::new(Status::BadLength, format!("{what}: length {got}, expected {want}"))
    }
    /// A non-finite value.
    pub fn non_finite(message: impl Into<String>) -> Self {
        Self::new(Status::NonFinite, message)
    }
    /// A malformed file.
    pub fn bad_file(message: impl Into<String>) -> Self {
        Self::new(Status::BadFile, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(Status::Io, e.to_string())
    }
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that a slice has exactly the expected length.
pub fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::length(what, got, want))
    }
}

/// Checks that every entry is finite.
pub fn check_finite(what: &str, x: &[f64]) -> Result<()> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::new(Status::InvalidArgument, format!("{what}: entry {i} is not finite ({})", x[i]))),
    }
}
