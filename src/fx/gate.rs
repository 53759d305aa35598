//! Downward expander / gate (`gate`) with threshold, ratio, attack, hold and release, a linked
//! detector, and its exact adjoint.
//!
//! Per sample `n`, as the compressor ([`super::compressor`]) but below the threshold:
//! - level `x_G = max(20·log10(max_c |x_c[n]| + 1e-8), −96)`;
//! - attenuation wanted `x_L = (T − x_G)·(R − 1)` dB below the threshold `T`, 0 above it
//!   (so the static curve is `T + (x_G − T)·R` below `T`: ratio `R` downward expansion);
//! - smoothed: while the gate opens or stays (`x_L ≤ y_L[n−1]`),
//!   `y_L = α_A·y_L[n−1] + (1 − α_A)·x_L`; when it would close, `y_L` holds for `hold_ms`, then
//!   `y_L = α_R·y_L[n−1] + (1 − α_R)·x_L`; `α = exp(−ln 9 / (fs·time_s))`;
//! - output `x_c[n] · 10^(−y_L[n]/20)`.
//!
//! The hold is counted in whole samples, so it is a stepped knob (1 ms steps) with no gradient.

use super::compressor::{FLOOR_DB, LEVEL_EPS, loudest, smoothing_coeff, smoothing_coeff_derivative};
use super::effect::Effect;
use super::knob::{KnobSpec, Skew, StepSize};
use super::track::Track;
use crate::Real;

const THRESHOLD_DB: usize = 0;
const RATIO: usize = 1;
const ATTACK_MS: usize = 2;
const HOLD_MS: usize = 3;
const RELEASE_MS: usize = 4;

/// The gate's constants at a sample rate.
#[derive(Clone, Copy, Debug)]
struct Constants {
    threshold_db: f64,
    ratio: f64,
    alpha_attack: f64,
    alpha_release: f64,
    hold: u64,
}

impl Constants {
    fn new(knobs: &[f64], sample_rate: f64) -> Self {
        Constants {
            threshold_db: knobs[THRESHOLD_DB],
            ratio: knobs[RATIO],
            alpha_attack: smoothing_coeff(knobs[ATTACK_MS], sample_rate),
            alpha_release: smoothing_coeff(knobs[RELEASE_MS], sample_rate),
            hold: (knobs[HOLD_MS] * 1e-3 * sample_rate).round() as u64,
        }
    }
}

/// The branch the smoother took at a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Branch {
    #[default]
    Attack,
    Hold,
    Release,
}

/// What one sample did, for the adjoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct Step {
    /// Detector level in dB, and the loudest channel.
    x_g: f64,
    channel: u32,
    x_l: f64,
    y_l: f64,
    branch: Branch,
    gain: f64,
}

/// The streaming gate.
#[derive(Clone, Debug)]
pub struct Gate {
    k: Constants,
    y_l: f64,
    held: u64,
}

impl Gate {
    #[inline]
    fn step<T: Real>(&mut self, channels: &mut [&mut [T]], n: usize) -> Step {
        let k = self.k;
        let (peak, channel) = loudest(channels, n);
        let x_g = (20.0 * (peak + LEVEL_EPS).log10()).max(FLOOR_DB);
        let x_l = if x_g < k.threshold_db { (k.threshold_db - x_g) * (k.ratio - 1.0) } else { 0.0 };
        let branch = if x_l <= self.y_l {
            self.held = 0;
            self.y_l = k.alpha_attack * self.y_l + (1.0 - k.alpha_attack) * x_l;
            Branch::Attack
        } else if self.held < k.hold {
            self.held += 1;
            Branch::Hold
        } else {
            self.y_l = k.alpha_release * self.y_l + (1.0 - k.alpha_release) * x_l;
            Branch::Release
        };
        let gain = (-self.y_l * std::f64::consts::LN_10 / 20.0).exp();
        let g = T::of(gain);
        for x in channels.iter_mut() {
            x[n] = x[n] * g;
        }
        Step { x_g, channel, x_l, y_l: self.y_l, branch, gain }
    }
}

