//! The `apply` and `analyze` use cases: render a file through the chain with given knobs, and
//! measure one recording against another.

use std::path::Path;

use crate::audio::{self, Audio, WavFormat};
use crate::fx::{self, ChainKnobs};
use crate::metrics::{self, Metrics};
use crate::{Error, Result};

/// Reads an audio file and checks that it holds usable, non-silent audio.
pub fn read_checked(path: &Path) -> Result<Audio> {
    let audio = audio::read(path)?;
    let what = path.display().to_string();
    audio.validate(&what)?;
    audio.check_not_silent(&what)?;
    Ok(audio)
}

/// Renders `audio` through the chain in place, at its own rate, processing in `f64`.
pub fn render(audio: &mut Audio, knobs: &ChainKnobs) -> Result<()> {
    fx::check_sample_rate(audio.sample_rate)?;
    let mut work: Vec<Vec<f64>> = audio.channels.iter().map(|c| c.iter().map(|&v| v as f64).collect()).collect();
    let mut views: Vec<&mut [f64]> = work.iter_mut().map(|c| c.as_mut_slice()).collect();
    fx::render(knobs, audio.sample_rate, &mut views)?;
    for (dst, src) in audio.channels.iter_mut().zip(&work) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s as f32;
        }
    }
    if let Some((c, n)) = audio.channels.iter().enumerate().find_map(|(c, ch)| ch.iter().position(|v| !v.is_finite()).map(|n| (c, n))) {
        return Err(Error::BadAudio { what: "rendered output".into(), reason: format!("non-finite sample at channel {c}, frame {n}") });
    }
    Ok(())
}

/// `afx apply`: reads `input`, renders it with `knobs`, writes `output` (never over the input).
pub fn apply_file(input: &Path, output: &Path, knobs: &ChainKnobs, format: WavFormat) -> Result<Audio> {
    audio::ensure_output_distinct(output, &[input])?;
    knobs.validate()?;
    let mut audio = read_checked(input)?;
    render(&mut audio, knobs)?;
    audio::write_wav(output, &audio, format)?;
    Ok(audio)
}

/// `afx analyze`: every metric of `estimate` against `target`. An estimate at another sample
/// rate is resampled to the target's first.
pub fn analyze_files(estimate: &Path, target: &Path) -> Result<Metrics> {
    let target_audio = read_checked(target)?;
    let mut estimate_audio = read_checked(estimate)?;
    if estimate_audio.num_channels() != target_audio.num_channels() {
        return Err(Error::ChannelMismatch {
            estimate: estimate.to_path_buf(),
            estimate_channels: estimate_audio.num_channels(),
            target: target.to_path_buf(),
            target_channels: target_audio.num_channels(),
        });
    }
    if estimate_audio.sample_rate != target_audio.sample_rate {
        estimate_audio = audio::resample(&estimate_audio, target_audio.sample_rate)?;
    }
    metrics::compare(&estimate_audio.channels, &target_audio.channels, target_audio.sample_rate)
}
