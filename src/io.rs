//! Saving and loading flows: safetensors (f64 tensors W, omega, F, T and the Adam moments)
//! with JSON metadata (format version, configuration, counters), readable from Python/JAX.
//! Writes are atomic: a temporary file in the same folder, then a rename.

use crate::error::{Error, Result, Status};
use crate::flow::{Flow, FlowConfig};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// The file format version written; files with a larger version are refused.
pub const FORMAT_VERSION: u32 = 1;

fn to_bytes(x: &[f64]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Named f64 tensors (name, little-endian bytes, shape).
pub type Tensors = Vec<(String, Vec<u8>, Vec<usize>)>;

/// Metadata of a safetensors file.
pub type Meta = HashMap<String, String>;

/// A flow type that can be stored in safetensors files, on its own or inside a chain
/// checkpoint: tensors and metadata out, and back.
pub trait FlowFile: Sized {
    /// The flow's tensors and metadata.
    fn tensors(&self) -> Result<(Tensors, Meta)>;
    /// The flow stored in deserialised tensors and metadata, with `threads` worker threads.
    fn from_tensors(st: &SafeTensors, meta: &Meta, threads: usize) -> Result<Self>;
}

impl FlowFile for Flow {
    fn tensors(&self) -> Result<(Tensors, Meta)> {
        flow_tensors(self)
    }
    fn from_tensors(st: &SafeTensors, meta: &Meta, threads: usize) -> Result<Self> {
        flow_from(st, meta, threads)
    }
}

/// The tensors and metadata of a flow.
pub(crate) fn flow_tensors(flow: &Flow) -> Result<(Tensors, HashMap<String, String>)> {
    let lay = &flow.layout;
    let p = flow.params();
    let mut named: Tensors = Vec::new();
    for (name, r) in lay.groups() {
        named.push((name.to_string(), to_bytes(&p[r.clone()]), vec![r.len()]));
    }
    named.push(("adam.m".into(), to_bytes(&flow.adam.m), vec![flow.adam.m.len()]));
    named.push(("adam.v".into(), to_bytes(&flow.adam.v), vec![flow.adam.v.len()]));
    let mut meta = HashMap::new();
    meta.insert("eqflow_format".to_string(), FORMAT_VERSION.to_string());
    meta.insert("config".to_string(), serde_json::to_string(&flow.config).map_err(internal)?);
    meta.insert("steps_done".to_string(), flow.steps_done.to_string());
    meta.insert("samples_drawn".to_string(), flow.samples_drawn.to_string());
    meta.insert("adam_t".to_string(), flow.adam.t.to_string());
    // a host action is code, not data: files record only that one was in use
    meta.insert("custom_action".to_string(), flow.has_custom_action().to_string());
    meta.insert("W_shape".to_string(), format!("[{}, {}, {}]", lay.n_orb, lay.n_tc, lay.n_c));
    Ok((named, meta))
}

/// Serialises tensors and metadata (safetensors).
pub(crate) fn serialize(named: &Tensors, meta: HashMap<String, String>) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, b, s)| Ok((n.clone(), TensorView::new(Dtype::F64, s.clone(), b).map_err(internal)?)))
        .collect::<Result<_>>()?;
    safetensors::serialize(views, &Some(meta)).map_err(internal)
}

/// Serialises a flow to bytes.
pub fn to_vec(flow: &Flow) -> Result<Vec<u8>> {
    let (named, meta) = flow_tensors(flow)?;
    serialize(&named, meta)
}

/// f64 values as little-endian bytes.
pub(crate) fn f64_bytes(x: &[f64]) -> Vec<u8> {
    to_bytes(x)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::new(Status::Internal, format!("serialising flow: {e}"))
}

