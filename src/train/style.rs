//! Training a style network through the real effect chain (`afx train`).
//!
//! Audio folders → [`Corpus`] (train and validation splits, decoded once) → [`PairGenerator`]
//! → seeded batches on a background [`Loader`] → log-mel features → [`Trainer`] predicts knobs
//! → the effect island renders, measures the MR-STFT + L1 loss and turns its gradient into knob
//! gradients with the chosen [`EstimatorKind`] → Adam. Every `validate_every` steps the network
//! is measured on a fixed set of validation pairs; every `checkpoint_every` steps the run folder
//! gets a checkpoint (network, Adam state, history), from which [`train`] resumes exactly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::run::{BudgetArgs, RunArgs};
use super::run::{RunConfig, RunState, Summary, Training, Validation, check_run_settings, run};
use crate::data::{BatchPlan, Corpus, InputCorruption, Loader, Pair, PairConfig, PairGenerator, Split, TargetChain};
use crate::fx::level::{OutputLevel, level_db};
use crate::fx::{ChainSpec, Controls};
use crate::grad::{
    ChainFx, Channels, Exact, Example, FiniteDiff, Levels, Mixed, ProxyFull, Spsa, chain_loss_and_grad, finish_mono,
    loss_and_knob_gradients,
};
use crate::model::card::{DataCard, SplitCard};
use crate::model::{
    self, CtcnConfig, CtcnTrainer, FeatureConfig, Features, LogMel, ModelCard, ProxyChain, StyleNetConfig, Trainer, TrainerConfig,
};
use crate::spectral::{MrStftBatch, MrStftConfig};
use crate::{Error, Result};

/// How the knob gradients are obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum EstimatorKind {
    /// The chain's hand-written adjoint.
    Exact,
    /// SPSA with [`TrainConfig::spsa_pairs`] perturbations of size [`TrainConfig::epsilon`].
    Spsa,
    /// For chains with LV2 plugins: the exact adjoint for the knobs after the last plugin, SPSA
    /// ([`TrainConfig::spsa_pairs`], [`TrainConfig::epsilon`]) for the rest
    /// ([`crate::grad::Mixed`]); on a chain without plugins, the exact adjoint.
    Mixed,
    /// Central differences, one knob at a time, step [`TrainConfig::epsilon`].
    // The names model cards record (`finite_diff`), and clap's kebab-case spelling.
    #[cfg_attr(feature = "cli", value(name = "finite_diff", alias = "finite-diff"))]
    FiniteDiff,
    /// NP: the loss of the proxies' output, differentiated through the proxies
    /// ([`TrainConfig::proxies`]).
    Proxy,
    /// NP-HH: trained as NP; the name records that the model is meant to run with the real
    /// chain (as every afx model does at inference).
    #[cfg_attr(feature = "cli", value(name = "proxy_half", alias = "proxy-half"))]
    ProxyHalf,
    /// NP-FH: the real chain's output and loss, the gradient through the proxies evaluated on
    /// the real signals ([`crate::grad::ProxyFull`]).
    #[cfg_attr(feature = "cli", value(name = "proxy_full", alias = "proxy-full"))]
    ProxyFull,
    /// Not an estimator: the cTCN baseline, where a TCN conditioned by the network replaces
    /// the chain and both are trained end to end on the output ([`crate::model::Ctcn`]). The
    /// result has no knobs.
    Ctcn,
}

impl EstimatorKind {
    pub fn name(self) -> &'static str {
        match self {
            EstimatorKind::Exact => "exact",
            EstimatorKind::Spsa => "spsa",
            EstimatorKind::Mixed => "mixed",
            EstimatorKind::FiniteDiff => "finite_diff",
            EstimatorKind::Proxy => "proxy",
            EstimatorKind::ProxyHalf => "proxy_half",
            EstimatorKind::ProxyFull => "proxy_full",
            EstimatorKind::Ctcn => "ctcn",
        }
    }

    /// Whether the estimator needs the neural proxies.
    pub fn uses_proxies(self) -> bool {
        matches!(self, EstimatorKind::Proxy | EstimatorKind::ProxyHalf | EstimatorKind::ProxyFull)
    }
}

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Folders (or files) of training audio; split by file into train/validation/test.
    pub data: Vec<PathBuf>,
    pub estimator: EstimatorKind,
    /// SPSA perturbations per example.
    pub spsa_pairs: usize,
    /// SPSA and finite-difference step in normalised knob units.
    pub epsilon: f32,
    pub steps: u64,
    pub batch_size: usize,
    /// Length L of input, reference and target, in frames at the 24 kHz training rate.
    pub half_frames: usize,
    /// Adam's step size, held for the first 80 % of the steps and then divided by 10.
    pub learning_rate: f64,
    pub grad_clip_norm: Option<f32>,
    /// Seeds the weights, the batches and the estimator.
    pub seed: u64,
    pub log_every: u64,
    pub validate_every: u64,
    pub validation_pairs: usize,
    pub checkpoint_every: u64,
    pub net: StyleNetConfig,
    /// Weight of the time-domain L1 term beside the MR-STFT (DeepAFx-ST's 100; runs saved
    /// without it used 100).
    #[serde(default = "default_l1_weight")]
    pub l1_weight: f64,
    /// Weight of a level term in the training loss, `weight · mean |L(output) − L(target)|`
    /// with `L` the K-weighted level in dB ([`Levels::loss_weight`]); 0 for none. The validation
    /// loss leaves it out, so it stays comparable across runs.
    #[serde(default)]
    pub level_weight: f64,
    /// What the inputs' corruption may do (runs saved without it used afx's EQ + compressor).
    #[serde(default)]
    pub corruption: InputCorruption,
    /// Speed augmentation of the training clips in cents, 0 for none
    /// ([`PairConfig::speed_cents`]).
    #[serde(default)]
    pub speed_cents: f64,
    /// Colour augmentation of the training clips, at most ± this many dB per band, 0 for none
    /// ([`PairConfig::colour_db`]).
    #[serde(default)]
    pub colour_db: f64,
    /// Mix augmentation: the probability that a training clip has another mixed into it, 0
    /// for none ([`PairConfig::mix`]).
    #[serde(default)]
    pub mix: f64,
    /// Foreign pairs ([`PairConfig::foreign`]): `Some(p)` makes corruptions and styles with
    /// foreign processors and takes the reference from another recording with probability `p`;
    /// `None` (and runs saved before it existed) for afx's own pairs.
    #[serde(default)]
    pub foreign: Option<f64>,
    /// Pairs made by a chain the user names (emulation, mastering: [`PairConfig::target`]);
    /// `None` for afx's styles.
    #[serde(default)]
    pub target: Option<TargetChain>,
    /// Dropout in the style network's controller ([`TrainerConfig::dropout`]), 0 for none; a
    /// cTCN run has none.
    #[serde(default)]
    pub dropout: f64,
    /// A model file whose weights the network starts from (fine-tuning); its shape must be
    /// `net`.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Proxy files (`afx proxy train`) in chain order, for the proxy estimators; their chains,
    /// concatenated, must be the network's (runs saved before held `eq_proxy`, `comp_proxy`:
    /// `upgrade_proxy_files`).
    #[serde(default)]
    pub proxies: Vec<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: Vec::new(),
            estimator: EstimatorKind::Exact,
            spsa_pairs: 1,
            epsilon: Spsa::default().epsilon,
            steps: 10_000,
            batch_size: 8,
            half_frames: 65_536,
            learning_rate: 3e-4,
            grad_clip_norm: Some(4.0),
            seed: 1,
            log_every: 25,
            validate_every: 500,
            validation_pairs: 48,
            checkpoint_every: 250,
            net: StyleNetConfig::default(),
            l1_weight: default_l1_weight(),
            level_weight: 0.0,
            corruption: InputCorruption::EqAndCompressor,
            speed_cents: 0.0,
            colour_db: 0.0,
            mix: 0.0,
            foreign: None,
            target: None,
            dropout: 0.0,
            init: None,
            proxies: Vec::new(),
        }
    }
}

