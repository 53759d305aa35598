//! One LV2 plugin hosted in-process as a streaming effect: blocks of any size (split at
//! [`MAX_BLOCK`]), state carried across blocks (whether a plugin's own output depends on the
//! block size is the plugin's matter: x42 fil4 glides its parameters block by block), every port
//! connected (side-chain inputs keyed on the main input), knobs set by position, a reset (LV2's
//! deactivate + activate where a probe shows that it returns the plugin to rest, else a fresh
//! instance), and the plugin's latency known (reported through its latency port, or measured with
//! an impulse once per plugin and sample rate).

use livi::event::LV2AtomSequence;
use livi::{EmptyPortConnections, PortIndex};

use super::catalogue::{Catalogue, MAX_BLOCK, PluginInfo, catalogue};
use crate::{Error, Result};

/// Room for the events a plugin writes to an atom output in one block (they are discarded).
const ATOM_CAPACITY: usize = 32 * 1024;
/// How far an impulse is followed to measure the latency of a plugin that reports none.
const LATENCY_SEARCH_SECONDS: f64 = 0.5;
/// The longest a plugin may take to reach its knobs from a fresh start; a plugin still gliding
/// after it settles this long.
const MAX_SETTLE_SECONDS: f64 = 1.0;
/// A plugin has reached its knobs once its output on a probe stays within this fraction of the
/// probe's peak (−40 dB) of the output of an instance that had long settled.
const SETTLE_TOLERANCE: f32 = 0.01;

/// How the audio's channels meet the plugin's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// The plugin has as many inputs and outputs as the audio has channels: one instance.
    Whole,
    /// A mono plugin on audio of several channels: one instance per channel.
    PerChannel,
    /// A plugin of several channels on mono audio: the channel feeds every input, the outputs
    /// are averaged.
    MonoThrough,
}

/// One instance with its atom buffers (connected empty: some plugins run only when every atom
/// port is connected).
struct Unit {
    instance: livi::Instance,
    atom_in: Vec<LV2AtomSequence>,
    atom_out: Vec<LV2AtomSequence>,
}

/// A plugin instance (or one per channel) processing audio in place.
pub struct PluginStream {
    info: &'static PluginInfo,
    layout: Layout,
    units: Vec<Unit>,
    /// The plugin's outputs for one block.
    scratch: Vec<Vec<f32>>,
    sample_rate: u32,
    /// The knobs last set (what a reset restores).
    knobs: Vec<f64>,
    /// Measured latency for a plugin without a latency port.
    measured_latency: usize,
    /// Samples of silence that bring a fresh instance to its knobs ([`PluginInfo`]'s settle).
    settle: usize,
    /// Room for that silence, one block per channel.
    silence: Vec<Vec<f32>>,
}

/// lilv's world keeps the plugin libraries and counts their users: instances are made and
/// freed only under the catalogue's lock.
impl Drop for PluginStream {
    fn drop(&mut self) {
        let _catalogue = catalogue();
        self.units.clear();
    }
}

impl std::fmt::Debug for PluginStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginStream").field("uri", &self.info.uri).field("layout", &self.layout).finish()
    }
}

impl PluginStream {
    /// An instance of `info`'s plugin for `channels` channels at `sample_rate`, knobs at their
    /// defaults, at rest.
    pub fn new(info: &'static PluginInfo, sample_rate: u32, channels: usize) -> Result<Self> {
        let plugin_error = |reason: String| Error::Plugin { uri: info.uri.clone(), reason };
        let (ins, outs) = (info.audio_inputs, info.audio_outputs);
        let layout = if ins == channels && outs == channels {
            Layout::Whole
        } else if ins == 1 && outs == 1 {
            Layout::PerChannel
        } else if channels == 1 && ins == outs {
            Layout::MonoThrough
        } else {
            return Err(plugin_error(format!("has {ins} audio inputs and {outs} outputs; the audio has {channels} channels")));
        };
        let count = if layout == Layout::PerChannel { channels } else { 1 };
        let units = instantiate(&catalogue(), info, sample_rate, count)?;
        let mut stream = PluginStream {
            info,
            layout,
            units,
            sample_rate,
            knobs: info.defaults(),
            scratch: vec![vec![0.0; MAX_BLOCK]; outs],
            measured_latency: 0,
            settle: 0,
            silence: vec![vec![0.0; MAX_BLOCK]; channels],
        };
        stream.apply_knobs();
        if info.latency_port.is_none() {
            stream.measured_latency = per_rate(&info.measured_latency, sample_rate, || {
                let latency = stream.measure_latency(sample_rate)?;
                stream.reinstantiate()?;
                Ok(latency)
            })?;
        }
        stream.settle = per_rate(&info.settle, sample_rate, || stream.measure_settle())?;
        Ok(stream)
    }

