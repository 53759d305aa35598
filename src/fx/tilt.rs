//! Tilt EQ (`tilt`): one knob that tips the spectrum about a pivot, darker one way and brighter
//! the other, as a low shelf of `−tilt/2` dB and a high shelf of `+tilt/2` dB at the pivot
//! (RBJ shelves at Q = 1/√2, the steepest without overshoot). Below the pivot the response
//! tends to `−tilt/2` dB, above it to `+tilt/2` dB, and at the pivot each shelf gives half its
//! gain, so the two cancel: 0 dB (the cookbook's shelf has gain `A = 10^(dB/40)` at `f0`).

use super::biquad::{self, Design, Shape};
use super::cascade::{self, CascadeTape, Cascades};
use super::effect::Effect;
use super::knob::{KnobSpec, Skew};
use super::track::Track;
use crate::Real;

const TILT_DB: usize = 0;
const PIVOT_HZ: usize = 1;

/// The two shelves of a setting.
fn designs(knobs: &[f64], sample_rate: f64) -> [Design; 2] {
    let (half, pivot, q) = (knobs[TILT_DB] / 2.0, knobs[PIVOT_HZ], std::f64::consts::FRAC_1_SQRT_2);
    [biquad::design(Shape::LowShelf, -half, pivot, q, sample_rate), biquad::design(Shape::HighShelf, half, pivot, q, sample_rate)]
}

/// Every segment's shelves.
fn segment_designs(track: &Track<'_>, sample_rate: f64) -> Vec<[Design; 2]> {
    (0..track.segments()).map(|i| designs(track.knobs(i), sample_rate)).collect()
}

/// The tilt EQ as a chain effect.
pub struct TiltEffect;

impl Effect for TiltEffect {
    const NAME: &'static str = "tilt";
    const DESCRIPTION: &'static str = "tilt EQ: opposite shelves about a pivot (darker or brighter with one knob)";
    const KNOBS: &'static [KnobSpec] = &[
        KnobSpec::new("tilt_db", "dB", (-12.0, 12.0), 0.0, Skew::Linear, "high end minus low end: +6 lifts the top 3 dB, cuts the bottom 3 dB"),
        KnobSpec::new("pivot_hz", "Hz", (200.0, 5000.0), 1000.0, Skew::Log, "frequency the spectrum tips about (clamped to 0.45 x sample rate)"),
    ];
    type Stream<T: Real> = Cascades<T, 2>;
    type Tape<T: Real> = Vec<CascadeTape<T, 2>>;

    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, channels: usize) -> Cascades<T, 2> {
        Cascades::new(&designs(knobs, sample_rate), channels)
    }

    fn set<T: Real>(stream: &mut Cascades<T, 2>, knobs: &[f64], sample_rate: f64) {
        stream.set(&designs(knobs, sample_rate));
    }

    fn reset<T: Real>(stream: &mut Cascades<T, 2>) {
        stream.reset();
    }

    fn process<T: Real>(stream: &mut Cascades<T, 2>, channels: &mut [&mut [T]]) {
        stream.process(channels);
    }

    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut Vec<CascadeTape<T, 2>>) {
        cascade::forward_channels(&segment_designs(&track, sample_rate), &track, channels, tape);
    }

    /// The shelves' gains are `∓tilt/2`, their frequency the pivot.
    fn adjoint<T: Real>(
        track: Track<'_>,
        sample_rate: f64,
        input: &[&[T]],
        tape: &Vec<CascadeTape<T, 2>>,
        grad: &mut [&mut [T]],
        knob_grad: &mut [f64],
    ) {
        let section_grad = cascade::adjoint_channels(&segment_designs(&track, sample_rate), &track, input, tape, grad);
        for ([low, high], knob_grad) in section_grad.iter().zip(knob_grad.chunks_mut(Self::KNOBS.len())) {
            knob_grad[TILT_DB] += (high[0] - low[0]) / 2.0;
            knob_grad[PIVOT_HZ] += low[1] + high[1];
        }
    }

    fn response_db(knobs: &[f64], sample_rate: f64, freq_hz: f64) -> Option<f64> {
        Some(designs(knobs, sample_rate).iter().map(|d| d.coeffs.magnitude_db(freq_hz, sample_rate)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settled gain of a sine through the streaming tilt.
    fn measured_db(knobs: &[f64], f: f64, fs: f64) -> f64 {
        let mut x: Vec<f64> = (0..fs as usize).map(|n| (2.0 * std::f64::consts::PI * f * n as f64 / fs).sin()).collect();
        TiltEffect::process(&mut TiltEffect::stream::<f64>(knobs, fs, 1), &mut [&mut x]);
        let tail = &x[x.len() / 2..];
        20.0 * ((tail.iter().map(|v| v * v).sum::<f64>() / tail.len() as f64).sqrt() * 2f64.sqrt()).log10()
    }

    #[test]
    fn the_ends_move_by_half_the_tilt_each_way_and_the_pivot_stays() {
        let fs = 48_000.0;
        for (tilt, pivot) in [(6.0, 1000.0), (-12.0, 400.0), (9.0, 3000.0)] {
            let knobs = [tilt, pivot];
            let pivot_db = measured_db(&knobs, pivot, fs);
            assert!(pivot_db.abs() < 0.01, "tilt {tilt} at its pivot: {pivot_db} dB");
            // Three and a half octaves away the shelves are within 0.2 dB of their plateaus.
            let (low, high) = (measured_db(&knobs, pivot / 12.0, fs), measured_db(&knobs, pivot * 6.0, fs));
            assert!((low + tilt / 2.0).abs() < 0.2, "tilt {tilt}: {low} dB below");
            assert!((high - tilt / 2.0).abs() < 0.2, "tilt {tilt}: {high} dB above");
            // The plateaus in the limit: DC and Nyquist of the designed response.
            let dc = TiltEffect::response_db(&knobs, fs, 1e-3).unwrap();
            let nyquist = TiltEffect::response_db(&knobs, fs, fs / 2.0).unwrap();
            assert!((dc + tilt / 2.0).abs() < 1e-6 && (nyquist - tilt / 2.0).abs() < 1e-6, "{dc} / {nyquist}");
        }
    }
}
