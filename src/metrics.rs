//! Evaluation metrics between an estimate and a target recording, as DeepAFx-ST reports them
//! (adobe-research/DeepAFx-ST, `deepafx_st/metrics.py` and `scripts/eval_style.py`).
//!
//! Every metric takes the two recordings as planar channels at one sample rate, checked once by
//! [`AudioPair::new`]; [`compare`] computes them all.

use ebur128::{EbuR128, Mode};
use serde::Serialize;

use crate::spectral::loss::POWER_EPS;
use crate::spectral::{MelFilterbank, MrStftConfig, MrStftLoss, Stft};
use crate::{Error, Result};

/// The shortest common length accepted: one frame of the spectral centroid's 2048-point FFT.
pub const MIN_SAMPLES: usize = 2048;

/// All metrics of an estimate against a target; lower is better, 0 for identical recordings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// [`AudioPair::mrstft`].
    pub mrstft: f64,
    /// [`AudioPair::mel_distance`].
    pub mel_distance: f64,
    /// [`AudioPair::centroid_error_hz`].
    pub centroid_error_hz: f64,
    /// [`AudioPair::rms_error_db`].
    pub rms_error_db: f64,
    /// [`AudioPair::crest_factor_error_db`].
    pub crest_factor_error_db: f64,
    /// [`AudioPair::loudness_error_lu`].
    pub loudness_error_lu: f64,
    /// [`AudioPair::loudness_difference_lu`]: signed, so its mean over pairs is a systematic
    /// bias (an estimate too quiet on average has a negative mean).
    pub loudness_bias_lu: f64,
    /// [`AudioPair::centroid_difference_hz`]: signed, so its mean over pairs is a systematic
    /// tilt (an estimate too dark on average has a negative mean).
    pub centroid_bias_hz: f64,
}

impl Metrics {
    /// The metrics as `afx analyze` prints them: one per line, with its unit.
    pub fn table(&self) -> String {
        format!(
            "MR-STFT distance        {:>10.4}\n\
             mel spectral distance   {:>10.4}\n\
             spectral centroid error {:>10.1} Hz\n\
             RMS error               {:>10.2} dB\n\
             crest factor error      {:>10.2} dB\n\
             loudness error          {:>10.2} LU\n\
             loudness difference     {:>+10.2} LU (estimate - target)\n\
             centroid difference     {:>+10.1} Hz (estimate - target)\n",
            self.mrstft,
            self.mel_distance,
            self.centroid_error_hz,
            self.rms_error_db,
            self.crest_factor_error_db,
            self.loudness_error_lu,
            self.loudness_bias_lu,
            self.centroid_bias_hz
        )
    }
}

/// BS.1770's absolute gate: a recording with no 400 ms block above it has no integrated
/// loudness (−∞).
pub const ABSOLUTE_GATE_LUFS: f64 = -70.0;

/// Computes every metric of `estimate` against `target` (planar channels at `sample_rate`);
/// see [`AudioPair::new`] for what is checked and how lengths are matched. Either recording
/// being silent to BS.1770 is an error ([`AudioPair::loudness_error_lu`]).
pub fn compare(estimate: &[Vec<f32>], target: &[Vec<f32>], sample_rate: u32) -> Result<Metrics> {
    let pair = AudioPair::new(estimate, target, sample_rate)?;
    Ok(pair.metrics(pair.loudness_difference_lu()?))
}

/// As [`compare`], but an estimate silent to BS.1770 (no block above [`ABSOLUTE_GATE_LUFS`]) is
/// measured instead of refused: its loudness is taken as the gate's, above its true loudness,
/// so its loudness error is a lower bound. The flag says whether that happened. An evaluation
/// uses this so that a model's silent output counts against it rather than ending the run; the
/// target must still be audible.
pub fn compare_floored(estimate: &[Vec<f32>], target: &[Vec<f32>], sample_rate: u32) -> Result<(Metrics, bool)> {
    let pair = AudioPair::new(estimate, target, sample_rate)?;
    let target_lufs = integrated_loudness_lufs(&pair.target, sample_rate, "target")?;
    let estimate_lufs = gated_loudness_lufs(&pair.estimate, sample_rate, "estimate")?;
    let loudness = estimate_lufs.unwrap_or(ABSOLUTE_GATE_LUFS) - target_lufs;
    Ok((pair.metrics(loudness), estimate_lufs.is_none()))
}

/// An estimate and a target with the same channel count and length, in `f64`, ready to measure.
pub struct AudioPair {
    estimate: Vec<Vec<f64>>,
    target: Vec<Vec<f64>>,
    sample_rate: u32,
}

