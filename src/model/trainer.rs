//! One optimisation step of the style network through an effect chain that lives outside burn.
//!
//! The network predicts normalised knobs `p` (`[batch, knobs]`); the caller renders, measures
//! the loss `L` and returns `g = ∂L/∂p` by whatever estimator it likes (exact adjoint, SPSA,
//! finite differences). Burn then differentiates the surrogate `S = Σ p · stop_gradient(g)`,
//! whose parameter gradient `J_pᵀ g` is exactly `∂L/∂θ` by the chain rule, so the optimiser
//! sees the same update as if `L` had been computed inside burn. `S`'s value means nothing; the
//! step reports the caller's `L`.

use std::path::{Path, PathBuf};

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::features::Features;
use super::file::{self, Stored};
use super::network::{StyleNet, StyleNetConfig, matrix, rows};
use crate::atomic::write_bytes_atomic;
use crate::{Error, Result};

/// The model file of a checkpoint folder; its card holds the caller's training state and a
/// `CheckpointLink` to the optimiser file.
pub const CHECKPOINT_MODEL: &str = "checkpoint.afx";

/// Optimiser settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Adam's step size.
    pub learning_rate: f64,
    /// If set, each parameter tensor's gradient is rescaled to at most this L2 norm before the
    /// Adam update (burn clips per tensor, not over the whole model).
    pub grad_clip_norm: Option<f32>,
    /// Seeds the initial weights; the same seed and the same batches give the same training
    /// (on one machine with the same number of threads).
    pub seed: u64,
    /// Dropout in the style network's controller: in each training step every one of its
    /// inputs (the joint embedding) and hidden units is dropped with this probability (0: none;
    /// checkpoints saved without it have none). The masks are drawn from the seed and the
    /// batch's features, so a resumed run draws the masks the uninterrupted one would have.
    #[serde(default)]
    pub dropout: f64,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self { learning_rate: 1e-3, grad_clip_norm: None, seed: 0, dropout: 0.0 }
    }
}

/// A module being trained (on burn's Flex CPU backend with autodiff) and its Adam state: the
/// style network ([`Trainer`]), a proxy ([`super::ProxyTrainer`]) or a cTCN
/// ([`super::CtcnTrainer`]). Each kind adds its own `new`, `step` and `predict`; the optimiser,
/// the schedule's learning rate and the checkpoints are written once, here.
pub struct Fitting<M> {
    model: M,
    optimizer: ModuleOptimizer,
    config: TrainerConfig,
}

/// The style network being trained.
pub type Trainer = Fitting<StyleNet>;

/// What a checkpoint's model card says about the optimiser's state, which lives beside it in
/// its own file (burn's burnpack of Adam's moments and step counts).
#[derive(Serialize, Deserialize)]
struct CheckpointLink {
    /// File name, in the checkpoint folder, of the optimiser state.
    optimizer_file: String,
    /// FNV-1a hash of that file: a model and an optimiser state from different steps never mix.
    optimizer_fnv: u64,
    trainer: TrainerConfig,
}

/// A trainer restored from a checkpoint, with the training state its caller saved.
pub struct Resumed<M> {
    pub trainer: Fitting<M>,
    pub state: serde_json::Value,
}

impl<M: Stored> Fitting<M> {
    /// Trains `model` (on the autodiff device) with a fresh optimiser.
    pub(super) fn start(model: M, config: &TrainerConfig) -> Self {
        Self { model, optimizer: adam(config), config: config.clone() }
    }

