//! The effect chain (parametric EQ, then compressor): streaming rendering for users, and
//! taped rendering with its exact vector–Jacobian product for training.

use super::compressor::{self, Compressor, CompressorSettings, CompressorTape};
use super::eq::{self, BandSettings, Eq, EqSettings, EqTape};
use super::params::{COMP_OFFSET, KNOBS, KNOBS_PER_SECTION, Knobs, NUM_KNOBS, comp_index};
use crate::{Error, Real, Result};

/// Lowest sample rate the chain accepts.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate the chain accepts.
pub const MAX_SAMPLE_RATE: u32 = 192_000;

/// Checks that the chain supports a sample rate.
pub fn check_sample_rate(sample_rate: u32) -> Result<()> {
    crate::audio::check_sample_rate(sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
}

/// The chain's settings split per effect, in physical units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainSettings {
    pub eq: EqSettings,
    pub comp: CompressorSettings,
}

impl From<&Knobs> for ChainSettings {
    fn from(k: &Knobs) -> Self {
        let v = &k.0;
        ChainSettings {
            eq: std::array::from_fn(|s| {
                let b = &v[s * KNOBS_PER_SECTION..];
                BandSettings { gain_db: b[0], freq_hz: b[1], q: b[2] }
            }),
            comp: CompressorSettings {
                threshold_db: v[comp_index::THRESHOLD_DB],
                ratio: v[comp_index::RATIO],
                attack_ms: v[comp_index::ATTACK_MS],
                release_ms: v[comp_index::RELEASE_MS],
                knee_db: v[comp_index::KNEE_DB],
                makeup_db: v[comp_index::MAKEUP_DB],
            },
        }
    }
}

/// The streaming chain: any block size, state carried across blocks, no allocation while
/// processing. Stereo (or more) channels share the settings and a linked detector.
#[derive(Clone, Debug)]
pub struct Chain<T> {
    eq: Eq<T>,
    comp: Compressor<T>,
    sample_rate: f64,
}

impl<T: Real> Chain<T> {
    /// A chain at rest for `channels` channels at `sample_rate`.
    pub fn new(knobs: &Knobs, sample_rate: u32, channels: usize) -> Result<Self> {
        check_sample_rate(sample_rate)?;
        if channels == 0 {
            return Err(Error::Invalid("the chain needs at least one channel".into()));
        }
        knobs.validate()?;
        let s = ChainSettings::from(knobs);
        let fs = sample_rate as f64;
        Ok(Chain { eq: Eq::new(&s.eq, fs, channels), comp: Compressor::new(&s.comp, fs), sample_rate: fs })
    }

    /// Changes the knobs, keeping the state (no allocation).
    pub fn set_knobs(&mut self, knobs: &Knobs) -> Result<()> {
        knobs.validate()?;
        let s = ChainSettings::from(knobs);
        self.eq.set(&s.eq, self.sample_rate);
        self.comp.set(&s.comp, self.sample_rate);
        Ok(())
    }

    /// Returns every filter and the compressor to rest.
    pub fn reset(&mut self) {
        self.eq.reset();
        self.comp.reset();
    }

    /// Processes one block in place; every channel must have the same length.
    pub fn process(&mut self, channels: &mut [&mut [T]]) {
        self.eq.process(channels);
        self.comp.process(channels);
    }
}

/// Renders whole signals through the chain from rest, in place.
pub fn render<T: Real>(knobs: &Knobs, sample_rate: u32, channels: &mut [&mut [T]]) -> Result<()> {
    Chain::new(knobs, sample_rate, channels.len())?.process(channels);
    Ok(())
}

/// A rendering of one example (all its channels) with everything its adjoint needs. Reuse one
/// tape across calls to avoid reallocating.
#[derive(Clone, Debug, Default)]
pub struct ChainTape<T> {
    eq: Vec<EqTape<T>>,
    comp: CompressorTape<T>,
    output: Vec<Vec<T>>,
}

impl<T: Real> ChainTape<T> {
    /// The rendered output channels.
    pub fn output(&self) -> &[Vec<T>] {
        &self.output
    }
}

