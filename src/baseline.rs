//! Peers that do not learn. [`loudness_match`]: one gain to the reference's integrated
//! loudness, held below a peak ceiling. [`rb_dsp`]: RB-DSP, the rule-based baseline of
//! DeepAFx-ST (Steinmetz, Bryan & Reiss 2022, §5; the released `BaselineEQAndComp`): two
//! measurements of the reference.
//!
//! 1. Input and reference peak-normalised to −12 dBFS.
//! 2. EQ match: the average magnitude spectrum of each (rectangular 65 536-point frames, hop
//!    16 384, centred with reflect padding), each smoothed by a Savitzky–Golay filter (1025
//!    bins, order 2); the ratio reference / input (0 at Nyquist) is realised as a 63-tap
//!    linear-phase FIR by frequency sampling (`scipy.signal.firwin2`, Hamming window).
//! 3. Both peak-normalised again.
//! 4. Compressor search: ratio 3, attack 1 ms, release 50 ms, knee 6 dB, no make-up; the
//!    threshold falls from 0 dB in 0.5 dB steps while the reference is more than 0.5 LU louder
//!    than the compressed input (peak-normalised after each step), down to −80 dB.
//! 5. The output peak-normalised to −12 dBFS.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

use crate::Result;
use crate::data::{PEAK_DBFS, normalize_peak};
use crate::fx::{self, Knobs};
use crate::metrics::{audible_loudness, loudness_lufs};

const SPECTRUM_FFT: usize = 65_536;
const SMOOTHING_BINS: usize = 1025;
const FIR_TAPS: usize = 63;
const THRESHOLD_STEP_DB: f64 = 0.5;
const LOUDNESS_TOLERANCE_LU: f64 = 0.5;
const LOWEST_THRESHOLD_DB: f64 = -80.0;

/// The loudness-only peer: `input` times one gain that brings its BS.1770 integrated loudness
/// to the reference's, lowered where needed so that no sample peak exceeds `ceiling_dbfs`
/// (peak-safe: the gain never clips, so it never distorts). Input and reference may differ in
/// channel count; both at `sample_rate`. A recording silent to the meter is an error.
pub fn loudness_match(input: &[Vec<f32>], reference: &[Vec<f32>], sample_rate: u32, ceiling_dbfs: f64) -> Result<Vec<Vec<f32>>> {
    let input_lufs = audible_loudness(input, sample_rate, "input")?;
    let reference_lufs = audible_loudness(reference, sample_rate, "reference")?;
    let peak = input.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    let gain_db = (reference_lufs - input_lufs).min(ceiling_dbfs - 20.0 * f64::from(peak).log10());
    let gain = 10f64.powf(gain_db / 20.0) as f32;
    Ok(input.iter().map(|c| c.iter().map(|v| v * gain).collect()).collect())
}

/// The RB-DSP output for a mono `input` and `reference` at `sample_rate`.
pub fn rb_dsp(input: &[f32], reference: &[f32], sample_rate: u32) -> Result<Vec<f32>> {
    let (mut x, mut r) = (input.to_vec(), reference.to_vec());
    normalize_peak(&mut [&mut x], PEAK_DBFS);
    normalize_peak(&mut [&mut r], PEAK_DBFS);

    let n = SPECTRUM_FFT.min(x.len().min(r.len()).next_power_of_two() / 2).max(4);
    let (input_spectrum, reference_spectrum) = (average_magnitude(&x, n), average_magnitude(&r, n));
    let window = SMOOTHING_BINS.min(odd_at_most(input_spectrum.len()));
    let (input_smooth, reference_smooth) = (savitzky_golay(&input_spectrum, window), savitzky_golay(&reference_spectrum, window));
    let mut gain: Vec<f64> = input_smooth.iter().zip(&reference_smooth).map(|(i, r)| (r / i.max(1e-12)).max(0.0)).collect();
    *gain.last_mut().expect("at least two bins") = 0.0;
    let fir = firwin2(FIR_TAPS, &gain);
    let mut equalized = filter(&fir, &x);
    normalize_peak(&mut [&mut equalized], PEAK_DBFS);
    normalize_peak(&mut [&mut r], PEAK_DBFS);

    let reference_lufs = loudness_lufs(&r, sample_rate, "reference")?;
    let mut best = equalized.clone();
    let mut threshold_db = 0.0;
    while loudness_lufs(&best, sample_rate, "input")? < reference_lufs - LOUDNESS_TOLERANCE_LU && threshold_db > LOWEST_THRESHOLD_DB {
        threshold_db -= THRESHOLD_STEP_DB;
        best = compress(&equalized, sample_rate, threshold_db)?;
    }
    Ok(best)
}

