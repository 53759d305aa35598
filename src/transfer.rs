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
//! That is `--mode model`, the network alone. The default, `--mode matched`, holds the
//! network to what the two recordings support ([`crate::matching`]): its EQ becomes the measured
//! tone difference plus its own EQ curve, both scaled by how related the recordings are; its
//! compressor is left flat; and instead of the level steps above, the output goes through a gain
//! to the reference's BS.1770 loudness and afx's limiter at −1 dBFS, which join the knobs.
//!
//! The chain may go on after the model's (`--chain eq,comp,limiter` for a model of `eq,comp`):
//! the effects after it, at their defaults unless set, process the output at its final level,
//! a mastering stage the network does not touch.
//!
//! The two level changes fold into the knobs ([`ChainKnobs::fold_levels`]): a gain `G` dB
//! before the chain is the same as lowering every level-referred knob (thresholds, a ceiling)
//! by `G` and raising the chain's output gain (the compressor's make-up) by `G`, and a gain
//! after it adds to that output gain. So the knobs reported for a file
//! ([`Transferred::file_knobs`]) render the untouched input into the same output with
//! `afx apply`, as long as they stay in range and the chain can take the gains.

use std::path::Path;
#[cfg(feature = "cli")]
use std::path::PathBuf;

use crate::apply::read_checked;
use crate::atomic::write_bytes_atomic;
use crate::audio::{self, Audio, WavFormat};
use crate::data::{self, PEAK_DBFS, normalize_peak};
use crate::fx::chain::StageKind;
use crate::fx::level::{OutputLevel, level_db};
use crate::fx::{ChainKnobs, ChainSpec, EffectKind};
use crate::model::{ANALYSIS_RATE_HZ, LoadedModel, LogMel, StyleNet};
use crate::{Error, Result, matching, refine};

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
    /// The knobs rendered, for the input at the analysis level (peak −12 dBFS): the network's
    /// (refined, if asked), in the rendering chain.
    pub knobs: ChainKnobs,
    /// The knobs for the file as it is, levels folded in (see the module doc), clamped to the
    /// knobs' ranges.
    pub file_knobs: ChainKnobs,
    /// What the tone measurement found ([`Mode::Matched`]).
    pub tone: Option<matching::ToneMatch>,
    /// The output's and the reference's loudness where the transfer measured both already
    /// ([`Mode::Matched`] without effects after the model's chain).
    pub loudness: Option<Loudness>,
    /// Whether `file_knobs` reproduce `output` from the input (nothing had to be clamped).
    pub file_knobs_exact: bool,
}

/// Predicts the knobs (of the network's chain) that give `input` the production style of
/// `reference`.
pub fn predict_knobs(net: &StyleNet, input: &Audio, reference: &Audio) -> Result<ChainKnobs> {
    let (input, reference) = (analysis_copy(input), analysis_copy(reference));
    Ok(to_knobs(net, &predict_normalized(net, &input?, &reference?)?))
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

/// The whole chain's physical knobs for the network's outputs (the knobs it does not set held).
fn to_knobs(net: &StyleNet, normalized: &[f32]) -> ChainKnobs {
    net.config().fx(ANALYSIS_RATE_HZ).knobs(normalized)
}

/// How the knobs and the level are decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Mode {
    /// The network's knobs held to what the recordings support ([`crate::matching`]): the EQ
    /// takes on the measured tone difference plus the network's EQ moves, both scaled by how
    /// related the recordings are; the compressor is left flat (ratio 1); the level is measured
    /// (gain to the reference's loudness, then afx's limiter at −1 dBFS).
    #[default]
    Matched,
    /// The network's EQ and compressor as it predicts them, with the measured tone difference,
    /// scaled by how related the recordings are, added to its EQ; the level measured as in
    /// `matched`. For networks trained to hold themselves on foreign pairs (`afx train
    /// --foreign`), which learned when a reference's tone is worth following.
    Learned,
    /// The network's knobs and level as it predicts them (DeepAFx-ST's system).
    Model,
}

impl Mode {
    /// Whether the mode measures the recordings: the tone match and the loudness stage.
    fn measures(self) -> bool {
        matches!(self, Mode::Matched | Mode::Learned)
    }
}

