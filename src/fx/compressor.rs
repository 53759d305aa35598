//! Log-domain feed-forward compressor (Giannoulis, Massberg & Reiss, "Digital dynamic range
//! compressor design — a tutorial and analysis", JAES 60(6), 2012) with a linked detector, and
//! its exact adjoint.
//!
//! Per sample `n`, with the detector level the maximum over channels:
//! - level `x_G = max(20·log10(max_c |x_c[n]| + 1e-8), −96)`;
//! - static curve with a soft knee of width `W`, threshold `T`, ratio `R`:
//!   `y_G = x_G` if `2(x_G−T) < −W`; `x_G + (1/R − 1)(x_G − T + W/2)² / (2W)` if
//!   `|2(x_G−T)| ≤ W`; `T + (x_G−T)/R` otherwise;
//! - gain reduction `x_L = x_G − y_G`, smoothed by a branching one-pole
//!   `y_L[n] = α·y_L[n−1] + (1−α)·x_L[n]` with `α = α_A = exp(−ln 9 / (fs·attack_s))` when
//!   `x_L[n] > y_L[n−1]` and `α = α_R = exp(−ln 9 / (fs·release_s))` otherwise, `y_L[−1] = 0`;
//! - output `x_c[n] · 10^((makeup − y_L[n]) / 20)`.

use super::effect::Effect;
use super::knob::{KnobSpec, Skew};
use super::track::Track;
use super::params::comp_index;
use crate::Real;
use crate::simd::{Kernel, dispatch, madd};

/// The compressor's knobs (order: [`comp_index`]).
pub const COMP_KNOBS: &[KnobSpec] = &[
    KnobSpec::new("threshold_db", "dB", (-80.0, 0.0), -12.0, Skew::Linear, "compressor threshold"),
    KnobSpec::new("ratio", ":1", (1.0, 20.0), 2.0, Skew::Log, "compressor ratio"),
    KnobSpec::new("attack_ms", "ms", (0.1, 100.0), 1.0, Skew::Log, "compressor attack time (to 90 %)"),
    KnobSpec::new("release_ms", "ms", (5.0, 1000.0), 45.0, Skew::Log, "compressor release time (to 90 %)"),
    KnobSpec::new("knee_db", "dB", (0.0, 12.0), 6.0, Skew::Linear, "compressor soft-knee width"),
    KnobSpec::new("makeup_db", "dB", (-24.0, 24.0), 0.0, Skew::Linear, "compressor make-up gain"),
];

impl CompressorSettings {
    /// The settings from the compressor's knob values ([`COMP_KNOBS`] order).
    pub fn from_knobs(k: &[f64]) -> Self {
        CompressorSettings {
            threshold_db: k[comp_index::THRESHOLD_DB],
            ratio: k[comp_index::RATIO],
            attack_ms: k[comp_index::ATTACK_MS],
            release_ms: k[comp_index::RELEASE_MS],
            knee_db: k[comp_index::KNEE_DB],
            makeup_db: k[comp_index::MAKEUP_DB],
        }
    }
}

/// Every segment's settings.
fn settings_of(track: &Track<'_>) -> Vec<CompressorSettings> {
    (0..track.segments()).map(|i| CompressorSettings::from_knobs(track.knobs(i))).collect()
}

/// The compressor as a chain effect (`comp`).
pub struct CompEffect;

