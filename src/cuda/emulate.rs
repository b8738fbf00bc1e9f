//! Test-only: the kernels of `kernels/*.cu`, unchanged, compiled for the host with the system
//! C++ compiler and run through the same typed launch code as on the device
//! ([`Launcher`]). The runtime (`kernels/host/`) runs blocks one after another and the
//! threads of a block as coroutines, so `__syncthreads` is a real barrier and a divergent one
//! is an error. This checks, without a GPU, what the CPU twins cannot: the kernels' own
//! arithmetic and indexing, their bounds guards, the argument structs and the grids the launch
//! code computes. Buffers carry guard elements after their end, checked on every download,
//! so a kernel writing past its output is caught. Not checked: PTX code generation, the
//! driver, the device's math functions (the host's libm is used), warp-level behaviour.

use super::device::{HEADER, SOURCES};
use super::launch::{Launcher, Pod};
use crate::error::{Error, Result, Status};
use cudarc::driver::DeviceRepr;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::path::Path;
use std::sync::OnceLock;

const RUNTIME_H: &str = include_str!("../../kernels/host/cuda_host.h");
const RUNTIME_CPP: &str = include_str!("../../kernels/host/emulate.cpp");

/// Guard elements after the end of every buffer.
const GUARD: usize = 16;
/// Their byte pattern.
const GUARD_BYTE: u8 = 0xA5;

/// `emu_<entry>(grid, block, &args)`: the generated launcher of one entry point; null, or a message.
type EntryFn = unsafe extern "C" fn(u32, u32, *const c_void) -> *const c_char;

/// The kernels compiled for the host, loaded.
pub(crate) struct Emulator {
    _lib: libloading::Library,
    entries: HashMap<String, EntryFn>,
}

/// A host buffer with guard elements after its `len` elements.
pub(crate) struct HostBuf<T> {
    data: Vec<T>,
    len: usize,
}

impl<T: Pod> HostBuf<T> {
    fn new(x: &[T]) -> Self {
        let len = x.len().max(1);
        let mut data = vec![T::default(); len + GUARD];
        data[..x.len()].copy_from_slice(x);
        // SAFETY: T is plain data (f32, f64, i32, u32): every bit pattern is a valid value.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(data.as_mut_ptr() as *mut u8, data.len() * std::mem::size_of::<T>())
        };
        bytes[len * std::mem::size_of::<T>()..].fill(GUARD_BYTE);
        HostBuf { data, len }
    }

    fn guard_intact(&self) -> bool {
        // SAFETY: as in `new`: reading plain data as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.data.as_ptr() as *const u8, self.data.len() * std::mem::size_of::<T>())
        };
        bytes[self.len * std::mem::size_of::<T>()..].iter().all(|&b| b == GUARD_BYTE)
    }
}

impl Launcher for Emulator {
    type Buf<T: Pod> = HostBuf<T>;
    fn buf_len<T: Pod>(b: &HostBuf<T>) -> usize {
        b.len
    }
    fn addr<T: Pod>(&self, b: &HostBuf<T>) -> u64 {
        b.data.as_ptr() as u64
    }
    fn addr_mut<T: Pod>(&self, b: &mut HostBuf<T>) -> u64 {
        b.data.as_mut_ptr() as u64
    }
    fn alloc_zeros<T: Pod>(&self, n: usize) -> Result<HostBuf<T>> {
        Ok(HostBuf::new(&vec![T::default(); n]))
    }
    fn upload<T: Pod>(&self, x: &[T]) -> Result<HostBuf<T>> {
        Ok(HostBuf::new(x))
    }
    fn download<T: Pod>(&self, b: &HostBuf<T>) -> Result<Vec<T>> {
        if !b.guard_intact() {
            return Err(Error::new(Status::Internal, "emulator: a kernel wrote past the end of a buffer"));
        }
        Ok(b.data[..b.len].to_vec())
    }
    fn launch_kernel<A: DeviceRepr>(&self, file: &str, name: &str, grid: u32, block: u32, args: A) -> Result<()> {
        let f = self
            .entries
            .get(name)
            .ok_or_else(|| Error::new(Status::Internal, format!("emulator: no entry point {name} in {file}.cu")))?;
        // SAFETY: `args` is the #[repr(C)] mirror of the entry point's parameter (the generated
        // launcher reads it as that struct), and the typed launch code checked that every
        // buffer it points to (host memory here) holds what the sizes in it promise.
        let msg = unsafe { f(grid, block, &args as *const A as *const c_void) };
        if msg.is_null() {
            return Ok(());
        }
        // SAFETY: the runtime returns null or a NUL-terminated string of static storage.
        let m = unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned();
        Err(Error::new(Status::Internal, format!("{name}: {m}")))
    }
}

