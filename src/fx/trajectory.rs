//! Knobs that move during a render: a [`Trajectory`] holds one setting per block (setting `b`
//! from sample `starts[b]`), reached as the streaming [`Chain`](super::Chain) reaches it, by a
//! glide of [`RAMP_MS`](super::chain::RAMP_MS) from where the knobs are. [`forward`] renders
//! exactly what the streaming chain renders when [`Chain::set_knobs`](super::Chain::set_knobs)
//! is called at each block's start, and [`vjp`] is its exact vector–Jacobian product, with one
//! knob gradient per setting: what a network that moves knobs over time trains through.
//!
//! The glide is written out as one-sample segments of every effect's [`Track`]; each segment's
//! knobs are, in normalised units, a weighted sum of the settings (a glide interrupted by the
//! next change starts from a mix of the two before it). An effect's per-segment knob gradient
//! goes back to the settings through those weights and the knob's skew.

use super::chain::{ChainSpec, ChainTape, forward_tracks, ramp_samples, vjp_tracks};
use super::params::ChainKnobs;
use super::track::Track;
use crate::{Error, Real, Result};

/// Weights below this are dropped from a glide's mix of settings: their share of any knob is
/// below the rounding of the knob itself.
const NEGLIGIBLE_WEIGHT: f64 = 1e-15;

/// One setting of a chain per block: `settings[b]` from sample `starts[b]` (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    starts: Vec<usize>,
    settings: Vec<ChainKnobs>,
}

impl Trajectory {
    /// Settings of one chain from increasing sample positions, the first at 0.
    pub fn new(starts: Vec<usize>, settings: Vec<ChainKnobs>) -> Result<Self> {
        let Some(first) = settings.first() else {
            return Err(Error::BadTrajectory { reason: "a trajectory needs at least one setting".into() });
        };
        if starts.len() != settings.len() {
            return Err(Error::BadTrajectory { reason: format!("{} starts for {} settings", starts.len(), settings.len()) });
        }
        if starts[0] != 0 || starts.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::BadTrajectory { reason: "the starts must increase from 0".into() });
        }
        for k in &settings {
            if k.chain() != first.chain() {
                return Err(Error::ChainMismatch { expected: first.chain().to_string(), got: k.chain().to_string() });
            }
            k.validate()?;
        }
        Ok(Trajectory { starts, settings })
    }

    /// The same setting throughout.
    pub fn constant(knobs: ChainKnobs) -> Self {
        Trajectory { starts: vec![0], settings: vec![knobs] }
    }

    /// One setting every `block` samples.
    pub fn blocks(block: usize, settings: Vec<ChainKnobs>) -> Result<Self> {
        if block == 0 {
            return Err(Error::BadTrajectory { reason: "blocks must be at least one sample long".into() });
        }
        Trajectory::new((0..settings.len()).map(|b| b * block).collect(), settings)
    }

    /// The chain the settings set.
    pub fn chain(&self) -> &ChainSpec {
        self.settings[0].chain()
    }

    /// Where each setting is given.
    pub fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// The settings in time order.
    pub fn settings(&self) -> &[ChainKnobs] {
        &self.settings
    }
}

/// The glides written out: segments shared by every effect, each with the physical knobs of
/// the whole chain and the normalised weights of the settings that make them.
struct Glides {
    starts: Vec<usize>,
    /// Segments × the chain's knobs.
    knobs: Vec<f64>,
    weights: Vec<Vec<(usize, f64)>>,
}

/// `a·x + b·y` of two sparse weight vectors.
fn mix(x: &[(usize, f64)], a: f64, y: &[(usize, f64)], b: f64) -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64)> = x.iter().map(|&(i, w)| (i, a * w)).collect();
    for &(i, w) in y {
        match out.iter_mut().find(|(j, _)| *j == i) {
            Some((_, v)) => *v += b * w,
            None => out.push((i, b * w)),
        }
    }
    out.retain(|(_, w)| w.abs() > NEGLIGIBLE_WEIGHT);
    out
}

