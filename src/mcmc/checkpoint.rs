//! Chain checkpoints: the frozen flow, the state, the counters (which are the random-number
//! counters) and the accumulated measurements in one safetensors file, written atomically and
//! versioned, so that a restored chain continues bit for bit as if never stopped.

use super::metropolis::{Chain, ChainStats, State};
use super::proposal::Proposal;
use crate::error::{Error, Result};
use crate::io::{f64_bytes, meta_get, meta_num, read_tensor, serialize, write_atomic, FlowFile};
use crate::observables::Measurements;
use safetensors::SafeTensors;
use std::path::Path;

/// The chain checkpoint format version written; larger versions are refused.
pub const CHAIN_FORMAT_VERSION: u32 = 1;

fn bad(m: impl Into<String>) -> Error {
    Error::bad_file(m.into())
}

/// Serialises a chain (its flow snapshot included).
pub fn to_vec<F: Proposal + FlowFile>(chain: &Chain<F>) -> Result<Vec<u8>> {
    let (mut named, mut meta) = chain.flow.tensors()?;
    let (flat, ints) = chain.measurements.to_flat();
    named.push(("chain.measurements".into(), f64_bytes(&flat), vec![flat.len()]));
    if let Some(st) = &chain.state {
        named.push(("chain.phi".into(), f64_bytes(&st.phi), vec![st.phi.len()]));
        // exact bit patterns: log q and S must come back identical
        meta.insert("chain.log_q_bits".into(), st.log_q.to_bits().to_string());
        meta.insert("chain.action_bits".into(), st.action.to_bits().to_string());
    }
    meta.insert("eqflow_chain_format".into(), CHAIN_FORMAT_VERSION.to_string());
    meta.insert("chain.seed".into(), chain.seed.to_string());
    meta.insert("chain.flip".into(), chain.flip.to_string());
    let custom = chain.flow.has_custom_action() || chain.needs_action;
    meta.insert("chain.custom_action".into(), custom.to_string());
    meta.insert("chain.stats".into(), serde_json::to_string(&chain.stats).map_err(|e| Error::invalid(e.to_string()))?);
    meta.insert("chain.measurements".into(), serde_json::to_string(&ints).map_err(|e| Error::invalid(e.to_string()))?);
    serialize(&named, meta)
}

/// Saves a chain atomically to `path`.
pub fn save<F: Proposal + FlowFile>(chain: &Chain<F>, path: &Path) -> Result<()> {
    write_atomic(&to_vec(chain)?, path)
}

/// Loads a chain saved by [`save`], computing with `threads` worker threads.
pub fn load<F: Proposal + FlowFile>(path: &Path, threads: usize) -> Result<Chain<F>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(crate::error::Status::Io, format!("load chain '{}': {e}", path.display())))?;
    from_slice(&bytes, threads)
        .map_err(|e| Error::new(e.status, format!("load chain '{}': {}", path.display(), e.message)))
}

/// Deserialises a chain.
pub fn from_slice<F: Proposal + FlowFile>(bytes: &[u8], threads: usize) -> Result<Chain<F>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = meta.metadata().clone().ok_or_else(|| bad("no eqflow metadata"))?;
    let version: u32 = meta_num(&meta, "eqflow_chain_format")
        .map_err(|_| bad("not an eqflow chain checkpoint (a flow file? load it as a flow)"))?;
    if version > CHAIN_FORMAT_VERSION {
        return Err(bad(format!("chain format version {version} is newer than this library's {CHAIN_FORMAT_VERSION}")));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("tensors: {e}")))?;
    let flow = F::from_tensors(&st, &meta, threads)?;
    let seed: u64 = meta_num(&meta, "chain.seed")?;
    let flip: bool = meta_get(&meta, "chain.flip")?.parse().map_err(|_| bad("metadata 'chain.flip'"))?;
    let stats: ChainStats =
        serde_json::from_str(meta_get(&meta, "chain.stats")?).map_err(|e| bad(format!("chain stats: {e}")))?;
    let ints: [u64; 7] = serde_json::from_str(meta_get(&meta, "chain.measurements")?)
        .map_err(|e| bad(format!("chain measurements: {e}")))?;
    let flat = read_tensor(&st, "chain.measurements", None)?;
    let measurements = Measurements::from_flat(&flat, ints)?;
    if measurements.l() != flow.lattice_size() {
        return Err(bad("measurements are for another lattice size than the flow"));
    }
    let state = match st.tensor("chain.phi") {
        Ok(_) => {
            let phi = read_tensor(&st, "chain.phi", Some(flow.volume()))?;
            let bits = |k: &str| -> Result<f64> { Ok(f64::from_bits(meta_num::<u64>(&meta, k)?)) };
            let (log_q, action) = (bits("chain.log_q_bits")?, bits("chain.action_bits")?);
            if !log_q.is_finite() || !action.is_finite() {
                return Err(bad("chain state has a non-finite log q or action"));
            }
            Some(State { phi, log_q, action })
        }
        Err(_) => None,
    };
    if stats.accepted > stats.proposed || stats.flips_accepted > stats.flips_proposed {
        return Err(bad("chain counters are inconsistent"));
    }
    // a checkpoint of a chain with a host action: the host must set it again
    let needs_action = meta.get("chain.custom_action").is_some_and(|v| v == "true");
    Ok(Chain { flow, seed, state, stats, flip, measurements, needs_action, pusher: None })
}
