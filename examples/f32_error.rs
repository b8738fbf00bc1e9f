//! How much f32 compute changes log q, log w and φ of the same prior draws, for a saved flow.
//! cargo run --release --example f32_error -- FLOW.safetensors
use eqflow::flow::Precision;
use eqflow::rng::{Rng, Stream};

fn main() {
    let path = std::env::args().nth(1).expect("usage: f32_error FLOW.safetensors");
    let mut f = eqflow::io::load(std::path::Path::new(&path), 0).unwrap();
    let v = f.volume();
    let n = 200;
    let mut z = vec![0.0; n * v];
    for (i, zi) in z.chunks_mut(v).enumerate() {
        Rng::new(5, Stream::Sample, i as u64).fill_normal(zi);
    }
    f.set_precision(Precision::F64, Precision::F64);
    let a = f.push_forward(&z).unwrap();
    f.set_precision(Precision::F32, Precision::F32);
    let b = f.push_forward(&z).unwrap();
    let max_diff = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
    println!(
        "L={}: max |Δlog q| = {:.2e}, max |Δlog w| = {:.2e}, max |Δφ| = {:.2e}",
        f.lattice.size(),
        max_diff(&a.log_q, &b.log_q),
        max_diff(&a.log_weights(), &b.log_weights()),
        max_diff(&a.phi, &b.phi)
    );
}