fn default_l1_weight() -> f64 {
    MrStftConfig::default().l1_weight
}

impl TrainConfig {
    /// The training loss: MR-STFT + [`TrainConfig::l1_weight`]·L1.
    pub fn loss(&self) -> MrStftBatch<f32> {
        MrStftBatch::new(MrStftConfig { l1_weight: self.l1_weight, ..MrStftConfig::default() })
    }

    pub fn validate(&self) -> Result<()> {
        check_run_settings(
            &[
                ("steps", self.steps),
                ("batch_size", self.batch_size as u64),
                ("log_every", self.log_every),
                ("validate_every", self.validate_every),
                ("checkpoint_every", self.checkpoint_every),
                ("spsa_pairs", self.spsa_pairs as u64),
                ("validation_pairs", self.validation_pairs as u64),
            ],
            self.learning_rate,
        )?;
        let estimator = self.estimator.name();
        match (self.estimator.uses_proxies(), self.proxies.is_empty()) {
            (true, true) => return Err(Error::MissingProxies { estimator }),
            (false, false) => return Err(Error::UnusedProxies { estimator }),
            _ => {}
        }
        if !matches!(self.estimator, EstimatorKind::Spsa | EstimatorKind::Mixed | EstimatorKind::FiniteDiff) {
            self.net.chain.check_differentiable("train it with --estimator mixed, spsa or finite_diff")?;
        }
        if !self.net.controls.is_every() && (self.estimator.uses_proxies() || self.estimator == EstimatorKind::Ctcn) {
            return Err(Error::BadLearn {
                reason: format!(
                    "the estimator `{estimator}` sets every knob of its chain; --learn and --set need exact, spsa, finite_diff or mixed"
                ),
            });
        }
        if let Some(target) = &self.target {
            target.settings()?;
            if self.foreign.is_some() {
                return Err(Error::BadConfig {
                    what: "pair",
                    reason: "--target-chain and --foreign make pairs two ways; choose one".into(),
                });
            }
        }
        if self.estimator == EstimatorKind::Ctcn && self.init.is_some() {
            return Err(Error::CtcnSetting { setting: "init", reason: "starts a style network; a cTCN run starts fresh" });
        }
        let min = self.net.features.min_samples();
        if self.half_frames < min {
            return Err(Error::ClipTooShort { frames: self.half_frames, min });
        }
        let setting = |name, value: f64, expected: &str| Error::Setting { name, value: value.to_string(), expected: expected.into() };
        for (name, weight) in [("l1_weight", self.l1_weight), ("level_weight", self.level_weight)] {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(setting(name, weight, "a finite number of at least 0"));
            }
        }
        if !(0.0..=1.0).contains(&self.mix) {
            return Err(setting("mix", self.mix, "in [0, 1]"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(setting("dropout", self.dropout, "in [0, 1)"));
        }
        if self.estimator == EstimatorKind::Ctcn && self.dropout > 0.0 {
            return Err(Error::CtcnSetting { setting: "dropout", reason: "is for the style network's controller; a cTCN run has none" });
        }
        if !(self.epsilon > 0.0 && self.epsilon < 0.5) {
            return Err(setting("epsilon", f64::from(self.epsilon), "in (0, 0.5)"));
        }
        self.net.validate()
    }
}

/// Which knobs of its chain a run's network sets: `--learn` patterns and `--set` assignments
/// ([`Controls::parse`]).
#[derive(Clone, Debug, Default)]
pub struct KnobChoice {
    pub learn: Option<String>,
    pub set: Vec<String>,
}

/// The network a run trains: that of the initial model `init` (fine-tuning), else the one in
/// the JSON file `net_file` (a model file header's `config`), else the default; with `chain`,
/// `output_level` and the knobs to learn where given. An initial model's chain and learnt
/// knobs cannot change.
pub fn network_for(
    init: Option<&Path>,
    net_file: Option<&Path>,
    chain: Option<ChainSpec>,
    output_level: Option<OutputLevel>,
    knobs: &KnobChoice,
) -> Result<StyleNetConfig> {
    let chosen = knobs.learn.is_some() || !knobs.set.is_empty() || (chain.is_some() && init.is_none());
    let net = network_and_chain(init, net_file, chain, output_level)?;
    if !chosen {
        return Ok(net);
    }
    let controls = Controls::parse(&net.chain, knobs.learn.as_deref(), &knobs.set)?;
    if init.is_some() && controls != net.controls {
        return Err(Error::BadLearn { reason: "the initial model sets other knobs; fine-tuning keeps its --learn and --set".into() });
    }
    Ok(net.with_controls(controls))
}

fn network_and_chain(
    init: Option<&Path>,
    net_file: Option<&Path>,
    chain: Option<ChainSpec>,
    output_level: Option<OutputLevel>,
) -> Result<StyleNetConfig> {
    let net = match (init, net_file) {
        (Some(model), _) => model::file::load(model)?.net.config().clone(),
        (None, Some(path)) => {
            let fail = |reason: String| Error::NetConfigFile { path: path.to_path_buf(), reason };
            let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
            serde_json::from_str(&text).map_err(|e| fail(format!("not a network config: {e}")))?
        }
        (None, None) => StyleNetConfig::default(),
    };
    let net = StyleNetConfig { output_level: output_level.unwrap_or(net.output_level), ..net };
    match chain {
        Some(chain) if init.is_some() && chain != net.chain => {
            Err(Error::ChainMismatch { expected: net.chain.to_string(), got: chain.to_string() })
        }
        Some(chain) => Ok(net.with_chain(chain)),
        None => Ok(net),
    }
}

/// `afx train`'s options; unset ones take [`TrainConfig::default`]'s values.
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long, value_enum, default_value_t = EstimatorKind::Exact)]
    pub estimator: EstimatorKind,
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// SPSA perturbations per example.
    #[arg(long)]
    pub spsa_pairs: Option<usize>,
    /// SPSA / finite-difference step, normalised knob units.
    #[arg(long)]
    pub epsilon: Option<f32>,
    #[arg(long)]
    pub validate_every: Option<u64>,
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Validation pairs, measured every --validate-every steps.
    #[arg(long)]
    pub validation_pairs: Option<usize>,
    /// The network's shape as JSON (the `config` of a model file's header; see
    /// `StyleNetConfig`); default: the 398 k-parameter network.
    #[arg(long)]
    pub net: Option<PathBuf>,
    /// Start from this model file's weights (fine-tuning, e.g. with longer clips); its network
    /// shape replaces `--net`.
    #[arg(long, conflicts_with = "net")]
    pub init: Option<PathBuf>,
    /// The chain the network sets, e.g. `hpf,eq,comp,limiter` (`afx params --effects` lists the
    /// effects); default: that of --net / --init, else `eq,comp`. The target styles are made
    /// with `eq,comp` whatever the network's chain.
    #[arg(long)]
    pub chain: Option<String>,
    /// The knobs the network sets, as full names where `*` stands for any run of characters
    /// (`fil4.gain*,fil4.freq*,darc.*`; a pattern matches continuous knobs, a switch is learnt
    /// only when named in full); the others keep their defaults or a --set value.
    /// Default: every knob of afx's effects and every continuous knob of a plugin (its switches
    /// keep their defaults).
    #[arg(long)]
    pub learn: Option<String>,
    /// Holds a knob the network does not set at a value (NAME=VALUE, physical units;
    /// repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// How the output level is set: `absolute` (the make-up knob is a plain gain) or
    /// `reference` (the output is scaled to the reference's K-weighted level plus the make-up
    /// knob). Default: that of --net / --init, else absolute.
    #[arg(long, value_enum)]
    pub output_level: Option<OutputLevel>,
    /// Weight of the time-domain L1 term of the loss (MR-STFT + weight·L1); default 100, as
    /// DeepAFx-ST.
    #[arg(long)]
    pub l1_weight: Option<f64>,
    /// Weight of a level term in the loss: weight x mean |L(output) - L(target)|, K-weighted
    /// levels in dB; default 0 (none).
    #[arg(long)]
    pub level_weight: Option<f64>,
    /// The inputs' corruption: afx's (a random EQ and compressor; the default) or DeepAFx-ST's
    /// own (an EQ in three pairs of four, never a compressor).
    #[arg(long, value_enum)]
    pub corruption: Option<InputCorruption>,
    /// Speed augmentation: half the training clips are played faster or slower by up to this
    /// many cents (pitch and tempo together); default 0 (none). Validation pairs are never
    /// changed.
    #[arg(long, value_parser = parse_speed_cents)]
    pub speed_cents: Option<f64>,
    /// Colour augmentation: half the training clips are coloured as a whole (both halves
    /// alike) by random broad shelves and a broad band of up to ± this many dB; default 0
    /// (none). Validation pairs are never changed.
    #[arg(long, value_parser = parse_colour_db)]
    pub colour_db: Option<f64>,
    /// Mix augmentation: the probability, in [0, 1], that a training clip has a second one
    /// mixed into it (0 to 12 dB quieter, both halves alike); default 0 (none). Validation
    /// pairs are never changed.
    #[arg(long)]
    pub mix: Option<f64>,
    /// Foreign pairs, as a user meets them: corruptions and styles made by processors that are
    /// not afx's chain (FIR EQ, tilt, RMS compressor, tape, limiter; music or speech settings,
    /// speech for files under a folder named `speech`), and with this probability, in [0, 1],
    /// the reference taken from another recording of the same kind instead of the clip's other
    /// part. Default: afx's own pairs. Validation pairs are made the same way.
    #[arg(long, value_parser = parse_probability)]
    pub foreign: Option<f64>,
    #[command(flatten)]
    pub target: crate::data::target::TargetArgs,
    /// Dropout in the controller: the probability, in [0, 1), that each of its inputs and
    /// hidden units is dropped in a training step; default 0 (none).
    #[arg(long)]
    pub dropout: Option<f64>,
    /// A proxy file (`afx proxy train --chain C`), for the proxy estimators; repeatable, in
    /// chain order, their chains together the network's (e.g. `--proxy eq.afx --proxy comp.afx`).
    #[arg(long = "proxy", value_name = "FILE")]
    pub proxies: Vec<PathBuf>,
    #[command(flatten)]
    pub old_proxies: OldProxyArgs,
}

