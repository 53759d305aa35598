//! Audio file I/O end to end: WAV round trips, damaged and hostile inputs, output safety, and
//! decoding of FLAC, Ogg Vorbis and MP3 fixtures made with `sox` at test time.
//!
//! The `sox` tests print a note and pass when `sox` (or its MP3 support) is missing, unless
//! `AFX_REQUIRE_SOX=1` is set, as in CI, where they fail instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use afx::audio::{Audio, WavFormat, ensure_output_distinct, read, write_wav};
use afx::{Error, Result};
use tempfile::TempDir;

/// Rates the WAV round trips cover, from telephone band to 192 kHz.
const RATES: [u32; 4] = [8_000, 44_100, 96_000, 192_000];
/// One test tone per channel, all below 4 kHz (the Nyquist frequency at 8 kHz), so that channel
/// order is visible.
const TONES_HZ: [f64; 6] = [440.0, 1_000.0, 1_500.0, 2_500.0, 3_100.0, 3_700.0];
const TONE_AMPLITUDE: f64 = 0.5;

fn sine(frequency_hz: f64, sample_rate: u32, frames: usize) -> Vec<f32> {
    let step = std::f64::consts::TAU * frequency_hz / f64::from(sample_rate);
    (0..frames).map(|n| (TONE_AMPLITUDE * (step * n as f64).sin()) as f32).collect()
}

/// `seconds` of one tone per channel (see [`TONES_HZ`]).
fn tones(sample_rate: u32, num_channels: usize, seconds: f64) -> Audio {
    let frames = (seconds * f64::from(sample_rate)).round() as usize;
    let channels = TONES_HZ[..num_channels].iter().map(|&f| sine(f, sample_rate, frames)).collect();
    Audio { sample_rate, channels }
}