impl AudioPair {
    /// Checks the recordings and truncates both to the shorter one's length.
    ///
    /// Errors if the channel counts differ or are 0, the channels of one recording differ in
    /// length, a sample is not finite, the sample rate is 0, or the common length is below
    /// [`MIN_SAMPLES`].
    pub fn new(estimate: &[Vec<f32>], target: &[Vec<f32>], sample_rate: u32) -> Result<Self> {
        let bad = |reason: String| Error::BadAudio { what: "metrics".into(), reason };
        if sample_rate == 0 {
            return Err(bad("sample rate is 0 Hz".into()));
        }
        if estimate.len() != target.len() || estimate.is_empty() {
            return Err(bad(format!("estimate has {} channels and target {}; need the same, at least one", estimate.len(), target.len())));
        }
        let length = |what: &str, channels: &[Vec<f32>]| -> Result<usize> {
            if channels.iter().any(|c| c.len() != channels[0].len()) {
                return Err(bad(format!("{what}'s channels differ in length")));
            }
            for (c, channel) in channels.iter().enumerate() {
                if let Some(i) = channel.iter().position(|x| !x.is_finite()) {
                    return Err(bad(format!("{what} channel {c} sample {i} is {}", channel[i])));
                }
            }
            Ok(channels[0].len())
        };
        let len = length("estimate", estimate)?.min(length("target", target)?);
        if len < MIN_SAMPLES {
            return Err(bad(format!("{len} common samples; need at least {MIN_SAMPLES}")));
        }
        let to64 = |channels: &[Vec<f32>]| -> Vec<Vec<f64>> {
            channels.iter().map(|c| c[..len].iter().map(|&x| f64::from(x)).collect()).collect()
        };
        Ok(Self { estimate: to64(estimate), target: to64(target), sample_rate })
    }

    /// Samples per channel after truncation.
    pub fn num_samples(&self) -> usize {
        self.estimate[0].len()
    }

    /// Every metric, given the loudness difference (measured by the caller, who decides what a
    /// silent estimate means). Each error is its signed difference's magnitude.
    fn metrics(&self, loudness_difference_lu: f64) -> Metrics {
        let centroid = self.centroid_difference_hz();
        Metrics {
            mrstft: self.mrstft(),
            mel_distance: self.mel_distance(),
            centroid_error_hz: centroid.abs(),
            rms_error_db: self.rms_error_db(),
            crest_factor_error_db: self.crest_factor_error_db(),
            loudness_error_lu: loudness_difference_lu.abs(),
            loudness_bias_lu: loudness_difference_lu,
            centroid_bias_hz: centroid,
        }
    }

    /// The multi-resolution STFT distance, the [`MrStftLoss`] with its default resolutions and
    /// weights but without the time-domain term (`l1_weight = 0`), averaged over channels: the
    /// `MRSTFT` metric of DeepAFx-ST's `scripts/eval_style.py`.
    pub fn mrstft(&self) -> f64 {
        let mut loss = MrStftLoss::<f64>::new(MrStftConfig { l1_weight: 0.0, ..MrStftConfig::default() });
        self.mean_over_channels(|e, t| loss.value(e, t))
    }

    /// The mel spectral distance, auraloss `MelSTFTLoss(sr, fft_size=65536, hop_size=65536,
    /// win_length=65536, n_mels=128, w_sc=0, w_log_mag=1, w_lin_mag=1)` (DeepAFx-ST's
    /// `MelSpectralDistance`), averaged over channels:
    ///
    /// `D = mean|ln S(x̂) − ln S(x)| + mean|S(x̂) − S(x)|`, `S(x) = W · sqrt(max(|STFT x|², 1e-8))`
    ///
    /// with `W` librosa's default mel bank ([`MelFilterbank::librosa_default`]) and means over
    /// frames × 128 bands. Deviations: a recording of at most 32768 samples, where auraloss
    /// fails (torch's reflect padding needs `N/2 <` the length), uses as FFT size and hop the
    /// largest power of two below twice its length, the largest whose padding fits; a band whose
    /// filter is empty (possible only for such small FFTs) is 0 in both recordings and its log
    /// term is taken as 0, where auraloss gives NaN.
    pub fn mel_distance(&self) -> f64 {
        let n_fft = (1usize << (2 * self.num_samples() - 1).ilog2()).min(65536);
        let mut stft = Stft::<f64>::new(n_fft, n_fft);
        let bank = MelFilterbank::librosa_default(f64::from(self.sample_rate), n_fft);
        let size = stft.num_frames(self.num_samples()) * stft.num_bins();
        let (mut spectrum, mut mel_e, mut mel_t) = (vec![0.0; size], Vec::new(), Vec::new());
        let floor = POWER_EPS.sqrt();
        let mut mel_spectrogram = |signal: &[f64], mel: &mut Vec<f64>| {
            stft.magnitudes(signal, &mut spectrum);
            let frames = spectrum.chunks_exact_mut(bank.num_bins());
            mel.resize(frames.len() * bank.num_mels(), 0.0);
            for (frame, out) in frames.zip(mel.chunks_exact_mut(bank.num_mels())) {
                frame.iter_mut().for_each(|m| *m = m.max(floor));
                bank.apply(frame, out);
            }
        };
        self.mean_over_channels(|e, t| {
            mel_spectrogram(e, &mut mel_e);
            mel_spectrogram(t, &mut mel_t);
            let log_mag = |a: f64, b: f64| if a > 0.0 && b > 0.0 { (a.ln() - b.ln()).abs() } else { 0.0 };
            let sum: f64 = mel_e.iter().zip(&mel_t).map(|(&a, &b)| log_mag(a, b) + (a - b).abs()).sum();
            sum / mel_e.len() as f64
        })
    }

