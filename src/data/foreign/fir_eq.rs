//! A linear-phase FIR equaliser: a magnitude curve through a few (frequency, gain) points,
//! realised by frequency sampling and a window, applied by FFT convolution with its delay removed.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;
use serde::{Deserialize, Serialize};

use super::{check_input, check_setting, db_to_gain};
use crate::{Error, Result};

/// Length of the filter in seconds (its taps scale with the sample rate). A Blackman window of
/// `L` seconds smooths the requested curve over about ±3/L Hz: ±12 Hz here, fine enough for
/// points down to 30 Hz.
const FILTER_LENGTH_S: f64 = 0.25;

/// Points of the design grid per filter tap: the frequency samples are this much denser than
/// the filter's resolution, so their time-domain aliasing stays far outside the window.
const GRID_OVERSAMPLING: usize = 4;

/// One point of the curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EqPoint {
    pub freq_hz: f64,
    pub gain_db: f64,
}

/// The requested magnitude curve: points in increasing frequency, joined by straight lines on a
/// log-frequency axis, flat beyond the first and the last point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FirEqSettings {
    pub points: Vec<EqPoint>,
}

impl FirEqSettings {
    fn check(&self) -> Result<()> {
        if self.points.is_empty() {
            return Err(Error::ForeignSetting {
                processor: "fir_eq",
                setting: "points",
                value: 0.0,
                reason: "must hold at least one point",
            });
        }
        for pair in self.points.windows(2) {
            if pair[1].freq_hz <= pair[0].freq_hz {
                let reason = "must rise from point to point";
                return Err(Error::ForeignSetting { processor: "fir_eq", setting: "freq_hz", value: pair[1].freq_hz, reason });
            }
        }
        for point in &self.points {
            check_setting("fir_eq", "freq_hz", point.freq_hz, 1.0, 100_000.0)?;
            check_setting("fir_eq", "gain_db", point.gain_db, -30.0, 30.0)?;
        }
        Ok(())
    }

    /// The curve's gain in dB at `freq_hz` (the points must not be empty).
    fn gain_db_at(&self, freq_hz: f64) -> f64 {
        let (first, last) = (self.points[0], self.points[self.points.len() - 1]);
        if freq_hz <= first.freq_hz {
            return first.gain_db;
        }
        let upper = self.points.iter().position(|p| p.freq_hz >= freq_hz).unwrap_or(self.points.len());
        if upper == self.points.len() {
            return last.gain_db;
        }
        let (a, b) = (self.points[upper - 1], self.points[upper]);
        let position = (freq_hz / a.freq_hz).ln() / (b.freq_hz / a.freq_hz).ln();
        a.gain_db + position * (b.gain_db - a.gain_db)
    }
}

/// Equalises every channel with a linear-phase FIR whose magnitude follows `settings`' curve.
///
/// Design by frequency sampling (Oppenheim & Schafer, *Discrete-Time Signal Processing*, 3rd ed.,
/// §7.5, window method): the curve `|H(f_k)|` on a dense grid of `M` bins is taken as a zero-phase
/// spectrum, inverted to `h₀[n] = (1/M) Σ_k |H(f_k)| e^{2πikn/M}` (real and even), cut to `N`
/// taps (`N` odd, 0.25 s long, `FILTER_LENGTH_S`) about `n = 0`, tapered by a Blackman window
/// `w[m] = 0.42 − 0.5 cos(2πm/(N−1)) + 0.08 cos(4πm/(N−1))` and made exactly symmetric, so the
/// phase is linear and the delay `(N−1)/2` samples, which the output drops: output frame `n` lines
/// up with input frame `n`, and the output has the input's length. Convolution by overlap-add
/// with real FFTs (`realfft`).
pub fn fir_eq(channels: &[Vec<f32>], sample_rate: u32, settings: &FirEqSettings) -> Result<Vec<Vec<f32>>> {
    check_input(channels, sample_rate, "fir_eq")?;
    settings.check()?;
    let taps = design(settings, sample_rate);
    Ok(channels.iter().map(|channel| convolve_centred(channel, &taps)).collect())
}

/// The symmetric, windowed taps of [`fir_eq`].
fn design(settings: &FirEqSettings, sample_rate: u32) -> Vec<f64> {
    let half = (FILTER_LENGTH_S * f64::from(sample_rate) / 2.0).round() as usize;
    let num_taps = 2 * half + 1;
    let grid = (GRID_OVERSAMPLING * num_taps).next_power_of_two();
    let bin_hz = f64::from(sample_rate) / grid as f64;
    let mut spectrum: Vec<Complex<f64>> =
        (0..=grid / 2).map(|k| Complex::new(db_to_gain(settings.gain_db_at(k as f64 * bin_hz)), 0.0)).collect();
    let mut zero_phase = vec![0.0; grid];
    RealFftPlanner::<f64>::new().plan_fft_inverse(grid).process(&mut spectrum, &mut zero_phase).expect("buffers sized by the plan");
    let blackman = |m: usize| {
        let x = std::f64::consts::TAU * m as f64 / (num_taps - 1) as f64;
        0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos()
    };
    let mut taps = vec![0.0; num_taps];
    for offset in 0..=half {
        let tap = zero_phase[offset] / grid as f64 * blackman(half + offset);
        (taps[half + offset], taps[half - offset]) = (tap, tap);
    }
    taps
}

