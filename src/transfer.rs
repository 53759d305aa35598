//! Style transfer (`afx transfer`): the network listens to an input and a reference recording,
//! sets the knobs, and the chain renders the whole input at its own rate.
//!
//! decode → analysis copies (mono, 24 kHz, peak −12 dBFS as in training) → log-mel →
//! encoder(input), encoder(reference) → controller → normalised knobs → physical knobs →
//! chain on the input at its own rate and channel count (peak −12 dBFS, as the network learned
//! it) → output scaled back to the reference's peak scale, or, for a level-relative model
//! ([`OutputLevel::Reference`]), to the reference's K-weighted level plus the make-up knob →
//! WAV (+ knobs as JSON).
//!
//! The two level changes fold into the knobs: a gain `G` dB before the chain is the same as
//! lowering the threshold by `G` and raising the make-up gain by `G` (the EQ is linear and the
//! compressor's gain depends only on the level above threshold), and a gain after it adds to
//! the make-up gain. So the knobs reported for a file ([`Transferred::file_knobs`]) render the
//! untouched input into the same output with `afx apply`, as long as they stay in range.

use std::path::Path;

use crate::apply::read_checked;
use crate::atomic::write_bytes_atomic;
use crate::audio::{self, Audio, WavFormat};
use crate::data::{self, PEAK_DBFS, normalize_peak};
use crate::fx::Knobs;
use crate::fx::level::{OutputLevel, level_db};
use crate::grad::ChainFx;
use crate::model::{ANALYSIS_RATE_HZ, LoadedModel, LogMel, StyleNet};
use crate::{Error, Result, refine};

/// Sample rates `afx transfer` accepts, in Hz.
pub const MIN_RATE_HZ: u32 = 16_000;
pub const MAX_RATE_HZ: u32 = 96_000;

/// The model embedded in the program: trained by `afx train` on the Debian audio named in the
/// README, described by models/README.md. The wrapper aligns the bytes so the weights load
/// without a copy.
#[repr(C, align(256))]
struct Aligned<T: ?Sized>(T);
static BUNDLED_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!("../models/style.afx"));

/// The bundled model.
pub fn bundled_model() -> Result<LoadedModel> {
    crate::model::file::from_static(&BUNDLED_MODEL.0)
}

/// What a transfer produced.
#[derive(Debug)]
pub struct Transferred {
    pub output: Audio,
    /// The network's knobs, for the input at the analysis level (peak −12 dBFS).
    pub knobs: Knobs,
    /// The knobs for the file as it is, levels folded in (see the module doc), clamped to the
    /// knobs' ranges.
    pub file_knobs: Knobs,
    /// Whether `file_knobs` reproduce `output` from the input (nothing had to be clamped).
    pub file_knobs_exact: bool,
}

/// Predicts the knobs that give `input` the production style of `reference`.
pub fn predict_knobs(net: &StyleNet, input: &Audio, reference: &Audio) -> Result<Knobs> {
    let (input, reference) = (analysis_copy(input), analysis_copy(reference));
    Ok(to_knobs(&predict_normalized(net, &input?, &reference?)?))
}

/// The network's normalised knobs for two analysis copies.
fn predict_normalized(net: &StyleNet, input: &[f32], reference: &[f32]) -> Result<Vec<f32>> {
    let mut front = LogMel::new(&net.config().features);
    let mut features =
        |samples: &[f32], what: &str| front.compute(samples).map_err(|e| Error::BadAudio { what: what.into(), reason: e.to_string() });
    let input_features = features(input, "input")?;
    let reference_features = features(reference, "reference")?;
    Ok(net.predict(&[input_features], &[reference_features]).remove(0))
}

fn to_knobs(normalized: &[f32]) -> Knobs {
    Knobs::from_normalized(&normalized.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())
}

