//! The one boundary between C and Rust: every exported body runs inside [`boundary`], which
//! resets the thread's last error, catches panics (turning them into `EQFLOW_STATUS_PANIC`),
//! and records a message naming the function; the helpers here check pointers, lengths,
//! alignment and `struct_size`, so no exported function dereferences anything unchecked.

use super::status::{code, eqflow_status, EQFLOW_STATUS_OK, EQFLOW_STATUS_PANIC};
use crate::error::{Error, Result, Status};
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, TryLockError};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: String) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// The calling thread's last error message (empty after a successful call).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Runs the body of the exported function `function`: the result becomes a status and, on
/// failure, the thread's last error message "function: message". A panic is caught (never
/// unwinding into C), reported as `EQFLOW_STATUS_PANIC`; a handle locked at the time is
/// poisoned by its mutex, so later calls on it return `EQFLOW_STATUS_POISONED`.
pub(crate) fn boundary(function: &'static str, body: impl FnOnce() -> Result<()>) -> eqflow_status {
    set_last_error(String::new());
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => EQFLOW_STATUS_OK,
        Ok(Err(e)) => {
            set_last_error(format!("{function}: {}", e.message));
            code(e.status)
        }
        Err(payload) => {
            let text = panic_text(&*payload);
            // a payload whose destructor panics must not unwind into C either
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            set_last_error(format!("{function}: internal panic (a bug; the handle is now poisoned): {text}"));
            EQFLOW_STATUS_PANIC
        }
    }
}

/// The boundary of a function without a status (the `_free` and `_init` functions):
/// a panic is swallowed and only recorded as the last error message.
pub(crate) fn boundary_void(function: &'static str, body: impl FnOnce()) {
    let _ = boundary(function, || {
        body();
        Ok(())
    });
}

fn null(arg: &str) -> Error {
    Error::new(Status::NullPointer, format!("argument '{arg}' is NULL"))
}

fn check_align<T>(p: *const T, arg: &str) -> Result<()> {
    if (p as usize) % std::mem::align_of::<T>() != 0 {
        return Err(Error::invalid(format!("argument '{arg}' = {p:p} is not aligned for its type")));
    }
    Ok(())
}

/// A shared reference to a non-NULL, aligned argument.
///
/// # Safety
/// A non-NULL `p` must point to a live `T` for the duration of the call.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, arg: &str) -> Result<&'a T> {
    if p.is_null() {
        return Err(null(arg));
    }
    check_align(p, arg)?;
    Ok(&*p)
}

/// A checked output pointer for one value (required).
pub(crate) fn arg_out<T>(p: *mut T, arg: &str) -> Result<*mut T> {
    if p.is_null() {
        return Err(null(arg));
    }
    check_align(p as *const T, arg)?;
    Ok(p)
}

/// Copies an input array (pointer, length) into a vector; NULL is allowed only with length 0.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable values.
pub(crate) unsafe fn arg_vec<T: Copy>(p: *const T, len: usize, arg: &str) -> Result<Vec<T>> {
    if p.is_null() {
        return if len == 0 { Ok(Vec::new()) } else { Err(null(arg)) };
    }
    check_align(p, arg)?;
    Ok(std::slice::from_raw_parts(p, len).to_vec())
}

/// An optional output array: `None` for (NULL, 0) ("not wanted"), an error for NULL with a
/// length, a length below `need`, or misalignment. Writes go through [`write_out`] (raw copies:
/// overlapping output buffers from the caller are not undefined behaviour on our side).
pub(crate) fn arg_out_array<T>(p: *mut T, len: usize, need: usize, arg: &str) -> Result<Option<*mut T>> {
    if p.is_null() {
        return if len == 0 { Ok(None) } else { Err(null(arg)) };
    }
    check_align(p as *const T, arg)?;
    if len < need {
        return Err(Error::new(
            Status::BadLength,
            format!("argument '{arg}': buffer length {len} is shorter than the {need} values needed"),
        ));
    }
    Ok(Some(p))
}

/// Writes `data` to a checked output array.
///
/// # Safety
/// `p` came from [`arg_out_array`] with `need >= data.len()`.
pub(crate) unsafe fn write_out<T: Copy>(p: Option<*mut T>, data: &[T]) {
    if let Some(p) = p {
        std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
    }
}

