//! Benchmarks that run from the binary (`afx bench`): the speed targets of the effect chain,
//! its exact gradients and the estimators, on generated program material.

use std::time::Instant;

use serde::Serialize;

use crate::fx::{Chain, ChainKnobs, ChainSpec, ChainTape, EffectKind, Knobs, Trajectory, trajectory};
use crate::grad::{ChainFx, Channels, Estimator, Exact, Example, Render, Spsa, chain_loss_and_grad};
use crate::model::{Features, LogMel, StyleNetConfig, Trainer, TrainerConfig};
use crate::spectral::{MrStftBatch, MrStftConfig};

/// The DeepAFx-ST training batch: 6 examples of 131072 samples at 24 kHz.
pub const BATCH: usize = 6;
pub const BATCH_SAMPLES: usize = 131_072;
pub const BATCH_RATE: u32 = 24_000;
/// Threads for the batch benchmarks (the project's 2-core machine).
pub const BATCH_THREADS: usize = 2;

/// Results of `afx bench`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Streaming chain (6 sections + compressor), mono, f32, one core.
    pub chain_forward_msamples_per_s: f64,
    /// Value and exact knob gradients of chain + MR-STFT/L1 loss for the training batch.
    pub grad_step_seconds: f64,
    /// Rendering the training batch once (streaming chain).
    pub forward_batch_seconds: f64,
    /// SPSA knob gradients with one pair for the training batch (two renders per example).
    pub spsa_one_pair_seconds: f64,
    /// `spsa_one_pair_seconds / forward_batch_seconds` (target: at most 3).
    pub spsa_over_forward: f64,
    /// Taped forward plus exact vector–Jacobian product of the chain for the batch (no loss).
    pub chain_forward_and_vjp_seconds: f64,
    /// `chain_forward_and_vjp_seconds / forward_batch_seconds`: the adjoint's cost factor.
    pub vjp_over_forward: f64,
    /// Threads used for the batch benchmarks.
    pub batch_threads: usize,
    /// A whole training step for the batch: features, network forward and backward, chain
    /// with exact gradients and loss, Adam (target: at most 0.3 s on 2 cores).
    pub train_step_seconds: f64,
    /// `afx transfer` in memory of a 10 s stereo 44.1 kHz input with a 10 s reference, bundled
    /// model included, on one thread (target: at most 50 ms).
    pub transfer_10s_stereo_seconds: f64,
    /// The same transfer with `--refine 50`, on one thread.
    pub transfer_10s_stereo_refine_50_seconds: f64,
    /// One step of `afx proxy train` with its defaults (4 clips of 16384 samples, 32-channel
    /// TCN): proxy forward and backward, loss, Adam, on [`BATCH_THREADS`] threads.
    pub proxy_train_step_seconds: f64,
    /// Each effect alone at its default knobs.
    pub effects: Vec<EffectSpeed>,
}

/// One effect's speed at its default knobs, stereo f32 at 48 kHz, one core.
#[derive(Clone, Debug, Serialize)]
pub struct EffectSpeed {
    pub effect: &'static str,
    /// Streaming, 2^19 frames in 4096-frame blocks: frames per second.
    pub forward_mframes_per_s: f64,
    /// Taped forward plus exact vector–Jacobian product of 2^17 frames: frames per second.
    pub forward_and_vjp_mframes_per_s: f64,
    /// The same with the knobs moving: a new setting every 4096 frames, each reached by a
    /// 20 ms glide (a quarter of the frames inside one).
    pub trajectory_forward_and_vjp_mframes_per_s: f64,
}

/// Deterministic program-like material: two sines with a tremolo and a little noise.
pub fn program_signal(len: usize, sample_rate: f64, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|n| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = state as f32 / u32::MAX as f32 - 0.5;
            let t = n as f64 / sample_rate;
            let env = 0.1 + 0.8 * (0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin());
            let tone = 0.5 * (2.0 * std::f64::consts::PI * 220.0 * t).sin() + 0.3 * (2.0 * std::f64::consts::PI * 1870.0 * t).sin();
            (env * tone) as f32 + 0.05 * noise
        })
        .collect()
}