    /// Changes the step size from the next step on (for schedules).
    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        self.config.learning_rate = learning_rate;
    }

    /// The module being trained, with autodiff.
    pub(super) fn model_ref(&self) -> &M {
        &self.model
    }

    /// A copy of the current module without autodiff, to save or to run.
    pub fn model(&self) -> M {
        self.model.valid()
    }

    /// Saves the module and Adam's state into the folder `dir` (created if missing) as
    /// [`CHECKPOINT_MODEL`], a model file that `afx transfer --model` can also use (for a style
    /// network), whose card is `state` (any JSON object: the caller's step, history, settings)
    /// plus the link to the optimiser file. The optimiser file is written first under a name of
    /// its own and the model file last, each atomically, and the previous optimiser file is
    /// removed only after that: an interruption at any point leaves a consistent checkpoint.
    pub fn save_checkpoint(&self, dir: &Path, state: &serde_json::Value) -> Result<()> {
        let fail = |reason: String| Error::ModelFile { what: dir.display().to_string(), reason };
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create the checkpoint folder: {e}")))?;
        let optimizer = self.optimizer.into_bytes().map_err(|e| fail(format!("cannot serialise Adam's state: {e}")))?;
        let optimizer_fnv = file::fnv1a64(&optimizer);
        let optimizer_file = format!("optimizer-{optimizer_fnv:016x}.bpk");
        write_bytes_atomic(&dir.join(&optimizer_file), &optimizer).map_err(|e| fail(e.to_string()))?;
        let previous = read_link(dir).ok();
        let mut card = state.clone();
        let link = CheckpointLink { optimizer_file: optimizer_file.clone(), optimizer_fnv, trainer: self.config.clone() };
        card["checkpoint"] = serde_json::to_value(link).map_err(|e| fail(e.to_string()))?;
        let bytes = file::encode(&self.model(), &card).map_err(fail)?;
        write_bytes_atomic(&dir.join(CHECKPOINT_MODEL), &bytes).map_err(|e| fail(e.to_string()))?;
        if let Some(old) = previous.filter(|old| old.optimizer_file != optimizer_file) {
            // A stale optimiser file is harmless; failing to remove it is not an error.
            let _ = std::fs::remove_file(dir.join(old.optimizer_file));
        }
        Ok(())
    }

    /// Restores a trainer saved by [`save_checkpoint`](Self::save_checkpoint): the same
    /// module, Adam moments and step counts, learning rate and clipping, so that training goes
    /// on exactly as if it had never stopped. Returns the saved state with it.
    pub fn resume(dir: &Path) -> Result<Resumed<M>> {
        let model_path = dir.join(CHECKPOINT_MODEL);
        let what = model_path.display().to_string();
        let fail = |reason: String| Error::ModelFile { what: what.clone(), reason };
        let bytes = std::fs::read(&model_path).map_err(|e| fail(e.to_string()))?;
        let (model, mut state) = file::decode::<M>(&bytes, &what, &Device::flex().autodiff())?;
        let link: CheckpointLink = link_of(&state).map_err(fail)?;
        let optimizer_path: PathBuf = dir.join(&link.optimizer_file);
        let optimizer = std::fs::read(&optimizer_path).map_err(|e| fail(format!("optimiser state {}: {e}", optimizer_path.display())))?;
        if file::fnv1a64(&optimizer) != link.optimizer_fnv {
            return Err(fail(format!("optimiser state {} does not belong to this checkpoint", optimizer_path.display())));
        }
        let optimizer = adam(&link.trainer)
            .from_bytes(Bytes::from_bytes_vec(optimizer))
            .map_err(|e| fail(format!("unreadable optimiser state: {e}")))?;
        if let Some(object) = state.as_object_mut() {
            object.remove("checkpoint");
        }
        Ok(Resumed { trainer: Self { model, optimizer, config: link.trainer }, state })
    }

    /// One Adam step from `outputs` of the module (`[rows, n]`, on the autodiff device) through
    /// the surrogate ([`surrogate_gradients`]); returns the caller's loss. A non-finite loss or
    /// gradient is an error and leaves the module unchanged.
    pub(super) fn descend<F>(&mut self, outputs: Tensor<2>, loss_and_grad: F, what: &'static str) -> Result<f64>
    where
        F: FnOnce(&[Vec<f32>]) -> (f64, Vec<Vec<f32>>),
    {
        let (loss, grads) = surrogate_gradients(&self.model, outputs, loss_and_grad, what)?;
        self.model = self.optimizer.step(self.config.learning_rate, self.model.clone(), grads);
        Ok(loss)
    }
}

impl Trainer {
    /// A freshly initialised network for `net`, trained with `config`.
    ///
    /// # Panics
    /// If `net` does not [validate](StyleNetConfig::validate).
    pub fn new(net: &StyleNetConfig, config: &TrainerConfig) -> Self {
        Self::start(net.init(&Device::flex().autodiff(), config.seed), config)
    }