/// n × m without overflow.
pub(crate) fn mul(n: usize, m: usize, what: &str) -> Result<usize> {
    n.checked_mul(m).ok_or_else(|| Error::new(Status::OutOfMemory, format!("{what}: {n} × {m} overflows size_t")))
}

/// A parameter struct that starts with `size_t struct_size`, whose fields are only appended.
///
/// # Safety
/// Implementors are `#[repr(C)]` plain data whose first field is `struct_size: usize`.
pub(crate) unsafe trait Versioned: Copy {
    /// The sizes of the struct's earlier published versions (its current size is always
    /// accepted).
    const OLD_SIZES: &'static [usize];
    /// The C name of the struct, for messages.
    const NAME: &'static str;
}

fn check_size<T: Versioned>(size: usize, arg: &str) -> Result<()> {
    let max = std::mem::size_of::<T>();
    // the sizes of the published versions: the earlier ones and the current one
    if size != max && !T::OLD_SIZES.contains(&size) {
        let known: Vec<String> = T::OLD_SIZES.iter().chain([&max]).map(|s| s.to_string()).collect();
        let known = known.join(" or ");
        return Err(Error::new(
            Status::BadStructSize,
            format!(
                "argument '{arg}': struct_size = {size}, but this library knows {} of size {known} \
                 (set struct_size = sizeof({}), e.g. through its _init function)",
                T::NAME,
                T::NAME
            ),
        ));
    }
    Ok(())
}

/// Reads a versioned input struct over `defaults`: the caller's first `struct_size` bytes win.
///
/// # Safety
/// A non-NULL `p` must point to at least `p->struct_size` readable bytes.
pub(crate) unsafe fn read_versioned<T: Versioned>(p: *const T, defaults: T, arg: &str) -> Result<T> {
    let _ = arg_ref(p, arg)?;
    let size = std::ptr::read(p as *const usize);
    check_size::<T>(size, arg)?;
    let mut out = defaults;
    std::ptr::copy_nonoverlapping(p as *const u8, &mut out as *mut T as *mut u8, size);
    Ok(out)
}

/// Checks a versioned output struct (its `struct_size` set by the caller); `None` for NULL.
///
/// # Safety
/// A non-NULL `p` must point to at least `p->struct_size` writable bytes.
pub(crate) unsafe fn check_versioned_out<T: Versioned>(p: *mut T, arg: &str) -> Result<Option<*mut T>> {
    if p.is_null() {
        return Ok(None);
    }
    check_align(p as *const T, arg)?;
    check_size::<T>(std::ptr::read(p as *const usize), arg)?;
    Ok(Some(p))
}

/// Writes a versioned output struct: the known prefix up to the caller's `struct_size`,
/// which itself is left as the caller set it.
///
/// # Safety
/// `p` came from [`check_versioned_out`].
pub(crate) unsafe fn write_versioned<T: Versioned>(p: Option<*mut T>, value: T) {
    if let Some(p) = p {
        let size = std::ptr::read(p as *const usize);
        let n = size - std::mem::size_of::<usize>();
        let src = (&value as *const T as *const u8).add(std::mem::size_of::<usize>());
        std::ptr::copy_nonoverlapping(src, (p as *mut u8).add(std::mem::size_of::<usize>()), n);
    }
}

/// Locks a handle's mutex without waiting: BUSY if another thread holds it, POISONED if an
/// earlier call panicked while holding it.
pub(crate) fn lock<'a, T>(m: &'a Mutex<T>, arg: &str) -> Result<MutexGuard<'a, T>> {
    match m.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::WouldBlock) => Err(Error::new(
            Status::Busy,
            format!("argument '{arg}' is in use by another thread (a handle serves one thread at a time)"),
        )),
        Err(TryLockError::Poisoned(_)) => Err(Error::new(
            Status::Poisoned,
            format!("argument '{arg}' was poisoned by an earlier internal panic; free it and create a new one"),
        )),
    }
}

/// Writes a freshly made handle to `*out`.
///
/// # Safety
/// `out` came from [`arg_out`].
pub(crate) unsafe fn give<T>(out: *mut *mut T, value: T) {
    *out = Box::into_raw(Box::new(value));
}

/// Frees a handle made by [`give`]; NULL is a no-op.
///
/// # Safety
/// `p` is NULL or came from [`give`] and was not freed before.
pub(crate) unsafe fn take<T>(p: *mut T) {
    if !p.is_null() {
        drop(Box::from_raw(p));
    }
}
