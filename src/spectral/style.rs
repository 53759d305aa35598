//! A distance between the production styles of two recordings that needs no aligned target:
//! it compares what EQ and compression change (the average spectrum and the spread of levels
//! over time), not the waveforms, so the two recordings may hold different content.
//!
//! With `Y_t[k]` the STFT of [`super::Stft`] (periodic Hann, centred, reflect padding), `W` a
//! Slaney mel filterbank and `E_t = Σ_k |Y_t[k]|²` the power of frame `t`:
//!
//! - average mel spectrum `S[m] = ln((1/T) Σ_t Σ_k W[m][k] |Y_t[k]|² + FLOOR)`;
//! - dynamics `σ = std{ ln E_t : t active }`, the standard deviation of the frames' log power
//!   over the active frames (`E_t ≥ GATE · mean_t E_t`, so pauses do not count);
//! - `D(y, r) = (1/M) Σ_m (S_y[m] − S_r[m])² + (σ_y − σ_r)²`, both terms in nepers of power
//!   (1 dB ≈ 0.23).
//!
//! The gate is a step function of the signal, so `D` is differentiable wherever no frame sits
//! exactly on it, and [`StyleDistance::value_and_grad`] gives that exact gradient.

use realfft::num_complex::Complex;

use super::{MelFilterbank, Stft};

/// Mel power added before the logarithm (−80 dB below a full-scale band).
const FLOOR: f64 = 1e-8;
/// Frames more than 40 dB below the mean frame power are left out of the dynamics.
const GATE: f64 = 1e-4;

/// The settings of a [`StyleDistance`].
#[derive(Clone, Debug, PartialEq)]
pub struct StyleDistanceConfig {
    pub n_fft: usize,
    pub hop: usize,
    pub n_mels: usize,
    pub fmin_hz: f64,
    pub fmax_hz: f64,
}

impl StyleDistanceConfig {
    /// The analysis front end's framing (2048 / 512) and 64 bands from 20 Hz to 12 kHz: at
    /// 24 kHz, frames of 85 ms every 21 ms.
    pub fn at(sample_rate: u32) -> Self {
        Self { n_fft: 2048, hop: 512, n_mels: 64, fmin_hz: 20.0, fmax_hz: 12_000f64.min(sample_rate as f64 / 2.0) }
    }
}

/// The statistics of one recording that the distance compares.
#[derive(Clone, Debug, PartialEq)]
pub struct StyleStats {
    /// `S[m]`, the log average mel power per band.
    pub log_mel: Vec<f64>,
    /// `σ`, the spread of the active frames' log power.
    pub dynamics: f64,
}

/// [`StyleStats`] of a fixed reference, and the distance of any output to them with its
/// gradient. Plans and buffers are reused across calls.
pub struct StyleDistance {
    stft: Stft<f32>,
    /// The filterbank as dense rows, `n_mels × bins`.
    bank: Vec<Vec<f64>>,
    reference: StyleStats,
    spectra: Vec<Complex<f32>>,
}

impl StyleDistance {
    /// Plans the distance to `reference` at `sample_rate`.
    ///
    /// # Panics
    /// If the reference is shorter than one frame (`n_fft / 2 + 1` samples).
    pub fn new(reference: &[f32], sample_rate: u32, config: &StyleDistanceConfig) -> Self {
        let filterbank = MelFilterbank::new(sample_rate as f64, config.n_fft, config.n_mels, config.fmin_hz, config.fmax_hz);
        let mut distance = Self {
            stft: Stft::new(config.n_fft, config.hop),
            bank: (0..config.n_mels).map(|m| filterbank.row(m)).collect(),
            reference: StyleStats { log_mel: Vec::new(), dynamics: 0.0 },
            spectra: Vec::new(),
        };
        distance.reference = distance.analyse(reference).stats;
        distance
    }

    /// The reference's statistics.
    pub fn reference(&self) -> &StyleStats {
        &self.reference
    }

    /// The statistics of `signal`.
    pub fn stats(&mut self, signal: &[f32]) -> StyleStats {
        self.analyse(signal).stats
    }

    /// `D(output, reference)`.
    pub fn value(&mut self, output: &[f32]) -> f64 {
        let stats = self.stats(output);
        self.distance(&stats)
    }

    /// `D(output, reference)`, and `∂D/∂output` written into `grad` (same length as `output`).
    pub fn value_and_grad(&mut self, output: &[f32], grad: &mut [f32]) -> f64 {
        assert_eq!(grad.len(), output.len(), "one gradient value per output sample");
        let analysis = self.analyse(output);
        let stats = &analysis.stats;
        let (bands, frames) = (self.bank.len(), analysis.frame_power.len());
        // ∂D/∂|Y_t[k]|² = Σ_m W[m][k] · a_m + b_t: the spectrum term gives a weight per bin,
        // the same in every frame, the dynamics term a weight per frame, the same in every bin.
        let band_weight: Vec<f64> = (0..bands)
            .map(|m| {
                let difference = stats.log_mel[m] - self.reference.log_mel[m];
                2.0 * difference / bands as f64 / (frames as f64 * (analysis.mean_mel[m] + FLOOR))
            })
            .collect();
        let bin_weight: Vec<f64> =
            (0..self.stft.num_bins()).map(|k| self.bank.iter().zip(&band_weight).map(|(row, a)| row[k] * a).sum()).collect();
        let d_sigma = 2.0 * (stats.dynamics - self.reference.dynamics);
        let frame_weight: Vec<f64> = analysis
            .frame_power
            .iter()
            .zip(&analysis.active)
            .map(|(&e, &active)| {
                if !active || stats.dynamics <= 0.0 {
                    return 0.0;
                }
                let centred = e.ln() - analysis.mean_log_power;
                d_sigma * centred / (analysis.active_frames as f64 * stats.dynamics) / e
            })
            .collect();
        let bins = self.stft.num_bins();
        for (t, spectrum) in self.spectra.chunks_exact_mut(bins).enumerate() {
            for (y, w) in spectrum.iter_mut().zip(&bin_weight) {
                // ∂|Y|²/∂(Re, Im) = 2 (Re, Im).
                *y = y.scale((2.0 * (w + frame_weight[t])) as f32);
            }
        }
        grad.fill(0.0);
        self.stft.adjoint(&mut self.spectra, grad);
        self.distance(stats)
    }