impl Effect for CompEffect {
    const NAME: &'static str = "comp";
    const DESCRIPTION: &'static str = "log-domain feed-forward compressor with soft knee and linked detector";
    const KNOBS: &'static [KnobSpec] = COMP_KNOBS;
    const LEVEL_KNOBS: Option<&'static [usize]> = Some(&[comp_index::THRESHOLD_DB]);
    const OUTPUT_GAIN: Option<usize> = Some(comp_index::MAKEUP_DB);
    type Stream<T: Real> = Compressor<T>;
    type Tape<T: Real> = CompressorTape<T>;

    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, _channels: usize) -> Compressor<T> {
        Compressor::new(&CompressorSettings::from_knobs(knobs), sample_rate)
    }

    fn set<T: Real>(stream: &mut Compressor<T>, knobs: &[f64], sample_rate: f64) {
        stream.set(&CompressorSettings::from_knobs(knobs), sample_rate);
    }

    fn reset<T: Real>(stream: &mut Compressor<T>) {
        stream.reset();
    }

    fn process<T: Real>(stream: &mut Compressor<T>, channels: &mut [&mut [T]]) {
        stream.process(channels);
    }

    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut CompressorTape<T>) {
        forward(&settings_of(&track), &track, sample_rate, channels, tape);
    }

    fn adjoint<T: Real>(
        track: Track<'_>,
        sample_rate: f64,
        input: &[&[T]],
        tape: &CompressorTape<T>,
        grad: &mut [&mut [T]],
        knob_grad: &mut [f64],
    ) {
        let mut g = vec![[0.0; 6]; track.segments()];
        adjoint(&settings_of(&track), &track, sample_rate, input, tape, grad, &mut g);
        for (k, g) in knob_grad.iter_mut().zip(g.as_flattened()) {
            *k += g;
        }
    }

    /// The gain computer plus make-up gain: where the detector settles on a steady level.
    fn static_curve_db(knobs: &[f64], level_db: f64) -> Option<f64> {
        let c = CompressorSettings::from_knobs(knobs);
        Some(gain_computer(level_db, c.threshold_db, c.ratio, c.knee_db).0 + c.makeup_db)
    }
}

/// Lowest detector level in dB.
pub const FLOOR_DB: f64 = -96.0;
/// Offset added to `|x|` before the logarithm.
pub const LEVEL_EPS: f64 = 1e-8;
/// Samples processed per inner block of the streaming path (the size of its scratch buffers).
const BLOCK: usize = 256;

/// Compressor settings in physical units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompressorSettings {
    pub threshold_db: f64,
    pub ratio: f64,
    pub attack_ms: f64,
    pub release_ms: f64,
    pub knee_db: f64,
    pub makeup_db: f64,
}

/// The linked detector's reading of frame `n`: the largest `|x|` over the channels, and the
/// channel it is on (the first of equals; 0 for silence). For the per-sample dynamics effects.
pub(crate) fn loudest<T: Real>(channels: &[impl AsRef<[T]>], n: usize) -> (f64, u32) {
    let (mut peak, mut channel) = (0.0f64, 0u32);
    for (c, x) in channels.iter().enumerate() {
        let a = x.as_ref()[n].to64().abs();
        if a > peak {
            (peak, channel) = (a, c as u32);
        }
    }
    (peak, channel)
}

/// One-pole coefficient for a time constant: `exp(−ln 9 / (fs · time_ms / 1000))`.
pub fn smoothing_coeff(time_ms: f64, sample_rate: f64) -> f64 {
    (-(9.0f64).ln() * 1000.0 / (sample_rate * time_ms)).exp()
}

/// `∂α/∂time_ms` of [`smoothing_coeff`].
pub(crate) fn smoothing_coeff_derivative(time_ms: f64, sample_rate: f64) -> f64 {
    smoothing_coeff(time_ms, sample_rate) * (9.0f64).ln() * 1000.0 / (sample_rate * time_ms * time_ms)
}

/// The static curve's output `y_G` and its partial derivatives with respect to
/// `(x_G, T, R, W)`.
pub fn gain_computer(x_g: f64, t: f64, r: f64, w: f64) -> (f64, [f64; 4]) {
    let over = 2.0 * (x_g - t);
    if over < -w {
        (x_g, [1.0, 0.0, 0.0, 0.0])
    } else if over > w || w <= 0.0 {
        (t + (x_g - t) / r, [1.0 / r, 1.0 - 1.0 / r, -(x_g - t) / (r * r), 0.0])
    } else {
        let d = x_g - t + w / 2.0;
        let s = 1.0 / r - 1.0;
        let y = x_g + s * d * d / (2.0 * w);
        (y, [1.0 + s * d / w, -s * d / w, -d * d / (2.0 * w * r * r), s * d * (w - d) / (2.0 * w * w)])
    }
}