/// How a transfer runs beyond the model.
#[derive(Clone, Debug, Default)]
pub struct TransferOptions {
    /// Matched (the default), learned, or the network alone.
    pub mode: Mode,
    /// The whole chain: the model's, then effects that process its output at the output's
    /// level (default: the model's alone).
    pub chain: Option<ChainSpec>,
    /// `NAME=VALUE` assignments applied to the chosen knobs (of the whole chain) before
    /// rendering.
    pub set: Vec<String>,
    /// Steps of [`refine::refine`] on the analysis copies (0: none).
    pub refine_steps: usize,
}

/// `afx transfer`'s options.
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct TransferArgs {
    /// Recording to process (WAV, FLAC, OGG Vorbis or MP3; 16–96 kHz; mono or stereo).
    #[arg(long)]
    pub input: PathBuf,
    /// Recording whose style to take on (any length, rate and channel count as above).
    #[arg(long)]
    pub reference: PathBuf,
    /// Output WAV file, at the input's rate and channel count (never an input).
    #[arg(long)]
    pub output: PathBuf,
    /// Also save the chosen knobs as the flat JSON `afx apply --params` reads.
    #[arg(long)]
    pub params_out: Option<PathBuf>,
    /// A model file from `afx train` instead of the bundled model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output sample format.
    #[arg(long, value_enum, default_value_t = WavFormat::F32)]
    pub format: WavFormat,
    /// Print the knobs as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also draw the chosen EQ curve and compressor curve into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// How the knobs and the level are decided: `matched` holds the network's EQ to what the
    /// two recordings' measured tone supports and matches loudness by measurement; `learned`
    /// keeps the network's EQ and compressor, adds the held measured tone and matches loudness
    /// by measurement (for models trained with `afx train --foreign`); `model` renders the
    /// network's knobs and level as predicted.
    #[arg(long, value_enum, default_value_t = Mode::Matched)]
    pub mode: Mode,
    /// Refine the network's knobs by this many steps of exact-gradient descent on a style
    /// distance to the reference (average spectrum and dynamics; about 20 ms per step per
    /// minute of input).
    #[arg(long, default_value_t = 0)]
    pub refine: usize,
    /// The whole chain: the model's, then effects that process the output at its final
    /// level, e.g. `eq,comp,limiter` for the bundled model (at their defaults unless --set).
    #[arg(long)]
    pub chain: Option<String>,
    /// Set a knob after the model chose them, e.g. `--set limiter.ceiling_db=-1`
    /// (repeatable; overrides the model's value for its own knobs).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
}

#[cfg(feature = "cli")]
impl TransferArgs {
    /// `afx transfer`: transfers the files, writes the knobs to `out` (a table or JSON) and
    /// what was written, the loudness and any warning to `log`.
    pub fn run(&self, out: &mut impl std::io::Write, log: &mut impl std::io::Write) -> Result<()> {
        let options = TransferOptions {
            mode: self.mode,
            chain: self.chain.as_deref().map(str::parse).transpose()?,
            set: self.set.clone(),
            refine_steps: self.refine,
        };
        let model = match &self.model {
            Some(path) => crate::model::file::load(path)?,
            None => bundled_model()?,
        };
        let (done, loudness) =
            transfer_files(&model.net, &self.input, &self.reference, &self.output, self.params_out.as_deref(), self.format, &options)?;
        if self.json {
            writeln!(out, "{}", done.file_knobs.to_json())?;
        } else {
            for (k, v) in done.file_knobs.chain().knobs().iter().zip(done.file_knobs.values()) {
                writeln!(out, "{:<24} {:>10.2} {}", k.name, v, k.unit)?;
            }
            let lufs = |l: Option<f64>| l.map_or_else(|| "below −70 LUFS".to_string(), |l| format!("{l:.1} LUFS"));
            writeln!(log, "wrote {} (loudness {}; reference {})", self.output.display(), lufs(loudness.output), lufs(loudness.reference))?;
        }
        if let Some(tone) = &done.tone {
            writeln!(
                log,
                "tone: took on {:.0} % of the measured difference (fine-structure correlation {:.2}: {})",
                100.0 * tone.strength,
                tone.relatedness,
                if tone.relatedness > 0.3 { "the recordings look related" } else { "the recordings look unrelated" }
            )?;
        }
        if let Some(warning) = loudness.warning() {
            writeln!(log, "{warning}")?;
        }
        if let Some(path) = &self.plot {
            crate::curves::write_png(path, &done.file_knobs, done.output.sample_rate)?;
        }
        if !done.file_knobs_exact {
            writeln!(
                log,
                "note: the input's and reference's levels do not fold into these knobs (a level knob out of range, \
                 or no output gain in the chain); they differ from what was rendered in level"
            )?;
        }
        Ok(())
    }
}

