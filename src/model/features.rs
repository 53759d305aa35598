//! The analysis front end: a mono clip at [`ANALYSIS_RATE_HZ`] becomes the standardised log-mel
//! spectrogram the encoder reads.
//!
//! `v[m][t] = (ln(Σ_k W[m][k] · |X_t[k]|² + FLOOR) − MEAN) / STD`, where `X_t` is frame `t` of
//! the STFT of [`crate::spectral::Stft`] (periodic Hann, `center=True`, reflect padding, not
//! normalised), `W` the Slaney mel filterbank of [`crate::spectral::MelFilterbank`], and
//! `FLOOR`, `MEAN`, `STD` fixed constants, so that a clip's features never depend on another
//! clip's (level differences between input and reference stay visible to the network).

use realfft::num_complex::Complex;
use serde::{Deserialize, Serialize};

use crate::spectral::{MelFilterbank, Stft};
use crate::{Error, Result};

/// The sample rate every analysis clip is resampled to before [`LogMel::compute`], as in
/// DeepAFx-ST's encoder. The effect chain itself runs at the file's own rate.
pub const ANALYSIS_RATE_HZ: u32 = 24_000;

/// Mel power added before the logarithm: with the default 2048-point frames, the mel power of
/// white noise at about −98 dBFS, so silence maps to a finite floor well below program material.
const FLOOR: f64 = 1e-8;
/// Fixed standardisation of `ln(mel power + FLOOR)`: the mean (−10.4) and standard deviation
/// (6.3), rounded, over the frames and bands of [`crate::example::groove`] at 24 kHz with the
/// default front end, peak-normalised to −3 dBFS and attenuated by 0, 10, 20 and 30 dB.
const MEAN: f64 = -10.0;
const STD: f64 = 6.0;

/// The front end's settings. They are stored in every model file, because a network only
/// understands the features it was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// FFT size and window length in samples at [`ANALYSIS_RATE_HZ`].
    pub n_fft: usize,
    /// Hop between frames in samples.
    pub hop: usize,
    /// Mel bands, the encoder's input channels.
    pub n_mels: usize,
    /// Lower edge of the lowest mel filter.
    pub fmin_hz: f64,
    /// Upper edge of the highest mel filter, at most half of [`ANALYSIS_RATE_HZ`].
    pub fmax_hz: f64,
}

impl Default for FeatureConfig {
    /// 2048-sample frames every 512 samples (85 ms every 21 ms), 64 bands from 20 Hz to 12 kHz.
    fn default() -> Self {
        Self { n_fft: 2048, hop: 512, n_mels: 64, fmin_hz: 20.0, fmax_hz: 12_000.0 }
    }
}

impl FeatureConfig {
    /// The shortest clip that gives features: `n_fft/2 + 1` samples, the least the reflect
    /// padding accepts (3 frames with the defaults).
    pub fn min_samples(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames of a clip of `samples ≥ min_samples` samples, `1 + (samples + 2⌊N/2⌋ − N) / hop`
    /// (`1 + samples / hop` for an even `N`).
    pub fn num_frames(&self, samples: usize) -> usize {
        1 + (samples + 2 * (self.n_fft / 2) - self.n_fft) / self.hop
    }

    /// Checks that the settings describe a front end that can be built (sizes at least 1, FFT
    /// of at most 2^16, band edges ordered and below Nyquist).
    pub fn validate(&self) -> Result<()> {
        let fail = |reason: String| Err(Error::BadConfig { what: "feature", reason });
        let nyquist_hz = ANALYSIS_RATE_HZ as f64 / 2.0;
        if !(2..=1 << 16).contains(&self.n_fft) {
            return fail(format!("n_fft {} is outside 2..=65536", self.n_fft));
        }
        if !(1..=self.n_fft).contains(&self.hop) {
            return fail(format!("hop {} is outside 1..=n_fft", self.hop));
        }
        if !(1..=self.n_fft / 2).contains(&self.n_mels) {
            return fail(format!("n_mels {} is outside 1..=n_fft/2", self.n_mels));
        }
        if !(self.fmin_hz >= 0.0 && self.fmin_hz < self.fmax_hz && self.fmax_hz <= nyquist_hz) {
            return fail(format!("mel range {}..{} Hz is not inside 0..{nyquist_hz} Hz", self.fmin_hz, self.fmax_hz));
        }
        Ok(())
    }
}

/// A standardised log-mel spectrogram: `n_mels × frames` values, band after band (row-major
/// `[n_mels, frames]`), the layout of one item of the encoder's `[batch, mels, frames]` input.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub n_mels: usize,
    pub frames: usize,
    pub values: Vec<f32>,
}