    /// Runs silence until the plugin has reached the knobs last set (a plugin that glides its
    /// parameters from where it started: what makes a fresh or reset stream at rest with its
    /// knobs). Not for the audio thread of a stream whose knobs change: there the glide is
    /// the plugin's smoothing.
    pub fn settle(&mut self) -> Result<()> {
        let mut left = self.settle;
        while left > 0 {
            let n = left.min(MAX_BLOCK);
            let mut silence = std::mem::take(&mut self.silence);
            silence.iter_mut().for_each(|c| c[..n].fill(0.0));
            let result = self.process(&mut silence.iter_mut().map(|c| &mut c[..n]).collect::<Vec<_>>());
            self.silence = silence;
            result?;
            left -= n;
        }
        Ok(())
    }

    /// The silence run by [`PluginStream::settle`], in samples.
    pub fn settle_len(&self) -> usize {
        self.settle
    }

    /// How many samples of silence bring a fresh instance to knobs away from its defaults: the
    /// shortest of 0, 1/32, 1/16, 1/8, 1/4, 1/2, 3/4 s and [`MAX_SETTLE_SECONDS`] after which its
    /// output on a probe (a tone and noise at 0.3, 0.5 s) stays within [`SETTLE_TOLERANCE`] of the
    /// probe's peak of the output after [`MAX_SETTLE_SECONDS`] × 4 of silence. Leaves the stream
    /// fresh at its own knobs.
    fn measure_settle(&mut self) -> Result<usize> {
        let kept = self.knobs.clone();
        let away: Vec<f64> =
            self.info.knobs.iter().zip(&kept).map(|(k, &v)| if k.is_continuous() { k.denormalize(0.7) } else { v }).collect();
        let rate = f64::from(self.sample_rate);
        let probe: Vec<f32> = (0..(rate / 2.0) as usize)
            .map(|i| {
                (0.15 * (std::f64::consts::TAU * 997.0 * i as f64 / rate).sin() + 0.15 * ((i * 7919 % 4096) as f64 / 2048.0 - 1.0)) as f32
            })
            .collect();
        let mut render = |preroll: usize| -> Result<Vec<f32>> {
            self.reinstantiate()?;
            self.set(&away);
            self.settle = preroll;
            self.settle()?;
            let mut channels = vec![probe.clone(); self.channels()];
            self.process(&mut channels.iter_mut().map(|c| c.as_mut_slice()).collect::<Vec<_>>())?;
            Ok(channels.swap_remove(0))
        };
        let settled = render((4.0 * MAX_SETTLE_SECONDS * rate) as usize)?;
        let mut settle = (MAX_SETTLE_SECONDS * rate) as usize;
        for fraction in [0.0, 1.0 / 32.0, 1.0 / 16.0, 0.125, 0.25, 0.5, 0.75] {
            let preroll = (fraction * MAX_SETTLE_SECONDS * rate) as usize;
            if render(preroll)?.iter().zip(&settled).all(|(x, y)| (x - y).abs() <= SETTLE_TOLERANCE * 0.3) {
                settle = preroll;
                break;
            }
        }
        self.settle = 0;
        self.set(&kept);
        self.reinstantiate()?;
        Ok(settle)
    }