impl Glides {
    /// What the streaming chain does over `len` samples (see [`super::Chain::set_knobs`]).
    fn new(trajectory: &Trajectory, sample_rate: f64, len: usize) -> Self {
        let specs: Vec<_> = trajectory.chain().specs().collect();
        let normalized: Vec<Vec<f64>> = trajectory.settings.iter().map(ChainKnobs::to_normalized).collect();
        let ramp = ramp_samples(sample_rate);
        let mut glides = Glides { starts: vec![0], knobs: trajectory.settings[0].values().to_vec(), weights: vec![vec![(0, 1.0)]] };
        let (mut from, mut to) = (normalized[0].clone(), normalized[0].clone());
        let (mut from_weights, mut target, mut position) = (vec![(0, 1.0)], 0, ramp);
        for (b, &start) in trajectory.starts.iter().enumerate().skip(1).take_while(|(_, s)| **s < len) {
            let t = position as f64 / ramp as f64;
            for (f, &t_) in from.iter_mut().zip(&to) {
                *f += (t_ - *f) * t;
            }
            from_weights = mix(&from_weights, 1.0 - t, &[(target, 1.0)], t);
            to.clone_from(&normalized[b]);
            (target, position) = (b, 0);
            let end = trajectory.starts.get(b + 1).map_or(len, |&e| e.min(len));
            let mut n = start;
            while position < ramp && n < end {
                position += 1;
                let t = position as f64 / ramp as f64;
                glides.starts.push(n);
                if position == ramp {
                    glides.knobs.extend_from_slice(trajectory.settings[b].values());
                    glides.weights.push(vec![(b, 1.0)]);
                } else {
                    glides.knobs.extend(specs.iter().zip(from.iter().zip(&to)).map(|(k, (&f, &t_))| k.denormalize(f + (t_ - f) * t)));
                    glides.weights.push(mix(&from_weights, 1.0 - t, &[(b, 1.0)], t));
                }
                n += 1;
            }
        }
        glides
    }

    /// The glides of a render of `input` (its length plus the chain's latency) and each
    /// effect's knobs through them.
    fn of_render<T>(trajectory: &Trajectory, sample_rate: u32, input: &[&[T]]) -> (Glides, Vec<Vec<f64>>) {
        let chain = trajectory.chain();
        let len = input.first().map_or(0, |c| c.len()) + chain.latency(sample_rate);
        let glides = Glides::new(trajectory, f64::from(sample_rate), len);
        let knobs = glides.stage_knobs(chain);
        (glides, knobs)
    }

    /// Each effect's track through the glides: its knobs of every segment gathered.
    fn stage_knobs(&self, chain: &ChainSpec) -> Vec<Vec<f64>> {
        let width = chain.num_knobs();
        chain.stages().iter().map(|s| self.knobs.chunks(width).flat_map(|k| k[s.knobs()].iter().copied()).collect()).collect()
    }
}

/// Renders one example from rest with the knobs following `trajectory`, recording the tape;
/// the output is aligned with the input as [`super::forward`] aligns it.
pub fn forward<'a, T: Real>(trajectory: &Trajectory, sample_rate: u32, input: &[&[T]], tape: &'a mut ChainTape<T>) -> &'a [Vec<T>] {
    let chain = trajectory.chain();
    let (glides, knobs) = Glides::of_render(trajectory, sample_rate, input);
    let tracks: Vec<Track<'_>> = knobs.iter().map(|k| Track::new(&glides.starts, k)).collect();
    forward_tracks(chain, &tracks, sample_rate, input, tape)
}

