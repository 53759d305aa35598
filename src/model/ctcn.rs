//! The cTCN baseline of DeepAFx-ST: the style network's encoder and controller condition a
//! TCN that *replaces* the effect chain, and all three are trained together, end to end, on the
//! output audio (the published `tcn1`). It has no interpretable knobs: the controller's outputs
//! (one per knob of the network's chain) are only a conditioning vector, except the slot of an
//! output gain in the chain's last effect (the compressor's make-up), which the TCN applies as
//! an exact gain as the published "channel" proxy does ([`ProxyConfig::exact_gain`]).
//!
//! Training: the network's output audio leaves burn, the caller computes the MR-STFT + L1 loss
//! and its gradient with respect to the audio in plain Rust, and the gradient comes back through
//! the surrogate `Σ y · stop_gradient(g)` (as in [`super::proxy_trainer`]), reaching the TCN,
//! the controller and the encoder in one backward pass.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::features::Features;
use super::network::{StyleNet, StyleNetConfig, matrix, rows};
use super::proxy::{Proxy, ProxyConfig};
use super::trainer::{Fitting, TrainerConfig};
use crate::{Error, Result};

/// Everything that determines a [`Ctcn`]'s shape. Stored in every cTCN file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CtcnConfig {
    pub net: StyleNetConfig,
    /// The TCN, a proxy of the network's chain (conditioned on its knobs; files from before
    /// chains were data name it `"effect": "chain"`, the default chain).
    pub tcn: ProxyConfig,
}

impl CtcnConfig {
    /// The default style network and the default proxy shape (with the identity skip, so that
    /// a fresh cTCN starts at the identity; the published one has no skip).
    pub fn new(net: StyleNetConfig) -> Self {
        let tcn = ProxyConfig::new(net.chain.clone());
        Self { net, tcn }
    }

    pub fn validate(&self) -> Result<()> {
        if self.tcn.chain != self.net.chain {
            return Err(Error::TcnChain { network: self.net.chain.to_string(), tcn: self.tcn.chain.to_string() });
        }
        self.net.validate()?;
        self.tcn.validate()
    }

    /// A cTCN with freshly drawn weights; the same `seed` gives the same weights.
    ///
    /// # Panics
    /// If the config does not [validate](Self::validate).
    pub fn init(&self, device: &Device, seed: u64) -> Ctcn {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        Ctcn { net: self.net.init(device, seed), tcn: self.tcn.init(device, seed.wrapping_add(1)) }
    }
}

/// The style network and the TCN it conditions.
#[derive(Module, Debug)]
pub struct Ctcn {
    pub net: StyleNet,
    pub tcn: Proxy,
}

impl Ctcn {
    pub fn config(&self) -> CtcnConfig {
        CtcnConfig { net: self.net.config().clone(), tcn: self.tcn.config().clone() }
    }

    /// The output `[batch, samples]` for each pair's features and mono input audio (equal
    /// lengths), on the parameters' device.
    ///
    /// # Panics
    /// As [`StyleNet::predict`], or if the audio rows differ in length.
    pub fn forward(&self, input: &[Features], reference: &[Features], audio: &[Vec<f32>]) -> Tensor<2> {
        let conditioning = self.net.forward_features(input, reference);
        self.tcn.forward(matrix(audio, &self.tcn.device()), conditioning)
    }

    /// [`Ctcn::forward`] as plain rows.
    pub fn process(&self, input: &[Features], reference: &[Features], audio: &[Vec<f32>]) -> Vec<Vec<f32>> {
        rows(self.forward(input, reference, audio))
    }
}

/// A cTCN being trained (flex with autodiff) and its Adam state.
pub type CtcnTrainer = Fitting<Ctcn>;

impl CtcnTrainer {
    pub fn new(ctcn: &CtcnConfig, config: &TrainerConfig) -> Self {
        Self::start(ctcn.init(&Device::flex().autodiff(), config.seed), config)
    }

