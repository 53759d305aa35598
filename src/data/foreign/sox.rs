//! SoX's effects, run by the `sox` command on a temporary WAV file.

use std::ffi::OsStr;
use std::process::{Command, Output};

use serde::{Deserialize, Serialize};

use super::{below_nyquist, check_input, check_setting};
use crate::audio::{Audio, WavFormat, read, write_wav};
use crate::{Error, Result};

/// Level, in dB, of the compand transfer function's lowest point (unity from there to the
/// threshold) and of its detector at the start.
const COMPAND_FLOOR_DB: f64 = -90.0;

/// One SoX effect with its settings in physical units; the SoX manual (`man sox`) defines each.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum SoxEffect {
    /// `equalizer F Wq G`: a peaking biquad (RBJ cookbook) at `freq_hz` with quality `q`.
    Equalizer { freq_hz: f64, q: f64, gain_db: f64 },
    /// `bass G F`: a low shelf (two-pole) with its midpoint at `freq_hz`.
    Bass { gain_db: f64, freq_hz: f64 },
    /// `treble G F`: a high shelf (two-pole) with its midpoint at `freq_hz`.
    Treble { gain_db: f64, freq_hz: f64 },
    /// `highpass F`: a two-pole high-pass, Q 0.707.
    Highpass { freq_hz: f64 },
    /// `lowpass F`: a two-pole low-pass, Q 0.707.
    Lowpass { freq_hz: f64 },
    /// `compand A,D K:…`: SoX's compander as a compressor: unity up to `threshold_db`, then
    /// `1/ratio` dB out per dB in, a soft knee of `knee_db`, the detector's `attack_ms` and
    /// `decay_ms`, `makeup_db` after; one detector for all channels.
    Compand { attack_ms: f64, decay_ms: f64, threshold_db: f64, ratio: f64, knee_db: f64, makeup_db: f64 },
    /// `overdrive G C`: SoX's overdrive with input gain `gain_db` and `colour` (even harmonics).
    Overdrive { gain_db: f64, colour: f64 },
    /// `gain G`: a gain in dB.
    Gain { gain_db: f64 },
}

impl SoxEffect {
    fn check(&self) -> Result<()> {
        let check = |setting, value, low, high| check_setting("sox", setting, value, low, high);
        match *self {
            SoxEffect::Equalizer { freq_hz, q, gain_db } => {
                check("freq_hz", freq_hz, 10.0, 40_000.0)?;
                check("q", q, 0.05, 20.0)?;
                check("gain_db", gain_db, -30.0, 30.0)
            }
            SoxEffect::Bass { gain_db, freq_hz } | SoxEffect::Treble { gain_db, freq_hz } => {
                check("gain_db", gain_db, -30.0, 30.0)?;
                check("freq_hz", freq_hz, 10.0, 40_000.0)
            }
            SoxEffect::Highpass { freq_hz } | SoxEffect::Lowpass { freq_hz } => check("freq_hz", freq_hz, 10.0, 40_000.0),
            SoxEffect::Compand { attack_ms, decay_ms, threshold_db, ratio, knee_db, makeup_db } => {
                check("attack_ms", attack_ms, 0.1, 1_000.0)?;
                check("decay_ms", decay_ms, 1.0, 10_000.0)?;
                check("threshold_db", threshold_db, COMPAND_FLOOR_DB + 1.0, 0.0)?;
                check("ratio", ratio, 1.0, 50.0)?;
                check("knee_db", knee_db, 0.0, 20.0)?;
                check("makeup_db", makeup_db, -40.0, 40.0)
            }
            SoxEffect::Overdrive { gain_db, colour } => {
                check("gain_db", gain_db, 0.0, 60.0)?;
                check("colour", colour, 0.0, 100.0)
            }
            SoxEffect::Gain { gain_db } => check("gain_db", gain_db, -60.0, 60.0),
        }
    }

