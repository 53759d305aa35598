//! Gradient estimators: from the gradient of a loss with respect to rendered outputs, the
//! gradient with respect to each example's normalised knobs.
//!
//! Every estimator implements [`Estimator`]. [`Spsa`] and [`FiniteDiff`] need nothing but the
//! ability to [`Render`], so any black-box effect can be trained through; [`Exact`] needs the
//! hand-written adjoint of a [`Differentiable`] effect.

mod exact;
mod finite_diff;
mod mixed;
mod proxy;
mod spsa;

pub use exact::{Exact, chain_knob_gradient, chain_loss_and_grad};
pub use finite_diff::FiniteDiff;
pub use mixed::{Mixed, spsa_knobs};
pub use proxy::ProxyFull;
pub use spsa::Spsa;

use crate::Result;
use crate::fx::level::{LevelMatch, OutputLevel, level_db, level_db_and_gradient};
use crate::fx::{self, ChainGrad, ChainKnobs, ChainSpec, ChainTape, Controls, KnobSpec, Selection};
use crate::spectral::MrStftBatch;

/// Planar audio: one `Vec` per channel.
pub type Channels = Vec<Vec<f32>>;

/// One example of a batch: the effect's input and its normalised knobs (`[0, 1]` each).
#[derive(Clone, Copy, Debug)]
pub struct Example<'a> {
    pub input: &'a [Vec<f32>],
    pub knobs: &'a [f32],
}

/// What a black-box effect offers: rendering an input with normalised knobs.
pub trait Render: Sync {
    /// Number of knobs.
    fn num_knobs(&self) -> usize;
    /// Renders `input` into `output` (resized as needed); knobs are clamped to `[0, 1]`.
    fn render(&self, input: &[Vec<f32>], knobs: &[f32], output: &mut Channels);
}

/// An effect that also offers the exact vector–Jacobian product.
pub trait Differentiable: Render {
    /// `∂L/∂knobs` (normalised) given `∂L/∂output` for one example.
    fn knob_vjp(&self, input: &[Vec<f32>], knobs: &[f32], grad_output: &[Vec<f32>]) -> Vec<f32>;
}

/// A way to turn output gradients into knob gradients.
pub trait Estimator<F: ?Sized> {
    /// `∂L/∂knobs` for every example. `grad_output[b]` is `∂L/∂output` of example `b`;
    /// `seed` fixes every random choice of this call.
    fn knob_gradients(&self, fx: &F, batch: &[Example], grad_output: &[Channels], seed: u64) -> Vec<Vec<f32>>;
}

/// Copies `input` into `output` (reusing its buffers) and returns views of it to render in place.
pub fn copy_for_rendering<'a>(input: &[Vec<f32>], output: &'a mut Channels) -> Vec<&'a mut [f32]> {
    output.resize_with(input.len(), Vec::new);
    for (o, i) in output.iter_mut().zip(input) {
        o.clear();
        o.extend_from_slice(i);
    }
    output.iter_mut().map(|c| c.as_mut_slice()).collect()
}

/// A [`Render`] with only some of its knobs free (the ones a network learns, or the ones an
/// estimator perturbs): [`Selection::free`] holds their positions in `fx`'s knob vector, every
/// other knob stays at its value in [`Selection::base`]. Its knob vector is the free knobs.
pub struct Subset<'a, F: ?Sized> {
    pub fx: &'a F,
    pub selection: Selection,
}

impl<F: Render + ?Sized> Render for Subset<'_, F> {
    fn num_knobs(&self) -> usize {
        self.selection.free.len()
    }

    fn render(&self, input: &[Vec<f32>], knobs: &[f32], output: &mut Channels) {
        self.fx.render(input, &self.selection.expand(knobs), output);
    }
}

/// The plain-Rust effect chain at a fixed sample rate, as a renderable and differentiable
/// effect over the normalised knobs that a network sets ([`Selection::free`]: every knob of
/// the chain unless a model's [`crate::fx::Controls`] hold some).
#[derive(Clone, Debug)]
pub struct ChainFx {
    pub sample_rate: u32,
    pub chain: ChainSpec,
    pub selection: Selection,
    failure: Failure,
}

