//! `afx proxy train`: fit a neural proxy to a chain of effects (the EQ, the compressor, any
//! chain) on real audio.
//!
//! audio folders → clips (train split, peak −12 dBFS, then a random −0…−12 dB, so the proxy
//! hears −12…−24 dBFS peaks as in DeepAFx-ST) → the chain's knobs drawn uniformly in [0, 1]
//! (an output gain the proxy applies exactly, such as the compressor's make-up, held at 0 dB)
//! → target: the real chain alone → the proxy's output → MR-STFT + L1 against the target
//! → Adam. Fixed validation clips from the validation split every `validate_every` steps, with
//! the loss of the unprocessed clip beside it; checkpoints, resume, `log.csv`, `curves.png`;
//! the proxy with the best validation loss goes to `out`.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::run::{BudgetArgs, RunArgs};
use super::run::{RunConfig, RunState, Summary, Training, Validation, check_run_settings, run};
use crate::data::{Corpus, CorpusConfig, PairConfig, PairGenerator, Split};
use crate::fx::ChainSpec;
use crate::grad::ChainFx;
use crate::metrics::{self, Metrics};
use crate::model::file::{load_proxy, save_proxy};
use crate::model::{ModelCard, ProxyConfig, ProxyTrainer, TrainerConfig};
use crate::spectral::{MrStftBatch, MrStftConfig};
use crate::{Error, Result};

/// Everything that defines a proxy training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyTrainConfig {
    pub data: Vec<PathBuf>,
    pub proxy: ProxyConfig,
    pub steps: u64,
    pub batch_size: usize,
    /// Clip length in frames at 24 kHz.
    pub clip_frames: usize,
    /// Adam's step size, divided by 10 for the last 20 % of the steps.
    pub learning_rate: f64,
    pub grad_clip_norm: Option<f32>,
    pub seed: u64,
    pub log_every: u64,
    pub validate_every: u64,
    pub validation_clips: usize,
    pub checkpoint_every: u64,
}

impl ProxyTrainConfig {
    /// Defaults for a proxy of `chain`: 4000 steps of 4 clips of 16 384 frames (0.68 s), Adam
    /// 3e-4 with per-tensor clipping at 10, validation on 16 clips every 250 steps.
    pub fn new(chain: ChainSpec) -> Self {
        Self {
            data: Vec::new(),
            proxy: ProxyConfig::new(chain),
            steps: 4000,
            batch_size: 4,
            clip_frames: 16_384,
            learning_rate: 3e-4,
            grad_clip_norm: Some(10.0),
            seed: 1,
            log_every: 25,
            validate_every: 250,
            validation_clips: 16,
            checkpoint_every: 100,
        }
    }

    pub fn validate(&self) -> Result<()> {
        check_run_settings(
            &[
                ("steps", self.steps),
                ("batch_size", self.batch_size as u64),
                ("validate_every", self.validate_every),
                ("checkpoint_every", self.checkpoint_every),
                ("log_every", self.log_every),
                ("validation_clips", self.validation_clips as u64),
            ],
            self.learning_rate,
        )?;
        let min_frames = 2 * self.proxy.receptive_field().max(2048);
        if self.clip_frames < min_frames || !self.clip_frames.is_multiple_of(2) {
            return Err(Error::Setting {
                name: "clip_frames",
                value: self.clip_frames.to_string(),
                expected: format!("even and at least {min_frames} (twice the proxy's receptive field or 2048)"),
            });
        }
        let rate = CorpusConfig::default().sample_rate;
        if self.proxy.sample_rate != rate {
            return Err(Error::RateMismatch { what: "a proxy trains", rate: self.proxy.sample_rate, expected: rate });
        }
        self.proxy.validate()
    }
}

impl RunConfig for ProxyTrainConfig {
    super::run::schedule_from_fields!();

    fn check(&self) -> Result<()> {
        self.validate()
    }

