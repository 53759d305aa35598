//! High-pass (`hpf`) and low-pass (`lpf`) filters, 12 or 24 dB/oct, Butterworth at
//! Q = 1/√2 and resonant above it, as true recursive RBJ biquads with their exact adjoint.
//!
//! 12 dB/oct is one second-order section with quality `q`. 24 dB/oct is the fourth-order
//! Butterworth pair, sections of quality `1/(2cos(π/8)) ≈ 0.541` and `1/(2cos(3π/8)) ≈ 1.307`
//! (Butterworth, "On the theory of filter amplifiers", 1930; the pole angles of a 4th-order
//! Butterworth filter), with the second scaled by `q·√2` so that `q` sets the resonance as in
//! the 12 dB/oct case. Through the bilinear transform with prewarping, the Butterworth settings
//! have exactly `|H|² = 1 / (1 + (tan(πf/fs) / tan(πfc/fs))^(2n))` (low-pass; the high-pass has
//! the ratio inverted), `n` = 2 or 4, which the tests check.

use super::biquad::{self, Coeffs, Design, Shape};
use super::cascade::{self, CascadeTape, Cascades};
use super::effect::Effect;
use super::knob::{KnobSpec, Skew, StepSize};
use super::track::Track;
use crate::Real;

/// Sections per filter (the second is a pass-through at 12 dB/oct).
const SECTIONS: usize = 2;
/// Quality of the two sections of a 4th-order Butterworth filter.
const BUTTERWORTH_Q4: [f64; 2] = [0.541_196_100_146_197, 1.306_562_964_876_376_5];

/// Knob positions.
const FREQ_HZ: usize = 0;
const Q: usize = 1;
const SLOPE_DB: usize = 2;

/// A pass-through section: `y = x`, no dependence on any knob.
fn identity() -> Design {
    Design { coeffs: Coeffs { b0: 1.0, ..Coeffs::default() }, jacobian: [Coeffs::default(); 3] }
}

/// The two sections' designs, and `∂Q_section/∂q` of each.
fn designs(shape: Shape, knobs: &[f64], sample_rate: f64) -> ([Design; SECTIONS], [f64; SECTIONS]) {
    let (freq, q) = (knobs[FREQ_HZ], knobs[Q]);
    if knobs[SLOPE_DB] < 18.0 {
        ([biquad::design(shape, 0.0, freq, q, sample_rate), identity()], [1.0, 0.0])
    } else {
        let scale = BUTTERWORTH_Q4[1] * std::f64::consts::SQRT_2;
        (
            [biquad::design(shape, 0.0, freq, BUTTERWORTH_Q4[0], sample_rate), biquad::design(shape, 0.0, freq, q * scale, sample_rate)],
            [0.0, scale],
        )
    }
}

/// The knobs of one shape: their frequency ranges and defaults differ.
macro_rules! filter_knobs {
    ($what:literal, $fmin:expr, $fmax:expr, $fdef:expr) => {
        &[
            KnobSpec::new(
                "freq_hz",
                "Hz",
                ($fmin, $fmax),
                $fdef,
                Skew::Log,
                concat!($what, " corner frequency (clamped to 0.45 x sample rate)"),
            ),
            KnobSpec::new(
                "q",
                "",
                (0.1, 10.0),
                std::f64::consts::FRAC_1_SQRT_2,
                Skew::Log,
                concat!($what, " resonance (0.707: Butterworth)"),
            ),
            KnobSpec::new("slope_db", "dB/oct", (12.0, 24.0), 12.0, Skew::Stepped(StepSize(12)), concat!($what, " slope, 12 or 24 dB/oct")),
        ]
    };
}

/// A high-pass (`HIGH_PASS`) or low-pass filter as a chain effect.
pub struct FilterEffect<const HIGH_PASS: bool>;
/// The high-pass filter (`hpf`).
pub type HpfEffect = FilterEffect<true>;
/// The low-pass filter (`lpf`).
pub type LpfEffect = FilterEffect<false>;

impl<const HIGH_PASS: bool> FilterEffect<HIGH_PASS> {
    const SHAPE: Shape = if HIGH_PASS { Shape::HighPass } else { Shape::LowPass };
}

/// The streaming filter: both sections on every channel.
pub type FilterStream<T> = Cascades<T, SECTIONS>;
/// Both sections' outputs, per channel.
pub type FilterTape<T> = Vec<CascadeTape<T, SECTIONS>>;