/// Gradients of a loss with respect to the chain's input and knobs.
#[derive(Clone, Debug)]
pub struct ChainGrad<T> {
    /// `∂L/∂input`, per channel.
    pub input: Vec<Vec<T>>,
    /// `∂L/∂knob` in physical units, in [`KNOBS`] order.
    pub knobs: [f64; NUM_KNOBS],
}

impl<T> ChainGrad<T> {
    /// The knob gradient with respect to the normalised knobs (`∂L/∂n = ∂L/∂x · ∂x/∂n`).
    pub fn knobs_normalized(&self, knobs: &Knobs) -> [f64; NUM_KNOBS] {
        std::array::from_fn(|i| self.knobs[i] * KNOBS[i].physical_per_normalized(knobs.0[i]))
    }
}

/// Renders one example from rest, recording the tape; returns the output channels.
pub fn forward<'a, T: Real>(knobs: &Knobs, sample_rate: u32, input: &[&[T]], tape: &'a mut ChainTape<T>) -> &'a [Vec<T>] {
    let s = ChainSettings::from(knobs);
    let fs = sample_rate as f64;
    let designs = eq::design_all(&s.eq, fs);
    tape.eq.resize_with(input.len(), Default::default);
    tape.output.resize_with(input.len(), Vec::new);
    for ((x, stages), out) in input.iter().zip(tape.eq.iter_mut()).zip(tape.output.iter_mut()) {
        out.clear();
        out.extend_from_slice(x);
        eq::forward(&designs, out, stages);
    }
    let mut views: Vec<&mut [T]> = tape.output.iter_mut().map(|c| c.as_mut_slice()).collect();
    compressor::forward(&s.comp, fs, &mut views, &mut tape.comp);
    &tape.output
}

