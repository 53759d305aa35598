//! The exact estimator: the effect's hand-written adjoint.

use rayon::prelude::*;

use super::{ChainFx, Channels, Differentiable, Estimator, Example, Levels, add_makeup, score};
use crate::fx::{self, ChainKnobs, ChainTape};
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
/// rendered channels and returns the loss and its gradient with respect to them. With
/// `reference_db`, the output is first scaled to that level plus the make-up knob
/// ([`crate::fx::level::OutputLevel::Reference`]).
pub fn chain_knob_gradient(
    fx: &ChainFx,
    input: &[Vec<f32>],
    knobs: &[f32],
    reference_db: Option<f64>,
    output_loss: impl FnOnce(&[Vec<f32>]) -> (f64, Channels),
) -> (f64, Vec<f32>) {
    let example = Example { input, knobs };
    let physical = fx.knobs(knobs);
    let inputs: Vec<&[f32]> = input.iter().map(|c| c.as_slice()).collect();
    let mut tape = ChainTape::default();
    let mut output = vec![fx::forward(&physical, fx.sample_rate, &inputs, &mut tape).to_vec()];
    let levels = Levels::new(fx, reference_db.map(|db| vec![db]), 0.0);
    let stages = levels.apply(std::slice::from_ref(&example), &mut output);
    let (value, grad_output) = output_loss(&output[0]);
    let mut grad_output = vec![grad_output];
    let makeup = stages.map(|s| (levels.output_gain, levels.backward(&s, std::slice::from_ref(&example), &output, &mut grad_output)));
    let gv: Vec<&[f32]> = grad_output[0].iter().map(|c| c.as_slice()).collect();
    let grad = fx::vjp(&physical, fx.sample_rate, &inputs, &tape, &gv);
    let mut grads = vec![fx.knob_gradient(&grad, &physical)];
    add_makeup(&mut grads, makeup);
    (value, grads.remove(0))
}

