//! Gradients through neural proxies (DeepAFx-ST §3.3).
//!
//! - **NP**: the [`ProxyChain`] is the effect: [`Render`] and [`Differentiable`] through the
//!   proxies, so [`super::Exact`] on a `ProxyChain` trains a controller on the proxies alone.
//!   **NP-HH** is the same training with the real chain at inference.
//! - **NP-FH** ([`ProxyFull`]): the forward pass is the real chain's, and the gradient comes
//!   through the proxies evaluated on the real signals (the straight-through estimator at each
//!   proxy). The published code meant to train this way but, by a mode check that is always
//!   true, trained NP-FH on the proxies alone.

use rayon::prelude::*;

use super::{ChainFx, Channels, Differentiable, Estimator, Example, Render};
use crate::fx::ChainSpec;
use crate::model::ProxyChain;

impl Render for ProxyChain {
    fn num_knobs(&self) -> usize {
        ProxyChain::num_knobs(self)
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

/// NP-FH: knob gradients through the proxies at the real chain's signals. The chain rendered
/// must be the proxies' ([`ProxyChain::chain`]).
#[derive(Debug)]
pub struct ProxyFull<'a> {
    pub proxies: &'a ProxyChain,
}

impl Estimator<ChainFx> for ProxyFull<'_> {
    fn knob_gradients(&self, fx: &ChainFx, batch: &[Example], grad_output: &[Channels], _seed: u64) -> Vec<Vec<f32>> {
        assert_eq!(&fx.chain, self.proxies.chain(), "NP-FH renders the chain its proxies imitate");
        let prefixes = real_prefixes(self.proxies, fx.sample_rate);
        batch
            .par_iter()
            .zip(grad_output)
            .map(|(e, g)| {
                let real_inputs: Vec<Channels> = prefixes
                    .iter()
                    .map(|prefix| {
                        let mut signal = Channels::new();
                        prefix.render(e.input, &e.knobs[..prefix.num_knobs()], &mut signal);
                        signal
                    })
                    .collect();
                self.proxies.knob_vjp(e.input, e.knobs, g, Some(&real_inputs))
            })
            .collect()
    }
}

