//! A tilt EQ of its own design: one first-order section that turns the spectrum about a pivot,
//! and the first-order shelf it is made of (shared with the tape's emphasis).

use serde::{Deserialize, Serialize};

use super::{below_nyquist, check_input, check_setting};
use crate::Result;

/// A tilt: `tilt_db` is the difference between the top and the bottom of the spectrum, split
/// evenly about `pivot_hz` (positive brightens, negative darkens).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TiltSettings {
    pub tilt_db: f64,
    pub pivot_hz: f64,
}

impl TiltSettings {
    fn check(&self) -> Result<()> {
        check_setting("tilt", "tilt_db", self.tilt_db, -24.0, 24.0)?;
        check_setting("tilt", "pivot_hz", self.pivot_hz, 20.0, 20_000.0)
    }
}

/// Tilts the spectrum by `tilt_db` about `pivot_hz` with the first-order analog prototype
/// `H(s) = (A s + ω_p) / (s + A ω_p)`, `A = 10^(tilt_db / 40)`: DC gain `1/A` (−tilt/2 dB), high
/// frequency gain `A` (+tilt/2 dB), unity at `ω_p`, 6 dB/octave between (the one-knob tilt of
/// hi-fi tone stages such as the Quad 44's; first-order shelving prototype as in Zölzer, *DAFX*,
/// ch. 2), discretised by the bilinear transform prewarped at the pole, so the Nyquist frequency
/// keeps exactly +tilt/2 dB. The pole is held below 0.45 × the sample rate.
pub fn tilt(channels: &[Vec<f32>], sample_rate: u32, settings: &TiltSettings) -> Result<Vec<Vec<f32>>> {
    check_input(channels, sample_rate, "tilt")?;
    settings.check()?;
    let a = 10f64.powf(settings.tilt_db / 40.0);
    let pole_hz = below_nyquist(settings.pivot_hz * a, sample_rate);
    let section = FirstOrder::shelf(1.0 / a, a, pole_hz, sample_rate);
    Ok(channels.iter().map(|channel| section.run(channel)).collect())
}

/// A first-order IIR section `y[n] = b0 x[n] + b1 x[n−1] − a1 y[n−1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct FirstOrder {
    b0: f64,
    b1: f64,
    a1: f64,
}

impl FirstOrder {
    /// The bilinear transform, prewarped at the pole, of `H(s) = (g_hf s + g_dc ω_c) / (s + ω_c)`:
    /// with `t = tan(π f_c / fs)`, `b0 = (g_hf + g_dc t) / (1 + t)`, `b1 = (g_dc t − g_hf) / (1 + t)`,
    /// `a1 = (t − 1) / (1 + t)`. Gain `g_dc` at DC and `g_hf` at the Nyquist frequency exactly; a
    /// shelf for positive gains, a first-order high-pass for `g_dc = 0`.
    pub(super) fn shelf(dc_gain: f64, hf_gain: f64, pole_hz: f64, sample_rate: u32) -> Self {
        let t = (std::f64::consts::PI * pole_hz / f64::from(sample_rate)).tan();
        FirstOrder { b0: (hf_gain + dc_gain * t) / (1.0 + t), b1: (dc_gain * t - hf_gain) / (1.0 + t), a1: (t - 1.0) / (1.0 + t) }
    }

    /// The exact inverse `1 / H(z)` (stable when `H`'s zero lies inside the unit circle, as for
    /// a shelf with positive gains).
    pub(super) fn inverse(self) -> Self {
        FirstOrder { b0: 1.0 / self.b0, b1: self.a1 / self.b0, a1: self.b1 / self.b0 }
    }

    /// Filters `x` from rest (transposed direct form II, in `f64`).
    pub(super) fn run(self, x: &[f32]) -> Vec<f32> {
        let mut state = 0.0;
        x.iter()
            .map(|&v| {
                let (input, output) = (f64::from(v), f64::from(v) * self.b0 + state);
                state = self.b1 * input - self.a1 * output;
                output as f32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signals::sine_gain_db;
    use super::*;

    fn gain_db(tilt_db: f64, pivot_hz: f64, frequency_hz: f64, sample_rate: u32) -> f64 {
        let settings = TiltSettings { tilt_db, pivot_hz };
        sine_gain_db(|x| tilt(x, sample_rate, &settings).unwrap(), frequency_hz, 0.5, sample_rate)
    }

    #[test]
    fn ends_move_opposite_ways_by_half_the_tilt() {
        for sample_rate in [16_000, 44_100, 48_000, 192_000] {
            for tilt_db in [-6.0, 3.0, 8.0] {
                let low_db = gain_db(tilt_db, 1_000.0, 20.0, sample_rate);
                let high_db = gain_db(tilt_db, 1_000.0, 0.45 * f64::from(sample_rate), sample_rate);
                assert!((low_db + tilt_db / 2.0).abs() < 0.5, "{sample_rate} Hz, tilt {tilt_db}: 20 Hz at {low_db} dB");
                assert!((high_db - tilt_db / 2.0).abs() < 0.5, "{sample_rate} Hz, tilt {tilt_db}: top at {high_db} dB");
                assert!(low_db * high_db < 0.0, "the ends move opposite ways");
            }
        }
    }

    #[test]
    fn pivot_passes_at_unity() {
        for tilt_db in [-6.0, 6.0] {
            let pivot_db = gain_db(tilt_db, 800.0, 800.0, 48_000);
            assert!(pivot_db.abs() < 0.1, "tilt {tilt_db}: pivot at {pivot_db} dB");
        }
    }

    #[test]
    fn inverse_undoes_the_shelf() {
        let shelf = FirstOrder::shelf(1.0, 3.0, 2_000.0, 44_100);
        let x = super::super::test_signals::noise(3, 0.5, 4_000);
        let back = shelf.inverse().run(&shelf.run(&x));
        let error = x.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(error < 1e-5, "round trip error {error}");
    }
}
