//! Neural proxies: a network that imitates one effect of the chain (the EQ or the compressor)
//! from its normalised knobs, so that gradients can flow through it where the real effect
//! offers none (DeepAFx-ST's NP, NP-HH and NP-FH; Steinmetz, Bryan & Reiss 2022, §3.3).
//!
//! A causal conditional TCN: blocks of a dilated causal convolution, FiLM conditioning on the
//! knobs (`x·(1 + γ(p)) + β(p)`, with `γ, β` a linear map of the knobs), PReLU, and a 1×1
//! residual path; a final 1×1 convolution to one channel. The published proxy has 4 blocks,
//! kernel 13, dilations 1, 8, 64, 512 (a 292 ms receptive field at 24 kHz) and 64 channels;
//! ours keeps the shape and defaults to 32 channels for CPU training. Unlike the published
//! block, no batch normalisation precedes FiLM, so training and inference compute the same
//! function. The compressor's make-up gain is a plain gain, so the compressor proxy does not
//! learn it: its output is multiplied by `10^(makeup_db/20)` exactly, as in the published
//! proxy, and it is trained with the make-up at 0 dB.

use burn::module::Initializer;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig, PaddingConfig1d};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::network::rows;
use crate::fx::{KNOBS, NUM_KNOBS};
use crate::{Error, Result};

/// Which effect a proxy imitates: the EQ (knobs 0..18), the compressor (knobs 18..24) or the
/// whole chain (all 24 knobs; the published single "channel" proxy, and the TCN of the cTCN
/// baseline, [`super::ctcn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyEffect {
    Eq,
    Comp,
    Chain,
}

/// Index of the first compressor knob in [`KNOBS`].
const FIRST_COMP_KNOB: usize = crate::fx::params::COMP_OFFSET;

impl ProxyEffect {
    /// The effect's knobs, as a range of indices into [`KNOBS`].
    pub fn knobs(self) -> std::ops::Range<usize> {
        match self {
            ProxyEffect::Eq => 0..FIRST_COMP_KNOB,
            ProxyEffect::Comp => FIRST_COMP_KNOB..NUM_KNOBS,
            ProxyEffect::Chain => 0..NUM_KNOBS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ProxyEffect::Eq => "eq",
            ProxyEffect::Comp => "comp",
            ProxyEffect::Chain => "chain",
        }
    }

    /// The position, among this effect's knobs, of a make-up gain applied exactly.
    fn makeup(self) -> Option<usize> {
        let makeup = crate::fx::params::default_chain::MAKEUP_DB;
        self.knobs().contains(&makeup).then(|| makeup - self.knobs().start)
    }
}

/// Everything that determines a [`Proxy`]'s shape. Stored in every proxy file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyConfig {
    pub effect: ProxyEffect,
    /// Channels of every block.
    pub channels: usize,
    pub kernel_size: usize,
    /// One block per dilation, first to last.
    pub dilations: Vec<usize>,
    /// The sample rate the proxy was trained at, the only one it imitates the effect at.
    pub sample_rate: u32,
    /// Whether the input is added to the TCN's output, so that the network learns the
    /// effect's departure from the identity and starts near it (not in the published proxy;
    /// absent, false, in proxy files from before it).
    #[serde(default)]
    pub identity_skip: bool,
}

impl ProxyConfig {
    /// 4 blocks, kernel 13, dilations 1, 8, 64, 512 (the published shape), 32 channels, 24 kHz,
    /// with the identity skip.
    pub fn new(effect: ProxyEffect) -> Self {
        Self { effect, channels: 32, kernel_size: 13, dilations: vec![1, 8, 64, 512], sample_rate: 24_000, identity_skip: true }
    }

    /// Samples of the past each output sample depends on, itself included:
    /// `1 + (kernel − 1) · Σ dilations`.
    pub fn receptive_field(&self) -> usize {
        1 + (self.kernel_size - 1) * self.dilations.iter().sum::<usize>()
    }