fn largest_difference(a: &Audio, b: &Audio) -> f32 {
    a.channels.iter().flatten().zip(b.channels.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Frequency from the rising zero crossings (linearly interpolated) of the middle 80 %.
fn frequency_hz(x: &[f32], sample_rate: u32) -> f64 {
    let middle = &x[x.len() / 10..x.len() - x.len() / 10];
    let crossings: Vec<f64> = middle
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(n, w)| n as f64 + f64::from(w[0] / (w[0] - w[1])))
        .collect();
    let span = crossings.last().unwrap() - crossings.first().unwrap();
    (crossings.len() - 1) as f64 * f64::from(sample_rate) / span
}

/// RMS level of the middle 80 % relative to the test tone's, in dB.
fn level_db(x: &[f32]) -> f64 {
    let middle = &x[x.len() / 10..x.len() - x.len() / 10];
    let rms = (middle.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / middle.len() as f64).sqrt();
    20.0 * (rms / (TONE_AMPLITUDE / 2f64.sqrt())).log10()
}

/// Checks that every decoded channel carries its tone at the right frequency and level.
fn assert_tones(audio: &Audio, what: &str, level_tolerance_db: f64) {
    for (c, (channel, &tone_hz)) in audio.channels.iter().zip(&TONES_HZ).enumerate() {
        let frequency = frequency_hz(channel, audio.sample_rate);
        assert!((frequency / tone_hz - 1.0).abs() < 1e-3, "{what} channel {c}: {frequency} Hz, want {tone_hz}");
        let level = level_db(channel);
        assert!(level.abs() < level_tolerance_db, "{what} channel {c}: level {level} dB");
    }
}

fn error_message(result: Result<Audio>) -> String {
    result.expect_err("expected an error").to_string()
}

/// Asserts a one-line error that names the file and says `reason`.
fn assert_names_file(message: &str, path: &Path, reason: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(message.contains(name), "error does not name {name}: {message}");
    assert!(message.contains(reason), "error does not say `{reason}`: {message}");
    assert!(!message.contains('\n'), "error is not one line: {message}");
}

fn write_with_hound<S: hound::Sample + Copy>(path: &Path, spec: hound::WavSpec, samples: &[S]) {
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    samples.iter().for_each(|&s| writer.write_sample(s).unwrap());
    writer.finalize().unwrap();
}

fn float_spec(channels: u16) -> hound::WavSpec {
    hound::WavSpec { channels, sample_rate: 48_000, bits_per_sample: 32, sample_format: hound::SampleFormat::Float }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------
// WAV round trips

/// Writes tones in `format` at every rate in [`RATES`], mono and stereo, reads them back and
/// checks the largest sample error.
fn check_round_trip(format: WavFormat, max_error: f32) {
    let dir = TempDir::new().unwrap();
    for sample_rate in RATES {
        for num_channels in [1, 2] {
            let audio = tones(sample_rate, num_channels, 0.25);
            let path = dir.path().join(format!("{sample_rate}-{num_channels}.wav"));
            write_wav(&path, &audio, format).unwrap();
            let decoded = read(&path).unwrap();
            let what = format!("{format:?} {sample_rate} Hz, {num_channels} channels");
            assert_eq!(decoded.sample_rate, sample_rate, "{what}");
            assert_eq!(decoded.num_channels(), num_channels, "{what}");
            assert_eq!(decoded.frames(), audio.frames(), "{what}");
            let error = largest_difference(&decoded, &audio);
            assert!(error <= max_error, "{what}: error {error} > {max_error}");
        }
    }
}

#[test]
fn f32_wav_round_trip_is_bit_exact() {
    check_round_trip(WavFormat::F32, 0.0);
}

#[test]
fn i16_wav_round_trip_is_within_half_a_step() {
    check_round_trip(WavFormat::I16, 0.5 / 32_768.0 + 1e-9);
}

#[test]
fn i24_wav_round_trip_is_within_half_a_step() {
    check_round_trip(WavFormat::I24, 0.5 / 8_388_608.0 + 1e-9);
}

#[test]
fn default_format_is_f32() {
    assert_eq!(WavFormat::default(), WavFormat::F32);
}

#[test]
fn six_channel_wav_keeps_channel_order() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("surround.wav");
    let audio = tones(48_000, 6, 0.5);
    write_wav(&path, &audio, WavFormat::F32).unwrap();
    assert_eq!(read(&path).unwrap(), audio);
}

#[test]
fn integer_formats_clip_overs() {
    let dir = TempDir::new().unwrap();
    let audio = Audio { sample_rate: 44_100, channels: vec![vec![1.5, -1.5, 0.25]] };
    for (format, step) in [(WavFormat::I16, 1.0 / 32_768.0), (WavFormat::I24, 1.0 / 8_388_608.0)] {
        let path = dir.path().join(format!("{format:?}.wav"));
        write_wav(&path, &audio, format).unwrap();
        assert_eq!(read(&path).unwrap().channels[0], [1.0 - step, -1.0, 0.25], "{format:?}");
    }
}

#[test]
fn i32_pcm_wav_is_decoded() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("int32.wav");
    let spec = hound::WavSpec { sample_format: hound::SampleFormat::Int, ..float_spec(2) };
    write_with_hound(&path, spec, &[i32::MAX, i32::MIN, 1 << 30, -(1 << 29)]);
    let audio = read(&path).unwrap();
    assert_eq!(audio.channels, [vec![1.0, 0.5], vec![-1.0, -0.25]]);
}

#[test]
fn overwriting_replaces_the_file_and_leaves_nothing_else() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("out.wav");
    write_wav(&path, &tones(44_100, 2, 0.5), WavFormat::I16).unwrap();
    let second = tones(22_050, 1, 0.1);
    write_wav(&path, &second, WavFormat::F32).unwrap();
    assert_eq!(read(&path).unwrap(), second);
    assert_eq!(file_names(dir.path()), ["out.wav"]);
}

#[cfg(unix)]
#[test]
fn output_has_the_permissions_of_a_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let plain = dir.path().join("plain");
    fs::File::create(&plain).unwrap();
    let output = dir.path().join("out.wav");
    write_wav(&output, &tones(8_000, 1, 0.1), WavFormat::I16).unwrap();
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&output), mode(&plain));
}

