//! NumPy `.npy` (format 1.0) writing of configurations: float64, float32 or float16 (the
//! compact output; `half`), shape (n, L, L) in the internal layout (x1 fastest = C order).

use half::f16;
use std::io::Write;
use std::path::Path;

/// Element type of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    F16,
}

impl Dtype {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "f64" => Ok(Dtype::F64),
            "f32" => Ok(Dtype::F32),
            "f16" => Ok(Dtype::F16),
            d => Err(format!("unknown dtype '{d}' (f64, f32 or f16)")),
        }
    }
    fn descr(self) -> &'static str {
        match self {
            Dtype::F64 => "<f8",
            Dtype::F32 => "<f4",
            Dtype::F16 => "<f2",
        }
    }
}

/// A `.npy` file being written: the shape is fixed up front, fields are appended.
pub struct NpyWriter {
    out: std::io::BufWriter<std::fs::File>,
    dtype: Dtype,
    expected: usize,
    written: usize,
    path: String,
}

impl NpyWriter {
    /// Creates `path` for `n` fields of L × L.
    pub fn create(path: &Path, dtype: Dtype, n: usize, l: usize) -> Result<Self, String> {
        let f = std::fs::File::create(path).map_err(|e| format!("cannot create '{}': {e}", path.display()))?;
        let mut out = std::io::BufWriter::new(f);
        let dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': ({n}, {l}, {l}), }}", dtype.descr());
        // magic (6) + version (2) + header length (2) + dict + padding + '\n', a multiple of 64
        let total = (10 + dict.len() + 1).div_ceil(64) * 64;
        let mut header = dict.into_bytes();
        header.resize(total - 10 - 1, b' ');
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        out.write_all(&bytes).map_err(|e| format!("writing '{}': {e}", path.display()))?;
        Ok(NpyWriter { out, dtype, expected: n * l * l, written: 0, path: path.display().to_string() })
    }

    /// Appends values (whole fields).
    pub fn write(&mut self, x: &[f64]) -> Result<(), String> {
        let mut buf = Vec::with_capacity(x.len() * 8);
        for &v in x {
            match self.dtype {
                Dtype::F64 => buf.extend_from_slice(&v.to_le_bytes()),
                Dtype::F32 => buf.extend_from_slice(&(v as f32).to_le_bytes()),
                Dtype::F16 => buf.extend_from_slice(&f16::from_f64(v).to_le_bytes()),
            }
        }
        self.written += x.len();
        self.out.write_all(&buf).map_err(|e| format!("writing '{}': {e}", self.path))
    }

    /// Flushes and checks that the promised shape was filled.
    pub fn finish(mut self) -> Result<(), String> {
        if self.written != self.expected {
            return Err(format!("'{}': wrote {} values, header promised {}", self.path, self.written, self.expected));
        }
        self.out.flush().map_err(|e| format!("writing '{}': {e}", self.path))
    }
}