/// The largest odd number ≤ `n` (at least 1).
fn odd_at_most(n: usize) -> usize {
    if n.is_multiple_of(2) { n.saturating_sub(1).max(1) } else { n }
}

/// The input through the fixed compressor at `threshold_db` (EQ flat), peak-normalised.
fn compress(signal: &[f32], sample_rate: u32, threshold_db: f64) -> Result<Vec<f32>> {
    let mut knobs = Knobs::default();
    for (name, value) in [
        ("comp.threshold_db", threshold_db),
        ("comp.ratio", 3.0),
        ("comp.attack_ms", 1.0),
        ("comp.release_ms", 50.0),
        ("comp.knee_db", 6.0),
        ("comp.makeup_db", 0.0),
    ] {
        knobs.set(name, value)?;
    }
    let mut out = signal.to_vec();
    fx::render(&knobs.chain_knobs(), sample_rate, &mut [&mut out])?;
    normalize_peak(&mut [&mut out], PEAK_DBFS);
    Ok(out)
}

/// The mean over frames of `|X_t[k]|` for rectangular frames of `n` samples every `n/4`,
/// centred (reflect padding by `n/2`), as `torch.stft(n, window=None, center=True)`; the
/// scale (`normalized=True`) cancels in the ratio and is left out.
fn average_magnitude(signal: &[f32], n: usize) -> Vec<f64> {
    let pad = n / 2;
    let len = signal.len();
    let reflect = |i: isize| -> f32 {
        let m = if i < 0 {
            -i
        } else if i >= len as isize {
            2 * (len as isize - 1) - i
        } else {
            i
        };
        signal[m.clamp(0, len as isize - 1) as usize]
    };
    let padded: Vec<f32> = (0..len + 2 * pad).map(|i| reflect(i as isize - pad as isize)).collect();
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
    let (mut frame, mut spectrum) = (fft.make_input_vec(), fft.make_output_vec());
    let hop = n / 4;
    let frames = 1 + (padded.len() - n) / hop;
    let mut mean = vec![0.0f64; n / 2 + 1];
    for t in 0..frames {
        frame.copy_from_slice(&padded[t * hop..t * hop + n]);
        fft.process(&mut frame, &mut spectrum).expect("buffers from the plan");
        for (m, x) in mean.iter_mut().zip(&spectrum) {
            *m += f64::from(x.norm()) / frames as f64;
        }
    }
    mean
}

/// Savitzky–Golay smoothing with a quadratic over `window` (odd) points, as
/// `scipy.signal.savgol_filter(y, window, 2)` (mode `interp`): inside, each point is the value
/// at its centre of the least-squares quadratic through its window; within half a window of
/// either end, the values of the quadratic fitted to the first (or last) window.
fn savitzky_golay(y: &[f64], window: usize) -> Vec<f64> {
    let half = window / 2;
    let m = half as f64;
    // The centre weights of the quadratic fit: 3(3m² + 3m − 1 − 5j²) / ((4m² − 1)(2m + 3)).
    let norm = (4.0 * m * m - 1.0) * (2.0 * m + 3.0);
    let weights: Vec<f64> = (0..window)
        .map(|i| {
            let j = i as f64 - m;
            3.0 * (3.0 * m * m + 3.0 * m - 1.0 - 5.0 * j * j) / norm
        })
        .collect();
    let mut out = vec![0.0; y.len()];
    if y.len() < window || window < 3 {
        out.copy_from_slice(y);
        return out;
    }
    for c in half..y.len() - half {
        out[c] = weights.iter().zip(&y[c - half..=c + half]).map(|(w, v)| w * v).sum();
    }
    let start = quadratic_fit(&y[..window]);
    let end = quadratic_fit(&y[y.len() - window..]);
    for i in 0..half {
        out[i] = start(i as f64);
        out[y.len() - half + i] = end((window - half + i) as f64);
    }
    out
}