// ---------------------------------------------------------------------------------------------
// Missing, damaged and hostile inputs

#[test]
fn missing_file_is_an_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("nowhere.wav");
    assert_names_file(&error_message(read(&path)), &path, "no such file");
}

#[test]
fn empty_file_and_directory_are_errors_naming_them() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("empty.wav");
    fs::write(&path, b"").unwrap();
    assert_names_file(&error_message(read(&path)), &path, "empty");
    let folder = dir.path().join("folder.wav");
    fs::create_dir(&folder).unwrap();
    assert_names_file(&error_message(read(&folder)), &folder, "is a directory");
}

#[test]
fn random_bytes_are_an_error_naming_the_file() {
    let dir = TempDir::new().unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for name in ["noise.wav", "noise.flac", "noise.bin"] {
        let path = dir.path().join(name);
        fs::write(&path, &noise).unwrap();
        assert_names_file(&error_message(read(&path)), &path, "not a supported audio file");
    }
}

#[test]
fn truncated_wav_is_an_error_naming_the_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cut.wav");
    write_wav(&path, &tones(44_100, 2, 1.0), WavFormat::I16).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(file.metadata().unwrap().len() / 2).unwrap();
    assert_names_file(&error_message(read(&path)), &path, "truncated");
}

#[test]
fn wav_without_samples_is_rejected() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("header-only.wav");
    write_with_hound::<f32>(&path, float_spec(2), &[]);
    assert_names_file(&error_message(read(&path)), &path, "no audio samples");
}

#[test]
fn non_finite_wav_is_rejected() {
    let dir = TempDir::new().unwrap();
    let nan = dir.path().join("all-nan.wav");
    write_with_hound(&nan, float_spec(1), &[f32::NAN; 64]);
    assert_names_file(&error_message(read(&nan)), &nan, "non-finite sample (NaN) in channel 0 at frame 0");
    let inf = dir.path().join("one-inf.wav");
    write_with_hound(&inf, float_spec(2), &[0.0, 0.0, 0.0, f32::INFINITY]);
    assert_names_file(&error_message(read(&inf)), &inf, "non-finite sample (inf) in channel 1 at frame 1");
}

// ---------------------------------------------------------------------------------------------
// Output safety

#[test]
fn output_onto_an_input_is_refused_and_the_input_is_unchanged() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("in.wav");
    let other = dir.path().join("other.wav");
    for path in [&input, &other] {
        write_wav(path, &tones(44_100, 2, 0.2), WavFormat::I16).unwrap();
    }
    let original = fs::read(&input).unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let same_file: [PathBuf; 3] = [input.clone(), dir.path().join("./in.wav"), dir.path().join("sub/../in.wav")];
    for output in &same_file {
        let error = ensure_output_distinct(output, &[&other, &input]).unwrap_err();
        assert!(matches!(error, Error::OutputIsInput { .. }), "{output:?}: {error}");
        assert!(error.to_string().contains("in.wav"), "{error}");
    }
    assert_eq!(fs::read(&input).unwrap(), original);

    ensure_output_distinct(&other, &[&input]).unwrap();
    ensure_output_distinct(&dir.path().join("new.wav"), &[&input, &other]).unwrap();
    let not_yet = dir.path().join("sub/../later.wav");
    assert!(ensure_output_distinct(&dir.path().join("later.wav"), &[&not_yet]).is_err());
}

#[cfg(unix)]
#[test]
fn output_reaching_an_input_through_a_link_is_refused() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, &tones(8_000, 1, 0.1), WavFormat::F32).unwrap();
    let symlink = dir.path().join("symlink.wav");
    std::os::unix::fs::symlink(&input, &symlink).unwrap();
    let hard_link = dir.path().join("hard-link.wav");
    fs::hard_link(&input, &hard_link).unwrap();
    for output in [&symlink, &hard_link] {
        assert!(ensure_output_distinct(output, &[&input]).is_err(), "{output:?}");
        assert!(ensure_output_distinct(&input, &[output]).is_err(), "{output:?}");
    }
}