    /// The effect's words on the `sox` command line; frequencies are held below 0.45 × the
    /// sample rate, as SoX refuses filters at or above the Nyquist frequency.
    fn args(&self, sample_rate: u32) -> Vec<String> {
        let hz = |freq_hz: f64| below_nyquist(freq_hz, sample_rate).to_string();
        match *self {
            SoxEffect::Equalizer { freq_hz, q, gain_db } => vec!["equalizer".into(), hz(freq_hz), format!("{q}q"), gain_db.to_string()],
            SoxEffect::Bass { gain_db, freq_hz } => vec!["bass".into(), gain_db.to_string(), hz(freq_hz)],
            SoxEffect::Treble { gain_db, freq_hz } => vec!["treble".into(), gain_db.to_string(), hz(freq_hz)],
            SoxEffect::Highpass { freq_hz } => vec!["highpass".into(), hz(freq_hz)],
            SoxEffect::Lowpass { freq_hz } => vec!["lowpass".into(), hz(freq_hz)],
            SoxEffect::Compand { attack_ms, decay_ms, threshold_db, ratio, knee_db, makeup_db } => {
                let top_db = threshold_db * (1.0 - 1.0 / ratio);
                let floor = COMPAND_FLOOR_DB;
                vec![
                    "compand".into(),
                    format!("{},{}", attack_ms / 1e3, decay_ms / 1e3),
                    format!("{knee_db}:{floor},{floor},{threshold_db},{threshold_db},0,{top_db}"),
                    makeup_db.to_string(),
                    floor.to_string(),
                ]
            }
            SoxEffect::Overdrive { gain_db, colour } => vec!["overdrive".into(), gain_db.to_string(), colour.to_string()],
            SoxEffect::Gain { gain_db } => vec!["gain".into(), gain_db.to_string()],
        }
    }
}

/// True when the `sox` command runs.
pub fn sox_available() -> bool {
    Command::new("sox").arg("--version").output().is_ok_and(|output| output.status.success())
}

/// Runs `effects` on the channels with SoX: `sox -D -V1 in.wav -e floating-point -b 32 out.wav
/// <effects>` in a temporary folder (float WAV both ways, no dither), and reads the result back
/// at the input's length. SoX works in 32-bit integers inside, so it clips at full scale. Fails
/// with [`Error::SoxMissing`] when `sox` cannot be started and [`Error::SoxFailed`] when it
/// refuses the effects.
pub fn sox(channels: &[Vec<f32>], sample_rate: u32, effects: &[SoxEffect]) -> Result<Vec<Vec<f32>>> {
    check_input(channels, sample_rate, "sox")?;
    effects.iter().try_for_each(SoxEffect::check)?;
    let folder = tempfile::tempdir()?;
    let (input, output) = (folder.path().join("in.wav"), folder.path().join("out.wav"));
    write_wav(&input, &Audio { sample_rate, channels: channels.to_vec() }, WavFormat::F32)?;
    let effect_args: Vec<String> = effects.iter().flat_map(|effect| effect.args(sample_rate)).collect();
    let mut args = vec!["-D".as_ref(), "-V1".as_ref(), input.as_os_str()];
    args.extend(["-e", "floating-point", "-b", "32"].map(OsStr::new));
    args.push(output.as_os_str());
    args.extend(effect_args.iter().map(OsStr::new));
    let ran = run("sox", &args)?;
    if !ran.status.success() {
        let stderr = String::from_utf8_lossy(&ran.stderr);
        let reason = stderr.lines().last().map_or_else(|| ran.status.to_string(), str::to_string);
        return Err(Error::SoxFailed { effects: effect_args.join(" "), reason });
    }
    let mut processed = read(&output)?;
    if processed.num_channels() != channels.len() || processed.sample_rate != sample_rate {
        let reason = format!("gave {} channels at {} Hz back", processed.num_channels(), processed.sample_rate);
        return Err(Error::SoxFailed { effects: effect_args.join(" "), reason });
    }
    processed.channels.iter_mut().for_each(|channel| channel.resize(channels[0].len(), 0.0));
    Ok(processed.channels)
}

