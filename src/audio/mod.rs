//! Audio in and out: decoding, WAV encoding, resampling and channel handling.
//!
//! Every recording travels through the library as an [`Audio`]: planar `f32` samples at the
//! file's own rate. [`read`] decodes any supported file into one, [`resample`] makes the analysis
//! copy at the model's rate, and [`write_wav`] writes the processed result atomically.

mod decode;
mod encode;
mod resample;

pub use decode::read;
pub use encode::{WavFormat, ensure_output_distinct, write_wav};
pub use resample::resample;

use crate::{Error, Result};

/// Peak amplitude below which a signal counts as silent: 1e-6 is −120 dBFS, below the noise
/// floor of 24-bit audio, so only digital silence (or its dithered equivalent) is caught.
pub const SILENCE_THRESHOLD: f32 = 1e-6;

/// Planar audio: one `Vec` of samples per channel, all of equal length, full scale at ±1.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub sample_rate: u32,
    pub channels: Vec<Vec<f32>>,
}

impl Audio {
    /// Number of frames (samples per channel); 0 when there are no channels.
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Duration in seconds, `frames / sample_rate`.
    pub fn duration_s(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate)
    }

    /// The samples interleaved frame by frame (`L0 R0 L1 R1 …`).
    pub fn interleaved(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.frames() * self.num_channels());
        for frame in 0..self.frames() {
            out.extend(self.channels.iter().map(|channel| channel[frame]));
        }
        out
    }

    /// Splits interleaved samples into planar channels. Fails when `num_channels` is zero or
    /// does not divide the number of samples.
    pub fn from_interleaved(data: &[f32], num_channels: usize, sample_rate: u32) -> Result<Self> {
        if num_channels == 0 || !data.len().is_multiple_of(num_channels) {
            return Err(Error::BadAudio {
                what: "interleaved audio".into(),
                reason: format!("{} samples do not split into {num_channels} channels", data.len()),
            });
        }
        let channels = (0..num_channels).map(|c| data.iter().skip(c).step_by(num_channels).copied().collect()).collect();
        Ok(Self { sample_rate, channels })
    }

    /// A one-channel copy holding the average of all channels.
    pub fn to_mono(&self) -> Audio {
        let mut mono = vec![0.0f32; self.frames()];
        for channel in &self.channels {
            for (sum, &x) in mono.iter_mut().zip(channel) {
                *sum += x;
            }
        }
        let scale = 1.0 / self.num_channels().max(1) as f32;
        mono.iter_mut().for_each(|x| *x *= scale);
        Audio { sample_rate: self.sample_rate, channels: vec![mono] }
    }

    /// Checks the invariants the rest of the library relies on: a non-zero sample rate, at least
    /// one channel, channels of equal, non-zero length and only finite samples. `what` names the
    /// audio in the error (usually the file).
    pub fn validate(&self, what: &str) -> Result<()> {
        if self.sample_rate == 0 {
            return Err(Error::BadAudio { what: what.to_string(), reason: "sample rate is 0 Hz".into() });
        }
        validate_channels(&self.channels, what)
    }

    /// True when every sample is below [`SILENCE_THRESHOLD`] in magnitude (−120 dBFS).
    pub fn is_silent(&self) -> bool {
        self.channels.iter().flatten().all(|x| x.abs() < SILENCE_THRESHOLD)
    }

    /// Fails with a one-line error naming `what` when the audio [`is_silent`](Self::is_silent).
    pub fn check_not_silent(&self, what: &str) -> Result<()> {
        if self.is_silent() {
            return Err(Error::BadAudio { what: what.to_string(), reason: "is silent (every sample is below -120 dBFS)".into() });
        }
        Ok(())
    }
}

/// Checks planar samples: at least one channel, channels of equal, non-zero length and only
/// finite samples. `what` names the audio in the error.
pub fn validate_channels(channels: &[Vec<f32>], what: &str) -> Result<()> {
    let fail = |reason: String| Err(Error::BadAudio { what: what.to_string(), reason });
    let Some(first) = channels.first() else {
        return fail("has no channels".into());
    };
    let frames = first.len();
    if let Some((c, channel)) = channels.iter().enumerate().find(|(_, ch)| ch.len() != frames) {
        return fail(format!("channel {c} has {} frames but channel 0 has {frames}", channel.len()));
    }
    if frames == 0 {
        return fail("contains no audio samples".into());
    }
    for (c, channel) in channels.iter().enumerate() {
        // Whole chunks first, with no early exit inside one (the compiler vectorises that
        // fold; a sample-by-sample search does not), then the place in the chunk that failed.
        const CHUNK: usize = 4096;
        let failed = channel.chunks(CHUNK).position(|chunk| !chunk.iter().fold(true, |ok, x| ok & x.is_finite()));
        if let Some(frame) = failed.and_then(|k| channel[k * CHUNK..].iter().position(|x| !x.is_finite()).map(|i| k * CHUNK + i)) {
            let value = channel[frame];
            return fail(format!("non-finite sample ({value}) in channel {c} at frame {frame}"));
        }
    }
    Ok(())
}