/// The gate as a chain effect.
pub struct GateEffect;

impl Effect for GateEffect {
    const NAME: &'static str = "gate";
    const DESCRIPTION: &'static str = "downward expander / noise gate with hold, linked detector";
    const KNOBS: &'static [KnobSpec] = &[
        KnobSpec::new("threshold_db", "dB", (-90.0, 0.0), -50.0, Skew::Linear, "gate threshold"),
        KnobSpec::new("ratio", ":1", (1.0, 20.0), 4.0, Skew::Log, "expansion ratio below the threshold"),
        KnobSpec::new("attack_ms", "ms", (0.1, 100.0), 1.0, Skew::Log, "gate attack (opening) time (to 90 %)"),
        KnobSpec::new("hold_ms", "ms", (0.0, 500.0), 10.0, Skew::Stepped(StepSize(1)), "time the gate stays open before releasing"),
        KnobSpec::new("release_ms", "ms", (5.0, 2000.0), 100.0, Skew::Log, "gate release (closing) time (to 90 %)"),
    ];
    const LEVEL_KNOBS: Option<&'static [usize]> = Some(&[0]);
    type Stream<T: Real> = Gate;
    type Tape<T: Real> = Vec<Step>;

    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, _channels: usize) -> Gate {
        Gate { k: Constants::new(knobs, sample_rate), y_l: 0.0, held: 0 }
    }

    fn set<T: Real>(stream: &mut Gate, knobs: &[f64], sample_rate: f64) {
        stream.k = Constants::new(knobs, sample_rate);
    }

    fn reset<T: Real>(stream: &mut Gate) {
        (stream.y_l, stream.held) = (0.0, 0);
    }

    fn process<T: Real>(stream: &mut Gate, channels: &mut [&mut [T]]) {
        let len = channels.first().map_or(0, |c| c.len());
        for n in 0..len {
            stream.step(channels, n);
        }
    }

    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut Vec<Step>) {
        let mut gate = Self::stream::<T>(track.knobs(0), sample_rate, channels.len());
        let len = channels.first().map_or(0, |c| c.len());
        tape.clear();
        for (_, range, knobs) in track.spans(len) {
            Self::set::<T>(&mut gate, knobs, sample_rate);
            tape.extend(range.map(|n| gate.step(channels, n)));
        }
    }

    fn adjoint<T: Real>(track: Track<'_>, sample_rate: f64, input: &[&[T]], tape: &Vec<Step>, grad: &mut [&mut [T]], knob_grad: &mut [f64]) {
        let ln10_20 = std::f64::consts::LN_10 / 20.0;
        let mut carry = 0.0;
        for ((_, range, knobs), knob_grad) in track.spans(tape.len()).rev().zip(knob_grad.chunks_mut(Self::KNOBS.len()).rev()) {
            let k = Constants::new(knobs, sample_rate);
            let (mut g_threshold, mut g_ratio, mut g_alpha_a, mut g_alpha_r) = (0.0, 0.0, 0.0, 0.0);
            for n in range.rev() {
                let s = &tape[n];
                // Output: out_c = x_c · 10^(−y_L/20).
                let mut u = 0.0;
                for (gc, xc) in grad.iter_mut().zip(input) {
                    u -= gc[n].to64() * xc[n].to64() * s.gain * ln10_20;
                    gc[n] = gc[n] * T::of(s.gain);
                }
                // Smoother, backwards: λ = ∂L/∂y_L[n].
                let lambda = u + carry;
                let y_prev = if n > 0 { tape[n - 1].y_l } else { 0.0 };
                let x_l_bar = match s.branch {
                    Branch::Attack => {
                        g_alpha_a += lambda * (y_prev - s.x_l);
                        carry = k.alpha_attack * lambda;
                        (1.0 - k.alpha_attack) * lambda
                    }
                    Branch::Hold => {
                        carry = lambda;
                        0.0
                    }
                    Branch::Release => {
                        g_alpha_r += lambda * (y_prev - s.x_l);
                        carry = k.alpha_release * lambda;
                        (1.0 - k.alpha_release) * lambda
                    }
                };
                // Static curve and detector.
                if s.x_g < k.threshold_db {
                    g_threshold += x_l_bar * (k.ratio - 1.0);
                    g_ratio += x_l_bar * (k.threshold_db - s.x_g);
                    if s.x_g > FLOOR_DB {
                        let c = s.channel as usize;
                        let x = input[c][n].to64();
                        let level_bar = -x_l_bar * (k.ratio - 1.0) * 20.0 / (std::f64::consts::LN_10 * (x.abs() + LEVEL_EPS));
                        grad[c][n] = grad[c][n] + T::of(level_bar * x.signum());
                    }
                }
            }
            knob_grad[THRESHOLD_DB] += g_threshold;
            knob_grad[RATIO] += g_ratio;
            knob_grad[ATTACK_MS] += g_alpha_a * smoothing_coeff_derivative(knobs[ATTACK_MS], sample_rate);
            knob_grad[RELEASE_MS] += g_alpha_r * smoothing_coeff_derivative(knobs[RELEASE_MS], sample_rate);
        }
    }

    /// Unity above the threshold, `T + (x − T)·R` below it.
    fn static_curve_db(knobs: &[f64], level_db: f64) -> Option<f64> {
        let (t, r) = (knobs[THRESHOLD_DB], knobs[RATIO]);
        Some(if level_db < t { t + (level_db - t) * r } else { level_db })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FS: f64 = 48_000.0;

    fn gate(knobs: &[f64], x: &mut [f64]) -> Vec<Step> {
        let mut tape = Vec::new();
        GateEffect::forward(Track::constant(knobs), FS, &mut [x], &mut tape);
        tape
    }

    #[test]
    fn settled_gain_follows_the_expander_curve() {
        // A square wave (one detector level) long enough to settle, below and above threshold.
        for (t, r, level_db) in [(-40.0, 2.0, -50.0), (-40.0, 4.0, -46.0), (-30.0, 1.5, -20.0), (-60.0, 10.0, -61.0)] {
            let amp = 10f64.powf(level_db / 20.0);
            let mut x: Vec<f64> = (0..96_000).map(|n| if n % 40 < 20 { amp } else { -amp }).collect();
            gate(&[t, r, 1.0, 0.0, 50.0], &mut x);
            let out_db = 20.0 * x[x.len() - 1].abs().log10();
            // The detector reads the level with its 1e-8 offset; the output keeps the amplitude.
            let detected = 20.0 * (amp + LEVEL_EPS).log10();
            let expected = if detected < t { level_db - (t - detected) * (r - 1.0) } else { level_db };
            assert!((out_db - expected).abs() < 1e-6, "T {t} R {r} at {level_db}: {out_db} vs {expected}");
        }
    }

    #[test]
    fn the_gate_holds_then_releases_in_its_time() {
        let (hold_ms, release_ms) = (20.0, 100.0);
        let loud = 3000;
        let mut x: Vec<f64> = (0..40_000).map(|n| if n < loud { 0.5 } else { 1e-3 }).collect();
        let tape = gate(&[-40.0, 3.0, 1.0, hold_ms, release_ms], &mut x);
        let hold = (hold_ms * 1e-3 * FS) as usize;
        // Open through the hold: no attenuation.
        assert!(tape[loud..loud + hold].iter().all(|s| s.y_l == 0.0 && s.branch == Branch::Hold));
        // Then 8/9 of the way to the full attenuation, (−40 − (−60))·(3 − 1) = 40 dB, in the release time.
        let n = loud + hold + (release_ms * 1e-3 * FS) as usize - 1;
        assert!((tape[n].y_l / 40.0 - 8.0 / 9.0).abs() < 1e-3, "{}", tape[n].y_l);
    }
}
