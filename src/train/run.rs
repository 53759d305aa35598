//! The one training loop of afx, shared by `afx train` (style networks of every estimator and
//! the cTCN) and `afx proxy train`.
//!
//! A model kind implements [`Training`]: how to start or resume its model, one optimisation
//! step, one validation, its checkpoint, its model file and its card. [`run`] owns everything
//! else: the run folder and resuming from its checkpoint, the learning-rate schedule, the
//! progress bar, the cadence of logging, validation and checkpoints, the best model so far,
//! `log.csv`, `curves.png` and the final model file.

use std::path::Path;
#[cfg(feature = "cli")]
use std::path::PathBuf;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::EstimatorKind;
use crate::atomic::write_bytes_atomic;
use crate::model::card::{HeldOut, TrainingCard};
use crate::model::trainer::CHECKPOINT_MODEL;
use crate::model::{ModelCard, file};
use crate::plot::{self, Chart, Scale, Series};
use crate::{Error, Result};

/// Files of a run folder (besides the checkpoint).
pub const LOG_CSV: &str = "log.csv";
pub const CURVES_PNG: &str = "curves.png";
pub const BEST_MODEL: &str = "best.afx";

/// How long a run trains and how often it looks at itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub steps: u64,
    /// The base step size: held for the first 80 % of the steps, then divided by 10
    /// ([`step_decay`]).
    pub learning_rate: f64,
    pub log_every: u64,
    pub validate_every: u64,
    pub checkpoint_every: u64,
}

/// [`RunConfig::schedule`] and [`RunConfig::set_steps`] of a config that holds the schedule as
/// its fields `steps`, `learning_rate`, `log_every`, `validate_every` and `checkpoint_every`.
macro_rules! schedule_from_fields {
    () => {
        fn schedule(&self) -> $crate::train::run::Schedule {
            $crate::train::run::Schedule {
                steps: self.steps,
                learning_rate: self.learning_rate,
                log_every: self.log_every,
                validate_every: self.validate_every,
                checkpoint_every: self.checkpoint_every,
            }
        }

        fn set_steps(&mut self, steps: u64) {
            self.steps = steps;
        }
    };
}
pub(crate) use schedule_from_fields;

/// A run's configuration as the loop sees it; saved in every checkpoint.
pub trait RunConfig: Clone + Serialize + DeserializeOwned {
    fn schedule(&self) -> Schedule;
    /// Extends (or shortens) the run to `steps` steps (`--steps` on a resumed run).
    fn set_steps(&mut self, steps: u64);
    /// Checks the settings before anything is built from them.
    fn check(&self) -> Result<()>;
    /// The title of the run's curves.
    fn title(&self) -> String;
    /// A checkpoint's saved state as an older afx wrote it, brought up to date.
    fn upgrade_saved(saved: serde_json::Value) -> serde_json::Value {
        saved
    }
}

/// A model kind that [`run`] trains.
pub trait Training: Sized {
    type Config: RunConfig;
    /// The model being trained, with its optimiser state.
    type Model;
    /// A fresh model for a checked `config`.
    fn fresh(config: &Self::Config) -> Result<Self::Model>;
    /// The model of the checkpoint in `run_dir`, with the state saved beside it.
    fn resume(run_dir: &Path) -> Result<(Self::Model, serde_json::Value)>;
    /// Prepares to train `model` on `config`'s data from step `first_step` on: data, effects,
    /// validation set.
    fn open(config: &Self::Config, model: Self::Model, first_step: u64) -> Result<Self>;
    /// Optimisation step number `step` (on that step's batch) at `learning_rate`; returns the
    /// batch's loss.
    fn step(&mut self, step: u64, learning_rate: f64) -> Result<f64>;
    /// The current model measured on the fixed validation set.
    fn validate(&mut self) -> Validation;
    /// Saves the model and its optimiser state into `run_dir`, with the loop's `state`.
    fn save_checkpoint(&self, run_dir: &Path, state: &serde_json::Value) -> Result<()>;
    /// Writes the current model to `path` as a model file with `card`.
    fn save_model(&self, path: &Path, card: &ModelCard) -> Result<()>;
    /// The model card of the run so far.
    fn card(&self, state: &RunState<Self::Config>) -> ModelCard;
}