/// Per-sample-rate constants of the kernel in the sample type.
#[derive(Clone, Copy, Debug, Default)]
struct Constants<T> {
    threshold: T,
    /// `1 − 1/R`.
    slope: T,
    knee: T,
    /// `1 / (2W)`, or 0 for a hard knee.
    inv_two_knee: T,
    alpha_attack: T,
    alpha_release: T,
    makeup_db: T,
}

impl<T: Real> Constants<T> {
    fn new(s: &CompressorSettings, sample_rate: f64) -> Self {
        Constants {
            threshold: T::of(s.threshold_db),
            slope: T::of(1.0 - 1.0 / s.ratio),
            knee: T::of(s.knee_db),
            inv_two_knee: T::of(if s.knee_db > 0.0 { 0.5 / s.knee_db } else { 0.0 }),
            alpha_attack: T::of(smoothing_coeff(s.attack_ms, sample_rate)),
            alpha_release: T::of(smoothing_coeff(s.release_ms, sample_rate)),
            makeup_db: T::of(s.makeup_db),
        }
    }

    /// Detector level `x_G = max(20·log10(level + ε), floor)` in dB.
    #[inline(always)]
    fn level_db(&self, level: T) -> T {
        let db_per_log2 = T::of(20.0 / std::f64::consts::LOG2_10);
        (db_per_log2 * (level + T::of(LEVEL_EPS)).fast_log2()).max(T::of(FLOOR_DB))
    }

    /// Gain reduction `x_L = x_G − y_G` for a detector level `x_G` in dB, written without
    /// branches so that loops over blocks vectorise.
    #[inline(always)]
    fn gain_reduction(&self, x_g: T) -> T {
        let above = x_g - self.threshold;
        let d = above + self.knee * T::of(0.5);
        let soft = self.slope * d * d * self.inv_two_knee;
        let hard = self.slope * above;
        let over = above + above;
        let compressed = if over > self.knee || self.knee <= T::zero() { hard } else { soft };
        if over < -self.knee { T::zero() } else { compressed }
    }

    /// Linear gain `10^((makeup − y_L) / 20)` for a smoothed gain reduction `y_L`.
    #[inline(always)]
    fn gain(&self, y_l: T) -> T {
        ((self.makeup_db - y_l) * T::of(std::f64::consts::LOG2_10 / 20.0)).fast_exp2()
    }

    /// One step of the branching smoother, `α·y_L[n−1] + (1 − α)·x_L[n]`. Both candidates are
    /// computed and one is picked, and the `(1 − α)·x_L` terms do not depend on the previous
    /// output, so the recursion's critical path is one (fused) multiply–add and a select.
    #[inline(always)]
    fn smooth<const FMA: bool>(&self, y_prev: T, x_l: T) -> T {
        let attack = madd::<FMA, _>(self.alpha_attack, y_prev, (T::one() - self.alpha_attack) * x_l);
        let release = madd::<FMA, _>(self.alpha_release, y_prev, (T::one() - self.alpha_release) * x_l);
        if x_l > y_prev { attack } else { release }
    }
}

/// The kernel over `channels[c][offset..offset + x_l.len()]`, in place, writing the detector
/// level `x_G` and the gain reduction before and after smoothing into `x_g`, `x_l` and `y_l`, and
/// the linear gain into `gain`. Each pass but the recursion is a plain loop over the span, so it
/// vectorises.
struct Span<'a, 'c, T> {
    k: &'a Constants<T>,
    state: &'a mut T,
    channels: &'a mut [&'c mut [T]],
    offset: usize,
    x_g: &'a mut [T],
    x_l: &'a mut [T],
    y_l: &'a mut [T],
    gain: &'a mut [T],
}

