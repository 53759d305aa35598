//! Three-band compressor (`multiband`) on Linkwitz–Riley crossovers, with its exact adjoint.
//!
//! The crossovers are 4th-order Linkwitz–Riley (each a Butterworth 2nd-order section squared,
//! Q = 1/√2) at `low_hz` and `high_hz`:
//! - low band: `AP_high(LP_low(x))`, the all-pass of the high crossover keeping it in phase;
//! - mid band: `LP_high(HP_low(x))`; high band: `HP_high(HP_low(x))`.
//!
//! An LR4 pair sums to a 2nd-order all-pass (`LP + HP = AP`, same poles, Q = 1/√2), so the three
//! bands sum to `AP_high(AP_low(x))`: flat in magnitude whenever no band compresses, whatever the
//! crossover frequencies (tested). Each band then goes through the compressor of
//! [`super::compressor`] (soft knee fixed at 6 dB, linked detector) with its own threshold,
//! ratio, attack, release and make-up, and the bands are summed.

use super::biquad::{self, Design, Shape};
use super::cascade::{self, CascadeTape, Cascades};
use super::compressor::{self, Compressor, CompressorSettings, CompressorTape};
use super::effect::Effect;
use super::knob::{KnobSpec, Skew};
use super::track::Track;
use crate::Real;

/// Knee width of every band's compressor.
const KNEE_DB: f64 = 6.0;
const LOW_HZ: usize = 0;
const HIGH_HZ: usize = 1;
/// Knobs per band (threshold, ratio, attack, release, make-up), after the two crossovers.
const BAND_KNOBS: usize = 5;
/// Frames per inner block of the streaming path (the size of its band buffers).
const BLOCK: usize = 256;
/// Most channels the streaming path handles (its per-block channel views live on the stack).
pub const MAX_CHANNELS: usize = 32;

macro_rules! band {
    ($band:literal, $threshold:expr) => {
        [
            KnobSpec::new(concat!($band, ".threshold_db"), "dB", (-60.0, 0.0), $threshold, Skew::Linear, concat!($band, " band threshold")),
            KnobSpec::new(concat!($band, ".ratio"), ":1", (1.0, 20.0), 2.0, Skew::Log, concat!($band, " band ratio")),
            KnobSpec::new(concat!($band, ".attack_ms"), "ms", (0.1, 100.0), 10.0, Skew::Log, concat!($band, " band attack time (to 90 %)")),
            KnobSpec::new(concat!($band, ".release_ms"), "ms", (5.0, 1000.0), 100.0, Skew::Log, concat!($band, " band release time (to 90 %)")),
            KnobSpec::new(concat!($band, ".makeup_db"), "dB", (-24.0, 24.0), 0.0, Skew::Linear, concat!($band, " band make-up gain")),
        ]
    };
}

const BANDS: [[KnobSpec; BAND_KNOBS]; 3] = [band!("low", -24.0), band!("mid", -24.0), band!("high", -24.0)];
const CROSSOVERS: [KnobSpec; 2] = [
    KnobSpec::new("low_hz", "Hz", (40.0, 1000.0), 200.0, Skew::Log, "crossover between the low and mid bands"),
    KnobSpec::new("high_hz", "Hz", (1000.0, 12000.0), 3000.0, Skew::Log, "crossover between the mid and high bands"),
];
const KNOBS: [KnobSpec; 2 + 3 * BAND_KNOBS] = {
    let mut out = [CROSSOVERS[0]; 2 + 3 * BAND_KNOBS];
    out[1] = CROSSOVERS[1];
    let mut i = 0;
    while i < 3 * BAND_KNOBS {
        out[2 + i] = BANDS[i / BAND_KNOBS][i % BAND_KNOBS];
        i += 1;
    }
    out
};

