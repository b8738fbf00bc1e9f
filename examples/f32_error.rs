//! log q and S of the same prior draws in f32 and f64 compute.
use eqflow::flow::{Precision};
fn main() {
    let path = std::env::args().nth(1).expect("flow file");
    let mut f = eqflow::io::load(std::path::Path::new(&path), 2).unwrap();
    let v = f.volume();
    let n = 200;
    let mut z = vec![0.0; n * v];
    for (i, zi) in z.chunks_mut(v).enumerate() { eqflow::rng::Rng::new(5, eqflow::rng::Stream::Sample, i as u64).fill_normal(zi); }
    f.config.precision = Precision::F64; let mut f64f = f.snapshot(); f64f.set_params(&f.params().to_vec()).unwrap();
    let a = f64f.push_forward(&z).unwrap();
    let mut g = f.snapshot(); g.config.precision = Precision::F32; g.set_params(&f.params().to_vec()).unwrap();
    let b = g.push_forward(&z).unwrap();
    let dq = a.log_q.iter().zip(&b.log_q).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let dlw = a.log_weights().iter().zip(&b.log_weights()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let dphi = a.phi.iter().zip(&b.phi).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    println!("L={} max |Δlog q| = {dq:.2e}, max |Δlog w| = {dlw:.2e}, max |Δφ| = {dphi:.2e}", f.lattice.size());
}
