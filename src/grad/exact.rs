//! The exact estimator: the effect's hand-written adjoint.

use rayon::prelude::*;

use super::{ChainFx, Channels, Differentiable, Estimator, Example, output_loss_and_grad};
use crate::fx::{self, ChainTape, Knobs};
use crate::spectral::MrStftBatch;

/// Exact knob gradients from the adjoint of the true recursion (examples in parallel).
#[derive(Clone, Copy, Debug, Default)]
pub struct Exact;

impl<F: Differentiable + ?Sized> Estimator<F> for Exact {
    fn knob_gradients(&self, fx: &F, batch: &[Example], grad_output: &[Channels], _seed: u64) -> Vec<Vec<f32>> {
        batch.par_iter().zip(grad_output).map(|(e, g)| fx.knob_vjp(e.input, e.knobs, g)).collect()
    }
}

/// The loss of one input rendered through the chain with normalised `knobs`, and its exact
/// gradient with respect to the knobs, for any loss of the output: `output_loss` receives the
/// rendered channels and returns the loss and its gradient with respect to them.
pub fn chain_knob_gradient(
    fx: &ChainFx,
    input: &[Vec<f32>],
    knobs: &[f32],
    output_loss: impl FnOnce(&[Vec<f32>]) -> (f64, Channels),
) -> (f64, Vec<f32>) {
    let knobs = ChainFx::knobs(knobs);
    let inputs: Vec<&[f32]> = input.iter().map(|c| c.as_slice()).collect();
    let mut tape = ChainTape::default();
    let output = fx::forward(&knobs, fx.sample_rate, &inputs, &mut tape);
    let (value, grad_output) = output_loss(output);
    let gv: Vec<&[f32]> = grad_output.iter().map(|c| c.as_slice()).collect();
    let grad = fx::vjp(&knobs, fx.sample_rate, &inputs, &tape, &gv);
    (value, grad.knobs_normalized(&knobs).iter().map(|&v| v as f32).collect())
}

/// One exact training step of the effect island: renders every example through the chain with
/// its tape, evaluates the mean loss over all (example, channel) signals against `targets`, and
/// returns the loss, the rendered outputs and each example's normalised knob gradient. One
/// forward and one adjoint per example, examples in parallel.
pub fn chain_loss_and_grad(
    fx: &ChainFx,
    batch: &[Example],
    targets: &[Channels],
    loss: &mut MrStftBatch<f32>,
) -> (f64, Vec<Channels>, Vec<Vec<f32>>) {
    let rendered: Vec<(Knobs, ChainTape<f32>)> = batch
        .par_iter()
        .map(|e| {
            let knobs = ChainFx::knobs(e.knobs);
            let inputs: Vec<&[f32]> = e.input.iter().map(|c| c.as_slice()).collect();
            let mut tape = ChainTape::default();
            fx::forward(&knobs, fx.sample_rate, &inputs, &mut tape);
            (knobs, tape)
        })
        .collect();
    let outputs: Vec<&[Vec<f32>]> = rendered.iter().map(|(_, tape)| tape.output()).collect();
    let (value, grad_output) = output_loss_and_grad(&outputs, targets, loss);
    let knob_grads = batch
        .par_iter()
        .zip(&rendered)
        .zip(&grad_output)
        .map(|((e, (knobs, tape)), g)| {
            let inputs: Vec<&[f32]> = e.input.iter().map(|c| c.as_slice()).collect();
            let gv: Vec<&[f32]> = g.iter().map(|c| c.as_slice()).collect();
            let grad = fx::vjp(knobs, fx.sample_rate, &inputs, tape, &gv);
            grad.knobs_normalized(knobs).iter().map(|&v| v as f32).collect()
        })
        .collect();
    let outputs = rendered.into_iter().map(|(_, t)| t.output().to_vec()).collect();
    (value, outputs, knob_grads)
}