/// Knobs that engage every section and the compressor.
pub fn busy_knobs() -> Knobs {
    let mut k = Knobs::default();
    for (name, v) in [
        ("eq.low_shelf.gain_db", 4.0),
        ("eq.band1.gain_db", -3.0),
        ("eq.band2.gain_db", 5.0),
        ("eq.band3.gain_db", -6.0),
        ("eq.band4.gain_db", 2.0),
        ("eq.high_shelf.gain_db", 3.0),
        ("comp.threshold_db", -24.0),
        ("comp.ratio", 4.0),
    ] {
        k.set(name, v).expect("valid bench knob");
    }
    k
}

/// Best-of-`reps` wall time of `f` in seconds.
pub fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Streaming forward throughput: mono, 2^20 samples at 48 kHz in 4096-sample blocks.
pub fn chain_forward_msamples_per_s() -> f64 {
    let len = 1 << 20;
    let input = program_signal(len, 48_000.0, 1);
    let mut chain = Chain::<f32>::new(&busy_knobs().chain_knobs(), 48_000, 1).expect("valid chain");
    let mut buf = input.clone();
    let seconds = best_of(5, || {
        buf.copy_from_slice(&input);
        chain.reset();
        for block in buf.chunks_mut(4096) {
            chain.process(&mut [block]);
        }
    });
    std::hint::black_box(&buf);
    len as f64 / seconds / 1e6
}

/// Every effect alone at its defaults (the gate's threshold raised so that it works on the
/// program's quiet parts): streaming and taped-with-adjoint throughput, stereo, one thread.
pub fn effect_speeds() -> Vec<EffectSpeed> {
    let stereo = |len: usize| vec![program_signal(len, 48_000.0, 1), program_signal(len, 48_000.0, 2)];
    EffectKind::ALL
        .iter()
        .map(|&kind| {
            let mut knobs = ChainKnobs::defaults(ChainSpec::new(&[kind]).expect("one effect"));
            if kind == EffectKind::Gate {
                knobs.set("gate.threshold_db", -20.0).expect("valid bench knob");
            }
            let len = 1 << 19;
            let input = stereo(len);
            let mut chain = Chain::<f32>::new(&knobs, 48_000, 2).expect("valid chain");
            let mut buf = input.clone();
            let streaming = best_of(5, || {
                buf.clone_from(&input);
                chain.reset();
                let (l, r) = buf.split_at_mut(1);
                for (a, b) in l[0].chunks_mut(4096).zip(r[0].chunks_mut(4096)) {
                    chain.process(&mut [a, b]);
                }
            });
            let len_taped = 1 << 17;
            let input = stereo(len_taped);
            let views: Vec<&[f32]> = input.iter().map(Vec::as_slice).collect();
            let mut tape = ChainTape::default();
            let taped = best_of(3, || {
                crate::fx::forward(&knobs, 48_000, &views, &mut tape);
                std::hint::black_box(crate::fx::vjp(&knobs, 48_000, &views, &tape, &views));
            });
            let trajectory = moving(&knobs, len_taped);
            let moving = best_of(3, || {
                trajectory::forward(&trajectory, 48_000, &views, &mut tape);
                std::hint::black_box(trajectory::vjp(&trajectory, 48_000, &views, &tape, &views));
            });
            EffectSpeed {
                effect: kind.name(),
                forward_mframes_per_s: len as f64 / streaming / 1e6,
                forward_and_vjp_mframes_per_s: len_taped as f64 / taped / 1e6,
                trajectory_forward_and_vjp_mframes_per_s: len_taped as f64 / moving / 1e6,
            }
        })
        .collect()
}