/// `y[n] = Σ_m h[m] x[n + c − m]` for `n` in `0..len(x)`, `c = (len(h) − 1)/2`: the convolution
/// with its centre delay removed, by overlap-add of real FFTs of twice the filter's length.
fn convolve_centred(x: &[f32], taps: &[f64]) -> Vec<f32> {
    let fft_len = (2 * taps.len()).next_power_of_two();
    let block = fft_len - taps.len() + 1;
    let mut planner = RealFftPlanner::<f64>::new();
    let (forward, inverse) = (planner.plan_fft_forward(fft_len), planner.plan_fft_inverse(fft_len));
    let mut frame = forward.make_input_vec();
    frame[..taps.len()].copy_from_slice(taps);
    let mut filter = forward.make_output_vec();
    forward.process(&mut frame, &mut filter).expect("buffers sized by the plan");
    let mut spectrum = forward.make_output_vec();
    let mut full = vec![0.0; x.len() + taps.len() - 1];
    for (index, chunk) in x.chunks(block).enumerate() {
        frame.fill(0.0);
        frame.iter_mut().zip(chunk).for_each(|(f, &v)| *f = f64::from(v));
        forward.process(&mut frame, &mut spectrum).expect("buffers sized by the plan");
        spectrum.iter_mut().zip(&filter).for_each(|(s, h)| *s *= h / fft_len as f64);
        inverse.process(&mut spectrum, &mut frame).expect("buffers sized by the plan");
        let start = index * block;
        let end = (start + fft_len).min(full.len());
        full[start..end].iter_mut().zip(&frame).for_each(|(y, v)| *y += v);
    }
    let centre = (taps.len() - 1) / 2;
    full[centre..centre + x.len()].iter().map(|&v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_signals::sine_gain_db;
    use super::*;

    fn curve() -> FirEqSettings {
        let point = |freq_hz, gain_db| EqPoint { freq_hz, gain_db };
        FirEqSettings { points: vec![point(60.0, 4.0), point(250.0, -3.0), point(2_500.0, 2.0), point(9_000.0, -6.0)] }
    }

    #[test]
    fn sine_gains_follow_the_requested_curve() {
        let settings = curve();
        for sample_rate in [8_000, 44_100, 48_000, 96_000] {
            let nyquist_hz = f64::from(sample_rate) / 2.0;
            for freq_hz in [30.0, 60.0, 120.0, 250.0, 700.0, 2_500.0, 5_000.0, 9_000.0, 15_000.0] {
                if freq_hz > 0.9 * nyquist_hz {
                    continue;
                }
                let got_db = sine_gain_db(|x| fir_eq(x, sample_rate, &settings).unwrap(), freq_hz, 0.25, sample_rate);
                let want_db = settings.gain_db_at(freq_hz);
                assert!((got_db - want_db).abs() < 0.5, "{sample_rate} Hz, {freq_hz} Hz: got {got_db} dB, want {want_db} dB");
            }
        }
    }

    #[test]
    fn curve_interpolates_on_log_frequency_and_is_flat_outside() {
        let settings = curve();
        assert_eq!(settings.gain_db_at(10.0), 4.0);
        assert_eq!(settings.gain_db_at(20_000.0), -6.0);
        let geometric_mean_hz = (250.0f64 * 2_500.0).sqrt();
        assert!((settings.gain_db_at(geometric_mean_hz) - (-0.5)).abs() < 1e-12, "halfway on log frequency is halfway in dB");
    }

    /// An impulse comes out where it went in, and the response about it is symmetric: linear
    /// phase with the delay compensated.
    #[test]
    fn impulse_comes_out_in_place_and_symmetric() {
        let sample_rate = 44_100;
        let (frames, at) = (40_000, 17_000);
        let mut impulse = vec![0.0f32; frames];
        impulse[at] = 1.0;
        let output = fir_eq(&[impulse], sample_rate, &curve()).unwrap().remove(0);
        let peak = output.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap().0;
        assert_eq!(peak, at, "the impulse's peak stays at its frame");
        let asymmetry = (1..at).map(|k| (output[at + k] - output[at - k]).abs()).fold(0.0f32, f32::max);
        assert!(asymmetry < 1e-6 * output[at].abs(), "response not symmetric: {asymmetry}");
    }

    #[test]
    fn flat_curve_passes_audio_unchanged_and_stereo_stays_stereo() {
        let flat = FirEqSettings { points: vec![EqPoint { freq_hz: 1_000.0, gain_db: 0.0 }] };
        let x = super::super::test_signals::noise(5, 0.5, 9_000);
        let output = fir_eq(&[x.clone(), x.iter().map(|v| -v).collect()], 48_000, &flat).unwrap();
        assert_eq!(output.len(), 2);
        let error = output[0].iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(error < 1e-3, "flat curve changed the audio by {error}");
        assert!(output[0].iter().zip(&output[1]).all(|(l, r)| (l + r).abs() < 1e-6), "channels are filtered alike");
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        let x = [vec![0.1f32; 100]];
        let point = |freq_hz, gain_db| EqPoint { freq_hz, gain_db };
        for points in [vec![], vec![point(500.0, 1.0), point(100.0, 1.0)], vec![point(f64::NAN, 0.0)], vec![point(100.0, 99.0)]] {
            let result = fir_eq(&x, 48_000, &FirEqSettings { points });
            assert!(matches!(result, Err(Error::ForeignSetting { .. })), "{result:?}");
        }
    }
}