    /// A network that starts from the weights of the model file at `path` (fine-tuning), with
    /// a fresh optimiser.
    pub fn from_model_file(path: &Path, config: &TrainerConfig) -> Result<Self> {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::ModelFile { what: what.clone(), reason: e.to_string() })?;
        let (net, _) = file::decode::<StyleNet>(&bytes, &what, &Device::flex().autodiff())?;
        Ok(Self::start(net, config))
    }

    /// Reads the network's output level as `level` from now on (see
    /// [`StyleNet::with_output_level`]).
    pub fn set_output_level(&mut self, level: crate::fx::level::OutputLevel) {
        self.model = self.model.clone().with_output_level(level);
    }

    /// One Adam step on a batch of (input, reference) pairs. `loss_and_grad` receives the
    /// predicted normalised knobs, one vector per pair, and returns the loss and its gradient
    /// with respect to those knobs; the loss is returned. A non-finite loss or gradient is an
    /// error and leaves the network unchanged.
    ///
    /// # Panics
    /// If the two sides have different batch sizes, a side's clips have different numbers of
    /// frames or the wrong bands, or the gradient does not have one value per knob per pair.
    pub fn step<F>(&mut self, input: &[Features], reference: &[Features], loss_and_grad: F) -> Result<f64>
    where
        F: FnOnce(&[Vec<f32>]) -> (f64, Vec<Vec<f32>>),
    {
        let knobs = self.knobs(input, reference);
        self.descend(knobs, loss_and_grad, "knob")
    }

    /// The predicted knobs of a training step, with the dropout masks of the batch.
    fn knobs(&self, input: &[Features], reference: &[Features]) -> Tensor<2> {
        if self.config.dropout > 0.0 {
            let mask_seed = self.config.seed ^ features_fnv(input);
            self.model.forward_features_dropped(input, reference, self.config.dropout, mask_seed)
        } else {
            self.model.forward_features(input, reference)
        }
    }

    /// The loss and the parameter gradients of one step, through the surrogate.
    #[cfg(test)]
    fn gradients<F>(&self, input: &[Features], reference: &[Features], loss_and_grad: F) -> Result<(f64, GradientsParams)>
    where
        F: FnOnce(&[Vec<f32>]) -> (f64, Vec<Vec<f32>>),
    {
        surrogate_gradients(&self.model, self.knobs(input, reference), loss_and_grad, "knob")
    }

    /// The current network's knobs for each (input, reference) pair, without autodiff.
    pub fn predict(&self, input: &[Features], reference: &[Features]) -> Vec<Vec<f32>> {
        self.model.valid().predict(input, reference)
    }
}

/// FNV-1a hash of a batch's feature values: the dropout masks' seed, a function of the batch.
fn features_fnv(features: &[Features]) -> u64 {
    let bytes: Vec<u8> = features.iter().flat_map(|f| f.values.iter().flat_map(|v| v.to_le_bytes())).collect();
    file::fnv1a64(&bytes)
}