/// Band `b`'s compressor settings.
fn band_settings(knobs: &[f64], b: usize) -> CompressorSettings {
    let k = &knobs[2 + BAND_KNOBS * b..];
    CompressorSettings { threshold_db: k[0], ratio: k[1], attack_ms: k[2], release_ms: k[3], knee_db: KNEE_DB, makeup_db: k[4] }
}

/// The bands' filter sections, and which crossover each section's frequency is.
struct Crossovers {
    low: [Design; 3],
    mid: [Design; 4],
    high: [Design; 4],
}

/// Which crossover knob each section's frequency is, per band.
const LOW_SECTIONS: [usize; 3] = [LOW_HZ, LOW_HZ, HIGH_HZ];
const SPLIT_SECTIONS: [usize; 4] = [LOW_HZ, LOW_HZ, HIGH_HZ, HIGH_HZ];

fn crossovers(knobs: &[f64], sample_rate: f64) -> Crossovers {
    let q = std::f64::consts::FRAC_1_SQRT_2;
    let d = |shape, f| biquad::design(shape, 0.0, f, q, sample_rate);
    let (f_low, f_high) = (knobs[LOW_HZ], knobs[HIGH_HZ]);
    let (lp_low, hp_low) = (d(Shape::LowPass, f_low), d(Shape::HighPass, f_low));
    let (lp_high, hp_high) = (d(Shape::LowPass, f_high), d(Shape::HighPass, f_high));
    Crossovers {
        low: [lp_low, lp_low, d(Shape::AllPass, f_high)],
        mid: [hp_low, hp_low, lp_high, lp_high],
        high: [hp_low, hp_low, hp_high, hp_high],
    }
}

/// The streaming multiband compressor: the three band filters and compressors, and buffers for
/// one inner block of every band.
#[derive(Clone, Debug)]
pub struct Multiband<T> {
    low: Cascades<T, 3>,
    mid: Cascades<T, 4>,
    high: Cascades<T, 4>,
    compressors: [Compressor<T>; 3],
    /// Per band, `channels` runs of [`BLOCK`] frames.
    buffers: [Vec<T>; 3],
    channels: usize,
}

/// Views of the first `n` frames of each channel's run in a band buffer.
fn views<T>(buffer: &mut [T], channels: usize, n: usize) -> [&mut [T]; MAX_CHANNELS] {
    let mut out: [&mut [T]; MAX_CHANNELS] = Default::default();
    for (v, run) in out.iter_mut().zip(buffer.chunks_mut(BLOCK)).take(channels) {
        *v = &mut run[..n];
    }
    out
}

/// The tape of one band: its filter sections' outputs per channel, and its compressor's tape.
#[derive(Clone, Debug)]
pub struct BandTape<T, const N: usize> {
    filters: Vec<CascadeTape<T, N>>,
    compressor: CompressorTape<T>,
}

impl<T, const N: usize> Default for BandTape<T, N> {
    fn default() -> Self {
        BandTape { filters: Vec::new(), compressor: CompressorTape { x_g: Vec::new(), x_l: Vec::new(), y_l: Vec::new(), gain: Vec::new() } }
    }
}

/// Band `b` of the taped forward: filters `input` into the tape, compresses it and adds the result
/// to `output` (segment `i` of `track` with `designs[i]` and `settings[i]`).
fn forward_band<T: Real, const N: usize>(
    designs: &[[Design; N]],
    settings: &[CompressorSettings],
    track: &Track<'_>,
    sample_rate: f64,
    input: &[Vec<T>],
    output: &mut [&mut [T]],
    tape: &mut BandTape<T, N>,
) {
    tape.filters.resize_with(input.len(), || std::array::from_fn(|_| Vec::new()));
    let mut band: Vec<Vec<T>> = input.to_vec();
    for (x, stages) in band.iter_mut().zip(tape.filters.iter_mut()) {
        cascade::forward(designs, track, x, stages);
    }
    let mut views: Vec<&mut [T]> = band.iter_mut().map(Vec::as_mut_slice).collect();
    compressor::forward(settings, track, sample_rate, &mut views, &mut tape.compressor);
    for (out, b) in output.iter_mut().zip(&band) {
        for (o, v) in out.iter_mut().zip(b) {
            *o = *o + *v;
        }
    }
}

