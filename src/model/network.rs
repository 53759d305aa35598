//! The style network: one shared encoder reads the input's and the reference's log-mel
//! features, and a controller turns the two embeddings into normalised knobs for the effect
//! chain, after DeepAFx-ST (Steinmetz, Bryan & Reiss 2022), made small enough for CPU training.
//!
//! Encoder: 1-D convolutions over time with mel bands as channels, GELU after each, then the
//! mean and standard deviation of every channel over time (so any clip length works), then a
//! linear map to the embedding. Controller: `concat(e_in, e_ref, e_ref − e_in)` → two GELU
//! layers → one output per knob → sigmoid, so every knob lies in (0, 1).

use std::sync::{Mutex, MutexGuard};

use burn::module::{Initializer, ModuleVisitor, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::features::{FeatureConfig, Features};
use crate::fx::chain::StageKind;
use crate::fx::level::OutputLevel;
use crate::fx::{ChainSpec, Controls, NUM_KNOBS};
use crate::grad::ChainFx;
use crate::{Error, Result};

/// One convolution of the encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvSpec {
    /// Output channels.
    pub channels: usize,
    /// Step in frames; 2 halves the time resolution.
    pub stride: usize,
}

/// Everything that determines a [`StyleNet`]'s shape, including the front end its input comes
/// from. Stored in every model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StyleNetConfig {
    pub features: FeatureConfig,
    /// The encoder's convolutions, first to last; the first reads `features.n_mels` channels.
    pub conv: Vec<ConvSpec>,
    /// Kernel size in frames of every convolution (odd, padded to keep centred frames).
    pub kernel_size: usize,
    /// Size of each clip's embedding.
    pub embedding_dim: usize,
    /// Width of the controller's two hidden layers.
    pub hidden_dim: usize,
    /// Knobs predicted, [`NUM_KNOBS`] for the EQ + compressor chain.
    pub num_knobs: usize,
    /// The chain whose knobs the network sets (model files from before a chain was recorded:
    /// the default chain `eq,comp`).
    #[serde(default)]
    pub chain: ChainSpec,
    /// How the chain's output level is set: by the make-up knob alone (absolute, the default
    /// of model files that do not say), or relative to the reference's level.
    #[serde(default)]
    pub output_level: OutputLevel,
    /// Which of the chain's knobs the network sets and the values of the rest (model files
    /// that do not say: every knob).
    #[serde(default, skip_serializing_if = "Controls::is_every")]
    pub controls: Controls,
}

impl Default for StyleNetConfig {
    /// Convolutions 64 → 64 → 96 → 128 → 128 channels (strides 1, 2, 2, 2, kernel 5),
    /// 128-d embeddings, a 256-wide controller: 398 392 parameters.
    fn default() -> Self {
        let conv = [(64, 1), (96, 2), (128, 2), (128, 2)].map(|(channels, stride)| ConvSpec { channels, stride });
        Self {
            features: FeatureConfig::default(),
            conv: conv.to_vec(),
            kernel_size: 5,
            embedding_dim: 128,
            hidden_dim: 256,
            num_knobs: NUM_KNOBS,
            chain: ChainSpec::default(),
            output_level: OutputLevel::Absolute,
            controls: Controls::default(),
        }
    }
}

/// Upper bounds of a config's sizes: far above anything useful, low enough that a config read
/// from a damaged file cannot ask for an absurd allocation.
const MAX_WIDTH: usize = 4096;
const MAX_CONV_LAYERS: usize = 16;
const MAX_KERNEL: usize = 63;

impl StyleNetConfig {
    /// This config setting every knob of `chain` (one output per knob).
    pub fn with_chain(self, chain: ChainSpec) -> Self {
        StyleNetConfig { num_knobs: chain.num_knobs(), chain, controls: Controls::default(), ..self }
    }

    /// This config setting the knobs of its chain that `controls` name (one output each).
    pub fn with_controls(self, controls: Controls) -> Self {
        StyleNetConfig { num_knobs: controls.count(&self.chain), controls, ..self }
    }

