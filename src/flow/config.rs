//! The architecture of the equivariant vector field (SPEC §3.1–3.2) and its presets.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The time kernel K(t).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeKernelKind {
    /// Linear interpolation ("hat") on d_t equally spaced nodes (the seed's).
    Hat,
    /// 1, sin 2πkt, cos 2πkt for k = 1..(d_t − 1)/2 (the follow-up's).
    Fourier,
}

/// How the convolution kernel is tied across displacements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KernelSymmetry {
    /// One parameter per D4 orbit of displacements: the full lattice group.
    Full,
    /// One parameter per displacement: translations only (the seed's ablation).
    Translations,
}

/// The site-wise features of the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureKind {
    /// sin(ω_b φ): odd, so f(−φ) = −f(φ) (Z2-equivariant).
    Odd,
    /// sin(ω_b φ), cos(ω_b φ) and a constant: the seed's non-odd ablation.
    NonOdd,
}

/// How the frequencies ω are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OmegaInit {
    /// Standard normal (the seed).
    Normal,
    /// Uniform in (0, 5) (the follow-up).
    Uniform05,
}

/// The architecture of the flow's vector field and its integrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Number of frequencies n_ω.
    pub n_frequencies: usize,
    /// Add the linear feature φ.
    pub linear_feature: bool,
    /// Odd (sines) or non-odd (sines, cosines, constant) features.
    pub features: FeatureKind,
    /// The time kernel.
    pub time_kernel: TimeKernelKind,
    /// Its size d_t (odd for the Fourier kernel).
    pub time_kernel_size: usize,
    /// Low-rank feature mixing to this many channels (F ∈ R^{n × n_h}), or none.
    pub feature_mixing: Option<usize>,
    /// Low-rank time mixing to this many channels (T ∈ R^{n × d_t}), or none.
    pub time_mixing: Option<usize>,
    /// Kernel tying: full lattice symmetry or translations only.
    pub symmetry: KernelSymmetry,
    /// RK4 steps N_t.
    pub ode_steps: usize,
    /// Initialisation of ω.
    pub omega_init: OmegaInit,
}

impl Architecture {
    /// The seed paper's Eq. 9: hat kernel d_t = 10, 50 sine frequencies, no mixing,
    /// N_t = 54 so the kernel's kinks fall on step boundaries (SPEC §3.1).
    pub fn seed() -> Self {
        Architecture {
            n_frequencies: 50,
            linear_feature: false,
            features: FeatureKind::Odd,
            time_kernel: TimeKernelKind::Hat,
            time_kernel_size: 10,
            feature_mixing: None,
            time_mixing: None,
            symmetry: KernelSymmetry::Full,
            ode_steps: 54,
            omega_init: OmegaInit::Normal,
        }
    }
    /// The follow-up's defaults: 49 sines plus the linear feature, mixing to 20 features
    /// and 20 time channels, a Fourier time kernel of size 21, N_t = 50.
    pub fn refined() -> Self {
        Architecture {
            n_frequencies: 49,
            linear_feature: true,
            features: FeatureKind::Odd,
            time_kernel: TimeKernelKind::Fourier,
            time_kernel_size: 21,
            feature_mixing: Some(20),
            time_mixing: Some(20),
            symmetry: KernelSymmetry::Full,
            ode_steps: 50,
            omega_init: OmegaInit::Uniform05,
        }
    }
    /// A preset by name: "seed", "refined", or an ablation of the seed architecture (SPEC
    /// §3.2): "translation-only" (kernel per displacement), "non-odd" (sin, cos and a constant:
    /// not Z2-equivariant), "translation-only-non-odd" (both).
    pub fn preset(name: &str) -> Result<Self> {
        let mut a = Self::seed();
        match name {
            "seed" => {}
            "refined" => a = Self::refined(),
            "translation-only" => a.symmetry = KernelSymmetry::Translations,
            "non-odd" => a.features = FeatureKind::NonOdd,
            "translation-only-non-odd" => {
                a.symmetry = KernelSymmetry::Translations;
                a.features = FeatureKind::NonOdd;
            }
            _ => {
                return Err(Error::invalid(format!(
                    "unknown architecture preset '{name}' (known: {})",
                    Self::PRESETS.join(", ")
                )))
            }
        }
        Ok(a)
    }
    /// The names [`Architecture::preset`] knows.
    pub const PRESETS: [&'static str; 5] =
        ["seed", "refined", "translation-only", "non-odd", "translation-only-non-odd"];
    /// Checks every size.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        if self.n_frequencies == 0 && !self.linear_feature {
            return bad("architecture: n_frequencies = 0 and no linear feature: no features".into());
        }
        if self.n_frequencies > 4096 {
            return bad(format!("architecture: n_frequencies = {} is larger than 4096", self.n_frequencies));
        }
        match self.time_kernel {
            TimeKernelKind::Hat if self.time_kernel_size < 2 => {
                return bad(format!("architecture: hat time kernel size {} must be >= 2", self.time_kernel_size))
            }
            TimeKernelKind::Fourier if self.time_kernel_size % 2 == 0 => {
                return bad(format!("architecture: Fourier time kernel size {} must be odd", self.time_kernel_size))
            }
            _ => {}
        }
        if self.time_kernel_size > 1024 {
            return bad(format!("architecture: time kernel size {} is larger than 1024", self.time_kernel_size));
        }
        for (name, m) in [("feature_mixing", self.feature_mixing), ("time_mixing", self.time_mixing)] {
            if let Some(0) = m {
                return bad(format!("architecture: {name} = 0 channels"));
            }
            if m.unwrap_or(0) > 4096 {
                return bad(format!("architecture: {name} larger than 4096"));
            }
        }
        if self.ode_steps == 0 || self.ode_steps > 100_000 {
            return bad(format!("architecture: ode_steps = {} must be in 1..=100000", self.ode_steps));
        }
        Ok(())
    }
    /// Number of raw features n_h per site.
    pub fn n_raw_features(&self) -> usize {
        let per = match self.features {
            FeatureKind::Odd => self.n_frequencies,
            FeatureKind::NonOdd => 2 * self.n_frequencies + 1,
        };
        per + self.linear_feature as usize
    }
    /// Number of feature channels n_c entering the convolution.
    pub fn n_channels(&self) -> usize {
        self.feature_mixing.unwrap_or_else(|| self.n_raw_features())
    }
    /// Number of time channels n_tc weighting the kernel.
    pub fn n_time_channels(&self) -> usize {
        self.time_mixing.unwrap_or(self.time_kernel_size)
    }
}

impl Default for Architecture {
    fn default() -> Self {
        Self::seed()
    }
}