/// What follows `extern "C" __global__ void [__launch_bounds__(N)]` on a line that declares
/// an entry point: its name and parameters.
pub(crate) fn entry_declaration(line: &str) -> Option<&str> {
    let l = line.trim().strip_prefix("extern \"C\" __global__ void ")?;
    Some(match l.strip_prefix("__launch_bounds__(") {
        Some(rest) => rest.split_once(") ")?.1,
        None => l,
    })
}

/// The entry points of one .cu file: (name, argument type).
fn entries_of(cu: &str) -> Vec<(String, String)> {
    cu.lines()
        .filter_map(entry_declaration)
        .map(|l| {
            let (name, rest) = l.split_once('(').expect("an entry point with parameters");
            let ty = rest.split_whitespace().next().expect("one argument struct");
            (name.to_string(), ty.to_string())
        })
        .collect()
}

/// One translation unit per kernel file: the runtime header, the argument structs, the .cu
/// in a namespace of its own (its helpers may share names with other files'), and a launcher
/// per entry point.
fn translation_unit(name: &str, cu: &str) -> String {
    let syncs = cu.contains("__syncthreads");
    let mut t = format!(
        "#include \"cuda_host.h\"\n#include \"eqflow_kernel_args.h\"\nnamespace eqflow_emu_{name} {{\n#include \"{name}.cu\"\n}}\n"
    );
    for (entry, ty) in entries_of(cu) {
        t += &format!(
            "extern \"C\" const char *emu_{entry}(unsigned int grid, unsigned int block, const void *a) {{\n  \
             return eqflow_emu_run(grid, block, {syncs}, [](const void *p) {{ eqflow_emu_{name}::{entry}(*(const {ty} *)p); }}, a);\n}}\n"
        );
    }
    t
}

fn build(dir: &Path) -> std::result::Result<Emulator, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let write = |f: &str, s: &str| std::fs::write(dir.join(f), s).map_err(|e| format!("{f}: {e}"));
    write("cuda_host.h", RUNTIME_H)?;
    write("emulate.cpp", RUNTIME_CPP)?;
    write("eqflow_kernel_args.h", HEADER)?;
    let mut units = vec![dir.join("emulate.cpp")];
    for s in &SOURCES {
        write(&format!("{}.cu", s.name), s.cu)?;
        write(&format!("{}_emu.cpp", s.name), &translation_unit(s.name, s.cu))?;
        units.push(dir.join(format!("{}_emu.cpp", s.name)));
    }
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let lib = dir.join("libeqflow_emu.so");
    let out = std::process::Command::new(&cxx)
        .args([
            "-std=c++17",
            "-O2",
            "-fPIC",
            "-shared",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unused-parameter",
            "-Wno-unknown-pragmas",
        ])
        .arg("-I")
        .arg(dir)
        .arg("-o")
        .arg(&lib)
        .args(&units)
        .output()
        .map_err(|e| format!("no C++ compiler ({cxx}: {e})"))?;
    if !out.status.success() {
        panic!("compiling the kernels for the host failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    // SAFETY: loading the library just built from our own sources; its initialisers are C++
    // globals of the runtime (a mutex, vectors).
    let lib = unsafe { libloading::Library::new(&lib) }.map_err(|e| format!("loading {}: {e}", lib.display()))?;
    let mut entries = HashMap::new();
    for s in &SOURCES {
        for (entry, _) in entries_of(s.cu) {
            // SAFETY: the generated launcher has exactly the signature of EntryFn.
            let sym = unsafe { lib.get::<EntryFn>(format!("emu_{entry}\0").as_bytes()) }
                .map_err(|e| format!("emu_{entry}: {e}"))?;
            let f: EntryFn = *sym;
            entries.insert(entry, f);
        }
    }
    Ok(Emulator { _lib: lib, entries })
}

/// The emulator (built once per test process), or None, printing why, without a C++ compiler.
pub(crate) fn emulator() -> Option<&'static Emulator> {
    static EMU: OnceLock<std::result::Result<Emulator, String>> = OnceLock::new();
    let e = EMU.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("eqflow-emu-{}", std::process::id()));
        let r = build(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        r
    });
    match e {
        Ok(e) => Some(e),
        Err(why) => {
            eprintln!("skipped: the host emulation of the kernels could not be built: {why}");
            None
        }
    }
}
