//! Chains with hosted plugins among afx's effects: the exact adjoint for every knob whose path
//! to the output holds no plugin (the knobs after the last plugin), SPSA for the plugins' knobs
//! and every knob before the last plugin, whose path goes through a black box.

use rayon::prelude::*;

use super::{ChainFx, Channels, Differentiable, Estimator, Exact, Example, Render, Spsa, Subset};
use crate::fx::chain::StageKind;
use crate::fx::{ChainSpec, Selection};

/// Which estimator each knob of `chain` gets under [`Mixed`]: the number of leading knobs (up
/// to and including the last plugin's) that SPSA estimates; the rest get the exact adjoint.
pub fn spsa_knobs(chain: &ChainSpec) -> usize {
    let stages = chain.stages();
    match stages.iter().rposition(|s| matches!(s.kind, StageKind::Plugin(_))) {
        Some(last) => stages[last].knobs().end,
        None => 0,
    }
}

/// Exact where it can be, SPSA where a plugin stands in the way ([`spsa_knobs`] says where;
/// switches there get no gradient, as under the exact adjoint). Each example's SPSA
/// perturbations are its own (seeded by the example's position).
#[derive(Clone, Copy, Debug)]
pub struct Mixed {
    pub spsa: Spsa,
}

impl Estimator<ChainFx> for Mixed {
    fn knob_gradients(&self, fx: &ChainFx, batch: &[Example], grad_output: &[Channels], seed: u64) -> Vec<Vec<f32>> {
        let upstream = spsa_knobs(&fx.chain);
        if upstream == 0 {
            return Exact.knob_gradients(fx, batch, grad_output, seed);
        }
        // Work on the whole knob vector (the free knobs among it, the held ones at their
        // values). Switches (stepped knobs) are not perturbed: a step of ε either changes
        // nothing or flips them, and a flip is not a gradient (the exact adjoint gives them none).
        let specs: Vec<_> = fx.chain.specs().collect();
        let perturbed: Vec<usize> = fx.selection.free.iter().copied().filter(|&i| i < upstream && specs[i].is_continuous()).collect();
        let whole = fx.every_knob();
        let stages = fx.chain.stages();
        let split = stages.iter().position(|s| s.offset >= upstream).unwrap_or(stages.len());
        let head = ChainFx::new(ChainSpec::of_stages(&stages[..split]).expect("the chain up to its last plugin"), fx.sample_rate);
        let tail = (split < stages.len())
            .then(|| ChainFx::new(ChainSpec::of_stages(&stages[split..]).expect("the chain after its last plugin"), fx.sample_rate));
        batch
            .par_iter()
            .zip(grad_output)
            .enumerate()
            .map(|(b, (e, g))| {
                let knobs = fx.selection.expand(e.knobs);
                let mut grad = vec![0.0f32; knobs.len()];
                let values: Vec<f32> = perturbed.iter().map(|&i| knobs[i]).collect();
                let free = Subset { fx: &whole, selection: Selection { free: perturbed.clone(), base: knobs.clone() } };
                let own = Example { input: e.input, knobs: &values };
                let example_seed = seed ^ (b as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let estimate = self.spsa.knob_gradients(&free, &[own], std::slice::from_ref(g), example_seed);
                for (&i, &v) in perturbed.iter().zip(&estimate[0]) {
                    grad[i] = v;
                }
                if let Some(tail) = &tail {
                    let mut middle = Channels::new();
                    head.render(e.input, &knobs[..upstream], &mut middle);
                    grad[upstream..].copy_from_slice(&tail.knob_vjp(&middle, &knobs[upstream..], g));
                }
                fx.selection.select(&grad)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad::test_support::{batch, examples};

    #[test]
    fn without_plugins_it_is_the_exact_gradient() {
        let fx = ChainFx::new("hpf,eq,comp".parse().unwrap(), 24_000);
        assert_eq!(spsa_knobs(&fx.chain), 0);
        let (inputs, _, grads) = batch(2, 2, 4096, 24_000);
        let knobs: Vec<Vec<f32>> = (0..2).map(|b| (0..fx.num_knobs()).map(|i| 0.2 + 0.6 * ((i + b) % 5) as f32 / 5.0).collect()).collect();
        let ex = examples(&inputs, &knobs);
        let mixed = Mixed { spsa: Spsa::default() }.knob_gradients(&fx, &ex, &grads, 0);
        assert_eq!(mixed, Exact.knob_gradients(&fx, &ex, &grads, 0));
    }
}