    /// The spectral centroid error in Hz, `|c(x̂) − c(x)|`, where `c` is the mean over channels
    /// and frames of the per-frame centroid `Σ_k f_k |X_k| / Σ_k |X_k|` (torchaudio
    /// `SpectralCentroid(sr, n_fft=2048, hop_length=512)`: periodic Hann, centred reflect-padded
    /// frames, `f_k = k · ⌊sr/2⌋ / 1024`). As DeepAFx-ST's `SpectralCentroidError`, `1e-16` is
    /// added to every sample so that silent frames have a (near-DC) centroid instead of 0/0.
    pub fn centroid_error_hz(&self) -> f64 {
        self.centroid_difference_hz().abs()
    }

    /// `c(x̂) − c(x)` in Hz, the mean centroids of [`AudioPair::centroid_error_hz`].
    pub fn centroid_difference_hz(&self) -> f64 {
        let sample_rate = self.sample_rate;
        mean_centroid_hz(&self.estimate, sample_rate) - mean_centroid_hz(&self.target, sample_rate)
    }

    /// The RMS level error in dB, `|20·log10 max(rms(x̂), 1e-8) − 20·log10 max(rms(x), 1e-8)|`,
    /// averaged over channels. DeepAFx-ST's `RMSEnergyError` takes `20·ln` (natural log), which
    /// is not decibels; this is in true dB (its values are `ln 10 ≈ 2.30` times smaller).
    pub fn rms_error_db(&self) -> f64 {
        self.mean_over_channels(|e, t| (db(rms(e)) - db(rms(t))).abs())
    }

    /// The crest factor error in dB, `|cf(x̂) − cf(x)|` with `cf = 20·log10(max(peak, 1e-8) /
    /// max(rms, 1e-8))`, averaged over channels. As [`AudioPair::rms_error_db`], log10 where
    /// DeepAFx-ST's `CrestFactorError` takes `ln`; the peak is clamped too, so that a silent
    /// channel has a crest factor of 0 dB rather than −∞.
    pub fn crest_factor_error_db(&self) -> f64 {
        let crest_db = |x: &[f64]| db(peak(x)) - db(rms(x));
        self.mean_over_channels(|e, t| (crest_db(e) - crest_db(t)).abs())
    }

    /// The integrated loudness error in LU, `|I(x̂) − I(x)|`, with `I` the gated integrated
    /// loudness of ITU-R BS.1770-4 (libebur128's algorithm, the `ebur128` crate, default channel
    /// weights) over all channels together, mono measured as mono. DeepAFx-ST's `LoudnessError`
    /// (pyloudnorm) flattened all channels into one signal and duplicated it to stereo; for mono
    /// that adds 3 LU to both sides, which cancels in the difference.
    ///
    /// Errors if either recording has no gating block above −70 LUFS (silent, or shorter than
    /// 400 ms), whose loudness is −∞.
    pub fn loudness_error_lu(&self) -> Result<f64> {
        Ok(self.loudness_difference_lu()?.abs())
    }

    /// `L(estimate) − L(target)` in LU, the integrated loudnesses of
    /// [`AudioPair::loudness_error_lu`]; the same errors.
    pub fn loudness_difference_lu(&self) -> Result<f64> {
        let estimate = integrated_loudness_lufs(&self.estimate, self.sample_rate, "estimate")?;
        let target = integrated_loudness_lufs(&self.target, self.sample_rate, "target")?;
        Ok(estimate - target)
    }

    fn mean_over_channels(&self, mut metric: impl FnMut(&[f64], &[f64]) -> f64) -> f64 {
        let sum: f64 = self.estimate.iter().zip(&self.target).map(|(e, t)| metric(e, t)).sum();
        sum / self.estimate.len() as f64
    }
}

/// The mean over channels and frames of the per-frame spectral centroid in Hz (see
/// [`AudioPair::centroid_error_hz`]).
fn mean_centroid_hz(channels: &[Vec<f64>], sample_rate: u32) -> f64 {
    const N_FFT: usize = 2048;
    let mut stft = Stft::<f64>::new(N_FFT, 512);
    let bin_hz = f64::from(sample_rate / 2) / (N_FFT / 2) as f64;
    let mut offset = Vec::new();
    let mut magnitudes = vec![0.0; stft.num_frames(channels[0].len()) * stft.num_bins()];
    let mut sum = 0.0;
    let mut frames = 0;
    for channel in channels {
        offset.clear();
        offset.extend(channel.iter().map(|x| x + 1e-16));
        stft.magnitudes(&offset, &mut magnitudes);
        for frame in magnitudes.chunks_exact(stft.num_bins()) {
            let weighted: f64 = frame.iter().enumerate().map(|(k, m)| k as f64 * m).sum();
            sum += bin_hz * weighted / frame.iter().sum::<f64>();
            frames += 1;
        }
    }
    sum / frames as f64
}