#[test]
fn failed_writes_leave_no_file_behind() {
    let dir = TempDir::new().unwrap();
    let audio = tones(44_100, 2, 0.2);

    let in_missing_dir = dir.path().join("missing/out.wav");
    let message = write_wav(&in_missing_dir, &audio, WavFormat::F32).unwrap_err().to_string();
    assert!(message.contains("out.wav") && message.contains("does not exist"), "{message}");

    let onto_a_directory = dir.path().join("taken.wav");
    fs::create_dir(&onto_a_directory).unwrap();
    assert!(write_wav(&onto_a_directory, &audio, WavFormat::F32).is_err());

    let mut bad = audio.clone();
    bad.channels[1][7] = f32::NAN;
    let not_finite = dir.path().join("nan.wav");
    let message = write_wav(&not_finite, &bad, WavFormat::I16).unwrap_err().to_string();
    assert!(message.contains("nan.wav: cannot write audio: non-finite"), "{message}");

    assert_eq!(file_names(dir.path()), ["taken.wav"]);
    assert!(file_names(&onto_a_directory).is_empty());
}

#[cfg(unix)]
#[test]
fn write_into_a_read_only_directory_fails_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::File::create(locked.join("probe")).is_ok() {
        eprintln!("note: write_into_a_read_only_directory_fails_cleanly skipped: running as root");
        return;
    }
    let path = locked.join("out.wav");
    let message = write_wav(&path, &tones(8_000, 1, 0.1), WavFormat::F32).unwrap_err().to_string();
    assert!(message.contains("out.wav: cannot write audio"), "{message}");
    assert!(file_names(&locked).is_empty());
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// FLAC, Ogg Vorbis and MP3 through sox

/// True when `sox` can write `format`. Otherwise prints a note and returns false, or panics when
/// `AFX_REQUIRE_SOX=1`.
fn sox_writes(format: &str, test: &str) -> bool {
    let help = Command::new("sox").arg("-h").output();
    let formats = help.as_ref().map(|out| String::from_utf8_lossy(&out.stdout).into_owned()).unwrap_or_default();
    let listed = formats
        .lines()
        .find_map(|line| line.strip_prefix("AUDIO FILE FORMATS:"))
        .is_some_and(|list| list.split_whitespace().any(|f| f == format));
    if !listed {
        let why = if help.is_ok() { format!("`sox` cannot write {format}") } else { "`sox` is not on PATH".into() };
        assert!(std::env::var("AFX_REQUIRE_SOX").as_deref() != Ok("1"), "{test}: AFX_REQUIRE_SOX=1 but {why}");
        eprintln!("note: {test} skipped: {why} (install sox and libsox-fmt-mp3)");
    }
    listed
}

/// Writes `audio` as float WAV and converts it with `sox <wav> <options> <out>` (no dither,
/// warnings off: sox notes that hound's float header lacks the optional `cbSize` field).
fn convert_with_sox(dir: &Path, audio: &Audio, options: &[&str], out_name: &str) -> PathBuf {
    let wav = dir.join(format!("{out_name}.source.wav"));
    write_wav(&wav, audio, WavFormat::F32).unwrap();
    let out = dir.join(out_name);
    let status = Command::new("sox").args(["-D", "-V1"]).arg(&wav).args(options).arg(&out).status().unwrap();
    assert!(status.success(), "sox {options:?} {out_name} failed");
    out
}

