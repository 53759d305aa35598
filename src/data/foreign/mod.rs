//! Foreign processing: effects that are not afx's chain, to make the styles and corruptions of an
//! evaluation that the network cannot recognise by afx's own fingerprints (issue 20).
//!
//! Each processor is one pure function of (planar channels, sample rate, settings in physical
//! units) to processed channels of the same shape, at any rate from 8 to 192 kHz, mono or
//! stereo (dynamics link their channels through one detector). None uses the kernels of
//! [`crate::fx`]; each is another design, named with its source on its function:
//! [`rms_compress`] (RMS detector, opto-style two-stage release), [`fir_eq`] (linear-phase FIR
//! by frequency sampling), [`tilt`] (first-order tilt), [`tape`] (oversampled asymmetric
//! saturation between pre- and de-emphasis), [`limit`] (look-ahead brickwall limiter with an
//! oversampled peak detector), and SoX's effects through the `sox` command ([`sox`]).
//! [`ForeignRecipe`] draws a seeded chain of them as a mastering engineer (music) or a podcast
//! editor (speech) would set them.

mod compressor;
mod fir_eq;
mod limiter;
mod recipe;
mod sox;
mod tape;
mod tilt;

pub use compressor::{RmsCompressorSettings, rms_compress};
pub use fir_eq::{EqPoint, FirEqSettings, fir_eq};
pub use limiter::{LimiterSettings, limit};
pub use recipe::{Domain, ForeignKind, ForeignRecipe, ForeignStep};
pub use sox::{SoxEffect, sox, sox_available};
pub use tape::{TapeSettings, tape};
pub use tilt::{TiltSettings, tilt};

use crate::{Error, Result};

/// Highest frequency, as a fraction of the sample rate, that a corner or centre frequency is
/// held below (bilinear designs and SoX's filters need it under the Nyquist frequency).
const MAX_CORNER_FRACTION: f64 = 0.45;

/// Checks what every processor is given: a sample rate of 8–192 kHz and non-empty channels of
/// equal length holding finite samples. `processor` names the processor in the error.
fn check_input(channels: &[Vec<f32>], sample_rate: u32, processor: &str) -> Result<()> {
    crate::fx::check_sample_rate(sample_rate)?;
    crate::audio::validate_channels(channels, processor)
}

/// Fails with [`Error::ForeignSetting`] unless `low <= value <= high` (so a NaN fails too).
fn check_setting(processor: &'static str, setting: &'static str, value: f64, low: f64, high: f64) -> Result<()> {
    if (low..=high).contains(&value) {
        return Ok(());
    }
    let reason = if value.is_finite() { "is out of its range" } else { "is not a finite number" };
    Err(Error::ForeignSetting { processor, setting, value, reason })
}

/// `10^(gain_db / 20)`: a level in dB as an amplitude factor.
fn db_to_gain(gain_db: f64) -> f64 {
    10f64.powf(gain_db / 20.0)
}

/// `frequency_hz`, held below [`MAX_CORNER_FRACTION`] of the sample rate.
fn below_nyquist(frequency_hz: f64, sample_rate: u32) -> f64 {
    frequency_hz.min(MAX_CORNER_FRACTION * f64::from(sample_rate))
}

/// A duration in milliseconds as a whole number of samples, at least one.
fn ms_to_samples(duration_ms: f64, sample_rate: u32) -> usize {
    ((duration_ms * 1e-3 * f64::from(sample_rate)).round() as usize).max(1)
}

/// The coefficient of a one-pole smoother with time constant `time_ms`: `exp(−1 / (τ · fs))`,
/// so a step is followed to 1 − 1/e in `time_ms`.
fn one_pole_coeff(time_ms: f64, sample_rate: u32) -> f64 {
    (-1.0 / (time_ms * 1e-3 * f64::from(sample_rate))).exp()
}

#[cfg(test)]
mod test_signals {
    //! Signals and measurements shared by the processors' tests.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `amplitude · sin(2π f n / fs)` for `frames` samples.
    pub fn sine(frequency_hz: f64, amplitude: f64, sample_rate: u32, frames: usize) -> Vec<f32> {
        let step = std::f64::consts::TAU * frequency_hz / f64::from(sample_rate);
        (0..frames).map(|n| (amplitude * (step * n as f64).sin()) as f32).collect()
    }

    /// Uniform white noise in `[−amplitude, amplitude]`.
    pub fn noise(seed: u64, amplitude: f64, frames: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..frames).map(|_| rng.random_range(-amplitude..=amplitude) as f32).collect()
    }

    /// Root mean square of `x`.
    pub fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// The least-squares fit `a sin + b cos` at `frequency_hz` to `x` (whose first sample is at
    /// phase 0), returned as `(amplitude, residual rms)`.
    pub fn fit_sine(x: &[f32], frequency_hz: f64, sample_rate: u32) -> (f64, f64) {
        let step = std::f64::consts::TAU * frequency_hz / f64::from(sample_rate);
        let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (n, &v) in x.iter().enumerate() {
            let (s, c) = (step * n as f64).sin_cos();
            (ss, cc, sc, xs, xc) = (ss + s * s, cc + c * c, sc + s * c, xs + s * f64::from(v), xc + c * f64::from(v));
        }
        let det = ss * cc - sc * sc;
        let (a, b) = ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
        let residual = x.iter().enumerate().map(|(n, &v)| {
            let (s, c) = (step * n as f64).sin_cos();
            (f64::from(v) - a * s - b * c).powi(2)
        });
        (a.hypot(b), (residual.sum::<f64>() / x.len() as f64).sqrt())
    }

    /// The gain in dB that a processor gives a sine of `frequency_hz`, measured on the middle
    /// half of the signal (away from start-up and edges).
    pub fn sine_gain_db(process: impl Fn(&[Vec<f32>]) -> Vec<Vec<f32>>, frequency_hz: f64, amplitude: f64, sample_rate: u32) -> f64 {
        let frames = sample_rate as usize;
        let output = process(&[sine(frequency_hz, amplitude, sample_rate, frames)]);
        let (start, end) = (frames / 4, 3 * frames / 4);
        20.0 * (fit_sine(&output[0][start..end], frequency_hz, sample_rate).0 / amplitude).log10()
    }
}
