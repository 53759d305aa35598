//! Neural proxies: a network that imitates a chain of effects (one effect, such as the EQ or
//! the compressor, or several in a row) from its normalised knobs, so that gradients can flow
//! through it where the real effects offer none (DeepAFx-ST's NP, NP-HH and NP-FH; Steinmetz,
//! Bryan & Reiss 2022, §3.3). A [`ProxyChain`] runs proxies one after another.
//!
//! A causal conditional TCN: blocks of a dilated causal convolution, FiLM conditioning on the
//! knobs (`x·(1 + γ(p)) + β(p)`, with `γ, β` a linear map of the knobs), PReLU, and a 1×1
//! residual path; a final 1×1 convolution to one channel. The published proxy has 4 blocks,
//! kernel 13, dilations 1, 8, 64, 512 (a 292 ms receptive field at 24 kHz) and 64 channels;
//! ours keeps the shape and defaults to 32 channels for CPU training. Unlike the published
//! block, no batch normalisation precedes FiLM, so training and inference compute the same
//! function. An output gain in the chain's last effect (the compressor's make-up, a gain
//! stage's gain) is a plain gain, so the proxy does not learn it: its output is multiplied by
//! `10^(gain_db/20)` exactly, as in the published compressor proxy, and it is trained, and
//! conditioned, with that gain at 0 dB.

use std::ops::Range;
use std::path::PathBuf;

use burn::module::Initializer;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig, PaddingConfig1d};
use burn::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};

use super::network::rows;
use crate::fx::{ChainSpec, KnobSpec, Skew};
use crate::{Error, Result};

/// Everything that determines a [`Proxy`]'s shape. Stored in every proxy file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// The chain the proxy imitates; its knobs condition the network. Proxy files from before
    /// chains were data name an effect instead, read by `chain_or_legacy_effect`.
    #[serde(alias = "effect", deserialize_with = "chain_or_legacy_effect")]
    pub chain: ChainSpec,
    /// Channels of every block.
    pub channels: usize,
    pub kernel_size: usize,
    /// One block per dilation, first to last.
    pub dilations: Vec<usize>,
    /// The sample rate the proxy was trained at, the only one it imitates the chain at.
    pub sample_rate: u32,
    /// Whether the input is added to the TCN's output, so that the network learns the
    /// chain's departure from the identity and starts near it (not in the published proxy;
    /// absent, false, in proxy files from before it).
    #[serde(default)]
    pub identity_skip: bool,
}

/// The whole default chain, which proxy files from before chains were data called `chain`
/// (the published single proxy of the chain).
const LEGACY_WHOLE_CHAIN: &str = "eq,comp";

/// A proxy's chain as written (`"chain": "hpf,gain"`), or the effect that older proxy files
/// name (`"effect": "eq" | "comp" | "chain"`): `eq` and `comp` are chains of that one effect,
/// `chain` is `eq,comp`. No effect is called `chain`, so the old spelling reads one way only.
fn chain_or_legacy_effect<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ChainSpec, D::Error> {
    let text = String::deserialize(deserializer)?;
    let text = if text == "chain" { LEGACY_WHOLE_CHAIN } else { text.as_str() };
    text.parse().map_err(serde::de::Error::custom)
}

impl ProxyConfig {
    /// A proxy of `chain`: 4 blocks, kernel 13, dilations 1, 8, 64, 512 (the published shape),
    /// 32 channels, 24 kHz, with the identity skip.
    pub fn new(chain: ChainSpec) -> Self {
        Self { chain, channels: 32, kernel_size: 13, dilations: vec![1, 8, 64, 512], sample_rate: 24_000, identity_skip: true }
    }