impl<const HIGH_PASS: bool> Effect for FilterEffect<HIGH_PASS> {
    const NAME: &'static str = if HIGH_PASS { "hpf" } else { "lpf" };
    const DESCRIPTION: &'static str = if HIGH_PASS {
        "high-pass filter, 12 or 24 dB/oct, Butterworth or resonant"
    } else {
        "low-pass filter, 12 or 24 dB/oct, Butterworth or resonant"
    };
    const KNOBS: &'static [KnobSpec] =
        if HIGH_PASS { filter_knobs!("high-pass", 20.0, 2000.0, 80.0) } else { filter_knobs!("low-pass", 500.0, 20000.0, 12000.0) };
    type Stream<T: Real> = FilterStream<T>;
    type Tape<T: Real> = FilterTape<T>;

    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, channels: usize) -> FilterStream<T> {
        Cascades::new(&designs(Self::SHAPE, knobs, sample_rate).0, channels)
    }

    fn set<T: Real>(stream: &mut FilterStream<T>, knobs: &[f64], sample_rate: f64) {
        stream.set(&designs(Self::SHAPE, knobs, sample_rate).0);
    }

    fn reset<T: Real>(stream: &mut FilterStream<T>) {
        stream.reset();
    }

    fn process<T: Real>(stream: &mut FilterStream<T>, channels: &mut [&mut [T]]) {
        stream.process(channels);
    }

    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut FilterTape<T>) {
        let d: Vec<_> = (0..track.segments()).map(|i| designs(Self::SHAPE, track.knobs(i), sample_rate).0).collect();
        cascade::forward_channels(&d, &track, channels, tape);
    }

    /// The sections' design gradients, summed into the shared frequency and chained into `q`
    /// through each section's `∂Q/∂q`.
    fn adjoint<T: Real>(
        track: Track<'_>,
        sample_rate: f64,
        input: &[&[T]],
        tape: &FilterTape<T>,
        grad: &mut [&mut [T]],
        knob_grad: &mut [f64],
    ) {
        let (d, dq): (Vec<_>, Vec<_>) = (0..track.segments()).map(|i| designs(Self::SHAPE, track.knobs(i), sample_rate)).unzip();
        let section_grad = cascade::adjoint_channels(&d, &track, input, tape, grad);
        for ((segment, dq), knob_grad) in section_grad.iter().zip(&dq).zip(knob_grad.chunks_mut(Self::KNOBS.len())) {
            for (s, dq) in segment.iter().zip(dq) {
                knob_grad[FREQ_HZ] += s[1];
                knob_grad[Q] += s[2] * dq;
            }
        }
    }

    fn response_db(knobs: &[f64], sample_rate: f64, freq_hz: f64) -> Option<f64> {
        Some(designs(Self::SHAPE, knobs, sample_rate).0.iter().map(|d| d.coeffs.magnitude_db(freq_hz, sample_rate)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steady-state gain in dB of a sine at `f` through the streaming filter.
    fn measured_gain_db<E: Effect>(knobs: &[f64], f: f64, fs: f64) -> f64 {
        let len = fs as usize;
        let mut x: Vec<f64> = (0..len).map(|n| (2.0 * std::f64::consts::PI * f * n as f64 / fs).sin()).collect();
        let mut s = E::stream::<f64>(knobs, fs, 1);
        E::process(&mut s, &mut [&mut x]);
        let tail = &x[len / 2..];
        let rms = (tail.iter().map(|v| v * v).sum::<f64>() / tail.len() as f64).sqrt();
        20.0 * (rms * 2f64.sqrt()).log10()
    }

    /// Butterworth through the bilinear transform: `|H|² = 1 / (1 + r^(2n))` with
    /// `r = tan(πf/fs) / tan(πfc/fs)` (low-pass) or its inverse (high-pass).
    fn butterworth_db(high_pass: bool, order: i32, f: f64, fc: f64, fs: f64) -> f64 {
        let w = |f: f64| (std::f64::consts::PI * f / fs).tan();
        let r = if high_pass { w(fc) / w(f) } else { w(f) / w(fc) };
        -10.0 * (1.0 + r.powi(2 * order)).log10()
    }

    #[test]
    fn butterworth_settings_have_the_closed_form_response() {
        let q = std::f64::consts::FRAC_1_SQRT_2;
        for fs in [16_000.0, 44_100.0, 96_000.0] {
            for (slope, order) in [(12.0, 2), (24.0, 4)] {
                for f in [50.0, 200.0, 1000.0, 3000.0, 6000.0] {
                    let hp = measured_gain_db::<HpfEffect>(&[150.0, q, slope], f, fs);
                    let lp = measured_gain_db::<LpfEffect>(&[2000.0, q, slope], f, fs);
                    let (hp_expected, lp_expected) =
                        (butterworth_db(true, order, f, 150.0, fs), butterworth_db(false, order, f, 2000.0, fs));
                    // Down to −80 dB; below that the tail's rounding noise dominates.
                    if hp_expected > -80.0 {
                        assert!((hp - hp_expected).abs() < 0.02, "hpf {slope} at {f} Hz, fs {fs}: {hp} vs {hp_expected}");
                    }
                    if lp_expected > -80.0 {
                        assert!((lp - lp_expected).abs() < 0.02, "lpf {slope} at {f} Hz, fs {fs}: {lp} vs {lp_expected}");
                    }
                }
            }
        }
    }

    #[test]
    fn resonance_peaks_near_the_corner_and_slopes_differ_by_the_order() {
        let fs = 48_000.0;
        // A resonant 12 dB/oct section peaks at Q (in dB, 20·log10 Q) near the corner.
        let (lp, _) = designs(Shape::LowPass, &[1000.0, 4.0, 12.0], fs);
        assert!((lp[0].coeffs.magnitude_db(1000.0, fs) - 20.0 * 4f64.log10()).abs() < 0.05);
        // An octave and more past the corner, 24 dB/oct falls twice as fast as 12.
        for slope in [12.0, 24.0] {
            let (d, _) = designs(Shape::HighPass, &[1000.0, std::f64::consts::FRAC_1_SQRT_2, slope], fs);
            let at = |f: f64| d.iter().map(|d| d.coeffs.magnitude_db(f, fs)).sum::<f64>();
            let per_octave = at(125.0) - at(62.5);
            assert!((per_octave - slope).abs() < 0.3, "{slope}: {per_octave} dB per octave");
        }
    }
}