/// What a checkpoint holds besides the model and its optimiser state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(deserialize = "C: DeserializeOwned"))]
pub struct RunState<C> {
    pub config: C,
    /// Steps done.
    pub step: u64,
    /// Training time so far, over all sessions of the run.
    pub elapsed_s: f64,
    pub history: Vec<LogRow>,
    /// The step and validation loss of `best.afx`.
    pub best: Option<(u64, f64)>,
}

impl<C: Serialize> RunState<C> {
    /// The card of the run so far: how it trained (with `estimator`, for a style network) and
    /// its held-out losses; the caller adds what it knows of its data.
    pub fn card(&self, estimator: Option<EstimatorKind>) -> ModelCard {
        ModelCard {
            afx_version: Some(env!("CARGO_PKG_VERSION").into()),
            training: Some(TrainingCard {
                estimator,
                steps: self.step,
                seconds: self.elapsed_s,
                config: serde_json::to_value(&self.config).expect("serialisable config"),
            }),
            validation: Some(HeldOut {
                best_step: self.best.map(|(step, _)| step),
                best_loss: self.best.map(|(_, loss)| loss),
                input_loss: self.history.iter().find_map(|r| r.validation.map(|v| v.input_loss)),
            }),
            ..ModelCard::new()
        }
    }
}

/// One row of the training log: a training-loss mean over the last `log_every` steps, a
/// validation, or both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub step: u64,
    pub elapsed_s: f64,
    pub learning_rate: f64,
    pub train_loss: Option<f64>,
    pub validation: Option<Validation>,
}

/// The model measured on the fixed validation set: means over its examples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// The training loss (MR-STFT + L1) of the output against the target.
    pub loss: f64,
    /// The same for the unprocessed input: the level to beat.
    pub input_loss: f64,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Summary {
    pub steps: u64,
    pub elapsed_s: f64,
    pub best: Option<(u64, f64)>,
    pub last_validation: Option<Validation>,
}

impl Summary {
    /// The line a finished run prints: its steps and time, where the model and the run folder
    /// went, the best validation loss and, with `unprocessed`, the last validation's loss of
    /// the unprocessed input beside it.
    pub fn line(&self, out: &Path, run_dir: &Path, unprocessed: bool) -> String {
        let best = self.best.map(|(step, loss)| format!("{loss:.4} at step {step}")).unwrap_or("-".into());
        let input_loss = self.last_validation.map(|v| format!("{:.4}", v.input_loss)).unwrap_or("-".into());
        let unprocessed = if unprocessed { format!(", unprocessed {input_loss}") } else { String::new() };
        format!(
            "trained {} steps in {:.0} s; wrote {} (best validation loss {best}{unprocessed}) and {}",
            self.steps,
            self.elapsed_s,
            out.display(),
            run_dir.display()
        )
    }
}

/// Where a training run reads and writes, for `afx train` and `afx proxy train`.
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct RunArgs {
    /// Folders (or files) of training audio, any decodable format and rate; split by file into
    /// train (80 %), validation (10 %) and test (10 %, for `afx eval`).
    #[arg(long, num_args = 1.., required_unless_present = "resume")]
    pub data: Vec<PathBuf>,
    /// Where the result goes (the weights with the best validation loss).
    #[arg(long)]
    pub out: PathBuf,
    /// Run folder: checkpoint, log.csv, curves.png, best.afx. Default: OUT with `.run` appended.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in the run folder from its checkpoint (its settings are kept).
    #[arg(long)]
    pub resume: bool,
}

#[cfg(feature = "cli")]
impl RunArgs {
    /// `--run-dir`, or OUT with `.run` appended.
    pub fn run_dir(&self) -> PathBuf {
        self.run_dir.clone().unwrap_or_else(|| {
            let mut dir = self.out.as_os_str().to_owned();
            dir.push(".run");
            PathBuf::from(dir)
        })
    }
}

