//! The `apply` and `analyze` use cases: render a file through the chain with given knobs, and
//! measure one recording against another.

use std::path::Path;
#[cfg(feature = "cli")]
use std::path::PathBuf;

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

/// `afx analyze`'s report: [`analyze_files`] as a table, or as one line of JSON.
pub fn analysis(estimate: &Path, target: &Path, json: bool) -> Result<String> {
    let m = analyze_files(estimate, target)?;
    Ok(if json { serde_json::to_string(&m).expect("metrics serialise") + "\n" } else { m.table() })
}

/// `afx apply`'s options.
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Input audio (WAV, FLAC, OGG Vorbis or MP3; any rate from 8 to 192 kHz; mono or stereo).
    #[arg(long)]
    pub input: PathBuf,
    /// Output WAV file (written atomically; never the input).
    #[arg(long)]
    pub output: PathBuf,
    /// Knob file (`{"chain": ..., "knobs": {...}}`, or a flat object of knob names to values);
    /// absent knobs keep their defaults. Its chain is rendered unless --chain is given.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// The effects in order, comma-separated, e.g. `hpf,eq,comp` (`afx params --effects`
    /// lists them; default `eq,comp`, or the knob file's chain).
    #[arg(long)]
    pub chain: Option<String>,
    /// Set one knob, e.g. `--set comp.ratio=4` (repeatable; applied after --params).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Output sample format.
    #[arg(long, value_enum, default_value_t = WavFormat::F32)]
    pub format: WavFormat,
    /// Also draw the chain's response and static curve into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

#[cfg(feature = "cli")]
impl ApplyArgs {
    /// `afx apply`: the knobs (defaults, then the knob file, then `--set`), the file rendered
    /// with them, what was written reported to `out`, and the plot.
    pub fn run(&self, out: &mut impl std::io::Write) -> Result<()> {
        let chain: Option<fx::ChainSpec> = self.chain.as_deref().map(str::parse).transpose()?;
        let mut knobs = match &self.params {
            Some(path) => ChainKnobs::from_json_file(path, chain.as_ref())?,
            None => ChainKnobs::defaults(chain.unwrap_or_default()),
        };
        knobs.apply_assignments(&self.set)?;
        let audio = apply_file(&self.input, &self.output, &knobs, self.format)?;
        let (channels, rate, seconds) = (audio.num_channels(), audio.sample_rate, audio.duration_s());
        writeln!(out, "wrote {} ({channels} ch, {rate} Hz, {seconds:.2} s)", self.output.display())?;
        if let Some(path) = &self.plot {
            crate::curves::write_png(path, &knobs, audio.sample_rate)?;
        }
        Ok(())
    }
}