/// Band `b`'s adjoint: from `∂L/∂output` (`grad_output`) adds the band's share to `grad_input`,
/// its compressor's knob gradients (the band's knobs start at `band_offset`) and its sections'
/// frequency gradients to the crossovers' in each segment's run of `knob_grad`.
#[allow(clippy::too_many_arguments)]
fn adjoint_band<T: Real, const N: usize>(
    designs: &[[Design; N]],
    section_knobs: &[usize; N],
    settings: &[CompressorSettings],
    track: &Track<'_>,
    sample_rate: f64,
    input: &[&[T]],
    tape: &BandTape<T, N>,
    grad_output: &[&mut [T]],
    grad_input: &mut [Vec<f64>],
    knob_grad: &mut [f64],
    band_offset: usize,
) {
    let filtered: Vec<&[T]> = tape.filters.iter().map(|stages| stages[N - 1].as_slice()).collect();
    let mut grad: Vec<Vec<T>> = grad_output.iter().map(|g| g.to_vec()).collect();
    let mut comp_grad = vec![[0.0; 6]; track.segments()];
    {
        let mut views: Vec<&mut [T]> = grad.iter_mut().map(Vec::as_mut_slice).collect();
        compressor::adjoint(settings, track, sample_rate, &filtered, &tape.compressor, &mut views, &mut comp_grad);
    }
    let mut section_grad = vec![[[0.0; 3]; N]; track.segments()];
    for (((x, stages), g), gi) in input.iter().zip(&tape.filters).zip(grad.iter_mut()).zip(grad_input.iter_mut()) {
        cascade::adjoint(designs, track, x, stages, g, &mut section_grad);
        for (a, v) in gi.iter_mut().zip(g.iter()) {
            *a += v.to64();
        }
    }
    for ((knob_grad, comp), sections) in knob_grad.chunks_mut(KNOBS.len()).zip(&comp_grad).zip(&section_grad) {
        // Threshold, ratio, attack, release and make-up; the fixed knee's gradient is dropped.
        for (k, g) in [0, 1, 2, 3, 5].iter().enumerate() {
            knob_grad[band_offset + k] += comp[*g];
        }
        for (s, &knob) in sections.iter().zip(section_knobs) {
            knob_grad[knob] += s[1];
        }
    }
}

/// The three bands' tapes (boxed: much larger than other effects' tapes).
pub type MultibandTape<T> = Box<(BandTape<T, 3>, BandTape<T, 4>, BandTape<T, 4>)>;

/// The multiband compressor as a chain effect.
pub struct MultibandEffect;

impl Effect for MultibandEffect {
    const NAME: &'static str = "multiband";
    const DESCRIPTION: &'static str = "three-band compressor on Linkwitz-Riley crossovers (bands sum flat)";
    const KNOBS: &'static [KnobSpec] = &KNOBS;
    const MAX_CHANNELS: usize = MAX_CHANNELS;
    // Each band's threshold (its first knob).
    const LEVEL_KNOBS: Option<&'static [usize]> = Some(&[2, 2 + BAND_KNOBS, 2 + 2 * BAND_KNOBS]);
    type Stream<T: Real> = Multiband<T>;
    type Tape<T: Real> = MultibandTape<T>;