/// A setting every 4096 frames over `len` frames, alternating between `knobs` and knobs a
/// tenth of their range away.
fn moving(knobs: &ChainKnobs, len: usize) -> Trajectory {
    let normalized = knobs.to_normalized();
    let moved: Vec<f64> = normalized.iter().map(|n| if *n > 0.5 { n - 0.1 } else { n + 0.1 }).collect();
    let moved = ChainKnobs::from_normalized(knobs.chain().clone(), &moved).expect("one value per knob");
    let settings = (0..len.div_ceil(4096)).map(|b| if b % 2 == 0 { knobs.clone() } else { moved.clone() }).collect();
    Trajectory::blocks(4096, settings).expect("valid settings")
}

/// The training batch: inputs, normalised knobs of a guess, targets rendered with other knobs.
struct TrainingBatch {
    inputs: Vec<Channels>,
    knobs: Vec<Vec<f32>>,
    targets: Vec<Channels>,
}

impl TrainingBatch {
    fn new() -> Self {
        let fx = ChainFx::default_chain(BATCH_RATE);
        let inputs: Vec<Channels> = (0..BATCH).map(|b| vec![program_signal(BATCH_SAMPLES, BATCH_RATE as f64, b as u32 + 1)]).collect();
        let guess: Vec<f32> = Knobs::default().to_normalized().iter().map(|&v| v as f32).collect();
        let truth: Vec<f32> = busy_knobs().to_normalized().iter().map(|&v| v as f32).collect();
        let targets = inputs
            .iter()
            .map(|x| {
                let mut y = Channels::new();
                fx.render(x, &truth, &mut y);
                y
            })
            .collect();
        TrainingBatch { inputs, knobs: vec![guess; BATCH], targets }
    }

    fn examples(&self) -> Vec<Example<'_>> {
        self.inputs.iter().zip(&self.knobs).map(|(i, k)| Example { input: i, knobs: k }).collect()
    }
}

/// Batch timings in seconds.
struct BatchTimes {
    grad_step: f64,
    forward: f64,
    spsa: f64,
    forward_and_vjp: f64,
}

/// Times the batch benchmarks on a pool of [`BATCH_THREADS`] threads.
fn batch_benchmarks() -> BatchTimes {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(BATCH_THREADS).build().expect("thread pool");
    pool.install(|| {
        let fx = ChainFx::default_chain(BATCH_RATE);
        let data = TrainingBatch::new();
        let batch = data.examples();
        let mut loss = MrStftBatch::<f32>::new(MrStftConfig::default());
        let grad_step = best_of(5, || {
            std::hint::black_box(chain_loss_and_grad(&fx, &batch, &data.targets, None, &mut loss));
        });
        let forward = best_of(5, || {
            use rayon::prelude::*;
            let out: Vec<Channels> = batch
                .par_iter()
                .map(|e| {
                    let mut y = Channels::new();
                    fx.render(e.input, e.knobs, &mut y);
                    y
                })
                .collect();
            std::hint::black_box(out);
        });
        let grad_output: Vec<Channels> = data.targets.clone();
        let forward_and_vjp = best_of(5, || {
            std::hint::black_box(Exact.knob_gradients(&fx, &batch, &grad_output, 0));
        });
        let spsa = Spsa { pairs: 1, ..Spsa::default() };
        let mut seed = 0;
        let spsa_time = best_of(5, || {
            seed += 1;
            std::hint::black_box(spsa.knob_gradients(&fx, &batch, &grad_output, seed));
        });
        BatchTimes { grad_step, forward, spsa: spsa_time, forward_and_vjp }
    })
}