    fn title(&self) -> String {
        format!("afx proxy train ({})", self.proxy.chain)
    }
}

/// `afx proxy train`'s options; unset ones take [`ProxyTrainConfig::new`]'s values.
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct ProxyTrainArgs {
    /// The chain to imitate, e.g. `eq`, `comp` or `hpf,gain` (`afx params --effects` lists the
    /// effects; with --resume, the run's own is kept).
    #[arg(long, required_unless_present_any = ["resume", "effect"])]
    pub chain: Option<String>,
    /// Deprecated spelling of --chain: `eq`, `comp`, or `chain` for `eq,comp`.
    #[arg(long, value_parser = old_effect(), conflicts_with = "chain")]
    pub effect: Option<ChainSpec>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Channels of every TCN block (published: 64).
    #[arg(long)]
    pub channels: Option<usize>,
}

/// `--effect`, the old spelling of `--chain`: `eq`, `comp`, or `chain` for `eq,comp`.
#[cfg(feature = "cli")]
fn old_effect() -> impl clap::builder::TypedValueParser<Value = ChainSpec> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    let whole = PossibleValue::new("chain").help("The whole chain in one proxy (the published \"channel\" proxy)");
    PossibleValuesParser::new([PossibleValue::new("eq"), PossibleValue::new("comp"), whole])
        .try_map(|name| if name == "chain" { "eq,comp" } else { name.as_str() }.parse::<ChainSpec>())
}

#[cfg(feature = "cli")]
impl ProxyTrainArgs {
    /// The run's configuration: the options given, [`ProxyTrainConfig::new`]'s for the others.
    pub fn config(&self) -> Result<ProxyTrainConfig> {
        let chain = match (&self.chain, &self.effect) {
            (Some(chain), _) => chain.parse()?,
            (None, Some(chain)) => chain.clone(),
            // Resumed: the run's own settings are used.
            (None, None) => "eq".parse()?,
        };
        let d = ProxyTrainConfig::new(chain);
        Ok(ProxyTrainConfig {
            data: self.run.data.clone(),
            proxy: ProxyConfig { channels: self.channels.unwrap_or(d.proxy.channels), ..d.proxy.clone() },
            steps: self.budget.steps.unwrap_or(d.steps),
            batch_size: self.budget.batch_size.unwrap_or(d.batch_size),
            clip_frames: self.budget.clip_frames.unwrap_or(d.clip_frames),
            learning_rate: self.budget.learning_rate.unwrap_or(d.learning_rate),
            seed: self.budget.seed.unwrap_or(d.seed),
            ..d
        })
    }

    /// `afx proxy train`: trains (or resumes) the run and reports it to `out`.
    pub fn run(&self, out: &mut impl std::io::Write) -> Result<()> {
        let run_dir = self.run.run_dir();
        let summary = train_proxy(&self.config()?, &run_dir, &self.run.out, self.run.resume, self.budget.steps)?;
        Ok(writeln!(out, "{}", summary.line(&self.run.out, &run_dir, true))?)
    }
}

/// Trains a proxy through the one training loop ([`run`]) and writes the best one (by
/// validation loss) to `out`; `run_dir` holds the checkpoint, `log.csv`, `curves.png` and
/// `best.afx`. With `resume`, continues the run in `run_dir` (its saved settings;
/// `steps_override` may extend it).
pub fn train_proxy(config: &ProxyTrainConfig, run_dir: &Path, out: &Path, resume: bool, steps_override: Option<u64>) -> Result<Summary> {
    run::<ProxyTraining>(config, run_dir, out, resume, steps_override)
}

/// A proxy in training, with its clips, its chain and its fixed validation clips.
struct ProxyTraining {
    config: ProxyTrainConfig,
    trainer: ProxyTrainer,
    generator: PairGenerator,
    fx: ChainFx,
    loss: MrStftBatch<f32>,
    validation: Vec<ProxyExample>,
    input_loss: f64,
}