/// The effects that `chain` adds after the model's chain, at their defaults; an error if
/// `chain` does not begin with the model's.
fn mastering(model_chain: &ChainSpec, chain: Option<&ChainSpec>) -> Result<Option<ChainKnobs>> {
    let Some(chain) = chain.filter(|c| *c != model_chain) else { return Ok(None) };
    let kinds = |c: &ChainSpec| c.stages().iter().map(|s| s.kind).collect::<Vec<_>>();
    let (model, whole) = (kinds(model_chain), kinds(chain));
    if !whole.starts_with(&model) {
        return Err(Error::ChainNotAfterModel { chain: chain.to_string(), model_chain: model_chain.to_string() });
    }
    Ok(Some(ChainKnobs::defaults(ChainSpec::of_stages(&chain.stages()[model.len()..])?)))
}

/// Style transfer in memory: the knobs (the network's in the rendering chain, then
/// `refine_steps` of [`refine::refine`] on the analysis copies), and the whole input rendered
/// with them at its own rate and channel count, at the reference's level.
pub fn transfer(net: &StyleNet, input: &Audio, reference: &Audio, options: &TransferOptions) -> Result<Transferred> {
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
    // The tone match needs neither the network nor the analysis copies: it runs beside them.
    let (tone, input_copy, reference_copy) = std::thread::scope(|scope| -> Result<_> {
        let side = scope.spawn(|| -> Result<_> {
            let tone = if options.mode.measures() {
                Some(matching::tone_match(input, reference, &matching::ToneConfig::default())?)
            } else {
                None
            };
            Ok((tone, analysis_copy(reference)?))
        });
        let input_copy = analysis_copy(input);
        let (tone, reference_copy) = side.join().expect("the tone match's thread")?;
        Ok((tone, input_copy?, reference_copy))
    })?;
    let mut mastering = mastering(&net.config().chain, options.chain.as_ref())?;
    let mut normalized = predict_normalized(net, &input_copy, &reference_copy)?;
    let level = net.config().output_level;
    if options.refine_steps > 0 {
        let fx = net.config().fx(ANALYSIS_RATE_HZ);
        normalized = refine::refine(&fx, &input_copy, &reference_copy, &normalized, options.refine_steps, level);
        fx.check()?;
    }
    let mut knobs = to_knobs(net, &normalized);
    if let Some(tone) = &tone {
        hold_to_measurement(&mut knobs, tone, f64::from(input.sample_rate), options.mode == Mode::Learned)?;
    }
    let model_stages = knobs.chain().stages().len();
    if !options.set.is_empty() {
        let mut whole = match &mastering {
            Some(m) => knobs.concat(m),
            None => knobs.clone(),
        };
        whole.apply_assignments(&options.set)?;
        (knobs, mastering) = whole.split_at(model_stages);
    }
    let input_gain = peak_gain(input);
    let mut output = input.clone();
    scale(&mut output, input_gain);
    // In f32 like training (twice the speed of `afx apply`'s f64 path; the two agree to ~1e-6).
    let mut views: Vec<&mut [f32]> = output.channels.iter_mut().map(|c| c.as_mut_slice()).collect();
    crate::fx::render(&knobs, output.sample_rate, &mut views)?;
    let mut loudness = None;
    let output_gain_db = match options.mode {
        // The level by measurement: a gain and a limiter after the model's chain.
        Mode::Matched | Mode::Learned => {
            let reference_lufs = crate::metrics::audible_loudness(&reference.channels, reference.sample_rate, "reference")?;
            let leveled = matching::loudness_stage(&mut output, reference_lufs)?;
            knobs = knobs.concat(&leveled.knobs);
            loudness = Some(Loudness { output: leveled.lufs, reference: Some(reference_lufs) });
            0.0
        }
        // Back to the reference's peak scale (the network learned the make-up gain on
        // peak-normalised clips), or for a level-relative model onto the reference's own level.
        Mode::Model => match level {
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
                let mut views: Vec<&mut [f32]> = output.channels.iter_mut().map(|c| c.as_mut_slice()).collect();
                20.0 * level.finish(&mut views, input.sample_rate, reference_db, knobs.output_gain_db()).log10()
            }
        },
    };
    let (mut file_knobs, file_knobs_exact) = knobs.fold_levels(db(input_gain), output_gain_db);
    if let Some(mastering) = mastering {
        // After the level: the effects added after the model's chain hear the output as it is.
        let mut views: Vec<&mut [f32]> = output.channels.iter_mut().map(|c| c.as_mut_slice()).collect();
        crate::fx::render(&mastering, output.sample_rate, &mut views)?;
        loudness = None;
        knobs = knobs.concat(&mastering);
        file_knobs = file_knobs.concat(&mastering);
    }
    Ok(Transferred { output, knobs, file_knobs, file_knobs_exact, tone, loudness })
}

