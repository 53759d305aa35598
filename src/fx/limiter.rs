//! Look-ahead peak limiter (`limiter`) with a ceiling and a release time, linked across
//! channels, and its exact adjoint. Its output never exceeds the ceiling.
//!
//! With `D` samples of look-ahead ([`LOOKAHEAD_MS`]), ceiling `c = 10^(ceiling_db/20)` and the
//! peak `p[n] = max_ch |x_ch[n]|`, per sample:
//! - the gain each sample needs, `r[n] = min(1, c / p[n])`;
//! - its minimum over the look-ahead window, `m[n] = min_{n−D ≤ k ≤ n} r[k]`;
//! - a release that rises back exponentially but falls at once, `s[n] = m[n]` when
//!   `m[n] < s[n−1]`, else `α·s[n−1] + (1 − α)·m[n]` with `α = exp(−ln 9 / (fs·release_s))`;
//! - a moving average over `D + 1` samples, `g[n] = Σ_{j=0..D} s[n−j] / (D + 1)`, which turns
//!   each fall into a ramp of `D` samples (no click);
//! - the output `y_ch[n] = x_ch[n − D]·g[n]`: `D` samples of latency.
//!
//! Every term of the average is a minimum over a window that holds `n − D`, so
//! `g[n] ≤ r[n − D]` and `|y| ≤ c` (the gain is scaled by `1 − 1e-9` against rounding). The state
//! starts at rest (`r = s = 1` before the first sample). When the ceiling is lowered while
//! streaming, the frames already in the look-ahead had their gains planned for the old one: the
//! gain is then held to `c / p` of the frame going out, so the bound holds at once.

use super::compressor::{loudest, smoothing_coeff, smoothing_coeff_derivative};
use super::effect::Effect;
use super::knob::{KnobSpec, Skew};
use super::track::{PerSegment, Track};
use crate::Real;

/// Look-ahead time.
pub const LOOKAHEAD_MS: f64 = 2.0;
/// Headroom kept under the ceiling against rounding.
const SAFETY: f64 = 1.0 - 1e-9;
const CEILING_DB: usize = 0;
const RELEASE_MS: usize = 1;

/// Look-ahead in samples at a sample rate (at least one).
pub fn lookahead(sample_rate: f64) -> usize {
    ((LOOKAHEAD_MS * 1e-3 * sample_rate).round() as usize).max(1)
}

/// The linear ceiling (with the rounding headroom) of a knob setting.
fn ceiling(knobs: &[f64]) -> f64 {
    10f64.powf(knobs[CEILING_DB] / 20.0) * SAFETY
}

/// A fixed-capacity ring of the last values pushed.
#[derive(Clone, Debug)]
struct Ring<V> {
    values: Vec<V>,
    next: usize,
}

impl<V: Copy> Ring<V> {
    fn new(len: usize, fill: V) -> Self {
        Ring { values: vec![fill; len], next: 0 }
    }

    /// Pushes `v` and returns the value it replaces (pushed `len` steps ago).
    fn push(&mut self, v: V) -> V {
        let old = std::mem::replace(&mut self.values[self.next], v);
        // A compare, not `%`: an integer division per push would cost more than the rest.
        self.next += 1;
        if self.next == self.values.len() {
            self.next = 0;
        }
        old
    }

    fn fill(&mut self, v: V) {
        self.values.iter_mut().for_each(|x| *x = v);
        self.next = 0;
    }
}

/// The streaming limiter: per-channel delay lines, a monotonic queue for the window minimum,
/// the release state and the moving average, all allocated up front.
#[derive(Clone, Debug)]
pub struct Limiter<T> {
    ceiling: f64,
    alpha: f64,
    window: usize,
    delay: Vec<Ring<T>>,
    /// `(sample index, r)` with increasing `r`, the front the window's minimum.
    queue: Vec<(u64, f64)>,
    queue_start: usize,
    queue_len: usize,
    released: f64,
    average: Ring<f64>,
    average_sum: f64,
    index: u64,
}

/// What one sample of the limiter did, for the adjoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct Step {
    /// The sample that set the window's minimum, or `u64::MAX` for the rest state.
    argmin: u64,
    /// The loudest channel, and whether the ceiling bound (`p > c`).
    channel: u32,
    limited: bool,
    /// Whether `s` fell to `m` (else it released).
    fell: bool,
    peak: f64,
    m: f64,
    s: f64,
    g: f64,
    /// Whether the gain was held to `c / p` of the delayed frame (its peak and loudest channel
    /// below): only after the ceiling was lowered while that frame was in the look-ahead.
    clamped: bool,
    delayed_peak: f64,
    delayed_channel: u32,
}

