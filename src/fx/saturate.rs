//! Saturation (`saturate`): a `tanh` waveshaper run at 8× the sample rate, a tone control and a
//! dry/wet mix, with its exact adjoint.
//!
//! With drive `g = 10^(drive_db/20)`, per sample:
//! - upsample 8× (zero-stuffing and the lowpass `h`, gain 8): `u = up(x)`;
//! - shape: `v = tanh(g·u) / g` (unity gain for small signals, `±1/g` at most);
//! - lowpass with `h` and keep every 8th sample (the one aligned with the input sample):
//!   `w = down(v)`;
//! - tone, a one-pole lowpass: `p[n] = a·p[n−1] + (1 − a)·w[n]`, `a = exp(−2π·tone_hz/fs)`;
//! - mix with the input delayed by the filters' latency `D`: `y = (1 − m)·x[n − D] + m·p[n]`.
//!
//! `h` is a Kaiser-windowed sinc (β = 8, about 80 dB of stopband) of 505 taps at 8× the rate,
//! cut off at the base rate's Nyquist frequency: the harmonics the shaper makes above it are
//! removed before they fold back. Its two passes delay the wet path by 504 oversampled samples,
//! `D` = 63 samples at the base rate, which the chain compensates. A `tanh` of a sine of peak
//! `z = g·A` has harmonics falling like `exp(−n·asinh(π / 2z))`, so at the largest drive (18 dB)
//! and a −6 dBFS input those that fold back into the band are over 100 dB down (tested: a 10 kHz
//! sine at 48 kHz shows nothing above −60 dB but itself).

use std::sync::LazyLock;

use super::effect::Effect;
use super::knob::{KnobSpec, Skew};
use super::track::{PerSegment, Track};
use crate::Real;

/// Oversampling factor.
const FACTOR: usize = 8;
/// Taps of the lowpass (`(TAPS − 1)` is a multiple of [`FACTOR`], so the latency is whole samples).
const TAPS: usize = 505;
/// Latency in base-rate samples: the two passes' group delay, `(TAPS − 1) / FACTOR`.
const LATENCY: usize = (TAPS - 1) / FACTOR;
/// Kaiser window parameter.
const KAISER_BETA: f64 = 8.0;

const DRIVE_DB: usize = 0;
const TONE_HZ: usize = 1;
const MIX_PCT: usize = 2;

/// The lowpass at 8× the rate: `h[i] = sinc((i − c)/8)/8 · kaiser(i)`, unity gain at DC.
static LOWPASS: LazyLock<[f64; TAPS]> = LazyLock::new(|| {
    let centre = (TAPS - 1) as f64 / 2.0;
    let bessel_i0 = |x: f64| {
        // Power series of the modified Bessel function of the first kind, order 0.
        let (mut sum, mut term) = (1.0, 1.0);
        for k in 1..60 {
            term *= (x / (2.0 * k as f64)).powi(2);
            sum += term;
        }
        sum
    };
    let mut h = [0.0; TAPS];
    for (i, h) in h.iter_mut().enumerate() {
        let t = (i as f64 - centre) / FACTOR as f64;
        let sinc = if t == 0.0 { 1.0 } else { (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t) };
        let r = (i as f64 - centre) / centre;
        *h = sinc / FACTOR as f64 * bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / bessel_i0(KAISER_BETA);
    }
    let dc: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= dc);
    h
});

/// Input history needed by the upsampler (and the dry delay).
const INPUT_HISTORY: usize = TAPS.div_ceil(FACTOR);
/// Shaped history needed by the decimator: `v[8n − i]` for `i < TAPS` while `v[8n + 7]` is the newest.
const SHAPED_HISTORY: usize = TAPS + FACTOR - 1;

/// The upsampler's polyphase taps, each phase laid out against the input history (oldest
/// first): `u[8n + k] = Σ_t UP[k][t]·history[t]`, with `UP[k][H − 1 − j] = 8·h[8j + k]`.
static UP: LazyLock<[[f64; INPUT_HISTORY]; FACTOR]> = LazyLock::new(|| {
    let h = &*LOWPASS;
    let mut up = [[0.0; INPUT_HISTORY]; FACTOR];
    for (k, phase) in up.iter_mut().enumerate() {
        for j in 0..INPUT_HISTORY {
            if FACTOR * j + k < TAPS {
                phase[INPUT_HISTORY - 1 - j] = FACTOR as f64 * h[FACTOR * j + k];
            }
        }
    }
    up
});

/// `Σ a[i]·b[i]` over four running sums (so the additions overlap).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// A history of the last `N` values, readable oldest-first as one slice: every value is
/// written twice, `N` apart.
#[derive(Clone, Debug)]
struct History<const N: usize> {
    values: Vec<f64>,
    next: usize,
}

