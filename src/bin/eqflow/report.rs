//! `eqflow report`: plots (SVG and PNG) of a trained flow: ESS and loss against wall time, the
//! correlator G̃(t) and effective mass m_p(t) with error bars (next to an HMC reference when
//! given), the histogram of the magnetisation and the distribution of log-weights.

use crate::{err, Res};
use clap::Args;
use eqflow::mcmc::metropolis::Chain;
use eqflow::observables::ChainSummary;
use eqflow::AnyFlow;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ReportArgs {
    /// The flow file.
    #[arg(long)]
    pub flow: PathBuf,
    /// The training log (default: FLOW.log.jsonl when it exists).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// An HMC reference: the output of `eqflow hmc --json` for the same theory.
    #[arg(long)]
    pub hmc: Option<PathBuf>,
    /// Metropolis steps (and independent samples) behind the plots.
    #[arg(long, default_value_t = 5000)]
    pub n: u64,
    /// Chain seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

const FONT_PATHS: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Registers a TrueType font for the plots' text (EQFLOW_FONT, or a common system font).
fn register_font() -> Res<PathBuf> {
    let candidates = std::env::var("EQFLOW_FONT").ok().into_iter().chain(FONT_PATHS.iter().map(|s| s.to_string()));
    for p in candidates {
        if let Ok(bytes) = std::fs::read(&p) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(PathBuf::from(p));
            }
        }
    }
    Err("no TrueType font found for the plots' text (install fonts-dejavu-core, or set EQFLOW_FONT=/path/font.ttf)"
        .into())
}

fn e2s<E: std::fmt::Debug>(e: E) -> String {
    format!("plotting: {e:?}")
}

/// (minutes, loss, batch ESS) of each training step.
fn read_log(path: &Path) -> Res<Vec<(f64, f64, f64)>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read log '{}': {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("log '{}' line {}: {e}", path.display(), i + 1))?;
        let get = |k: &str| v.get(k).and_then(|x| x.as_f64());
        match (get("seconds"), get("loss"), get("ess")) {
            (Some(s), Some(l), Some(e)) => rows.push((s / 60.0, l, e)),
            _ => return Err(format!("log '{}' line {}: needs seconds, loss and ess", path.display(), i + 1)),
        }
    }
    Ok(rows)
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

fn draw_training<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, rows: &[(f64, f64, f64)]) -> Res<()> {
    root.fill(&WHITE).map_err(e2s)?;
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 / 2);
    let t_max = rows.last().map_or(1.0, |r| r.0).max(1e-3);
    // running mean of the batch ESS over ~50 steps
    let mut run = Vec::with_capacity(rows.len());
    let mut acc = f64::NAN;
    for r in rows {
        acc = if acc.is_nan() { r.2 } else { 0.96 * acc + 0.04 * r.2 };
        run.push((r.0, acc));
    }
    let mut c = ChartBuilder::on(&top)
        .caption("ESS against wall time", ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_max, 0.0..1.0)
        .map_err(e2s)?;
    c.configure_mesh().x_desc("minutes").y_desc("ESS").draw().map_err(e2s)?;
    c.draw_series(rows.iter().map(|r| Circle::new((r.0, r.2), 2, BLUE.mix(0.4).filled())))
        .map_err(e2s)?
        .label("batch ESS")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));
    c.draw_series(LineSeries::new(run, RED.stroke_width(2)))
        .map_err(e2s)?
        .label("running mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(e2s)?;
    let (lo, hi) = range(rows.iter().map(|r| r.1));
    let mut c = ChartBuilder::on(&bottom)
        .caption("loss E[log q + S]", ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_max, lo..hi)
        .map_err(e2s)?;
    c.configure_mesh().x_desc("minutes").y_desc("loss").draw().map_err(e2s)?;
    c.draw_series(LineSeries::new(rows.iter().map(|r| (r.0, r.1)), BLACK)).map_err(e2s)?;
    root.present().map_err(e2s)
}

/// (t, value, error) points, skipping undefined ones.
type Points = Vec<(f64, f64, f64)>;

fn g_points(s: &ChainSummary) -> Points {
    s.g.iter().enumerate().map(|(t, e)| (t as f64, e.value, e.error)).filter(|p| p.1.is_finite()).collect()
}

fn mp_points(s: &ChainSummary) -> Points {
    s.m_p_t.iter().enumerate().map(|(i, e)| ((i + 1) as f64, e.value, e.error)).filter(|p| p.1.is_finite()).collect()
}