/// The front end: STFT plan, filterbank and scratch buffers, built once and reused for every
/// clip. One per thread.
pub struct LogMel {
    config: FeatureConfig,
    stft: Stft<f32>,
    bank: MelFilterbank,
    padded: Vec<f32>,
    /// Two frames' spectra: frames are transformed in pairs by one complex FFT.
    spectra: [Vec<Complex<f32>>; 2],
    power: Vec<f64>,
    mel: Vec<f64>,
}

impl LogMel {
    /// Plans the front end for `config`.
    ///
    /// # Panics
    /// If the config does not [validate](FeatureConfig::validate).
    pub fn new(config: &FeatureConfig) -> Self {
        if let Err(e) = config.validate() {
            panic!("{e}");
        }
        let stft = Stft::new(config.n_fft, config.hop);
        let bank = MelFilterbank::new(ANALYSIS_RATE_HZ as f64, config.n_fft, config.n_mels, config.fmin_hz, config.fmax_hz);
        Self {
            spectra: [vec![Complex::default(); stft.num_bins()], vec![Complex::default(); stft.num_bins()]],
            power: vec![0.0; stft.num_bins()],
            mel: vec![0.0; config.n_mels],
            padded: Vec::new(),
            config: config.clone(),
            stft,
            bank,
        }
    }

    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// [`LogMel::compute`] of every clip, in order, computed in parallel (rayon) with a front
    /// end per worker.
    pub fn compute_all(config: &FeatureConfig, clips: &[&[f32]]) -> Result<Vec<Features>> {
        use rayon::prelude::*;
        clips.par_iter().map_init(|| LogMel::new(config), |front, clip| front.compute(clip)).collect()
    }