    pub fn validate(&self) -> Result<()> {
        let fail = |reason: String| Err(Error::Invalid(format!("proxy settings: {reason}")));
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
        let num_knobs = self.effect.knobs().len();
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
    /// effect's normalised knobs `[batch, knobs of the effect]`.
    pub fn forward(&self, input: Tensor<2>, knobs: Tensor<2>) -> Tensor<2> {
        let [batch, samples] = input.dims();
        let x = input.clone().reshape([batch, 1, samples]);
        let conditioning = match self.config.effect.makeup() {
            // The network hears the make-up at its training value (0 dB, normalised 0.5).
            Some(k) => {
                let n = knobs.dims()[1];
                let keep: Vec<f32> = (0..n).map(|i| if i == k { 0.0 } else { 1.0 }).collect();
                let keep = Tensor::<2>::from_data(TensorData::new(keep, [1, n]), &knobs.device());
                knobs.clone() * keep.clone() + (keep.neg().add_scalar(1.0)).mul_scalar(0.5)
            }
            None => knobs.clone(),
        };
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x, conditioning.clone()));
        let y = self.out.forward(x).reshape([batch, samples]);
        let y = if self.config.identity_skip { y + input } else { y };
        match self.config.effect.makeup() {
            Some(k) => {
                let spec = &KNOBS[self.config.effect.knobs().start + k];
                let normalized = knobs.slice([0..batch, k..k + 1]);
                // gain_db = min + n (max − min) for the linear make-up knob; gain = e^(gain_db · ln10/20).
                let gain_db = normalized.mul_scalar(spec.max - spec.min).add_scalar(spec.min);
                y * gain_db.mul_scalar(std::f64::consts::LN_10 / 20.0).exp()
            }
            None => y,
        }
    }

    /// One mono clip through the proxy with the effect's normalised `knobs`.
    pub fn process(&self, input: &[f32], knobs: &[f32]) -> Vec<f32> {
        let device = self.device();
        let x = Tensor::<2>::from_data(TensorData::new(input.to_vec(), [1, input.len()]), &device);
        rows(self.forward(x, knob_row(knobs, &device))).remove(0)
    }
}

/// The EQ proxy then the compressor proxy: the chain as the proxies imitate it, on the
/// autodiff device with the proxies' own weights frozen, so that gradients reach the knobs
/// (and the signal between the two stages) only.
#[derive(Debug)]
pub struct ProxyChain {
    eq: Proxy,
    comp: Proxy,
    device: Device,
}

impl ProxyChain {
    /// Reads the two proxy files, which must have been trained at `sample_rate` (the rate of
    /// the audio they will process).
    pub fn load(eq: &std::path::Path, comp: &std::path::Path, sample_rate: u32) -> Result<Self> {
        let device = Device::flex().autodiff();
        let eq = super::file::load_proxy_on(eq, &device)?.proxy;
        let comp = super::file::load_proxy_on(comp, &device)?.proxy;
        let chain = Self::new(eq, comp)?;
        if chain.sample_rate() != sample_rate {
            return Err(Error::Invalid(format!("the proxies run at {} Hz, not at {sample_rate} Hz", chain.sample_rate())));
        }
        Ok(chain)
    }

    /// Joins two proxies (moved onto the autodiff device); the first must imitate the EQ, the
    /// second the compressor, at one sample rate.
    pub fn new(eq: Proxy, comp: Proxy) -> Result<Self> {
        let (e, c) = (eq.config(), comp.config());
        if e.effect != ProxyEffect::Eq || c.effect != ProxyEffect::Comp {
            return Err(Error::Invalid(format!(
                "a proxy chain needs an eq proxy then a comp proxy, not {} then {}",
                e.effect.name(),
                c.effect.name()
            )));
        }
        if e.sample_rate != c.sample_rate {
            return Err(Error::Invalid(format!("the proxies run at {} and {} Hz", e.sample_rate, c.sample_rate)));
        }
        let device = Device::flex().autodiff();
        Ok(Self { eq: eq.to_device(&device).no_grad(), comp: comp.to_device(&device).no_grad(), device })
    }

    /// The rate the proxies were trained at.
    pub fn sample_rate(&self) -> u32 {
        self.eq.config().sample_rate
    }

    /// Every channel of `input` through both proxies with the normalised chain `knobs`.
    pub fn render(&self, input: &[Vec<f32>], knobs: &[f32]) -> Vec<Vec<f32>> {
        let (eq_knobs, comp_knobs) = self.knob_tensors(knobs, input.len());
        let y = self.comp.forward(self.eq.forward(signal_tensor(input, &self.device), eq_knobs), comp_knobs);
        rows(y)
    }

    /// The compressor proxy alone on `input` (the EQ stage's output) with the chain's knobs.
    pub fn render_comp(&self, input: &[Vec<f32>], knobs: &[f32]) -> Vec<Vec<f32>> {
        let (_, comp_knobs) = self.knob_tensors(knobs, input.len());
        rows(self.comp.forward(signal_tensor(input, &self.device), comp_knobs))
    }