/// The gated integrated loudness (ITU-R BS.1770-4) of planar channels in LUFS, all channels
/// together; `None` where no 400 ms block passes the [`ABSOLUTE_GATE_LUFS`] gate (silent to the
/// meter). `what` names the recording in errors.
pub fn integrated_loudness(channels: &[Vec<f32>], sample_rate: u32, what: &str) -> Result<Option<f64>> {
    let planar: Vec<&[f32]> = channels.iter().map(Vec::as_slice).collect();
    metered(&planar, sample_rate, what)
}

/// The gated integrated loudness (BS.1770-4) of planar channels in LUFS, all channels together;
/// a recording silent to the meter is an error naming `what`.
pub fn audible_loudness(channels: &[Vec<f32>], sample_rate: u32, what: &str) -> Result<f64> {
    audible(integrated_loudness(channels, sample_rate, what)?, what)
}

/// The gated integrated loudness (BS.1770-4) of a mono signal in LUFS; silence is an error
/// naming `what`.
pub fn loudness_lufs(signal: &[f32], sample_rate: u32, what: &str) -> Result<f64> {
    audible(metered(&[signal], sample_rate, what)?, what)
}

fn integrated_loudness_lufs(channels: &[Vec<f64>], sample_rate: u32, what: &str) -> Result<f64> {
    audible(gated_loudness_lufs(channels, sample_rate, what)?, what)
}

/// A measured loudness, or the error for a recording silent to the meter.
fn audible(lufs: Option<f64>, what: &str) -> Result<f64> {
    lufs.ok_or_else(|| Error::BadAudio {
        what: what.into(),
        reason: "integrated loudness is -inf LUFS (silent, or shorter than one 400 ms block)".into(),
    })
}

/// The integrated loudness, `None` where no block passes the absolute gate.
fn gated_loudness_lufs(channels: &[Vec<f64>], sample_rate: u32, what: &str) -> Result<Option<f64>> {
    let planar: Vec<&[f64]> = channels.iter().map(Vec::as_slice).collect();
    metered(&planar, sample_rate, what)
}

/// Samples the meter takes planar: `f32` and `f64`.
trait Metered: Copy + Send + Sync {
    fn add(meter: &mut EbuR128, frames: &[&[Self]]) -> std::result::Result<(), ebur128::Error>;
    fn seed(meter: &mut EbuR128, frames: &[&[Self]]) -> std::result::Result<(), ebur128::Error>;
}

impl Metered for f32 {
    fn add(meter: &mut EbuR128, frames: &[&[f32]]) -> std::result::Result<(), ebur128::Error> {
        meter.add_frames_planar_f32(frames)
    }
    fn seed(meter: &mut EbuR128, frames: &[&[f32]]) -> std::result::Result<(), ebur128::Error> {
        meter.seed_frames_planar_f32(frames)
    }
}

impl Metered for f64 {
    fn add(meter: &mut EbuR128, frames: &[&[f64]]) -> std::result::Result<(), ebur128::Error> {
        meter.add_frames_planar_f64(frames)
    }
    fn seed(meter: &mut EbuR128, frames: &[&[f64]]) -> std::result::Result<(), ebur128::Error> {
        meter.seed_frames_planar_f64(frames)
    }
}

/// Recordings at least this long (seconds) are metered in parallel parts.
const PARALLEL_METER_S: f64 = 20.0;

/// The integrated loudness (BS.1770) of planar channels (`None` where no block passes the
/// absolute gate); samples go in as they are, without a copy. A long recording is metered in
/// parts on the available cores, as the ebur128 crate documents for
/// `loudness_global_multiple`: parts that start on the 100 ms grid and overlap the one before by
/// 400 ms, each meter's filters warmed on the first 100 ms of the overlap (`seed_frames`) and
/// measuring from there, so every 400 ms gating block of the whole is measured exactly once.
fn metered<S: Metered>(planar: &[&[S]], sample_rate: u32, what: &str) -> Result<Option<f64>> {
    let frames = planar.first().map_or(0, |c| c.len());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = if (frames as f64) < PARALLEL_METER_S * f64::from(sample_rate) { 1 } else { cores.min(8) };
    metered_in_parts(planar, sample_rate, what, parts)
}

