//! Evaluation (`afx eval`): the DeepAFx-ST synthetic protocol on held-out files.
//!
//! Test split of the audio folders (files never seen in training or validation) → pairs made
//! exactly as for training (input = corrupt(A), reference = style(B), target = style(A)) with
//! random or named styles → each row's output for the input → every metric against the target,
//! averaged over the pairs. Rows:
//! - **Input**: the corrupted input unprocessed, the level to beat;
//! - **Reference (as is)**: the reference itself taken as the output. Its content differs from
//!   the target's (the other half of the clip), so its MR-STFT and mel distance say little, but
//!   its loudness, RMS and centroid errors measure the gap that content alone opens between two
//!   halves of one style: a controller that copied the reference's level and spectrum exactly
//!   would make errors of about this size;
//! - **RB-DSP**: the rule-based baseline ([`baseline::rb_dsp`]: FIR spectrum match and a
//!   compressor threshold search on loudness);
//! - each **model**: its knobs for (input, reference), rendered through the chain; for a cTCN,
//!   its own TCN's output;
//! - **model through the proxies** (with `proxies`, for the candidates that ask for it): the
//!   model's knobs rendered by the neural proxies instead of the chain, DeepAFx-ST's NP row (its
//!   NP-HH row is the model's own row, which always renders with the real chain);
//! - **model + refinement** (with `refine_steps`, for the candidates that ask for it): the
//!   model's knobs refined on the style distance to the reference ([`refine::refine`], no
//!   ground truth involved);
//! - **model, same-content reference** (with `same_content`): the model's knobs when its
//!   reference is the target itself, i.e. a reference with the input's own content. Not a
//!   result (the target is the answer), but the controller's error with the content gap
//!   between the halves taken away; beside the model's own row it shows how much of the error
//!   that gap causes;
//! - **Style knobs**: the target style's own knobs applied to the input (not the right answer,
//!   since the corruption lies between input and target, but the "true knobs");
//! - **Oracle**: knobs fitted to each pair's target directly by Adam with exact gradients,
//!   starting from the style knobs: what the chain can do when the answer is known, a bound
//!   for any controller.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::data::{self, Corpus, InputCorruption, Making, Pair, PairConfig, PairGenerator, Split, Style, StyleChoice, TargetChain};
use crate::fx::level::OutputLevel;
use crate::fx::{ChainKnobs, ChainSpec, Controls, Knobs};
use crate::grad::{ChainFx, Channels, Render, finish_mono};
use crate::metrics::{self, Metrics};
use crate::model::file::AnyModel;
use crate::model::{LogMel, ModelCard, Proxy, ProxyChain, StyleNet};
use crate::spectral::{MrStftBatch, MrStftConfig};
use crate::train::EstimatorKind;
use crate::{Error, Result, baseline, refine};

/// The rate of the pairs (the corpus's).
const RATE_HZ: u32 = 24_000;

/// Which target styles the pairs get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum StyleSet {
    /// A random setting of the chain per pair (as in training).
    Random,
    /// The five named styles in turn.
    Named,
}

/// How an evaluation runs.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub data: Vec<PathBuf>,
    pub styles: StyleSet,
    pub pairs: usize,
    /// Clip length L, frames at 24 kHz.
    pub half_frames: usize,
    /// The reference's length in frames at 24 kHz, when not L (DeepAFx-ST's protocol): how
    /// much a longer recording of the style helps.
    pub reference_frames: Option<usize>,
    /// What the input's corruption may do.
    pub corruption: InputCorruption,
    pub seed: u64,
    /// Adam steps of the oracle fit per pair (0: no oracle row).
    pub oracle_steps: usize,
    /// The chain the oracle fits (its start: the style's knobs that this chain also has, the
    /// others at their defaults).
    pub oracle_chain: ChainSpec,
    /// Steps of inference-time refinement for an extra row per model (0: no such rows).
    pub refine_steps: usize,
    /// Proxy files in chain order (none: no such rows), for an extra row rendered through
    /// them per candidate that asks for one ([`Candidate::through_proxies`]); their chains,
    /// concatenated, must be the candidate's.
    pub proxies: Vec<PathBuf>,
    /// Also a row per model whose reference is the target itself (see the module doc).
    pub same_content: bool,
    /// The files the pairs come from: the test split, or, to measure how much better a model
    /// does on what it was trained on (its generalisation gap), the training or validation split.
    pub split: Split,
    /// Pairs made by a chain the user names (emulation, mastering) instead of afx's styles.
    pub target: Option<TargetChain>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            data: Vec::new(),
            styles: StyleSet::Random,
            pairs: 100,
            half_frames: data::pairs::DEFAULT_HALF_FRAMES,
            reference_frames: None,
            corruption: InputCorruption::EqAndCompressor,
            seed: 42,
            oracle_steps: 100,
            oracle_chain: ChainSpec::default(),
            refine_steps: 0,
            proxies: Vec::new(),
            same_content: false,
            split: Split::Test,
            target: None,
        }
    }
}