/// For every proxy after the first, the real chain up to it: the chains of the proxies before
/// it, concatenated, whose knobs are the first ones of the whole chain. Rendered as the proxies
/// were trained, latency compensated ([`ChainFx`]), it gives the real signal entering the proxy.
fn real_prefixes(proxies: &ProxyChain, sample_rate: u32) -> Vec<ChainFx> {
    let chains: Vec<&ChainSpec> = proxies.proxies().iter().map(|p| &p.config().chain).collect();
    (1..chains.len())
        .map(|i| ChainFx::new(ChainSpec::concat(chains[..i].iter().copied()).expect("a non-empty list of chains"), sample_rate))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Proxy, ProxyConfig};
    use burn::prelude::Device;

    const RATE: u32 = 24_000;

    /// Tiny proxies of `chains`, without the identity skip, so that a fresh proxy is far from
    /// the identity (and from the real effect); kept apart from the chain they form, to be run
    /// one at a time.
    fn tiny_proxies(chains: &[&str], seed: u64) -> Vec<Proxy> {
        chains
            .iter()
            .zip(seed..)
            .map(|(chain, seed)| {
                let config = ProxyConfig {
                    channels: 4,
                    kernel_size: 3,
                    dilations: vec![1, 3],
                    identity_skip: false,
                    ..ProxyConfig::new(chain.parse().unwrap())
                };
                config.init(&Device::flex(), seed)
            })
            .collect()
    }

    fn signal(len: usize, phase: f32) -> Vec<f32> {
        (0..len).map(|i| 0.5 * (i as f32 * 0.21 + phase).sin() + 0.2 * (i as f32 * 0.037).cos()).collect()
    }

    fn knobs_of(chain: &ChainSpec, offset: usize) -> Vec<f32> {
        (0..chain.num_knobs()).map(|i| 0.25 + 0.5 * (((i + offset) * 7) % 10) as f32 / 10.0).collect()
    }

    fn dot(y: &[Vec<f32>], g: &[Vec<f32>]) -> f64 {
        y.iter().flatten().zip(g.iter().flatten()).map(|(a, b)| (a * b) as f64).sum()
    }

    /// `∂/∂k_i f(k)` by central differences, for every `i` in `range` (the other knobs fixed).
    /// The step is small for the curvature of three proxies in a row, large for f32 rounding.
    fn numeric_gradient(f: impl Fn(&[f32]) -> f64, knobs: &[f32], range: std::ops::Range<usize>) -> Vec<f64> {
        let h = 3e-3f32;
        range
            .map(|i| {
                let (mut plus, mut minus) = (knobs.to_vec(), knobs.to_vec());
                plus[i] += h;
                minus[i] -= h;
                (f(&plus) - f(&minus)) / (2.0 * h as f64)
            })
            .collect()
    }

    fn assert_close(analytic: &[f32], numeric: &[f64], what: &str) {
        assert_eq!(analytic.len(), numeric.len(), "{what}");
        let scale = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-4, "{what}: a vanishing gradient tests nothing");
        for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
            assert!((*a as f64 - n).abs() < 2e-2 * scale, "{what}, knob {i}: {a} vs {n}");
        }
    }

    /// Every channel of `input` through one proxy alone, with its own knobs.
    fn through(proxy: &Proxy, input: &[Vec<f32>], knobs: &[f32]) -> Channels {
        input.iter().map(|c| proxy.process(c, knobs)).collect()
    }

    #[test]
    fn proxy_chains_join_any_proxies_of_one_rate() {
        let chain = ProxyChain::new(tiny_proxies(&["hpf,eq", "comp", "eq"], 1)).unwrap();
        assert_eq!(chain.chain().to_string(), "hpf,eq,comp,eq");
        assert_eq!(Render::num_knobs(&chain), "hpf,eq,comp,eq".parse::<ChainSpec>().unwrap().num_knobs());
        assert!(ProxyChain::new(Vec::new()).unwrap_err().to_string().contains("at least one proxy"));
        let mut proxies = tiny_proxies(&["eq", "comp"], 1);
        let slow = ProxyConfig { sample_rate: 48_000, ..proxies[1].config().clone() };
        proxies[1] = slow.init(&Device::flex(), 2);
        assert!(ProxyChain::new(proxies).unwrap_err().to_string().contains("24000 and 48000 Hz"));
    }

    /// NP through three proxies: the gradient of `Σ g·y` with respect to every knob of the
    /// concatenated chain, against central differences of the proxies' render.
    #[test]
    fn proxy_chain_gradient_matches_finite_differences() {
        let chain = ProxyChain::new(tiny_proxies(&["eq", "comp", "limiter"], 1)).unwrap();
        let input = vec![signal(300, 0.0), signal(300, 1.0)];
        let g = vec![signal(300, 2.0), signal(300, 3.0)];
        let knobs = knobs_of(chain.chain(), 0);
        let analytic = Differentiable::knob_vjp(&chain, &input, &knobs, &g);
        assert_eq!(analytic.len(), 18 + 6 + 2);
        let numeric = numeric_gradient(|k| dot(&ProxyChain::render(&chain, &input, k), &g), &knobs, 0..knobs.len());
        assert_close(&analytic, &numeric, "NP");
    }

    /// NP-FH through three proxies (`eq`, `comp`, `limiter`) against the straight-through
    /// estimator built by hand from the proxies run one at a time: proxy `j` reads the real
    /// chain's signal `r_j` entering it (`r_0` the input), and a change `d` of a proxy's output
    /// reaches the next proxy as `r_{j+1} + d`. So the gradient for proxy `j`'s knobs is the
    /// derivative, by central differences, of `Σ g·y` where `y_j = P_j(r_j, k)` and, after it,
    /// `y_m = P_m(r_m + y_{m−1} − P_{m−1}(r_{m−1}), k_m)`. It is also not NP's gradient (the
    /// proxies here are far from the real effects).
    #[test]
    fn straight_through_gradient_follows_the_real_signals() {
        let names = ["eq", "comp", "limiter"];
        let proxies = tiny_proxies(&names, 2);
        let chain = ProxyChain::new(proxies.clone()).unwrap();
        let fx = ChainFx::new(chain.chain().clone(), RATE);
        let input = vec![signal(400, 0.5), signal(400, 2.5)];
        let g = vec![signal(400, 1.5), signal(400, 0.2)];
        let knobs = knobs_of(chain.chain(), 3);
        let estimator = ProxyFull { proxies: &chain };
        let full = estimator.knob_gradients(&fx, &[Example { input: &input, knobs: &knobs }], std::slice::from_ref(&g), 0).remove(0);
        assert_eq!(full.len(), fx.num_knobs());

        // Each proxy's knob range, and the real signal entering it, rendered by the real
        // effects one at a time (none of them has a latency, so this is the prefix chain's).
        let mut ranges = Vec::new();
        let mut real = vec![input.clone()];
        for (i, name) in names.iter().enumerate() {
            let spec: ChainSpec = name.parse().unwrap();
            let start = ranges.last().map_or(0, |r: &std::ops::Range<usize>| r.end);
            ranges.push(start..start + spec.num_knobs());
            if i + 1 < names.len() {
                let mut out = Channels::new();
                ChainFx::new(spec, RATE).render(&real[i], &knobs[ranges[i].clone()], &mut out);
                real.push(out);
            }
        }
        let base: Vec<Channels> = (0..names.len()).map(|m| through(&proxies[m], &real[m], &knobs[ranges[m].clone()])).collect();
        for (j, range) in ranges.iter().enumerate() {
            let loss = |k: &[f32]| {
                let mut y = through(&proxies[j], &real[j], &k[range.clone()]);
                for m in j + 1..names.len() {
                    let entering: Channels = real[m]
                        .iter()
                        .zip(&y)
                        .zip(&base[m - 1])
                        .map(|((r, y), b)| r.iter().zip(y).zip(b).map(|((r, y), b)| r + y - b).collect())
                        .collect();
                    y = through(&proxies[m], &entering, &knobs[ranges[m].clone()]);
                }
                dot(&y, &g)
            };
            let numeric = numeric_gradient(loss, &knobs, range.clone());
            assert_close(&full[range.clone()], &numeric, &format!("NP-FH, the {} proxy's knobs", names[j]));
        }
        let proxies_alone = Differentiable::knob_vjp(&chain, &input, &knobs, &g);
        let scale = proxies_alone.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(full.iter().zip(&proxies_alone).any(|(a, b)| (a - b).abs() > 0.1 * scale), "NP-FH equals NP");
    }
}