    /// The chain as the network drives it at `sample_rate`: its free knobs, the rest held.
    pub fn fx(&self, sample_rate: u32) -> ChainFx {
        ChainFx::with_controls(self.chain.clone(), &self.controls, sample_rate).expect("a validated config's controls fit its chain")
    }

    /// Checks that the config describes a buildable network: valid features, 1 to 16
    /// convolutions, widths in 1..=4096, an odd kernel of at most 63 frames and strides in
    /// 1..=kernel.
    pub fn validate(&self) -> Result<()> {
        self.features.validate()?;
        let fail = |reason: String| Err(Error::BadConfig { what: "network", reason });
        let widths: Vec<usize> =
            self.conv.iter().map(|c| c.channels).chain([self.embedding_dim, self.hidden_dim, self.num_knobs]).collect();
        if !(1..=MAX_CONV_LAYERS).contains(&self.conv.len()) {
            return fail(format!("{} convolutions, expected 1..={MAX_CONV_LAYERS}", self.conv.len()));
        }
        self.controls.resolve(&self.chain)?;
        let learnt = self.controls.count(&self.chain);
        if self.num_knobs != learnt {
            return fail(format!("{} outputs for {learnt} knobs of the chain `{}` to set", self.num_knobs, self.chain));
        }
        if !widths.iter().all(|w| (1..=MAX_WIDTH).contains(w)) {
            return fail(format!("a width is outside 1..={MAX_WIDTH}: {widths:?}"));
        }
        if self.kernel_size.is_multiple_of(2) || self.kernel_size > MAX_KERNEL {
            return fail(format!("kernel size {} is not odd and at most {MAX_KERNEL}", self.kernel_size));
        }
        if let Some(c) = self.conv.iter().find(|c| c.stride == 0 || c.stride > self.kernel_size) {
            return fail(format!("stride {} is outside 1..=kernel size", c.stride));
        }
        Ok(())
    }

    /// Builds a network with freshly drawn Kaiming-uniform weights on `device`; the same `seed`
    /// gives the same weights.
    ///
    /// # Panics
    /// If the config does not [validate](Self::validate).
    pub fn init(&self, device: &Device, seed: u64) -> StyleNet {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let _guard = seeded(device, seed);
        let net = self.build(device);
        materialize(&net);
        net
    }

    fn build(&self, device: &Device) -> StyleNet {
        // He initialisation (Kaiming uniform, gain √2) for layers followed by GELU and gain 1
        // for the linear embedding, so activations keep their scale through the stack; burn's
        // default (gain 1/√3) shrinks the variance threefold per layer, and the net then sat on
        // long plateaus in the known-answer test.
        let he = Initializer::KaimingUniform { gain: std::f64::consts::SQRT_2, fan_out_only: false };
        let unit = Initializer::KaimingUniform { gain: 1.0, fan_out_only: false };
        let padding = self.kernel_size / 2;
        let in_channels = std::iter::once(self.features.n_mels).chain(self.conv.iter().map(|c| c.channels));
        let convs = in_channels
            .zip(&self.conv)
            .map(|(channels_in, c)| {
                Conv1dConfig::new(channels_in, c.channels, self.kernel_size)
                    .with_stride(c.stride)
                    .with_padding(PaddingConfig1d::Explicit(padding, padding))
                    .with_initializer(he.clone())
                    .init(device)
            })
            .collect();
        let last_channels = self.conv.last().expect("validated: at least one convolution").channels;
        let linear = |i, o, init: &Initializer| LinearConfig::new(i, o).with_initializer(init.clone()).init(device);
        StyleNet {
            encoder: Encoder { convs, embed: linear(2 * last_channels, self.embedding_dim, &unit) },
            controller: Controller {
                hidden: vec![linear(3 * self.embedding_dim, self.hidden_dim, &he), linear(self.hidden_dim, self.hidden_dim, &he)],
                out: self.output_layer(device),
            },
            config: self.clone(),
        }
    }