impl Training for ProxyTraining {
    type Config = ProxyTrainConfig;
    type Model = ProxyTrainer;

    fn fresh(config: &ProxyTrainConfig) -> Result<ProxyTrainer> {
        let trainer_config =
            TrainerConfig { learning_rate: config.learning_rate, grad_clip_norm: config.grad_clip_norm, seed: config.seed, dropout: 0.0 };
        Ok(ProxyTrainer::new(&config.proxy, &trainer_config))
    }

    fn resume(run_dir: &Path) -> Result<(ProxyTrainer, serde_json::Value)> {
        let resumed = ProxyTrainer::resume(run_dir)?;
        Ok((resumed.trainer, resumed.state))
    }

    fn open(config: &ProxyTrainConfig, trainer: ProxyTrainer, _first_step: u64) -> Result<Self> {
        let generator = clip_source(config)?;
        let fx = ChainFx::new(config.proxy.chain.clone(), generator.corpus().sample_rate());
        let mut loss = MrStftBatch::<f32>::new(MrStftConfig::default());
        let validation = (0..config.validation_clips as u64)
            .into_par_iter()
            .map(|i| example(&generator, config, Split::Validation, i, config.seed ^ 0x5A11, &fx))
            .collect::<Result<Vec<_>>>()?;
        let (inputs, _) = columns(&validation);
        let input_loss = mean_loss(&mut loss, &inputs, &validation);
        Ok(ProxyTraining { config: config.clone(), trainer, generator, fx, loss, validation, input_loss })
    }

    fn step(&mut self, step: u64, learning_rate: f64) -> Result<f64> {
        let (config, generator, fx) = (&self.config, &self.generator, &self.fx);
        let batch = (0..config.batch_size as u64)
            .into_par_iter()
            .map(|b| example(generator, config, Split::Train, step * config.batch_size as u64 + b, config.seed, fx))
            .collect::<Result<Vec<_>>>()?;
        self.trainer.set_learning_rate(learning_rate);
        let (inputs, knobs) = columns(&batch);
        let loss = &mut self.loss;
        self.trainer.step(&inputs, &knobs, |outputs| loss.value_and_grads(outputs, &targets(&batch)))
    }

    fn validate(&mut self) -> Validation {
        let (inputs, knobs) = columns(&self.validation);
        let outputs = self.trainer.predict(&inputs, &knobs);
        Validation { loss: mean_loss(&mut self.loss, &outputs, &self.validation), input_loss: self.input_loss }
    }

    fn save_checkpoint(&self, run_dir: &Path, state: &serde_json::Value) -> Result<()> {
        self.trainer.save_checkpoint(run_dir, state)
    }

    fn save_model(&self, path: &Path, card: &ModelCard) -> Result<()> {
        save_proxy(path, &self.trainer.model(), card)
    }

    fn card(&self, state: &RunState<ProxyTrainConfig>) -> ModelCard {
        state.card(None)
    }
}

/// How closely a proxy imitates its chain on held-out audio: the metrics of the proxy's output
/// and of the unprocessed clip (the identity), each against the real chain's output, as means
/// over clips of the test split with random knobs.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyMatch {
    pub chain: ChainSpec,
    pub clips: usize,
    /// The training loss (MR-STFT + L1) of the proxy's output and of the identity.
    pub proxy_loss: f64,
    pub identity_loss: f64,
    pub proxy: Metrics,
    pub identity: Metrics,
}