/// `--eq-proxy E --comp-proxy C`, the old spelling of `--proxy E --proxy C` (`afx train`,
/// `afx eval`).
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct OldProxyArgs {
    /// Old spelling of --proxy E --proxy C (with --comp-proxy C).
    #[arg(long, requires = "comp_proxy", conflicts_with = "proxies")]
    pub eq_proxy: Option<PathBuf>,
    /// Old spelling, with --eq-proxy.
    #[arg(long, requires = "eq_proxy", conflicts_with = "proxies")]
    pub comp_proxy: Option<PathBuf>,
}

#[cfg(feature = "cli")]
impl OldProxyArgs {
    /// The proxy files of `--proxy`, or of the old `--eq-proxy`, `--comp-proxy`.
    pub fn files(&self, proxies: &[PathBuf]) -> Vec<PathBuf> {
        self.eq_proxy.iter().chain(&self.comp_proxy).chain(proxies).cloned().collect()
    }
}

/// `--speed-cents`: 0 to 1200 (an octave either way).
#[cfg(feature = "cli")]
fn parse_speed_cents(text: &str) -> std::result::Result<f64, String> {
    parse_within(text, 1200.0, "cents")
}

/// `--colour-db`: 0 to 12 dB.
#[cfg(feature = "cli")]
fn parse_colour_db(text: &str) -> std::result::Result<f64, String> {
    parse_within(text, 12.0, "dB")
}

/// `--foreign`: a probability.
#[cfg(feature = "cli")]
fn parse_probability(text: &str) -> std::result::Result<f64, String> {
    parse_within(text, 1.0, "")
}