    /// The controller's last layer. A free knob of a plugin starts near the plugin's default
    /// (or its `--set` value): its bias is the logit of that normalised value, kept within
    /// [`PLUGIN_START`] of the range's ends so the sigmoid still moves it. afx's own knobs start
    /// where every earlier model did, at the middle of their ranges. A plugin's ranges are its
    /// author's, and their middles are often extreme settings (Calf's multiband compressor: +18 dB
    /// make-up in every band), which a gradient estimate then has to walk back from.
    fn output_layer(&self, device: &Device) -> Linear {
        let mut out = LinearConfig::new(self.hidden_dim, self.num_knobs).init(device);
        let selection = self.controls.resolve(&self.chain).expect("validated: the controls fit the chain");
        let plugin_knob: Vec<bool> = self
            .chain
            .stages()
            .iter()
            .flat_map(|s| std::iter::repeat_n(matches!(s.kind, StageKind::Plugin(_)), s.kind.knobs().len()))
            .collect();
        if !selection.free.iter().any(|&i| plugin_knob[i]) {
            return out;
        }
        let current = out.bias.as_ref().map(|b| b.val().into_data().try_into_vec::<f32>().expect("a float tensor holds f32 values"));
        let bias: Vec<f32> = selection
            .free
            .iter()
            .enumerate()
            .map(|(j, &i)| match plugin_knob[i] {
                true => {
                    let p = selection.base[i].clamp(PLUGIN_START, 1.0 - PLUGIN_START);
                    (p / (1.0 - p)).ln()
                }
                false => current.as_ref().map_or(0.0, |b| b[j]),
            })
            .collect();
        out.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [self.num_knobs]), device)));
        out
    }
}

/// How close to a range's end a plugin knob may start (normalised): see
/// [`StyleNetConfig::output_layer`].
const PLUGIN_START: f32 = 0.05;

/// Seeds the device's generator with `seed` and holds a lock until the guard drops: flex keeps
/// one random generator for the whole process and burn draws initial weights lazily, on first
/// use, so a network must be built and [materialised](materialize) under the guard for
/// concurrent inits (tests, several trainers) not to interleave their draws.
pub(super) fn seeded(device: &Device, seed: u64) -> MutexGuard<'static, ()> {
    static INIT: Mutex<()> = Mutex::new(());
    let guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    guard
}

/// Draws every lazily initialised parameter of `module` now.
pub(super) fn materialize<M: Module>(module: &M) {
    module.visit(&mut Materialize);
}

/// Forces burn's lazy parameter initialisation by reading every parameter once.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Log-mel features `[batch, mels, frames]` → embeddings `[batch, embedding_dim]`.
#[derive(Module, Debug)]
pub struct Encoder {
    convs: Vec<Conv1d>,
    embed: Linear,
}

impl Encoder {
    pub fn forward(&self, features: Tensor<3>) -> Tensor<2> {
        let x = self.convs.iter().fold(features, |x, conv| gelu(conv.forward(x)));
        let [batch, channels, _] = x.dims();
        let mean = x.clone().mean_dim(2);
        // Centred variance (stable in f32) plus a small floor so a single frame has a gradient.
        let std = (x - mean.clone()).square().mean_dim(2).add_scalar(1e-5).sqrt();
        let pooled = Tensor::cat(vec![mean, std], 1).reshape([batch, 2 * channels]);
        self.embed.forward(pooled)
    }
}

/// `concat(e_in, e_ref, e_ref − e_in)` → normalised knobs `[batch, num_knobs]` in (0, 1).
#[derive(Module, Debug)]
pub struct Controller {
    hidden: Vec<Linear>,
    out: Linear,
}

impl Controller {
    pub fn forward(&self, input_embedding: Tensor<2>, reference_embedding: Tensor<2>) -> Tensor<2> {
        self.forward_with(input_embedding, reference_embedding, |x| x)
    }

    /// [`Controller::forward`] with `dropout` applied to the joint embedding and to each hidden
    /// layer's output.
    fn forward_with(
        &self,
        input_embedding: Tensor<2>,
        reference_embedding: Tensor<2>,
        mut dropout: impl FnMut(Tensor<2>) -> Tensor<2>,
    ) -> Tensor<2> {
        let difference = reference_embedding.clone() - input_embedding.clone();
        let joint = dropout(Tensor::cat(vec![input_embedding, reference_embedding, difference], 1));
        let x = self.hidden.iter().fold(joint, |x, layer| dropout(gelu(layer.forward(x))));
        sigmoid(self.out.forward(x))
    }
}