/// Measures the proxy file `path` against the real chain on `clips` clips of `clip_frames`
/// frames from the test split of `data` (files never used in training or validation), skipping
/// clips that the real chain leaves below the loudness gate.
pub fn evaluate_proxy(path: &Path, data: &[PathBuf], clips: usize, clip_frames: usize, seed: u64) -> Result<ProxyMatch> {
    if clips == 0 {
        return Err(Error::Setting { name: "clips", value: "0".into(), expected: "at least 1".into() });
    }
    let proxy = load_proxy(path)?.proxy;
    let config = ProxyTrainConfig {
        data: data.to_vec(),
        proxy: proxy.config().clone(),
        clip_frames,
        ..ProxyTrainConfig::new(proxy.config().chain.clone())
    };
    let corpus = Corpus::from_roots(data, &[Split::Test], "measuring a proxy")?;
    if corpus.sample_rate() != proxy.config().sample_rate {
        return Err(Error::RateMismatch { what: "the clips are", rate: corpus.sample_rate(), expected: proxy.config().sample_rate });
    }
    let generator = PairGenerator::new(corpus, PairConfig { half_frames: clip_frames / 2, ..PairConfig::default() })?;
    let fx = ChainFx::new(proxy.config().chain.clone(), generator.corpus().sample_rate());
    // Knobs that push the real chain's output under the loudness gate (−70 LUFS: a low
    // threshold at a high ratio) leave the loudness metric undefined; such clips are skipped.
    let audible = |e: &ProxyExample| metrics::loudness_lufs(&e.target, fx.sample_rate, "target").is_ok_and(f64::is_finite);
    let examples: Vec<ProxyExample> = (0..4 * clips as u64)
        .into_par_iter()
        .map(|i| example(&generator, &config, Split::Test, i, seed, &fx))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(audible)
        .take(clips)
        .collect();
    if examples.len() < clips {
        return Err(Error::TooFewAudibleClips { audible: examples.len(), drawn: 4 * clips });
    }
    let outputs: Vec<Vec<f32>> = examples.iter().map(|e| proxy.process(&e.input, &e.knobs)).collect();
    let inputs: Vec<Vec<f32>> = examples.iter().map(|e| e.input.clone()).collect();
    let mut loss = MrStftBatch::<f32>::new(MrStftConfig::default());
    let rate = fx.sample_rate;
    let metrics = |estimates: &[Vec<f32>]| -> Result<Metrics> {
        let each = estimates
            .iter()
            .zip(&examples)
            .map(|(y, e)| metrics::compare(std::slice::from_ref(y), std::slice::from_ref(&e.target), rate))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::eval::mean(each.iter()))
    };
    Ok(ProxyMatch {
        chain: proxy.config().chain.clone(),
        clips,
        proxy_loss: mean_loss(&mut loss, &outputs, &examples),
        identity_loss: mean_loss(&mut loss, &inputs, &examples),
        proxy: metrics(&outputs)?,
        identity: metrics(&inputs)?,
    })
}

/// `afx proxy eval`'s options.
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct ProxyEvalArgs {
    #[arg(long)]
    pub proxy: PathBuf,
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    #[arg(long, default_value_t = 32)]
    pub clips: usize,
    /// Clip length in frames at the proxy's rate.
    #[arg(long, default_value_t = 65_536)]
    pub clip_frames: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print JSON instead of the markdown table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "cli")]
impl ProxyEvalArgs {
    /// `afx proxy eval`: writes the match to `out` as a markdown table, or as JSON.
    pub fn run(&self, out: &mut impl std::io::Write) -> Result<()> {
        let measured = evaluate_proxy(&self.proxy, &self.data, self.clips, self.clip_frames, self.seed)?;
        if self.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&measured).expect("the match serialises"))?;
        } else {
            write!(out, "{}", measured.markdown())?;
        }
        Ok(())
    }
}

impl ProxyMatch {
    /// The two rows as a markdown table.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "`{}` proxy against the real chain, {} test clips\n\n\
             | | loss | MR-STFT | mel dist. | centroid err. (Hz) | RMS err. (dB) | loudness err. (LU) |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
            self.chain, self.clips
        );
        for (name, loss, m) in [("identity (unprocessed)", self.identity_loss, &self.identity), ("proxy", self.proxy_loss, &self.proxy)] {
            out.push_str(&format!(
                "| {name} | {loss:.3} | {:.3} | {:.3} | {:.0} | {:.2} | {:.2} |\n",
                m.mrstft, m.mel_distance, m.centroid_error_hz, m.rms_error_db, m.loudness_error_lu
            ));
        }
        out
    }
}