/// The first error a render of a [`ChainFx`] (and its clones) met: a plugin that failed or
/// output NaN/Inf at some knobs. An estimator cannot stop in the middle of its renders, so such
/// a render comes out silent and the error waits here for the command to report it
/// ([`ChainFx::check`]) once the step or example is done.
#[derive(Clone, Debug, Default)]
struct Failure(std::sync::Arc<std::sync::Mutex<Option<crate::Error>>>);

impl ChainFx {
    /// `chain` at `sample_rate`, every knob free.
    pub fn new(chain: ChainSpec, sample_rate: u32) -> Self {
        ChainFx { sample_rate, selection: Selection::every(&chain), chain, failure: Failure::default() }
    }

    /// `chain` at `sample_rate` with the knobs `controls` name free and the others held.
    pub fn with_controls(chain: ChainSpec, controls: &Controls, sample_rate: u32) -> Result<Self> {
        Ok(ChainFx { sample_rate, selection: controls.resolve(&chain)?, chain, failure: Failure::default() })
    }

    /// The same chain with every knob free.
    pub fn every_knob(&self) -> Self {
        Self::new(self.chain.clone(), self.sample_rate)
    }

    /// The default chain (`eq,comp`, today's style network's) at `sample_rate`.
    pub fn default_chain(sample_rate: u32) -> Self {
        Self::new(ChainSpec::default(), sample_rate)
    }

    /// Renders one mono clip with normalised `knobs` into a new buffer.
    pub fn render_mono(&self, input: &[f32], knobs: &[f32]) -> Vec<f32> {
        let mut output = Channels::new();
        self.render(&[input.to_vec()], knobs, &mut output);
        output.remove(0)
    }

    /// The physical knobs of the whole chain for normalised values of the free knobs.
    pub fn knobs(&self, knobs: &[f32]) -> ChainKnobs {
        let n: Vec<f64> = if self.selection.is_every() {
            knobs.iter().map(|&v| f64::from(v)).collect()
        } else {
            self.selection.expand(knobs).iter().map(|&v| f64::from(v)).collect()
        };
        ChainKnobs::from_normalized(self.chain.clone(), &n).expect("one normalised value per free knob of the chain")
    }

    /// The error a render has met since the last check, if any ([`Failure`]): renders that
    /// can fail (chains with plugins) are checked after each training step, evaluation example
    /// and fit.
    pub fn check(&self) -> crate::Result<()> {
        match self.failure.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The free knobs' share of a gradient of the whole chain, in normalised units.
    pub fn knob_gradient<T>(&self, grad: &ChainGrad<T>, knobs: &ChainKnobs) -> Vec<f32> {
        let all: Vec<f32> = grad.knobs_normalized(knobs).iter().map(|&v| v as f32).collect();
        if self.selection.is_every() { all } else { self.selection.select(&all) }
    }
}

impl Render for ChainFx {
    fn num_knobs(&self) -> usize {
        self.selection.free.len()
    }