fn draw_errorbars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    ylabel: &str,
    series: &[(&str, Points, RGBColor, f64)],
    log_y: bool,
) -> Res<()> {
    let all = || series.iter().flat_map(|s| s.1.iter());
    let (x0, x1) = range(all().map(|p| p.0));
    let (x0, x1) = (x0 - 0.3, x1 + 0.3);
    if log_y {
        let pos: Vec<f64> = all().flat_map(|p| [p.1 - p.2, p.1 + p.2]).filter(|v| *v > 0.0).collect();
        let lo = pos.iter().cloned().fold(f64::INFINITY, f64::min).max(1e-12);
        let hi = pos.iter().cloned().fold(0.0, f64::max).max(lo * 10.0);
        let mut c = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (lo * 0.8..hi * 1.25).log_scale())
            .map_err(e2s)?;
        c.configure_mesh().x_desc("t").y_desc(ylabel).y_label_formatter(&|v| format!("{v:.1e}")).draw().map_err(e2s)?;
        for (name, pts, color, dx) in series {
            let color = *color;
            c.draw_series(
                pts.iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|p| ErrorBar::new_vertical(p.0 + dx, (p.1 - p.2).max(lo), p.1, p.1 + p.2, color.filled(), 8)),
            )
            .map_err(e2s)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(e2s)?;
    } else {
        let (y0, y1) = range(all().flat_map(|p| [p.1 - p.2, p.1 + p.2]));
        let mut c = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(e2s)?;
        c.configure_mesh().x_desc("t").y_desc(ylabel).draw().map_err(e2s)?;
        for (name, pts, color, dx) in series {
            let color = *color;
            c.draw_series(
                pts.iter().map(|p| ErrorBar::new_vertical(p.0 + dx, p.1 - p.2, p.1, p.1 + p.2, color.filled(), 8)),
            )
            .map_err(e2s)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(e2s)?;
    }
    Ok(())
}

fn draw_correlator<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    flow: &ChainSummary,
    hmc: Option<&ChainSummary>,
) -> Res<()> {
    root.fill(&WHITE).map_err(e2s)?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let mut g = vec![("flow chain", g_points(flow), BLUE, -0.08)];
    let mut mp = vec![("flow chain", mp_points(flow), BLUE, -0.08)];
    if let Some(h) = hmc {
        g.push(("HMC", g_points(h), RED, 0.08));
        mp.push(("HMC", mp_points(h), RED, 0.08));
    }
    draw_errorbars(&left, "connected correlator G(t)", "G(t)", &g, true)?;
    draw_errorbars(&right, "effective mass m_p(t)", "m_p(t)", &mp, false)?;
    root.present().map_err(e2s)
}

/// Normalised histogram (centres, densities) of `x` over [lo, hi] with `bins` bins.
fn histogram(x: &[f64], weights: Option<&[f64]>, lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let w = (hi - lo) / bins as f64;
    let mut h = vec![0.0; bins];
    let mut total = 0.0;
    for (i, v) in x.iter().enumerate() {
        let wt = weights.map_or(1.0, |w| w[i]);
        total += wt;
        let b = ((v - lo) / w).floor();
        if b >= 0.0 && (b as usize) < bins {
            h[b as usize] += wt;
        }
    }
    h.iter().enumerate().map(|(b, c)| (lo + (b as f64 + 0.5) * w, c / (total * w).max(1e-300))).collect()
}

/// A named histogram (bin centre, density) and its colour.
type Hist<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

fn draw_histograms<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    xlabel: &str,
    hists: &[Hist],
) -> Res<()> {
    root.fill(&WHITE).map_err(e2s)?;
    let (x0, x1) = range(hists.iter().flat_map(|h| h.1.iter().map(|p| p.0)));
    let y1 = hists.iter().flat_map(|h| h.1.iter().map(|p| p.1)).fold(0.0, f64::max).max(1e-12) * 1.1;
    let mut c = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(e2s)?;
    c.configure_mesh().x_desc(xlabel).y_desc("density").draw().map_err(e2s)?;
    for (name, h, color) in hists {
        let color = *color;
        let half = if h.len() > 1 { 0.5 * (h[1].0 - h[0].0) } else { 0.5 };
        c.draw_series(
            h.iter().map(|&(x, y)| Rectangle::new([(x - half, 0.0), (x + half, y)], color.mix(0.3).filled())),
        )
        .map_err(e2s)?
        .label(*name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.5).filled()));
        c.draw_series(std::iter::once(PathElement::new(
            h.iter().flat_map(|&(x, y)| [(x - half, y), (x + half, y)]).collect::<Vec<_>>(),
            color.stroke_width(2),
        )))
        .map_err(e2s)?;
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(e2s)?;
    root.present().map_err(e2s)
}