/// A number in `0..=max`.
#[cfg(feature = "cli")]
fn parse_within(text: &str, max: f64, unit: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=max).contains(&x) => Ok(x),
        Ok(x) => Err(format!("{x} is outside 0..={max} {unit}").trim_end().to_string()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

#[cfg(feature = "cli")]
impl TrainArgs {
    /// The run's configuration: the options given, [`TrainConfig::default`]'s for the others.
    pub fn config(&self) -> Result<TrainConfig> {
        let d = TrainConfig::default();
        let chain = self.chain.as_deref().map(str::parse).transpose()?;
        let knobs = KnobChoice { learn: self.learn.clone(), set: self.set.clone() };
        let net = network_for(self.init.as_deref(), self.net.as_deref(), chain, self.output_level, &knobs)?;
        Ok(TrainConfig {
            net,
            init: self.init.clone(),
            proxies: self.old_proxies.files(&self.proxies),
            data: self.run.data.clone(),
            estimator: self.estimator,
            spsa_pairs: self.spsa_pairs.unwrap_or(d.spsa_pairs),
            epsilon: self.epsilon.unwrap_or(d.epsilon),
            steps: self.budget.steps.unwrap_or(d.steps),
            batch_size: self.budget.batch_size.unwrap_or(d.batch_size),
            half_frames: self.budget.clip_frames.unwrap_or(d.half_frames),
            learning_rate: self.budget.learning_rate.unwrap_or(d.learning_rate),
            seed: self.budget.seed.unwrap_or(d.seed),
            validate_every: self.validate_every.unwrap_or(d.validate_every),
            checkpoint_every: self.checkpoint_every.unwrap_or(d.checkpoint_every),
            validation_pairs: self.validation_pairs.unwrap_or(d.validation_pairs),
            l1_weight: self.l1_weight.unwrap_or(d.l1_weight),
            level_weight: self.level_weight.unwrap_or(d.level_weight),
            corruption: self.corruption.unwrap_or(d.corruption),
            speed_cents: self.speed_cents.unwrap_or(d.speed_cents),
            colour_db: self.colour_db.unwrap_or(d.colour_db),
            mix: self.mix.unwrap_or(d.mix),
            foreign: self.foreign.or(d.foreign),
            target: self.target.target()?,
            dropout: self.dropout.unwrap_or(d.dropout),
            ..d
        })
    }

    /// `afx train`: trains (or resumes) the run and reports it to `out`.
    pub fn run(&self, out: &mut impl std::io::Write) -> Result<()> {
        let run_dir = self.run.run_dir();
        let summary = train(&self.config()?, &run_dir, &self.run.out, self.run.resume, self.budget.steps)?;
        Ok(writeln!(out, "{}", summary.line(&self.run.out, &run_dir, false))?)
    }
}

impl RunConfig for TrainConfig {
    super::run::schedule_from_fields!();

    fn check(&self) -> Result<()> {
        self.validate()
    }

    fn title(&self) -> String {
        "afx train".into()
    }

    fn upgrade_saved(saved: serde_json::Value) -> serde_json::Value {
        upgrade_proxy_files(saved)
    }
}

/// Trains a network and writes it to `out` (the weights with the best validation loss, with a
/// model card) through the one training loop ([`run`]); `run_dir` holds the checkpoint,
/// `log.csv`, `curves.png` and `best.afx`. With `resume`, the run in `run_dir` goes on from
/// its checkpoint (its saved configuration wins; `steps_override` may extend it).
pub fn train(config: &TrainConfig, run_dir: &Path, out: &Path, resume: bool, steps_override: Option<u64>) -> Result<Summary> {
    run::<StyleTraining>(config, run_dir, out, resume, steps_override)
}

/// A style network (any estimator) or a cTCN in training, with its data, effects and fixed
/// validation pairs.
struct StyleTraining {
    config: TrainConfig,
    learner: Learner,
    generator: Arc<PairGenerator>,
    loader: Loader,
    validation: ValidationSet,
    effects: Effects,
    loss: MrStftBatch<f32>,
}

impl Training for StyleTraining {
    type Config = TrainConfig;
    type Model = Learner;

    fn fresh(config: &TrainConfig) -> Result<Learner> {
        let trainer_config = TrainerConfig {
            learning_rate: config.learning_rate,
            grad_clip_norm: config.grad_clip_norm,
            seed: config.seed,
            dropout: config.dropout,
        };
        if config.estimator == EstimatorKind::Ctcn {
            return Ok(Learner::Ctcn(CtcnTrainer::new(&CtcnConfig::new(config.net.clone()), &trainer_config)));
        }
        let trainer = match &config.init {
            Some(path) => {
                let mut trainer = Trainer::from_model_file(path, &trainer_config)?;
                trainer.set_output_level(config.net.output_level);
                trainer
            }
            None => Trainer::new(&config.net, &trainer_config),
        };
        if trainer.model().config() != &config.net {
            let path = config.init.clone().unwrap_or_default();
            return Err(Error::InitMismatch { path });
        }
        Ok(Learner::Knobs(trainer))
    }

    fn resume(run_dir: &Path) -> Result<(Learner, serde_json::Value)> {
        if model::file::kind_of(&run_dir.join(model::trainer::CHECKPOINT_MODEL))? == model::file::Kind::Ctcn {
            let resumed = CtcnTrainer::resume(run_dir)?;
            Ok((Learner::Ctcn(resumed.trainer), resumed.state))
        } else {
            let resumed = Trainer::resume(run_dir)?;
            Ok((Learner::Knobs(resumed.trainer), resumed.state))
        }
    }

    fn open(config: &TrainConfig, learner: Learner, first_step: u64) -> Result<Self> {
        let generator = Arc::new(load_pairs(config)?);
        let validation = ValidationSet::new(&generator, config)?;
        let chain = config.net.fx(generator.corpus().sample_rate());
        let proxies = (!config.proxies.is_empty()).then(|| ProxyChain::load(&config.proxies, chain.sample_rate)).transpose()?;
        if let Some(proxies) = &proxies {
            proxies.check_imitates(&config.net.chain)?;
        }
        let plan = BatchPlan { split: Split::Train, batch_size: config.batch_size, seed: config.seed };
        let loader = Loader::spawn(Arc::clone(&generator), plan, first_step..config.steps, 2)?;
        let effects = Effects { chain, proxies };
        let mut loss = config.loss();
        if first_step == 0 {
            let start = validation.measure(&learner, &effects.chain, &mut loss);
            effects.chain.check()?;
            if let Some(warning) = starting_warning(&start, config.l1_weight) {
                eprintln!("{warning}");
            }
        }
        Ok(StyleTraining { config: config.clone(), learner, generator, loader, validation, effects, loss })
    }

    fn step(&mut self, step: u64, learning_rate: f64) -> Result<f64> {
        let batch = self.loader.next().ok_or(Error::LoaderStopped { step })??;
        debug_assert_eq!(batch.index, step, "the loader yields the batches in order");
        self.learner.set_learning_rate(learning_rate);
        train_step(&mut self.learner, &self.config, &self.effects, &mut self.loss, &batch.pairs, step)
    }

    fn validate(&mut self) -> Validation {
        self.validation.measure(&self.learner, &self.effects.chain, &mut self.loss)
    }

    // A render that failed during validation (a plugin's NaN) is reported before anything is
    // written: validation cannot fail, its renders keep the error for [`ChainFx::check`].
    fn save_checkpoint(&self, run_dir: &Path, state: &serde_json::Value) -> Result<()> {
        self.effects.chain.check()?;
        self.learner.save_checkpoint(run_dir, state)
    }

    fn save_model(&self, path: &Path, card: &ModelCard) -> Result<()> {
        self.effects.chain.check()?;
        self.learner.save_model(path, card)
    }

    fn card(&self, state: &RunState<TrainConfig>) -> ModelCard {
        model_card(state, &self.generator)
    }
}

/// A checkpoint's saved state with the proxy files of a run saved before
/// [`TrainConfig::proxies`] (its `eq_proxy` and `comp_proxy`) moved there, in that order.
fn upgrade_proxy_files(mut saved: serde_json::Value) -> serde_json::Value {
    if let Some(config) = saved.get_mut("config").and_then(serde_json::Value::as_object_mut) {
        let old: Vec<serde_json::Value> =
            ["eq_proxy", "comp_proxy"].iter().filter_map(|k| config.remove(*k)).filter(|p| !p.is_null()).collect();
        if !old.is_empty() && !config.contains_key("proxies") {
            config.insert("proxies".into(), old.into());
        }
    }
    saved
}

/// What a run trains: a knob-setting network (every estimator) or a cTCN.
// One per run: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Learner {
    Knobs(Trainer),
    Ctcn(CtcnTrainer),
}

impl Learner {
    fn set_learning_rate(&mut self, learning_rate: f64) {
        match self {
            Learner::Knobs(t) => t.set_learning_rate(learning_rate),
            Learner::Ctcn(t) => t.set_learning_rate(learning_rate),
        }
    }

    fn save_checkpoint(&self, dir: &Path, state: &serde_json::Value) -> Result<()> {
        match self {
            Learner::Knobs(t) => t.save_checkpoint(dir, state),
            Learner::Ctcn(t) => t.save_checkpoint(dir, state),
        }
    }

    /// Writes the current model (without the optimiser) to `path`.
    fn save_model(&self, path: &Path, card: &ModelCard) -> Result<()> {
        match self {
            Learner::Knobs(t) => model::file::save(path, &t.model(), card),
            Learner::Ctcn(t) => model::file::save_ctcn(path, &t.model(), card),
        }
    }

