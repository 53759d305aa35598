//! Level matching: the output stage of a model whose level is relative to its reference.
//!
//! A *level-relative* model does not set the output level with an absolute make-up gain. The
//! chain renders `y_pre`; the stage scales it by one gain `c` so that its level is the
//! reference's plus the chain's output gain `m` (the compressor's make-up in `eq,comp`;
//! [`crate::fx::ChainSpec::output_gain`]):
//!
//! `y = c · y_pre`, `c = 10^((L_ref + m − L(y_pre)) / 20)`, so `L(y) = L_ref + m`.
//!
//! `L` is the ungated K-weighted level of ITU-R BS.1770 without its −0.691 dB offset:
//! `L(x) = 10·log10(mean_c mean_n (K x_c)[n]²)`, the mean over channels (so a dual-mono stereo
//! file has its mono level). Since `y_pre` already carries the make-up gain, `c` does not
//! depend on `m` and the chain's own make-up stays exact: the stage only moves the rest of the
//! level (what the EQ and the compressor did to it) onto the reference's.
//!
//! The adjoint, for `u = ∂loss/∂y` and `s = Σ u·y`: `∂loss/∂L_target = s · ln10/20` (`L_target =
//! L_ref + m`), and `∂loss/∂y_pre = c·u − (ln10/20) · s · ∇L(y_pre)` with
//! `∇L(x)_c = (10/ln10) · 2·Kᵀ(K x_c) / (C·N·ms)`. `Kᵀ` is the K-filter run backwards in time.
//! Because `L` is scale-invariant, `∇L(y_pre)·y_pre = 20/ln10` and the gradient that reaches
//! the chain's make-up through `y_pre` is zero: `m` acts through `L_target` alone.

use serde::{Deserialize, Serialize};

use super::biquad::Coeffs;

/// How a rendering sets the output level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum OutputLevel {
    /// The chain as it is: the make-up knob is an absolute gain.
    #[default]
    Absolute,
    /// The chain's output is scaled to the reference's level plus the make-up knob
    /// ([`LevelMatch`]).
    Reference,
}

impl OutputLevel {
    /// After the chain rendered `output`: for [`OutputLevel::Reference`], scales it to the
    /// reference's level ([`level_db`], asked of `reference_db` only then) plus the chain's
    /// output gain in dB ([`crate::fx::ChainKnobs::output_gain_db`]) and returns the gain
    /// applied; 1 for [`OutputLevel::Absolute`].
    pub fn finish(self, output: &mut [&mut [f32]], sample_rate: u32, reference_db: impl FnOnce() -> f64, output_gain_db: f64) -> f64 {
        match self {
            OutputLevel::Absolute => 1.0,
            OutputLevel::Reference => LevelMatch::apply(output, sample_rate, reference_db() + output_gain_db).gain,
        }
    }
}

/// Levels below this (dB) are treated as silence: the stage then applies a fixed gain and
/// passes no gradient through the level.
pub const SILENCE_DB: f64 = -120.0;

/// The two K-weighting sections of ITU-R BS.1770 (a high shelf of about +4 dB above 1.5 kHz,
/// then the RLB high-pass at 38 Hz), designed for `sample_rate` from their analogue
/// prototypes by the bilinear transform with pre-warping (as libebur128 does), so every rate
/// gets the same curve.
pub fn k_weighting(sample_rate: u32) -> [Coeffs; 2] {
    let fs = f64::from(sample_rate);
    let (f0, gain_db, q) = (1681.974450955533, 3.999843853973347, 0.7071752369554196);
    let k = (std::f64::consts::PI * f0 / fs).tan();
    let vh = 10f64.powf(gain_db / 20.0);
    let vb = vh.powf(0.4996667741545416);
    let a0 = 1.0 + k / q + k * k;
    let shelf = Coeffs {
        b0: (vh + vb * k / q + k * k) / a0,
        b1: 2.0 * (k * k - vh) / a0,
        b2: (vh - vb * k / q + k * k) / a0,
        a1: 2.0 * (k * k - 1.0) / a0,
        a2: (1.0 - k / q + k * k) / a0,
    };
    let (f0, q) = (38.13547087602444, 0.5003270373238773);
    let k = (std::f64::consts::PI * f0 / fs).tan();
    let a0 = 1.0 + k / q + k * k;
    let high_pass = Coeffs { b0: 1.0, b1: -2.0, b2: 1.0, a1: 2.0 * (k * k - 1.0) / a0, a2: (1.0 - k / q + k * k) / a0 };
    [shelf, high_pass]
}