/// An inverted-dropout mask of `len` values: each 0 with probability `p`, else `1 / (1 − p)`,
/// so a unit's expected value is unchanged and the network needs no rescaling at inference.
pub(crate) fn dropout_mask<R: Rng + ?Sized>(rng: &mut R, p: f64, len: usize) -> Vec<f32> {
    let kept = (1.0 / (1.0 - p)) as f32;
    (0..len).map(|_| if rng.random_bool(p) { 0.0 } else { kept }).collect()
}

/// The encoder and controller, with the config they were built from.
#[derive(Module, Debug)]
pub struct StyleNet {
    encoder: Encoder,
    controller: Controller,
    #[module(skip)]
    config: StyleNetConfig,
}

impl StyleNet {
    pub fn config(&self) -> &StyleNetConfig {
        &self.config
    }

    /// The same network with its output level read as `level` (to fine-tune a model into the
    /// other way of setting the level).
    pub fn with_output_level(mut self, level: OutputLevel) -> Self {
        self.config.output_level = level;
        self
    }

    /// Normalised knobs `[batch, num_knobs]` from input and reference features
    /// `[batch, mels, frames]` (the two may have different numbers of frames).
    pub fn forward(&self, input_features: Tensor<3>, reference_features: Tensor<3>) -> Tensor<2> {
        let input_embedding = self.encoder.forward(input_features);
        let reference_embedding = self.encoder.forward(reference_features);
        self.controller.forward(input_embedding, reference_embedding)
    }

    /// The encoder's embedding of each clip (the style representation the controller reads).
    ///
    /// # Panics
    /// If `features` is empty, its clips differ in frames, or their bands do not match the config.
    pub fn embed(&self, features: &[Features]) -> Vec<Vec<f32>> {
        rows(self.encoder.forward(self.batch_tensor(features)))
    }

    /// [`StyleNet::forward`] on plain features: one knob vector per (input, reference) pair.
    ///
    /// # Panics
    /// If the sides are empty or differ in size, a side's clips differ in frames, or their bands
    /// do not match the config.
    pub fn predict(&self, input: &[Features], reference: &[Features]) -> Vec<Vec<f32>> {
        rows(self.forward_features(input, reference))
    }

    /// [`StyleNet::forward`] on features stacked into tensors on the parameters' device.
    ///
    /// # Panics
    /// If the sides are empty or of different sizes, a side's clips have different numbers of
    /// frames, or their bands do not match the config: callers build batches, so these are bugs,
    /// not bad input.
    pub(crate) fn forward_features(&self, input: &[Features], reference: &[Features]) -> Tensor<2> {
        assert_eq!(input.len(), reference.len(), "one reference per input");
        self.forward(self.batch_tensor(input), self.batch_tensor(reference))
    }

    /// [`StyleNet::forward_features`] as trained with dropout: each of the controller's inputs
    /// and hidden units is dropped with probability `p` ([`dropout_mask`]), the masks drawn
    /// from ChaCha8 seeded with `seed`. `p = 0` is the plain forward pass.
    ///
    /// # Panics
    /// As [`StyleNet::forward_features`], and if `p` is not in `[0, 1)`.
    pub(crate) fn forward_features_dropped(&self, input: &[Features], reference: &[Features], p: f64, seed: u64) -> Tensor<2> {
        assert!((0.0..1.0).contains(&p), "dropout {p} is outside [0, 1)");
        assert_eq!(input.len(), reference.len(), "one reference per input");
        let input_embedding = self.encoder.forward(self.batch_tensor(input));
        let reference_embedding = self.encoder.forward(self.batch_tensor(reference));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.controller.forward_with(input_embedding, reference_embedding, |x| {
            if p == 0.0 {
                return x;
            }
            let [batch, n] = x.dims();
            let mask = Tensor::from_data(TensorData::new(dropout_mask(&mut rng, p, batch * n), [batch, n]), &x.device());
            x * mask
        })
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.controller.out.weight.lazy_device()
    }