impl<const N: usize> History<N> {
    fn new() -> Self {
        History { values: vec![0.0; 2 * N], next: 0 }
    }

    fn clear(&mut self) {
        self.values.iter_mut().for_each(|v| *v = 0.0);
        self.next = 0;
    }

    fn push(&mut self, v: f64) {
        self.values[self.next] = v;
        self.values[self.next + N] = v;
        self.next = (self.next + 1) % N;
    }

    /// The last `N` values, oldest first.
    fn slice(&self) -> &[f64] {
        &self.values[self.next..self.next + N]
    }
}

/// The settings in the kernel's terms.
#[derive(Clone, Copy, Debug)]
struct Constants {
    drive: f64,
    /// The tone filter's pole.
    pole: f64,
    mix: f64,
}

impl Constants {
    fn new(knobs: &[f64], sample_rate: f64) -> Self {
        Constants {
            drive: 10f64.powf(knobs[DRIVE_DB] / 20.0),
            pole: (-2.0 * std::f64::consts::PI * knobs[TONE_HZ].min(0.45 * sample_rate) / sample_rate).exp(),
            mix: knobs[MIX_PCT] / 100.0,
        }
    }
}

/// One channel's state: the input history (base rate, also the dry delay), the shaped history
/// (oversampled) and the tone filter.
#[derive(Clone, Debug)]
struct ChannelState {
    input: History<INPUT_HISTORY>,
    shaped: History<SHAPED_HISTORY>,
    tone: f64,
}

impl ChannelState {
    fn new() -> Self {
        ChannelState { input: History::new(), shaped: History::new(), tone: 0.0 }
    }

    /// One base-rate sample through the whole effect: the output, the wet signal and the tone
    /// filter's output; the oversampled `u` values are written to `upsampled` if given.
    #[inline]
    fn step(&mut self, k: &Constants, x: f64, mut upsampled: Option<&mut [f64]>) -> (f64, f64, f64) {
        self.input.push(x);
        for (phase, taps) in UP.iter().enumerate() {
            let u = dot(taps, self.input.slice());
            if let Some(out) = upsampled.as_deref_mut() {
                out[phase] = u;
            }
            self.shaped.push((k.drive * u).tanh() / k.drive);
        }
        // w[n] = Σ_i h[i]·v[8n − i]; oldest first, v[8n − i] sits at 504 − i, and h is symmetric.
        let w = dot(&LOWPASS[..], &self.shaped.slice()[..TAPS]);
        self.tone = k.pole * self.tone + (1.0 - k.pole) * w;
        let dry = self.input.slice()[INPUT_HISTORY - 1 - LATENCY];
        ((1.0 - k.mix) * dry + k.mix * self.tone, w, self.tone)
    }
}

/// The streaming saturator.
#[derive(Clone, Debug)]
pub struct Saturator {
    k: Constants,
    channels: Vec<ChannelState>,
}

/// What the adjoint needs of one channel: the oversampled input of the shaper, the decimated
/// wet signal and the tone filter's output.
#[derive(Clone, Debug, Default)]
pub struct ChannelTape {
    upsampled: Vec<f64>,
    wet: Vec<f64>,
    tone: Vec<f64>,
}

/// The saturator as a chain effect.
pub struct SaturateEffect;

