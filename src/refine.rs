//! Knob fitting by gradient descent through the chain with exact gradients.
//!
//! - [`refine`]: inference-time refinement, beyond DeepAFx-ST. Starting from the network's knobs,
//!   descend the [`StyleDistance`] between the processed input and the reference: it needs no
//!   ground truth, so it works on a user's own files.
//! - [`descend`]: the optimiser for any loss of the output (the evaluation's oracle fits the
//!   knobs to a known target with it).

use crate::fx::level::{LevelMatch, OutputLevel, level_db};
use crate::grad::{ChainFx, Channels, Render, chain_knob_gradient};
use crate::spectral::{StyleDistance, StyleDistanceConfig};

/// Adam's step in normalised knob units: 100 steps can cross a knob's whole range.
const STEP_SIZE: f32 = 0.01;

/// Adam (β = 0.9, 0.999, step 0.01) on the normalised knobs of `input` through the
/// chain, for `steps` evaluations of `output_loss` (which returns the loss of the rendered
/// channels and its gradient with respect to them). A chain with plugins has no adjoint: there
/// the gradient is SPSA's estimate from the loss itself ([`search_gradient`]: a direct search,
/// as ST-ITO does; [`SEARCH_PAIRS`] perturbation pairs a step, and `output_loss`'s gradient
/// unused). With `reference_db`, the chain's output is
/// first scaled to that level plus the make-up knob, as a level-relative model renders
/// ([`OutputLevel::Reference`](crate::fx::level::OutputLevel)). The knobs stay in [0, 1].
/// Returns the best knobs evaluated, so never worse than `start`, with their loss (`start` and
/// ∞ for no steps).
pub fn descend(
    fx: &ChainFx,
    input: &[Vec<f32>],
    start: &[f32],
    steps: usize,
    reference_db: Option<f64>,
    output_loss: impl FnMut(&[Vec<f32>]) -> (f64, Channels),
) -> (Vec<f32>, f64) {
    descend_by(!fx.chain.has_plugins(), fx, input, start, steps, reference_db, output_loss)
}

/// [`descend`] with the exact gradient (`exact`) or the direct search.
fn descend_by(
    exact: bool,
    fx: &ChainFx,
    input: &[Vec<f32>],
    start: &[f32],
    steps: usize,
    reference_db: Option<f64>,
    mut output_loss: impl FnMut(&[Vec<f32>]) -> (f64, Channels),
) -> (Vec<f32>, f64) {
    let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut knobs = start.to_vec();
    let (mut m, mut v) = (vec![0.0f32; knobs.len()], vec![0.0f32; knobs.len()]);
    let mut best = (knobs.clone(), f64::INFINITY);
    for t in 1..=steps {
        let (value, grads) = if exact {
            chain_knob_gradient(fx, input, &knobs, reference_db, &mut output_loss)
        } else {
            let loss = |knobs: &[f32]| output_loss(&rendered(fx, input, knobs, reference_db)).0;
            search_gradient(loss, &knobs, t as u64)
        };
        if value < best.1 {
            best = (knobs.clone(), value);
        }
        let (c1, c2) = (1.0 - beta1.powi(t as i32), 1.0 - beta2.powi(t as i32));
        for (i, g) in grads.iter().enumerate() {
            m[i] = beta1 * m[i] + (1.0 - beta1) * g;
            v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
            knobs[i] = (knobs[i] - STEP_SIZE * (m[i] / c1) / ((v[i] / c2).sqrt() + eps)).clamp(0.0, 1.0);
        }
    }
    best
}

/// Perturbation pairs per step of the direct search through plugins.
pub const SEARCH_PAIRS: usize = 4;

/// The perturbation of the direct search, in normalised knob units: large enough that a
/// plugin's own parameter smoothing and stepped knobs do not drown the difference.
const SEARCH_EPSILON: f32 = 0.02;

/// `input` through `fx` with normalised `knobs`, aligned; with `reference_db`, scaled to that
/// level plus the chain's output gain (as a level-relative model renders).
fn rendered(fx: &ChainFx, input: &[Vec<f32>], knobs: &[f32], reference_db: Option<f64>) -> Channels {
    let mut output = Channels::new();
    fx.render(input, knobs, &mut output);
    if let Some(db) = reference_db {
        let mut views: Vec<&mut [f32]> = output.iter_mut().map(|c| c.as_mut_slice()).collect();
        LevelMatch::apply(&mut views, fx.sample_rate, db + fx.knobs(knobs).output_gain_db());
    }
    output
}

/// The loss at `knobs` and SPSA's estimate of its gradient: the mean over [`SEARCH_PAIRS`]
/// random ±1 directions `Δ` of `(L(k + εΔ) − L(k − εΔ)) / 2ε · Δ`, knobs clamped to [0, 1];
/// the directions are drawn from `seed`.
pub fn search_gradient(mut loss: impl FnMut(&[f32]) -> f64, knobs: &[f32], seed: u64) -> (f64, Vec<f32>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let value = loss(knobs);
    let mut grad = vec![0.0f32; knobs.len()];
    for _ in 0..SEARCH_PAIRS {
        let delta: Vec<f32> = (0..knobs.len()).map(|_| if rng.random_bool(0.5) { 1.0 } else { -1.0 }).collect();
        let at = |sign: f32| knobs.iter().zip(&delta).map(|(k, d)| (k + sign * SEARCH_EPSILON * d).clamp(0.0, 1.0)).collect::<Vec<f32>>();
        let difference = (loss(&at(1.0)) - loss(&at(-1.0))) / f64::from(2.0 * SEARCH_EPSILON);
        for (g, d) in grad.iter_mut().zip(&delta) {
            *g += (difference / SEARCH_PAIRS as f64) as f32 * d;
        }
    }
    (value, grad)
}