impl<T: Real> Kernel for Span<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let Span { k, state, channels, offset, x_g, x_l, y_l, gain } = self;
        // A local copy keeps the constants in registers across the stores below.
        let k = *k;
        let span = offset..offset + x_l.len();
        let (first, rest) = channels.split_first_mut().expect("at least one channel");
        for (v, x) in x_g.iter_mut().zip(&first[span.clone()]) {
            *v = x.abs();
        }
        for c in rest.iter() {
            for (v, x) in x_g.iter_mut().zip(&c[span.clone()]) {
                *v = v.max(x.abs());
            }
        }
        for (g, l) in x_g.iter_mut().zip(x_l.iter_mut()) {
            *g = k.level_db(*g);
            *l = k.gain_reduction(*g);
        }
        let mut y = *state;
        for (out, &x) in y_l.iter_mut().zip(x_l.iter()) {
            y = k.smooth::<FMA>(y, x);
            *out = y;
        }
        *state = y;
        for (g, &yl) in gain.iter_mut().zip(y_l.iter()) {
            *g = k.gain(yl);
        }
        for c in channels.iter_mut() {
            for (s, &g) in c[span.clone()].iter_mut().zip(gain.iter()) {
                *s = *s * g;
            }
        }
    }
}

/// The streaming compressor: state carries across blocks, nothing is allocated in `process`.
#[derive(Clone, Debug)]
pub struct Compressor<T> {
    k: Constants<T>,
    y_l: T,
    scratch: [[T; BLOCK]; 4],
}

impl<T: Real> Compressor<T> {
    /// A compressor at rest (`y_L = 0`).
    pub fn new(settings: &CompressorSettings, sample_rate: f64) -> Self {
        Compressor { k: Constants::new(settings, sample_rate), y_l: T::zero(), scratch: [[T::zero(); BLOCK]; 4] }
    }

    /// Changes the settings, keeping the smoother's state.
    pub fn set(&mut self, settings: &CompressorSettings, sample_rate: f64) {
        self.k = Constants::new(settings, sample_rate);
    }

    /// Returns the smoother to rest.
    pub fn reset(&mut self) {
        self.y_l = T::zero();
    }

    /// Compresses one block in place; all channels must have the same length.
    pub fn process(&mut self, channels: &mut [&mut [T]]) {
        // Ratio 1 with no make-up at rest is the identity (no gain reduction ever arises):
        // nothing to compute. `matched` transfers leave the compressor so.
        if self.k.slope == T::zero() && self.k.makeup_db == T::zero() && self.y_l == T::zero() {
            return;
        }
        let len = channels.first().map_or(0, |c| c.len());
        for start in (0..len).step_by(BLOCK) {
            let n = BLOCK.min(len - start);
            let [x_g, x_l, y_l, gain] = &mut self.scratch;
            dispatch(Span {
                k: &self.k,
                state: &mut self.y_l,
                channels,
                offset: start,
                x_g: &mut x_g[..n],
                x_l: &mut x_l[..n],
                y_l: &mut y_l[..n],
                gain: &mut gain[..n],
            });
        }
    }
}

/// What the adjoint needs from a forward pass: the gain reduction before and after smoothing.
#[derive(Clone, Debug, Default)]
pub struct CompressorTape<T> {
    pub x_g: Vec<T>,
    pub x_l: Vec<T>,
    pub y_l: Vec<T>,
    pub gain: Vec<T>,
}

/// Compresses whole signals in place from rest, recording the tape for [`adjoint`]; segment
/// `i` of `track` uses `settings[i]`, the smoother's state carried across.
pub fn forward<T: Real>(
    settings: &[CompressorSettings],
    track: &Track<'_>,
    sample_rate: f64,
    channels: &mut [&mut [T]],
    tape: &mut CompressorTape<T>,
) {
    let len = channels.first().map_or(0, |c| c.len());
    for buf in [&mut tape.x_g, &mut tape.x_l, &mut tape.y_l, &mut tape.gain] {
        buf.resize(len, T::zero());
    }
    let mut state = T::zero();
    for (i, range, _) in track.spans(len) {
        let k = Constants::new(&settings[i], sample_rate);
        // Block by block like the streaming path: the passes stay in cache.
        for start in range.clone().step_by(BLOCK) {
            let end = (start + BLOCK).min(range.end);
            dispatch(Span {
                k: &k,
                state: &mut state,
                channels,
                offset: start,
                x_g: &mut tape.x_g[start..end],
                x_l: &mut tape.x_l[start..end],
                y_l: &mut tape.y_l[start..end],
                gain: &mut tape.gain[start..end],
            });
        }
    }
}