    /// The knob the proxy applies as an exact gain instead of learning it: the chain's
    /// [output gain](ChainSpec::output_gain) when its last effect holds it (a knob in dB on a
    /// linear scale, as every output gain is), with its position among the proxy's knobs.
    pub fn exact_gain(&self) -> Option<(usize, &'static KnobSpec)> {
        let last = self.chain.stages().last()?.knobs();
        self.chain.output_gain().filter(|(i, spec)| last.contains(i) && spec.skew == Skew::Linear)
    }

    /// Samples of the past each output sample depends on, itself included:
    /// `1 + (kernel − 1) · Σ dilations`.
    pub fn receptive_field(&self) -> usize {
        1 + (self.kernel_size - 1) * self.dilations.iter().sum::<usize>()
    }

    pub fn validate(&self) -> Result<()> {
        let fail = |reason: String| Err(Error::BadConfig { what: "proxy", reason });
        if !(1..=1024).contains(&self.channels) {
            return fail(format!("{} channels, expected 1..=1024", self.channels));
        }
        if !(1..=63).contains(&self.kernel_size) {
            return fail(format!("kernel size {}, expected 1..=63", self.kernel_size));
        }
        if !(1..=16).contains(&self.dilations.len()) || self.dilations.iter().any(|d| !(1..=4096).contains(d)) {
            return fail(format!("dilations {:?}, expected 1 to 16 values in 1..=4096", self.dilations));
        }
        crate::fx::check_sample_rate(self.sample_rate)
    }

    /// A proxy with freshly drawn weights on `device`; the same `seed` gives the same weights.
    ///
    /// # Panics
    /// If the config does not [validate](Self::validate).
    pub fn init(&self, device: &Device, seed: u64) -> Proxy {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let _guard = super::network::seeded(device, seed);
        let num_knobs = self.chain.num_knobs();
        let blocks = self
            .dilations
            .iter()
            .enumerate()
            .map(|(i, &dilation)| {
                let channels_in = if i == 0 { 1 } else { self.channels };
                let padding = (self.kernel_size - 1) * dilation;
                Block {
                    conv: Conv1dConfig::new(channels_in, self.channels, self.kernel_size)
                        .with_dilation(dilation)
                        .with_padding(PaddingConfig1d::Explicit(padding, 0))
                        .init(device),
                    film: LinearConfig::new(num_knobs, 2 * self.channels).init(device),
                    activation: PReluConfig::new().with_num_parameters(self.channels).init(device),
                    residual: Conv1dConfig::new(channels_in, self.channels, 1).with_bias(false).init(device),
                }
            })
            .collect();
        // With the skip, the output layer starts at zero, so a fresh proxy is the identity.
        let out = Conv1dConfig::new(self.channels, 1, 1);
        let out = if self.identity_skip { out.with_initializer(Initializer::Zeros) } else { out };
        let proxy = Proxy { blocks, out: out.init(device), config: self.clone() };
        super::network::materialize(&proxy);
        proxy
    }
}

/// One TCN block.
#[derive(Module, Debug)]
pub struct Block {
    conv: Conv1d,
    film: Linear,
    activation: PRelu,
    residual: Conv1d,
}

impl Block {
    fn forward(&self, x: Tensor<3>, knobs: Tensor<2>) -> Tensor<3> {
        let y = self.conv.forward(x.clone());
        let [batch, channels, _] = y.dims();
        let film = self.film.forward(knobs).reshape([batch, 2 * channels, 1]);
        let gamma = film.clone().slice([0..batch, 0..channels]);
        let beta = film.slice([0..batch, channels..2 * channels]);
        let y = y.clone() * gamma.add_scalar(1.0) + beta;
        self.activation.forward(y) + self.residual.forward(x)
    }
}

/// A trained or fresh proxy, with the config it was built from.
#[derive(Module, Debug)]
pub struct Proxy {
    blocks: Vec<Block>,
    out: Conv1d,
    #[module(skip)]
    config: ProxyConfig,
}