/// `x` through both sections from rest (direct form I, f64).
fn k_filter(sections: &[Coeffs; 2], x: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut filter = KFilter::new(sections);
    x.map(|v| filter.next(v)).collect()
}

/// The two K-weighting sections run sample by sample from rest (direct form I, f64), for
/// callers that need `K x` once and need not keep it.
#[derive(Clone, Debug)]
pub struct KFilter {
    sections: [Coeffs; 2],
    /// Per section: x[n−1], x[n−2], y[n−1], y[n−2].
    state: [[f64; 4]; 2],
}

impl KFilter {
    pub fn new(sections: &[Coeffs; 2]) -> KFilter {
        KFilter { sections: *sections, state: [[0.0; 4]; 2] }
    }

    /// `K x` of each sample of `xs` in turn, handed to `each` (the state carries on to the next
    /// call). The loop runs on a copy of the filter in locals, so its state stays in registers.
    #[inline]
    pub fn each(&mut self, xs: &[f32], mut each: impl FnMut(f64)) {
        let mut local = self.clone();
        for &x in xs {
            each(local.next(f64::from(x)));
        }
        *self = local;
    }

    /// The next sample of `K x`.
    #[inline]
    pub fn next(&mut self, x: f64) -> f64 {
        let mut v = x;
        for (c, [x1, x2, y1, y2]) in self.sections.iter().zip(&mut self.state) {
            let out = c.b0 * v + c.b1 * *x1 + c.b2 * *x2 - c.a1 * *y1 - c.a2 * *y2;
            (*x2, *x1, *y2, *y1) = (*x1, v, *y1, out);
            v = out;
        }
        v
    }
}

/// Every channel K-weighted (`K x_c`).
fn k_weighted(sections: &[Coeffs; 2], channels: &[&[f32]]) -> Vec<Vec<f64>> {
    channels.iter().map(|c| k_filter(sections, c.iter().map(|&v| f64::from(v)))).collect()
}

/// `10·log10` of the mean square over all channels and samples of K-weighted channels, at
/// least [`SILENCE_DB`].
fn level_of(weighted: &[Vec<f64>]) -> f64 {
    let count: usize = weighted.iter().map(Vec::len).sum();
    let sum: f64 = weighted.iter().flatten().map(|v| v * v).sum();
    let ms = if count == 0 { 0.0 } else { sum / count as f64 };
    (10.0 * ms.log10()).max(SILENCE_DB)
}

/// The K-weighted level `L` of `channels` (all of one length) in dB, at least
/// [`SILENCE_DB`].
pub fn level_db(channels: &[&[f32]], sample_rate: u32) -> f64 {
    level_of(&k_weighted(&k_weighting(sample_rate), channels))
}

/// What [`LevelMatch::apply`] did, kept for the adjoint.
#[derive(Clone, Debug, Default)]
pub struct LevelMatch {
    /// The gain `c` applied.
    pub gain: f64,
    /// `L(y_pre)` in dB.
    pub pre_db: f64,
    /// `K y_pre` per channel; `None` when the input counted as silence (no gradient through
    /// the level).
    weighted: Option<Vec<Vec<f64>>>,
    sample_rate: u32,
}