    /// Panics beyond [`MAX_CHANNELS`] channels (the chain refuses such a count first).
    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, channels: usize) -> Multiband<T> {
        assert!(channels <= MAX_CHANNELS, "multiband handles at most {MAX_CHANNELS} channels");
        let c = crossovers(knobs, sample_rate);
        Multiband {
            low: Cascades::new(&c.low, channels),
            mid: Cascades::new(&c.mid, channels),
            high: Cascades::new(&c.high, channels),
            compressors: std::array::from_fn(|b| Compressor::new(&band_settings(knobs, b), sample_rate)),
            buffers: std::array::from_fn(|_| vec![T::zero(); channels * BLOCK]),
            channels,
        }
    }

    fn set<T: Real>(stream: &mut Multiband<T>, knobs: &[f64], sample_rate: f64) {
        let c = crossovers(knobs, sample_rate);
        stream.low.set(&c.low);
        stream.mid.set(&c.mid);
        stream.high.set(&c.high);
        for (b, comp) in stream.compressors.iter_mut().enumerate() {
            comp.set(&band_settings(knobs, b), sample_rate);
        }
    }

    fn reset<T: Real>(stream: &mut Multiband<T>) {
        stream.low.reset();
        stream.mid.reset();
        stream.high.reset();
        stream.compressors.iter_mut().for_each(Compressor::reset);
    }

    fn process<T: Real>(stream: &mut Multiband<T>, channels: &mut [&mut [T]]) {
        let nch = stream.channels;
        let len = channels.first().map_or(0, |c| c.len());
        for start in (0..len).step_by(BLOCK) {
            let n = BLOCK.min(len - start);
            for buffer in &mut stream.buffers {
                for (run, x) in buffer.chunks_mut(BLOCK).zip(channels.iter()) {
                    run[..n].copy_from_slice(&x[start..start + n]);
                }
            }
            let [low, mid, high] = &mut stream.buffers;
            let [c_low, c_mid, c_high] = &mut stream.compressors;
            let mut v = views(low, nch, n);
            stream.low.process(&mut v[..nch]);
            c_low.process(&mut v[..nch]);
            let mut v = views(mid, nch, n);
            stream.mid.process(&mut v[..nch]);
            c_mid.process(&mut v[..nch]);
            let mut v = views(high, nch, n);
            stream.high.process(&mut v[..nch]);
            c_high.process(&mut v[..nch]);
            for (c, x) in channels.iter_mut().enumerate() {
                let at = c * BLOCK;
                for (i, y) in x[start..start + n].iter_mut().enumerate() {
                    *y = low[at + i] + mid[at + i] + high[at + i];
                }
            }
        }
    }

    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut MultibandTape<T>) {
        let segments = Segments::of(&track, sample_rate);
        let input: Vec<Vec<T>> = channels.iter().map(|x| x.to_vec()).collect();
        channels.iter_mut().for_each(|x| x.fill(T::zero()));
        forward_band(&segments.low, &segments.settings[0], &track, sample_rate, &input, channels, &mut tape.0);
        forward_band(&segments.mid, &segments.settings[1], &track, sample_rate, &input, channels, &mut tape.1);
        forward_band(&segments.high, &segments.settings[2], &track, sample_rate, &input, channels, &mut tape.2);
    }

    fn adjoint<T: Real>(
        track: Track<'_>,
        sample_rate: f64,
        input: &[&[T]],
        tape: &MultibandTape<T>,
        grad: &mut [&mut [T]],
        knob_grad: &mut [f64],
    ) {
        let c = Segments::of(&track, sample_rate);
        let mut grad_input: Vec<Vec<f64>> = input.iter().map(|x| vec![0.0; x.len()]).collect();
        let offset = |b: usize| 2 + BAND_KNOBS * b;
        let (t, fs, gi) = (&track, sample_rate, &mut grad_input);
        adjoint_band(&c.low, &LOW_SECTIONS, &c.settings[0], t, fs, input, &tape.0, grad, gi, knob_grad, offset(0));
        adjoint_band(&c.mid, &SPLIT_SECTIONS, &c.settings[1], t, fs, input, &tape.1, grad, gi, knob_grad, offset(1));
        adjoint_band(&c.high, &SPLIT_SECTIONS, &c.settings[2], t, fs, input, &tape.2, grad, gi, knob_grad, offset(2));
        for (g, gi) in grad.iter_mut().zip(&grad_input) {
            for (a, &b) in g.iter_mut().zip(gi) {
                *a = T::of(b);
            }
        }
    }
}