    /// The plugin's description.
    pub fn info(&self) -> &'static PluginInfo {
        self.info
    }

    /// Sets every knob (physical values in [`PluginInfo::knobs`] order; the plugin clamps to
    /// its ranges); allocates nothing.
    pub fn set(&mut self, knobs: &[f64]) {
        let n = self.knobs.len();
        self.knobs.copy_from_slice(&knobs[..n]);
        self.apply_knobs();
    }

    fn apply_knobs(&mut self) {
        for unit in &mut self.units {
            for (&port, &value) in self.info.knob_ports.iter().zip(&self.knobs) {
                unit.instance.set_control_input(PortIndex(port), value as f32);
            }
        }
    }

    /// Returns the plugin to rest, knobs kept. LV2's deactivate and activate should do it, but
    /// plugins differ in what they clear (Calf's compressors keep their envelope), so afx checks
    /// once per plugin ([`PluginStream::activation_resets`]) and otherwise makes a fresh
    /// instance (0.4–0.7 ms for x42 fil4); then [settles](PluginStream::settle) it at its
    /// knobs. Not for the audio thread.
    pub fn reset(&mut self) -> Result<()> {
        let resets = match self.info.activation_resets.get() {
            Some(&resets) => resets,
            None => {
                let resets = self.activation_resets()?;
                *self.info.activation_resets.get_or_init(|| resets)
            }
        };
        if resets {
            self.reactivate();
        } else {
            self.reinstantiate()?;
        }
        self.settle()
    }

    fn reinstantiate(&mut self) -> Result<()> {
        let catalogue = catalogue();
        let fresh = instantiate(&catalogue, self.info, self.sample_rate, self.units.len())?;
        // The old instances are freed under the lock too (lilv's library cache is shared).
        drop(std::mem::replace(&mut self.units, fresh));
        drop(catalogue);
        self.apply_knobs();
        Ok(())
    }

    /// LV2's reset: deactivate, then activate (allowed from the thread that runs the plugin).
    pub(crate) fn reactivate(&mut self) {
        for unit in &mut self.units {
            let instance = unit.instance.raw().instance();
            let handle = instance.handle();
            if let Some(descriptor) = instance.descriptor() {
                if let Some(deactivate) = descriptor.deactivate {
                    deactivate(handle);
                }
                if let Some(activate) = descriptor.activate {
                    activate(handle);
                }
            }
        }
    }

    /// Whether deactivate + activate brings this plugin back to rest: a probe rendered by a
    /// fresh instance, and again after a loud burst and the reactivation, must come out the
    /// same to the bit, at the current knobs and at knobs away from their defaults.
    fn activation_resets(&mut self) -> Result<bool> {
        let kept = self.knobs.clone();
        let away: Vec<f64> = self.info.knobs.iter().map(|k| k.denormalize(0.7)).collect();
        let probe: Vec<f32> = (0..4096).map(|i| (0.3 * ((i * 7919 % 4096) as f64 / 2048.0 - 1.0)) as f32).collect();
        let mut same = true;
        for knobs in [&kept, &away] {
            self.set(knobs);
            self.reinstantiate()?;
            let render = |stream: &mut PluginStream| -> Result<Vec<Vec<f32>>> {
                let mut channels = vec![probe.clone(); stream.channels()];
                stream.process(&mut channels.iter_mut().map(|c| c.as_mut_slice()).collect::<Vec<_>>())?;
                Ok(channels)
            };
            let fresh = render(self)?;
            let mut burst = vec![vec![0.9f32; 8192]; self.channels()];
            self.process(&mut burst.iter_mut().map(|c| c.as_mut_slice()).collect::<Vec<_>>())?;
            self.reactivate();
            same &= render(self)? == fresh;
        }
        self.set(&kept);
        self.reinstantiate()?;
        Ok(same)
    }

    /// Samples by which the output lags the input: what the plugin last reported through its
    /// latency port, or what an impulse measured when it has none.
    pub fn latency(&self) -> usize {
        match self.info.latency_port {
            Some(port) => self.units[0]
                .instance
                .control_output(PortIndex(port))
                .map_or(0, |v| if v.is_finite() && v > 0.0 { v.round() as usize } else { 0 }),
            None => self.measured_latency,
        }
    }

    /// Processes one block in place (every channel the same length, any length); allocates
    /// nothing. A non-finite output is an error naming the plugin.
    pub fn process(&mut self, channels: &mut [&mut [f32]]) -> Result<()> {
        let len = channels.first().map_or(0, |c| c.len());
        let mut start = 0;
        while start < len {
            let n = (len - start).min(MAX_BLOCK);
            self.process_block(channels, start, n)?;
            start += n;
        }
        Ok(())
    }

    fn process_block(&mut self, channels: &mut [&mut [f32]], start: usize, n: usize) -> Result<()> {
        let range = start..start + n;
        match self.layout {
            Layout::Whole => {
                let sources = self.info.input_sources.iter().map(|&m| &channels[m][range.clone()]);
                run(&mut self.units[0], sources, &mut self.scratch, n, self.info)?;
                for (c, s) in channels.iter_mut().zip(&self.scratch) {
                    c[range.clone()].copy_from_slice(&s[..n]);
                }
            }
            Layout::PerChannel => {
                for (c, unit) in channels.iter_mut().zip(&mut self.units) {
                    let sources = std::iter::repeat_n(&c[range.clone()], self.info.input_sources.len());
                    run(unit, sources, &mut self.scratch, n, self.info)?;
                    c[range.clone()].copy_from_slice(&self.scratch[0][..n]);
                }
            }
            Layout::MonoThrough => {
                let ports = self.info.audio_outputs;
                let sources = std::iter::repeat_n(&channels[0][range.clone()], self.info.input_sources.len());
                run(&mut self.units[0], sources, &mut self.scratch, n, self.info)?;
                let out = &mut channels[0][range];
                out.fill(0.0);
                for s in &self.scratch {
                    for (o, v) in out.iter_mut().zip(&s[..n]) {
                        *o += v / ports as f32;
                    }
                }
            }
        }
        if channels.iter().any(|c| c[start..start + n].iter().any(|v| !v.is_finite())) {
            return Err(Error::Plugin { uri: self.info.uri.clone(), reason: "produced a non-finite sample".into() });
        }
        Ok(())
    }

    /// Renders whole signals in place from the plugin's current state, with the latency
    /// compensated: the plugin runs on past the end on silence, and the output is read from
    /// [`PluginStream::latency`] samples on, so it lines up with the input.
    pub fn render(&mut self, channels: &mut [&mut [f32]]) -> Result<()> {
        self.process(channels)?;
        let latency = self.latency();
        crate::fx::chain::align_latency(channels, latency, |tail| self.process(tail))
    }

    /// The lag of the peak of the response to an impulse at the current knobs.
    fn measure_latency(&mut self, sample_rate: u32) -> Result<usize> {
        let len = (LATENCY_SEARCH_SECONDS * f64::from(sample_rate)) as usize;
        let mut impulse = vec![0.0f32; len];
        impulse[0] = 0.1;
        let mut channels = vec![impulse; self.channels()];
        let mut views: Vec<&mut [f32]> = channels.iter_mut().map(|c| c.as_mut_slice()).collect();
        self.process(&mut views)?;
        let (lag, _) = channels[0].iter().enumerate().fold((0, 0.0f32), |best, (i, v)| if v.abs() > best.1 { (i, v.abs()) } else { best });
        Ok(lag)
    }

    /// The number of audio channels this stream processes.
    pub fn channels(&self) -> usize {
        match self.layout {
            Layout::Whole => self.info.audio_inputs,
            Layout::PerChannel => self.units.len(),
            Layout::MonoThrough => 1,
        }
    }
}