impl<T: Real> Limiter<T> {
    fn new(knobs: &[f64], sample_rate: f64, channels: usize) -> Self {
        let window = lookahead(sample_rate);
        Limiter {
            ceiling: ceiling(knobs),
            alpha: smoothing_coeff(knobs[RELEASE_MS], sample_rate),
            window,
            delay: (0..channels).map(|_| Ring::new(window, T::zero())).collect(),
            queue: vec![(0, 0.0); window + 1],
            queue_start: 0,
            queue_len: 0,
            released: 1.0,
            average: Ring::new(window + 1, 1.0),
            average_sum: (window + 1) as f64,
            index: 0,
        }
    }

    fn reset(&mut self) {
        self.delay.iter_mut().for_each(|d| d.fill(T::zero()));
        self.queue_len = 0;
        self.released = 1.0;
        self.average.fill(1.0);
        self.average_sum = (self.window + 1) as f64;
        self.index = 0;
    }

    /// One sample: pushes frame `n` of `channels` and writes frame `n − D` limited in its place.
    #[inline]
    fn step(&mut self, channels: &mut [&mut [T]], n: usize) -> Step {
        let (peak, channel) = loudest(channels, n);
        let limited = peak > self.ceiling;
        let r = if limited { self.ceiling / peak } else { 1.0 };
        // Window minimum over the last D + 1 samples (the rest state counts as r = 1).
        // Expire what left the window first, so at most D + 1 entries are ever held.
        let cap = self.queue.len();
        // Index `k` places past the front, wrapped by a compare (k < cap, start < cap).
        let at = |start: usize, k: usize| if start + k >= cap { start + k - cap } else { start + k };
        let i = self.index;
        while self.queue_len > 0 && self.queue[self.queue_start].0 + (self.window as u64) < i {
            self.queue_start = at(self.queue_start, 1);
            self.queue_len -= 1;
        }
        while self.queue_len > 0 && self.queue[at(self.queue_start, self.queue_len - 1)].1 >= r {
            self.queue_len -= 1;
        }
        self.queue[at(self.queue_start, self.queue_len)] = (i, r);
        self.queue_len += 1;
        let (front_index, front) = self.queue[self.queue_start];
        let at_rest = i < self.window as u64 && front >= 1.0;
        let (argmin, m) = if at_rest { (u64::MAX, 1.0) } else { (front_index, front) };
        let fell = m < self.released;
        self.released = if fell { m } else { self.alpha * self.released + (1.0 - self.alpha) * m };
        let old = self.average.push(self.released);
        self.average_sum += self.released - old;
        let g = self.average_sum / (self.window + 1) as f64;
        for (x, delay) in channels.iter_mut().zip(&mut self.delay) {
            x[n] = delay.push(x[n]);
        }
        let (delayed_peak, delayed_channel) = loudest(channels, n);
        // With knobs held, g ≤ r of the delayed frame already; a ceiling lowered while the frame
        // was in the look-ahead is met by holding the gain to it.
        let clamped = delayed_peak * g > self.ceiling;
        let gain = T::of(if clamped { self.ceiling / delayed_peak } else { g });
        for x in channels.iter_mut() {
            x[n] = x[n] * gain;
        }
        self.index += 1;
        Step { argmin, channel, limited, fell, peak, m, s: self.released, g, clamped, delayed_peak, delayed_channel }
    }
}

/// The limiter as a chain effect.
pub struct LimiterEffect;