impl LevelMatch {
    /// Scales `y` (the chain's output `y_pre`, in place) to the level `target_db`, recording
    /// what the adjoint needs.
    pub fn apply(y: &mut [&mut [f32]], sample_rate: u32, target_db: f64) -> LevelMatch {
        let views: Vec<&[f32]> = y.iter().map(|c| &**c).collect();
        let weighted = k_weighted(&k_weighting(sample_rate), &views);
        let pre_db = level_of(&weighted);
        let gain = 10f64.powf((target_db - pre_db) / 20.0);
        y.iter_mut().flat_map(|c| c.iter_mut()).for_each(|v| *v = (f64::from(*v) * gain) as f32);
        let weighted = (pre_db > SILENCE_DB).then_some(weighted);
        LevelMatch { gain, pre_db, weighted, sample_rate }
    }

    /// The adjoint: from `y` (the stage's output) and `u = ∂loss/∂y`, returns `∂loss/∂y_pre`
    /// per channel and `∂loss/∂target_db`.
    pub fn vjp(&self, y: &[&[f32]], u: &[&[f32]]) -> (Vec<Vec<f32>>, f64) {
        let s: f64 = y.iter().zip(u).map(|(y, u)| y.iter().zip(*u).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()).sum();
        let d_target = s * std::f64::consts::LN_10 / 20.0;
        let gain = self.gain;
        let grads = match &self.weighted {
            None => u.iter().map(|u| u.iter().map(|&v| (gain * f64::from(v)) as f32).collect()).collect(),
            Some(weighted) => u
                .iter()
                .zip(gradient(&k_weighting(self.sample_rate), weighted, self.pre_db))
                .map(|(u, dl)| u.iter().zip(dl).map(|(&v, g)| (gain * f64::from(v) - d_target * g) as f32).collect())
                .collect(),
        };
        (grads, d_target)
    }
}

/// `L` of `channels` and its gradient `∂L/∂x` per channel (all zero for silence).
pub fn level_db_and_gradient(channels: &[&[f32]], sample_rate: u32) -> (f64, Vec<Vec<f64>>) {
    let sections = k_weighting(sample_rate);
    let weighted = k_weighted(&sections, channels);
    let level = level_of(&weighted);
    if level <= SILENCE_DB {
        return (level, channels.iter().map(|c| vec![0.0; c.len()]).collect());
    }
    (level, gradient(&sections, &weighted, level))
}