/// The least-squares quadratic through `(i, y[i])`, as a function of `i`.
fn quadratic_fit(y: &[f64]) -> impl Fn(f64) -> f64 {
    // Normal equations in the centred variable u = i − c, so that Σu = Σu³ = 0.
    let c = (y.len() - 1) as f64 / 2.0;
    let (mut s2, mut s4, mut t0, mut t1, mut t2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in y.iter().enumerate() {
        let u = i as f64 - c;
        s2 += u * u;
        s4 += u.powi(4);
        t0 += v;
        t1 += u * v;
        t2 += u * u * v;
    }
    let n = y.len() as f64;
    // [n 0 s2; 0 s2 0; s2 0 s4] (a, b, q) = (t0, t1, t2).
    let b = t1 / s2;
    let q = (n * t2 - s2 * t0) / (n * s4 - s2 * s2);
    let a = (t0 - s2 * q) / n;
    move |i| {
        let u = i - c;
        a + b * u + q * u * u
    }
}

/// A linear-phase FIR of `taps` (odd) coefficients whose response follows `gain`, sampled at
/// equally spaced frequencies from 0 to Nyquist, as `scipy.signal.firwin2(taps, freq, gain)`:
/// the gain interpolated linearly onto `1 + 2^⌈log2 taps⌉` frequencies, a delay of
/// `(taps − 1)/2` samples, the inverse real FFT, the first `taps` values times a symmetric
/// Hamming window.
fn firwin2(taps: usize, gain: &[f64]) -> Vec<f32> {
    let nfreqs = 1 + taps.next_power_of_two();
    let grid: Vec<f64> = (0..nfreqs)
        .map(|i| {
            let position = i as f64 / (nfreqs - 1) as f64 * (gain.len() - 1) as f64;
            let (k, frac) = (position.floor() as usize, position.fract());
            if k + 1 < gain.len() { gain[k] * (1.0 - frac) + gain[k + 1] * frac } else { gain[gain.len() - 1] }
        })
        .collect();
    let n = 2 * (nfreqs - 1);
    let delay = (taps - 1) as f64 / 2.0;
    let mut spectrum: Vec<Complex<f64>> = grid
        .iter()
        .enumerate()
        .map(|(i, &g)| Complex::from_polar(g, -delay * std::f64::consts::PI * i as f64 / (nfreqs - 1) as f64))
        .collect();
    spectrum[0].im = 0.0;
    spectrum[nfreqs - 1].im = 0.0;
    let inverse = RealFftPlanner::<f64>::new().plan_fft_inverse(n);
    let mut impulse = inverse.make_output_vec();
    inverse.process(&mut spectrum, &mut impulse).expect("buffers from the plan");
    (0..taps)
        .map(|j| {
            let hamming = 0.54 - 0.46 * (2.0 * std::f64::consts::PI * j as f64 / (taps - 1) as f64).cos();
            (impulse[j] / n as f64 * hamming) as f32
        })
        .collect()
}

/// `signal` through the FIR `h` (causal, zero initial state, same length), as
/// `scipy.signal.lfilter(h, 1, signal)`.
fn filter(h: &[f32], signal: &[f32]) -> Vec<f32> {
    (0..signal.len()).map(|t| h.iter().enumerate().take(t + 1).map(|(j, &c)| c * signal[t - j]).sum()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics;

    /// Loudness meets the reference's when the peaks allow it, and the ceiling holds when not.
    #[test]
    fn loudness_match_meets_the_reference_or_the_ceiling() {
        let fs = 48_000;
        let sine = |amp: f32, f: f32, len: usize| -> Vec<f32> {
            (0..len).map(|n| amp * (2.0 * std::f32::consts::PI * f * n as f32 / fs as f32).sin()).collect()
        };
        let lufs = |x: &[Vec<f32>]| metrics::integrated_loudness(x, fs, "x").unwrap().unwrap();
        let input = vec![sine(0.05, 440.0, 96_000), sine(0.03, 660.0, 96_000)];
        let quiet_reference = vec![sine(0.2, 1000.0, 72_000)];
        let out = loudness_match(&input, &quiet_reference, fs, -1.0).unwrap();
        assert!((lufs(&out) - lufs(&quiet_reference)).abs() < 0.01, "{} vs {}", lufs(&out), lufs(&quiet_reference));
        // A reference louder than the input's peaks allow: the peak stops at −1 dBFS.
        let loud_reference = vec![sine(0.99, 3000.0, 72_000), sine(0.99, 3000.0, 72_000)];
        let out = loudness_match(&input, &loud_reference, fs, -1.0).unwrap();
        let peak = out.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((20.0 * f64::from(peak).log10() + 1.0).abs() < 1e-3, "peak {peak}");
        assert!(lufs(&out) < lufs(&loud_reference));
        assert!(loudness_match(&[vec![0.0; 48_000]], &quiet_reference, fs, -1.0).is_err());
    }

    #[test]
    fn savitzky_golay_keeps_quadratics_and_smooths_noise() {
        let quadratic: Vec<f64> = (0..200).map(|i| 3.0 - 0.2 * i as f64 + 0.01 * (i * i) as f64).collect();
        let smoothed = savitzky_golay(&quadratic, 31);
        assert!(quadratic.iter().zip(&smoothed).all(|(a, b)| (a - b).abs() < 1e-9));
        let alternating: Vec<f64> = (0..200).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let smoothed = savitzky_golay(&alternating, 31);
        assert!(smoothed[15..185].iter().all(|v| v.abs() < 0.1), "{:?}", &smoothed[15..20]);
    }

    /// The FIR's response, evaluated directly as `Σ h[j] e^{−iωj}`, follows a smooth target.
    #[test]
    fn firwin2_follows_the_requested_response() {
        let bins = 1025;
        let target = |f: f64| if f < 0.3 { 1.0 } else { 0.25 };
        let gain: Vec<f64> = (0..bins).map(|k| target(k as f64 / (bins - 1) as f64)).collect();
        let h = firwin2(FIR_TAPS, &gain);
        for f in [0.05, 0.15, 0.5, 0.7] {
            let w = std::f64::consts::PI * f;
            let response = h.iter().enumerate().map(|(j, &c)| Complex::from_polar(c as f64, -w * j as f64)).sum::<Complex<f64>>();
            assert!((response.norm() - target(f)).abs() < 0.05, "at {f}: {}", response.norm());
        }
        // Linear phase: symmetric taps.
        assert!((0..FIR_TAPS).all(|j| (h[j] - h[FIR_TAPS - 1 - j]).abs() < 1e-6));
    }

    /// A reference that is the input through a steep treble cut and a compressor like the
    /// search's: RB-DSP's output is closer to it than the input is, in spectral balance and in
    /// loudness (within a little more than the search's 0.5 LU tolerance).
    #[test]
    fn rb_dsp_moves_the_input_toward_the_reference() {
        let rate = 24_000;
        let input: Vec<f32> =
            crate::fx::test_signals::program(3, 1, 3 * rate as usize, rate as f64).remove(0).into_iter().map(|v| v as f32).collect();
        let mut knobs = Knobs::default().chain_knobs();
        let set = ["eq.high_shelf.gain_db=-18", "eq.high_shelf.freq_hz=4000", "comp.threshold_db=-30", "comp.ratio=3"];
        knobs.apply_assignments(&set.map(String::from)).unwrap();
        let mut reference = input.clone();
        fx::render(&knobs, rate, &mut [&mut reference]).unwrap();
        normalize_peak(&mut [&mut reference], PEAK_DBFS);
        let output = rb_dsp(&input, &reference, rate).unwrap();
        assert_eq!(output.len(), input.len());
        let mut normalized_input = input.clone();
        normalize_peak(&mut [&mut normalized_input], PEAK_DBFS);
        let compare = |x: &[f32]| metrics::compare(&[x.to_vec()], &[reference.clone()], rate).unwrap();
        let (before, after) = (compare(&normalized_input), compare(&output));
        assert!(after.centroid_error_hz < 0.5 * before.centroid_error_hz, "{before:?} {after:?}");
        assert!(after.loudness_error_lu < before.loudness_error_lu.min(1.0), "{before:?} {after:?}");
    }
}
