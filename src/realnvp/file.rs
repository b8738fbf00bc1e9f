//! Saving and loading RealNVP flows: safetensors (f64 parameters and Adam moments) with JSON
//! metadata (format version, configuration, counters), written atomically.

use super::model::{RealNvp, RealNvpConfig};
use crate::error::{Error, Result, Status};
use crate::io::{f64_bytes, meta_get, meta_num, read_tensor, serialize, write_atomic, FlowFile, Meta, Tensors};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// The RealNVP file format version written; larger versions are refused.
pub const REALNVP_FORMAT_VERSION: u32 = 1;

fn bad(m: impl Into<String>) -> Error {
    Error::bad_file(m.into())
}

impl FlowFile for RealNvp {
    fn tensors(&self) -> Result<(Tensors, Meta)> {
        tensors_of(self)
    }
    fn from_tensors(st: &SafeTensors, meta: &Meta, threads: usize) -> Result<Self> {
        from_tensors(st, meta, threads)
    }
}

/// Serialises a RealNVP flow.
pub fn to_vec(f: &RealNvp) -> Result<Vec<u8>> {
    let (named, meta) = tensors_of(f)?;
    serialize(&named, meta)
}

fn tensors_of(f: &RealNvp) -> Result<(Tensors, Meta)> {
    let n = f.n_params();
    let named = vec![
        ("params".to_string(), f64_bytes(f.params()), vec![n]),
        ("adam.m".to_string(), f64_bytes(&f.adam.m), vec![n]),
        ("adam.v".to_string(), f64_bytes(&f.adam.v), vec![n]),
    ];
    let mut meta = HashMap::new();
    meta.insert("eqflow_realnvp_format".to_string(), REALNVP_FORMAT_VERSION.to_string());
    meta.insert("config".to_string(), serde_json::to_string(&f.config).map_err(|e| Error::invalid(e.to_string()))?);
    meta.insert("steps_done".to_string(), f.steps_done.to_string());
    meta.insert("samples_drawn".to_string(), f.samples_drawn.to_string());
    meta.insert("adam_t".to_string(), f.adam.t.to_string());
    meta.insert("custom_action".to_string(), f.has_custom_action().to_string());
    Ok((named, meta))
}

/// Saves atomically to `path`.
pub fn save(f: &RealNvp, path: &Path) -> Result<()> {
    write_atomic(&to_vec(f)?, path)
}

/// Loads a RealNVP flow saved by [`save`], with `threads` worker threads.
pub fn load(path: &Path, threads: usize) -> Result<RealNvp> {
    let bytes = std::fs::read(path).map_err(|e| Error::new(Status::Io, format!("load '{}': {e}", path.display())))?;
    from_slice(&bytes, threads).map_err(|e| Error::new(e.status, format!("load '{}': {}", path.display(), e.message)))
}

/// Deserialises a RealNVP flow.
pub fn from_slice(bytes: &[u8], threads: usize) -> Result<RealNvp> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = meta.metadata().clone().ok_or_else(|| bad("no eqflow metadata"))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("tensors: {e}")))?;
    from_tensors(&st, &meta, threads)
}

fn from_tensors(st: &SafeTensors, meta: &Meta, threads: usize) -> Result<RealNvp> {
    let version: u32 = meta_num(meta, "eqflow_realnvp_format")
        .map_err(|_| bad("not a RealNVP file (a continuous flow? load it with eqflow::io::load)"))?;
    if version > REALNVP_FORMAT_VERSION {
        return Err(bad(format!(
            "RealNVP format version {version} is newer than this library's {REALNVP_FORMAT_VERSION}"
        )));
    }
    let config: RealNvpConfig =
        serde_json::from_str(meta_get(meta, "config")?).map_err(|e| bad(format!("configuration: {e}")))?;
    let mut f = RealNvp::new(config, threads).map_err(|e| bad(format!("configuration invalid: {}", e.message)))?;
    let n = f.n_params();
    f.set_params(&read_tensor(st, "params", Some(n))?)?;
    f.adam.m = read_tensor(st, "adam.m", Some(n))?;
    f.adam.v = read_tensor(st, "adam.v", Some(n))?;
    f.adam.t = meta_num(meta, "adam_t")?;
    f.steps_done = meta_num(meta, "steps_done")?;
    f.samples_drawn = meta_num(meta, "samples_drawn")?;
    Ok(f)
}