/// The knobs after `steps` of [`descend`] on the style distance between the mono `input`
/// rendered with them (its level set as `level` says) and the mono `reference` (both at
/// `fx.sample_rate`), from `start`.
///
/// # Panics
/// If the reference is shorter than one analysis frame (2048 samples / 2 + 1).
pub fn refine(fx: &ChainFx, input: &[f32], reference: &[f32], start: &[f32], steps: usize, level: OutputLevel) -> Vec<f32> {
    let reference_db = (level == OutputLevel::Reference).then(|| level_db(&[reference], fx.sample_rate));
    let mut distance = StyleDistance::new(reference, fx.sample_rate, &StyleDistanceConfig::at(fx.sample_rate));
    let output_loss = |output: &[Vec<f32>]| {
        let mut grad = vec![0.0f32; output[0].len()];
        let value = distance.value_and_grad(&output[0], &mut grad);
        (value, vec![grad])
    };
    descend(fx, &[input.to_vec()], start, steps, reference_db, output_loss).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::Knobs;
    use crate::fx::test_signals::{program, random_knobs};
    use crate::spectral::{MrStftConfig, MrStftLoss};

    const RATE: u32 = 24_000;

    fn mono(seed: u64) -> Vec<f32> {
        program(seed, 1, 3 * RATE as usize, RATE as f64).remove(0).into_iter().map(|v| 0.5 * v as f32).collect()
    }

    fn normalized(knobs: &Knobs) -> Vec<f32> {
        knobs.to_normalized().iter().map(|&v| v as f32).collect()
    }

    /// The reference is other material (another seed) through the true knobs; refinement from
    /// the default knobs must bring the style distance down, and (the independent check) bring
    /// the processed input closer to the input through the true knobs, which it never sees.
    #[test]
    fn refinement_moves_toward_the_references_style() {
        let fx = ChainFx::default_chain(RATE);
        // The input backwards: other material with the same spectrum and level statistics.
        let input = mono(1);
        let other: Vec<f32> = input.iter().rev().copied().collect();
        let truth = normalized(&random_knobs(5));
        let (target, reference) = (fx.render_mono(&input, &truth), fx.render_mono(&other, &truth));
        let start = normalized(&Knobs::default());
        let refined = refine(&fx, &input, &reference, &start, 60, OutputLevel::Absolute);

        let mut distance = StyleDistance::new(&reference, RATE, &StyleDistanceConfig::at(RATE));
        let (before, after) = (distance.value(&fx.render_mono(&input, &start)), distance.value(&fx.render_mono(&input, &refined)));
        assert!(after < 0.3 * before, "style distance {before} -> {after}");
        let mut loss = MrStftLoss::<f32>::new(MrStftConfig::default());
        let (before, after) =
            (loss.value(&fx.render_mono(&input, &start), &target), loss.value(&fx.render_mono(&input, &refined), &target));
        assert!(after < 0.7 * before, "MR-STFT to the truth {before} -> {after}");
    }

    #[test]
    fn descend_never_returns_worse_than_its_start_and_zero_steps_keep_it() {
        let fx = ChainFx::default_chain(RATE);
        let input = vec![mono(2)];
        let start = normalized(&random_knobs(3));
        let (kept, _) = descend(&fx, &input, &start, 0, None, |o| (0.0, o.to_vec()));
        assert_eq!(kept, start);
        // A loss that rises along every step Adam takes: the best point is the start.
        let mut calls = 0.0;
        let (best, value) = descend(&fx, &input, &start, 5, None, |o| {
            calls += 1.0;
            (calls, o.iter().map(|c| vec![0.0; c.len()]).collect())
        });
        assert_eq!((best, value), (start, 1.0));
    }

    /// The direct search (SPSA on the loss, what a chain with plugins gets) fits knobs too:
    /// from the defaults toward a target made with other knobs, the loss falls by more than half
    /// and the fitted EQ gain nears the true one.
    #[test]
    fn the_direct_search_fits_knobs_from_the_loss_alone() {
        use crate::fx::Controls;
        let chain: crate::fx::ChainSpec = "eq".parse().unwrap();
        let controls = Controls::parse(&chain, Some("eq.band2.gain_db,eq.high_shelf.gain_db"), &[]).unwrap();
        let fx = ChainFx::with_controls(chain, &controls, RATE).unwrap();
        let input = vec![mono(4)];
        // +9 dB at 1 kHz, -6 dB high shelf: normalised (g + 24) / 48.
        let truth = [33.0f32 / 48.0, 18.0 / 48.0];
        let target = fx.render_mono(&input[0], &truth);
        let mut loss = MrStftLoss::<f32>::new(MrStftConfig::default());
        let output_loss = |o: &[Vec<f32>]| (loss.value(&o[0], &target), Vec::new());
        let start = [0.5f32, 0.5];
        let (knobs, after) = descend_by(false, &fx, &input, &start, 150, None, output_loss);
        let mut loss = MrStftLoss::<f32>::new(MrStftConfig::default());
        let before = loss.value(&fx.render_mono(&input[0], &start), &target);
        assert!(after < 0.5 * before, "loss {before} -> {after}");
        let gain_db = 48.0 * knobs[0] - 24.0;
        assert!((gain_db - 9.0).abs() < 2.0, "band 2 gain {gain_db:.2} dB, truth 9 dB");
    }
}