impl Proxy {
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.out.weight.lazy_device()
    }

    /// The proxy's output `[batch, samples]` for mono inputs `[batch, samples]` and the
    /// chain's normalised knobs `[batch, knobs of the chain]`.
    pub fn forward(&self, input: Tensor<2>, knobs: Tensor<2>) -> Tensor<2> {
        let [batch, samples] = input.dims();
        let x = input.clone().reshape([batch, 1, samples]);
        let exact_gain = self.config.exact_gain();
        let conditioning = match exact_gain {
            // The network hears the exact gain at its training value, 0 dB.
            Some((k, spec)) => {
                let n = knobs.dims()[1];
                let keep: Vec<f32> = (0..n).map(|i| if i == k { 0.0 } else { 1.0 }).collect();
                let keep = Tensor::<2>::from_data(TensorData::new(keep, [1, n]), &knobs.device());
                knobs.clone() * keep.clone() + keep.neg().add_scalar(1.0).mul_scalar(spec.normalize(0.0))
            }
            None => knobs.clone(),
        };
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x, conditioning.clone()));
        let y = self.out.forward(x).reshape([batch, samples]);
        let y = if self.config.identity_skip { y + input } else { y };
        match exact_gain {
            Some((k, spec)) => {
                let normalized = knobs.slice([0..batch, k..k + 1]);
                // gain_db = min + n (max − min) for the linear gain knob; gain = e^(gain_db · ln10/20).
                let gain_db = normalized.mul_scalar(spec.max - spec.min).add_scalar(spec.min);
                y * gain_db.mul_scalar(std::f64::consts::LN_10 / 20.0).exp()
            }
            None => y,
        }
    }

    /// One mono clip through the proxy with the chain's normalised `knobs`.
    pub fn process(&self, input: &[f32], knobs: &[f32]) -> Vec<f32> {
        let device = self.device();
        let x = Tensor::<2>::from_data(TensorData::new(input.to_vec(), [1, input.len()]), &device);
        rows(self.forward(x, knob_row(knobs, &device))).remove(0)
    }
}

/// Proxies one after another, imitating their chains concatenated (an `eq` proxy then a
/// `comp` proxy imitate `eq,comp`; one proxy of `eq,comp` does too). On the autodiff device
/// with the proxies' own weights frozen, so that gradients reach the knobs (and the signals
/// between the proxies) only.
#[derive(Debug)]
pub struct ProxyChain {
    proxies: Vec<Proxy>,
    chain: ChainSpec,
    device: Device,
}

impl ProxyChain {
    /// Reads proxy files, in chain order, which must have been trained at `sample_rate` (the
    /// rate of the audio they will process).
    pub fn load(paths: &[PathBuf], sample_rate: u32) -> Result<Self> {
        let device = Device::flex().autodiff();
        let proxies = paths.iter().map(|path| Ok(super::file::load_proxy_on(path, &device)?.proxy)).collect::<Result<Vec<_>>>()?;
        let chain = Self::new(proxies)?;
        if chain.sample_rate() != sample_rate {
            return Err(Error::RateMismatch { what: "the proxies run", rate: chain.sample_rate(), expected: sample_rate });
        }
        Ok(chain)
    }

    /// Joins proxies (at least one, all at one sample rate) in order, moved onto the autodiff
    /// device.
    pub fn new(proxies: Vec<Proxy>) -> Result<Self> {
        let Some(first) = proxies.first() else {
            return Err(Error::NoProxies);
        };
        let rate = first.config().sample_rate;
        if let Some(other) = proxies.iter().find(|p| p.config().sample_rate != rate) {
            return Err(Error::ProxyRates { first: rate, other: other.config().sample_rate });
        }
        let chain = ChainSpec::concat(proxies.iter().map(|p| &p.config().chain))?;
        let device = Device::flex().autodiff();
        let proxies = proxies.into_iter().map(|p| p.to_device(&device).no_grad()).collect();
        Ok(Self { proxies, chain, device })
    }