/// What `measured` holds for `sample_rate`, else what `measure` finds, kept there (a plugin's
/// measurements are made once per process and rate).
fn per_rate(measured: &std::sync::Mutex<Vec<(u32, usize)>>, sample_rate: u32, measure: impl FnOnce() -> Result<usize>) -> Result<usize> {
    let known = measured.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|(rate, _)| *rate == sample_rate).map(|m| m.1);
    match known {
        Some(value) => Ok(value),
        None => {
            let value = measure()?;
            measured.lock().unwrap_or_else(|p| p.into_inner()).push((sample_rate, value));
            Ok(value)
        }
    }
}

/// `count` fresh instances of `info`'s plugin at `sample_rate`, each with its atom buffers (the caller holds the catalogue's lock).
fn instantiate(catalogue: &Catalogue, info: &PluginInfo, sample_rate: u32, count: usize) -> Result<Vec<Unit>> {
    let plugin_error = |reason: String| Error::Plugin { uri: info.uri.clone(), reason };
    let plugin = catalogue.plugin(&info.uri)?;
    let counts = *plugin.port_counts();
    if counts.cv_inputs + counts.cv_outputs > 0 {
        return Err(plugin_error("has CV ports, which afx does not connect".into()));
    }
    (0..count)
        .map(|_| {
            // SAFETY: the plugin comes from the installed catalogue, the sample rate is a checked
            // one, and every port is connected before each run.
            let instance = unsafe { plugin.instantiate(catalogue.features.clone(), f64::from(sample_rate)) }
                .map_err(|e| plugin_error(format!("cannot be instantiated at {sample_rate} Hz ({e:?})")))?;
            let atoms = |n: usize| (0..n).map(|_| LV2AtomSequence::new(&catalogue.features, ATOM_CAPACITY)).collect();
            Ok(Unit { instance, atom_in: atoms(counts.atom_sequence_inputs), atom_out: atoms(counts.atom_sequence_outputs) })
        })
        .collect()
}

/// One run of `n` samples of a unit: `inputs` to the plugin's audio inputs, its outputs into
/// `outputs`, every atom port connected.
fn run<'a>(
    unit: &'a mut Unit,
    inputs: impl ExactSizeIterator<Item = &'a [f32]>,
    outputs: &'a mut [Vec<f32>],
    n: usize,
    info: &PluginInfo,
) -> Result<()> {
    let Unit { instance, atom_in, atom_out } = unit;
    let ports = EmptyPortConnections::new()
        .with_audio_inputs(inputs)
        .with_audio_outputs(outputs.iter_mut().map(|o| &mut o[..n]))
        .with_atom_sequence_inputs(atom_in.iter())
        .with_atom_sequence_outputs(atom_out.iter_mut());
    // SAFETY: every port of the plugin is connected to a buffer of at least `n` samples (or an
    // empty atom sequence) that outlives the call, and `n` is within the features' block range.
    unsafe { instance.run(n, ports) }.map_err(|e| Error::Plugin { uri: info.uri.clone(), reason: format!("failed to run ({e:?})") })
}