/// Draws one figure as `name.svg` and `name.png` in `dir`.
fn both(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    draw_svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> Res<()>,
    draw_png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> Res<()>,
) -> Res<Vec<PathBuf>> {
    let svg = dir.join(format!("{name}.svg"));
    let png = dir.join(format!("{name}.png"));
    draw_svg(&SVGBackend::new(&svg, size).into_drawing_area())?;
    draw_png(&BitMapBackend::new(&png, size).into_drawing_area())?;
    Ok(vec![svg, png])
}

pub fn report(a: ReportArgs) -> Res<serde_json::Value> {
    if a.n < 100 {
        return Err(format!("--n {}: need at least 100 steps for the plots", a.n));
    }
    let mut flow = AnyFlow::load(&a.flow, a.threads).map_err(err)?;
    let l = flow.lattice_size();
    let hmc: Option<ChainSummary> = match &a.hmc {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read '{}': {e}", p.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("'{}' is not the JSON of `eqflow hmc --json`: {e}", p.display()))?;
            let s: ChainSummary = serde_json::from_value(v.get("summary").cloned().unwrap_or_default())
                .map_err(|e| format!("'{}' has no HMC summary: {e}", p.display()))?;
            if s.l != l {
                return Err(format!("the HMC reference '{}' is for L = {}, the flow for L = {l}", p.display(), s.l));
            }
            Some(s)
        }
        None => None,
    };
    let log_path = a.log.clone().unwrap_or_else(|| PathBuf::from(format!("{}.log.jsonl", a.flow.display())));
    let rows = if a.log.is_some() || log_path.exists() { Some(read_log(&log_path)?) } else { None };
    std::fs::create_dir_all(&a.out).map_err(|e| format!("cannot create '{}': {e}", a.out.display()))?;
    let font = register_font()?;

    // the flow chain and independent samples behind the plots
    let mut chain = Chain::new(&flow, a.seed);
    let mut m_chain = Vec::with_capacity(a.n as usize);
    chain.run(a.n, |st, _| m_chain.push(st.phi.iter().sum::<f64>() / st.phi.len() as f64)).map_err(err)?;
    let summary = chain.observables().map_err(err)?;
    let samples = flow.sample(a.n as usize).map_err(err)?;
    let v = flow.volume();
    let m_raw: Vec<f64> = samples.phi.chunks(v).map(|p| p.iter().sum::<f64>() / v as f64).collect();
    let log_w = samples.log_weights();
    let lmax = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let rel: Vec<f64> = log_w.iter().map(|x| x - lmax).filter(|x| x.is_finite()).collect();

    let mut files = Vec::new();
    if let Some(rows) = &rows {
        if !rows.is_empty() {
            files.extend(both(&a.out, "training", (900, 700), |r| draw_training(r, rows), |r| draw_training(r, rows))?);
        }
    }
    files.extend(both(
        &a.out,
        "correlator",
        (1100, 450),
        |r| draw_correlator(r, &summary, hmc.as_ref()),
        |r| draw_correlator(r, &summary, hmc.as_ref()),
    )?);
    let (lo, hi) = range(m_chain.iter().chain(&m_raw).copied());
    let mh = [
        ("flow chain (Metropolis)", histogram(&m_chain, None, lo, hi, 40), BLUE),
        ("raw flow proposals", histogram(&m_raw, None, lo, hi, 40), GREEN),
    ];
    files.extend(both(
        &a.out,
        "magnetization",
        (800, 500),
        |r| draw_histograms(r, "magnetisation M", "M", &mh),
        |r| draw_histograms(r, "magnetisation M", "M", &mh),
    )?);
    let (lo, hi) = range(rel.iter().copied());
    let wh = [("log w - max log w", histogram(&rel, None, lo, hi, 40), BLUE)];
    files.extend(both(
        &a.out,
        "log_weights",
        (800, 500),
        |r| draw_histograms(r, "log-weights log w = -S - log q", "log w - max", &wh),
        |r| draw_histograms(r, "log-weights log w = -S - log q", "log w - max", &wh),
    )?);
    for f in &files {
        eprintln!("wrote {}", f.display());
    }
    let ess = eqflow::train::ess(&log_w);
    eprintln!(
        "flow chain: acceptance {:.4}, ESS {:.4}, chi2 {:.4} ± {:.4}, L·m_p {:.4} ± {:.4}",
        chain.stats().acceptance(),
        ess,
        summary.chi2.value,
        summary.chi2.error,
        summary.l_m_p.value,
        summary.l_m_p.error
    );
    Ok(json!({"files": files, "font": font, "acceptance": chain.stats().acceptance(), "ess": ess,
        "summary": summary, "hmc": hmc.is_some()}))
}