    /// The chain the proxies imitate together: theirs, concatenated.
    pub fn chain(&self) -> &ChainSpec {
        &self.chain
    }

    /// Knobs of [`ProxyChain::chain`].
    pub fn num_knobs(&self) -> usize {
        self.chain.num_knobs()
    }

    /// The proxies in order.
    pub fn proxies(&self) -> &[Proxy] {
        &self.proxies
    }

    /// Checks that the proxies imitate `network`, the chain a network sets.
    pub fn check_imitates(&self, network: &ChainSpec) -> Result<()> {
        if &self.chain != network {
            return Err(Error::ProxyChainMismatch { proxies: self.chain.to_string(), network: network.to_string() });
        }
        Ok(())
    }

    /// The rate the proxies were trained at.
    pub fn sample_rate(&self) -> u32 {
        self.proxies[0].config().sample_rate
    }

    /// Where each proxy's knobs lie in the chain's knob vector, in order.
    fn knob_ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.proxies.iter().scan(0, |start, p| {
            let range = *start..*start + p.config().chain.num_knobs();
            *start = range.end;
            Some(range)
        })
    }

    /// Every channel of `input` through every proxy with the normalised chain `knobs`.
    pub fn render(&self, input: &[Vec<f32>], knobs: &[f32]) -> Vec<Vec<f32>> {
        let channels = input.len();
        let y = self.proxies.iter().zip(self.knob_ranges()).fold(signal_tensor(input, &self.device), |x, (proxy, range)| {
            proxy.forward(x, knob_row(&knobs[range], &self.device).repeat_dim(0, channels))
        });
        rows(y)
    }

    /// `∂L/∂knobs` through the proxies given `∂L/∂output` for every channel. With
    /// `real_inputs` (for every proxy after the first, the real chain's signal entering it for
    /// the same input and knobs) the gradient is the straight-through one of NP-FH: each proxy
    /// reads the real signal, and its gradient with respect to that signal flows back through
    /// the proxies before it.
    ///
    /// # Panics
    /// If `knobs` is not one value per knob of the chain, or `real_inputs` not one signal per
    /// proxy after the first.
    pub fn knob_vjp(&self, input: &[Vec<f32>], knobs: &[f32], grad_output: &[Vec<f32>], real_inputs: Option<&[Vec<Vec<f32>>]>) -> Vec<f32> {
        assert_eq!(knobs.len(), self.num_knobs(), "one value per knob of the chain `{}`", self.chain);
        if let Some(real) = real_inputs {
            assert_eq!(real.len(), self.proxies.len() - 1, "one real signal per proxy after the first");
        }
        let device = &self.device;
        let channels = input.len();
        let knob_rows: Vec<Tensor<2>> = self.knob_ranges().map(|range| knob_row(&knobs[range], device).require_grad()).collect();
        let mut x = signal_tensor(input, device);
        for (i, (proxy, k)) in self.proxies.iter().zip(&knob_rows).enumerate() {
            if let Some(real) = real_inputs.filter(|_| i > 0).map(|real| &real[i - 1]) {
                // Value of the real chain, gradient of the proxies.
                x = x.clone() - x.detach() + signal_tensor(real, device);
            }
            x = proxy.forward(x, k.clone().repeat_dim(0, channels));
        }
        let grads = (x * signal_tensor(grad_output, device)).sum().backward();
        let grad_of = |t: &Tensor<2>| {
            t.grad(&grads).map_or_else(|| vec![0.0; t.dims()[1]], |g| g.into_data().try_into_vec::<f32>().expect("f32 gradient"))
        };
        knob_rows.iter().flat_map(grad_of).collect()
    }
}

fn knob_row(knobs: &[f32], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(knobs.to_vec(), [1, knobs.len()]), device)
}

