//! `afx bench --plugins`: how much the host costs. Each plugin's own speed (one instance, one
//! thread, blocks of [`MAX_BLOCK`]) against its renders inside an SPSA step on
//! [`BATCH_THREADS`] threads (every render from a fresh instance, latency compensated), so the
//! host's overhead is `1 − spsa / (2 × own)` on two cores.

use serde::Serialize;

use super::{MAX_BLOCK, PluginFx, PluginStream, plugin_info};
use crate::Result;
use crate::bench::{BATCH_THREADS, best_of, program_signal};
use crate::grad::{Channels, Estimator, Example, Spsa};

/// The plugins measured: DeepAFx's kinds (EQ, compressors, multiband, limiters).
pub const BENCH_PLUGINS: [&str; 5] = [
    "http://gareus.org/oss/lv2/fil4#mono",
    "http://gareus.org/oss/lv2/darc#mono",
    "http://gareus.org/oss/lv2/dpl#mono",
    "http://calf.sourceforge.net/plugins/MonoCompressor",
    "http://calf.sourceforge.net/plugins/MultibandCompressor",
];
/// Sample rate of the measurements.
pub const RATE: u32 = 48_000;
/// The SPSA step: examples, frames each, pairs.
pub const SPSA_EXAMPLES: usize = 6;
pub const SPSA_FRAMES: usize = 65_536;
pub const SPSA_PAIRS: usize = 2;

/// One plugin's speeds, in millions of frames per second (mono, or the plugin's channels fed
/// the same signal).
#[derive(Clone, Debug, Serialize)]
pub struct PluginSpeed {
    pub uri: &'static str,
    /// One instance processing 2^19 frames in blocks, one thread.
    pub own_mframes_per_s: f64,
    /// Frames rendered per second inside an SPSA step (`SPSA_EXAMPLES` × 2 × `SPSA_PAIRS`
    /// renders of `SPSA_FRAMES`), on [`BATCH_THREADS`] threads.
    pub spsa_mframes_per_s: f64,
    /// `1 − spsa / (threads × own)`: the share of the cores the host takes (target ≤ 0.10).
    pub host_overhead: f64,
    /// The silence that brings a fresh instance to rest at its knobs before each render
    /// (seconds; the plugin's own work, measured per plugin and rate).
    pub settle_s: f64,
    /// The share of the cores that is neither a render nor the plugin settling: the host's own
    /// bookkeeping (instantiation, copies, latency compensation, the estimator).
    pub overhead_beyond_settling: f64,
    /// The plugin's own speed with one instance per thread on [`BATCH_THREADS`] threads at once.
    pub parallel_mframes_per_s: f64,
    /// `1 − (renders + settling) / parallel`: the host's own share against what the threads
    /// measurably give the plugin together.
    pub overhead_vs_parallel: f64,
    /// Whether the host resets this plugin by reactivating it (else by a fresh instance).
    pub reset_by_reactivation: bool,
}

/// Measures every plugin of [`BENCH_PLUGINS`] that is installed.
pub fn run() -> Result<Vec<PluginSpeed>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(BATCH_THREADS).build().expect("a thread pool");
    let mut speeds = Vec::new();
    for uri in BENCH_PLUGINS {
        let Ok(info) = plugin_info(uri) else { continue };
        let len = 1 << 19;
        let signal = program_signal(len, f64::from(RATE), 1);
        // The signal through one stream in blocks of MAX_BLOCK.
        let stream_through = |(stream, work): &mut (PluginStream, Vec<f32>)| {
            work.copy_from_slice(&signal);
            for block in work.chunks_mut(MAX_BLOCK) {
                stream.process(&mut [block]).expect("the plugin runs");
            }
        };
        let mut streams: Vec<(PluginStream, Vec<f32>)> =
            (0..BATCH_THREADS).map(|_| PluginStream::new(info, RATE, 1).map(|s| (s, signal.clone()))).collect::<Result<_>>()?;
        let own = best_of(3, || stream_through(&mut streams[0]));
        // The same work on every thread at once: what the cores give this plugin together
        // (a shared machine's two threads rarely make twice one).
        let together = pool.install(|| {
            use rayon::prelude::*;
            best_of(3, || streams.par_iter_mut().for_each(stream_through))
        });
        let settle = streams[0].0.settle_len();
        let fx = PluginFx::new(uri, RATE)?;
        let inputs: Vec<Channels> = (0..SPSA_EXAMPLES).map(|b| vec![program_signal(SPSA_FRAMES, f64::from(RATE), 2 + b as u32)]).collect();
        let knobs: Vec<Vec<f32>> = (0..SPSA_EXAMPLES).map(|_| info.knobs.iter().map(|k| k.normalize(k.default) as f32).collect()).collect();
        let grads: Vec<Channels> = inputs.clone();
        let batch: Vec<Example> = inputs.iter().zip(&knobs).map(|(i, k)| Example { input: i, knobs: k }).collect();
        let spsa = Spsa { pairs: SPSA_PAIRS, epsilon: 1e-3 };
        let step = pool.install(|| best_of(3, || drop(spsa.knob_gradients(&fx, &batch, &grads, 0))));
        let renders = SPSA_EXAMPLES * 2 * SPSA_PAIRS;
        let frames = (renders * SPSA_FRAMES) as f64;
        let own_rate = len as f64 / own;
        let spsa_rate = frames / step;
        let plugin_rate = (frames + (renders * settle) as f64) / step;
        let parallel_rate = (BATCH_THREADS * len) as f64 / together;
        speeds.push(PluginSpeed {
            uri,
            own_mframes_per_s: own_rate / 1e6,
            spsa_mframes_per_s: spsa_rate / 1e6,
            host_overhead: 1.0 - spsa_rate / (BATCH_THREADS as f64 * own_rate),
            settle_s: settle as f64 / f64::from(RATE),
            overhead_beyond_settling: 1.0 - plugin_rate / (BATCH_THREADS as f64 * own_rate),
            parallel_mframes_per_s: parallel_rate / 1e6,
            overhead_vs_parallel: 1.0 - plugin_rate / parallel_rate,
            reset_by_reactivation: info.activation_resets.get() == Some(&true),
        });
    }
    Ok(speeds)
}

/// `afx bench --plugins`: [`run`]'s speeds as JSON (one line with `json`).
pub fn report(json: bool) -> Result<String> {
    let speeds = run()?;
    let text = if json { serde_json::to_string(&speeds) } else { serde_json::to_string_pretty(&speeds) };
    Ok(text.expect("speeds serialise") + "\n")
}