/// Saves atomically to `path`.
pub fn save(flow: &Flow, path: &Path) -> Result<()> {
    write_atomic(&to_vec(flow)?, path)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, renamed.
pub(crate) fn write_atomic(bytes: &[u8], path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name =
        path.file_name().ok_or_else(|| Error::invalid(format!("save: '{}' is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let io = |e: std::io::Error, what: &str| Error::new(Status::Io, format!("save '{}': {what}: {e}", path.display()));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(e, "creating temporary file"))?;
        f.write_all(bytes).map_err(|e| io(e, "writing"))?;
        f.sync_all().map_err(|e| io(e, "syncing"))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e, "renaming into place")
    })
}

/// Loads a flow saved by `save`, with `threads` worker threads.
pub fn load(path: &Path, threads: usize) -> Result<Flow> {
    let bytes = std::fs::read(path).map_err(|e| Error::new(Status::Io, format!("load '{}': {e}", path.display())))?;
    from_slice(&bytes, threads).map_err(|e| Error::new(e.status, format!("load '{}': {}", path.display(), e.message)))
}

/// Deserialises a flow.
pub fn from_slice(bytes: &[u8], threads: usize) -> Result<Flow> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = meta.metadata().clone().ok_or_else(|| bad("no eqflow metadata".into()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("tensors: {e}")))?;
    flow_from(&st, &meta, threads)
}

fn bad(m: String) -> Error {
    Error::bad_file(m)
}

/// A metadata field.
pub(crate) fn meta_get<'a>(meta: &'a HashMap<String, String>, k: &str) -> Result<&'a String> {
    meta.get(k).ok_or_else(|| bad(format!("metadata field '{k}' missing")))
}

/// A numeric metadata field.
pub(crate) fn meta_num<T: std::str::FromStr>(meta: &HashMap<String, String>, k: &str) -> Result<T> {
    meta_get(meta, k)?.parse().map_err(|_| bad(format!("metadata field '{k}' not a number")))
}

/// A tensor of `len` finite f64 values (`len` None: any length).
pub(crate) fn read_tensor(st: &SafeTensors, name: &str, len: Option<usize>) -> Result<Vec<f64>> {
    let t = st.tensor(name).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
    if t.dtype() != Dtype::F64 || t.data().len() % 8 != 0 || len.is_some_and(|n| t.data().len() != 8 * n) {
        return Err(bad(format!(
            "tensor '{name}': expected {} f64 values",
            len.map_or("some".into(), |n| n.to_string())
        )));
    }
    let v: Vec<f64> = t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(bad(format!("tensor '{name}': entry {i} is not finite"))),
        None => Ok(v),
    }
}

/// The flow stored in deserialised tensors and metadata.
pub(crate) fn flow_from(st: &SafeTensors, meta: &HashMap<String, String>, threads: usize) -> Result<Flow> {
    if meta.contains_key("eqflow_realnvp_format") {
        return Err(bad("this is a RealNVP file: load it with eqflow::realnvp::load".into()));
    }
    let version: u32 = meta_get(meta, "eqflow_format")?.parse().map_err(|_| bad("unreadable format version".into()))?;
    if version > FORMAT_VERSION {
        return Err(bad(format!("format version {version} is newer than this library's {FORMAT_VERSION}")));
    }
    let config: FlowConfig =
        serde_json::from_str(meta_get(meta, "config")?).map_err(|e| bad(format!("configuration: {e}")))?;
    let mut flow = Flow::new(config, threads).map_err(|e| bad(format!("configuration invalid: {}", e.message)))?;
    let mut p = vec![0.0; flow.layout.total];
    for (name, r) in flow.layout.groups() {
        p[r.clone()].copy_from_slice(&read_tensor(st, name, Some(r.len()))?);
    }
    flow.set_params(&p)?;
    flow.adam.m = read_tensor(st, "adam.m", Some(flow.layout.total))?;
    flow.adam.v = read_tensor(st, "adam.v", Some(flow.layout.total))?;
    flow.adam.t = meta_num(meta, "adam_t")?;
    flow.steps_done = meta_num(meta, "steps_done")?;
    flow.samples_drawn = meta_num(meta, "samples_drawn")?;
    Ok(flow)
}