/// Fails with [`Error::SampleRate`] unless `min <= sample_rate <= max`.
pub fn check_sample_rate(sample_rate: u32, min: u32, max: u32) -> Result<()> {
    if (min..=max).contains(&sample_rate) { Ok(()) } else { Err(Error::SampleRate { sample_rate, min, max }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stereo() -> Audio {
        Audio { sample_rate: 48_000, channels: vec![vec![0.1, 0.2, 0.3], vec![-1.0, -2.0, -3.0]] }
    }

    fn reason(result: Result<()>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn interleave_round_trip() {
        let audio = stereo();
        let data = audio.interleaved();
        assert_eq!(data, [0.1, -1.0, 0.2, -2.0, 0.3, -3.0]);
        assert_eq!(Audio::from_interleaved(&data, 2, 48_000).unwrap(), audio);
    }

    #[test]
    fn from_interleaved_rejects_ragged_and_channelless_data() {
        assert!(Audio::from_interleaved(&[0.0; 5], 2, 48_000).is_err());
        assert!(Audio::from_interleaved(&[0.0; 4], 0, 48_000).is_err());
    }

    #[test]
    fn sizes_and_duration() {
        let audio = stereo();
        assert_eq!((audio.frames(), audio.num_channels()), (3, 2));
        assert!((audio.duration_s() - 3.0 / 48_000.0).abs() < 1e-12);
        assert_eq!(Audio { sample_rate: 8_000, channels: vec![] }.frames(), 0);
    }

    #[test]
    fn to_mono_averages_channels() {
        let mono = stereo().to_mono();
        assert_eq!(mono.num_channels(), 1);
        for (got, want) in mono.channels[0].iter().zip([-0.45, -0.9, -1.35]) {
            assert!((got - want).abs() < 1e-6, "{got} != {want}");
        }
    }

    #[test]
    fn validate_accepts_good_audio() {
        stereo().validate("good").unwrap();
    }

    #[test]
    fn validate_rejects_non_finite_samples_and_says_where() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut audio = stereo();
            audio.channels[1][2] = bad;
            let message = reason(audio.validate("x.wav"));
            assert!(message.starts_with("x.wav: non-finite"), "{message}");
            assert!(message.contains("channel 1 at frame 2"), "{message}");
        }
        // Past the first chunks the check scans, the first bad frame is still the one named.
        let mut long = Audio { sample_rate: 48_000, channels: vec![vec![0.25; 20_000], vec![0.25; 20_000]] };
        long.channels[0][19_999] = f32::NAN;
        long.channels[0][9_000] = f32::INFINITY;
        long.channels[0][12_000] = f32::NAN;
        assert!(reason(long.validate("y")).contains("(inf) in channel 0 at frame 9000"));
    }

    #[test]
    fn validate_rejects_empty_unequal_and_rateless_audio() {
        let no_channels = Audio { sample_rate: 48_000, channels: vec![] };
        assert!(reason(no_channels.validate("a")).contains("no channels"));
        let no_frames = Audio { sample_rate: 48_000, channels: vec![vec![], vec![]] };
        assert!(reason(no_frames.validate("a")).contains("no audio samples"));
        let mut unequal = stereo();
        unequal.channels[1].pop();
        assert!(reason(unequal.validate("a")).contains("channel 1 has 2 frames but channel 0 has 3"));
        let rateless = Audio { sample_rate: 0, ..stereo() };
        assert!(reason(rateless.validate("a")).contains("0 Hz"));
    }

    #[test]
    fn silence_is_below_minus_120_dbfs() {
        let quiet = Audio { sample_rate: 8_000, channels: vec![vec![0.0, 9e-7, -9e-7]] };
        assert!(quiet.is_silent());
        assert!(reason(quiet.check_not_silent("q.wav")).starts_with("q.wav: is silent"));
        let audible = Audio { sample_rate: 8_000, channels: vec![vec![0.0, 2e-6]] };
        assert!(!audible.is_silent());
        audible.check_not_silent("a.wav").unwrap();
    }

    #[test]
    fn sample_rate_range_is_inclusive() {
        check_sample_rate(8_000, 8_000, 192_000).unwrap();
        check_sample_rate(192_000, 8_000, 192_000).unwrap();
        assert!(matches!(check_sample_rate(7_999, 8_000, 192_000), Err(Error::SampleRate { .. })));
    }
}