/// Style transfer in memory: the knobs (the network's, then `refine_steps` of
/// [`refine::refine`] on the analysis copies), and the whole input rendered with them at its
/// own rate and channel count, at the reference's level.
pub fn transfer(net: &StyleNet, input: &Audio, reference: &Audio, refine_steps: usize) -> Result<Transferred> {
    for (what, audio) in [("input", input), ("reference", reference)] {
        audio.validate(what)?;
        audio.check_not_silent(what)?;
        audio::check_sample_rate(audio.sample_rate, MIN_RATE_HZ, MAX_RATE_HZ)
            .map_err(|e| Error::BadAudio { what: what.into(), reason: e.to_string() })?;
        if audio.num_channels() > 2 {
            return Err(Error::BadAudio {
                what: what.into(),
                reason: format!("{} channels; afx transfer takes mono or stereo", audio.num_channels()),
            });
        }
    }
    let (input_copy, reference_copy) = (analysis_copy(input)?, analysis_copy(reference)?);
    let mut normalized = predict_normalized(net, &input_copy, &reference_copy)?;
    let level = net.config().output_level;
    if refine_steps > 0 {
        let fx = ChainFx::default_chain(ANALYSIS_RATE_HZ);
        normalized = refine::refine(&fx, &input_copy, &reference_copy, &normalized, refine_steps, level);
    }
    let knobs = to_knobs(&normalized);
    let input_gain = peak_gain(input);
    let mut output = input.clone();
    scale(&mut output, input_gain);
    // In f32 like training (twice the speed of `afx apply`'s f64 path; the two agree to ~1e-6).
    let mut views: Vec<&mut [f32]> = output.channels.iter_mut().map(|c| c.as_mut_slice()).collect();
    crate::fx::render(&knobs.chain_knobs(), output.sample_rate, &mut views)?;
    // The level: back to the reference's peak scale (the network learned the make-up gain on
    // peak-normalised clips), or for a level-relative model onto the reference's own level.
    let output_gain_db = match level {
        OutputLevel::Absolute => {
            let gain = 1.0 / peak_gain(reference);
            scale(&mut output, gain);
            db(gain)
        }
        OutputLevel::Reference => {
            let reference_db = || {
                let channels: Vec<&[f32]> = reference.channels.iter().map(Vec::as_slice).collect();
                level_db(&channels, reference.sample_rate)
            };
            20.0 * level.finish(&mut views, input.sample_rate, reference_db, &knobs).log10()
        }
    };
    let (file_knobs, file_knobs_exact) = fold_levels(&knobs, db(input_gain), output_gain_db);
    Ok(Transferred { output, knobs, file_knobs, file_knobs_exact })
}

/// The integrated loudness (BS.1770) of a transfer's output and of its reference in LUFS,
/// `None` for a recording with no block above the −70 LUFS gate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loudness {
    pub output: Option<f64>,
    pub reference: Option<f64>,
}

/// How far below its reference an output may be before [`Loudness::warning`] speaks.
const QUIET_WARNING_LU: f64 = 20.0;

impl Loudness {
    /// A one-line warning when the output is silent to the meter or more than 20 LU below the
    /// reference: the knobs the model chose are then unlikely to be what the user wanted.
    pub fn warning(&self) -> Option<String> {
        let advice = "the model's knobs may not suit this material (try --refine, or another --model)";
        match (self.output, self.reference) {
            (None, _) => Some(format!("warning: the output is silent to the loudness meter (below −70 LUFS); {advice}")),
            (Some(output), Some(reference)) if reference - output > QUIET_WARNING_LU => {
                Some(format!("warning: the output is {:.1} LU quieter than the reference; {advice}", reference - output))
            }
            _ => None,
        }
    }
}

