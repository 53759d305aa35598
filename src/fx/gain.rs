//! A plain gain stage (`gain`): `y = 10^(gain_db/20) · x`, and its adjoint.

use super::effect::Effect;
use super::knob::{KnobSpec, Skew};
use super::track::Track;
use crate::Real;

/// `ln(10) / 20`: `d 10^(g/20) / dg = 10^(g/20) · ln(10)/20`.
const LN10_OVER_20: f64 = std::f64::consts::LN_10 / 20.0;

/// The linear gain of `gain_db`.
fn linear(gain_db: f64) -> f64 {
    (gain_db * LN10_OVER_20).exp()
}

/// A gain stage as a chain effect.
pub struct GainEffect;

/// The streaming state: the linear gain.
#[derive(Clone, Copy, Debug)]
pub struct Gain(f64);

impl Effect for GainEffect {
    const NAME: &'static str = "gain";
    const DESCRIPTION: &'static str = "gain in dB";
    const KNOBS: &'static [KnobSpec] = &[KnobSpec::new("gain_db", "dB", (-24.0, 24.0), 0.0, Skew::Linear, "gain")];
    const OUTPUT_GAIN: Option<usize> = Some(0);
    type Stream<T: Real> = Gain;
    type Tape<T: Real> = ();

    fn stream<T: Real>(knobs: &[f64], _sample_rate: f64, _channels: usize) -> Gain {
        Gain(linear(knobs[0]))
    }

    fn set<T: Real>(stream: &mut Gain, knobs: &[f64], _sample_rate: f64) {
        stream.0 = linear(knobs[0]);
    }

    fn reset<T: Real>(_stream: &mut Gain) {}

    fn process<T: Real>(stream: &mut Gain, channels: &mut [&mut [T]]) {
        let g = T::of(stream.0);
        channels.iter_mut().flat_map(|c| c.iter_mut()).for_each(|v| *v = *v * g);
    }

    fn forward<T: Real>(track: Track<'_>, _sample_rate: f64, channels: &mut [&mut [T]], _tape: &mut ()) {
        let len = channels.first().map_or(0, |c| c.len());
        for (_, range, knobs) in track.spans(len) {
            let g = T::of(linear(knobs[0]));
            channels.iter_mut().flat_map(|c| c[range.clone()].iter_mut()).for_each(|v| *v = *v * g);
        }
    }

    fn adjoint<T: Real>(track: Track<'_>, _sample_rate: f64, input: &[&[T]], _tape: &(), grad: &mut [&mut [T]], knob_grad: &mut [f64]) {
        let len = input.first().map_or(0, |c| c.len());
        for (i, range, knobs) in track.spans(len) {
            let g = linear(knobs[0]);
            let mut dot = 0.0;
            for (gc, xc) in grad.iter_mut().zip(input) {
                for (g_out, x) in gc[range.clone()].iter_mut().zip(&xc[range.clone()]) {
                    dot += g_out.to64() * x.to64();
                    *g_out = *g_out * T::of(g);
                }
            }
            knob_grad[i] += dot * g * LN10_OVER_20;
        }
    }

    fn response_db(knobs: &[f64], _sample_rate: f64, _freq_hz: f64) -> Option<f64> {
        Some(knobs[0])
    }

    fn static_curve_db(knobs: &[f64], level_db: f64) -> Option<f64> {
        Some(level_db + knobs[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_db_doubles_the_amplitude() {
        for (db, factor) in [(6.020_599_913_279_624, 2.0), (-20.0, 0.1), (0.0, 1.0)] {
            let mut x = vec![0.25f64, -0.5, 1.0];
            GainEffect::process::<f64>(&mut GainEffect::stream::<f64>(&[db], 48_000.0, 1), &mut [&mut x]);
            for (y, x0) in x.iter().zip([0.25, -0.5, 1.0]) {
                assert!((y - factor * x0).abs() < 1e-12, "{db} dB: {y}");
            }
        }
    }
}