/// The exact vector–Jacobian product of [`forward`]: from `∂L/∂output` to the gradients with
/// respect to the input and every knob.
pub fn vjp<T: Real>(
    knobs: &Knobs,
    sample_rate: u32,
    input: &[&[T]],
    tape: &ChainTape<T>,
    grad_output: &[&[T]],
) -> ChainGrad<T> {
    let s = ChainSettings::from(knobs);
    let fs = sample_rate as f64;
    let designs = eq::design_all(&s.eq, fs);
    let mut grad: Vec<Vec<T>> = grad_output.iter().map(|g| g.to_vec()).collect();
    let mut knob_grad = [0.0; NUM_KNOBS];
    let comp_in: Vec<&[T]> = tape.eq.iter().map(|st| st[st.len() - 1].as_slice()).collect();
    {
        let mut views: Vec<&mut [T]> = grad.iter_mut().map(|c| c.as_mut_slice()).collect();
        let mut comp_grad = [0.0; 6];
        compressor::adjoint(&s.comp, fs, &comp_in, &tape.comp, &mut views, &mut comp_grad);
        knob_grad[COMP_OFFSET..].copy_from_slice(&comp_grad);
    }
    let mut eq_grad = [[0.0; 3]; super::params::NUM_EQ_SECTIONS];
    for ((x, stages), g) in input.iter().zip(&tape.eq).zip(grad.iter_mut()) {
        eq::adjoint(&designs, x, stages, g, &mut eq_grad);
    }
    knob_grad[..COMP_OFFSET].copy_from_slice(eq_grad.as_flattened());
    ChainGrad { input: grad, knobs: knob_grad }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::test_signals::{corner_knobs, program, random_knobs, weights};

    /// `L = Σ w·y` for a rendering; its gradient with respect to the output is `w`.
    fn linear_loss(knobs: &Knobs, fs: u32, input: &[Vec<f64>], w: &[Vec<f64>]) -> f64 {
        let views: Vec<&[f64]> = input.iter().map(|c| c.as_slice()).collect();
        let mut tape = ChainTape::default();
        forward(knobs, fs, &views, &mut tape)
            .iter()
            .zip(w)
            .map(|(y, w)| y.iter().zip(w).map(|(a, b)| a * b).sum::<f64>())
            .sum()
    }

    fn exact(knobs: &Knobs, fs: u32, input: &[Vec<f64>], w: &[Vec<f64>]) -> ChainGrad<f64> {
        let views: Vec<&[f64]> = input.iter().map(|c| c.as_slice()).collect();
        let wv: Vec<&[f64]> = w.iter().map(|c| c.as_slice()).collect();
        let mut tape = ChainTape::default();
        forward(knobs, fs, &views, &mut tape);
        vjp(knobs, fs, &views, &tape, &wv)
    }

    /// Asserts that `exact` matches `fd` coordinate by coordinate, relative to each entry (and
    /// to the vector's scale for entries that are nearly zero).
    fn assert_close(what: &str, exact: &[f64], fd: &[f64], tol: f64) {
        let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what}: gradient vanishes");
        for (i, (a, b)) in exact.iter().zip(fd).enumerate() {
            let err = (a - b).abs() / b.abs().max(1e-4 * scale);
            assert!(err <= tol, "{what}: entry {i}: exact {a:e} vs finite difference {b:e} (rel {err:e})");
        }
    }

    /// The central difference `(f(h) − f(−h)) / 2h` closest to `exact` over a sweep of steps
    /// `h = scale·10^−k`, k = 2..=7. The chain is piecewise smooth (compressor branches flip
    /// under large steps) and large gains amplify rounding under small ones, so no single step
    /// suits every knob; a wrong gradient matches none of them.
    fn derivative(f: impl Fn(f64) -> f64, scale: f64, exact: f64) -> f64 {
        (2..=7)
            .map(|k| {
                let h = scale * 10f64.powi(-k);
                (f(h) - f(-h)) / (2.0 * h)
            })
            .min_by(|a, b| (a - exact).abs().total_cmp(&(b - exact).abs()))
            .unwrap()
    }

    fn check_knob_gradients(knobs: Knobs, fs: u32, channels: usize, seed: u64) {
        let len = 3000;
        let input = program(seed, channels, len, fs as f64);
        let w: Vec<Vec<f64>> = (0..channels).map(|c| weights(seed * 31 + c as u64, len)).collect();
        let g = exact(&knobs, fs, &input, &w);
        let fd: Vec<f64> = (0..NUM_KNOBS)
            .map(|i| {
                derivative(
                    |d| {
                        let mut k = knobs;
                        k.0[i] += d;
                        linear_loss(&k, fs, &input, &w)
                    },
                    knobs.0[i].abs().max(1.0),
                    g.knobs[i],
                )
            })
            .collect();
        assert_close(&format!("knobs at {fs} Hz, {channels} ch, {knobs:?}"), &g.knobs, &fd, 1e-4);
        // Normalised knobs: a finite difference in the normalised domain.
        let n0 = knobs.to_normalized();
        let gn = g.knobs_normalized(&knobs);
        for i in [0, 4, 10, 19, 20, 21] {
            let fd = derivative(
                |d| {
                    let mut k = knobs;
                    k.0[i] = denorm_unclamped(i, n0[i] + d);
                    linear_loss(&k, fs, &input, &w)
                },
                1.0,
                gn[i],
            );
            let err = (gn[i] - fd).abs() / fd.abs().max(1e-4 * gn.iter().fold(0.0f64, |m, v| m.max(v.abs())));
            assert!(err < 1e-4, "normalised knob {i}: {} vs {fd}", gn[i]);
        }
    }

    /// Denormalisation without clamping, so finite differences can step past the range ends.
    fn denorm_unclamped(i: usize, n: f64) -> f64 {
        let k = KNOBS[i];
        match k.skew {
            crate::fx::Skew::Linear => k.min + n * (k.max - k.min),
            crate::fx::Skew::Log => k.min * ((k.max / k.min).ln() * n).exp(),
        }
    }

    #[test]
    fn knob_gradients_match_finite_differences_at_random_settings() {
        for (seed, fs) in [(1, 8_000), (2, 24_000), (3, 44_100), (4, 48_000), (5, 96_000), (6, 192_000)] {
            for trial in 0..3 {
                check_knob_gradients(random_knobs(seed * 10 + trial), fs, 1 + (trial as usize % 2), seed);
            }
        }
    }

    #[test]
    fn knob_gradients_match_finite_differences_at_range_ends() {
        for (seed, fs) in [(11, 16_000), (12, 44_100), (13, 192_000)] {
            for trial in 0..3 {
                let mut k = corner_knobs(seed * 10 + trial);
                // Two range ends are kinks with one-sided derivatives: a hard knee (tested
                // below), and ratio 1, where x_L = y_L = 0 at every sample so the attack/release
                // branch of every sample is a tie. Step just inside them.
                k.0[comp_index::KNEE_DB] = 3.0;
                k.0[comp_index::RATIO] = k.0[comp_index::RATIO].max(1.001);
                check_knob_gradients(k, fs, 2, seed);
            }
        }
        let mut hard = random_knobs(99);
        hard.0[comp_index::KNEE_DB] = 0.0;
        hard.0[comp_index::THRESHOLD_DB] = -30.0;
        let len = 3000;
        let input = program(7, 1, len, 48_000.0);
        let w = vec![weights(8, len)];
        let g = exact(&hard, 48_000, &input, &w);
        for i in [comp_index::THRESHOLD_DB, comp_index::RATIO, comp_index::ATTACK_MS, comp_index::RELEASE_MS] {
            let fd = derivative(
                |d| {
                    let mut k = hard;
                    k.0[i] += d;
                    linear_loss(&k, 48_000, &input, &w)
                },
                hard.0[i].abs(),
                g.knobs[i],
            );
            assert!((g.knobs[i] - fd).abs() <= 1e-4 * fd.abs(), "hard knee knob {i}: {} vs {fd}", g.knobs[i]);
        }
    }

    #[test]
    fn input_gradient_matches_finite_differences() {
        for (seed, fs, channels) in [(21, 24_000, 1), (22, 44_100, 2), (23, 8_000, 2)] {
            let len = 2000;
            let knobs = random_knobs(seed);
            let input = program(seed, channels, len, fs as f64);
            let w: Vec<Vec<f64>> = (0..channels).map(|c| weights(seed + 100 * c as u64, len)).collect();
            let g = exact(&knobs, fs, &input, &w);
            for c in 0..channels {
                let picks: Vec<usize> = (0..40).map(|i| (i * 997 + 13 * c) % len).collect();
                let fd: Vec<f64> = picks
                    .iter()
                    .map(|&n| {
                        derivative(
                            |d| {
                                let mut x = input.clone();
                                x[c][n] += d;
                                linear_loss(&knobs, fs, &x, &w)
                            },
                            1.0,
                            g.input[c][n],
                        )
                    })
                    .collect();
                let an: Vec<f64> = picks.iter().map(|&n| g.input[c][n]).collect();
                assert_close(&format!("input grad ch {c} at {fs} Hz"), &an, &fd, 1e-4);
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_block_size() {
        let fs = 44_100;
        let input: Vec<Vec<f32>> =
            program(5, 2, 10_000, fs as f64).into_iter().map(|c| c.into_iter().map(|v| v as f32).collect()).collect();
        let knobs = random_knobs(17);
        let views: Vec<&[f32]> = input.iter().map(|c| c.as_slice()).collect();
        let mut tape = ChainTape::default();
        let reference = forward(&knobs, fs, &views, &mut tape).to_vec();
        for block in [1usize, 7, 64, 255, 256, 257, 1000, 4096] {
            let mut chain = Chain::<f32>::new(&knobs, fs, 2).unwrap();
            let mut out = input.clone();
            let len = out[0].len();
            let mut start = 0;
            while start < len {
                let end = (start + block).min(len);
                let (l, r) = out.split_at_mut(1);
                chain.process(&mut [&mut l[0][start..end], &mut r[0][start..end]]);
                start = end;
            }
            assert_eq!(out, reference, "block size {block}");
        }
    }
}