    fn render(&self, input: &[Vec<f32>], knobs: &[f32], output: &mut Channels) {
        let mut views = copy_for_rendering(input, output);
        // Aligned with the input, as `fx::forward` renders it (a look-ahead's latency removed).
        if let Err(e) = fx::render(&self.knobs(knobs), self.sample_rate, &mut views) {
            views.iter_mut().for_each(|c| c.fill(0.0));
            self.failure.0.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    }
}

impl Differentiable for ChainFx {
    fn knob_vjp(&self, input: &[Vec<f32>], knobs: &[f32], grad_output: &[Vec<f32>]) -> Vec<f32> {
        let k = self.knobs(knobs);
        let inputs: Vec<&[f32]> = input.iter().map(|c| c.as_slice()).collect();
        let grads: Vec<&[f32]> = grad_output.iter().map(|c| c.as_slice()).collect();
        let mut tape = ChainTape::default();
        fx::forward(&k, self.sample_rate, &inputs, &mut tape);
        let g = fx::vjp(&k, self.sample_rate, &inputs, &tape, &grads);
        self.knob_gradient(&g, &k)
    }
}

/// A mono output rendered by `fx` with normalised `knobs`, brought to the level that `level`
/// gives it against the mono `reference` (both at `fx.sample_rate`, in place); the gain applied.
pub fn finish_mono(level: OutputLevel, fx: &ChainFx, output: &mut [f32], reference: &[f32], knobs: &[f32]) -> f64 {
    let sample_rate = fx.sample_rate;
    level.finish(&mut [output], sample_rate, || level_db(&[reference], sample_rate), fx.knobs(knobs).output_gain_db())
}

/// Level handling of a batch: for a level-relative model
/// ([`crate::fx::level::OutputLevel::Reference`]) each output is scaled to its reference's level
/// plus the chain's output gain ([`ChainSpec::output_gain`]) before the loss; and the loss may
/// get a level term.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Levels {
    /// The rate of the outputs.
    pub sample_rate: u32,
    /// The chain's output-gain knob (its position among the free knobs and its declaration),
    /// if it has one that the network sets.
    pub output_gain: Option<(usize, &'static KnobSpec)>,
    /// The output gain in dB where the chain's output-gain knob is held (0 without one).
    pub held_gain_db: f64,
    /// [`crate::fx::level::level_db`] of each example's reference, for a level-relative model.
    pub reference_db: Option<Vec<f64>>,
    /// Weight `w` of the loss term `w · mean_b |L(output_b) − L(target_b)|` (K-weighted levels
    /// in dB, [`crate::fx::level::level_db`]); 0 for none.
    pub loss_weight: f64,
}

impl Levels {
    /// The level handling of outputs of `fx` (at its rate).
    pub fn new(fx: &ChainFx, reference_db: Option<Vec<f64>>, loss_weight: f64) -> Self {
        let (output_gain, held_gain_db) = match fx.chain.output_gain() {
            Some((i, spec)) => match fx.selection.free.iter().position(|&f| f == i) {
                Some(at) => (Some((at, spec)), 0.0),
                None => (None, spec.denormalize(f64::from(fx.selection.base[i]))),
            },
            None => (None, 0.0),
        };
        Levels { sample_rate: fx.sample_rate, output_gain, held_gain_db, reference_db, loss_weight }
    }

    /// The output gain in dB of normalised `knobs`, and its derivative per normalised unit.
    fn output_gain_db(&self, knobs: &[f32]) -> (f64, f64) {
        self.output_gain.map_or((self.held_gain_db, 0.0), |(i, spec)| {
            let n = f64::from(knobs[i]).clamp(0.0, 1.0);
            (spec.denormalize(n), spec.physical_per_normalized(n))
        })
    }

    /// Scales every output to its level (in place, in parallel) if there are reference levels;
    /// the stages, for [`Levels::backward`].
    fn apply(&self, batch: &[Example], outputs: &mut [Channels]) -> Option<Vec<LevelMatch>> {
        use rayon::prelude::*;
        let reference_db = self.reference_db.as_ref()?;
        assert_eq!(reference_db.len(), batch.len(), "one reference level per example");
        Some(
            outputs
                .par_iter_mut()
                .zip(batch)
                .zip(reference_db)
                .map(|((output, e), &reference_db)| {
                    let makeup = self.output_gain_db(e.knobs).0;
                    let mut views: Vec<&mut [f32]> = output.iter_mut().map(|c| c.as_mut_slice()).collect();
                    LevelMatch::apply(&mut views, self.sample_rate, reference_db + makeup)
                })
                .collect(),
        )
    }

    /// The level term's value, its gradient added to `grad_output`.
    fn add_loss_term(&self, outputs: &[Channels], targets: &[Channels], grad_output: &mut [Channels]) -> f64 {
        use rayon::prelude::*;
        if self.loss_weight == 0.0 {
            return 0.0;
        }
        let per_example = self.loss_weight / outputs.len() as f64;
        fn views(c: &Channels) -> Vec<&[f32]> {
            c.iter().map(Vec::as_slice).collect()
        }
        grad_output
            .par_iter_mut()
            .zip(outputs)
            .zip(targets)
            .map(|((g, output), target)| {
                let (level, gradient) = level_db_and_gradient(&views(output), self.sample_rate);
                let difference = level - level_db(&views(target), self.sample_rate);
                for (g, d) in g.iter_mut().zip(&gradient) {
                    g.iter_mut().zip(d).for_each(|(g, d)| *g += (per_example * difference.signum() * d) as f32);
                }
                per_example * difference.abs()
            })
            .sum()
    }