/// Every segment's band filters and band compressor settings.
struct Segments {
    low: Vec<[Design; 3]>,
    mid: Vec<[Design; 4]>,
    high: Vec<[Design; 4]>,
    settings: [Vec<CompressorSettings>; 3],
}

impl Segments {
    fn of(track: &Track<'_>, sample_rate: f64) -> Self {
        let all: Vec<Crossovers> = (0..track.segments()).map(|i| crossovers(track.knobs(i), sample_rate)).collect();
        Segments {
            low: all.iter().map(|c| c.low).collect(),
            mid: all.iter().map(|c| c.mid).collect(),
            high: all.iter().map(|c| c.high).collect(),
            settings: std::array::from_fn(|b| (0..track.segments()).map(|i| band_settings(track.knobs(i), b)).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knobs with every band's threshold at 0 dB: a quieter signal is never compressed.
    fn uncompressed(low_hz: f64, high_hz: f64) -> Vec<f64> {
        let mut k: Vec<f64> = KNOBS.iter().map(|k| k.default).collect();
        (k[LOW_HZ], k[HIGH_HZ]) = (low_hz, high_hz);
        for b in 0..3 {
            // With the 6 dB knee, compression starts 3 dB under the threshold.
            k[2 + BAND_KNOBS * b] = 0.0;
        }
        k
    }

    #[test]
    fn the_bands_sum_flat_when_no_band_compresses() {
        let fs = 48_000.0;
        for (low_hz, high_hz) in [(200.0, 3000.0), (40.0, 12_000.0), (900.0, 1100.0)] {
            let knobs = uncompressed(low_hz, high_hz);
            for f in [30.0, 150.0, 200.0, 700.0, 1000.0, 3000.0, 9000.0, 18_000.0] {
                // A −12 dBFS sine, never within the knee of a 0 dB threshold.
                let amp = 0.25;
                let mut x: Vec<f64> = (0..48_000).map(|n| amp * (2.0 * std::f64::consts::PI * f * n as f64 / fs).sin()).collect();
                let mut s = MultibandEffect::stream::<f64>(&knobs, fs, 1);
                MultibandEffect::process(&mut s, &mut [&mut x]);
                let tail = &x[24_000..];
                let rms = (tail.iter().map(|v| v * v).sum::<f64>() / tail.len() as f64).sqrt();
                let gain_db = 20.0 * (rms * 2f64.sqrt() / amp).log10();
                assert!(gain_db.abs() < 0.01, "crossovers {low_hz}/{high_hz} Hz, {f} Hz: {gain_db} dB");
            }
        }
    }

    #[test]
    fn a_band_compresses_only_its_own_frequencies() {
        let fs = 48_000.0;
        let mut knobs = uncompressed(200.0, 3000.0);
        // The high band at −40 dB threshold, ratio 10: a loud 10 kHz tone is turned down, a loud
        // 80 Hz tone is not.
        knobs[2 + 2 * BAND_KNOBS] = -40.0;
        knobs[2 + 2 * BAND_KNOBS + 1] = 10.0;
        let level = |f: f64| {
            let mut x: Vec<f64> = (0..48_000).map(|n| 0.25 * (2.0 * std::f64::consts::PI * f * n as f64 / fs).sin()).collect();
            let mut s = MultibandEffect::stream::<f64>(&knobs, fs, 1);
            MultibandEffect::process(&mut s, &mut [&mut x]);
            20.0 * (x[24_000..].iter().fold(0.0f64, |m, v| m.max(v.abs())) / 0.25).log10()
        };
        assert!(level(80.0).abs() < 0.05, "80 Hz: {} dB", level(80.0));
        assert!(level(10_000.0) < -20.0, "10 kHz: {} dB", level(10_000.0));
    }
}