/// One training example: a clip, the chain's normalised knobs, the real chain's output.
struct ProxyExample {
    input: Vec<f32>,
    knobs: Vec<f32>,
    target: Vec<f32>,
}

/// The examples' inputs and knobs, as the trainer takes them.
fn columns(examples: &[ProxyExample]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    examples.iter().map(|e| (e.input.clone(), e.knobs.clone())).unzip()
}

/// Example `index` of `split` for `seed`: its clip, level and knobs all follow from these.
fn example(
    generator: &PairGenerator,
    config: &ProxyTrainConfig,
    split: Split,
    index: u64,
    seed: u64,
    fx: &ChainFx,
) -> Result<ProxyExample> {
    let mut input = generator.clip(split, index, seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ index);
    let gain = 10f32.powf(-rng.random_range(0.0..12.0f32) / 20.0);
    input.iter_mut().for_each(|x| *x *= gain);
    let mut knobs: Vec<f32> = (0..config.proxy.chain.num_knobs()).map(|_| rng.random_range(0.0..1.0)).collect();
    // An exact gain is applied by the proxy and heard at 0 dB (see `Proxy::forward`).
    if let Some((k, spec)) = config.proxy.exact_gain() {
        knobs[k] = spec.normalize(0.0) as f32;
    }
    let target = fx.render_mono(&input, &knobs);
    Ok(ProxyExample { input, knobs, target })
}

/// The examples' targets, as the loss takes them.
fn targets(examples: &[ProxyExample]) -> Vec<&[f32]> {
    examples.iter().map(|e| e.target.as_slice()).collect()
}

fn mean_loss(loss: &mut MrStftBatch<f32>, outputs: &[Vec<f32>], examples: &[ProxyExample]) -> f64 {
    let estimates: Vec<&[f32]> = outputs.iter().map(Vec::as_slice).collect();
    loss.value(&estimates, &targets(examples))
}