/// One exact training step of the effect island: renders every example through the chain with
/// its tape, scales the outputs to their reference levels if `levels` has them, evaluates the
/// mean loss over all (example, channel) signals against `targets` (plus the level term of
/// `levels`), and returns the loss, the
/// outputs and each example's normalised knob gradient. One forward and one adjoint per
/// example, examples in parallel.
pub fn chain_loss_and_grad(
    fx: &ChainFx,
    batch: &[Example],
    targets: &[Channels],
    levels: Option<&Levels>,
    loss: &mut MrStftBatch<f32>,
) -> (f64, Vec<Channels>, Vec<Vec<f32>>) {
    let rendered: Vec<(ChainKnobs, ChainTape<f32>)> = batch
        .par_iter()
        .map(|e| {
            let knobs = fx.knobs(e.knobs);
            let inputs: Vec<&[f32]> = e.input.iter().map(|c| c.as_slice()).collect();
            let mut tape = ChainTape::default();
            fx::forward(&knobs, fx.sample_rate, &inputs, &mut tape);
            (knobs, tape)
        })
        .collect();
    let mut outputs: Vec<Channels> = rendered.iter().map(|(_, tape)| tape.output().to_vec()).collect();
    let (value, grad_output, makeup) = score(batch, &mut outputs, targets, levels, loss);
    let mut knob_grads: Vec<Vec<f32>> = batch
        .par_iter()
        .zip(&rendered)
        .zip(&grad_output)
        .map(|((e, (knobs, tape)), g)| {
            let inputs: Vec<&[f32]> = e.input.iter().map(|c| c.as_slice()).collect();
            let gv: Vec<&[f32]> = g.iter().map(|c| c.as_slice()).collect();
            let grad = fx::vjp(knobs, fx.sample_rate, &inputs, tape, &gv);
            fx.knob_gradient(&grad, knobs)
        })
        .collect();
    add_makeup(&mut knob_grads, makeup);
    (value, outputs, knob_grads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::level::level_db;
    use crate::fx::params::default_chain::{MAKEUP_DB, RATIO, THRESHOLD_DB};
    use crate::grad::loss_and_knob_gradients;
    use crate::grad::test_support::{batch, examples};
    use crate::spectral::MrStftConfig;

    /// A smooth loss (spectral convergence alone), so central differences are clean.
    fn smooth_loss() -> MrStftBatch<f32> {
        let config = MrStftConfig {
            fft_sizes: vec![256, 1024],
            w_log_mag: 0.0,
            w_lin_mag: 0.0,
            w_sc: 1.0,
            l1_weight: 0.0,
            ..MrStftConfig::default()
        };
        MrStftBatch::new(config)
    }

    /// With the outputs scaled to reference levels and a level term in the loss, the exact knob
    /// gradients (the level term's gradient, the level stage's adjoint, the chain's adjoint, and
    /// the make-up knob's share through the target level) match central differences of the
    /// loss; the generic path with the exact estimator gives the same values, and so does the
    /// one-example path for a batch of one without the level term.
    #[test]
    fn level_matched_gradients_match_finite_differences() {
        let fs = 24_000;
        let fx = ChainFx::default_chain(fs);
        let (inputs, mut knobs, _) = batch(5, 2, 6000, fs);
        // Moderate compression: with a threshold far below the signal the branching smoother
        // switches so often that central differences of a level (a coherent sum over the
        // whole output) straddle its kinks.
        for k in &mut knobs {
            (k[THRESHOLD_DB], k[RATIO]) = (0.8, 0.5);
        }
        let (targets, _, _) = batch(9, 2, 6000, fs);
        let reference_db: Vec<f64> = targets.iter().map(|t| level_db(&[t[0].as_slice()], fs) + 3.0).collect();
        // Both the stage and the loss's level term.
        let levels = Levels::new(&fx, Some(reference_db.clone()), 0.05);
        let mut loss = smooth_loss();
        let ex = examples(&inputs, &knobs);
        let (value, outputs, grads) = chain_loss_and_grad(&fx, &ex, &targets, Some(&levels), &mut loss);
        for ((o, l), k) in outputs.iter().zip(&reference_db).zip(&knobs) {
            let makeup = crate::fx::KNOBS[MAKEUP_DB].denormalize(f64::from(k[MAKEUP_DB]));
            assert!((level_db(&[o[0].as_slice()], fs) - (l + makeup)).abs() < 1e-3);
        }
        let (generic_value, _, generic) = loss_and_knob_gradients(&Exact, &fx, &ex, &targets, Some(&levels), &mut loss, 0);
        assert!((value - generic_value).abs() < 1e-9 * value.abs());
        for (a, b) in grads.iter().flatten().zip(generic.iter().flatten()) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1e-3), "{a} vs {b}");
        }
        // The one-example path (refinement's) gives the batch path's gradient for a batch of one.
        let single = |b: usize, loss: &mut MrStftBatch<f32>| {
            chain_knob_gradient(&fx, &inputs[b], &knobs[b], Some(reference_db[b]), |output| {
                let mut grad = vec![vec![0.0f32; output[0].len()]];
                let value = loss.value_and_grad(&[&output[0]], &[&targets[b][0]], &mut [&mut grad[0]]);
                (value, grad)
            })
        };
        for b in 0..2 {
            let one = Levels { reference_db: Some(vec![reference_db[b]]), loss_weight: 0.0, ..levels.clone() };
            let (batch_value, _, batch_grads) = chain_loss_and_grad(&fx, &ex[b..=b], &targets[b..=b], Some(&one), &mut loss);
            let (value, grads) = single(b, &mut loss);
            assert!((value - batch_value).abs() < 1e-9 * value.abs());
            for (a, c) in grads.iter().zip(&batch_grads[0]) {
                assert!((a - c).abs() <= 1e-5 * a.abs().max(1e-3), "{a} vs {c}");
            }
        }
        // Central differences, with the stage and the level term, and with the level term alone
        // (an absolute model).
        let absolute = Levels { reference_db: None, ..levels.clone() };
        for levels in [&levels, &absolute] {
            let grads = chain_loss_and_grad(&fx, &ex, &targets, Some(levels), &mut loss).2;
            let loss_at = |knobs: &[Vec<f32>], loss: &mut MrStftBatch<f32>| {
                chain_loss_and_grad(&fx, &examples(&inputs, knobs), &targets, Some(levels), loss).0
            };
            check_differences(&knobs, &grads, &[MAKEUP_DB, THRESHOLD_DB, 0, 4], |k| loss_at(k, &mut loss), &format!("{levels:?}"));
        }
    }

    /// With only some knobs free (a model's `--learn`) and the make-up held (`--set`), the
    /// exact gradients of the free knobs match central differences of the loss through the
    /// rendered chain, and a level-relative output sits at the reference's level plus the held
    /// make-up.
    #[test]
    fn gradients_of_the_free_knobs_match_finite_differences() {
        use crate::fx::Controls;
        use crate::grad::Render;
        let fs = 24_000;
        let chain = crate::fx::ChainSpec::default();
        let controls = Controls::parse(&chain, Some("eq.band2.*,comp.threshold_db,comp.ratio"), &["comp.makeup_db=4".into()]).unwrap();
        let fx = ChainFx::with_controls(chain, &controls, fs).unwrap();
        assert_eq!(Render::num_knobs(&fx), 5);
        let (inputs, all, _) = batch(21, 2, 6000, fs);
        let mut knobs: Vec<Vec<f32>> = all.iter().map(|k| fx.selection.select(k)).collect();
        for k in &mut knobs {
            (k[3], k[4]) = (0.8, 0.5);
        }
        let (targets, _, _) = batch(23, 2, 6000, fs);
        let reference_db: Vec<f64> = targets.iter().map(|t| level_db(&[t[0].as_slice()], fs)).collect();
        let levels = Levels::new(&fx, Some(reference_db.clone()), 0.05);
        let mut loss = smooth_loss();
        let (_, outputs, grads) = chain_loss_and_grad(&fx, &examples(&inputs, &knobs), &targets, Some(&levels), &mut loss);
        for (o, l) in outputs.iter().zip(&reference_db) {
            assert!((level_db(&[o[0].as_slice()], fs) - (l + 4.0)).abs() < 1e-3);
        }
        let loss_at = |knobs: &[Vec<f32>], loss: &mut MrStftBatch<f32>| {
            chain_loss_and_grad(&fx, &examples(&inputs, knobs), &targets, Some(&levels), loss).0
        };
        check_differences(&knobs, &grads, &[0, 1, 2, 3, 4], |k| loss_at(k, &mut loss), "held make-up");
    }

    /// Central differences (h = 0.002) of `loss_at` for knobs `which` of every example agree
    /// with `grads` within 5 % (+ 1e-4).
    fn check_differences(knobs: &[Vec<f32>], grads: &[Vec<f32>], which: &[usize], mut loss_at: impl FnMut(&[Vec<f32>]) -> f64, what: &str) {
        for &k in which {
            for b in 0..knobs.len() {
                let h = 2e-3f32;
                let (mut plus, mut minus) = (knobs.to_vec(), knobs.to_vec());
                plus[b][k] += h;
                minus[b][k] -= h;
                let fd = (loss_at(&plus) - loss_at(&minus)) / f64::from(2.0 * h);
                let g = f64::from(grads[b][k]);
                assert!((fd - g).abs() < 0.05 * g.abs().max(fd.abs()) + 1e-4, "{what}, knob {k}, example {b}: {fd} vs {g}");
            }
        }
    }
}