impl Effect for LimiterEffect {
    const NAME: &'static str = "limiter";
    const DESCRIPTION: &'static str = "look-ahead peak limiter (2 ms); the output never exceeds the ceiling";
    const KNOBS: &'static [KnobSpec] = &[
        KnobSpec::new("ceiling_db", "dB", (-24.0, 0.0), -1.0, Skew::Linear, "limiter ceiling (sample peak)"),
        KnobSpec::new("release_ms", "ms", (1.0, 1000.0), 60.0, Skew::Log, "limiter release time (to 90 %)"),
    ];
    const LEVEL_KNOBS: Option<&'static [usize]> = Some(&[0]);
    type Stream<T: Real> = Limiter<T>;
    /// One record per sample.
    type Tape<T: Real> = Vec<Step>;

    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, channels: usize) -> Limiter<T> {
        Limiter::new(knobs, sample_rate, channels)
    }

    fn set<T: Real>(stream: &mut Limiter<T>, knobs: &[f64], sample_rate: f64) {
        stream.ceiling = ceiling(knobs);
        stream.alpha = smoothing_coeff(knobs[RELEASE_MS], sample_rate);
    }

    fn reset<T: Real>(stream: &mut Limiter<T>) {
        stream.reset();
    }

    fn process<T: Real>(stream: &mut Limiter<T>, channels: &mut [&mut [T]]) {
        let len = channels.first().map_or(0, |c| c.len());
        for n in 0..len {
            stream.step(channels, n);
        }
    }

    fn latency(sample_rate: f64) -> usize {
        lookahead(sample_rate)
    }

    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut Vec<Step>) {
        let mut limiter = Limiter::<T>::new(track.knobs(0), sample_rate, channels.len());
        let len = channels.first().map_or(0, |c| c.len());
        tape.clear();
        for (_, range, knobs) in track.spans(len) {
            Self::set::<T>(&mut limiter, knobs, sample_rate);
            tape.extend(range.map(|n| limiter.step(channels, n)));
        }
    }

    fn adjoint<T: Real>(track: Track<'_>, sample_rate: f64, input: &[&[T]], tape: &Vec<Step>, grad: &mut [&mut [T]], knob_grad: &mut [f64]) {
        let len = tape.len();
        let d = lookahead(sample_rate);
        // The ceiling and release coefficient in force at each sample, and their gradients per
        // segment.
        let constants = PerSegment::new(&track, len, |k| (ceiling(k), smoothing_coeff(k[RELEASE_MS], sample_rate)));
        let mut c_bar = vec![0.0; track.segments()];
        let mut alpha_bar = vec![0.0; track.segments()];
        // Output: y[n] = x[n − D]·g[n], or x[n − D]·c/p_D[n] where the gain was held to the
        // delayed frame's peak p_D.
        let mut g_bar = vec![0.0f64; len];
        let mut x_bar: Vec<Vec<f64>> = vec![vec![0.0; len]; input.len()];
        let mut delayed_peak_bar = vec![0.0f64; len];
        for ((gc, xc), xb) in grad.iter().zip(input).zip(&mut x_bar) {
            for n in d..len {
                let (y_bar, x) = (gc[n].to64(), xc[n - d].to64());
                let step = &tape[n];
                if step.clamped {
                    let segment = constants.segment_of(n);
                    let c = constants.get(segment).0;
                    xb[n - d] += y_bar * c / step.delayed_peak;
                    c_bar[segment] += y_bar * x / step.delayed_peak;
                    delayed_peak_bar[n] -= y_bar * x * c / (step.delayed_peak * step.delayed_peak);
                } else {
                    g_bar[n] += y_bar * x;
                    xb[n - d] += y_bar * step.g;
                }
            }
        }
        for (n, &pb) in delayed_peak_bar.iter().enumerate().filter(|(_, pb)| **pb != 0.0) {
            let ch = tape[n].delayed_channel as usize;
            x_bar[ch][n - d] += pb * input[ch][n - d].to64().signum();
        }
        // Moving average: s̄[k] = Σ_{j=0..D} ḡ[k + j] / (D + 1).
        let mut s_bar = vec![0.0f64; len];
        let mut window_sum = 0.0;
        for k in (0..len).rev() {
            window_sum += g_bar[k];
            if k + d + 1 < len {
                window_sum -= g_bar[k + d + 1];
            }
            s_bar[k] = window_sum / (d + 1) as f64;
        }
        // Release, backwards in time; then the window minimum and the needed gain.
        let mut carry = 0.0;
        let mut r_bar = vec![0.0f64; len];
        for (i, range, _) in track.spans(len).rev() {
            let alpha = constants.get(i).1;
            for n in range.rev() {
                let total = s_bar[n] + carry;
                let step = &tape[n];
                let m_bar = if step.fell {
                    carry = 0.0;
                    total
                } else {
                    let s_prev = if n > 0 { tape[n - 1].s } else { 1.0 };
                    alpha_bar[i] += total * (s_prev - step.m);
                    carry = alpha * total;
                    (1.0 - alpha) * total
                };
                if step.argmin != u64::MAX {
                    r_bar[step.argmin as usize] += m_bar;
                }
            }
        }
        for (n, (step, &rb)) in tape.iter().zip(&r_bar).enumerate() {
            if step.limited && rb != 0.0 {
                let segment = constants.segment_of(n);
                let c = constants.get(segment).0;
                c_bar[segment] += rb / step.peak;
                let ch = step.channel as usize;
                x_bar[ch][n] -= rb * c / (step.peak * step.peak) * input[ch][n].to64().signum();
            }
        }
        for (gc, xb) in grad.iter_mut().zip(&x_bar) {
            for (g, &v) in gc.iter_mut().zip(xb) {
                *g = T::of(v);
            }
        }
        for (i, knob_grad) in knob_grad.chunks_mut(Self::KNOBS.len()).enumerate() {
            let knobs = track.knobs(i);
            knob_grad[CEILING_DB] += c_bar[i] * constants.get(i).0 * std::f64::consts::LN_10 / 20.0;
            knob_grad[RELEASE_MS] += alpha_bar[i] * smoothing_coeff_derivative(knobs[RELEASE_MS], sample_rate);
        }
    }

    /// Once settled on a steady level: the level, or the ceiling above it.
    fn static_curve_db(knobs: &[f64], level_db: f64) -> Option<f64> {
        Some(level_db.min(knobs[CEILING_DB]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(knobs: &[f64], fs: f64, channels: &mut [Vec<f64>], block: usize) {
        let mut s = LimiterEffect::stream::<f64>(knobs, fs, channels.len());
        let len = channels[0].len();
        for start in (0..len).step_by(block) {
            let end = (start + block).min(len);
            let mut views: Vec<&mut [f64]> = channels.iter_mut().map(|c| &mut c[start..end]).collect();
            LimiterEffect::process(&mut s, &mut views);
        }
    }

    #[test]
    fn the_output_never_exceeds_the_ceiling() {
        let fs = 48_000.0;
        for (ceiling_db, release_ms) in [(-1.0, 60.0), (-12.0, 1.0), (-24.0, 1000.0), (0.0, 5.0)] {
            // Bursts up to +12 dBFS, single-sample spikes and a sine sweep.
            let mut x: Vec<Vec<f64>> = (0..2)
                .map(|c| {
                    (0..20_000)
                        .map(|n| {
                            let t = n as f64 / fs;
                            let burst = if (n / 3000) % 2 == 0 { 4.0 } else { 0.3 };
                            let spike = if n % 4567 == 17 * (c + 1) { 3.5 } else { 0.0 };
                            burst * (2.0 * std::f64::consts::PI * (100.0 + 3000.0 * t) * t).sin() + spike
                        })
                        .collect()
                })
                .collect();
            limit(&[ceiling_db, release_ms], fs, &mut x, 333);
            let bound = 10f64.powf(ceiling_db / 20.0);
            let peak = x.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(peak <= bound, "ceiling {ceiling_db} dB: peak {peak} > {bound}");
            assert!(peak > 0.9 * bound, "ceiling {ceiling_db} dB: the limiter should reach its ceiling, peak {peak}");
        }
    }

    /// A ceiling lowered while loud audio is in the look-ahead holds from the next sample on.
    #[test]
    fn a_lowered_ceiling_holds_at_once() {
        let fs = 48_000.0;
        let mut x: Vec<f64> = (0..20_000).map(|n| 0.9 * (n as f64 * 0.05).sin()).collect();
        let mut s = LimiterEffect::stream::<f64>(&[0.0, 200.0], fs, 1);
        let (first, rest) = x.split_at_mut(10_000);
        LimiterEffect::process(&mut s, &mut [first]);
        LimiterEffect::set::<f64>(&mut s, &[-12.0, 200.0], fs);
        LimiterEffect::process(&mut s, &mut [rest]);
        let bound = 10f64.powf(-12.0 / 20.0);
        let peak = rest.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(peak <= bound, "peak {peak} over the new ceiling {bound}");
    }

    #[test]
    fn quiet_audio_passes_delayed_and_unchanged() {
        let fs = 44_100.0;
        let d = lookahead(fs);
        let input: Vec<f64> = (0..5000).map(|n| 0.5 * (n as f64 * 0.01).sin()).collect();
        let mut x = vec![input.clone()];
        limit(&[-1.0, 60.0], fs, &mut x, 64);
        for n in d..5000 {
            assert!((x[0][n] - input[n - d]).abs() < 1e-12, "sample {n}");
        }
        assert!(x[0][..d].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn after_a_burst_the_gain_recovers_with_the_release_time() {
        let fs = 48_000.0;
        let d = lookahead(fs);
        let release_ms = 50.0;
        // A loud burst, then steady quiet signal: the gain comes back 8/9 of the way in the
        // release time (the window and the average delay it by D samples each).
        let burst = 4000;
        let mut x: Vec<Vec<f64>> = vec![(0..24_000).map(|n| if n < burst { 1.0 } else { 0.25 }).collect()];
        limit(&[-12.0, release_ms], fs, &mut x, 100);
        let limited = 10f64.powf(-12.0 / 20.0);
        let settle = (release_ms * 1e-3 * fs) as usize;
        // Output sample n holds input n − D; the ramp starts after the last loud sample leaves
        // the window (D) and the average (D more).
        let n = burst + settle + 2 * d;
        let gain = x[0][n] / 0.25;
        let expected = 1.0 - (1.0 - limited) / 9.0;
        assert!((gain - expected).abs() < 0.01, "gain {gain} vs {expected}");
    }
}