/// Gradients of the compressor knobs, in the order threshold, ratio, attack, release, knee,
/// makeup (physical units).
pub type CompressorGrad = [f64; 6];

/// The exact adjoint of [`forward`].
///
/// `input` holds the compressor's input channels, `tape` the recorded pass, and `grad` holds
/// `∂L/∂output` on entry and `∂L/∂input` on return; segment `i`'s knob gradients are added to
/// `knob_grad[i]`. The attack/release branch of every sample is held as the forward pass took
/// it; the knee regions and the detector's choice of channel likewise.
pub fn adjoint<T: Real>(
    settings: &[CompressorSettings],
    track: &Track<'_>,
    sample_rate: f64,
    input: &[&[T]],
    tape: &CompressorTape<T>,
    grad: &mut [&mut [T]],
    knob_grad: &mut [CompressorGrad],
) {
    let len = tape.y_l.len();
    // Output stage, `out_c = x_c · gain`, `gain = 10^((makeup − y_L)/20)`: `u[n] = ∂L/∂log-gain`.
    let ln10_20 = std::f64::consts::LN_10 / 20.0;
    let mut u = vec![0.0f64; len];
    for (gc, xc) in grad.iter_mut().zip(input) {
        for (((u, g), &x), &gain) in u.iter_mut().zip(gc.iter_mut()).zip(xc.iter()).zip(&tape.gain) {
            *u += g.to64() * x.to64() * gain.to64() * ln10_20;
            *g = *g * gain;
        }
    }
    // Smoother, run backwards: `λ[n] = −u[n] + α[n+1]·λ[n+1]`; `u` becomes `∂L/∂x_L`.
    let (mut lambda, mut alpha_next) = (0.0f64, 0.0f64);
    for (i, range, _) in track.spans(len).rev() {
        let s = &settings[i];
        let k = Constants::<T>::new(s, sample_rate);
        let (alpha_a, alpha_r) = (k.alpha_attack.to64(), k.alpha_release.to64());
        let (mut g_alpha_a, mut g_alpha_r) = (0.0, 0.0);
        knob_grad[i][5] += u[range.clone()].iter().sum::<f64>();
        for n in range.clone().rev() {
            lambda = alpha_next * lambda - u[n];
            let y_prev = if n > 0 { tape.y_l[n - 1] } else { T::zero() };
            let x_l = tape.x_l[n];
            let g_alpha = lambda * (y_prev.to64() - x_l.to64());
            // Selects rather than branches: the attack/release pattern is unpredictable.
            let attack = x_l > y_prev;
            g_alpha_a += if attack { g_alpha } else { 0.0 };
            g_alpha_r += if attack { 0.0 } else { g_alpha };
            alpha_next = if attack { alpha_a } else { alpha_r };
            u[n] = (1.0 - alpha_next) * lambda;
        }
        knob_grad[i][2] += g_alpha_a * smoothing_coeff_derivative(s.attack_ms, sample_rate);
        knob_grad[i][3] += g_alpha_r * smoothing_coeff_derivative(s.release_ms, sample_rate);
    }
    // Static curve and detector: `x_L = x_G − y_G(x_G; T, R, W)`,
    // `x_G = max(20·log10(|x_c*| + ε), floor)` through the loudest channel `c*`.
    for (i, range, _) in track.spans(len) {
        let s = &settings[i];
        let mut g_curve = [0.0f64; 3];
        for n in range {
            let (g_x_l, x_g) = (u[n], tape.x_g[n].to64());
            let (_, d) = gain_computer(x_g, s.threshold_db, s.ratio, s.knee_db);
            g_curve[0] -= g_x_l * d[1];
            g_curve[1] -= g_x_l * d[2];
            g_curve[2] -= g_x_l * d[3];
            if x_g > FLOOR_DB {
                let (level, c_max) = loudest(input, n);
                let c_max = c_max as usize;
                let g_level = g_x_l * (1.0 - d[0]) * 20.0 / (std::f64::consts::LN_10 * (level + LEVEL_EPS));
                let x = input[c_max][n];
                grad[c_max][n] = grad[c_max][n] + T::of(g_level * x.to64().signum());
            }
        }
        knob_grad[i][0] += g_curve[0];
        knob_grad[i][1] += g_curve[1];
        knob_grad[i][4] += g_curve[2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FS: f64 = 48_000.0;

    fn settings(threshold_db: f64, ratio: f64, knee_db: f64) -> CompressorSettings {
        CompressorSettings { threshold_db, ratio, attack_ms: 5.0, release_ms: 100.0, knee_db, makeup_db: 0.0 }
    }

    /// Runs a square wave of amplitude `amp` (constant detector level) long enough to settle.
    fn settled_gain_db(s: &CompressorSettings, amp: f64) -> f64 {
        let mut x: Vec<f64> = (0..48_000).map(|n| if n % 40 < 20 { amp } else { -amp }).collect();
        Compressor::new(s, FS).process(&mut [&mut x]);
        20.0 * (x[x.len() - 1].abs() / amp).log10()
    }

    /// Ratio 1 with no make-up passes the signal untouched; switched to ratio 1 while it holds
    /// a gain reduction, the compressor still releases it (the gain climbs back toward 1 over
    /// the release time instead of jumping).
    #[test]
    fn ratio_one_passes_untouched_and_a_held_reduction_still_releases() {
        let square = |amp: f64, len: usize| (0..len).map(|n| if n % 40 < 20 { amp } else { -amp }).collect::<Vec<f64>>();
        let mut flat = Compressor::new(&settings(-30.0, 1.0, 6.0), FS);
        let mut x = square(0.9, 4800);
        flat.process(&mut [&mut x]);
        assert_eq!(x, square(0.9, 4800));

        let mut held = Compressor::new(&settings(-30.0, 8.0, 6.0), FS);
        let mut x = square(0.9, 48_000);
        held.process(&mut [&mut x]);
        held.set(&settings(-30.0, 1.0, 6.0), FS);
        let mut after = square(0.9, 4800);
        held.process(&mut [&mut after]);
        let gain = |i: usize| after[i].abs() / 0.9;
        assert!(gain(0) < 0.5, "the reduction is still held at first: {}", gain(0));
        assert!(gain(4799) > gain(0) && gain(4799) < 1.0, "it releases over 100 ms: {} -> {}", gain(0), gain(4799));
    }

    #[test]
    fn settled_gain_follows_the_textbook_static_curve() {
        for (t, r, w, level_db) in [(-20.0, 4.0, 0.0, -6.0), (-30.0, 10.0, 6.0, -28.0), (-10.0, 2.0, 12.0, -12.0), (-40.0, 3.0, 6.0, -60.0)]
        {
            let s = CompressorSettings { makeup_db: 3.0, ..settings(t, r, w) };
            // Expected output level from the published curve, computed here independently.
            let expected_out = if 2.0 * (level_db - t) < -w {
                level_db
            } else if 2.0 * (level_db - t) > w {
                t + (level_db - t) / r
            } else {
                level_db + (1.0 / r - 1.0) * (level_db - t + w / 2.0).powi(2) / (2.0 * w)
            };
            let gain = settled_gain_db(&s, 10f64.powf(level_db / 20.0));
            // 1e-5 dB: the detector's 1e-8 offset shifts the level by a few µdB.
            assert!((gain - (expected_out - level_db + 3.0)).abs() < 1e-5, "T {t} R {r} W {w}: {gain}");
        }
    }

    #[test]
    fn attack_and_release_reach_eight_ninths_in_their_times() {
        let s = CompressorSettings { attack_ms: 10.0, release_ms: 200.0, ..settings(-40.0, 4.0, 0.0) };
        let loud: f64 = 0.5; // −6 dB: settled reduction (−6 + 40)·(1 − 1/4) = 25.5 dB
        let full = (20.0 * loud.log10() + 40.0) * 0.75;
        let attack_n = (0.010 * FS) as usize;
        let release_n = (0.200 * FS) as usize;
        let len = 4 * release_n;
        let mut x: Vec<f64> = (0..len).map(|n| if n < len / 2 { loud } else { 1e-4 }).collect();
        let mut tape = CompressorTape::default();
        forward(&[s], &Track::constant(&[]), FS, &mut [&mut x], &mut tape);
        // After the attack time the reduction has covered 8/9 of the step (1 − α^(fs·τ) = 8/9).
        let reached = tape.y_l[attack_n - 1] / full;
        assert!((reached - 8.0 / 9.0).abs() < 1e-3, "attack reached {reached}");
        // After the release time only 1/9 of the reduction remains: release really releases.
        let settled = tape.y_l[len / 2 - 1];
        let left = tape.y_l[len / 2 - 1 + release_n] / settled;
        assert!((left - 1.0 / 9.0).abs() < 1e-3, "release left {left}");
        let left_twice = tape.y_l[len - 1] / settled;
        assert!((left_twice - 1.0 / 81.0).abs() < 1e-3, "after two release times {left_twice}");
    }

    #[test]
    fn release_time_changes_the_output() {
        let render = |release_ms| {
            let s = CompressorSettings { release_ms, ..settings(-30.0, 8.0, 6.0) };
            let mut x: Vec<f64> = (0..20_000).map(|n| if (n / 2000) % 2 == 0 { 0.8 } else { 0.05 }).collect();
            Compressor::new(&s, FS).process(&mut [&mut x]);
            x
        };
        let (fast, slow) = (render(10.0), render(500.0));
        let diff = fast.iter().zip(&slow).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(diff > 0.01, "release had no effect: {diff}");
    }

    #[test]
    fn stereo_detector_is_linked() {
        let s = settings(-30.0, 6.0, 6.0);
        let left: Vec<f64> = (0..5000).map(|n| 0.9 * (n as f64 * 0.05).sin()).collect();
        let right: Vec<f64> = (0..5000).map(|n| 0.01 * (n as f64 * 0.13).sin()).collect();
        let (mut l, mut r) = (left.clone(), right.clone());
        Compressor::new(&s, FS).process(&mut [&mut l, &mut r]);
        let mut alone = left.clone();
        Compressor::new(&s, FS).process(&mut [&mut alone]);
        for n in 0..5000 {
            // Both channels get the gain the loud channel alone would get.
            let g = if left[n].abs() > 1e-3 { l[n] / left[n] } else { continue };
            assert!((g - alone[n] / left[n]).abs() < 1e-12);
            if right[n].abs() > 1e-6 {
                assert!((r[n] / right[n] - g).abs() < 1e-9, "sample {n}");
            }
        }
    }

    #[test]
    fn gain_computer_partials_match_finite_differences() {
        for &(x, t, r, w) in &[(-10.0, -20.0, 4.0, 6.0), (-21.0, -20.0, 3.0, 6.0), (-50.0, -20.0, 2.0, 12.0), (-5.0, -20.0, 7.0, 0.0)] {
            let (_, d) = gain_computer(x, t, r, w);
            let p = [x, t, r, w];
            for i in 0..4 {
                if w == 0.0 && i == 3 {
                    continue;
                }
                let h = 1e-6;
                let (mut a, mut b) = (p, p);
                a[i] += h;
                b[i] -= h;
                let fd = (gain_computer(a[0], a[1], a[2], a[3]).0 - gain_computer(b[0], b[1], b[2], b[3]).0) / (2.0 * h);
                assert!((fd - d[i]).abs() < 1e-7, "{p:?} d{i}: {fd} vs {}", d[i]);
            }
        }
    }
}