/// [`Mode::Matched`]'s hold on the network's knobs: its EQ becomes the measured tone
/// difference plus its own moves, both scaled by the tone match's strength
/// ([`matching::ToneMatch::fit`]); its compressor is left flat (ratio 1, no make-up),
/// since on the real-use evaluation every compressor setting it chose made outputs further
/// from their targets (docs/results.md). With `learned` ([`Mode::Learned`]) the network's
/// own moves stand at full weight and its compressor as chosen (its make-up aside: the level
/// is measured after). Chains without an `eq` keep their EQ-less knobs.
fn hold_to_measurement(knobs: &mut ChainKnobs, tone: &matching::ToneMatch, sample_rate: f64, learned: bool) -> Result<()> {
    let stages = knobs.chain().stages().to_vec();
    for stage in stages {
        let range = stage.knobs();
        match stage.kind {
            StageKind::Effect(EffectKind::Eq) => {
                let mut network = ChainKnobs::defaults("eq".parse()?);
                network.values_mut().copy_from_slice(&knobs.values()[range.clone()]);
                let weight = if learned { 1.0 } else { tone.strength };
                let (held, _) = tone.fit(Some((&network, weight)), sample_rate)?;
                knobs.values_mut()[range].copy_from_slice(held.values());
            }
            StageKind::Effect(EffectKind::Comp) => {
                if !learned {
                    knobs.set(&format!("{}.ratio", stage.label), 1.0)?;
                }
                knobs.set(&format!("{}.makeup_db", stage.label), 0.0)?;
            }
            _ => {}
        }
    }
    Ok(())
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

fn db(gain: f32) -> f64 {
    20.0 * f64::from(gain).log10()
}

/// `afx transfer` on files: reads both, transfers, writes `output` (never over an input) and,
/// if asked, the knob file `afx apply --params` reads; with the loudness of the
/// output and the reference.
pub fn transfer_files(
    net: &StyleNet,
    input: &Path,
    reference: &Path,
    output: &Path,
    params_out: Option<&Path>,
    format: WavFormat,
    options: &TransferOptions,
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
    let done = transfer(net, &input_audio, &reference_audio, options).map_err(|e| match &e {
        Error::BadAudio { what, .. } if what == "input" => name(input, e),
        Error::BadAudio { what, .. } if what == "reference" => name(reference, e),
        _ => e,
    })?;
    audio::write_wav(output, &done.output, format)?;
    if let Some(params) = params_out {
        let json = done.file_knobs.to_json();
        write_bytes_atomic(params, format!("{json}\n").as_bytes())
            .map_err(|e| Error::WriteFile { path: params.to_path_buf(), reason: e.to_string() })?;
    }
    let loudness = |audio: &Audio, what| crate::metrics::integrated_loudness(&audio.channels, audio.sample_rate, what);
    let levels = match done.loudness {
        Some(levels) => levels,
        None => Loudness { output: loudness(&done.output, "output")?, reference: loudness(&reference_audio, "reference")? },
    };
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

    fn plain() -> TransferOptions {
        TransferOptions::default()
    }

    fn model_only() -> TransferOptions {
        TransferOptions { mode: Mode::Model, ..plain() }
    }

    fn max_difference(a: &Audio, b: &Audio) -> f32 {
        a.channels.iter().flatten().zip(b.channels.iter().flatten()).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    /// Output at the input's rate, channel count and length, at the reference's integrated
    /// loudness with no peak over −1 dBFS; the knobs reported for the file (the gain and limiter
    /// of the loudness stage included) render the untouched input into the same output; the
    /// network's knobs barely depend on the input's rate or channel count (it hears a mono
    /// 24 kHz copy of the same music).
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
                let done = transfer(&net, &input, &reference, &plain()).unwrap();
                assert_eq!(done.output.sample_rate, rate);
                assert_eq!(done.output.num_channels(), channels);
                assert_eq!(done.output.frames(), input.frames());
                let lufs = |a: &Audio| crate::metrics::audible_loudness(&a.channels, a.sample_rate, "test").unwrap();
                assert!((lufs(&done.output) - lufs(&reference)).abs() < 0.2, "{} vs {} LUFS", lufs(&done.output), lufs(&reference));
                let peak = done.output.channels.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()));
                assert!(peak <= 10f32.powf(-1.0 / 20.0) * (1.0 + 1e-5), "peak {peak}");
                normalized_knobs.push(transfer(&net, &input, &reference, &model_only()).unwrap().knobs.to_normalized());

                assert!(done.file_knobs_exact);
                let mut replay = input.clone();
                render(&mut replay, &done.file_knobs).unwrap();
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

    /// `learned` mode: the network's compressor as it chose it (its make-up aside: the level is
    /// measured) and its EQ at full weight, plus the measured difference held by the tone
    /// match's strength, where `matched` scales the network's EQ by that strength too: each
    /// chosen EQ's response is within the fit's error of the curve computed from the network's
    /// own EQ (`--mode model`) and the tone match.
    #[test]
    fn learned_mode_keeps_the_networks_moves_and_adds_the_held_difference() {
        let net = bundled_model().unwrap().net;
        // Noise as the reference: its spectrum shares no fine structure with the groove's.
        let noise = |seed| crate::data::test_files::noise(3 * 44_100, seed);
        let (input, reference) = (groove(3.0, 44_100, 2, 1), Audio { sample_rate: 44_100, channels: vec![noise(1), noise(2)] });
        let chosen = |mode| transfer(&net, &input, &reference, &TransferOptions { mode, ..plain() }).unwrap();
        let (model, learned, matched) = (chosen(Mode::Model), chosen(Mode::Learned), chosen(Mode::Matched));
        for name in ["comp.ratio", "comp.threshold_db", "comp.attack_ms", "comp.release_ms"] {
            assert_eq!(learned.knobs.get(name).unwrap(), model.knobs.get(name).unwrap(), "{name}");
        }
        assert_eq!(learned.knobs.get("comp.makeup_db").unwrap(), 0.0);
        assert_eq!(matched.knobs.get("comp.ratio").unwrap(), 1.0);
        let tone = learned.tone.as_ref().unwrap();
        assert!(tone.strength < 0.5, "noise and a groove look related: {}", tone.strength);
        let response = |done: &Transferred| crate::curves::response_db(&done.knobs.split_at(1).0, 44_100.0, &tone.centres_hz);
        let network = response(&model);
        for (done, weight) in [(&learned, 1.0), (&matched, tone.strength)] {
            let got = response(done);
            let rms = (got.iter().zip(&network).zip(&tone.curve_db).map(|((g, n), c)| (g - c - weight * n).powi(2)).sum::<f64>()
                / got.len() as f64)
                .sqrt();
            assert!(rms < 0.5, "weight {weight}: {rms} dB from the curve");
        }
        let moves = |r: &[f64]| r.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(moves(&response(&learned)) > moves(&response(&matched)), "the network's moves stand at full weight");
    }

    /// A level-relative model: the output sits at the reference's K-weighted level plus the
    /// make-up knob, whatever the input's level, rate or channel count, and the file knobs
    /// still render the untouched input into the output.
    #[test]
    fn a_level_relative_model_puts_the_output_at_the_references_level() {
        use crate::fx::level::{OutputLevel, level_db};
        let net = bundled_model().unwrap().net.with_output_level(OutputLevel::Reference);
        let plain = model_only;
        let reference = groove(2.0, 48_000, 2, 7);
        let level = |audio: &Audio| {
            let channels: Vec<&[f32]> = audio.channels.iter().map(Vec::as_slice).collect();
            level_db(&channels, audio.sample_rate)
        };
        for (rate, channels) in [(44_100, 2), (16_000, 1)] {
            for gain_db in [0.0f32, -20.0] {
                let mut input = groove(3.0, rate, channels, 1);
                input.channels.iter_mut().flatten().for_each(|x| *x *= 10f32.powf(gain_db / 20.0));
                let done = transfer(&net, &input, &reference, &plain()).unwrap();
                let expected = level(&reference) + done.knobs.get("comp.makeup_db").unwrap();
                assert!((level(&done.output) - expected).abs() < 0.01, "{rate} Hz, {gain_db} dB: {} vs {expected}", level(&done.output));
                assert!(done.file_knobs_exact || gain_db < 0.0, "{rate} Hz: the file knobs were clamped");
                if done.file_knobs_exact {
                    let mut replay = input.clone();
                    render(&mut replay, &done.file_knobs).unwrap();
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
        let plain = model_only;
        let (input, reference) = (groove(3.0, 44_100, 2, 1), groove(3.0, 48_000, 1, 9));
        let (plain, refined) = (
            transfer(&net, &input, &reference, &plain()).unwrap(),
            transfer(&net, &input, &reference, &TransferOptions { refine_steps: 15, ..plain() }).unwrap(),
        );
        assert_ne!(plain.knobs, refined.knobs);
        let (input_copy, reference_copy) = (analysis_copy(&input).unwrap(), analysis_copy(&reference).unwrap());
        let fx = crate::grad::ChainFx::default_chain(ANALYSIS_RATE_HZ);
        let mut distance = StyleDistance::new(&reference_copy, ANALYSIS_RATE_HZ, &StyleDistanceConfig::at(ANALYSIS_RATE_HZ));
        let mut distance_with = |knobs: &ChainKnobs| {
            let normalized: Vec<f32> = knobs.to_normalized().iter().map(|&v| v as f32).collect();
            distance.value(&fx.render_mono(&input_copy, &normalized))
        };
        let (before, after) = (distance_with(&plain.knobs), distance_with(&refined.knobs));
        assert!(after < before, "style distance {before} -> {after}");
    }

    /// Effects after the model's chain: the model's knobs are unchanged, the added limiter
    /// holds the output's peaks to its ceiling at the output's own level (set here to −3 dBFS),
    /// the file knobs reproduce the output, and a chain that does not begin with the model's is
    /// refused.
    #[test]
    fn effects_after_the_models_chain_process_the_output_at_its_level() {
        let net = bundled_model().unwrap().net;
        let plain = model_only;
        let (input, reference) = (groove(3.0, 44_100, 2, 1), groove(2.0, 48_000, 2, 7));
        let own = transfer(&net, &input, &reference, &plain()).unwrap();
        let chain: ChainSpec = "eq,comp,limiter".parse().unwrap();
        let options = TransferOptions { chain: Some(chain.clone()), set: vec!["limiter.ceiling_db=-3".into()], ..plain() };
        let limited = transfer(&net, &input, &reference, &options).unwrap();
        assert_eq!(limited.knobs.chain(), &chain);
        for knob in own.knobs.chain().knobs() {
            assert_eq!(limited.knobs.get(&knob.name).unwrap(), own.knobs.get(&knob.name).unwrap(), "{}", knob.name);
        }
        assert!(limited.file_knobs_exact);
        let mut replay = input.clone();
        render(&mut replay, &limited.file_knobs).unwrap();
        let peak = limited.output.channels.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()));
        assert!(max_difference(&replay, &limited.output) < 1e-4 * peak);
        let own_peak = own.output.channels.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()));
        let ceiling = 10f32.powf(-3.0 / 20.0);
        assert!(own_peak > ceiling, "the test needs an output that peaks above −3 dBFS ({own_peak})");
        assert!(peak <= ceiling * (1.0 + 1e-5), "peak {peak} over the ceiling {ceiling}");
        for wrong in ["eq,limiter", "limiter,eq,comp"] {
            let options = TransferOptions { chain: Some(wrong.parse().unwrap()), ..plain() };
            let error = transfer(&net, &input, &reference, &options).unwrap_err().to_string();
            assert!(error.contains("must begin with the model's chain `eq,comp`"), "{error}");
        }
    }

    #[test]
    fn bad_audio_is_refused_with_a_reason() {
        let net = bundled_model().unwrap().net;
        let good = groove(1.0, 44_100, 2, 1);
        let check = |input: Audio, needle: &str| {
            let error = transfer(&net, &input, &good, &plain()).unwrap_err().to_string();
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
        let error = transfer(&net, &good, &Audio { sample_rate: 44_100, channels: vec![vec![0.0; 10]] }, &plain()).unwrap_err();
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