/// The train and validation splits of the data as a source of clips.
fn clip_source(config: &ProxyTrainConfig) -> Result<PairGenerator> {
    let corpus = Corpus::from_roots(&config.data, &[Split::Train, Split::Validation], "proxy training")?;
    PairGenerator::new(corpus, PairConfig { half_frames: config.clip_frames / 2, ..PairConfig::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_files::write_grooves;

    /// A short run on generated audio: the training loss falls, the proxy ends closer to the
    /// real EQ than the unprocessed clip is, the file loads, an existing run is not
    /// overwritten, and a resumed run continues from the checkpoint.
    #[test]
    fn a_short_run_learns_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        write_grooves(dir.path(), 24, 1.5, 24_000, 500);
        let config = ProxyTrainConfig {
            data: vec![dir.path().to_path_buf()],
            proxy: ProxyConfig { channels: 8, kernel_size: 5, dilations: vec![1, 4], ..ProxyConfig::new("eq".parse().unwrap()) },
            steps: 200,
            clip_frames: 4096,
            learning_rate: 3e-3,
            validate_every: 50,
            checkpoint_every: 50,
            validation_clips: 16,
            ..ProxyTrainConfig::new("eq".parse().unwrap())
        };
        let (run, out) = (dir.path().join("run"), dir.path().join("eq.afx"));
        let summary = train_proxy(&config, &run, &out, false, None).unwrap();
        let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
        let train_losses: Vec<f64> = log.lines().skip(1).filter_map(|line| line.split(',').nth(3).and_then(|v| v.parse().ok())).collect();
        let (first, last) = (train_losses[0], train_losses[train_losses.len() - 1]);
        assert!(last < 0.85 * first, "training loss {first} -> {last}\n{log}");
        let v = summary.last_validation.unwrap();
        assert!(v.loss < v.input_loss, "proxy {} vs unprocessed {}", v.loss, v.input_loss);
        assert_eq!(load_proxy(&out).unwrap().proxy.config(), &config.proxy);
        assert!(train_proxy(&config, &run, &out, false, None).is_err(), "an existing run is not overwritten");
        let resumed = train_proxy(&config, &run, &out, true, Some(210)).unwrap();
        assert_eq!(resumed.steps, 210);
        assert!(std::fs::read_to_string(run.join("log.csv")).unwrap().lines().count() > 3);

        // A fresh proxy (zero output layer plus the skip) is the identity, so its numbers are
        // the identity's; the trained one's differ, on the same clips and knobs.
        let measured = evaluate_proxy(&out, &config.data, 4, 12_000, 7).unwrap();
        assert!(measured.proxy_loss.is_finite() && measured.proxy_loss != measured.identity_loss, "{measured:?}");
        let fresh = dir.path().join("fresh.afx");
        save_proxy(&fresh, &config.proxy.init(&burn::prelude::Device::flex(), 3), &ModelCard::new()).unwrap();
        let same = evaluate_proxy(&fresh, &config.data, 4, 12_000, 7).unwrap();
        assert!((same.proxy_loss - same.identity_loss).abs() <= 1e-6 * same.identity_loss, "{same:?}");
        assert!((same.proxy.mrstft - same.identity.mrstft).abs() <= 1e-6 * same.identity.mrstft, "{same:?}");
        assert_eq!(same.identity_loss, measured.identity_loss, "the same clips and knobs");
    }

    /// A proxy of a chain other than the EQ or the compressor (`hpf,gain`): its examples are
    /// that chain alone with the gain, which the proxy applies exactly, at 0 dB (so each target
    /// is the high-pass alone); a few steps take it closer to the chain than the unprocessed
    /// clip is, and its file names the chain.
    #[test]
    fn a_proxy_of_any_chain_trains() {
        let dir = tempfile::tempdir().unwrap();
        write_grooves(dir.path(), 24, 1.5, 24_000, 500);
        let chain: ChainSpec = "hpf,gain".parse().unwrap();
        let config = ProxyTrainConfig {
            data: vec![dir.path().to_path_buf()],
            proxy: ProxyConfig { channels: 8, kernel_size: 5, dilations: vec![1, 4], ..ProxyConfig::new(chain.clone()) },
            steps: 40,
            clip_frames: 4096,
            learning_rate: 3e-3,
            log_every: 10,
            validate_every: 10,
            checkpoint_every: 40,
            validation_clips: 8,
            ..ProxyTrainConfig::new(chain.clone())
        };
        let generator = clip_source(&config).unwrap();
        let fx = ChainFx::new(chain.clone(), 24_000);
        let high_pass = ChainFx::new("hpf".parse().unwrap(), 24_000);
        let gain = chain.knob_index("gain.gain_db").unwrap();
        assert_eq!(gain, chain.num_knobs() - 1);
        for index in 0..4 {
            let e = example(&generator, &config, Split::Train, index, 1, &fx).unwrap();
            // 0 dB in the gain's range of −24…24 dB.
            assert_eq!(e.knobs[gain], 0.5);
            assert!(e.knobs[..gain].iter().all(|k| (0.0..1.0).contains(k)));
            let expected = high_pass.render_mono(&e.input, &e.knobs[..gain]);
            assert!(e.target.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= 1e-6), "example {index}");
            assert_ne!(e.target, e.input, "the high-pass changes the clip");
        }
        let (run, out) = (dir.path().join("run"), dir.path().join("hpf_gain.afx"));
        let summary = train_proxy(&config, &run, &out, false, None).unwrap();
        let input_loss = summary.last_validation.unwrap().input_loss;
        let (_, best) = summary.best.unwrap();
        assert!(best < input_loss, "proxy {best} vs unprocessed {input_loss}");
        assert_eq!(load_proxy(&out).unwrap().proxy.config().chain, chain);
    }
}