/// `afx eval`'s options.
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Model files to evaluate (repeatable); `bundled` names the model inside afx, `untrained` a
    /// freshly initialised network.
    #[arg(long = "model", default_value = "bundled")]
    pub models: Vec<String>,
    /// Folders (or files) of audio; only their test split (10 % of files, never used in
    /// training) is used.
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = StyleSet::Random)]
    pub styles: StyleSet,
    /// The input's corruption: afx's (a random EQ and compressor) or DeepAFx-ST's own (an
    /// EQ in three pairs of four, never a compressor), to compare with its published figures.
    #[arg(long, value_enum, default_value_t = InputCorruption::EqAndCompressor)]
    pub corruption: InputCorruption,
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Adam steps of the oracle's per-pair knob fit (0 leaves the oracle out): exact gradients
    /// through afx's effects, a direct search (SPSA on the loss) through a chain with plugins.
    #[arg(long, default_value_t = 100)]
    pub oracle_steps: usize,
    /// The chain of the oracle's fit and of `--model untrained` (default `eq,comp`, the
    /// chain the target styles are made with); a trained model renders its own chain.
    #[arg(long)]
    pub chain: Option<String>,
    /// Also evaluate the first model with this many steps of inference-time refinement (as
    /// `afx transfer --refine`); 0 leaves that row out.
    #[arg(long, default_value_t = 0)]
    pub refine: usize,
    /// Also render the knobs of each model trained through proxies (`--estimator proxy`)
    /// through these neural proxies, in chain order (repeatable; their chains together
    /// must be the model's): its NP row (its own row, with the real chain, is NP-HH).
    #[arg(long = "proxy", value_name = "FILE")]
    pub proxies: Vec<PathBuf>,
    #[command(flatten)]
    pub old_proxies: crate::train::OldProxyArgs,
    /// Also a row per model whose reference is the target itself (a reference with the
    /// input's content): the controller's error without the content gap between the halves.
    #[arg(long)]
    pub same_content: bool,
    /// The reference's length in frames at 24 kHz (default: the clip length, 131072, as in
    /// DeepAFx-ST): a longer reference is more of the same recording beside the input.
    #[arg(long, value_parser = clap::value_parser!(u64).range(4096..))]
    pub reference_frames: Option<u64>,
    /// The files the pairs come from. Results are the test split's; the training split
    /// (files the model learned from) measures its generalisation gap.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub target: crate::data::target::TargetArgs,
    /// Also write the markdown table to this file.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Print JSON instead of the markdown table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "cli")]
impl EvalArgs {
    /// `afx eval`: evaluates the named models and writes the report to `out` (markdown or
    /// JSON) and, with `--table`, the markdown to its file.
    pub fn run(&self, out: &mut impl std::io::Write) -> Result<()> {
        let chain: ChainSpec = self.chain.as_deref().map(str::parse).transpose()?.unwrap_or_default();
        let loaded = load_named_models(&self.models, &chain)?;
        let config = EvalConfig {
            oracle_chain: chain,
            data: self.data.clone(),
            styles: self.styles,
            pairs: self.pairs,
            oracle_steps: self.oracle_steps,
            refine_steps: self.refine,
            proxies: self.old_proxies.files(&self.proxies),
            same_content: self.same_content,
            reference_frames: self.reference_frames.map(|r| r as usize),
            corruption: self.corruption,
            split: self.split,
            seed: self.seed,
            target: self.target.target()?,
            ..EvalConfig::default()
        };
        let report = evaluate(&config, &candidates(&self.models, &loaded))?;
        write_report(out, &report, &report.markdown(), self.json, self.table.as_deref())
    }
}

/// Writes a report to `out`, as JSON or as its markdown table, and the table to `table` if given.
#[cfg(feature = "cli")]
pub fn write_report(
    out: &mut impl std::io::Write,
    report: &impl Serialize,
    markdown: &str,
    json: bool,
    table: Option<&std::path::Path>,
) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report).expect("report serialises"))?;
    } else {
        write!(out, "{markdown}")?;
    }
    if let Some(path) = table {
        crate::atomic::write_bytes_atomic(path, markdown.as_bytes())?;
    }
    Ok(())
}

/// One row of the table: metric means over the pairs.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub metrics: Metrics,
    /// Mean seconds per pair to choose the knobs and render (the model's features and forward
    /// pass included; 0 for rows that do no work).
    pub seconds_per_example: f64,
    /// With named styles: the metric means of each style's pairs.
    pub by_style: Vec<(String, Metrics)>,
    /// The model's training cost, where known.
    pub training: Option<TrainingCost>,
    /// Outputs silent to BS.1770 (no 400 ms block above −70 LUFS), measured with their loudness
    /// taken as −70 LUFS, so that the row's loudness error is a lower bound
    /// ([`metrics::compare_floored`]).
    pub silent_outputs: usize,
}