    /// Stacks features into the network's `[batch, mels, frames]` input.
    fn batch_tensor(&self, features: &[Features]) -> Tensor<3> {
        let n_mels = self.config.features.n_mels;
        let frames = features.first().expect("a batch holds at least one clip").frames;
        assert!(
            features.iter().all(|f| f.n_mels == n_mels && f.frames == frames && f.values.len() == n_mels * frames),
            "every clip of a batch needs {n_mels} bands and the same number of frames"
        );
        let values: Vec<f32> = features.iter().flat_map(|f| f.values.iter().copied()).collect();
        Tensor::from_data(TensorData::new(values, [features.len(), n_mels, frames]), &self.device())
    }
}

/// Rows of equal length as a `[rows, columns]` tensor.
///
/// # Panics
/// If the rows differ in length.
pub(crate) fn matrix(rows: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let columns = rows.first().map_or(0, Vec::len);
    assert!(rows.iter().all(|r| r.len() == columns), "every row needs {columns} values");
    Tensor::from_data(TensorData::new(rows.concat(), [rows.len(), columns]), device)
}

/// The rows of a `[batch, n]` tensor as vectors.
pub(crate) fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, n] = t.dims();
    let values = t.into_data().try_into_vec::<f32>().expect("a float tensor holds f32 values");
    values.chunks_exact(n).map(<[f32]>::to_vec).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::features::LogMel;

    /// Features of `count` deterministic noise clips of `samples` samples.
    pub(crate) fn noise_features(config: &FeatureConfig, count: usize, samples: usize, seed: u64) -> Vec<Features> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut front = LogMel::new(config);
        (0..count)
            .map(|_| {
                let x: Vec<f32> = (0..samples).map(|_| rng.random_range(-0.3..0.3)).collect();
                front.compute(&x).unwrap()
            })
            .collect()
    }

    #[test]
    fn default_network_is_small() {
        let config = StyleNetConfig::default();
        let net = config.init(&Device::flex(), 0);
        assert_eq!(net.num_params(), 398_392);
        assert!(net.num_params() < 1_000_000);
    }

    #[test]
    fn any_length_gives_knobs_in_the_unit_interval() {
        let config = StyleNetConfig::default();
        let net = config.init(&Device::flex(), 1);
        let shortest = noise_features(&config.features, 2, config.features.min_samples(), 1);
        let long = noise_features(&config.features, 2, 60_000, 2);
        let one_frame = Features { n_mels: 64, frames: 1, values: vec![0.5; 64] };
        for (input, reference) in [(&shortest, &long), (&long, &shortest), (&vec![one_frame.clone(); 2], &long)] {
            let knobs = net.predict(input, reference);
            assert_eq!(knobs.len(), 2);
            for k in &knobs {
                assert_eq!(k.len(), NUM_KNOBS);
                assert!(k.iter().all(|&v| v > 0.0 && v < 1.0), "{k:?}");
            }
        }
    }

    #[test]
    fn same_seed_same_weights() {
        let config = StyleNetConfig::default();
        let feats = noise_features(&config.features, 1, 10_000, 3);
        let predict = |seed| config.init(&Device::flex(), seed).predict(&feats, &feats);
        assert_eq!(predict(7), predict(7));
        assert_ne!(predict(7), predict(8));
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let good = StyleNetConfig::default();
        let bad = [
            StyleNetConfig { conv: vec![], ..good.clone() },
            StyleNetConfig { kernel_size: 4, ..good.clone() },
            StyleNetConfig { hidden_dim: 1 << 20, ..good.clone() },
            StyleNetConfig { conv: vec![ConvSpec { channels: 8, stride: 0 }], ..good.clone() },
            StyleNetConfig { features: FeatureConfig { fmax_hz: 20_000.0, ..good.features.clone() }, ..good.clone() },
        ];
        assert!(good.validate().is_ok());
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