/// [`metered`] in `parts` parts (each at least 400 ms long).
fn metered_in_parts<S: Metered>(planar: &[&[S]], sample_rate: u32, what: &str, parts: usize) -> Result<Option<f64>> {
    let meter_error = |e: ebur128::Error| Error::BadAudio { what: what.into(), reason: format!("loudness meter failed: {e}") };
    let channels = planar.len() as u32;
    let frames = planar.first().map_or(0, |c| c.len());
    let step = (sample_rate as usize + 5) / 10;
    let meter_part = |first: usize, last: usize| -> Result<EbuR128> {
        let mut meter = EbuR128::new(channels, sample_rate, Mode::I).map_err(meter_error)?;
        let slice = |a: usize, b: usize| planar.iter().map(|c| &c[a..b]).collect::<Vec<&[S]>>();
        // A later part: warm the filters on the overlap's first 100 ms, measure from there.
        let from = if first == 0 { 0 } else { first + step };
        if first > 0 {
            S::seed(&mut meter, &slice(first, from)).map_err(meter_error)?;
        }
        S::add(&mut meter, &slice(from, last)).map_err(meter_error)?;
        Ok(meter)
    };
    let meters: Vec<EbuR128> = if parts == 1 {
        vec![meter_part(0, frames)?]
    } else {
        // Part k measures from the 100 ms step nearest k/parts of the way, less the overlap.
        let bounds: Vec<usize> = (0..=parts).map(|k| if k == parts { frames } else { (k * frames / parts) / step * step }).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..parts)
                .map(|k| {
                    let first = bounds[k].saturating_sub(if k == 0 { 0 } else { 4 * step });
                    let last = bounds[k + 1];
                    scope.spawn(move || meter_part(first, last))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a loudness meter thread")).collect::<Result<Vec<_>>>()
        })?
    };
    let lufs = EbuR128::loudness_global_multiple(meters.iter()).map_err(meter_error)?;
    Ok(lufs.is_finite().then_some(lufs))
}

/// Wideband PESQ (ITU-T P.862.2 MOS-LQO, about 1–4.6, higher is better) of an estimate
/// against a target, as DeepAFx-ST scores speech: both mixed to mono, resampled to 16 kHz,
/// `pesq(16000, ref=target, deg=estimate, "wb")` (here the `pesq` crate, a Rust implementation
/// that passes the P.862 conformance tests). Each signal is scaled to 16-bit PCM with its own
/// peak at 90 % of full scale (PESQ aligns levels itself). `None` where PESQ finds no speech
/// to score (silence, a too-short signal).
pub fn pesq_wb(estimate: &[Vec<f32>], target: &[Vec<f32>], sample_rate: u32) -> Result<Option<f64>> {
    let pcm = |channels: &[Vec<f32>], what: &str| -> Result<Vec<i16>> {
        let audio = crate::audio::Audio { sample_rate, channels: channels.to_vec() }.to_mono();
        let audio =
            crate::audio::resample(&audio, PESQ_RATE_HZ).map_err(|e| Error::BadAudio { what: what.into(), reason: e.to_string() })?;
        let samples = &audio.channels[0];
        let peak = samples.iter().fold(0.0f32, |p, x| p.max(x.abs()));
        let scale = if peak > 0.0 { 0.9 * f32::from(i16::MAX) / peak } else { 0.0 };
        Ok(samples.iter().map(|x| (x * scale).round() as i16).collect())
    };
    let (degraded, reference) = (pcm(estimate, "estimate")?, pcm(target, "target")?);
    Ok(pesq::pesq_wb(&reference, &degraded).ok().map(f64::from))
}

/// The rate PESQ scores wideband speech at.
const PESQ_RATE_HZ: u32 = 16_000;

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

fn peak(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |p, v| p.max(v.abs()))
}

