//! Writing [`Audio`] as WAV, atomically, and making sure an output never replaces an input.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavSpec, WavWriter};

use super::Audio;
use crate::atomic::{directory_of, write_atomic};
use crate::{Error, Result};

/// Sample format of a written WAV file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum WavFormat {
    /// 32-bit IEEE float: lossless for the library's `f32` samples, and keeps overs above 0 dBFS.
    #[default]
    F32,
    /// 16-bit integer PCM.
    I16,
    /// 24-bit integer PCM.
    I24,
}

impl WavFormat {
    fn spec(self, channels: u16, sample_rate: u32) -> WavSpec {
        let (bits_per_sample, sample_format) = match self {
            WavFormat::F32 => (32, SampleFormat::Float),
            WavFormat::I16 => (16, SampleFormat::Int),
            WavFormat::I24 => (24, SampleFormat::Int),
        };
        WavSpec { channels, sample_rate, bits_per_sample, sample_format }
    }
}

/// Writes `audio` to `path` as a WAV file in `format`, replacing any file there.
///
/// The samples go to a temporary file in the same directory, which is synced and then renamed
/// onto `path`, so a failure never leaves a partial output (and never damages an old file at
/// `path`). Integer formats scale by 2^(bits−1) (the convention decoders invert), round to
/// nearest and clip to the integer range; there is no dither, so quantisation error is
/// correlated with the signal at very low levels (below about −90 dBFS for 16 bit). A symlink
/// at `path` is replaced by the file, not written through.
pub fn write_wav(path: &Path, audio: &Audio, format: WavFormat) -> Result<()> {
    let fail = |reason: String| Error::AudioWrite { path: path.to_path_buf(), reason };
    audio.validate("").map_err(|error| match error {
        Error::BadAudio { reason, .. } => fail(reason),
        other => other,
    })?;
    let channels = u16::try_from(audio.num_channels()).map_err(|_| fail(format!("WAV holds at most {} channels", u16::MAX)))?;
    write_atomic(path, |file| write_samples(file, audio, format, channels).map_err(std::io::Error::other)).map_err(|e| fail(e.to_string()))
}

fn write_samples(file: &mut File, audio: &Audio, format: WavFormat, channels: u16) -> hound::Result<()> {
    let mut writer = WavWriter::new(BufWriter::new(file), format.spec(channels, audio.sample_rate))?;
    match format {
        WavFormat::F32 => write_frames(&mut writer, audio, |x| x)?,
        WavFormat::I16 => write_frames(&mut writer, audio, |x| quantize(x, 16) as i16)?,
        WavFormat::I24 => write_frames(&mut writer, audio, |x| quantize(x, 24))?,
    }
    writer.finalize()
}

/// Writes the samples interleaved, converting each with `convert`.
fn write_frames<W, S>(writer: &mut WavWriter<W>, audio: &Audio, convert: impl Fn(f32) -> S) -> hound::Result<()>
where
    W: Write + Seek,
    S: hound::Sample,
{
    for frame in 0..audio.frames() {
        for channel in &audio.channels {
            writer.write_sample(convert(channel[frame]))?;
        }
    }
    Ok(())
}

/// `round(x · 2^(bits−1))`, clipped to `[−2^(bits−1), 2^(bits−1) − 1]`.
fn quantize(x: f32, bits: u32) -> i32 {
    let full_scale = f64::from(1u32 << (bits - 1));
    (f64::from(x) * full_scale).round().clamp(-full_scale, full_scale - 1.0) as i32
}

/// Refuses an `output` that is the same file as one of `inputs`, so processing never
/// overwrites its own source.
///
/// Two paths are the same file when they resolve to the same canonical location (symlinks and
/// `..` followed; for a path that does not exist yet, its canonical directory plus its name) or,
/// on Unix, when both exist with the same device and inode (hard links).
pub fn ensure_output_distinct(output: &Path, inputs: &[&Path]) -> Result<()> {
    let output_identity = FileIdentity::of(output);
    if inputs.iter().any(|input| output_identity.is_same_as(&FileIdentity::of(input))) {
        return Err(Error::OutputIsInput { path: output.to_path_buf() });
    }
    Ok(())
}

/// What a path refers to: its resolved location and, when it exists, its (device, inode).
struct FileIdentity {
    location: PathBuf,
    inode: Option<(u64, u64)>,
}

impl FileIdentity {
    fn of(path: &Path) -> Self {
        let location = path
            .canonicalize()
            .or_else(|_| canonical_dir_and_name(path))
            .unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        let inode = std::fs::metadata(path).ok().and_then(|metadata| device_and_inode(&metadata));
        Self { location, inode }
    }

    fn is_same_as(&self, other: &Self) -> bool {
        self.location == other.location || (self.inode.is_some() && self.inode == other.inode)
    }
}

/// The canonical form of a path whose directory exists but whose file may not.
fn canonical_dir_and_name(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().ok_or(std::io::ErrorKind::InvalidInput)?;
    Ok(directory_of(path).canonicalize()?.join(name))
}

#[cfg(unix)]
fn device_and_inode(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn device_and_inode(_metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::quantize;

    #[test]
    fn quantize_rounds_and_clips() {
        assert_eq!(quantize(0.0, 16), 0);
        assert_eq!(quantize(0.5, 16), 16_384);
        assert_eq!(quantize(1.4 / 32_768.0, 16), 1);
        assert_eq!(quantize(-1.6 / 32_768.0, 16), -2);
        assert_eq!(quantize(1.0, 16), 32_767);
        assert_eq!(quantize(-1.0, 16), -32_768);
        assert_eq!(quantize(3.0, 24), 8_388_607);
        assert_eq!(quantize(-3.0, 24), -8_388_608);
    }
}