/// A finished evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub styles: StyleSet,
    pub pairs: usize,
    /// The split the pairs came from, its number of files and their duration.
    pub split: Split,
    pub files: usize,
    pub hours: f64,
    pub rows: Vec<Row>,
}

/// A named model to evaluate.
pub struct Candidate<'a> {
    pub name: String,
    pub net: &'a StyleNet,
    /// For a cTCN ([`crate::model::Ctcn`]): the TCN that replaces the chain, conditioned by
    /// `net`'s outputs. Such a model has no knobs, so it gets no proxy or refinement rows.
    pub tcn: Option<&'a Proxy>,
    /// Whether the model also gets a row rendered through [`EvalConfig::proxies`] (the NP row).
    pub through_proxies: bool,
    /// Whether the model also gets a row with [`EvalConfig::refine_steps`] of refinement.
    pub refine: bool,
    /// What training the model cost, from its model card.
    pub training: Option<TrainingCost>,
}

impl<'a> Candidate<'a> {
    /// A knob-setting model with every extra row and no training record.
    pub fn new(name: impl Into<String>, net: &'a StyleNet) -> Self {
        Candidate { name: name.into(), net, tcn: None, through_proxies: true, refine: true, training: None }
    }
}

/// Training steps and seconds, as a model card records them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TrainingCost {
    pub steps: u64,
    pub seconds: f64,
}

impl TrainingCost {
    /// The cost recorded in a model card written by `afx train`, if any.
    pub fn from_card(card: &ModelCard) -> Option<Self> {
        card.training.as_ref().map(|t| TrainingCost { steps: t.steps, seconds: t.seconds })
    }
}

/// The models named on the command line: `bundled` is the one inside afx, `untrained` a
/// freshly initialised network of `chain` (a control), anything else a model file.
pub fn load_named_models(names: &[String], chain: &ChainSpec) -> Result<Vec<AnyModel>> {
    names
        .iter()
        .map(|m| match m.as_str() {
            "bundled" => crate::transfer::bundled_model().map(AnyModel::Style),
            "untrained" => Ok(AnyModel::Style(crate::model::untrained(chain))),
            path => crate::model::file::load_any(&PathBuf::from(path)),
        })
        .collect()
}

/// Each loaded model named by its file stem, with its training cost. Rows through the proxies
/// go to models trained through them (NP), refinement rows to the first model only.
pub fn candidates<'a>(names: &[String], loaded: &'a [AnyModel]) -> Vec<Candidate<'a>> {
    names
        .iter()
        .zip(loaded)
        .enumerate()
        .map(|(i, (name, model))| {
            let name = PathBuf::from(name).file_stem().map_or(name.clone(), |s| s.to_string_lossy().into_owned());
            let (net, tcn, card) = match model {
                AnyModel::Style(m) => (&m.net, None, &m.card),
                AnyModel::Ctcn(m) => (&m.model.net, Some(&m.model.tcn), &m.card),
            };
            Candidate {
                tcn,
                through_proxies: matches!(card.estimator(), Some(EstimatorKind::Proxy | EstimatorKind::ProxyHalf)),
                refine: i == 0,
                training: TrainingCost::from_card(card),
                ..Candidate::new(name, net)
            }
        })
        .collect()
}