/// Channels of equal length as a `[channels, samples]` tensor.
fn signal_tensor(channels: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let samples = channels.first().map_or(0, Vec::len);
    let values: Vec<f32> = channels.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(values, [channels.len(), samples]), device)
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Tiny untrained proxy files in `dir`, one per chain of `chains` (`eq.proxy`,
    /// `hpf_gain.proxy`), in order, for tests of the wiring, not of the quality.
    pub fn write_tiny_proxies(dir: &Path, chains: &[&str]) -> Vec<PathBuf> {
        chains
            .iter()
            .map(|chain| {
                let config = ProxyConfig { channels: 2, kernel_size: 3, dilations: vec![1], ..ProxyConfig::new(chain.parse().unwrap()) };
                let path = dir.join(format!("{}.proxy", chain.replace(',', "_")));
                super::super::file::save_proxy(&path, &config.init(&Device::flex(), 1), &super::super::ModelCard::new()).unwrap();
                path
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small proxy of `chain` without the identity skip, so that every path of the network
    /// shows in its output from the start.
    fn tiny(chain: &str) -> ProxyConfig {
        ProxyConfig { channels: 4, kernel_size: 3, dilations: vec![1, 4], identity_skip: false, ..ProxyConfig::new(chain.parse().unwrap()) }
    }

    fn tensor(values: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    fn run(proxy: &Proxy, input: &[f32], knobs: &[f32]) -> Vec<f32> {
        let y = proxy.forward(tensor(input.to_vec(), [1, input.len()]), tensor(knobs.to_vec(), [1, knobs.len()]));
        y.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn output_is_causal_with_the_stated_receptive_field() {
        let config = tiny("eq");
        assert_eq!(config.receptive_field(), 1 + 2 * 5);
        let proxy = config.init(&Device::flex(), 1);
        let input: Vec<f32> = (0..64).map(|i| ((i * 37) % 11) as f32 / 11.0 - 0.5).collect();
        let knobs = vec![0.3; 18];
        let base = run(&proxy, &input, &knobs);
        let mut changed = input.clone();
        changed[40] += 1.0;
        let after = run(&proxy, &changed, &knobs);
        assert!(base[..40].iter().zip(&after[..40]).all(|(a, b)| a == b), "an output before the change moved");
        assert_ne!(base[40], after[40]);
        // Sample 40 reaches 40 + receptive_field − 1 = 50 and no further.
        assert!((51..64).all(|t| base[t] == after[t]), "the change reached beyond the receptive field");
    }

    /// `proxy`'s output for `knobs` with the knob `gain` at 0 dB and at `gain_db`: the second
    /// must be the first times `10^(gain_db/20)`, whatever the other knobs and the weights.
    fn assert_exact_gain(proxy: &Proxy, knobs: &[f32], gain: usize, gain_db: f64) {
        let spec = proxy.config().chain.specs().nth(gain).unwrap();
        let input: Vec<f32> = (0..50).map(|i| (i as f32 * 0.3).sin()).collect();
        let (mut flat, mut raised) = (knobs.to_vec(), knobs.to_vec());
        flat[gain] = spec.normalize(0.0) as f32;
        raised[gain] = spec.normalize(gain_db) as f32;
        let (a, b) = (run(proxy, &input, &flat), run(proxy, &input, &raised));
        let factor = 10f32.powf(gain_db as f32 / 20.0);
        assert!(a.iter().any(|a| a.abs() > 1e-3), "a silent output tests nothing");
        assert!(a.iter().zip(&b).all(|(a, b)| (a * factor - b).abs() < 1e-5 * (1.0 + b.abs())), "{a:?}\n{b:?}");
    }

    /// The make-up gain is exact: raising it by 6 dB scales the output by 10^(6/20).
    #[test]
    fn compressor_makeup_is_an_exact_gain() {
        let config = tiny("comp");
        assert_eq!(config.exact_gain().map(|(k, spec)| (k, spec.name)), Some((5, "makeup_db")));
        assert_exact_gain(&config.init(&Device::flex(), 2), &[0.4; 6], 5, 6.0);
    }

    /// Any chain whose last effect holds its output gain gets that gain exactly (here a gain
    /// stage's after a high-pass); a chain whose output gain sits earlier, or that has none,
    /// learns every knob.
    #[test]
    fn a_last_effects_output_gain_is_exact_in_any_chain() {
        let config = tiny("hpf,gain");
        let gain = config.chain.knob_index("gain.gain_db").unwrap();
        assert_eq!(config.exact_gain().map(|(k, _)| k), Some(gain));
        let proxy = config.init(&Device::flex(), 7);
        let knobs: Vec<f32> = (0..config.chain.num_knobs()).map(|i| 0.2 + 0.15 * i as f32).collect();
        assert_exact_gain(&proxy, &knobs, gain, -9.0);
        assert_exact_gain(&proxy, &knobs, gain, 4.5);
        for chain in ["gain,hpf", "comp,eq", "eq", "limiter"] {
            assert_eq!(tiny(chain).exact_gain(), None, "{chain}");
        }
    }

    /// With the skip a fresh proxy is the identity (the compressor's times its make-up gain);
    /// without it, it is not.
    #[test]
    fn a_fresh_proxy_with_the_skip_is_the_identity() {
        let input: Vec<f32> = (0..30).map(|i| (i as f32 * 0.7).cos()).collect();
        let with_skip = |chain| ProxyConfig { identity_skip: true, ..tiny(chain) };
        let eq = with_skip("eq").init(&Device::flex(), 6);
        assert_eq!(run(&eq, &input, &[0.2; 18]), input);
        let comp = with_skip("comp").init(&Device::flex(), 6);
        let mut knobs = vec![0.7; 6];
        knobs[5] = 0.5 + 6.0 / 48.0;
        let gain = 10f32.powf(6.0 / 20.0);
        assert!(run(&comp, &input, &knobs).iter().zip(&input).all(|(y, x)| (y - gain * x).abs() < 1e-5));
        let plain = tiny("eq").init(&Device::flex(), 6);
        assert_ne!(run(&plain, &input, &[0.2; 18]), input);
    }

    #[test]
    fn same_seed_same_weights_and_bad_configs_are_refused() {
        let config = tiny("eq");
        let input = vec![0.1f32; 20];
        let run_with = |seed| run(&config.init(&Device::flex(), seed), &input, &[0.5; 18]);
        assert_eq!(run_with(3), run_with(3));
        assert_ne!(run_with(3), run_with(4));
        for bad in [
            ProxyConfig { channels: 0, ..config.clone() },
            ProxyConfig { dilations: vec![], ..config.clone() },
            ProxyConfig { sample_rate: 1000, ..config.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    /// Configs written before chains were data name an effect: `eq` and `comp` read as those
    /// chains, `chain` as the whole default chain; new configs write the chain, and read back.
    #[test]
    fn old_configs_naming_an_effect_read_as_chains() {
        let old = |effect: &str| {
            let json = serde_json::json!({ "effect": effect, "channels": 4, "kernel_size": 3, "dilations": [1], "sample_rate": 24000 });
            serde_json::from_value::<ProxyConfig>(json).map(|c| c.chain.to_string())
        };
        assert_eq!(old("eq").unwrap(), "eq");
        assert_eq!(old("comp").unwrap(), "comp");
        assert_eq!(old("chain").unwrap(), "eq,comp");
        assert!(old("reverb").unwrap_err().to_string().contains("unknown effect `reverb`"));
        assert!("chain".parse::<ChainSpec>().is_err(), "`chain` must stay free to mean the old whole-chain proxy");
        let config = tiny("hpf,eq,comp");
        let written = serde_json::to_value(&config).unwrap();
        assert_eq!(written["chain"], "hpf,eq,comp");
        assert!(written.get("effect").is_none());
        assert_eq!(serde_json::from_value::<ProxyConfig>(written).unwrap(), config);
    }
}