    /// The current model's output for each pair's input: the chain with the predicted knobs,
    /// or the cTCN's own output (in batches of [`CTCN_BATCH`] to bound memory).
    fn outputs(&self, fx: &ChainFx, pairs: &[Pair], input: &[Features], reference: &[Features]) -> Vec<Vec<f32>> {
        match self {
            Learner::Knobs(t) => {
                let knobs = t.predict(input, reference);
                let level = t.model().config().output_level;
                pairs.iter().zip(&knobs).map(|(pair, knobs)| render_for(fx, level, pair, knobs)).collect()
            }
            Learner::Ctcn(t) => (0..pairs.len())
                .step_by(CTCN_BATCH)
                .flat_map(|start| {
                    let range = start..(start + CTCN_BATCH).min(pairs.len());
                    let audio: Vec<Vec<f32>> = pairs[range.clone()].iter().map(|p| p.input.clone()).collect();
                    t.predict(&input[range.clone()], &reference[range], &audio)
                })
                .collect(),
        }
    }
}

/// Pairs per cTCN forward pass outside training.
const CTCN_BATCH: usize = 4;

/// The effects a training step renders through: the real chain, and the proxies for the proxy
/// estimators.
struct Effects {
    chain: ChainFx,
    proxies: Option<ProxyChain>,
}

/// One optimisation step on a batch; returns the batch's loss.
fn train_step(
    learner: &mut Learner,
    config: &TrainConfig,
    effects: &Effects,
    loss: &mut MrStftBatch<f32>,
    pairs: &[Pair],
    step: u64,
) -> Result<f64> {
    let (input_features, reference_features) = features_of(&config.net.features, pairs)?;
    let targets: Vec<Channels> = pairs.iter().map(|p| vec![p.target.clone()]).collect();
    let trainer = match learner {
        Learner::Knobs(trainer) => trainer,
        Learner::Ctcn(trainer) => {
            let audio: Vec<Vec<f32>> = pairs.iter().map(|p| p.input.clone()).collect();
            let targets: Vec<&[f32]> = pairs.iter().map(|p| p.target.as_slice()).collect();
            return trainer.step(&input_features, &reference_features, &audio, |outputs| loss.value_and_grads(outputs, &targets));
        }
    };
    let inputs: Vec<Channels> = pairs.iter().map(|p| vec![p.input.clone()]).collect();
    let levels = batch_levels(config, &effects.chain, pairs);
    let levels = levels.as_ref();
    let seed = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step;
    let loss = trainer.step(&input_features, &reference_features, |knobs| {
        let batch: Vec<Example> = inputs.iter().zip(knobs).map(|(input, knobs)| Example { input, knobs }).collect();
        let fx = &effects.chain;
        let proxies = || effects.proxies.as_ref().expect("validated: the proxy estimators have their proxies");
        let (value, _, grads) = match config.estimator {
            EstimatorKind::Exact => chain_loss_and_grad(fx, &batch, &targets, levels, loss),
            EstimatorKind::Proxy | EstimatorKind::ProxyHalf => {
                loss_and_knob_gradients(&Exact, proxies(), &batch, &targets, levels, loss, seed)
            }
            EstimatorKind::ProxyFull => {
                loss_and_knob_gradients(&ProxyFull { proxies: proxies() }, fx, &batch, &targets, levels, loss, seed)
            }
            EstimatorKind::Spsa => {
                let spsa = Spsa { pairs: config.spsa_pairs, epsilon: config.epsilon };
                loss_and_knob_gradients(&spsa, fx, &batch, &targets, levels, loss, seed)
            }
            EstimatorKind::Mixed => {
                let mixed = Mixed { spsa: Spsa { pairs: config.spsa_pairs, epsilon: config.epsilon } };
                loss_and_knob_gradients(&mixed, fx, &batch, &targets, levels, loss, seed)
            }
            EstimatorKind::FiniteDiff => {
                loss_and_knob_gradients(&FiniteDiff { epsilon: config.epsilon }, fx, &batch, &targets, levels, loss, seed)
            }
            EstimatorKind::Ctcn => unreachable!("a cTCN run has a cTCN learner"),
        };
        (value, grads)
    })?;
    effects.chain.check()?;
    Ok(loss)
}

/// How many times the unprocessed input's validation loss a fresh network may score before
/// [`starting_warning`] speaks.
const STARTING_LOSS_FACTOR: f64 = 3.0;

/// A warning when a fresh network's outputs score far worse than the unprocessed input on the
/// validation pairs ([`STARTING_LOSS_FACTOR`] times): a chain that cannot come near its target
/// at its starting knobs, most often an effect that turns the phase (a multiband compressor's
/// crossover) against the loss's waveform term, which then drives the knobs to the ends of their
/// ranges.
pub(crate) fn starting_warning(start: &Validation, l1_weight: f64) -> Option<String> {
    (start.loss > STARTING_LOSS_FACTOR * start.input_loss).then(|| {
        let advice = if l1_weight > 0.0 {
            "an effect that turns the phase (a multiband crossover) against the loss's waveform term? try --l1-weight 0"
        } else {
            "check the chain's held knobs (--set) and where its knobs start"
        };
        format!(
            "warning: at its starting knobs the chain scores {:.2} on the validation pairs against the unprocessed input's {:.2}; {advice}",
            start.loss, start.input_loss
        )
    })
}

/// A pair's input rendered through the chain with normalised `knobs`, its level set as
/// `level` says against the pair's reference.
fn render_for(fx: &ChainFx, level: OutputLevel, pair: &Pair, knobs: &[f32]) -> Vec<f32> {
    let mut out = fx.render_mono(&pair.input, knobs);
    finish_mono(level, fx, &mut out, &pair.reference, knobs);
    out
}

/// The level handling of a batch: for a level-relative network the level of every pair's
/// reference, and the loss's level term; none if neither applies.
fn batch_levels(config: &TrainConfig, fx: &ChainFx, pairs: &[Pair]) -> Option<Levels> {
    let relative = config.net.output_level == OutputLevel::Reference;
    (relative || config.level_weight > 0.0).then(|| {
        let reference_db = relative.then(|| pairs.iter().map(|p| level_db(&[&p.reference], fx.sample_rate)).collect());
        Levels::new(fx, reference_db, config.level_weight)
    })
}

/// The log-mel features of every pair's input and reference, computed in parallel.
fn features_of(config: &FeatureConfig, pairs: &[Pair]) -> Result<(Vec<Features>, Vec<Features>)> {
    let clips: Vec<&[f32]> = pairs.iter().map(|p| &p.input[..]).chain(pairs.iter().map(|p| &p.reference[..])).collect();
    let mut input = LogMel::compute_all(config, &clips)?;
    let reference = input.split_off(pairs.len());
    Ok((input, reference))
}

/// Scans the data folders and decodes the train and validation splits.
fn load_pairs(config: &TrainConfig) -> Result<PairGenerator> {
    let corpus = Corpus::from_roots(&config.data, &[Split::Train, Split::Validation], "training")?;
    PairGenerator::new(
        corpus,
        PairConfig {
            half_frames: config.half_frames,
            corruption: config.corruption,
            speed_cents: config.speed_cents,
            colour_db: config.colour_db,
            mix: config.mix,
            foreign: config.foreign,
            target: config.target.clone(),
            ..PairConfig::default()
        },
    )
}

/// A fixed set of validation pairs with their features, and the input's loss on them.
struct ValidationSet {
    pairs: Vec<Pair>,
    input_features: Vec<Features>,
    reference_features: Vec<Features>,
    input_loss: f64,
}

