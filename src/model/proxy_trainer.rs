//! Fitting a [`Proxy`] to the effect it imitates: the proxy's outputs leave burn, the caller
//! computes the loss against the real effect's outputs and its gradient with respect to the
//! outputs (plain Rust, [`crate::spectral::MrStftBatch`]), and the gradient comes back through
//! the surrogate `Σ y · stop_gradient(g)`, as for the style network ([`super::trainer`]).

use burn::prelude::*;

use super::network::{matrix, rows};
use super::proxy::{Proxy, ProxyConfig};
use super::trainer::{Fitting, TrainerConfig};
use crate::Result;

/// A proxy being trained (flex with autodiff) and its Adam state.
pub type ProxyTrainer = Fitting<Proxy>;

impl ProxyTrainer {
    /// A fresh proxy for `proxy`, trained with `config`.
    pub fn new(proxy: &ProxyConfig, config: &TrainerConfig) -> Self {
        Self::start(proxy.init(&Device::flex().autodiff(), config.seed), config)
    }

    /// One Adam step on a batch of mono clips `inputs` (equal lengths) with the effect's
    /// normalised `knobs`; `loss_and_grad` receives the proxy's outputs and returns the loss and
    /// its gradient with respect to them. A non-finite loss or gradient is an error and leaves
    /// the proxy unchanged.
    pub fn step<F>(&mut self, inputs: &[Vec<f32>], knobs: &[Vec<f32>], loss_and_grad: F) -> Result<f64>
    where
        F: FnOnce(&[Vec<f32>]) -> (f64, Vec<Vec<f32>>),
    {
        let device = Device::flex().autodiff();
        let outputs = self.model_ref().forward(matrix(inputs, &device), matrix(knobs, &device));
        self.descend(outputs, loss_and_grad, "output")
    }

    /// The current proxy's outputs, without autodiff.
    pub fn predict(&self, inputs: &[Vec<f32>], knobs: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let device = Device::flex();
        rows(self.model().forward(matrix(inputs, &device), matrix(knobs, &device)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::trainer::Resumed;

    /// A proxy learns a knob-controlled gain (`y = (0.2 + 1.6·k₀)·x`, the only dependence on
    /// the knobs) from a squared error; a checkpoint resumes bit-identically.
    #[test]
    fn learns_a_knob_controlled_gain_and_resumes_exactly() {
        let config = ProxyConfig { channels: 8, kernel_size: 3, dilations: vec![1, 2], ..ProxyConfig::new("eq".parse().unwrap()) };
        let trainer_config = TrainerConfig { learning_rate: 3e-3, grad_clip_norm: None, seed: 2, dropout: 0.0 };
        type Rows = Vec<Vec<f32>>;
        let batch = |step: usize| -> (Rows, Rows, Rows) {
            let mut inputs = Vec::new();
            let mut knobs = Vec::new();
            let mut targets = Vec::new();
            for b in 0..4 {
                let phase = (step * 4 + b) as f32;
                let x: Vec<f32> = (0..64).map(|i| 0.5 * (i as f32 * 0.3 + phase).sin()).collect();
                let k0 = ((step * 7 + b * 3) % 10) as f32 / 10.0;
                targets.push(x.iter().map(|v| (0.2 + 1.6 * k0) * v).collect());
                inputs.push(x);
                knobs.push([vec![k0], vec![0.5; 17]].concat());
            }
            (inputs, knobs, targets)
        };
        let squared_error = |targets: &[Vec<f32>]| {
            let targets = targets.to_vec();
            move |y: &[Vec<f32>]| {
                let n = (y.len() * y[0].len()) as f64;
                let loss = y.iter().flatten().zip(targets.iter().flatten()).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / n;
                let grads = y
                    .iter()
                    .zip(&targets)
                    .map(|(a, b)| a.iter().zip(b).map(|(a, b)| (2.0 * (a - b) as f64 / n) as f32).collect())
                    .collect();
                (loss, grads)
            }
        };
        let mut trainer = ProxyTrainer::new(&config, &trainer_config);
        let mut losses = Vec::new();
        for step in 0..300 {
            let (inputs, knobs, targets) = batch(step);
            losses.push(trainer.step(&inputs, &knobs, squared_error(&targets)).unwrap());
        }
        let early = losses[..20].iter().sum::<f64>() / 20.0;
        let late = losses[280..].iter().sum::<f64>() / 20.0;
        assert!(late < 0.1 * early, "loss {early} -> {late}");

        let dir = tempfile::tempdir().unwrap();
        trainer.save_checkpoint(dir.path(), &serde_json::json!({ "step": 300 })).unwrap();
        let Resumed { trainer: mut resumed, state } = ProxyTrainer::resume(dir.path()).unwrap();
        assert_eq!(state["step"], 300);
        let (inputs, knobs, targets) = batch(300);
        let a = trainer.step(&inputs, &knobs, squared_error(&targets)).unwrap();
        let b = resumed.step(&inputs, &knobs, squared_error(&targets)).unwrap();
        assert_eq!(a, b);
        assert_eq!(trainer.predict(&inputs, &knobs), resumed.predict(&inputs, &knobs));
    }
}
