//! Gradients through neural proxies (DeepAFx-ST §3.3).
//!
//! - **NP**: the [`ProxyChain`] is the effect: [`Render`] and [`Differentiable`] through the
//!   proxies, so [`super::Exact`] on a `ProxyChain` trains a controller on the proxies alone.
//!   **NP-HH** is the same training with the real chain at inference.
//! - **NP-FH** ([`ProxyFull`]): the forward pass is the real chain's, and the gradient comes
//!   through the proxies evaluated on the real signals (the straight-through estimator at each
//!   stage). The published code meant to train this way but, by a mode check that is always
//!   true, trained NP-FH on the proxies alone.

use rayon::prelude::*;

use super::{ChainFx, Channels, Differentiable, Estimator, Example, Render};
use crate::fx::params::default_chain::{MAKEUP_DB, RATIO};
use crate::fx::{KNOBS, NUM_KNOBS};
use crate::model::ProxyChain;

impl Render for ProxyChain {
    fn num_knobs(&self) -> usize {
        NUM_KNOBS
    }

    fn render(&self, input: &[Vec<f32>], knobs: &[f32], output: &mut Channels) {
        let clamped: Vec<f32> = knobs.iter().map(|k| k.clamp(0.0, 1.0)).collect();
        *output = ProxyChain::render(self, input, &clamped);
    }
}

impl Differentiable for ProxyChain {
    fn knob_vjp(&self, input: &[Vec<f32>], knobs: &[f32], grad_output: &[Vec<f32>]) -> Vec<f32> {
        ProxyChain::knob_vjp(self, input, knobs, grad_output, None)
    }
}

/// NP-FH: knob gradients through the proxies at the real chain's signals.
#[derive(Debug)]
pub struct ProxyFull<'a> {
    pub proxies: &'a ProxyChain,
}

impl Estimator<ChainFx> for ProxyFull<'_> {
    fn knob_gradients(&self, fx: &ChainFx, batch: &[Example], grad_output: &[Channels], _seed: u64) -> Vec<Vec<f32>> {
        batch
            .par_iter()
            .zip(grad_output)
            .map(|(e, g)| {
                let mut real_eq = Channels::new();
                fx.render(e.input, &eq_only(e.knobs), &mut real_eq);
                self.proxies.knob_vjp(e.input, e.knobs, g, Some(&real_eq))
            })
            .collect()
    }
}

/// `knobs` with the compressor bypassed (ratio 1, no make-up): the chain is then the EQ alone.
pub fn eq_only(knobs: &[f32]) -> Vec<f32> {
    let mut only = knobs.to_vec();
    only[RATIO] = KNOBS[RATIO].normalize(1.0) as f32;
    only[MAKEUP_DB] = KNOBS[MAKEUP_DB].normalize(0.0) as f32;
    only
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProxyConfig, ProxyEffect};
    use burn::prelude::Device;

    fn tiny_chain(seed: u64) -> ProxyChain {
        // Without the identity skip, so that a fresh proxy is far from the identity.
        let config =
            |effect| ProxyConfig { channels: 4, kernel_size: 3, dilations: vec![1, 3], identity_skip: false, ..ProxyConfig::new(effect) };
        ProxyChain::new(config(ProxyEffect::Eq).init(&Device::flex(), seed), config(ProxyEffect::Comp).init(&Device::flex(), seed + 1))
            .unwrap()
    }

    fn signal(len: usize, phase: f32) -> Vec<f32> {
        (0..len).map(|i| 0.5 * (i as f32 * 0.21 + phase).sin() + 0.2 * (i as f32 * 0.037).cos()).collect()
    }

    /// `Σ g·y(knobs + h·e_i)` by central differences, for every knob `i`.
    fn numeric_gradient(render: impl Fn(&[f32]) -> Channels, knobs: &[f32], g: &[Vec<f32>]) -> Vec<f64> {
        let h = 1e-2f32;
        let dot = |y: Channels| y.iter().flatten().zip(g.iter().flatten()).map(|(a, b)| (a * b) as f64).sum::<f64>();
        (0..knobs.len())
            .map(|i| {
                let (mut plus, mut minus) = (knobs.to_vec(), knobs.to_vec());
                plus[i] += h;
                minus[i] -= h;
                (dot(render(&plus)) - dot(render(&minus))) / (2.0 * h as f64)
            })
            .collect()
    }

    fn assert_close(analytic: &[f32], numeric: &[f64], what: &str) {
        let scale = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-4, "{what}: a vanishing gradient tests nothing");
        for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
            assert!((*a as f64 - n).abs() < 2e-2 * scale, "{what}, knob {i}: {a} vs {n}");
        }
    }

    #[test]
    fn proxy_chain_gradient_matches_finite_differences() {
        let chain = tiny_chain(1);
        let input = vec![signal(300, 0.0), signal(300, 1.0)];
        let g = vec![signal(300, 2.0), signal(300, 3.0)];
        let knobs: Vec<f32> = (0..NUM_KNOBS).map(|i| 0.2 + 0.6 * ((i * 7) % 10) as f32 / 10.0).collect();
        let analytic = Differentiable::knob_vjp(&chain, &input, &knobs, &g);
        let numeric = numeric_gradient(|k| ProxyChain::render(&chain, &input, k), &knobs, &g);
        assert_close(&analytic, &numeric, "NP");
    }

    /// NP-FH's compressor-knob gradient is that of the compressor proxy applied to the real EQ's
    /// output; its EQ-knob gradient differs from NP's, since the compressor proxy then hears
    /// the real EQ instead of the EQ proxy.
    #[test]
    fn straight_through_gradient_uses_the_real_eq_output() {
        let chain = tiny_chain(2);
        let fx = ChainFx::default_chain(24_000);
        let input = vec![signal(400, 0.5)];
        let g = vec![signal(400, 1.5)];
        let knobs: Vec<f32> = (0..NUM_KNOBS).map(|i| 0.3 + 0.4 * ((i * 3) % 8) as f32 / 8.0).collect();
        let estimator = ProxyFull { proxies: &chain };
        let full = estimator.knob_gradients(&fx, &[Example { input: &input, knobs: &knobs }], std::slice::from_ref(&g), 0).remove(0);

        let mut real_eq = Channels::new();
        fx.render(&input, &eq_only(&knobs), &mut real_eq);
        let split = ProxyEffect::Eq.knobs().len();
        // The compressor proxy alone on the real EQ output: the EQ stage set to its proxy's
        // input-to-output map is not needed, only the comp knobs move.
        let comp_only = |k: &[f32]| {
            let mut all = knobs.clone();
            all[split..].copy_from_slice(k);
            estimator.proxies.render_comp(&real_eq, &all)
        };
        let numeric = numeric_gradient(comp_only, &knobs[split..], &g);
        assert_close(&full[split..], &numeric, "NP-FH comp knobs");
        let proxy_only = Differentiable::knob_vjp(estimator.proxies, &input, &knobs, &g);
        assert!(full[..split].iter().zip(&proxy_only[..split]).any(|(a, b)| (a - b).abs() > 1e-4));
    }
}
