//! Central finite differences, one knob at a time: `2P` renders per example.

use rayon::prelude::*;

use super::{Channels, Estimator, Example, Render, two_sided_change};

/// `ĝ_i = Σ_t ∂L/∂y[t] · (y(p + ε·e_i)[t] − y(p − ε·e_i)[t]) / (p+_i − p−_i)`, knobs clamped
/// to `[0, 1]` (a one-sided difference at a range end).
#[derive(Clone, Copy, Debug)]
pub struct FiniteDiff {
    pub epsilon: f32,
}

impl Default for FiniteDiff {
    fn default() -> Self {
        FiniteDiff { epsilon: 1e-3 }
    }
}

impl<F: Render + ?Sized> Estimator<F> for FiniteDiff {
    fn knob_gradients(&self, fx: &F, batch: &[Example], grad_output: &[Channels], _seed: u64) -> Vec<Vec<f32>> {
        batch
            .par_iter()
            .zip(grad_output)
            .map(|(e, g)| {
                (0..fx.num_knobs())
                    .into_par_iter()
                    .map(|i| {
                        let shifted = |d: f32| {
                            let mut k = e.knobs.to_vec();
                            k[i] = (k[i] + d).clamp(0.0, 1.0);
                            k
                        };
                        let (plus, minus) = (shifted(self.epsilon), shifted(-self.epsilon));
                        (two_sided_change(fx, e.input, g, &plus, &minus) / (plus[i] - minus[i]) as f64) as f32
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::test_support::{batch, cosine, examples};
    use crate::grad::{ChainFx, Exact};

    #[test]
    fn finite_differences_agree_with_the_exact_gradient() {
        let fs = 44_100;
        let fx = ChainFx::default_chain(fs);
        let (inputs, knobs, grads) = batch(5, 3, 4096, fs);
        let ex = examples(&inputs, &knobs);
        let exact = Exact.knob_gradients(&fx, &ex, &grads, 0);
        let fd = FiniteDiff { epsilon: 1e-3 }.knob_gradients(&fx, &ex, &grads, 0);
        for (b, (e, f)) in exact.iter().zip(&fd).enumerate() {
            let c = cosine(e, f);
            assert!(c > 0.999, "example {b}: cosine {c}\nexact {e:?}\nfd {f:?}");
        }
    }
}