/// The knobs that act on the unscaled input as `knobs` act on the input scaled by
/// `input_gain_db`, followed by `output_gain_db`; clamped to range, with whether nothing was.
pub fn fold_levels(knobs: &Knobs, input_gain_db: f64, output_gain_db: f64) -> (Knobs, bool) {
    use crate::fx::KNOBS;
    use crate::fx::params::default_chain::{MAKEUP_DB, THRESHOLD_DB};
    let mut folded = *knobs;
    folded.0[THRESHOLD_DB] -= input_gain_db;
    folded.0[MAKEUP_DB] += input_gain_db + output_gain_db;
    let mut exact = true;
    for i in [THRESHOLD_DB, MAKEUP_DB] {
        let clamped = folded.0[i].clamp(KNOBS[i].min, KNOBS[i].max);
        exact &= clamped == folded.0[i];
        folded.0[i] = clamped;
    }
    (folded, exact)
}

fn db(gain: f32) -> f64 {
    20.0 * f64::from(gain).log10()
}

/// `afx transfer` on files: reads both, transfers, writes `output` (never over an input) and,
/// if asked, the knobs as the flat JSON `afx apply --params` reads; with the loudness of the
/// output and the reference.
pub fn transfer_files(
    net: &StyleNet,
    input: &Path,
    reference: &Path,
    output: &Path,
    params_out: Option<&Path>,
    format: WavFormat,
    refine_steps: usize,
) -> Result<(Transferred, Loudness)> {
    audio::ensure_output_distinct(output, &[input, reference])?;
    if let Some(params) = params_out {
        audio::ensure_output_distinct(params, &[input, reference, output])?;
    }
    let input_audio = read_checked(input)?;
    let reference_audio = read_checked(reference)?;
    let name = |path: &Path, e: Error| match e {
        Error::BadAudio { reason, .. } => Error::BadAudio { what: path.display().to_string(), reason },
        other => other,
    };
    let done = transfer(net, &input_audio, &reference_audio, refine_steps).map_err(|e| match &e {
        Error::BadAudio { what, .. } if what == "input" => name(input, e),
        Error::BadAudio { what, .. } if what == "reference" => name(reference, e),
        _ => e,
    })?;
    audio::write_wav(output, &done.output, format)?;
    if let Some(params) = params_out {
        let json = done.file_knobs.to_json();
        write_bytes_atomic(params, format!("{json}\n").as_bytes())
            .map_err(|e| Error::Invalid(format!("{}: cannot write the knobs: {e}", params.display())))?;
    }
    let loudness = |audio: &Audio, what| crate::metrics::integrated_loudness(&audio.channels, audio.sample_rate, what);
    let levels = Loudness { output: loudness(&done.output, "output")?, reference: loudness(&reference_audio, "reference")? };
    Ok((done, levels))
}

/// A recording's analysis copy: mono, at the network's rate, peak −12 dBFS, as in training.
fn analysis_copy(audio: &Audio) -> Result<Vec<f32>> {
    let mut mono = audio.to_mono();
    if mono.sample_rate != ANALYSIS_RATE_HZ {
        mono = audio::resample(&mono, ANALYSIS_RATE_HZ)?;
    }
    let mut samples = mono.channels.remove(0);
    normalize_peak(&mut [&mut samples], PEAK_DBFS);
    Ok(samples)
}

/// The gain that brings `audio`'s peak to [`PEAK_DBFS`] (1 for silence).
fn peak_gain(audio: &Audio) -> f32 {
    data::peak_gain(audio.channels.iter().map(Vec::as_slice), PEAK_DBFS)
}