/// A full training step on the batch, on [`BATCH_THREADS`] threads.
fn train_step_seconds() -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(BATCH_THREADS).build().expect("thread pool");
    pool.install(|| {
        let fx = ChainFx::default_chain(BATCH_RATE);
        let data = TrainingBatch::new();
        let net = StyleNetConfig::default();
        let mut trainer = Trainer::new(&net, &TrainerConfig::default());
        let mut loss = MrStftBatch::<f32>::new(MrStftConfig::default());
        best_of(5, || {
            let features = |signals: &[Channels]| -> Vec<Features> {
                let clips: Vec<&[f32]> = signals.iter().map(|s| &s[0][..]).collect();
                LogMel::compute_all(&net.features, &clips).expect("long enough")
            };
            let (input, reference) = (features(&data.inputs), features(&data.targets));
            trainer
                .step(&input, &reference, |knobs| {
                    let batch: Vec<Example> = data.inputs.iter().zip(knobs).map(|(input, knobs)| Example { input, knobs }).collect();
                    let (value, _, grads) = chain_loss_and_grad(&fx, &batch, &data.targets, None, &mut loss);
                    (value, grads)
                })
                .expect("finite step");
        })
    })
}

/// In-memory style transfer of 10 s of stereo at 44.1 kHz with the bundled model and
/// `refine_steps` of refinement, one thread.
fn transfer_seconds(refine_steps: usize, reps: usize) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("thread pool");
    pool.install(|| {
        let net = crate::transfer::bundled_model().expect("the bundled model loads").net;
        let input = crate::example::groove(10.0, 44_100, 2, 1);
        let reference = crate::example::groove(10.0, 44_100, 2, 2);
        best_of(reps, || {
            std::hint::black_box(
                crate::transfer::transfer(
                    &net,
                    &input,
                    &reference,
                    &crate::transfer::TransferOptions { refine_steps, ..Default::default() },
                )
                .expect("transfer"),
            );
        })
    })
}

/// A proxy training step with `afx proxy train`'s defaults, on [`BATCH_THREADS`] threads.
fn proxy_train_step_seconds() -> f64 {
    use crate::model::ProxyTrainer;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(BATCH_THREADS).build().expect("thread pool");
    pool.install(|| {
        let config = crate::train::ProxyTrainConfig::new("eq".parse().expect("an effect name"));
        let mut trainer = ProxyTrainer::new(&config.proxy, &TrainerConfig::default());
        let inputs: Vec<Vec<f32>> =
            (0..config.batch_size).map(|b| program_signal(config.clip_frames, BATCH_RATE as f64, b as u32)).collect();
        let knobs = vec![vec![0.5f32; config.proxy.chain.num_knobs()]; config.batch_size];
        // The proxy is asked to imitate the identity: the loss and its gradient cost the same.
        let targets: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let mut loss = MrStftBatch::<f32>::new(MrStftConfig::default());
        best_of(3, || {
            trainer.step(&inputs, &knobs, |outputs| loss.value_and_grads(outputs, &targets)).expect("finite step");
        })
    })
}

/// Runs every benchmark.
pub fn run() -> BenchReport {
    let chain_forward_msamples_per_s = chain_forward_msamples_per_s();
    let t = batch_benchmarks();
    let train_step_seconds = train_step_seconds();
    let transfer_10s_stereo_seconds = transfer_seconds(0, 5);
    let transfer_10s_stereo_refine_50_seconds = transfer_seconds(50, 2);
    let proxy_train_step_seconds = proxy_train_step_seconds();
    let effects = effect_speeds();
    BenchReport {
        chain_forward_msamples_per_s,
        grad_step_seconds: t.grad_step,
        forward_batch_seconds: t.forward,
        spsa_one_pair_seconds: t.spsa,
        spsa_over_forward: t.spsa / t.forward,
        chain_forward_and_vjp_seconds: t.forward_and_vjp,
        vjp_over_forward: t.forward_and_vjp / t.forward,
        batch_threads: BATCH_THREADS,
        train_step_seconds,
        transfer_10s_stereo_seconds,
        transfer_10s_stereo_refine_50_seconds,
        proxy_train_step_seconds,
        effects,
    }
}

/// `afx bench`: [`run`]'s report as one line of JSON, or (`json` false) pretty-printed.
pub fn report(json: bool) -> String {
    let report = run();
    let text = if json { serde_json::to_string(&report) } else { serde_json::to_string_pretty(&report) };
    text.expect("report serialises") + "\n"
}