    /// From the loss's gradient with respect to the scaled outputs, the gradient with respect
    /// to the chain's outputs (in place) and, per example, the make-up knob's share through the
    /// target level, in normalised units.
    fn backward(&self, stages: &[LevelMatch], batch: &[Example], outputs: &[Channels], grad_output: &mut [Channels]) -> Vec<f32> {
        use rayon::prelude::*;
        grad_output
            .par_iter_mut()
            .zip(stages)
            .zip(outputs)
            .zip(batch)
            .map(|(((g, stage), y), e)| {
                let yv: Vec<&[f32]> = y.iter().map(|c| c.as_slice()).collect();
                let gv: Vec<&[f32]> = g.iter().map(|c| c.as_slice()).collect();
                let (pre, d_target) = stage.vjp(&yv, &gv);
                *g = pre;
                (d_target * self.output_gain_db(e.knobs).1) as f32
            })
            .collect()
    }
}

/// The loss of rendered `outputs` (the chain's, scaled in place by the level stage if `levels`
/// has reference levels) against `targets`, plus the level term if any; the loss's gradient
/// with respect to the chain's outputs, and the make-up knob's share through the stage.
fn score(
    batch: &[Example],
    outputs: &mut [Channels],
    targets: &[Channels],
    levels: Option<&Levels>,
    loss: &mut MrStftBatch<f32>,
) -> (f64, Vec<Channels>, Option<OutputGainShare>) {
    let stages = levels.and_then(|l| l.apply(batch, outputs));
    let views: Vec<&[Vec<f32>]> = outputs.iter().map(|o| o.as_slice()).collect();
    let (mut value, mut grad_output) = output_loss_and_grad(&views, targets, loss);
    if let Some(levels) = levels {
        value += levels.add_loss_term(outputs, targets, &mut grad_output);
    }
    let makeup = match (levels, stages) {
        (Some(levels), Some(stages)) => Some((levels.output_gain, levels.backward(&stages, batch, outputs, &mut grad_output))),
        _ => None,
    };
    (value, grad_output, makeup)
}

/// One training step of the effect island with any estimator: renders every example (in
/// parallel), scales the outputs to their reference levels if `levels` has them, evaluates the
/// mean loss against `targets` (plus the level term of `levels`) and its gradient with respect
/// to the outputs, and hands that (taken back through the level stage) to `estimator` for the
/// knob gradients. Returns the
/// loss, the outputs and the knob gradients. ([`chain_loss_and_grad`] does the same for the
/// exact estimator on the chain, reusing the forward pass's tape.)
pub fn loss_and_knob_gradients<F: Render, E: Estimator<F>>(
    estimator: &E,
    fx: &F,
    batch: &[Example],
    targets: &[Channels],
    levels: Option<&Levels>,
    loss: &mut MrStftBatch<f32>,
    seed: u64,
) -> (f64, Vec<Channels>, Vec<Vec<f32>>) {
    use rayon::prelude::*;
    let mut outputs: Vec<Channels> = batch
        .par_iter()
        .map(|e| {
            let mut output = Channels::new();
            fx.render(e.input, e.knobs, &mut output);
            output
        })
        .collect();
    let (value, grad_output, makeup) = score(batch, &mut outputs, targets, levels, loss);
    let mut knob_grads = estimator.knob_gradients(fx, batch, &grad_output, seed);
    add_makeup(&mut knob_grads, makeup);
    (value, outputs, knob_grads)
}

/// The output gain's share of the knob gradients through the level stage: the knob and one
/// value per example.
type OutputGainShare = (Option<(usize, &'static KnobSpec)>, Vec<f32>);

/// Adds the output gain's share through the level stage, if any.
fn add_makeup(knob_grads: &mut [Vec<f32>], makeup: Option<OutputGainShare>) {
    if let Some((Some((i, _)), shares)) = makeup {
        for (g, m) in knob_grads.iter_mut().zip(shares) {
            g[i] += m;
        }
    }
}

/// The mean loss of every (example, channel) output against its target, and the loss's
/// gradient with respect to each output, shaped like the outputs.
fn output_loss_and_grad(outputs: &[&[Vec<f32>]], targets: &[Channels], loss: &mut MrStftBatch<f32>) -> (f64, Vec<Channels>) {
    let estimates: Vec<&[f32]> = outputs.iter().flat_map(|o| o.iter()).map(|c| c.as_slice()).collect();
    let target_views: Vec<&[f32]> = targets.iter().flatten().map(|c| c.as_slice()).collect();
    let mut grads: Vec<Vec<f32>> = estimates.iter().map(|e| vec![0.0; e.len()]).collect();
    let mut grad_views: Vec<&mut [f32]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
    let value = loss.value_and_grad(&estimates, &target_views, &mut grad_views);
    let mut grad_iter = grads.into_iter();
    (value, outputs.iter().map(|o| grad_iter.by_ref().take(o.len()).collect()).collect())
}

/// Renders `input` at two knob settings and returns `Σ_c Σ_t g[c][t] · (y_plus − y_minus)`:
/// the change of the linearised loss between them (the two renders run in parallel).
fn two_sided_change<F: Render + ?Sized>(fx: &F, input: &[Vec<f32>], grad_output: &[Vec<f32>], plus: &[f32], minus: &[f32]) -> f64 {
    let (mut y_plus, mut y_minus) = (Channels::new(), Channels::new());
    rayon::join(|| fx.render(input, plus, &mut y_plus), || fx.render(input, minus, &mut y_minus));
    grad_output
        .iter()
        .zip(y_plus.iter().zip(&y_minus))
        .map(|(g, (a, b))| g.iter().zip(a.iter().zip(b)).map(|(g, (a, b))| *g as f64 * (*a as f64 - *b as f64)).sum::<f64>())
        .sum()
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::fx::test_signals::{program, random_knobs, weights};

    /// A small batch of program material with random knobs and random output gradients.
    pub fn batch(seed: u64, items: usize, len: usize, fs: u32) -> (Vec<Channels>, Vec<Vec<f32>>, Vec<Channels>) {
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let inputs = (0..items).map(|b| program(seed + b as u64, 1, len, fs as f64).into_iter().map(to32).collect()).collect();
        let knobs = (0..items).map(|b| random_knobs(seed * 7 + b as u64).to_normalized().iter().map(|&v| v as f32).collect()).collect();
        let grads = (0..items).map(|b| vec![to32(weights(seed * 13 + b as u64, len))]).collect();
        (inputs, knobs, grads)
    }

    pub fn examples<'a>(inputs: &'a [Channels], knobs: &'a [Vec<f32>]) -> Vec<Example<'a>> {
        inputs.iter().zip(knobs).map(|(i, k)| Example { input: i, knobs: k }).collect()
    }

    pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::batch;
    use super::*;

    #[test]
    fn the_chain_renders_for_the_estimators_what_the_taped_forward_renders() {
        // A look-ahead limiter's latency is removed in both, so SPSA and finite differences
        // difference the same outputs that the exact adjoint differentiates.
        let fs = 48_000;
        let fx = ChainFx::new("eq,limiter".parse().unwrap(), fs);
        assert!(fx.chain.latency(fs) > 0);
        let (inputs, _, _) = batch(4, 1, 6000, fs);
        let knobs: Vec<f32> = (0..fx.num_knobs()).map(|i| 0.3 + 0.4 * ((i * 5) % 7) as f32 / 7.0).collect();
        let mut rendered = Channels::new();
        fx.render(&inputs[0], &knobs, &mut rendered);
        let views: Vec<&[f32]> = inputs[0].iter().map(Vec::as_slice).collect();
        let mut tape = ChainTape::default();
        let taped = fx::forward(&fx.knobs(&knobs), fs, &views, &mut tape);
        let worst = rendered.iter().flatten().zip(taped.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "render and taped forward differ by {worst}");
    }
}