    /// The features of a mono clip at [`ANALYSIS_RATE_HZ`]; a clip shorter than
    /// [`FeatureConfig::min_samples`] is an error.
    pub fn compute(&mut self, samples: &[f32]) -> Result<Features> {
        let min = self.config.min_samples();
        if samples.len() < min {
            return Err(Error::BadAudio {
                what: "analysis clip".into(),
                reason: format!("{} samples at {ANALYSIS_RATE_HZ} Hz is shorter than the {min} the model needs", samples.len()),
            });
        }
        let (n_mels, frames) = (self.config.n_mels, self.config.num_frames(samples.len()));
        debug_assert_eq!(frames, self.stft.num_frames(samples.len()));
        let mut values = vec![0.0f32; n_mels * frames];
        self.stft.pad(samples, &mut self.padded);
        // Frame t + 1 of the padded clip is frame t of the clip shifted by one hop.
        let shifted = &self.padded[self.config.hop..];
        for t in (0..frames).step_by(2) {
            let [a, b] = &mut self.spectra;
            if t + 1 < frames {
                self.stft.frame_pair(&self.padded, shifted, t, a, b);
            } else {
                self.stft.frame(&self.padded, t, a);
            }
            for (spectrum, t) in [(&*a, t), (&*b, t + 1)].into_iter().take(frames - t) {
                for (p, x) in self.power.iter_mut().zip(spectrum) {
                    *p = x.norm_sqr() as f64;
                }
                self.bank.apply(&self.power, &mut self.mel);
                for (m, &e) in self.mel.iter().enumerate() {
                    values[m * frames + t] = (((e + FLOOR).ln() - MEAN) / STD) as f32;
                }
            }
        }
        Ok(Features { n_mels, frames, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::groove;

    fn groove_24k(seconds: f64) -> Vec<f32> {
        groove(seconds, ANALYSIS_RATE_HZ, 1, 3).channels.remove(0)
    }

    #[test]
    fn shape_follows_the_clip_length() {
        let mut front = LogMel::new(&FeatureConfig::default());
        let config = front.config().clone();
        for len in [config.min_samples(), 5000, 24_000, 131_072] {
            let f = front.compute(&vec![0.1; len]).unwrap();
            assert_eq!((f.n_mels, f.frames), (64, config.num_frames(len)), "len {len}");
            assert_eq!(f.values.len(), f.n_mels * f.frames);
        }
        assert_eq!(config.num_frames(131_072), 257);
        assert!(matches!(front.compute(&vec![0.1; config.min_samples() - 1]), Err(Error::BadAudio { .. })));
    }

    /// The paired transform gives the features of the textbook definition, for odd and even
    /// frame counts.
    #[test]
    fn features_follow_the_definition() {
        let config = FeatureConfig::default();
        let bank = MelFilterbank::new(ANALYSIS_RATE_HZ as f64, config.n_fft, config.n_mels, config.fmin_hz, config.fmax_hz);
        let mut front = LogMel::new(&config);
        let mut stft = Stft::<f32>::new(config.n_fft, config.hop);
        for len in [1500, 2048, 12_345] {
            let x = &groove_24k(1.0)[..len];
            let got = front.compute(x).unwrap();
            let mut magnitudes = vec![0.0; stft.num_frames(len) * stft.num_bins()];
            stft.magnitudes(x, &mut magnitudes);
            let mut mel = vec![0.0; config.n_mels];
            for (t, frame) in magnitudes.chunks_exact(stft.num_bins()).enumerate() {
                let power: Vec<f64> = frame.iter().map(|&m| (m as f64).powi(2)).collect();
                bank.apply(&power, &mut mel);
                for (m, &e) in mel.iter().enumerate() {
                    let want = (((e + FLOOR).ln() - MEAN) / STD) as f32;
                    let value = got.values[m * got.frames + t];
                    assert!((value - want).abs() < 1e-4, "len {len} band {m} frame {t}: {value} vs {want}");
                }
            }
        }
    }

    /// The standardisation keeps program material near zero mean and unit spread, and level
    /// changes show as shifts (+20 dB adds `ln(100)/STD` to every band above the floor).
    /// The parallel form gives each clip's own features, in order, whatever the clips' lengths
    /// (a front end reused across lengths on a worker keeps no state between clips), and a
    /// clip that is too short is the error it is alone.
    #[test]
    fn compute_all_matches_one_clip_at_a_time() {
        let config = FeatureConfig::default();
        let x = groove_24k(3.0);
        let clips: Vec<&[f32]> = (0..12).map(|k| &x[k * 1000..k * 1000 + 2048 + (k % 4) * 7001]).collect();
        let all = LogMel::compute_all(&config, &clips).unwrap();
        for (clip, got) in clips.iter().zip(&all) {
            assert_eq!(*got, LogMel::new(&config).compute(clip).unwrap());
        }
        let short = [&x[..4096], &x[..config.min_samples() - 1]];
        let error = LogMel::compute_all(&config, &short).unwrap_err().to_string();
        assert!(error.contains("shorter than"), "{error}");
    }

    #[test]
    fn program_material_is_standardised_and_level_shifts() {
        let x = groove_24k(4.0);
        let mut front = LogMel::new(&FeatureConfig::default());
        let mut all = Vec::new();
        for atten_db in [0.0f32, 10.0, 20.0, 30.0] {
            let gain = 10f32.powf(-atten_db / 20.0);
            all.extend(front.compute(&x.iter().map(|v| v * gain).collect::<Vec<_>>()).unwrap().values);
        }
        let n = all.len() as f64;
        let mean = all.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (all.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.3 && (std - 1.0).abs() < 0.3, "mean {mean}, std {std}");

        let loud = front.compute(&x).unwrap();
        let quiet = front.compute(&x.iter().map(|v| v * 0.1).collect::<Vec<_>>()).unwrap();
        let shift = (100f64.ln() / STD) as f32;
        let above_floor = loud.values.iter().zip(&quiet.values).filter(|(_, q)| **q > ((1e-4f64.ln() - MEAN) / STD) as f32);
        for (l, q) in above_floor {
            assert!((l - q - shift).abs() < 1e-3, "{l} - {q} vs {shift}");
        }
    }
}