    fn distance(&self, stats: &StyleStats) -> f64 {
        let bands = self.reference.log_mel.len() as f64;
        let spectrum: f64 = stats.log_mel.iter().zip(&self.reference.log_mel).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / bands;
        spectrum + (stats.dynamics - self.reference.dynamics).powi(2)
    }

    /// The STFT of `signal` (kept in `self.spectra` for the gradient) and its statistics.
    fn analyse(&mut self, signal: &[f32]) -> Analysis {
        let (frames, bins) = (self.stft.num_frames(signal.len()), self.stft.num_bins());
        self.spectra.resize(frames * bins, Complex::default());
        self.stft.forward(signal, &mut self.spectra);
        let mut mean_mel = vec![0.0f64; self.bank.len()];
        let mut frame_power = Vec::with_capacity(frames);
        let mut power = vec![0.0f64; bins];
        for spectrum in self.spectra.chunks_exact(bins) {
            for (p, y) in power.iter_mut().zip(spectrum) {
                *p = y.norm_sqr() as f64;
            }
            frame_power.push(power.iter().sum::<f64>());
            for (mel, row) in mean_mel.iter_mut().zip(&self.bank) {
                *mel += row.iter().zip(&power).map(|(w, p)| w * p).sum::<f64>() / frames as f64;
            }
        }
        let mean_power = frame_power.iter().sum::<f64>() / frames as f64;
        let active: Vec<bool> = frame_power.iter().map(|&e| e > 0.0 && e >= GATE * mean_power).collect();
        let logs: Vec<f64> = frame_power.iter().zip(&active).filter(|(_, a)| **a).map(|(e, _)| e.ln()).collect();
        let active_frames = logs.len();
        let mean_log_power = logs.iter().sum::<f64>() / active_frames.max(1) as f64;
        let dynamics = if active_frames > 1 {
            (logs.iter().map(|l| (l - mean_log_power).powi(2)).sum::<f64>() / active_frames as f64).sqrt()
        } else {
            0.0
        };
        Analysis {
            stats: StyleStats { log_mel: mean_mel.iter().map(|p| (p + FLOOR).ln()).collect(), dynamics },
            mean_mel,
            frame_power,
            active,
            active_frames,
            mean_log_power,
        }
    }
}

/// What the gradient needs besides the statistics.
struct Analysis {
    stats: StyleStats,
    mean_mel: Vec<f64>,
    frame_power: Vec<f64>,
    active: Vec<bool>,
    active_frames: usize,
    mean_log_power: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const RATE: u32 = 24_000;

    /// Noise with a slow level envelope, so the dynamics term is not trivial.
    fn program(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len)
            .map(|i| {
                let envelope = 0.2 + 0.15 * (i as f32 * 2e-4).sin() + 0.1 * (i as f32 * 7e-4).cos();
                envelope * rng.random_range(-1.0f32..1.0)
            })
            .collect()
    }

    #[test]
    fn distance_to_itself_is_zero_and_grows_with_a_gain_change() {
        let x = program(24_000, 1);
        let mut d = StyleDistance::new(&x, RATE, &StyleDistanceConfig::at(RATE));
        assert!(d.value(&x).abs() < 1e-12);
        // A gain g moves every S[m] by ln g² (while the bands are far above the floor) and
        // leaves σ unchanged: D = (2 ln g)².
        let louder: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
        let expected = (2.0 * 2f64.ln()).powi(2);
        assert!((d.value(&louder) - expected).abs() < 1e-4 * expected, "{} vs {expected}", d.value(&louder));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, r) = (program(12_000, 2), program(12_000, 3));
        let r: Vec<f32> = r.iter().enumerate().map(|(i, v)| v * (1.0 + 0.8 * (i as f32 * 1e-3).sin())).collect();
        let mut d = StyleDistance::new(&r, RATE, &StyleDistanceConfig::at(RATE));
        let mut grad = vec![0.0f32; x.len()];
        d.value_and_grad(&x, &mut grad);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for _ in 0..4 {
            let direction: Vec<f32> = (0..x.len()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let h = 1e-3f32;
            let at = |s: f32| -> Vec<f32> { x.iter().zip(&direction).map(|(a, b)| a + s * b).collect() };
            let numeric = (d.value(&at(h)) - d.value(&at(-h))) / (2.0 * h as f64);
            let analytic: f64 = grad.iter().zip(&direction).map(|(g, v)| (g * v) as f64).sum();
            assert!((numeric - analytic).abs() < 2e-3 * numeric.abs().max(1e-3), "{numeric} vs {analytic}");
        }
    }
}
