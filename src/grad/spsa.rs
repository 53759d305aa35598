//! Simultaneous perturbation stochastic approximation (Spall 1992), as DeepAFx-ST uses it to
//! train through effects it cannot differentiate.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{Channels, Estimator, Example, Render, two_sided_change};

/// SPSA with `pairs` two-sided Rademacher perturbations of size `epsilon` (normalised units),
/// averaged. For one perturbation `Δ ∈ {±1}^P`, with `p± = clamp(p ± ε·Δ, 0, 1)`:
/// `ĝ_i = Σ_t ∂L/∂y[t] · (y(p+)[t] − y(p−)[t]) / (p+_i − p−_i)`; where clamping shrinks
/// the step, the actual difference is the denominator.
#[derive(Clone, Copy, Debug)]
pub struct Spsa {
    pub pairs: usize,
    pub epsilon: f32,
}

impl Default for Spsa {
    /// One pair, ε = 0.0005 (DeepAFx-ST's setting).
    fn default() -> Self {
        Spsa { pairs: 1, epsilon: 0.0005 }
    }
}

impl Spsa {
    /// The estimate from one perturbation of one example.
    fn one_pair<F: Render + ?Sized>(&self, fx: &F, e: &Example, grad_output: &Channels, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let delta: Vec<f32> = e.knobs.iter().map(|_| if rng.random_bool(0.5) { 1.0 } else { -1.0 }).collect();
        let shifted =
            |sign: f32| -> Vec<f32> { e.knobs.iter().zip(&delta).map(|(p, d)| (p + sign * self.epsilon * d).clamp(0.0, 1.0)).collect() };
        let (plus, minus) = (shifted(1.0), shifted(-1.0));
        let change = two_sided_change(fx, e.input, grad_output, &plus, &minus);
        plus.iter().zip(&minus).map(|(a, b)| if a != b { (change / (a - b) as f64) as f32 } else { 0.0 }).collect()
    }
}

impl<F: Render + ?Sized> Estimator<F> for Spsa {
    fn knob_gradients(&self, fx: &F, batch: &[Example], grad_output: &[Channels], seed: u64) -> Vec<Vec<f32>> {
        batch
            .par_iter()
            .zip(grad_output)
            .enumerate()
            .map(|(b, (e, g))| {
                let estimates: Vec<Vec<f32>> =
                    (0..self.pairs).into_par_iter().map(|k| self.one_pair(fx, e, g, pair_seed(seed, b, k))).collect();
                let mut mean = vec![0.0f32; fx.num_knobs()];
                for est in &estimates {
                    for (m, v) in mean.iter_mut().zip(est) {
                        *m += v / self.pairs as f32;
                    }
                }
                mean
            })
            .collect()
    }
}

/// A distinct, reproducible seed for pair `k` of example `b`.
fn pair_seed(seed: u64, b: usize, k: usize) -> u64 {
    seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F).rotate_left(17)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::test_support::{batch, cosine, examples};
    use crate::grad::{ChainFx, Exact};

    #[test]
    fn averaged_spsa_points_along_the_exact_gradient() {
        let fs = 24_000;
        let fx = ChainFx::default_chain(fs);
        let (inputs, knobs, grads) = batch(3, 4, 4096, fs);
        let ex = examples(&inputs, &knobs);
        let exact = Exact.knob_gradients(&fx, &ex, &grads, 0);
        let spsa = Spsa { pairs: 400, epsilon: 1e-3 }.knob_gradients(&fx, &ex, &grads, 42);
        for (b, (e, s)) in exact.iter().zip(&spsa).enumerate() {
            let c = cosine(e, s);
            assert!(c >= 0.9, "example {b}: cosine {c}");
        }
        // A single pair is a noisy but reproducible estimate.
        let one = Spsa { pairs: 1, epsilon: 1e-3 };
        assert_eq!(one.knob_gradients(&fx, &ex, &grads, 7), one.knob_gradients(&fx, &ex, &grads, 7));
        assert_ne!(one.knob_gradients(&fx, &ex, &grads, 7), one.knob_gradients(&fx, &ex, &grads, 8));
    }
}
