//! Memory discipline for jobs that share a node: requests are checked against the memory the
//! machine has before they are allocated, and allocation failures become
//! `Status::OutOfMemory` instead of an abort of the host process.

use crate::error::{Error, Result, Status};

/// Bytes of memory available to new allocations (Linux: MemAvailable of /proc/meminfo;
/// elsewhere, or if unreadable: unlimited).
pub fn available_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb.saturating_mul(1024))
}

/// Fails with `OutOfMemory` if `bytes` (None: the size overflowed) exceed the available memory.
pub fn check(bytes: Option<u64>, what: &str) -> Result<()> {
    let avail = available_bytes();
    match bytes {
        Some(b) if b <= avail => Ok(()),
        Some(b) => Err(Error::new(
            Status::OutOfMemory,
            format!("{what} needs {:.3} GiB but only {:.3} GiB are available", gib(b), gib(avail)),
        )),
        None => Err(Error::new(Status::OutOfMemory, format!("{what}: the size overflows"))),
    }
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

/// Bytes of `n` values of type T, None on overflow.
pub fn bytes_of<T>(n: usize) -> Option<u64> {
    (n as u64).checked_mul(std::mem::size_of::<T>() as u64)
}

/// Reserves room for `additional` more elements, checked against the available memory, with
/// an allocation failure reported as `OutOfMemory`.
pub fn reserve<T>(v: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    check(bytes_of::<T>(additional), what)?;
    v.try_reserve_exact(additional).map_err(|e| {
        Error::new(Status::OutOfMemory, format!("{what}: allocation of {additional} elements failed ({e})"))
    })
}