/// The budget every training takes (`afx train`, `afx proxy train`); unset ones keep the
/// training's defaults, and with --resume only `--steps` counts (it extends the run).
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct BudgetArgs {
    #[arg(long)]
    pub steps: Option<u64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Clip length L in frames at 24 kHz.
    #[arg(long)]
    pub clip_frames: Option<usize>,
    #[arg(long)]
    pub learning_rate: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Trains a `T` and writes it to `out` (the weights with the best validation loss, with the
/// final model card). `run_dir` holds the checkpoint, `log.csv`, `curves.png` and `best.afx`.
/// With `resume`, the run in `run_dir` goes on from its checkpoint (its saved configuration
/// wins; `steps_override` may extend it); otherwise `run_dir` must not hold a checkpoint yet.
pub fn run<T: Training>(config: &T::Config, run_dir: &Path, out: &Path, resume: bool, steps_override: Option<u64>) -> Result<Summary> {
    let (model, mut state) = if resume {
        let (model, saved) = T::resume(run_dir)?;
        let mut state: RunState<T::Config> = serde_json::from_value(T::Config::upgrade_saved(saved)).map_err(|e| Error::ModelFile {
            what: run_dir.join(CHECKPOINT_MODEL).display().to_string(),
            reason: format!("not an afx training checkpoint: {e}"),
        })?;
        if let Some(steps) = steps_override {
            state.config.set_steps(steps);
        }
        state.config.check()?;
        (model, state)
    } else {
        // Checked before anything is built from it (a proxy of 0 channels cannot be built).
        config.check()?;
        ensure_new_run(run_dir)?;
        let state = RunState { config: config.clone(), step: 0, elapsed_s: 0.0, history: Vec::new(), best: None };
        (T::fresh(config)?, state)
    };
    let config = state.config.clone();
    let schedule = config.schedule();
    std::fs::create_dir_all(run_dir).map_err(|e| Error::RunDir { path: run_dir.to_path_buf(), reason: e.to_string() })?;
    let mut training = T::open(&config, model, state.step)?;

    let progress = crate::progress::bar(schedule.steps, "steps").with_position(state.step);
    let (session_start, elapsed_before) = (Instant::now(), state.elapsed_s);
    let mut window = Vec::new();
    for step in state.step..schedule.steps {
        let learning_rate = step_decay(schedule.learning_rate, schedule.steps, step);
        window.push(training.step(step, learning_rate)?);
        state.step = step + 1;
        state.elapsed_s = elapsed_before + session_start.elapsed().as_secs_f64();
        progress.set_position(state.step);

        let last = state.step == schedule.steps;
        let validation_due = state.step % schedule.validate_every == 0 || last;
        if state.step % schedule.log_every == 0 || validation_due {
            let validation = validation_due.then(|| training.validate());
            let row = LogRow { step: state.step, elapsed_s: state.elapsed_s, learning_rate, train_loss: None, validation };
            if record(row, &mut window, &mut state, &progress) {
                training.save_model(&run_dir.join(BEST_MODEL), &training.card(&state))?;
            }
        }
        if state.step % schedule.checkpoint_every == 0 || last {
            training.save_checkpoint(run_dir, &serde_json::to_value(&state).expect("serialisable state"))?;
            write_log(run_dir, &state.history, &config.title())?;
        }
    }
    progress.finish();
    // The best weights (the current ones if no validation ever ran) with the final card.
    let card = training.card(&state);
    if file::copy_with_card(&run_dir.join(BEST_MODEL), out, &card).is_err() {
        training.save_model(out, &card)?;
    }
    Ok(Summary {
        steps: state.step,
        elapsed_s: state.elapsed_s,
        best: state.best,
        last_validation: state.history.iter().rev().find_map(|r| r.validation),
    })
}

/// Refuses to start a run in a folder that already holds one (its checkpoint would be lost).
fn ensure_new_run(run_dir: &Path) -> Result<()> {
    if run_dir.join(CHECKPOINT_MODEL).exists() {
        return Err(Error::RunExists { run_dir: run_dir.to_path_buf() });
    }
    Ok(())
}

/// The step decay every training uses: `base` for the first 80 % of `steps`, then `base / 10`.
pub fn step_decay(base: f64, steps: u64, step: u64) -> f64 {
    if step * 5 >= steps * 4 { base / 10.0 } else { base }
}

/// Checks settings every training run has: counts of at least 1 (each named by its setting)
/// and a positive learning rate.
pub(crate) fn check_run_settings(counts: &[(&'static str, u64)], learning_rate: f64) -> Result<()> {
    if let Some((name, _)) = counts.iter().find(|(_, v)| *v == 0) {
        return Err(Error::Setting { name, value: "0".into(), expected: "at least 1".into() });
    }
    if !(learning_rate > 0.0 && learning_rate.is_finite()) {
        return Err(Error::Setting { name: "learning_rate", value: learning_rate.to_string(), expected: "a positive number".into() });
    }
    Ok(())
}

/// Closes a log window: `row` (whose training loss is the mean of `window`, which is emptied)
/// goes onto the progress bar and into the state's history. Returns whether its validation
/// loss beats the best so far, which it then becomes.
fn record<C>(mut row: LogRow, window: &mut Vec<f64>, state: &mut RunState<C>, progress: &indicatif::ProgressBar) -> bool {
    row.train_loss = (!window.is_empty()).then(|| window.iter().sum::<f64>() / window.len() as f64);
    window.clear();
    let improved = row.validation.is_some_and(|v| state.best.is_none_or(|(_, b)| v.loss < b));
    if let Some(v) = row.validation.filter(|_| improved) {
        state.best = Some((row.step, v.loss));
    }
    progress.set_message(row.summary());
    state.history.push(row);
    improved
}

impl LogRow {
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(train) = self.train_loss {
            parts.push(format!("loss {train:.3}"));
        }
        if let Some(v) = self.validation {
            parts.push(format!("val {:.3} (input {:.3})", v.loss, v.input_loss));
        }
        parts.join(", ")
    }
}

/// Writes the run's history as CSV (one row per log entry; empty fields where a row has no
/// value) and its curves as PNG.
fn write_log(run_dir: &Path, history: &[LogRow], title: &str) -> Result<()> {
    let mut csv = String::from("step,elapsed_s,learning_rate,train_loss,validation_loss,validation_input_loss\n");
    let field = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    for row in history {
        csv.push_str(&format!(
            "{},{:.1},{:.3e},{},{},{}\n",
            row.step,
            row.elapsed_s,
            row.learning_rate,
            field(row.train_loss),
            field(row.validation.map(|v| v.loss)),
            field(row.validation.map(|v| v.input_loss)),
        ));
    }
    write_bytes_atomic(&run_dir.join(LOG_CSV), csv.as_bytes())?;
    let png = plot::render_png(&curves(history, title), 1000, 600).map_err(|reason| Error::Plot { reason })?;
    write_bytes_atomic(&run_dir.join(CURVES_PNG), &png)?;
    Ok(())
}

/// The training loss, the validation loss and the unprocessed input's validation loss over
/// the steps.
fn curves(history: &[LogRow], title: &str) -> Chart {
    let series = |name: &str, value: &dyn Fn(&LogRow) -> Option<f64>| Series {
        name: name.into(),
        points: history.iter().filter_map(|r| value(r).map(|v| (r.step as f64, v))).collect(),
    };
    Chart {
        title: title.into(),
        x_label: "step".into(),
        y_label: "MR-STFT + L1 loss".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        series: vec![
            series("train", &|r| r.train_loss),
            series("validation", &|r| r.validation.map(|v| v.loss)),
            series("input (unprocessed)", &|r| r.validation.map(|v| v.input_loss)),
        ],
    }
}