fn scale(audio: &mut Audio, gain: f32) {
    audio.channels.iter_mut().flatten().for_each(|x| *x *= gain);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::render;
    use crate::example::groove;

    fn max_difference(a: &Audio, b: &Audio) -> f32 {
        a.channels.iter().flatten().zip(b.channels.iter().flatten()).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    /// Output at the input's rate, channel count and length; the knobs barely depend on the
    /// input's rate or channel count (the network hears a mono 24 kHz copy of the same music);
    /// the knobs reported for the file render the untouched input into the same output.
    #[test]
    fn any_rate_and_channel_count_and_the_file_knobs_reproduce_the_output() {
        let net = bundled_model().unwrap().net;
        let reference = groove(2.0, 48_000, 2, 7);
        let mut normalized_knobs = Vec::new();
        for rate in [16_000, 44_100, 96_000] {
            for channels in [1, 2] {
                let mut input = groove(3.0, rate, channels, 1);
                // A quieter recording: −10 dB from the groove's −3 dBFS peak.
                input.channels.iter_mut().flatten().for_each(|x| *x *= 10f32.powf(-10.0 / 20.0));
                let done = transfer(&net, &input, &reference, 0).unwrap();
                assert_eq!(done.output.sample_rate, rate);
                assert_eq!(done.output.num_channels(), channels);
                assert_eq!(done.output.frames(), input.frames());
                normalized_knobs.push(done.knobs.to_normalized());

                assert!(done.file_knobs_exact);
                let mut replay = input.clone();
                render(&mut replay, &done.file_knobs.chain_knobs()).unwrap();
                let peak = done.output.channels.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()));
                assert!(max_difference(&replay, &done.output) < 1e-4 * peak, "rate {rate}, {channels} ch");
            }
        }
        // [16k mono, 16k stereo, 44.1k mono, 44.1k stereo, 96k mono, 96k stereo]. The 16 kHz
        // groove has nothing above 8 kHz, so the network hears a darker recording there; from
        // 44.1 kHz up the analysis copy holds the same music.
        let difference =
            |a: usize, b: usize| normalized_knobs[a].iter().zip(&normalized_knobs[b]).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        for rate in 0..3 {
            assert!(difference(2 * rate, 2 * rate + 1) < 1e-3, "mono and stereo differ at rate {rate}");
        }
        assert!(difference(2, 4) < 0.1, "44.1 and 96 kHz knobs differ by {}", difference(2, 4));
    }

    /// A level-relative model: the output sits at the reference's K-weighted level plus the
    /// make-up knob, whatever the input's level, rate or channel count, and the file knobs
    /// still render the untouched input into the output.
    #[test]
    fn a_level_relative_model_puts_the_output_at_the_references_level() {
        use crate::fx::level::{OutputLevel, level_db};
        let net = bundled_model().unwrap().net.with_output_level(OutputLevel::Reference);
        let reference = groove(2.0, 48_000, 2, 7);
        let level = |audio: &Audio| {
            let channels: Vec<&[f32]> = audio.channels.iter().map(Vec::as_slice).collect();
            level_db(&channels, audio.sample_rate)
        };
        for (rate, channels) in [(44_100, 2), (16_000, 1)] {
            for gain_db in [0.0f32, -20.0] {
                let mut input = groove(3.0, rate, channels, 1);
                input.channels.iter_mut().flatten().for_each(|x| *x *= 10f32.powf(gain_db / 20.0));
                let done = transfer(&net, &input, &reference, 0).unwrap();
                let expected = level(&reference) + done.knobs.get("comp.makeup_db").unwrap();
                assert!((level(&done.output) - expected).abs() < 0.01, "{rate} Hz, {gain_db} dB: {} vs {expected}", level(&done.output));
                assert!(done.file_knobs_exact || gain_db < 0.0, "{rate} Hz: the file knobs were clamped");
                if done.file_knobs_exact {
                    let mut replay = input.clone();
                    render(&mut replay, &done.file_knobs.chain_knobs()).unwrap();
                    let peak = done.output.channels.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()));
                    assert!(max_difference(&replay, &done.output) < 1e-4 * peak, "{rate} Hz, {gain_db} dB");
                }
            }
        }
    }

    /// Refinement changes the knobs and brings the analysis copy of the input, rendered with
    /// them, closer to the reference's style than the network's knobs do.
    #[test]
    fn refinement_lowers_the_style_distance_of_the_analysis_copy() {
        use crate::spectral::{StyleDistance, StyleDistanceConfig};
        let net = bundled_model().unwrap().net;
        let (input, reference) = (groove(3.0, 44_100, 2, 1), groove(3.0, 48_000, 1, 9));
        let (plain, refined) = (transfer(&net, &input, &reference, 0).unwrap(), transfer(&net, &input, &reference, 15).unwrap());
        assert_ne!(plain.knobs, refined.knobs);
        let (input_copy, reference_copy) = (analysis_copy(&input).unwrap(), analysis_copy(&reference).unwrap());
        let fx = ChainFx::default_chain(ANALYSIS_RATE_HZ);
        let mut distance = StyleDistance::new(&reference_copy, ANALYSIS_RATE_HZ, &StyleDistanceConfig::at(ANALYSIS_RATE_HZ));
        let mut distance_with = |knobs: &Knobs| {
            let normalized: Vec<f32> = knobs.to_normalized().iter().map(|&v| v as f32).collect();
            distance.value(&fx.render_mono(&input_copy, &normalized))
        };
        let (before, after) = (distance_with(&plain.knobs), distance_with(&refined.knobs));
        assert!(after < before, "style distance {before} -> {after}");
    }

    #[test]
    fn folding_levels_matches_scaling_around_the_chain() {
        let input = groove(1.0, 44_100, 2, 3);
        let mut knobs = Knobs::default();
        knobs.set("comp.threshold_db", -30.0).unwrap();
        knobs.set("comp.ratio", 6.0).unwrap();
        let (input_gain_db, output_gain_db) = (7.5, -4.0);
        let mut scaled = input.clone();
        scale(&mut scaled, 10f32.powf(input_gain_db as f32 / 20.0));
        render(&mut scaled, &knobs.chain_knobs()).unwrap();
        scale(&mut scaled, 10f32.powf(output_gain_db as f32 / 20.0));
        let (folded, exact) = fold_levels(&knobs, input_gain_db, output_gain_db);
        assert!(exact);
        let mut direct = input.clone();
        render(&mut direct, &folded.chain_knobs()).unwrap();
        assert!(max_difference(&direct, &scaled) < 1e-5, "{}", max_difference(&direct, &scaled));
        let (clamped, exact) = fold_levels(&knobs, -60.0, 0.0);
        assert!(!exact);
        clamped.validate().unwrap();
    }

    #[test]
    fn bad_audio_is_refused_with_a_reason() {
        let net = bundled_model().unwrap().net;
        let good = groove(1.0, 44_100, 2, 1);
        let check = |input: Audio, needle: &str| {
            let error = transfer(&net, &input, &good, 0).unwrap_err().to_string();
            assert!(error.contains(needle), "{error:?} lacks {needle:?}");
        };
        let mut nan = good.clone();
        nan.channels[1][100] = f32::NAN;
        check(nan, "non-finite");
        check(Audio { sample_rate: 44_100, channels: vec![vec![0.0; 44_100]] }, "silent");
        check(groove(1.0, 8_000, 1, 1), "8000 Hz");
        let mut three = good.clone();
        three.channels.push(three.channels[0].clone());
        check(three, "3 channels");
        let error = transfer(&net, &good, &Audio { sample_rate: 44_100, channels: vec![vec![0.0; 10]] }, 0).unwrap_err();
        assert!(error.to_string().starts_with("reference"), "{error}");
    }

    /// The warning speaks for a silent output and for one more than 20 LU below its reference,
    /// and only then.
    #[test]
    fn a_silent_or_far_too_quiet_output_is_warned_about() {
        let warning = |output, reference| Loudness { output, reference }.warning();
        assert!(warning(None, Some(-20.0)).is_some_and(|w| w.contains("silent")));
        assert!(warning(Some(-45.0), Some(-20.0)).is_some_and(|w| w.contains("25.0 LU quieter")));
        for (output, reference) in [(Some(-39.0), Some(-20.0)), (Some(-10.0), Some(-20.0)), (Some(-30.0), None)] {
            assert_eq!(warning(output, reference), None, "{output:?} against {reference:?}");
        }
    }
}