/// Decodes the sox conversion of tones and checks rate, channels, tones, and that the length
/// is at least the original's and at most `extra_frames` longer.
fn check_sox_format(
    extension: &str,
    options: &[&str],
    cases: &[(u32, usize)],
    extra_frames: usize,
    level_tolerance_db: f64,
) -> Vec<(Audio, Audio)> {
    let dir = TempDir::new().unwrap();
    let mut decoded_with_original = Vec::new();
    for &(sample_rate, num_channels) in cases {
        let original = tones(sample_rate, num_channels, 1.0);
        let path = convert_with_sox(dir.path(), &original, options, &format!("{sample_rate}-{num_channels}.{extension}"));
        let what = path.file_name().unwrap().to_string_lossy().into_owned();
        let decoded = read(&path).unwrap();
        assert_eq!(decoded.sample_rate, sample_rate, "{what}");
        assert_eq!(decoded.num_channels(), num_channels, "{what}");
        let frames = decoded.frames();
        assert!((original.frames()..=original.frames() + extra_frames).contains(&frames), "{what}: {frames} frames");
        assert_tones(&decoded, &what, level_tolerance_db);
        decoded_with_original.push((decoded, original));
    }
    decoded_with_original
}

#[test]
fn flac_decodes_losslessly() {
    if !sox_writes("flac", "flac_decodes_losslessly") {
        return;
    }
    for (bits, step) in [("16", 1.0 / 32_768.0), ("24", 1.0 / 8_388_608.0)] {
        let cases = [(8_000, 6), (44_100, 2), (96_000, 1), (192_000, 2)];
        for (decoded, original) in check_sox_format("flac", &["-b", bits], &cases, 0, 0.01) {
            let error = largest_difference(&decoded, &original);
            assert!(error <= step, "{bits}-bit FLAC at {} Hz: error {error}", decoded.sample_rate);
        }
    }
}

#[test]
fn wav_variants_written_by_sox_decode() {
    if !sox_writes("wav", "wav_variants_written_by_sox_decode") {
        return;
    }
    let variants: [(&[&str], f32); 5] = [
        (&["-b", "8", "-e", "unsigned-integer"], 1.0 / 128.0),
        (&["-b", "16", "-e", "signed-integer"], 1.0 / 32_768.0),
        (&["-b", "24", "-e", "signed-integer"], 1.0 / 8_388_608.0),
        (&["-b", "32", "-e", "signed-integer"], 1e-7),
        (&["-b", "64", "-e", "floating-point"], 1e-7),
    ];
    for (options, step) in variants {
        for (decoded, original) in check_sox_format("wav", options, &[(44_100, 2)], 0, 0.1) {
            let error = largest_difference(&decoded, &original);
            assert!(error <= step, "{options:?}: error {error}");
        }
    }
}

#[test]
fn ogg_vorbis_decodes_with_its_exact_length() {
    if !sox_writes("vorbis", "ogg_vorbis_decodes_with_its_exact_length") {
        return;
    }
    check_sox_format("ogg", &["-C", "6"], &[(22_050, 1), (44_100, 2), (48_000, 2), (96_000, 1)], 0, 0.3);
}

#[test]
fn mp3_decodes_with_encoder_padding() {
    if !sox_writes("mp3", "mp3_decodes_with_encoder_padding") {
        return;
    }
    // LAME adds its encoder delay and pads the last frame: allow about three 1152-frame frames.
    check_sox_format("mp3", &["-C", "192"], &[(22_050, 1), (32_000, 2), (44_100, 2), (48_000, 1)], 3_500, 0.5);
}

#[test]
fn damaged_flac_is_an_error_naming_the_file() {
    if !sox_writes("flac", "damaged_flac_is_an_error_naming_the_file") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let path = convert_with_sox(dir.path(), &tones(44_100, 2, 1.0), &[], "damaged.flac");
    let pristine = fs::read(&path).unwrap();

    let mut scribbled = pristine.clone();
    let middle = scribbled.len() / 2;
    scribbled[middle..middle + 200].iter_mut().enumerate().for_each(|(i, byte)| *byte ^= 0x5A ^ i as u8);
    fs::write(&path, &scribbled).unwrap();
    assert_names_file(&error_message(read(&path)), &path, "corrupt");

    fs::write(&path, &pristine[..pristine.len() / 2]).unwrap();
    assert_names_file(&error_message(read(&path)), &path, "truncated");
}