    /// `∂L/∂knobs` through the proxies given `∂L/∂output` for every channel. With
    /// `real_eq_output` (the real EQ's output for the same input and knobs) the gradient is
    /// the straight-through one of NP-FH: the compressor proxy reads the real EQ's output, and
    /// its gradient with respect to that signal flows back through the EQ proxy.
    pub fn knob_vjp(&self, input: &[Vec<f32>], knobs: &[f32], grad_output: &[Vec<f32>], real_eq_output: Option<&[Vec<f32>]>) -> Vec<f32> {
        let device = &self.device;
        let channels = input.len();
        let eq_split = ProxyEffect::Eq.knobs().len();
        let eq_knobs = knob_row(&knobs[..eq_split], device).require_grad();
        let comp_knobs = knob_row(&knobs[eq_split..], device).require_grad();
        let soft = self.eq.forward(signal_tensor(input, device), eq_knobs.clone().repeat_dim(0, channels));
        let between = match real_eq_output {
            // Value of the real EQ, gradient of the proxy.
            Some(real) => soft.clone() - soft.detach() + signal_tensor(real, device),
            None => soft,
        };
        let y = self.comp.forward(between, comp_knobs.clone().repeat_dim(0, channels));
        let grads = (y * signal_tensor(grad_output, device)).sum().backward();
        let grad_of = |t: &Tensor<2>| {
            t.grad(&grads).map_or_else(|| vec![0.0; t.dims()[1]], |g| g.into_data().try_into_vec::<f32>().expect("f32 gradient"))
        };
        [grad_of(&eq_knobs), grad_of(&comp_knobs)].concat()
    }

    fn knob_tensors(&self, knobs: &[f32], channels: usize) -> (Tensor<2>, Tensor<2>) {
        let eq_split = ProxyEffect::Eq.knobs().len();
        (
            knob_row(&knobs[..eq_split], &self.device).repeat_dim(0, channels),
            knob_row(&knobs[eq_split..], &self.device).repeat_dim(0, channels),
        )
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

    /// Tiny untrained EQ and compressor proxy files in `dir` (`eq.proxy`, `comp.proxy`), for
    /// tests of the wiring, not of the quality.
    pub fn write_tiny_proxies(dir: &Path) -> (PathBuf, PathBuf) {
        let write = |effect: ProxyEffect| {
            let config = ProxyConfig { channels: 2, kernel_size: 3, dilations: vec![1], ..ProxyConfig::new(effect) };
            let path = dir.join(format!("{}.proxy", effect.name()));
            super::super::file::save_proxy(&path, &config.init(&Device::flex(), 1), &serde_json::json!({})).unwrap();
            path
        };
        (write(ProxyEffect::Eq), write(ProxyEffect::Comp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small proxy without the identity skip, so that every path of the network shows in
    /// its output from the start.
    fn tiny(effect: ProxyEffect) -> ProxyConfig {
        ProxyConfig { channels: 4, kernel_size: 3, dilations: vec![1, 4], identity_skip: false, ..ProxyConfig::new(effect) }
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
        let config = tiny(ProxyEffect::Eq);
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

    /// The make-up gain is exact: raising it by 6 dB scales the output by 10^(6/20).
    #[test]
    fn compressor_makeup_is_an_exact_gain() {
        let proxy = tiny(ProxyEffect::Comp).init(&Device::flex(), 2);
        let input: Vec<f32> = (0..50).map(|i| (i as f32 * 0.3).sin()).collect();
        let makeup = ProxyEffect::Comp.makeup().unwrap();
        let (mut quiet, mut loud) = (vec![0.4; 6], vec![0.4; 6]);
        quiet[makeup] = 0.5;
        loud[makeup] = 0.5 + 6.0 / 48.0;
        let (a, b) = (run(&proxy, &input, &quiet), run(&proxy, &input, &loud));
        let gain = 10f32.powf(6.0 / 20.0);
        assert!(a.iter().zip(&b).all(|(a, b)| (a * gain - b).abs() < 1e-5 * (1.0 + b.abs())));
    }

    /// With the skip a fresh proxy is the identity (the compressor's times its make-up gain);
    /// without it, it is not.
    #[test]
    fn a_fresh_proxy_with_the_skip_is_the_identity() {
        let input: Vec<f32> = (0..30).map(|i| (i as f32 * 0.7).cos()).collect();
        let with_skip = |effect| ProxyConfig { identity_skip: true, ..tiny(effect) };
        let eq = with_skip(ProxyEffect::Eq).init(&Device::flex(), 6);
        assert_eq!(run(&eq, &input, &[0.2; 18]), input);
        let comp = with_skip(ProxyEffect::Comp).init(&Device::flex(), 6);
        let mut knobs = vec![0.7; 6];
        knobs[ProxyEffect::Comp.makeup().unwrap()] = 0.5 + 6.0 / 48.0;
        let gain = 10f32.powf(6.0 / 20.0);
        assert!(run(&comp, &input, &knobs).iter().zip(&input).all(|(y, x)| (y - gain * x).abs() < 1e-5));
        let plain = tiny(ProxyEffect::Eq).init(&Device::flex(), 6);
        assert_ne!(run(&plain, &input, &[0.2; 18]), input);
    }

    #[test]
    fn same_seed_same_weights_and_bad_configs_are_refused() {
        let config = tiny(ProxyEffect::Eq);
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
}
