//! Stereo width (`width`): mid/side balance. With `M = (L + R)/2`, `S = (L − R)/2` and
//! `w = width/100`, the output is `L' = M + w·S`, `R' = M − w·S` (0 % folds to mono, 100 % leaves
//! the signal as it is, 200 % doubles the side). Anything but two channels passes unchanged.

use super::effect::Effect;
use super::knob::{KnobSpec, Skew};
use super::track::Track;
use crate::Real;

/// The width as a chain effect.
pub struct WidthEffect;

/// The streaming state: the side gain `w`.
#[derive(Clone, Copy, Debug)]
pub struct Width(f64);

/// `w` of a width in percent.
fn side_gain(knobs: &[f64]) -> f64 {
    knobs[0] / 100.0
}

impl Effect for WidthEffect {
    const NAME: &'static str = "width";
    const DESCRIPTION: &'static str = "stereo width: mid/side balance (mono and multichannel pass unchanged)";
    const KNOBS: &'static [KnobSpec] =
        &[KnobSpec::new("width_pct", "%", (0.0, 200.0), 100.0, Skew::Linear, "side level: 0 mono, 100 unchanged, 200 twice as wide")];
    type Stream<T: Real> = Width;
    type Tape<T: Real> = ();

    fn stream<T: Real>(knobs: &[f64], _sample_rate: f64, _channels: usize) -> Width {
        Width(side_gain(knobs))
    }

    fn set<T: Real>(stream: &mut Width, knobs: &[f64], _sample_rate: f64) {
        stream.0 = side_gain(knobs);
    }

    fn reset<T: Real>(_stream: &mut Width) {}

    fn process<T: Real>(stream: &mut Width, channels: &mut [&mut [T]]) {
        let [left, right] = channels else { return };
        let (half, w) = (T::of(0.5), T::of(stream.0));
        for (l, r) in left.iter_mut().zip(right.iter_mut()) {
            let (mid, side) = ((*l + *r) * half, (*l - *r) * half * w);
            (*l, *r) = (mid + side, mid - side);
        }
    }

    fn forward<T: Real>(track: Track<'_>, _sample_rate: f64, channels: &mut [&mut [T]], _tape: &mut ()) {
        let len = channels.first().map_or(0, |c| c.len());
        for (_, range, knobs) in track.spans(len) {
            let mut views: Vec<&mut [T]> = channels.iter_mut().map(|c| &mut c[range.clone()]).collect();
            Self::process::<T>(&mut Width(side_gain(knobs)), &mut views);
        }
    }

    /// With `a = ∂L/∂L'`, `b = ∂L/∂R'`: `∂L/∂L = (a + b)/2 + w(a − b)/2`,
    /// `∂L/∂R = (a + b)/2 − w(a − b)/2`, `∂L/∂width = Σ (a − b)·S / 100`.
    fn adjoint<T: Real>(track: Track<'_>, _sample_rate: f64, input: &[&[T]], _tape: &(), grad: &mut [&mut [T]], knob_grad: &mut [f64]) {
        let ([x_l, x_r], [g_l, g_r]) = (input, grad) else { return };
        for (i, range, knobs) in track.spans(x_l.len()) {
            let w = side_gain(knobs);
            let mut dw = 0.0;
            for (((gl, gr), xl), xr) in g_l[range.clone()]
                .iter_mut()
                .zip(g_r[range.clone()].iter_mut())
                .zip(&x_l[range.clone()])
                .zip(&x_r[range.clone()])
            {
                let (a, b) = (gl.to64(), gr.to64());
                dw += (a - b) * 0.5 * (xl.to64() - xr.to64());
                let (mid, side) = (0.5 * (a + b), 0.5 * w * (a - b));
                (*gl, *gr) = (T::of(mid + side), T::of(mid - side));
            }
            knob_grad[i] += dw / 100.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widen(width_pct: f64, left: &[f64], right: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (mut l, mut r) = (left.to_vec(), right.to_vec());
        WidthEffect::process::<f64>(&mut WidthEffect::stream::<f64>(&[width_pct], 48_000.0, 2), &mut [&mut l, &mut r]);
        (l, r)
    }

    #[test]
    fn zero_is_mono_hundred_is_unchanged_and_the_side_scales() {
        let left: Vec<f64> = (0..500).map(|n| (n as f64 * 0.07).sin()).collect();
        let right: Vec<f64> = (0..500).map(|n| 0.3 * (n as f64 * 0.011).cos()).collect();
        let (l, r) = widen(0.0, &left, &right);
        for n in 0..500 {
            assert!((l[n] - r[n]).abs() < 1e-15 && (l[n] - 0.5 * (left[n] + right[n])).abs() < 1e-15);
        }
        let (l, r) = widen(100.0, &left, &right);
        for n in 0..500 {
            assert!((l[n] - left[n]).abs() < 1e-15 && (r[n] - right[n]).abs() < 1e-15, "sample {n}");
        }
        let (l, r) = widen(150.0, &left, &right);
        for n in 0..500 {
            // Mid kept, side times 1.5.
            assert!(((l[n] + r[n]) - (left[n] + right[n])).abs() < 1e-12);
            assert!(((l[n] - r[n]) - 1.5 * (left[n] - right[n])).abs() < 1e-12);
        }
        let mut mono = left.clone();
        WidthEffect::process::<f64>(&mut WidthEffect::stream::<f64>(&[0.0], 48_000.0, 1), &mut [&mut mono]);
        assert_eq!(mono, left);
    }
}