/// Runs the protocol for every candidate.
pub fn evaluate(config: &EvalConfig, candidates: &[Candidate]) -> Result<Report> {
    if config.pairs == 0 {
        return Err(Error::Setting { name: "pairs", value: "0".into(), expected: "at least 1".into() });
    }
    // The oracle's fit sets every knob of afx's effects and a plugin's continuous knobs.
    let oracle_fx = ChainFx::with_controls(config.oracle_chain.clone(), &Controls::parse(&config.oracle_chain, None, &[])?, RATE_HZ)?;
    let corpus = Corpus::from_roots(&config.data, &[config.split], "evaluation")?;
    let (files, hours) = (corpus.num_files(config.split), corpus.duration_s(config.split) / 3600.0);
    debug_assert_eq!(corpus.sample_rate(), RATE_HZ);
    let pairs = make_pairs(corpus, config)?;
    let styles: Vec<&str> = match config.styles {
        StyleSet::Random => Vec::new(),
        StyleSet::Named => Style::ALL.iter().map(|s| s.name()).collect(),
    };
    // The chain the target styles are made with (the style knobs' row renders it).
    let style_fx = ChainFx::default_chain(RATE_HZ);
    let proxies = (!config.proxies.is_empty()).then(|| ProxyChain::load(&config.proxies, RATE_HZ)).transpose()?;
    let extra = |c: &Candidate| {
        let knobs = c.tcn.is_none();
        usize::from(knobs && c.refine && config.refine_steps > 0) + usize::from(knobs && c.through_proxies && proxies.is_some())
    };
    let per_model = 1 + usize::from(config.same_content);
    let model_rows = per_model * candidates.len() + candidates.iter().map(extra).sum::<usize>();
    let style_rows = if config.target.is_none() { 4 } else { 3 };
    let progress = crate::progress::bar((model_rows + style_rows + usize::from(config.oracle_steps > 0)) as u64, "rows");

    let mut rows = vec![measure_row("Input", &pairs, &styles, pairs.iter().map(|p| (p.input.clone(), 0.0)).collect())?];
    progress.inc(1);
    let reference = pairs.iter().map(|p| (p.reference.clone(), 0.0)).collect();
    // Metrics truncate to the shorter signal: a longer reference is measured by its first L frames.
    let as_is = if config.reference_frames.is_some_and(|r| r != config.half_frames) {
        "Reference (as is, its first L frames)"
    } else {
        "Reference (as is)"
    };
    rows.push(measure_row(as_is, &pairs, &styles, reference)?);
    progress.inc(1);
    let rule_based: Vec<(Vec<f32>, f64)> = pairs
        .par_iter()
        .map(|p| {
            let start = Instant::now();
            let output = baseline::rb_dsp(&p.input, &p.reference, RATE_HZ)?;
            Ok((output, start.elapsed().as_secs_f64()))
        })
        .collect::<Result<_>>()?;
    rows.push(measure_row("RB-DSP", &pairs, &styles, rule_based)?);
    progress.inc(1);
    for candidate in candidates {
        let fx = candidate.net.config().fx(RATE_HZ);
        let mut front = LogMel::new(&candidate.net.config().features);
        let mut predict = |reference_of: fn(&Pair) -> &[f32]| -> Result<Vec<(Vec<f32>, f64)>> {
            pairs
                .iter()
                .map(|p| {
                    let start = Instant::now();
                    let input = front.compute(&p.input)?;
                    let reference = front.compute(reference_of(p))?;
                    let knobs = candidate.net.predict(&[input], &[reference]).remove(0);
                    Ok((knobs, start.elapsed().as_secs_f64()))
                })
                .collect()
        };
        let predicted = predict(|p| &p.reference)?;
        let same_content = if config.same_content { Some(predict(|p| &p.target)?) } else { None };
        let trained = |row: Row| Row { training: candidate.training, ..row };
        let level = candidate.net.config().output_level;
        // The model's output for each pair: its TCN's for a cTCN, else the chain's.
        let outputs = |knobs: &[(Vec<f32>, f64)], reference_of: fn(&Pair) -> &[f32]| match candidate.tcn {
            Some(tcn) => timed_tcn(tcn, &pairs, knobs),
            None => {
                let rendered = at_level(level, &fx, &pairs, knobs, reference_of, timed_renders(&fx, &pairs, knobs));
                fx.check().map(|()| rendered)
            }
        };
        rows.push(trained(measure_row(&candidate.name, &pairs, &styles, outputs(&predicted, |p| &p.reference)?)?));
        progress.inc(1);
        if let Some(knobs) = &same_content {
            let name = format!("{}, same-content reference", candidate.name);
            rows.push(trained(measure_row(&name, &pairs, &styles, outputs(knobs, |p| &p.target)?)?));
            progress.inc(1);
        }
        if candidate.tcn.is_some() {
            continue;
        }
        if let Some(proxies) = proxies.as_ref().filter(|_| candidate.through_proxies) {
            proxies.check_imitates(&candidate.net.config().chain)?;
            let outputs = at_level(level, &fx, &pairs, &predicted, |p| &p.reference, timed_renders(proxies, &pairs, &predicted));
            rows.push(trained(measure_row(&format!("{} (proxies)", candidate.name), &pairs, &styles, outputs)?));
            progress.inc(1);
        }
        if config.refine_steps > 0 && candidate.refine {
            let refined: Vec<(Vec<f32>, f64)> = pairs
                .par_iter()
                .zip(&predicted)
                .map(|(p, (knobs, seconds))| {
                    let start = Instant::now();
                    let knobs = refine::refine(&fx, &p.input, &p.reference, knobs, config.refine_steps, level);
                    (knobs, seconds + start.elapsed().as_secs_f64())
                })
                .collect();
            let outputs = at_level(level, &fx, &pairs, &refined, |p| &p.reference, timed_renders(&fx, &pairs, &refined));
            let name = format!("{} + refine {}", candidate.name, config.refine_steps);
            rows.push(trained(measure_row(&name, &pairs, &styles, outputs)?));
            progress.inc(1);
        }
    }
    if config.target.is_none() {
        let style_knobs =
            pairs.iter().map(|p| (normalized(p.afx_style().expect("evaluation pairs are made with afx's chain")), 0.0)).collect::<Vec<_>>();
        rows.push(measure_row("Style knobs", &pairs, &styles, timed_renders(&style_fx, &pairs, &style_knobs))?);
        progress.inc(1);
    }
    if config.oracle_steps > 0 {
        let fx = oracle_fx;
        let fitted: Vec<(Vec<f32>, f64)> = pairs
            .par_iter()
            .map(|p| {
                let start = Instant::now();
                let knobs = fit_knobs(&fx, p, config.oracle_steps);
                (knobs, start.elapsed().as_secs_f64())
            })
            .collect();
        let name =
            if fx.chain == style_fx.chain { "Oracle (fitted knobs)".to_string() } else { format!("Oracle (fitted knobs of {})", fx.chain) };
        let rendered = timed_renders(&fx, &pairs, &fitted);
        fx.check()?;
        rows.push(measure_row(&name, &pairs, &styles, rendered)?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(Report { styles: config.styles, pairs: pairs.len(), split: config.split, files, hours, rows })
}

/// The evaluation pairs: `config.pairs` of them from `config.split`; for named styles, the
/// styles in turn.
fn make_pairs(corpus: Corpus, config: &EvalConfig) -> Result<Vec<Pair>> {
    let styles: Vec<StyleChoice> = match config.styles {
        StyleSet::Random => vec![StyleChoice::Random],
        StyleSet::Named => Style::ALL.iter().map(|&s| StyleChoice::Named(s)).collect(),
    };
    let pair_config = PairConfig {
        half_frames: config.half_frames,
        reference_frames: config.reference_frames,
        corruption: config.corruption,
        target: config.target.clone(),
        ..PairConfig::default()
    };
    let generator = PairGenerator::new(corpus, pair_config)?;
    (0..config.pairs)
        .into_par_iter()
        .map(|i| generator.pair_with_style(config.split, i as u64, config.seed, styles[i % styles.len()]))
        .collect()
}

/// Each pair's input rendered by `fx` with its knobs, with the seconds the knobs took plus the
/// render's.
fn timed_renders(fx: &impl Render, pairs: &[Pair], knobs: &[(Vec<f32>, f64)]) -> Vec<(Vec<f32>, f64)> {
    pairs
        .iter()
        .zip(knobs)
        .map(|(p, (k, seconds))| {
            let start = Instant::now();
            let mut output = Channels::new();
            fx.render(std::slice::from_ref(&p.input), k, &mut output);
            (output.remove(0), seconds + start.elapsed().as_secs_f64())
        })
        .collect()
}

/// `outputs` (rendered with `knobs`) at the level a model with output level `level` gives
/// them against `reference_of` each pair, the time that takes added.
fn at_level(
    level: OutputLevel,
    fx: &ChainFx,
    pairs: &[Pair],
    knobs: &[(Vec<f32>, f64)],
    reference_of: fn(&Pair) -> &[f32],
    mut outputs: Vec<(Vec<f32>, f64)>,
) -> Vec<(Vec<f32>, f64)> {
    for ((output, seconds), (pair, (k, _))) in outputs.iter_mut().zip(pairs.iter().zip(knobs)) {
        let start = Instant::now();
        finish_mono(level, fx, output, reference_of(pair), k);
        *seconds += start.elapsed().as_secs_f64();
    }
    outputs
}

/// Each pair's input processed by a cTCN's TCN with the conditioning its network chose, with
/// the seconds the conditioning took plus the TCN's.
fn timed_tcn(tcn: &Proxy, pairs: &[Pair], conditioning: &[(Vec<f32>, f64)]) -> Result<Vec<(Vec<f32>, f64)>> {
    if tcn.config().sample_rate != RATE_HZ {
        return Err(Error::RateMismatch { what: "the cTCN runs", rate: tcn.config().sample_rate, expected: RATE_HZ });
    }
    Ok(pairs
        .iter()
        .zip(conditioning)
        .map(|(p, (c, seconds))| {
            let start = Instant::now();
            let output = tcn.process(&p.input, c);
            (output, seconds + start.elapsed().as_secs_f64())
        })
        .collect())
}

/// The mean of every metric of each pair's output against the pair's target, with the mean
/// time; with named styles also the means per style (pair `i` has style `i % styles.len()`).
fn measure_row(name: &str, pairs: &[Pair], styles: &[&str], outputs: Vec<(Vec<f32>, f64)>) -> Result<Row> {
    let measured: Vec<(Metrics, bool)> = pairs
        .par_iter()
        .zip(&outputs)
        .map(|(p, (estimate, _))| metrics::compare_floored(std::slice::from_ref(estimate), std::slice::from_ref(&p.target), RATE_HZ))
        .collect::<Result<_>>()?;
    let silent_outputs = measured.iter().filter(|(_, silent)| *silent).count();
    let each: Vec<Metrics> = measured.into_iter().map(|(m, _)| m).collect();
    let by_style =
        styles.iter().enumerate().map(|(k, &style)| (style.to_string(), mean(each.iter().skip(k).step_by(styles.len())))).collect();
    Ok(Row {
        name: name.into(),
        metrics: mean(each.iter()),
        seconds_per_example: outputs.iter().map(|(_, s)| s).sum::<f64>() / outputs.len() as f64,
        by_style,
        training: None,
        silent_outputs,
    })
}

/// Every metric's mean over `all`.
pub(crate) fn mean<'a>(all: impl Iterator<Item = &'a Metrics> + Clone) -> Metrics {
    let n = all.clone().count() as f64;
    let mean = |f: fn(&Metrics) -> f64| all.clone().map(f).sum::<f64>() / n;
    Metrics {
        mrstft: mean(|m| m.mrstft),
        mel_distance: mean(|m| m.mel_distance),
        centroid_error_hz: mean(|m| m.centroid_error_hz),
        rms_error_db: mean(|m| m.rms_error_db),
        crest_factor_error_db: mean(|m| m.crest_factor_error_db),
        loudness_error_lu: mean(|m| m.loudness_error_lu),
        loudness_bias_lu: mean(|m| m.loudness_bias_lu),
        centroid_bias_hz: mean(|m| m.centroid_bias_hz),
    }
}

fn normalized(knobs: &Knobs) -> Vec<f32> {
    knobs.to_normalized().iter().map(|&v| v as f32).collect()
}

/// The knobs fitted to the pair's own target: [`refine::descend`] on the training loss from the
/// style knobs (those `fx`'s chain has; the others at their defaults).
fn fit_knobs(fx: &ChainFx, pair: &Pair, steps: usize) -> Vec<f32> {
    let mut loss = MrStftBatch::<f32>::new(MrStftConfig::default());
    let target = pair.target.as_slice();
    let output_loss = |output: &[Vec<f32>]| {
        let mut grad = vec![0.0f32; output[0].len()];
        let value = loss.value_and_grad(&[output[0].as_slice()], &[target], &mut [grad.as_mut_slice()]);
        (value, vec![grad])
    };
    // From the knobs that made the target where the chain has them, the defaults elsewhere.
    let known = match &pair.making {
        Making::Afx { style, .. } => style.chain_knobs().carried_into(&fx.chain),
        Making::Chain { knobs } => knobs.carried_into(&fx.chain),
        Making::Foreign { .. } => ChainKnobs::defaults(fx.chain.clone()),
    };
    let whole: Vec<f32> = known.to_normalized().iter().map(|&v| v as f32).collect();
    let start = fx.selection.select(&whole);
    refine::descend(fx, std::slice::from_ref(&pair.input), &start, steps, None, output_loss).0
}

impl Report {
    /// The report as a markdown table, with each row's MR-STFT, loudness and centroid errors
    /// also as a ratio to the input's.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "{} pairs, {} styles, {} {} files ({:.2} h)\n\n\
             | | MR-STFT | mel dist. | centroid err. (Hz) | RMS err. (dB) | loudness err. (LU) | loudness bias (LU) | centroid bias (Hz) | s/example | MR-STFT ratio | loudness ratio | centroid ratio | train steps | train min | s/step |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            self.pairs,
            match self.styles {
                StyleSet::Random => "random",
                StyleSet::Named => "named",
            },
            self.files,
            self.split,
            self.hours
        );
        let input = &self.rows[0].metrics;
        for row in &self.rows {
            let m = &row.metrics;
            let training = row.training.map_or_else(
                || "| | | |".to_string(),
                |t| format!("| {} | {:.1} | {:.3} |", t.steps, t.seconds / 60.0, t.seconds / t.steps.max(1) as f64),
            );
            out.push_str(&format!(
                "| {} | {:.3} | {:.3} | {:.0} | {:.2} | {:.2} | {:+.2} | {:+.0} | {:.4} | {:.2} | {:.2} | {:.2} {training}\n",
                row.name,
                m.mrstft,
                m.mel_distance,
                m.centroid_error_hz,
                m.rms_error_db,
                m.loudness_error_lu,
                m.loudness_bias_lu,
                m.centroid_bias_hz,
                row.seconds_per_example,
                m.mrstft / input.mrstft,
                m.loudness_error_lu / input.loudness_error_lu,
                m.centroid_error_hz / input.centroid_error_hz,
            ));
        }
        for row in self.rows.iter().filter(|r| r.silent_outputs > 0) {
            out.push_str(&format!(
                "\n{}: {} of {} outputs silent (no 400 ms block above −70 LUFS); their loudness is counted as \
                 −70 LUFS, so the row's loudness error is a lower bound.\n",
                row.name, row.silent_outputs, self.pairs
            ));
        }
        if let Some(first) = self.rows.first().filter(|r| !r.by_style.is_empty()) {
            out.push_str("\nPer style: MR-STFT / loudness error (LU) / centroid error (Hz)\n\n|");
            for (style, _) in &first.by_style {
                out.push_str(&format!(" | {style}"));
            }
            out.push_str(" |\n|---|");
            out.push_str(&"---:|".repeat(first.by_style.len()));
            out.push('\n');
            for row in &self.rows {
                out.push_str(&format!("| {}", row.name));
                for (_, m) in &row.by_style {
                    out.push_str(&format!(" | {:.3} / {:.2} / {:.0}", m.mrstft, m.loudness_error_lu, m.centroid_error_hz));
                }
                out.push_str(" |\n");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_files::write_grooves;

    /// Forty generated one-second recordings at 24 kHz.
    fn grooves() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_grooves(dir.path(), 40, 1.0, 24_000, 900);
        dir
    }

    /// `pairs` pairs of half-clips long enough for the loudness meter (one 400 ms block).
    fn small_config(dir: &std::path::Path, pairs: usize) -> EvalConfig {
        EvalConfig { data: vec![dir.to_path_buf()], pairs, half_frames: 12_000, ..EvalConfig::default() }
    }

    /// The protocol on generated recordings: the rows come in order, the input is the unit of
    /// the ratios, the oracle fit beats the unprocessed input, and with named styles the five
    /// styles' means average to the overall mean (equal group sizes).
    #[test]
    fn evaluation_rows_and_per_style_means() {
        let dir = grooves();
        let model = crate::transfer::bundled_model().unwrap();
        let ctcn = crate::model::CtcnConfig {
            net: model.net.config().clone(),
            tcn: crate::model::ProxyConfig {
                channels: 2,
                kernel_size: 3,
                dilations: vec![1],
                ..crate::model::ProxyConfig::new(model.net.config().chain.clone())
            },
        }
        .init(&burn::prelude::Device::flex(), 4);
        let bundled = Candidate { training: Some(TrainingCost { steps: 300, seconds: 60.0 }), ..Candidate::new("bundled", &model.net) };
        let candidates = [bundled, Candidate { tcn: Some(&ctcn.tcn), ..Candidate::new("ctcn", &ctcn.net) }];
        // Tiny untrained proxies: the row exists and is measured, whatever its quality.
        let proxies = crate::model::proxy::test_support::write_tiny_proxies(dir.path(), &["eq", "comp"]);
        let config = EvalConfig { styles: StyleSet::Named, oracle_steps: 20, proxies, same_content: true, ..small_config(dir.path(), 10) };
        let report = evaluate(&config, &candidates).unwrap();
        let names: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
        let bundled = ["bundled", "bundled, same-content reference", "bundled (proxies)"];
        let ctcn = ["ctcn", "ctcn, same-content reference"];
        let expected = [&["Input", "Reference (as is)", "RB-DSP"][..], &bundled, &ctcn, &["Style knobs", "Oracle (fitted knobs)"]];
        assert_eq!(names, expected.concat());
        let (input, oracle) = (&report.rows[0], &report.rows[9]);
        // The reference row's loudness error, measured directly on the same pairs.
        let pairs = make_pairs(Corpus::from_roots(&config.data, &[Split::Test], "test").unwrap(), &config).unwrap();
        let lufs = |x: &[f32]| metrics::loudness_lufs(x, RATE_HZ, "clip").unwrap();
        let gap = pairs.iter().map(|p| (lufs(&p.reference) - lufs(&p.target)).abs()).sum::<f64>() / pairs.len() as f64;
        let reference = &report.rows[1].metrics;
        assert!((reference.loudness_error_lu - gap).abs() < 1e-9 * gap.max(1.0), "{} vs {gap}", reference.loudness_error_lu);
        // Another reference gives other knobs, so other errors.
        assert_ne!(report.rows[3].metrics.mrstft, report.rows[4].metrics.mrstft);
        // A fresh cTCN is the identity times the make-up gain its controller sets: its
        // spectral centroid error is the input's.
        let ctcn = &report.rows[6].metrics;
        assert!((ctcn.centroid_error_hz - input.metrics.centroid_error_hz).abs() < 1e-3 * input.metrics.centroid_error_hz.max(1.0));
        assert!(oracle.metrics.mrstft < input.metrics.mrstft, "{} vs {}", oracle.metrics.mrstft, input.metrics.mrstft);
        for row in &report.rows {
            assert_eq!(row.by_style.len(), 5);
            let average = row.by_style.iter().map(|(_, m)| m.mrstft).sum::<f64>() / 5.0;
            assert!((average - row.metrics.mrstft).abs() < 1e-9 * row.metrics.mrstft, "{}", row.name);
        }
        let table = report.markdown();
        assert!(table.contains("| Input | ") && table.contains("| 1.00 | 1.00 | 1.00 | | | |"), "{table}");
        // 300 steps in 60 s: 1.0 min, 0.2 s per step.
        assert!(table.contains("| 300 | 1.0 | 0.200 |"), "{table}");
        assert!(table.contains("| broadcast | telephone | neutral | bright | warm |"), "{table}");
    }

    /// The NP row refuses proxies whose chains, together, are not the model's chain.
    #[test]
    fn the_proxy_row_needs_proxies_of_the_models_chain() {
        let dir = tempfile::tempdir().unwrap();
        write_grooves(dir.path(), 20, 1.0, 24_000, 900);
        let model = crate::transfer::bundled_model().unwrap();
        let proxies = crate::model::proxy::test_support::write_tiny_proxies(dir.path(), &["eq", "limiter"]);
        let config = EvalConfig { oracle_steps: 0, proxies, ..small_config(dir.path(), 2) };
        let error = evaluate(&config, &[Candidate::new("bundled", &model.net)]).unwrap_err().to_string();
        assert_eq!(error, "the proxies imitate the chain `eq,limiter`, the network sets the chain `eq,comp`");
    }

    /// A silent output is counted and measured, not an error: its loudness is taken as the
    /// −70 LUFS gate's, so the row's loudness error is the mean of the others' errors and that
    /// floor's distance to its target, each measured here on its own; the table says so.
    #[test]
    fn a_silent_output_counts_against_its_row() {
        let dir = grooves();
        let config = small_config(dir.path(), 4);
        let pairs = make_pairs(Corpus::from_roots(&config.data, &[Split::Test], "test").unwrap(), &config).unwrap();
        let mut outputs: Vec<(Vec<f32>, f64)> = pairs.iter().map(|p| (p.input.clone(), 0.0)).collect();
        outputs[1].0.iter_mut().for_each(|v| *v *= 1e-5);
        let row = measure_row("quiet", &pairs, &[], outputs).unwrap();
        assert_eq!(row.silent_outputs, 1);
        let lufs = |x: &[f32]| metrics::loudness_lufs(x, RATE_HZ, "clip").unwrap();
        let errors: Vec<f64> = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| if i == 1 { lufs(&p.target) - metrics::ABSOLUTE_GATE_LUFS } else { (lufs(&p.input) - lufs(&p.target)).abs() })
            .collect();
        let expected = errors.iter().sum::<f64>() / 4.0;
        assert!((row.metrics.loudness_error_lu - expected).abs() < 1e-9 * expected, "{} vs {expected}", row.metrics.loudness_error_lu);
        let report = Report { styles: StyleSet::Random, pairs: 4, split: Split::Test, files: 4, hours: 0.0, rows: vec![row] };
        assert!(report.markdown().contains("quiet: 1 of 4 outputs silent"), "{}", report.markdown());
    }

    /// `--split`: the pairs come from the split asked for. The three splits' file counts add up
    /// to the files written, and the training split, the largest, gives other pairs.
    #[test]
    fn pairs_from_the_split_asked_for() {
        let dir = grooves();
        let model = crate::transfer::bundled_model().unwrap();
        let report = |split| {
            let config = EvalConfig { oracle_steps: 0, split, ..small_config(dir.path(), 3) };
            evaluate(&config, &[Candidate::new("bundled", &model.net)]).unwrap()
        };
        let [train, validation, test] = Split::ALL.map(report);
        assert_eq!(train.files + validation.files + test.files, 40);
        assert!(train.files > validation.files.max(test.files), "{} / {} / {}", train.files, validation.files, test.files);
        assert_eq!((train.split, test.split), (Split::Train, Split::Test));
        assert_ne!(train.rows[0].metrics.mrstft, test.rows[0].metrics.mrstft);
        assert!(train.markdown().contains(&format!("{} train files", train.files)), "{}", train.markdown());
    }

    /// A reference three times the input's length: the pairs carry it whole, and the reference
    /// row, which metrics truncate, is the loudness gap of its first L frames.
    #[test]
    fn a_longer_reference_and_the_row_that_says_what_it_measures() {
        let dir = grooves();
        let model = crate::transfer::bundled_model().unwrap();
        let config = EvalConfig { reference_frames: Some(36_000), oracle_steps: 0, ..small_config(dir.path(), 4) };
        let report = evaluate(&config, &[Candidate::new("bundled", &model.net)]).unwrap();
        let names: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Input", "Reference (as is, its first L frames)", "RB-DSP", "bundled", "Style knobs"]);
        let pairs = make_pairs(Corpus::from_roots(&config.data, &[Split::Test], "test").unwrap(), &config).unwrap();
        assert!(pairs.iter().all(|p| p.reference.len() == 36_000 && p.target.len() == 12_000));
        let lufs = |x: &[f32]| metrics::loudness_lufs(x, RATE_HZ, "clip").unwrap();
        let gap = pairs.iter().map(|p| (lufs(&p.reference[..12_000]) - lufs(&p.target)).abs()).sum::<f64>() / 4.0;
        let reference = &report.rows[1].metrics;
        assert!((reference.loudness_error_lu - gap).abs() < 1e-9 * gap.max(1.0), "{} vs {gap}", reference.loudness_error_lu);
    }
}