    /// One Adam step on a batch: `loss_and_grad` receives the outputs for the pairs' features
    /// and input audio and returns the loss and its gradient with respect to the outputs. A
    /// non-finite loss or gradient is an error and leaves the model unchanged.
    pub fn step<F>(&mut self, input: &[Features], reference: &[Features], audio: &[Vec<f32>], loss_and_grad: F) -> Result<f64>
    where
        F: FnOnce(&[Vec<f32>]) -> (f64, Vec<Vec<f32>>),
    {
        let outputs = self.model_ref().forward(input, reference, audio);
        self.descend(outputs, loss_and_grad, "output")
    }

    /// The current model's outputs, without autodiff.
    pub fn predict(&self, input: &[Features], reference: &[Features], audio: &[Vec<f32>]) -> Vec<Vec<f32>> {
        self.model().process(input, reference, audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::tests::noise_features;

    fn tiny() -> CtcnConfig {
        let net = StyleNetConfig::default();
        CtcnConfig { tcn: ProxyConfig { channels: 4, kernel_size: 3, dilations: vec![1, 2], ..ProxyConfig::new(net.chain.clone()) }, net }
    }

    /// Training lowers a squared error to a fixed target on a fixed batch, which fails if the
    /// gradient did not reach the parameters or had the wrong sign; a checkpoint resumes
    /// bit-identically.
    #[test]
    fn training_lowers_the_loss_and_resumes_exactly() {
        let config = tiny();
        let trainer_config = TrainerConfig { learning_rate: 1e-3, grad_clip_norm: None, seed: 3, dropout: 0.0 };
        let features = &config.net.features;
        let input = noise_features(features, 2, 12_000, 1);
        let reference = noise_features(features, 2, 12_000, 2);
        let audio: Vec<Vec<f32>> = (0..2).map(|b| (0..256).map(|i| (0.05 * (i + 7 * b) as f32).sin() * 0.5).collect()).collect();
        // Target: the input at half the level, something the make-up slot and the TCN can do.
        let targets: Vec<Vec<f32>> = audio.iter().map(|a| a.iter().map(|v| 0.5 * v).collect()).collect();
        let squared_error = |y: &[Vec<f32>]| {
            let n = (y.len() * y[0].len()) as f64;
            let pairs = || y.iter().flatten().zip(targets.iter().flatten());
            let loss = pairs().map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / n;
            let grads =
                y.iter().zip(&targets).map(|(a, b)| a.iter().zip(b).map(|(a, b)| (2.0 * (a - b) as f64 / n) as f32).collect()).collect();
            (loss, grads)
        };
        let mut trainer = CtcnTrainer::new(&config, &trainer_config);
        let losses: Vec<f64> = (0..60).map(|_| trainer.step(&input, &reference, &audio, squared_error).unwrap()).collect();
        assert!(losses[59] < 0.2 * losses[0], "{} -> {}", losses[0], losses[59]);
        let predicted = trainer.predict(&input, &reference, &audio);
        assert!((squared_error(&predicted).0 - losses[59]).abs() < losses[59]);

        let dir = tempfile::tempdir().unwrap();
        trainer.save_checkpoint(dir.path(), &serde_json::json!({ "step": 60 })).unwrap();
        let crate::model::trainer::Resumed { trainer: mut resumed, state } = CtcnTrainer::resume(dir.path()).unwrap();
        assert_eq!(state["step"], 60);
        let a = trainer.step(&input, &reference, &audio, squared_error).unwrap();
        let b = resumed.step(&input, &reference, &audio, squared_error).unwrap();
        assert_eq!(a, b);
        assert_eq!(trainer.predict(&input, &reference, &audio), resumed.predict(&input, &reference, &audio));
    }

    /// The TCN imitates the network's chain: a fresh config's TCN takes one value per knob of
    /// it; a TCN of another chain is refused.
    #[test]
    fn only_a_tcn_of_the_networks_chain_validates() {
        let mut config = tiny();
        assert!(config.validate().is_ok());
        assert_eq!(CtcnConfig::new(config.net.clone()).tcn.chain, config.net.chain);
        assert_eq!(config.tcn.chain.num_knobs(), config.net.num_knobs);
        config.tcn.chain = "eq".parse().unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("network's chain `eq,comp`, not those of `eq`"));
    }
}