/// `∇L(x)_c = (10/ln10) · 2·Kᵀ(K x_c) / (C·N·ms)` from the K-weighted channels `K x_c` and
/// `L = 10·log10(ms)`; `Kᵀ` is the filter run over the reversed signal, reversed back.
fn gradient(sections: &[Coeffs; 2], weighted: &[Vec<f64>], level_db: f64) -> Vec<Vec<f64>> {
    let total: usize = weighted.iter().map(Vec::len).sum();
    let scale = 20.0 / std::f64::consts::LN_10 / (total as f64 * 10f64.powf(level_db / 10.0));
    weighted
        .iter()
        .map(|w| {
            let mut back = k_filter(sections, w.iter().rev().copied());
            back.reverse();
            back.iter().map(|b| scale * b).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::test_signals::{program, weights};

    fn to32(v: Vec<f64>) -> Vec<f32> {
        v.into_iter().map(|x| x as f32).collect()
    }

    /// For a stationary signal the ungated level equals BS.1770's gated integrated loudness
    /// (the ebur128 crate) plus its 0.691 dB offset, at any rate.
    #[test]
    fn the_level_is_bs1770_loudness_without_its_offset() {
        for rate in [16_000u32, 24_000, 44_100, 48_000, 96_000] {
            let n = rate as usize * 4;
            let noise: Vec<f32> = weights(7, n).into_iter().map(|v| (0.3 * v) as f32).collect();
            let tone: Vec<f32> =
                (0..n).map(|i| (0.3 * (2.0 * std::f64::consts::PI * 997.0 * i as f64 / f64::from(rate)).sin()) as f32).collect();
            for x in [&noise, &tone] {
                let lufs = crate::metrics::loudness_lufs(x, rate, "test").unwrap();
                let level = level_db(&[x.as_slice()], rate);
                assert!((level - 0.691 - lufs).abs() < 0.05, "{rate} Hz: {level} vs {lufs} LUFS");
            }
        }
    }

    #[test]
    fn the_stage_hits_its_target_level() {
        let mut y = to32(program(3, 1, 30_000, 24_000.0).remove(0));
        let stage = LevelMatch::apply(&mut [y.as_mut_slice()], 24_000, -17.5);
        assert!((level_db(&[y.as_slice()], 24_000) + 17.5).abs() < 1e-4);
        assert!(stage.gain > 0.0);
    }

    /// The level's gradient against central differences, on a stereo signal.
    #[test]
    fn the_level_gradient_matches_finite_differences() {
        let (rate, n) = (44_100u32, 3_000usize);
        let x: Vec<Vec<f32>> = program(13, 2, n, f64::from(rate)).into_iter().map(to32).collect();
        let level = |x: &[Vec<f32>]| level_db(&x.iter().map(Vec::as_slice).collect::<Vec<_>>(), rate);
        let (value, grad) = level_db_and_gradient(&x.iter().map(Vec::as_slice).collect::<Vec<_>>(), rate);
        assert!((value - level(&x)).abs() < 1e-12);
        for (c, i) in [(0, 0), (0, 1_234), (1, 77), (1, 2_999)] {
            let eps = 1e-2f32;
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus[c][i] += eps;
            minus[c][i] -= eps;
            let fd = (level(&plus) - level(&minus)) / (2.0 * f64::from(eps));
            assert!((fd - grad[c][i]).abs() < 1e-3 * grad[c][i].abs().max(1e-3), "[{c}][{i}]: {fd} vs {}", grad[c][i]);
        }
    }

    /// The adjoint against central differences of `Σ w·y` with respect to samples of `y_pre`
    /// and to the target level, on a stereo signal.
    #[test]
    fn the_adjoint_matches_finite_differences() {
        let (rate, n) = (24_000u32, 4_000usize);
        let pre: Vec<Vec<f32>> = program(11, 2, n, f64::from(rate)).into_iter().map(to32).collect();
        let w: Vec<Vec<f32>> = (0..2).map(|c| to32(weights(5 + c, n))).collect();
        let target = -20.0;
        let loss = |pre: &[Vec<f32>], target: f64| -> f64 {
            let mut y = pre.to_vec();
            let mut views: Vec<&mut [f32]> = y.iter_mut().map(|c| c.as_mut_slice()).collect();
            LevelMatch::apply(&mut views, rate, target);
            y.iter().zip(&w).map(|(y, w)| y.iter().zip(w).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()).sum()
        };
        let mut y = pre.clone();
        let mut views: Vec<&mut [f32]> = y.iter_mut().map(|c| c.as_mut_slice()).collect();
        let stage = LevelMatch::apply(&mut views, rate, target);
        let yv: Vec<&[f32]> = y.iter().map(|c| c.as_slice()).collect();
        let wv: Vec<&[f32]> = w.iter().map(|c| c.as_slice()).collect();
        let (grads, d_target) = stage.vjp(&yv, &wv);
        let h = 1e-3;
        let fd = (loss(&pre, target + h) - loss(&pre, target - h)) / (2.0 * h);
        assert!((fd - d_target).abs() < 1e-3 * d_target.abs().max(1e-3), "{fd} vs {d_target}");
        for (c, i) in [(0, 0), (0, 17), (1, 999), (1, 3_998), (0, 2_500)] {
            let eps = 1e-2f32;
            let mut plus = pre.clone();
            plus[c][i] += eps;
            let mut minus = pre.clone();
            minus[c][i] -= eps;
            let fd = (loss(&plus, target) - loss(&minus, target)) / (2.0 * f64::from(eps));
            let g = f64::from(grads[c][i]);
            assert!((fd - g).abs() < 2e-3 * g.abs().max(0.05), "[{c}][{i}]: {fd} vs {g}");
        }
    }
}