impl ValidationSet {
    fn new(generator: &PairGenerator, config: &TrainConfig) -> Result<ValidationSet> {
        let plan = BatchPlan { split: Split::Validation, batch_size: config.validation_pairs, seed: config.seed ^ 0x5A11 };
        let pairs = generator.batch(&plan, 0)?.pairs;
        let (input_features, reference_features) = features_of(&config.net.features, &pairs)?;
        let mut loss = config.loss();
        let inputs: Vec<Vec<f32>> = pairs.iter().map(|p| p.input.clone()).collect();
        let input_loss = mean_loss(&mut loss, &inputs, &pairs);
        Ok(ValidationSet { pairs, input_features, reference_features, input_loss })
    }

    fn measure(&self, learner: &Learner, fx: &ChainFx, loss: &mut MrStftBatch<f32>) -> Validation {
        let outputs = learner.outputs(fx, &self.pairs, &self.input_features, &self.reference_features);
        Validation { loss: mean_loss(loss, &outputs, &self.pairs), input_loss: self.input_loss }
    }
}

/// The mean MR-STFT + L1 loss of `estimates[i]` against pair `i`'s target.
fn mean_loss(loss: &mut MrStftBatch<f32>, estimates: &[Vec<f32>], pairs: &[Pair]) -> f64 {
    let views: Vec<&[f32]> = estimates.iter().map(|e| e.as_slice()).collect();
    let targets: Vec<&[f32]> = pairs.iter().map(|p| p.target.as_slice()).collect();
    loss.value(&views, &targets)
}