/// Gradients of a loss with respect to the input and every setting of a trajectory.
#[derive(Clone, Debug)]
pub struct TrajectoryGrad<T> {
    /// `∂L/∂input`, per channel.
    pub input: Vec<Vec<T>>,
    /// `∂L/∂knob` of each setting, in physical units and the chain's knob order.
    pub knobs: Vec<Vec<f64>>,
    /// The same with respect to the normalised knobs.
    pub knobs_normalized: Vec<Vec<f64>>,
}

/// The exact vector–Jacobian product of [`forward`].
pub fn vjp<T: Real>(
    trajectory: &Trajectory,
    sample_rate: u32,
    input: &[&[T]],
    tape: &ChainTape<T>,
    grad_output: &[&[T]],
) -> TrajectoryGrad<T> {
    let chain = trajectory.chain();
    // The glides again (as `forward` wrote them out): cheap beside the adjoint, and the tape
    // stays the chain's own.
    let (glides, knobs) = Glides::of_render(trajectory, sample_rate, input);
    let tracks: Vec<Track<'_>> = knobs.iter().map(|k| Track::new(&glides.starts, k)).collect();
    let mut segment_grads: Vec<Vec<f64>> = knobs.iter().map(|k| vec![0.0; k.len()]).collect();
    let input_grad = vjp_tracks(chain, &tracks, sample_rate, input, tape, grad_output, &mut segment_grads);
    // Each segment's gradient to the normalised knobs (through the skew at the segment's
    // value), then to the settings that make the segment.
    let specs: Vec<_> = chain.specs().collect();
    let mut normalized = vec![vec![0.0; chain.num_knobs()]; trajectory.settings.len()];
    for (stage, grads) in chain.stages().iter().zip(&segment_grads) {
        let width = stage.kind.knobs().len();
        for ((segment, g), weights) in grads.chunks(width).enumerate().zip(&glides.weights) {
            let values = &glides.knobs[segment * chain.num_knobs()..][stage.knobs()];
            for (q, (&g, &x)) in g.iter().zip(values).enumerate() {
                let knob = stage.offset + q;
                let g_n = g * specs[knob].physical_per_normalized(x);
                for &(b, w) in weights {
                    normalized[b][knob] += w * g_n;
                }
            }
        }
    }
    let physical = normalized
        .iter()
        .zip(&trajectory.settings)
        .map(|(g, k)| {
            g.iter()
                .zip(&specs)
                .zip(k.values())
                .map(|((g, spec), &x)| {
                    let d = spec.physical_per_normalized(x);
                    if d == 0.0 { 0.0 } else { g / d }
                })
                .collect()
        })
        .collect();
    TrajectoryGrad { input: input_grad, knobs: physical, knobs_normalized: normalized }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::EffectKind;
    use crate::fx::chain::{Chain, ChainGrad};
    use crate::fx::test_signals::{assert_close, derivative, program, random_chain_knobs, weights};

    /// What the streaming chain renders with `set_knobs` at each setting's start, aligned as
    /// [`forward`] aligns it (the latency's worth of silence flushed through, the first
    /// `latency` samples dropped).
    fn streamed(trajectory: &Trajectory, fs: u32, input: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let latency = trajectory.chain().latency(fs);
        let mut padded: Vec<Vec<f64>> = input
            .iter()
            .map(|c| {
                let mut p = c.clone();
                p.resize(c.len() + latency, 0.0);
                p
            })
            .collect();
        let len = padded[0].len();
        let mut chain = Chain::<f64>::new(&trajectory.settings[0], fs, input.len()).unwrap();
        let mut edges: Vec<usize> = trajectory.starts.iter().copied().filter(|&s| s < len).collect();
        edges.push(len);
        for (b, w) in edges.windows(2).enumerate() {
            if b > 0 {
                chain.set_knobs(&trajectory.settings[b]).unwrap();
            }
            let mut views: Vec<&mut [f64]> = padded.iter_mut().map(|c| &mut c[w[0]..w[1]]).collect();
            chain.process(&mut views);
        }
        padded.iter_mut().for_each(|c| drop(c.drain(..latency)));
        padded
    }

    fn rendered(trajectory: &Trajectory, fs: u32, input: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let views: Vec<&[f64]> = input.iter().map(Vec::as_slice).collect();
        forward(trajectory, fs, &views, &mut ChainTape::default()).to_vec()
    }

    fn every_effect() -> ChainSpec {
        ChainSpec::new(EffectKind::ALL).unwrap()
    }

    fn random_trajectory(chain: &ChainSpec, starts: &[usize], seed: u64) -> Trajectory {
        let settings = (0..starts.len()).map(|b| random_chain_knobs(chain, seed * 100 + b as u64)).collect();
        Trajectory::new(starts.to_vec(), settings).unwrap()
    }

    #[test]
    fn the_taped_render_is_the_streaming_chain_with_its_glides() {
        let fs = 24_000; // a glide of 480 samples: the change at 900 interrupts the one at 700
        let input = program(3, 2, 3000, f64::from(fs));
        for seed in 0..3 {
            let trajectory = random_trajectory(&every_effect(), &[0, 700, 900, 2000, 2950], seed);
            let (taped, streaming) = (rendered(&trajectory, fs, &input), streamed(&trajectory, fs, &input));
            let scale = streaming.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in taped.iter().flatten().zip(streaming.iter().flatten()) {
                assert!((a - b).abs() <= 1e-9 * scale, "taped {a} vs streaming {b}");
            }
            // The knobs did move: a constant render differs.
            let constant = rendered(&Trajectory::constant(trajectory.settings[0].clone()), fs, &input);
            let diff = constant.iter().flatten().zip(taped.iter().flatten()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff > 1e-3 * scale, "the trajectory changed nothing");
        }
    }

    fn loss(trajectory: &Trajectory, fs: u32, input: &[Vec<f64>], w: &[Vec<f64>]) -> f64 {
        rendered(trajectory, fs, input).iter().zip(w).map(|(y, w)| y.iter().zip(w).map(|(a, b)| a * b).sum::<f64>()).sum()
    }

    fn exact(trajectory: &Trajectory, fs: u32, input: &[Vec<f64>], w: &[Vec<f64>]) -> TrajectoryGrad<f64> {
        let views: Vec<&[f64]> = input.iter().map(Vec::as_slice).collect();
        let wv: Vec<&[f64]> = w.iter().map(Vec::as_slice).collect();
        let mut tape = ChainTape::default();
        forward(trajectory, fs, &views, &mut tape);
        vjp(trajectory, fs, &views, &tape, &wv)
    }

    /// Every knob of every setting against central differences (stepped knobs: zero).
    fn check(trajectory: &Trajectory, fs: u32, channels: usize, seed: u64) {
        let len = 2000;
        let input = program(seed, channels, len, f64::from(fs));
        let w: Vec<Vec<f64>> = (0..channels).map(|c| weights(seed * 7 + c as u64, len)).collect();
        let g = exact(trajectory, fs, &input, &w);
        let specs = trajectory.chain().knobs();
        for (b, setting) in trajectory.settings.iter().enumerate() {
            let fd: Vec<f64> = (0..specs.len())
                .map(|q| {
                    if !specs[q].is_continuous() {
                        return 0.0;
                    }
                    let x = setting.values()[q];
                    let moved = |d: f64| {
                        let mut t = trajectory.clone();
                        t.settings[b].values_mut()[q] = x + d;
                        loss(&t, fs, &input, &w)
                    };
                    derivative(moved, x.abs().max(1.0), g.knobs[b][q])
                })
                .collect();
            let what = format!("setting {b} of {} at {fs} Hz, {channels} ch, {:?}", trajectory.chain(), setting.values());
            assert_close(&what, &g.knobs[b], &fd, 1e-4);
            for (q, spec) in specs.iter().enumerate() {
                let expected = g.knobs[b][q] * spec.physical_per_normalized(setting.values()[q]);
                assert!((g.knobs_normalized[b][q] - expected).abs() <= 1e-9 * expected.abs().max(1e-9), "normalised {}", spec.name);
            }
        }
    }

    #[test]
    fn setting_gradients_match_finite_differences_through_glides() {
        // At 24 kHz the glide (480 samples) from 600 is cut short at 800; at 48 kHz (960) both are.
        for kind in EffectKind::ALL {
            let chain = ChainSpec::new(&[*kind]).unwrap();
            for (seed, fs) in [(1, 24_000), (2, 48_000)] {
                check(&random_trajectory(&chain, &[0, 600, 800], seed), fs, 2, seed);
            }
        }
        check(&random_trajectory(&every_effect(), &[0, 600, 800, 1500], 9), 24_000, 2, 9);
    }

    #[test]
    fn input_gradient_matches_finite_differences_through_glides() {
        let (fs, len) = (24_000, 2000);
        let trajectory = random_trajectory(&every_effect(), &[0, 600, 800], 4);
        let input = program(5, 2, len, f64::from(fs));
        let w: Vec<Vec<f64>> = (0..2).map(|c| weights(40 + c as u64, len)).collect();
        let g = exact(&trajectory, fs, &input, &w);
        for c in 0..2 {
            let picks: Vec<usize> = (0..30).map(|i| (i * 661 + 7 * c) % len).collect();
            let fd: Vec<f64> = picks
                .iter()
                .map(|&n| {
                    let moved = |d: f64| {
                        let mut x = input.clone();
                        x[c][n] += d;
                        loss(&trajectory, fs, &x, &w)
                    };
                    derivative(moved, 1.0, g.input[c][n])
                })
                .collect();
            let an: Vec<f64> = picks.iter().map(|&n| g.input[c][n]).collect();
            assert_close(&format!("input grad ch {c}"), &an, &fd, 1e-4);
        }
    }

    /// A one-setting trajectory is the constant render, and its gradient the chain's.
    #[test]
    fn a_constant_trajectory_is_the_plain_render() {
        let fs = 44_100;
        let knobs = random_chain_knobs(&every_effect(), 3);
        let input = program(2, 2, 1500, f64::from(fs));
        let w: Vec<Vec<f64>> = (0..2).map(|c| weights(c as u64, 1500)).collect();
        let views: Vec<&[f64]> = input.iter().map(Vec::as_slice).collect();
        let wv: Vec<&[f64]> = w.iter().map(Vec::as_slice).collect();
        let mut tape = ChainTape::default();
        crate::fx::forward(&knobs, fs, &views, &mut tape);
        let plain: ChainGrad<f64> = crate::fx::vjp(&knobs, fs, &views, &tape, &wv);
        let g = exact(&Trajectory::constant(knobs.clone()), fs, &input, &w);
        assert_eq!(rendered(&Trajectory::constant(knobs), fs, &input), tape.output());
        for (a, b) in g.knobs[0].iter().zip(&plain.knobs) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-12), "{a} vs {b}");
        }
        assert_eq!(g.input, plain.input);
    }

    #[test]
    fn bad_trajectories_are_refused() {
        let k = ChainKnobs::defaults(ChainSpec::default());
        assert!(Trajectory::new(vec![], vec![]).is_err());
        assert!(Trajectory::new(vec![5], vec![k.clone()]).is_err());
        assert!(Trajectory::new(vec![0, 0], vec![k.clone(), k.clone()]).is_err());
        assert!(Trajectory::new(vec![0, 10], vec![k.clone()]).is_err());
        let other = ChainKnobs::defaults("gain".parse().unwrap());
        let e = Trajectory::new(vec![0, 10], vec![k.clone(), other]).unwrap_err().to_string();
        assert!(e.contains("gain"), "{e}");
        assert!(Trajectory::blocks(0, vec![k]).is_err());
    }
}
