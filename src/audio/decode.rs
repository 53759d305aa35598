//! Decoding WAV, FLAC, Ogg Vorbis and MP3 files into [`Audio`] with symphonia.
//!
//! Damage is handled like this:
//! * a file that ends early (the container says more data follows) is an error: "truncated";
//! * any other error from the demuxer (the container layer) is an error: "corrupt data after …";
//! * a packet that the decoder rejects as malformed is replaced by silence of the packet's length,
//!   so the rest of the file stays aligned in time, as players do. More than one bad packet per
//!   hundred (and at least two), or no good packet at all, means the file is damaged, not
//!   glitched, and is an error;
//! * when the container states its exact length (WAV, FLAC, Ogg) and fewer frames decode, data
//!   was silently skipped (FLAC resynchronises past a broken frame), which is an error too. MPEG
//!   audio is exempt: its length is often an estimate from the bit rate;
//! * a file that yields no samples, or non-finite ones, fails [`Audio::validate`].

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::{CODEC_ID_MP1, CODEC_ID_MP2, CODEC_ID_MP3};
use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use super::Audio;
use crate::{Error, Result};

/// Codecs whose container length is an estimate, so a shortfall proves nothing.
const ESTIMATED_LENGTH_CODECS: [AudioCodecId; 3] = [CODEC_ID_MP1, CODEC_ID_MP2, CODEC_ID_MP3];

/// Decodes the audio file at `path` (WAV 8/16/24/32-bit integer or 32/64-bit float PCM, FLAC,
/// Ogg Vorbis, MP3; any sample rate and channel count) into planar `f32` at its own rate, then
/// checks it with [`Audio::validate`]. Errors are one line naming the file.
pub fn read(path: &Path) -> Result<Audio> {
    let audio = decode_file(path).map_err(|reason| Error::AudioRead { path: path.to_path_buf(), reason })?;
    audio.validate(&path.display().to_string())?;
    Ok(audio)
}

/// The decode loop; failures are the reason half of [`Error::AudioRead`].
fn decode_file(path: &Path) -> Result<Audio, String> {
    let Stream { mut format, mut decoder, track_id, sample_rate, num_channels, declared_frames } = open(path)?;
    let mut channels = vec![Vec::<f32>::new(); num_channels];
    let mut packet_planes = Vec::<Vec<f32>>::new();
    let (mut packets, mut corrupt_packets) = (0u64, 0u64);
    let decoded_s = |channels: &[Vec<f32>]| channels[0].len() as f64 / f64::from(sample_rate);
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(format!("truncated: the data ends after {:.3} s", decoded_s(&channels)));
            }
            Err(SymphoniaError::ResetRequired) => {
                return Err("the stream changes format mid-file (chained streams are not supported)".into());
            }
            Err(e) => return Err(format!("corrupt data after {:.3} s: {e}", decoded_s(&channels))),
        };
        if packet.track_id != track_id {
            continue;
        }
        packets += 1;
        match decoder.decode(&packet) {
            Ok(buffer) => {
                let (rate, count) = (buffer.spec().rate(), buffer.spec().channels().count());
                if (rate, count) != (sample_rate, num_channels) {
                    return Err(format!(
                        "the stream changes from {sample_rate} Hz, {num_channels} channels to {rate} Hz, \
                         {count} channels after {:.3} s",
                        decoded_s(&channels)
                    ));
                }
                buffer.copy_to_vecs_planar(&mut packet_planes);
                for (channel, plane) in channels.iter_mut().zip(&packet_planes) {
                    channel.extend_from_slice(plane);
                }
            }
            Err(SymphoniaError::DecodeError(_)) => {
                corrupt_packets += 1;
                let frames = channels[0].len() + packet.dur.get() as usize;
                channels.iter_mut().for_each(|channel| channel.resize(frames, 0.0));
            }
            Err(e) => {
                return Err(format!("cannot decode after {:.3} s: {e}", decoded_s(&channels)));
            }
        }
    }

    if too_many_corrupt(corrupt_packets, packets) {
        return Err(format!("corrupt: {corrupt_packets} of {packets} packets could not be decoded"));
    }
    let frames = channels[0].len() as u64;
    if let Some(declared) = declared_frames.filter(|&declared| frames < declared) {
        return Err(format!("corrupt or truncated: decoded {frames} of the {declared} frames the file declares"));
    }
    Ok(Audio { sample_rate, channels })
}

/// An opened file: its demuxer, the decoder of its default audio track, and what that track
/// declares.
struct Stream {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    sample_rate: u32,
    /// At least one.
    num_channels: usize,
    /// The exact length, when the container states one (see [`ESTIMATED_LENGTH_CODECS`]).
    declared_frames: Option<u64>,
}

/// Opens `path`, probes its container and makes a decoder for its default audio track.
fn open(path: &Path) -> Result<Stream, String> {
    let metadata = std::fs::metadata(path).map_err(describe_io_error)?;
    if metadata.is_dir() {
        return Err("is a directory".into());
    }
    if metadata.len() == 0 {
        return Err("file is empty (0 bytes)".into());
    }
    let file = File::open(path).map_err(describe_io_error)?;
    let source = MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    if let Some(extension) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(extension);
    }
    let format = symphonia::default::get_probe()
        .probe(&hint, source, FormatOptions::default(), MetadataOptions::default())
        .map_err(describe_probe_error)?;

    let track = format.default_track(TrackType::Audio).ok_or("contains no audio track")?;
    let Some(CodecParameters::Audio(params)) = &track.codec_params else {
        return Err("contains no audio track".into());
    };
    let sample_rate = params.sample_rate.ok_or("the stream does not state its sample rate")?;
    let num_channels = params.channels.as_ref().map(|c| c.count()).filter(|&count| count > 0).ok_or("the stream declares no channels")?;
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| format!("unsupported codec: {e}"))?;
    let track_id = track.id;
    let declared_frames = track.num_frames.filter(|_| !ESTIMATED_LENGTH_CODECS.contains(&params.codec));
    Ok(Stream { format, decoder, track_id, sample_rate, num_channels, declared_frames })
}

/// True when no packet decoded, or the bad ones exceed one per hundred (one is always
/// tolerated): more than an isolated glitch.
fn too_many_corrupt(corrupt_packets: u64, packets: u64) -> bool {
    corrupt_packets > 0 && (corrupt_packets == packets || corrupt_packets > (packets / 100).max(1))
}

fn describe_io_error(error: std::io::Error) -> String {
    match error.kind() {
        ErrorKind::NotFound => "no such file".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

fn describe_probe_error(error: SymphoniaError) -> String {
    match error {
        SymphoniaError::Unsupported(_) => "not a supported audio file (WAV, FLAC, Ogg Vorbis or MP3)".into(),
        SymphoniaError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => "truncated: the file ends unexpectedly".into(),
        SymphoniaError::IoError(e) => describe_io_error(e),
        e => format!("corrupt header: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::too_many_corrupt;

    #[test]
    fn an_isolated_bad_packet_is_tolerated_and_more_are_not() {
        assert!(!too_many_corrupt(0, 0));
        assert!(too_many_corrupt(1, 1));
        assert!(!too_many_corrupt(1, 40));
        assert!(too_many_corrupt(2, 40));
        assert!(!too_many_corrupt(3, 300));
        assert!(too_many_corrupt(4, 300));
    }
}