/// The model card of a run: what it was trained on, how, for how long, and how it did.
fn model_card(state: &RunState<TrainConfig>, generator: &PairGenerator) -> ModelCard {
    let corpus = generator.corpus();
    let split = |split: Split| SplitCard { files: corpus.num_files(split), hours: corpus.duration_s(split) / 3600.0 };
    ModelCard {
        data: Some(DataCard {
            roots: state.config.data.clone(),
            train: split(Split::Train),
            validation: split(Split::Validation),
            sample_rate_hz: corpus.sample_rate(),
        }),
        ..state.card(Some(state.config.estimator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_files::write_grooves;
    use crate::data::{ClipOrigin, Corruption, Making};
    use crate::example::groove;
    use crate::fx::params::default_chain;
    use crate::fx::{self, Knobs};
    use crate::model::file::AnyModel;
    use crate::train::run::{CURVES_PNG, LOG_CSV};

    /// The style every pair of the learning test is given: a clear tilt and level change that
    /// the loss can see.
    fn fixed_style() -> Knobs {
        let mut knobs = Knobs::default();
        knobs.apply_json(r#"{"eq.low_shelf.gain_db": -9, "eq.high_shelf.gain_db": 9, "comp.makeup_db": 6}"#).unwrap();
        knobs
    }

    /// Pairs whose target is exactly the fixed style applied to the input (no corruption), so
    /// the right knobs are known.
    fn styled_pairs(count: usize, seed: u64) -> Vec<Pair> {
        let style = fixed_style();
        (0..count as u64)
            .map(|i| {
                let clip = groove(1.0, 24_000, 1, seed * 100 + i).channels.remove(0);
                let (a, b) = clip.split_at(12_000);
                let styled = |x: &[f32]| {
                    let mut y = x.to_vec();
                    fx::render(&style.chain_knobs(), 24_000, &mut [&mut y]).unwrap();
                    y
                };
                Pair {
                    input: a.to_vec(),
                    reference: styled(b),
                    target: styled(a),
                    making: Making::Afx { style, corruption: Corruption { knobs: Knobs::default(), expander: None } },
                    colour: None,
                    mix: None,
                    origin: ClipOrigin {
                        recording: 0,
                        input_start: 0,
                        reference_recording: 0,
                        reference_start: 12_000,
                        played_at_hz: 24_000,
                    },
                }
            })
            .collect()
    }

    /// The chain's steady-state gain in dB for sine tones at a program level, at a few
    /// frequencies: what a setting does, independent of how the knobs express it (many
    /// settings give the same sound, e.g. a threshold above the signal makes ratio moot).
    fn tone_response_db(knobs: &Knobs) -> Vec<f64> {
        let rate = 24_000.0;
        [100.0, 300.0, 1000.0, 3000.0, 8000.0]
            .iter()
            .map(|&hz: &f64| {
                let tone: Vec<f32> = (0..12_000).map(|n| 0.3 * (std::f64::consts::TAU * hz * n as f64 / rate).sin() as f32).collect();
                let mut out = tone.clone();
                fx::render(&knobs.chain_knobs(), 24_000, &mut [&mut out]).unwrap();
                let rms = |x: &[f32]| (x[6_000..].iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / 6_000.0).sqrt();
                20.0 * (rms(&out) / rms(&tone)).log10()
            })
            .collect()
    }

    /// A short run through the real chain with exact gradients for a network with output
    /// level `level`: (held-out loss, error of the predicted tone responses in dB) before and
    /// after. For a level-relative network the responses are compared without their mean, since
    /// its make-up knob is an offset from the reference's level, not a gain.
    fn learn(level: OutputLevel) -> [(f64, f64); 2] {
        let net = StyleNetConfig { output_level: level, ..StyleNetConfig::default() };
        let config = TrainConfig { learning_rate: 1e-3, net, ..TrainConfig::default() };
        let trainer_config = TrainerConfig { learning_rate: config.learning_rate, grad_clip_norm: None, seed: 2, dropout: 0.0 };
        let mut learner = Learner::Knobs(Trainer::new(&config.net, &trainer_config));
        let fx = ChainFx::default_chain(24_000);
        let mut loss = MrStftBatch::<f32>::new(MrStftConfig::default());
        let train_pairs = styled_pairs(16, 1);
        let held_out = styled_pairs(6, 2);
        let (inputs, references) = features_of(&config.net.features, &held_out).unwrap();
        let shape = |mut r: Vec<f64>| {
            if level == OutputLevel::Reference {
                let mean = r.iter().sum::<f64>() / r.len() as f64;
                r.iter_mut().for_each(|v| *v -= mean);
            }
            r
        };
        let truth = shape(tone_response_db(&fixed_style()));
        let response_error = |learner: &Learner| {
            let Learner::Knobs(trainer) = learner else { unreachable!() };
            let predicted = trainer.predict(&inputs, &references);
            let total: f64 = predicted
                .iter()
                .flat_map(|p| {
                    let knobs = Knobs::from_normalized(&p.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
                    shape(tone_response_db(&knobs)).into_iter().zip(&truth).map(|(a, b)| (a - b).abs()).collect::<Vec<_>>()
                })
                .sum();
            total / (predicted.len() * truth.len()) as f64
        };
        let validation = ValidationSet {
            input_loss: 0.0,
            input_features: inputs.clone(),
            reference_features: references.clone(),
            pairs: held_out.clone(),
        };
        let before = (validation.measure(&learner, &fx, &mut loss).loss, response_error(&learner));
        for step in 0..40 {
            let batch = &train_pairs[(step as usize * 4) % 16..][..4];
            let effects = Effects { chain: fx.clone(), proxies: None };
            train_step(&mut learner, &config, &effects, &mut loss, batch, step).unwrap();
        }
        let after = (validation.measure(&learner, &fx, &mut loss).loss, response_error(&learner));
        eprintln!("{level:?}: loss {:.3} -> {:.3}, tone response error {:.2} -> {:.2} dB", before.0, after.0, before.1, after.1);
        [before, after]
    }

    /// The held-out loss falls and the predicted settings move toward the true one (measured
    /// by their tone responses), for either way of setting the output level.
    #[test]
    fn training_moves_the_knobs_toward_the_truth() {
        for level in [OutputLevel::Absolute, OutputLevel::Reference] {
            let [(loss_before, error_before), (loss_after, error_after)] = learn(level);
            assert!(loss_after < 0.5 * loss_before, "{level:?}: loss {loss_before} -> {loss_after}");
            assert!(error_after < 0.5 * error_before, "{level:?}: tone response error {error_before} -> {error_after} dB");
        }
    }

    /// `--l1-weight` sets the weight of the loss's time-domain term: the difference between
    /// two weights is that difference times the mean absolute sample error, computed directly.
    /// Negative or non-finite weights are refused, and so are dropout outside [0, 1) and a mix
    /// probability outside [0, 1].
    #[test]
    fn the_l1_weight_weighs_the_time_domain_term() {
        let (a, b) = (groove(1.0, 24_000, 1, 3).channels.remove(0), groove(1.0, 24_000, 1, 4).channels.remove(0));
        let value = |w: f64| TrainConfig { l1_weight: w, ..TrainConfig::default() }.loss().value(&[&a], &[&b]);
        let l1 = a.iter().zip(&b).map(|(x, y)| f64::from((x - y).abs())).sum::<f64>() / a.len() as f64;
        assert!(((value(10.0) - value(0.0)) - 10.0 * l1).abs() < 1e-4 * value(10.0));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(TrainConfig { l1_weight: bad, ..TrainConfig::default() }.validate().is_err());
            assert!(TrainConfig { dropout: bad.abs(), ..TrainConfig::default() }.validate().is_err());
            assert!(TrainConfig { mix: bad, ..TrainConfig::default() }.validate().is_err());
        }
    }

    /// Generated recordings in a folder: enough files that every split gets some.
    fn write_corpus(dir: &Path) {
        write_grooves(dir, 24, 1.5, 22_050, 500);
    }

    fn tiny_config(data: &Path) -> TrainConfig {
        TrainConfig {
            data: vec![data.to_path_buf()],
            steps: 4,
            batch_size: 2,
            half_frames: 8_192,
            log_every: 1,
            validate_every: 2,
            validation_pairs: 2,
            checkpoint_every: 2,
            ..TrainConfig::default()
        }
    }

    /// `corruption` reaches the pairs a run trains on, is kept in the saved config, and a
    /// config saved before it existed reads as afx's own corruption.
    #[test]
    fn the_corruption_setting_reaches_the_pairs_and_old_configs_keep_afxs() {
        let dir = tempfile::tempdir().unwrap();
        write_corpus(dir.path());
        let ratios = |corruption| {
            let generator = load_pairs(&TrainConfig { corruption, ..tiny_config(dir.path()) }).unwrap();
            (0..40)
                .map(|i| match generator.pair(Split::Train, i, 1).unwrap().making {
                    Making::Afx { corruption, .. } => corruption.knobs.0[default_chain::RATIO],
                    Making::Foreign { .. } | Making::Chain { .. } => unreachable!(),
                })
                .collect::<Vec<_>>()
        };
        assert!(ratios(InputCorruption::DeepAfxSt).iter().all(|&r| r == 1.0), "DeepAFx-ST's inputs are never compressed");
        assert!(ratios(InputCorruption::EqAndCompressor).iter().filter(|&&r| r > 1.0).count() > 20);

        let config = TrainConfig { corruption: InputCorruption::DeepAfxSt, ..tiny_config(dir.path()) };
        let mut saved = serde_json::to_value(&config).unwrap();
        assert_eq!(serde_json::from_value::<TrainConfig>(saved.clone()).unwrap().corruption, InputCorruption::DeepAfxSt);
        saved.as_object_mut().unwrap().remove("corruption");
        assert_eq!(serde_json::from_value::<TrainConfig>(saved).unwrap().corruption, InputCorruption::EqAndCompressor);
    }

    /// `speed_cents` and `colour_db` reach the training pairs (some are played at another rate,
    /// some coloured) and not the validation pairs, and a config saved before they existed
    /// reads as no augmentation.
    #[test]
    fn augmentation_reaches_the_training_pairs_only() {
        let dir = tempfile::tempdir().unwrap();
        write_corpus(dir.path());
        let config = TrainConfig { speed_cents: 200.0, colour_db: 6.0, mix: 0.5, ..tiny_config(dir.path()) };
        let generator = load_pairs(&config).unwrap();
        let pairs = |split| (0..20).map(|i| generator.pair(split, i, 1).unwrap()).collect::<Vec<_>>();
        let (train, validation) = (pairs(Split::Train), pairs(Split::Validation));
        assert!(train.iter().any(|p| p.origin.played_at_hz != 24_000) && train.iter().any(|p| p.colour.is_some()));
        assert!(train.iter().any(|p| p.mix.is_some()));
        assert!(validation.iter().all(|p| p.origin.played_at_hz == 24_000 && p.colour.is_none() && p.mix.is_none()));
        let mut saved = serde_json::to_value(&config).unwrap();
        saved.as_object_mut().unwrap().remove("speed_cents");
        saved.as_object_mut().unwrap().remove("colour_db");
        saved.as_object_mut().unwrap().remove("mix");
        let old = serde_json::from_value::<TrainConfig>(saved).unwrap();
        assert_eq!((old.speed_cents, old.colour_db, old.mix), (0.0, 0.0, 0.0));
    }

    /// The proxy estimators train through proxy files (tiny untrained proxies here: the
    /// wiring, not the quality), and refuse to run without them.
    #[test]
    fn proxy_estimators_train_through_proxy_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("audio");
        write_corpus(&data);
        let write = |chains: &[&str]| crate::model::proxy::test_support::write_tiny_proxies(dir.path(), chains);
        let (two, one) = (write(&["eq", "comp"]), write(&["eq,comp"]));
        for (estimator, proxies) in [(EstimatorKind::Proxy, &two), (EstimatorKind::ProxyFull, &two), (EstimatorKind::ProxyFull, &one)] {
            let config = TrainConfig { estimator, steps: 1, validate_every: 1, proxies: proxies.clone(), ..tiny_config(&data) };
            let run = dir.path().join(format!("{}-{}", estimator.name(), proxies.len()));
            let summary = train(&config, &run, &run.join("model.afx"), false, None).unwrap();
            assert!(summary.last_validation.is_some_and(|v| v.loss.is_finite()));
            let without = TrainConfig { proxies: Vec::new(), ..config };
            assert!(without.validate().is_err());
        }
        let eq_only = TrainConfig { estimator: EstimatorKind::Proxy, steps: 1, proxies: write(&["eq"]), ..tiny_config(&data) };
        let run = dir.path().join("eq-only");
        let error = train(&eq_only, &run, &run.join("model.afx"), false, None).unwrap_err().to_string();
        assert_eq!(error, "the proxies imitate the chain `eq`, the network sets the chain `eq,comp`");

        // A checkpoint of a run from before `proxies` names its two files as it did then.
        let mut old = serde_json::to_value(tiny_config(&data)).unwrap();
        let config = old.as_object_mut().unwrap();
        config.remove("proxies");
        config.insert("eq_proxy".into(), serde_json::to_value(&two[0]).unwrap());
        config.insert("comp_proxy".into(), serde_json::to_value(&two[1]).unwrap());
        let upgraded = upgrade_proxy_files(serde_json::json!({ "config": old, "step": 3 }));
        assert_eq!(serde_json::from_value::<TrainConfig>(upgraded["config"].clone()).unwrap().proxies, two);
        assert_eq!(upgraded["step"], 3);
    }

    /// A cTCN run writes a cTCN model file (not a style model), resumes from its checkpoint,
    /// and refuses to start from a style model.
    #[test]
    fn ctcn_runs_write_ctcn_models_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("audio");
        write_corpus(&data);
        let config = TrainConfig { estimator: EstimatorKind::Ctcn, steps: 1, validate_every: 1, batch_size: 2, ..tiny_config(&data) };
        let (run, out) = (dir.path().join("run"), dir.path().join("ctcn.afx"));
        let summary = train(&config, &run, &out, false, None).unwrap();
        let validation = summary.last_validation.unwrap();
        assert!(validation.loss.is_finite());
        // A fresh cTCN is the identity with a make-up gain of the controller's choosing.
        assert!(validation.loss > 0.0);
        let AnyModel::Ctcn(model) = model::file::load_any(&out).unwrap() else { panic!("not a cTCN file") };
        assert_eq!(model.card.estimator(), Some(EstimatorKind::Ctcn));
        assert!(model::file::load(&out).is_err());
        let resumed = train(&config, &run, &out, true, Some(2)).unwrap();
        assert_eq!(resumed.steps, 2);
        let dropout = TrainConfig { dropout: 0.1, ..config.clone() };
        assert!(dropout.validate().unwrap_err().to_string().contains("cTCN run has none"));
        let init = TrainConfig { init: Some(out), ..config };
        assert!(init.validate().unwrap_err().to_string().contains("starts fresh"));
    }

    /// The whole use case on files: model, checkpoint, log and curves are written; a run
    /// folder is not reused by accident; resuming extends the run and matches an uninterrupted
    /// one.
    #[test]
    fn train_writes_a_model_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("audio");
        write_corpus(&data);
        for estimator in [EstimatorKind::Spsa, EstimatorKind::FiniteDiff] {
            let config = TrainConfig { estimator, steps: 1, validate_every: 1, ..tiny_config(&data) };
            let run = dir.path().join(estimator.name());
            train(&config, &run, &run.join("model.afx"), false, None).unwrap();
        }

        let config = tiny_config(&data);
        let (run, out) = (dir.path().join("run"), dir.path().join("model.afx"));
        let summary = train(&config, &run, &out, false, None).unwrap();
        assert_eq!(summary.steps, 4);
        let model = model::file::load(&out).unwrap();
        assert_eq!(model.card.training.as_ref().unwrap().steps, 4);
        assert_eq!(model.card.estimator(), Some(EstimatorKind::Exact));
        let csv = std::fs::read_to_string(run.join(LOG_CSV)).unwrap();
        assert_eq!(csv.lines().count(), 5, "{csv}");
        let png = std::fs::read(run.join(CURVES_PNG)).unwrap();
        assert_eq!(&png[1..4], b"PNG");

        let error = train(&config, &run, &out, false, None).unwrap_err();
        assert!(matches!(&error, Error::RunExists { run_dir } if run_dir == &run), "{error}");

        // Two steps, then resumed to four: the same network as four steps in one go.
        let (split_run, split_out) = (dir.path().join("split"), dir.path().join("split.afx"));
        train(&TrainConfig { steps: 2, ..config.clone() }, &split_run, &split_out, false, None).unwrap();
        let resumed = train(&config, &split_run, &split_out, true, Some(4)).unwrap();
        assert_eq!(resumed.steps, 4);
        let whole = Trainer::resume(&run).unwrap().trainer.model();
        let split = Trainer::resume(&split_run).unwrap().trainer.model();
        let mut front = LogMel::new(&config.net.features);
        let probe = front.compute(&groove(1.0, 24_000, 1, 9).channels[0]).unwrap();
        let probe = std::slice::from_ref(&probe);
        assert_eq!(whole.predict(probe, probe), split.predict(probe, probe));
    }

    /// A network of another chain, level-relative, trains through that chain (a finite
    /// validation loss) and its model file records the chain, which `afx transfer` renders.
    #[test]
    fn a_network_of_any_chain_trains_and_transfers() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("audio");
        write_corpus(&data);
        let chain: crate::fx::ChainSpec = "hpf,eq,comp,limiter".parse().unwrap();
        let net = StyleNetConfig { output_level: OutputLevel::Reference, ..tiny_config(&data).net }.with_chain(chain.clone());
        let config = TrainConfig { net, steps: 2, validate_every: 1, ..tiny_config(&data) };
        let (run, out) = (dir.path().join("run"), dir.path().join("chain.afx"));
        let summary = train(&config, &run, &out, false, None).unwrap();
        assert!(summary.last_validation.is_some_and(|v| v.loss.is_finite()));
        let model = model::file::load(&out).unwrap();
        assert_eq!(model.net.config().chain, chain);
        let (input, reference) = (groove(2.0, 44_100, 2, 1), groove(2.0, 48_000, 2, 2));
        let options = crate::transfer::TransferOptions { mode: crate::transfer::Mode::Model, ..Default::default() };
        let done = crate::transfer::transfer(&model.net, &input, &reference, &options).unwrap();
        assert_eq!(done.knobs.chain(), &chain);
        assert!(done.output.channels.iter().flatten().all(|x| x.is_finite()));
    }

    /// A network that learns some knobs (`--learn`) and holds one (`--set`) trains with one
    /// output per learnt knob; its model file records the choice, `afx transfer` renders the
    /// held knob at its value, and fine-tuning or a proxy estimator cannot change it.
    #[test]
    fn a_network_learns_the_chosen_knobs_and_holds_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("audio");
        write_corpus(&data);
        let choice = KnobChoice { learn: Some("eq.band*.gain_db,comp.*".into()), set: vec!["hpf.freq_hz=150".into()] };
        let net = network_for(None, None, Some("hpf,eq,comp".parse().unwrap()), None, &choice).unwrap();
        assert_eq!(net.num_knobs, 4 + 6);
        let config =
            TrainConfig { net: StyleNetConfig { features: tiny_config(&data).net.features, ..net }, steps: 2, ..tiny_config(&data) };
        let (run, out) = (dir.path().join("run"), dir.path().join("learn.afx"));
        train(&config, &run, &out, false, None).unwrap();
        let model = model::file::load(&out).unwrap();
        assert_eq!(model.net.config().controls, config.net.controls);
        let (input, reference) = (groove(2.0, 44_100, 2, 1), groove(2.0, 48_000, 2, 2));
        let options = crate::transfer::TransferOptions { mode: crate::transfer::Mode::Model, ..Default::default() };
        let done = crate::transfer::transfer(&model.net, &input, &reference, &options).unwrap();
        assert!((done.knobs.get("hpf.freq_hz").unwrap() - 150.0).abs() < 1e-3);
        let defaults = crate::fx::ChainKnobs::defaults(done.knobs.chain().clone());
        for name in ["hpf.q", "eq.band1.freq_hz", "eq.high_shelf.q"] {
            assert!(
                (done.knobs.get(name).unwrap() - defaults.get(name).unwrap()).abs() < 1e-3 * defaults.get(name).unwrap().abs(),
                "{name}"
            );
        }
        let other = KnobChoice { learn: Some("comp.*".into()), set: vec![] };
        let e = network_for(Some(&out), None, None, None, &other).unwrap_err().to_string();
        assert!(e.contains("initial model sets other knobs"), "{e}");
        let proxy = TrainConfig { estimator: EstimatorKind::Proxy, proxies: vec![out.clone()], ..config.clone() };
        let e = proxy.validate().unwrap_err().to_string();
        assert!(e.contains("--learn") && !e.contains('\n'), "{e}");
    }
}
