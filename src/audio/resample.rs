//! Sample-rate conversion with rubato's FFT resampler.

use audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

use super::Audio;
use crate::{Error, Result};

/// Smallest FFT, in frames, on the lower-rate side of the resampler. It sets the length of the
/// anti-aliasing filter, and so its transition band (see [`resample`] for what 1024 gives).
const MIN_FFT_FRAMES: usize = 1024;

/// Converts `audio` to `to_rate` Hz with rubato's synchronous FFT resampler (Blackman–Harris
/// windowed sinc): the passband is flat within ±0.01 dB to 0.97 × the lower Nyquist frequency,
/// and images and aliases are more than 150 dB down.
///
/// The resampler's delay is removed, so output frame `k` lies at time `k / to_rate` like input
/// frame `n` lies at `n / from_rate`, and the output has `round(frames · to_rate / from_rate)`
/// frames. Equal rates return a copy.
pub fn resample(audio: &Audio, to_rate: u32) -> Result<Audio> {
    let from_rate = audio.sample_rate;
    if from_rate == to_rate {
        return Ok(audio.clone());
    }
    let fail = |reason: String| Error::BadAudio { what: format!("resampling {from_rate} Hz to {to_rate} Hz"), reason };
    if from_rate == 0 || to_rate == 0 {
        return Err(fail("sample rates must be positive".into()));
    }
    let (num_channels, frames) = (audio.num_channels(), audio.frames());
    let input = SequentialSliceOfVecs::new(&audio.channels, num_channels, frames).map_err(|e| fail(e.to_string()))?;
    let mut resampler =
        Fft::<f32>::new(from_rate as usize, to_rate as usize, chunk_frames(from_rate, to_rate), num_channels, FixedSync::Both)
            .map_err(|e| fail(e.to_string()))?;
    let mut interleaved = resampler.process_all(&input, frames, None).map_err(|e| fail(e.to_string()))?.take_data();
    interleaved.resize(output_frames(frames, from_rate, to_rate) * num_channels, 0.0);
    Audio::from_interleaved(&interleaved, num_channels, to_rate)
}

/// The chunk length, in input frames, that gives rubato's `Fft` an even number of FFT blocks
/// and at least [`MIN_FFT_FRAMES`] points on its lower-rate side.
///
/// rubato's `Fft` uses FFTs of `blocks · from_rate / g` and `blocks · to_rate / g` points
/// (`g = gcd`, `blocks = ⌈chunk · g / from_rate⌉`); its filter delays the signal by half the input
/// FFT, rounded down, while it trims half the output FFT, rounded down. The two agree only when
/// both FFT sizes are even, otherwise the output lags or leads by half a sample. An even number
/// of blocks makes both sizes even.
fn chunk_frames(from_rate: u32, to_rate: u32) -> usize {
    let g = gcd(from_rate, to_rate);
    let lower_rate_block = (from_rate.min(to_rate) / g) as usize;
    let blocks = MIN_FFT_FRAMES.div_ceil(lower_rate_block).next_multiple_of(2);
    blocks * (from_rate / g) as usize
}

/// Greatest common divisor (Euclid).
fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `round(frames · to_rate / from_rate)` in exact integer arithmetic.
fn output_frames(frames: usize, from_rate: u32, to_rate: u32) -> usize {
    let (frames, from, to) = (frames as u128, u128::from(from_rate), u128::from(to_rate));
    ((frames * to + from / 2) / from) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(frequency_hz: f64, amplitude: f64, sample_rate: u32, frames: usize) -> Vec<f32> {
        let step = std::f64::consts::TAU * frequency_hz / f64::from(sample_rate);
        (0..frames).map(|n| (amplitude * (step * n as f64).sin()) as f32).collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Resamples a stereo pair of sines (different frequencies per channel) and compares each
    /// channel away from the edges with the same sine sampled at the new rate: this checks
    /// frequency, time alignment (delay compensation), channel order and level at once.
    fn check_sines(from_rate: u32, to_rate: u32, frequencies_hz: [f64; 2]) {
        let frames = from_rate as usize / 2 + 37;
        let channels = frequencies_hz.iter().map(|&f| sine(f, 0.5, from_rate, frames)).collect();
        let output = resample(&Audio { sample_rate: from_rate, channels }, to_rate).unwrap();
        let expected_frames = (frames as f64 * f64::from(to_rate) / f64::from(from_rate)).round() as usize;
        assert_eq!(output.sample_rate, to_rate);
        assert_eq!(output.frames(), expected_frames, "{from_rate} -> {to_rate}");
        let edge = expected_frames / 10;
        for (channel, &frequency_hz) in output.channels.iter().zip(&frequencies_hz) {
            let got = &channel[edge..expected_frames - edge];
            let want = &sine(frequency_hz, 0.5, to_rate, expected_frames)[edge..expected_frames - edge];
            let error = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(error < 1e-3, "{from_rate} -> {to_rate}, {frequency_hz} Hz: max error {error}");
            let level_db = 20.0 * (rms(got) / rms(want)).log10();
            assert!(level_db.abs() < 0.1, "{from_rate} -> {to_rate}, {frequency_hz} Hz: level {level_db} dB");
        }
    }

    #[test]
    fn upsampling_keeps_frequency_level_and_alignment() {
        check_sines(44_100, 48_000, [440.0, 1_000.0]);
        check_sines(8_000, 192_000, [250.0, 3_000.0]);
        check_sines(44_100, 44_101, [440.0, 10_000.0]);
    }

    #[test]
    fn downsampling_keeps_frequency_level_and_alignment() {
        check_sines(48_000, 44_100, [440.0, 1_000.0]);
        check_sines(96_000, 8_000, [250.0, 3_000.0]);
        check_sines(48_000, 22_050, [100.0, 7_000.0]);
    }

    #[test]
    fn downsampling_removes_content_above_the_new_nyquist_frequency() {
        let tone = sine(23_000.0, 0.5, 48_000, 48_000);
        let output = resample(&Audio { sample_rate: 48_000, channels: vec![tone] }, 44_100).unwrap();
        let middle = &output.channels[0][4_410..39_690];
        let level_db = 20.0 * (rms(middle) / 0.5).log10();
        assert!(level_db < -120.0, "alias at {level_db} dB");
    }

    #[test]
    fn output_length_is_rounded_ratio() {
        for (frames, from_rate, to_rate) in [(1, 44_100, 48_000), (10, 48_000, 44_100), (1001, 44_100, 48_000)] {
            let audio = Audio { sample_rate: from_rate, channels: vec![vec![0.25; frames]] };
            let output = resample(&audio, to_rate).unwrap();
            assert_eq!(output.frames(), output_frames(frames, from_rate, to_rate));
        }
        assert_eq!(output_frames(1001, 44_100, 48_000), 1090);
        assert_eq!(output_frames(3, 48_000, 16_000), 1);
    }

    #[test]
    fn equal_rates_return_a_copy() {
        let audio = Audio { sample_rate: 48_000, channels: vec![vec![0.1, -0.2, 0.3]] };
        assert_eq!(resample(&audio, 48_000).unwrap(), audio);
    }

    #[test]
    fn degenerate_input_does_not_panic() {
        let audio = Audio { sample_rate: 48_000, channels: vec![vec![0.1; 100]] };
        assert!(resample(&audio, 0).is_err());
        let empty = Audio { sample_rate: 48_000, channels: vec![vec![]] };
        assert_eq!(resample(&empty, 44_100).unwrap().frames(), 0);
        let channelless = Audio { sample_rate: 48_000, channels: vec![] };
        assert!(resample(&channelless, 44_100).is_err());
    }
}