impl Effect for SaturateEffect {
    const NAME: &'static str = "saturate";
    const DESCRIPTION: &'static str = "tanh saturation at 8x oversampling, tone (one-pole lowpass), dry/wet mix";
    const KNOBS: &'static [KnobSpec] = &[
        KnobSpec::new("drive_db", "dB", (0.0, 18.0), 6.0, Skew::Linear, "gain into the tanh shaper (divided out after it)"),
        KnobSpec::new("tone_hz", "Hz", (1000.0, 20000.0), 20000.0, Skew::Log, "one-pole lowpass on the saturated signal"),
        KnobSpec::new("mix_pct", "%", (0.0, 100.0), 100.0, Skew::Linear, "share of the saturated signal"),
    ];
    // The shaper works on absolute sample values: a louder input saturates more.
    const LEVEL_KNOBS: Option<&'static [usize]> = None;
    type Stream<T: Real> = Saturator;
    type Tape<T: Real> = Vec<ChannelTape>;

    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, channels: usize) -> Saturator {
        Saturator { k: Constants::new(knobs, sample_rate), channels: (0..channels).map(|_| ChannelState::new()).collect() }
    }

    fn set<T: Real>(stream: &mut Saturator, knobs: &[f64], sample_rate: f64) {
        stream.k = Constants::new(knobs, sample_rate);
    }

    fn reset<T: Real>(stream: &mut Saturator) {
        for c in &mut stream.channels {
            c.input.clear();
            c.shaped.clear();
            c.tone = 0.0;
        }
    }

    fn process<T: Real>(stream: &mut Saturator, channels: &mut [&mut [T]]) {
        let k = stream.k;
        for (state, x) in stream.channels.iter_mut().zip(channels.iter_mut()) {
            for v in x.iter_mut() {
                *v = T::of(state.step(&k, v.to64(), None).0);
            }
        }
    }

    fn latency(_sample_rate: f64) -> usize {
        LATENCY
    }

    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut Vec<ChannelTape>) {
        tape.resize_with(channels.len(), Default::default);
        for (x, t) in channels.iter_mut().zip(tape.iter_mut()) {
            let mut state = ChannelState::new();
            t.upsampled.resize(x.len() * FACTOR, 0.0);
            t.wet.resize(x.len(), 0.0);
            t.tone.resize(x.len(), 0.0);
            for (_, range, knobs) in track.spans(x.len()) {
                let k = Constants::new(knobs, sample_rate);
                for n in range {
                    let (y, w, p) = state.step(&k, x[n].to64(), Some(&mut t.upsampled[n * FACTOR..(n + 1) * FACTOR]));
                    (t.wet[n], t.tone[n]) = (w, p);
                    x[n] = T::of(y);
                }
            }
        }
    }

    fn adjoint<T: Real>(
        track: Track<'_>,
        sample_rate: f64,
        input: &[&[T]],
        tape: &Vec<ChannelTape>,
        grad: &mut [&mut [T]],
        knob_grad: &mut [f64],
    ) {
        let h = &*LOWPASS;
        let len = input.first().map_or(0, |x| x.len());
        let constants = PerSegment::new(&track, len, |k| Constants::new(k, sample_rate));
        let segments = track.segments();
        let (mut g_drive, mut g_pole, mut g_mix) = (vec![0.0; segments], vec![0.0; segments], vec![0.0; segments]);
        for ((x, t), g) in input.iter().zip(tape).zip(grad.iter_mut()) {
            let mut x_bar = vec![0.0f64; len];
            // Mix: y[n] = (1 − m)·x[n − D] + m·p[n].
            let mut p_bar = vec![0.0f64; len];
            for (i, range, _) in track.spans(len) {
                let k = constants.get(i);
                for n in range {
                    let y_bar = g[n].to64();
                    let dry = if n >= LATENCY { x[n - LATENCY].to64() } else { 0.0 };
                    g_mix[i] += y_bar * (t.tone[n] - dry);
                    p_bar[n] = k.mix * y_bar;
                    if n >= LATENCY {
                        x_bar[n - LATENCY] += (1.0 - k.mix) * y_bar;
                    }
                }
            }
            // Tone, backwards: λ[n] = p̄[n] + a[n+1]·λ[n+1]; w̄ = (1 − a[n])·λ;
            // ∂L/∂a[n] = λ[n]·(p[n−1] − w[n]).
            let mut w_bar = vec![0.0f64; len];
            let mut carry = 0.0;
            for (i, range, _) in track.spans(len).rev() {
                let pole = constants.get(i).pole;
                for n in range.rev() {
                    let lambda = p_bar[n] + carry;
                    let p_prev = if n > 0 { t.tone[n - 1] } else { 0.0 };
                    g_pole[i] += lambda * (p_prev - t.wet[n]);
                    w_bar[n] = (1.0 - pole) * lambda;
                    carry = pole * lambda;
                }
            }
            // Decimation, transposed: v̄[m] = Σ_n w̄[n]·h[8n − m]; then the shaper:
            // ∂v/∂u = sech²(g·u), ∂v/∂g = u·sech²(g·u)/g − tanh(g·u)/g².
            let over = len * FACTOR;
            let mut u_bar = vec![0.0f64; over];
            for (n, &wb) in w_bar.iter().enumerate() {
                let at = FACTOR * n;
                for (i, &hi) in h.iter().enumerate().take(at + 1) {
                    u_bar[at - i] += wb * hi;
                }
            }
            // The shaper of base sample n runs its 8 oversampled values with that sample's drive.
            for (i, range, _) in track.spans(len) {
                let drive = constants.get(i).drive;
                let span = range.start * FACTOR..range.end * FACTOR;
                for (ub, &u) in u_bar[span.clone()].iter_mut().zip(&t.upsampled[span]) {
                    let th = (drive * u).tanh();
                    let sech2 = 1.0 - th * th;
                    g_drive[i] += *ub * (u * sech2 / drive - th / (drive * drive));
                    *ub *= sech2;
                }
            }
            // Upsampling, transposed: x̄[n − j] += 8·h[8j + phase]·ū[8n + phase].
            for n in 0..len {
                for phase in 0..FACTOR {
                    let ub = u_bar[n * FACTOR + phase] * FACTOR as f64;
                    let mut j = 0;
                    while FACTOR * j + phase < TAPS && j <= n {
                        x_bar[n - j] += h[FACTOR * j + phase] * ub;
                        j += 1;
                    }
                }
            }
            for (g, xb) in g.iter_mut().zip(&x_bar) {
                *g = T::of(*xb);
            }
        }
        for (i, knob_grad) in knob_grad.chunks_mut(Self::KNOBS.len()).enumerate() {
            let (k, tone_hz) = (constants.get(i), track.knobs(i)[TONE_HZ]);
            let d_pole = if tone_hz < 0.45 * sample_rate { -2.0 * std::f64::consts::PI / sample_rate * k.pole } else { 0.0 };
            knob_grad[DRIVE_DB] += g_drive[i] * k.drive * std::f64::consts::LN_10 / 20.0;
            knob_grad[TONE_HZ] += g_pole[i] * d_pole;
            knob_grad[MIX_PCT] += g_mix[i] / 100.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use realfft::RealFftPlanner;

    fn saturate(knobs: &[f64], fs: f64, x: &[f64]) -> Vec<f64> {
        let mut y = x.to_vec();
        let mut s = SaturateEffect::stream::<f64>(knobs, fs, 1);
        SaturateEffect::process(&mut s, &mut [&mut y]);
        y
    }

    #[test]
    fn a_loud_10_khz_sine_at_48_khz_shows_no_alias_above_minus_60_db() {
        let fs = 48_000.0;
        let len = 1 << 15;
        let x: Vec<f64> = (0..len + 4096).map(|n| 0.5 * (2.0 * std::f64::consts::PI * 10_000.0 * n as f64 / fs).sin()).collect();
        let y = saturate(&[18.0, 20_000.0, 100.0], fs, &x);
        // A Blackman–Harris window (sidelobes under −92 dB) over a settled stretch.
        let mut frame: Vec<f64> = y[4096..]
            .iter()
            .enumerate()
            .map(|(n, v)| {
                let t = 2.0 * std::f64::consts::PI * n as f64 / len as f64;
                v * (0.35875 - 0.48829 * t.cos() + 0.14128 * (2.0 * t).cos() - 0.01168 * (3.0 * t).cos())
            })
            .collect();
        let mut spectrum = RealFftPlanner::<f64>::new().plan_fft_forward(len).make_output_vec();
        RealFftPlanner::<f64>::new().plan_fft_forward(len).process(&mut frame, &mut spectrum).unwrap();
        let db: Vec<f64> = spectrum.iter().map(|c| 20.0 * c.norm().max(1e-300).log10()).collect();
        let tone_bin = (10_000.0 / fs * len as f64).round() as usize;
        let peak = db[tone_bin];
        // Everything but the tone (its window's main lobe is ±4 bins): in a 48 kHz stream, every
        // harmonic of 10 kHz lies above Nyquist, so whatever else shows is aliasing.
        let worst = db.iter().enumerate().filter(|(i, _)| i.abs_diff(tone_bin) > 4).map(|(_, &d)| d).fold(f64::MIN, f64::max);
        assert!(worst - peak < -60.0, "alias at {:.1} dB", worst - peak);
        // The shaper did saturate: a sine of peak 0.5 driven 18 dB comes out near 1/g's ceiling.
        let out_peak = y[4096..].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(out_peak < 0.2, "peak {out_peak}");
    }

    #[test]
    fn dry_mix_is_the_input_delayed_and_small_signals_pass_at_unity() {
        let fs = 44_100.0;
        let x: Vec<f64> = (0..4000).map(|n| 0.3 * (n as f64 * 0.05).sin() + 0.1 * (n as f64 * 0.31).cos()).collect();
        let dry = saturate(&[12.0, 5000.0, 0.0], fs, &x);
        for n in LATENCY..4000 {
            assert_eq!(dry[n], x[n - LATENCY]);
        }
        // A −80 dBFS tone at 1 kHz through the wet path at the widest tone setting: the shaper is
        // linear there and the filters pass 1 kHz at unity, so the output is the input delayed
        // (to the tone filter's gain at 1 kHz: |1 − a| / |1 − a·e^{−jω}|).
        let small: Vec<f64> = (0..8000).map(|n| 1e-4 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / fs).sin()).collect();
        let wet = saturate(&[18.0, 20_000.0, 100.0], fs, &small);
        let a = (-2.0 * std::f64::consts::PI * 20_000f64.min(0.45 * fs) / fs).exp();
        let w = 2.0 * std::f64::consts::PI * 1000.0 / fs;
        let gain = (1.0 - a) / ((1.0 - a * w.cos()).powi(2) + (a * w.sin()).powi(2)).sqrt();
        let rms = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
        let ratio = rms(&wet[4000..]) / rms(&small[4000 - LATENCY..8000 - LATENCY]);
        assert!((ratio - gain).abs() < 2e-3, "{ratio} vs {gain}");
    }
}