/// `20·log10(max(x, 1e-8))`.
fn db(x: f64) -> f64 {
    20.0 * x.max(1e-8).log10()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const RATE: u32 = 48000;

    fn sine(freq_hz: f64, amplitude: f64, len: usize) -> Vec<f32> {
        let w = 2.0 * std::f64::consts::PI * freq_hz / f64::from(RATE);
        (0..len).map(|i| (amplitude * (w * i as f64).sin()) as f32).collect()
    }

    fn noise(amplitude: f32, len: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-amplitude..amplitude)).collect()
    }

    fn scaled(x: &[f32], gain: f32) -> Vec<f32> {
        x.iter().map(|v| v * gain).collect()
    }

    fn pair(estimate: Vec<f32>, target: Vec<f32>) -> AudioPair {
        AudioPair::new(&[estimate], &[target], RATE).unwrap()
    }

    #[test]
    fn rms_and_crest_of_sines_and_squares_are_analytic() {
        let len = 48000; // whole periods of 1 kHz
        let level = pair(sine(1000.0, 0.5, len), sine(1000.0, 0.25, len));
        assert!((level.rms_error_db() - 20.0 * 2f64.log10()).abs() < 1e-4);
        assert!(level.crest_factor_error_db() < 1e-4);
        let square: Vec<f32> = sine(1000.0, 1.0, len).iter().map(|&v| 0.5 * v.signum()).collect();
        let shape = pair(sine(1000.0, 0.5, len), square);
        assert!(shape.rms_error_db() > 2.9, "a square is 3 dB louder than a sine of the same peak");
        assert!((shape.crest_factor_error_db() - 10.0 * 2f64.log10()).abs() < 1e-3);
    }

    #[test]
    fn centroid_of_a_sine_is_its_frequency() {
        let bin_hz = f64::from(RATE) / 2048.0;
        for freq in [440.0, 3000.0, 9000.0] {
            let centroid = mean_centroid_hz(&[sine(freq, 0.5, 48000).iter().map(|&v| f64::from(v)).collect()], RATE);
            assert!((centroid - freq).abs() < bin_hz, "{freq} Hz: centroid {centroid}");
        }
        let low_high = pair(sine(1000.0, 0.5, 48000), sine(4000.0, 0.5, 48000));
        let error = low_high.centroid_error_hz();
        assert!((error - 3000.0).abs() < bin_hz, "{error}");
        assert_eq!(low_high.centroid_difference_hz(), -error, "the darker estimate's difference is negative");
    }

    #[test]
    fn loudness_matches_the_bs1770_calibration() {
        // BS.1770: a 0 dBFS-peak 1 kHz sine in one front channel reads −3.01 LKFS, so a mono sine
        // of peak −20 dBFS reads −23.01 and a stereo one of peak −23 dBFS (EBU Tech 3341 case 1)
        // reads −23.0.
        let mono = [sine(1000.0, 0.1, 5 * 48000).iter().map(|&v| f64::from(v)).collect::<Vec<_>>()];
        let lufs = integrated_loudness_lufs(&mono, RATE, "mono").unwrap();
        assert!((lufs - (-23.01)).abs() < 0.05, "mono: {lufs}");
        let channel: Vec<f64> = sine(1000.0, 10f64.powf(-23.0 / 20.0), 5 * 48000).iter().map(|&v| f64::from(v)).collect();
        let lufs = integrated_loudness_lufs(&[channel.clone(), channel], RATE, "stereo").unwrap();
        assert!((lufs - (-23.0)).abs() < 0.05, "stereo: {lufs}");
        // The same through the f32 entry point `afx transfer` uses.
        let channel = sine(1000.0, 10f64.powf(-23.0 / 20.0), 5 * 48000);
        let lufs = integrated_loudness(&[channel.clone(), channel], RATE, "stereo").unwrap().unwrap();
        assert!((lufs - (-23.0)).abs() < 0.05, "stereo, f32: {lufs}");
        let x = noise(0.3, 3 * 48000, 1);
        let error = pair(x.clone(), scaled(&x, 0.5)).loudness_error_lu().unwrap();
        assert!((error - 20.0 * 2f64.log10()).abs() < 1e-3, "{error}");
    }

    /// A long recording is metered in parallel parts; every gating block is still measured
    /// once: the reading equals one meter's over the whole (ebur128 fed in one go) to 0.001 LU,
    /// on stereo whose level changes section by section (so both gates act) and whose sides
    /// differ, at 44.1 and 48 kHz and a length off the 100 ms grid.
    #[test]
    fn a_long_recording_metered_in_parts_reads_as_one_meter() {
        for rate in [44_100u32, 48_000] {
            let frames = 47 * rate as usize + 1234;
            let section = |n: usize| [0.3, 0.02, 0.5, 0.0005, 0.2][(n / (7 * rate as usize)) % 5];
            let left: Vec<f32> = noise(1.0, frames, 3).iter().enumerate().map(|(n, x)| x * section(n)).collect();
            let right: Vec<f32> = noise(1.0, frames, 4).iter().enumerate().map(|(n, x)| 0.5 * x * section(n + rate as usize)).collect();
            let mut whole = EbuR128::new(2, rate, Mode::I).unwrap();
            whole.add_frames_planar_f32(&[&left, &right]).unwrap();
            let expected = whole.loudness_global().unwrap();
            for parts in [2, 3, 5] {
                let got = metered_in_parts(&[&left[..], &right[..]], rate, "parts", parts).unwrap().unwrap();
                assert!((got - expected).abs() < 1e-3, "{rate} Hz, {parts} parts: {got} vs {expected}");
            }
        }
    }

    #[test]
    fn silence_has_no_loudness() {
        let error = pair(vec![0.0; 48000], noise(0.3, 48000, 2)).loudness_error_lu();
        assert!(matches!(error, Err(Error::BadAudio { .. })), "{error:?}");
        assert!(compare(&[vec![0.0; 48000]], &[vec![0.0; 48000]], RATE).is_err());
    }

    /// `compare_floored`: an estimate 100 dB down (below the −70 LUFS gate) is flagged and
    /// measured with its loudness at the gate against the target's own loudness, and with the
    /// centroid of the same estimate 100 dB up (the centroid does not depend on the level); an
    /// audible estimate gives exactly `compare`'s metrics and no flag.
    #[test]
    fn a_silent_estimate_is_floored_at_the_gate_only_when_asked() {
        let target = [noise(0.3, 48000, 4)];
        let quiet = [scaled(&noise(0.3, 48000, 5), 1e-5)];
        assert!(compare(&quiet, &target, RATE).is_err());
        let (floored, silent) = compare_floored(&quiet, &target, RATE).unwrap();
        assert!(silent);
        let target_lufs = loudness_lufs(&target[0], RATE, "target").unwrap();
        assert!((floored.loudness_bias_lu - (ABSOLUTE_GATE_LUFS - target_lufs)).abs() < 1e-9, "{floored:?}");
        assert_eq!(floored.loudness_error_lu, -floored.loudness_bias_lu);
        // The centroid does not depend on the level: the estimate 100 dB up measures the same.
        let loud = compare(&[scaled(&quiet[0], 1e5)], &target, RATE).unwrap();
        assert!((floored.centroid_error_hz - loud.centroid_error_hz).abs() < 1.0, "{floored:?} vs {loud:?}");
        let audible = [noise(0.1, 48000, 6)];
        let (metrics, silent) = compare_floored(&audible, &target, RATE).unwrap();
        assert!(!silent);
        assert_eq!(metrics, compare(&audible, &target, RATE).unwrap());
        // A silent target is still an error: there is nothing to measure against.
        assert!(compare_floored(&audible, &quiet, RATE).is_err());
    }

    /// For a gain `c` with every clamp inactive, a magnitude-linear distance `D(c·x, x) = |ln c| +
    /// |c − 1|·S(x)`, so `D(3x, x) − 2·D(2x, x) = ln 3 − 2 ln 2` whatever `S` is.
    fn gain_identity(distance: impl Fn(&AudioPair) -> f64, len: usize) {
        let x = noise(0.5, len, 3);
        let twice = distance(&pair(scaled(&x, 2.0), x.clone()));
        let thrice = distance(&pair(scaled(&x, 3.0), x));
        assert!((thrice - 2.0 * twice - (0.75f64).ln()).abs() < 1e-3, "{thrice} - 2·{twice}");
    }

    #[test]
    fn mel_distance_is_log_and_linear_in_gain() {
        gain_identity(AudioPair::mel_distance, 3 * 65536);
        gain_identity(AudioPair::mel_distance, 10000); // 16384-point FFT
    }

    /// Between 32769 and 65535 samples auraloss still takes its 65536-point FFT (torch pads
    /// 32768 samples by reflection each side): one frame centred on sample 0. Rebuilt by hand
    /// (explicit reflection, periodic Hann, realfft, the mel bank) for a 40000-sample pair.
    #[test]
    fn mel_distance_of_a_short_recording_is_auralosss_one_frame() {
        const N: usize = 65536;
        let (e, t) = (noise(0.5, 40_000, 11), sine(1000.0, 0.3, 40_000));
        let mel = |x: &[f32]| {
            let mut frame: Vec<f64> = (0..N)
                .map(|j| {
                    let i = j as isize - (N / 2) as isize;
                    let hann = 0.5 - 0.5 * (std::f64::consts::TAU * j as f64 / N as f64).cos();
                    hann * f64::from(x[i.unsigned_abs()])
                })
                .collect();
            let mut spectrum = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(N).make_output_vec();
            realfft::RealFftPlanner::<f64>::new().plan_fft_forward(N).process(&mut frame, &mut spectrum).unwrap();
            let magnitudes: Vec<f64> = spectrum.iter().map(|c| c.norm_sqr().max(POWER_EPS).sqrt()).collect();
            let bank = MelFilterbank::librosa_default(f64::from(RATE), N);
            let mut out = vec![0.0; bank.num_mels()];
            bank.apply(&magnitudes, &mut out);
            out
        };
        let (me, mt) = (mel(&e), mel(&t));
        let expected = me.iter().zip(&mt).map(|(a, b)| (a.ln() - b.ln()).abs() + (a - b).abs()).sum::<f64>() / me.len() as f64;
        let measured = pair(e, t).mel_distance();
        assert!((measured - expected).abs() < 1e-9 * expected, "{measured} vs {expected}");
    }

    #[test]
    fn mrstft_is_log_and_linear_in_gain_and_averages_channels() {
        gain_identity(AudioPair::mrstft, 48000);
        let (a, b, c, d) = (noise(0.5, 20000, 4), noise(0.5, 20000, 5), noise(0.2, 20000, 6), noise(0.1, 20000, 7));
        let stereo = AudioPair::new(&[a.clone(), c.clone()], &[b.clone(), d.clone()], RATE).unwrap().mrstft();
        let left = pair(a, b).mrstft();
        let right = pair(c, d).mrstft();
        assert!((stereo - (left + right) / 2.0).abs() < 1e-12 * stereo);
    }

    #[test]
    fn identical_recordings_score_zero() {
        let x = vec![noise(0.5, 70000, 8), sine(440.0, 0.3, 70000)];
        let metrics = compare(&x, &x, RATE).unwrap();
        assert_eq!(
            metrics,
            Metrics {
                mrstft: 0.0,
                mel_distance: 0.0,
                centroid_error_hz: 0.0,
                rms_error_db: 0.0,
                crest_factor_error_db: 0.0,
                loudness_error_lu: 0.0,
                loudness_bias_lu: 0.0,
                centroid_bias_hz: 0.0
            }
        );
    }

    #[test]
    fn the_longer_recording_is_truncated() {
        let (x, y) = (vec![noise(0.5, 30000, 9)], noise(0.4, 30000, 10));
        let mut longer = y.clone();
        longer.extend(noise(0.9, 5000, 11));
        assert_eq!(compare(&x, &[longer], RATE).unwrap(), compare(&x, &[y], RATE).unwrap());
    }

    #[test]
    fn malformed_input_is_rejected() {
        let x = noise(0.5, 4096, 12);
        let mono = vec![x.clone()];
        let rejected = |e: &[Vec<f32>], t: &[Vec<f32>]| matches!(AudioPair::new(e, t, RATE), Err(Error::BadAudio { .. }));
        assert!(rejected(&mono, &[x.clone(), x.clone()]), "channel counts differ");
        assert!(rejected(&[], &[]), "no channels");
        assert!(rejected(&[vec![]], &[vec![]]), "empty");
        assert!(rejected(&[x[..1000].to_vec()], &[x[..1000].to_vec()]), "too short");
        assert!(rejected(&[x.clone(), x[..3000].to_vec()], &[x.clone(), x.clone()]), "ragged channels");
        let mut nan = x.clone();
        nan[17] = f32::NAN;
        assert!(rejected(&[nan], &mono), "NaN");
        let mut inf = x.clone();
        inf[3] = f32::INFINITY;
        assert!(rejected(&mono, &[inf]), "inf");
    }

    /// Voice-like test signal: syllables of a pulse train at a gliding pitch through two moving
    /// resonances, 250 ms on and 120 ms off, at 48 kHz.
    fn voice_like(seconds: f64) -> Vec<f32> {
        let fs = 48_000.0;
        let n = (seconds * fs) as usize;
        let (mut phase, mut y1, mut y2, mut z1, mut z2) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
        (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                let syllable = (t / 0.37).fract() * 0.37;
                let on = syllable < 0.25;
                let f0 = 110.0 + 30.0 * (std::f64::consts::TAU * 0.7 * t).sin();
                phase += f0 / fs;
                let pulse = if phase >= 1.0 {
                    phase -= 1.0;
                    1.0
                } else {
                    0.0
                };
                let x = if on { pulse * (std::f64::consts::PI * syllable / 0.25).sin() } else { 0.0 };
                // Two resonators (formants) whose centres move with the syllable.
                let resonate = |x: f64, f: f64, y1: &mut f64, y2: &mut f64| {
                    let r: f64 = 0.97;
                    let c = 2.0 * r * (std::f64::consts::TAU * f / fs).cos();
                    let y = x + c * *y1 - r * r * *y2;
                    *y2 = *y1;
                    *y1 = y;
                    y
                };
                let a = resonate(x, 500.0 + 300.0 * (t * 3.0).sin(), &mut y1, &mut y2);
                let b = resonate(x, 1500.0 + 500.0 * (t * 2.3).cos(), &mut z1, &mut z2);
                (0.02 * (a + 0.6 * b)) as f32
            })
            .collect()
    }

    /// PESQ scores a recording against itself near the top of its scale, and lower the more
    /// noise is added (independent expectations: P.862.2's range and its monotonicity in SNR).
    #[test]
    fn pesq_is_high_for_identical_speech_and_falls_with_noise() {
        let clean = voice_like(4.0);
        let peak = clean.iter().fold(0.0f32, |p, x| p.max(x.abs()));
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut noisy =
            |level: f32| -> Vec<Vec<f32>> { vec![clean.iter().map(|x| x + level * peak * rng.random_range(-1.0f32..1.0)).collect()] };
        let target = vec![clean.clone()];
        let same = pesq_wb(&target, &target, 48_000).unwrap().expect("speech to score");
        let (light, heavy) = (noisy(0.01), noisy(0.1));
        let light = pesq_wb(&light, &target, 48_000).unwrap().expect("speech to score");
        let heavy = pesq_wb(&heavy, &target, 48_000).unwrap().expect("speech to score");
        assert!(same > 4.4, "identical: {same}");
        assert!(same > light && light > heavy, "{same} > {light} > {heavy}");
        assert!(heavy < 3.0, "heavy noise: {heavy}");
    }
}