/// Runs `program` with `args`, mapping a failure to start it to [`Error::SoxMissing`].
fn run(program: &str, args: &[&OsStr]) -> Result<Output> {
    Command::new(program).args(args).output().map_err(|e| Error::SoxMissing { reason: format!("`{program}`: {e}") })
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::test_signals::{fit_sine, sine};
    use super::*;

    /// True when `sox` runs; otherwise prints a note and returns false, or panics when
    /// `AFX_REQUIRE_SOX=1` (as in CI).
    pub(in super::super) fn sox_present(test: &str) -> bool {
        if sox_available() {
            return true;
        }
        assert!(std::env::var("AFX_REQUIRE_SOX").as_deref() != Ok("1"), "{test}: AFX_REQUIRE_SOX=1 but `sox` does not run");
        eprintln!("note: {test} skipped: `sox` does not run (install SoX)");
        false
    }

    fn sine_gain_db(effects: &[SoxEffect], freq_hz: f64, sample_rate: u32) -> f64 {
        let output = sox(&[sine(freq_hz, 0.25, sample_rate, sample_rate as usize)], sample_rate, effects).unwrap();
        let middle = &output[0][sample_rate as usize / 4..3 * sample_rate as usize / 4];
        20.0 * (fit_sine(middle, freq_hz, sample_rate).0 / 0.25).log10()
    }

    #[test]
    fn gain_minus_six_halves_the_amplitude_and_stereo_stays_stereo() {
        if !sox_present("gain_minus_six_halves_the_amplitude_and_stereo_stays_stereo") {
            return;
        }
        let sample_rate = 44_100;
        let channels = vec![sine(440.0, 0.5, sample_rate, 10_000), sine(1_000.0, -0.3, sample_rate, 10_000)];
        let output = sox(&channels, sample_rate, &[SoxEffect::Gain { gain_db: -6.0 }]).unwrap();
        assert_eq!((output.len(), output[0].len()), (2, 10_000));
        for (got, want) in output.iter().zip(&channels) {
            for (y, x) in got.iter().zip(want) {
                assert!((y - x * 0.501_187).abs() < 1e-5, "gain -6 scales by 10^(-6/20): {y} vs {x}");
            }
        }
    }

    #[test]
    fn highpass_attenuates_30_hz_against_1_khz() {
        if !sox_present("highpass_attenuates_30_hz_against_1_khz") {
            return;
        }
        for sample_rate in [8_000, 48_000] {
            let highpass = [SoxEffect::Highpass { freq_hz: 200.0 }];
            let (low_db, mid_db) = (sine_gain_db(&highpass, 30.0, sample_rate), sine_gain_db(&highpass, 1_000.0, sample_rate));
            assert!(mid_db.abs() < 0.5, "{sample_rate} Hz: 1 kHz passes at {mid_db} dB");
            assert!(low_db < mid_db - 20.0, "{sample_rate} Hz: 30 Hz at {low_db} dB, 1 kHz at {mid_db} dB");
        }
    }

    #[test]
    fn every_effect_runs_and_frequencies_above_nyquist_are_held_below_it() {
        if !sox_present("every_effect_runs_and_frequencies_above_nyquist_are_held_below_it") {
            return;
        }
        let effects = [
            SoxEffect::Highpass { freq_hz: 40.0 },
            SoxEffect::Lowpass { freq_hz: 30_000.0 },
            SoxEffect::Bass { gain_db: 3.0, freq_hz: 100.0 },
            SoxEffect::Treble { gain_db: -2.0, freq_hz: 12_000.0 },
            SoxEffect::Equalizer { freq_hz: 1_000.0, q: 1.0, gain_db: 4.0 },
            SoxEffect::Compand { attack_ms: 10.0, decay_ms: 200.0, threshold_db: -20.0, ratio: 3.0, knee_db: 6.0, makeup_db: 2.0 },
            SoxEffect::Overdrive { gain_db: 6.0, colour: 20.0 },
            SoxEffect::Gain { gain_db: -3.0 },
        ];
        let output = sox(&[sine(440.0, 0.5, 16_000, 16_000)], 16_000, &effects).unwrap();
        assert_eq!((output.len(), output[0].len()), (1, 16_000));
        assert!(output[0].iter().all(|x| x.is_finite()) && output[0].iter().any(|&x| x.abs() > 0.05));
    }

    #[test]
    fn compand_turns_loud_sines_down_more_than_quiet_ones() {
        if !sox_present("compand_turns_loud_sines_down_more_than_quiet_ones") {
            return;
        }
        let compand =
            [SoxEffect::Compand { attack_ms: 5.0, decay_ms: 50.0, threshold_db: -30.0, ratio: 4.0, knee_db: 0.0, makeup_db: 0.0 }];
        let gain_db = |amplitude: f64| {
            let output = sox(&[sine(1_000.0, amplitude, 48_000, 48_000)], 48_000, &compand).unwrap();
            20.0 * (fit_sine(&output[0][24_000..], 1_000.0, 48_000).0 / amplitude).log10()
        };
        let (quiet_db, loud_db) = (gain_db(0.005), gain_db(0.5));
        assert!(quiet_db.abs() < 0.5, "below the threshold: {quiet_db} dB");
        assert!(loud_db < -10.0, "well above the threshold, 4:1: {loud_db} dB");
    }

    #[test]
    fn a_missing_program_and_bad_settings_are_typed_errors() {
        assert!(matches!(run("afx-test-no-such-program", &[]), Err(Error::SoxMissing { .. })));
        let x = [vec![0.1f32; 100]];
        assert!(matches!(sox(&x, 48_000, &[SoxEffect::Highpass { freq_hz: f64::NAN }]), Err(Error::ForeignSetting { .. })));
        assert!(matches!(sox(&[vec![]], 48_000, &[]), Err(Error::BadAudio { .. })));
        assert!(matches!(sox(&x, 7_000, &[]), Err(Error::SampleRate { .. })));
    }
}