/// The caller's loss and `module`'s parameter gradients through the surrogate
/// `Σ y · stop_gradient(g)` (see the module's documentation): `outputs` (`[rows, n]`, on the
/// autodiff device) leave burn as plain rows, `loss_and_grad` returns the loss and its gradient
/// with respect to them, and burn differentiates the surrogate. A non-finite loss or gradient
/// is an error; `what` names the outputs in it (knob, output).
///
/// # Panics
/// If the gradient does not have one value per output.
fn surrogate_gradients<M: Module, F>(module: &M, outputs: Tensor<2>, loss_and_grad: F, what: &'static str) -> Result<(f64, GradientsParams)>
where
    F: FnOnce(&[Vec<f32>]) -> (f64, Vec<Vec<f32>>),
{
    let [batch, n] = outputs.dims();
    let (loss, grads) = loss_and_grad(&rows(outputs.clone().detach()));
    assert!(
        grads.len() == batch && grads.iter().all(|g| g.len() == n),
        "the {what} gradient needs {n} values for each of the {batch} rows"
    );
    if !loss.is_finite() || !grads.iter().flatten().all(|g| g.is_finite()) {
        return Err(Error::NonFiniteStep { loss, what });
    }
    let surrogate = (outputs.clone() * matrix(&grads, &outputs.device()).detach()).sum();
    Ok((loss, GradientsParams::from_grads(surrogate.backward(), module)))
}

/// Adam as the trainer uses it, with `config`'s clipping.
fn adam(config: &TrainerConfig) -> ModuleOptimizer {
    AdamConfig::new().with_grad_clipping(config.grad_clip_norm.map(GradientClippingConfig::Norm)).init()
}

/// The optimiser link of the checkpoint in `dir`.
fn read_link(dir: &Path) -> Result<CheckpointLink, String> {
    let bytes = std::fs::read(dir.join(CHECKPOINT_MODEL)).map_err(|e| e.to_string())?;
    link_of(&file::card_of(&bytes)?)
}

fn link_of(card: &serde_json::Value) -> Result<CheckpointLink, String> {
    let link = card.get("checkpoint").ok_or("a model file, but not a training checkpoint")?;
    serde_json::from_value(link.clone()).map_err(|e| format!("unreadable checkpoint link: {e}"))
}

#[cfg(test)]
mod tests {
    use burn::module::{ModuleVisitor, Param};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::fx::NUM_KNOBS;
    use crate::model::features::{ANALYSIS_RATE_HZ, LogMel};
    use crate::model::network::dropout_mask;
    use crate::model::network::tests::noise_features;

    /// `Σ (p − t)²` over every knob of every pair and its gradient `2(p − t)`, in plain Rust.
    fn squared_error(knobs: &[Vec<f32>], targets: &[Vec<f32>]) -> (f64, Vec<Vec<f32>>) {
        let pairs = || knobs.iter().zip(targets).map(|(p, t)| p.iter().zip(t));
        let loss = pairs().flatten().map(|(p, t)| ((p - t) as f64).powi(2)).sum();
        (loss, pairs().map(|pair| pair.map(|(p, t)| 2.0 * (p - t)).collect()).collect())
    }

    /// Noise with a spectral tilt (a mix of its one-pole low- and high-passed parts, `tilt` in
    /// [0, 1] from dark to bright) at a level in dB.
    fn tilted_noise(rng: &mut ChaCha8Rng, samples: usize, tilt: f32, level_db: f32) -> Vec<f32> {
        let gain = 10f32.powf(level_db / 20.0);
        let mut low = 0.0;
        (0..samples)
            .map(|_| {
                let x: f32 = rng.random_range(-1.0..1.0);
                low += 0.1 * (x - low);
                gain * ((1.0 - tilt) * 3.0 * low + tilt * (x - low))
            })
            .collect()
    }

    /// Pairs whose target knobs are a fixed mix of the reference-minus-input tilt and level
    /// differences: a style mapping with a known answer.
    fn tilt_level_pairs(count: usize, seed: u64) -> (Vec<Features>, Vec<Features>, Vec<Vec<f32>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut front = LogMel::new(&StyleNetConfig::default().features);
        let samples = ANALYSIS_RATE_HZ as usize / 2;
        let (mut input, mut reference, mut targets) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..count {
            let (tilt_in, tilt_ref): (f32, f32) = (rng.random(), rng.random());
            let (level_in, level_ref) = (rng.random_range(-30.0..0.0), rng.random_range(-30.0..0.0));
            input.push(front.compute(&tilted_noise(&mut rng, samples, tilt_in, level_in)).unwrap());
            reference.push(front.compute(&tilted_noise(&mut rng, samples, tilt_ref, level_ref)).unwrap());
            let (tilt, level) = (tilt_ref - tilt_in, (level_ref - level_in) / 30.0);
            targets.push(
                (0..NUM_KNOBS)
                    .map(|k| {
                        let angle = k as f32 * std::f32::consts::TAU / NUM_KNOBS as f32;
                        0.5 + 0.2 * (tilt * angle.cos() + level * angle.sin())
                    })
                    .collect(),
            );
        }
        (input, reference, targets)
    }

    fn mean_squared_error(trainer: &Trainer, data: &(Vec<Features>, Vec<Features>, Vec<Vec<f32>>)) -> f64 {
        squared_error(&trainer.predict(&data.0, &data.1), &data.2).0 / (data.2.len() * NUM_KNOBS) as f64
    }

    #[test]
    fn learns_a_mapping_with_a_known_answer() {
        let train = tilt_level_pairs(48, 1);
        let held_out = tilt_level_pairs(16, 2);
        let mut trainer = Trainer::new(&StyleNetConfig::default(), &TrainerConfig { seed: 3, ..Default::default() });
        let error = |trainer: &Trainer| (mean_squared_error(trainer, &train), mean_squared_error(trainer, &held_out));
        let (train_before, held_before) = error(&trainer);
        for epoch in 0..12 {
            if epoch == 8 {
                trainer.set_learning_rate(3e-4);
            }
            for start in (0..48).step_by(8) {
                let range = start..start + 8;
                let targets = &train.2[range.clone()];
                trainer.step(&train.0[range.clone()], &train.1[range], |p| squared_error(p, targets)).unwrap();
            }
        }
        let (train_after, held_after) = error(&trainer);
        eprintln!("mean squared error: train {train_before:.2e} -> {train_after:.2e}");
        eprintln!("mean squared error: held out {held_before:.2e} -> {held_after:.2e}");
        assert!(train_after < train_before / 100.0, "train {train_before} -> {train_after}");
        assert!(held_after < held_before / 30.0 && held_after < 5e-4, "held out {held_before} -> {held_after}");
    }

    /// Compares two sets of parameter gradients of the same module, tensor by tensor.
    struct GradientDifference<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        /// Largest `|a − b| / max |a|` over all tensors.
        worst: f32,
        tensors: usize,
    }

    impl ModuleVisitor for GradientDifference<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = |g: &GradientsParams| {
                g.get::<D>(param.id).expect("every parameter has a gradient").into_data().try_into_vec::<f32>().unwrap()
            };
            let (a, b) = (values(self.a), values(self.b));
            let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let diff = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(scale > 0.0, "a parameter without gradient");
            self.worst = self.worst.max(diff / scale);
            self.tensors += 1;
        }
    }

    /// The surrogate with a gradient computed in plain Rust gives the parameter gradients of the
    /// same loss computed inside burn.
    #[test]
    fn surrogate_gradients_match_the_loss_inside_burn() {
        let config = StyleNetConfig::default();
        let trainer = Trainer::new(&config, &TrainerConfig::default());
        let input = noise_features(&config.features, 4, 20_000, 1);
        let reference = noise_features(&config.features, 4, 30_000, 2);
        let targets: Vec<Vec<f32>> = (0..4).map(|b| (0..NUM_KNOBS).map(|k| ((b * 7 + k) % 10) as f32 / 10.0).collect()).collect();

        let (_, bridged) = trainer.gradients(&input, &reference, |p| squared_error(p, &targets)).unwrap();

        let model = &trainer.model;
        let knobs = model.forward_features(&input, &reference);
        let target = Tensor::<2>::from_data(TensorData::new(targets.concat(), [4, NUM_KNOBS]), &model.device());
        let direct_loss = (knobs - target).square().sum();
        let direct = GradientsParams::from_grads(direct_loss.backward(), model);

        let mut difference = GradientDifference { a: &direct, b: &bridged, worst: 0.0, tensors: 0 };
        model.visit(&mut difference);
        eprintln!("{} tensors, worst relative difference {:e}", difference.tensors, difference.worst);
        assert_eq!(difference.tensors, 16);
        assert!(difference.worst < 1e-5, "{}", difference.worst);
    }

    #[test]
    fn training_is_reproducible() {
        let config = StyleNetConfig::default();
        let (input, reference, targets) = tilt_level_pairs(4, 5);
        let run = || {
            let mut trainer = Trainer::new(&config, &TrainerConfig { seed: 9, ..Default::default() });
            let losses: Vec<f64> = (0..3).map(|_| trainer.step(&input, &reference, |p| squared_error(p, &targets)).unwrap()).collect();
            (losses, trainer.predict(&input, &reference))
        };
        assert_eq!(run(), run());
    }

    /// A trainer started from a model file predicts what the saved network predicts, and
    /// trains on from there.
    #[test]
    fn fine_tuning_starts_from_the_saved_weights() {
        let (input, reference, targets) = tilt_level_pairs(4, 7);
        let mut original = Trainer::new(&StyleNetConfig::default(), &TrainerConfig { seed: 4, ..Default::default() });
        original.step(&input, &reference, |p| squared_error(p, &targets)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("start.afx");
        file::save(&path, &original.model(), &crate::model::ModelCard::new()).unwrap();
        let mut tuned = Trainer::from_model_file(&path, &TrainerConfig::default()).unwrap();
        assert_eq!(tuned.predict(&input, &reference), original.predict(&input, &reference));
        let before = tuned.step(&input, &reference, |p| squared_error(p, &targets)).unwrap();
        let after = tuned.step(&input, &reference, |p| squared_error(p, &targets)).unwrap();
        assert!(after < before, "{before} -> {after}");
        assert!(Trainer::from_model_file(&dir.path().join("missing.afx"), &TrainerConfig::default()).is_err());
    }

    /// Adam divides by `√v + ε` with `ε = 1e-5`, so gradients clipped far below `ε` barely move
    /// the weights: the clipping is applied.
    #[test]
    fn gradient_clipping_is_applied() {
        let (input, reference, targets) = tilt_level_pairs(4, 6);
        let change = |grad_clip_norm| {
            let config = TrainerConfig { grad_clip_norm, ..Default::default() };
            let mut trainer = Trainer::new(&StyleNetConfig::default(), &config);
            let before = trainer.predict(&input, &reference);
            trainer.step(&input, &reference, |p| squared_error(p, &targets)).unwrap();
            let after = trainer.predict(&input, &reference);
            before.iter().flatten().zip(after.iter().flatten()).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        };
        let (clipped, free) = (change(Some(1e-9)), change(None));
        assert!(clipped < 1e-2 * free, "clipped {clipped}, free {free}");
    }

    #[test]
    fn non_finite_gradients_are_refused_and_change_nothing() {
        let config = StyleNetConfig::default();
        let feats = noise_features(&config.features, 2, 10_000, 4);
        let mut trainer = Trainer::new(&config, &TrainerConfig::default());
        let before = trainer.predict(&feats, &feats);
        let result = trainer.step(&feats, &feats, |p| (1.0, vec![vec![f32::NAN; NUM_KNOBS]; p.len()]));
        assert!(matches!(result, Err(Error::NonFiniteStep { what: "knob", .. })));
        assert_eq!(trainer.predict(&feats, &feats), before);
    }

    /// Dropout acts in training steps only: the same batch and seed draw the same masks, a
    /// dropped forward pass differs from the plain one and `p = 0` is the plain one exactly;
    /// predictions never drop; and a step with dropout moves the weights elsewhere than one
    /// without. The masks zero a share `p` of the units and scale the rest by `1 / (1 − p)`.
    #[test]
    fn dropout_acts_in_training_steps_only() {
        let (input, reference, targets) = tilt_level_pairs(4, 8);
        let trainer = Trainer::new(&StyleNetConfig::default(), &TrainerConfig { seed: 5, dropout: 0.5, ..Default::default() });
        let dropped = |p, seed| rows(trainer.model.forward_features_dropped(&input, &reference, p, seed));
        let plain = rows(trainer.model.forward_features(&input, &reference));
        assert_eq!(dropped(0.0, 1), plain);
        assert_eq!(dropped(0.5, 1), dropped(0.5, 1));
        assert_ne!(dropped(0.5, 1), dropped(0.5, 2));
        assert_ne!(dropped(0.5, 1), plain);
        let prediction = trainer.predict(&input, &reference);
        assert_eq!(prediction, trainer.predict(&input, &reference));
        let close = prediction.iter().flatten().zip(plain.iter().flatten()).all(|(a, b)| (a - b).abs() < 1e-6);
        assert!(close, "prediction is the plain forward pass");

        let after_one_step = |dropout| {
            let mut trainer = Trainer::new(&StyleNetConfig::default(), &TrainerConfig { seed: 5, dropout, ..Default::default() });
            trainer.step(&input, &reference, |p| squared_error(p, &targets)).unwrap();
            trainer.predict(&input, &reference)
        };
        assert_ne!(after_one_step(0.5), after_one_step(0.0));

        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mask = dropout_mask(&mut rng, 0.2, 100_000);
        let dropped_share = mask.iter().filter(|&&m| m == 0.0).count() as f64 / mask.len() as f64;
        assert!((dropped_share - 0.2).abs() < 0.005, "{dropped_share}");
        assert!(mask.iter().all(|&m| m == 0.0 || m == 1.25));
    }

    /// Saving after two steps and resuming gives exactly the network that four uninterrupted
    /// steps give: the weights, Adam's moments and its step count all come back (a trainer
    /// resumed without the moments would take a different third step), and so do the dropout
    /// masks.
    #[test]
    fn resuming_a_checkpoint_continues_training_exactly() {
        let (input, reference, targets) = tilt_level_pairs(4, 7);
        let config = TrainerConfig { learning_rate: 3e-3, grad_clip_norm: Some(1.0), seed: 4, dropout: 0.2 };
        let step = |trainer: &mut Trainer| trainer.step(&input, &reference, |p| squared_error(p, &targets)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = Trainer::new(&StyleNetConfig::default(), &config);
        step(&mut trainer);
        step(&mut trainer);
        trainer.save_checkpoint(dir.path(), &serde_json::json!({"step": 2})).unwrap();
        step(&mut trainer);
        step(&mut trainer);

        let Resumed { trainer: mut resumed, state } = Trainer::resume(dir.path()).unwrap();
        assert_eq!(state, serde_json::json!({"step": 2}));
        assert_eq!(resumed.config, config);
        step(&mut resumed);
        step(&mut resumed);
        assert_eq!(resumed.predict(&input, &reference), trainer.predict(&input, &reference));

        let mut fresh_adam = Trainer::resume(dir.path()).unwrap().trainer;
        fresh_adam.optimizer = adam(&config);
        step(&mut fresh_adam);
        step(&mut fresh_adam);
        assert_ne!(fresh_adam.predict(&input, &reference), trainer.predict(&input, &reference));

        // A second save replaces the optimiser file; a damaged one is refused.
        resumed.save_checkpoint(dir.path(), &serde_json::json!({"step": 4})).unwrap();
        let optimizer_files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "bpk"))
            .collect();
        assert_eq!(optimizer_files.len(), 1);
        let mut bytes = std::fs::read(&optimizer_files[0]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&optimizer_files[0], bytes).unwrap();
        let error = Trainer::resume(dir.path()).err().unwrap().to_string();
        assert!(error.contains("does not belong to this checkpoint"), "{error}");
        let missing = Trainer::resume(&dir.path().join("nothing")).err().unwrap().to_string();
        assert!(missing.contains("checkpoint.afx"), "{missing}");
    }

    /// Throwaway timing (best of 10, to see past other processes): the features of a 10 s clip
    /// (target: well under 5 ms), and the forward pass and training step for the training batch
    /// of 6 pairs of 5.46 s clips: `cargo test --release --lib time_model -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn time_model() {
        let best_ms = |run: &mut dyn FnMut()| crate::bench::best_of(10, run) * 1e3;
        let config = StyleNetConfig::default();
        let clip = crate::example::groove(10.0, ANALYSIS_RATE_HZ, 1, 3).channels.remove(0);
        let mut front = LogMel::new(&config.features);
        let features = best_ms(&mut || {
            front.compute(&clip).unwrap();
        });
        let input = noise_features(&config.features, 6, 131_072, 1);
        let reference = noise_features(&config.features, 6, 131_072, 2);
        let mut trainer = Trainer::new(&config, &TrainerConfig::default());
        let net = trainer.model();
        let forward = best_ms(&mut || {
            net.predict(&input, &reference);
        });
        let targets = vec![vec![0.5; NUM_KNOBS]; 6];
        let step = best_ms(&mut || {
            trainer.step(&input, &reference, |p| squared_error(p, &targets)).unwrap();
        });
        println!("features of 10 s: {features:.2} ms");
        println!("6 pairs of {} frames: forward {forward:.1} ms, training step {step:.1} ms", input[0].frames);
    }
}
