//! A third-party plugin as a stage of a chain (`--chain hpf,fil4=lv2:URI,comp`): what the chain
//! needs to know of it ([`PluginInfo`]: its audio ports and its control inputs as knobs), and its
//! streaming node ([`PluginNode`]). Hosting itself is in [`crate::lv2`] (the `lv2` feature);
//! without it a chain naming a plugin does not parse, so no node exists.

use std::sync::{Mutex, OnceLock};

use super::knob::KnobSpec;
use crate::{Error, Real, Result};

/// A plugin as afx uses it: where its audio goes and which knobs it has. Made once per URI and
/// process (leaked, so that its knobs are `'static` like those of afx's own effects).
#[derive(Debug)]
#[cfg_attr(not(feature = "lv2"), allow(dead_code))]
pub struct PluginInfo {
    pub uri: String,
    pub name: String,
    /// Main audio inputs (side-chain inputs not counted).
    pub audio_inputs: usize,
    pub audio_outputs: usize,
    /// The control inputs that have a range, in port order, named by their port symbols.
    pub knobs: Vec<KnobSpec>,
    /// For every audio input port in port order, the main input whose signal it reads (a
    /// side-chain input reads a main input: the plugin keys on its own input).
    pub(crate) input_sources: Vec<usize>,
    /// The port index of each knob.
    pub(crate) knob_ports: Vec<usize>,
    /// The control output through which the plugin reports its latency in samples, if any.
    pub(crate) latency_port: Option<usize>,
    /// Whether LV2's deactivate + activate returns this plugin to rest (checked on first reset).
    pub(crate) activation_resets: OnceLock<bool>,
    /// For a plugin that reports no latency: the lag measured at each sample rate so far.
    pub(crate) measured_latency: Mutex<Vec<(u32, usize)>>,
    /// How long the plugin takes to reach its knobs from a fresh start (some glide their
    /// parameters from the defaults: x42 fil4 and darc, Calf's compressors), measured at each
    /// sample rate so far: the silence a stream runs before it is at rest with new knobs.
    pub(crate) settle: Mutex<Vec<(u32, usize)>>,
}

impl PluginInfo {
    /// The position of the knob with port symbol `symbol`.
    pub fn knob_index(&self, symbol: &str) -> Result<usize> {
        self.knobs.iter().position(|k| k.name == symbol).ok_or_else(|| Error::Plugin {
            uri: self.uri.clone(),
            reason: format!(
                "has no control input `{symbol}` (its knobs: {})",
                self.knobs.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Every knob at its default, in [`PluginInfo::knobs`] order.
    pub fn defaults(&self) -> Vec<f64> {
        self.knobs.iter().map(|k| k.default).collect()
    }

    /// The most channels a chain can give it: any number for a mono plugin (an instance per
    /// channel), else its own channel count.
    pub fn max_channels(&self) -> usize {
        if self.audio_inputs == 1 && self.audio_outputs == 1 { usize::MAX } else { self.audio_inputs }
    }
}

/// Two stages hold the same plugin when they name the same URI.
impl PartialEq for PluginInfo {
    fn eq(&self, other: &Self) -> bool {
        self.uri == other.uri
    }
}

impl Eq for PluginInfo {}

/// Short names for the plugins of afx's plugin tasks, usable wherever a URI is
/// (`fil4=lv2:fil4`) and alone as a chain item (`--chain hpf,fil4,darc`: the stage is named
/// by its alias). Mono versions: a mono plugin runs one instance per channel.
pub const ALIASES: &[(&str, &str)] = &[
    ("fil4", "http://gareus.org/oss/lv2/fil4#mono"),
    ("darc", "http://gareus.org/oss/lv2/darc#mono"),
    ("dpl", "http://gareus.org/oss/lv2/dpl#mono"),
    ("calf_comp", "http://calf.sourceforge.net/plugins/MonoCompressor"),
    ("calf_multiband", "http://calf.sourceforge.net/plugins/MultibandCompressor"),
    ("lsp_geq32", "http://lsp-plug.in/plugins/lv2/graph_equalizer_x32_mono"),
    ("lsp_limiter", "http://lsp-plug.in/plugins/lv2/limiter_mono"),
    ("zamcomp", "urn:zamaudio:ZamComp"),
    ("zamtube", "urn:zamaudio:ZamTube"),
    ("invada_tube", "http://invadarecords.com/plugins/lv2/tube/mono"),
];

/// The URI an alias stands for ([`ALIASES`]).
pub fn alias(name: &str) -> Option<&'static str> {
    ALIASES.iter().find(|(a, _)| *a == name).map(|(_, uri)| *uri)
}

/// The installed plugin `uri` (or [alias](ALIASES)), or why it cannot be had.
pub fn resolve(uri: &str) -> Result<&'static PluginInfo> {
    let uri = alias(uri).unwrap_or(uri);
    #[cfg(feature = "lv2")]
    return crate::lv2::plugin_info(uri);
    #[cfg(not(feature = "lv2"))]
    {
        let _ = uri;
        Err(Error::Lv2Disabled)
    }
}

/// A plugin stage of a streaming chain: the hosted plugin, with `f32` scratch so that chains
/// of any sample type can run it. Processing allocates nothing; a plugin that fails while
/// processing (a non-finite output) leaves silence and its error for
/// [`crate::fx::Chain::take_error`].
#[cfg(feature = "lv2")]
pub struct PluginNode {
    stream: crate::lv2::PluginStream,
    scratch: Vec<Vec<f32>>,
    error: Option<Error>,
}

/// Without the `lv2` feature no plugin stage can be made (no chain naming one parses).
#[cfg(not(feature = "lv2"))]
pub enum PluginNode {}

impl std::fmt::Debug for PluginNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginNode")
    }
}

#[cfg(feature = "lv2")]
impl PluginNode {
    /// The plugin `info` at rest with `knobs` for `channels` channels.
    pub fn new(info: &'static PluginInfo, knobs: &[f64], sample_rate: u32, channels: usize) -> Result<Self> {
        if channels > super::chain::MAX_RAMP_CHANNELS {
            return Err(Error::TooManyChannels { effect: info.uri.clone(), channels, max: super::chain::MAX_RAMP_CHANNELS });
        }
        // A new stream at rest with these knobs: set, then settled (some plugins glide to them).
        let mut stream = crate::lv2::PluginStream::new(info, sample_rate, channels)?;
        stream.set(knobs);
        stream.settle()?;
        Ok(PluginNode { stream, scratch: vec![vec![0.0; crate::lv2::MAX_BLOCK]; channels], error: None })
    }

    /// Changes the knobs, keeping the state.
    pub fn set(&mut self, knobs: &[f64]) {
        self.stream.set(knobs);
    }

    /// Returns the plugin to rest (a failure is kept for [`PluginNode::take_error`]).
    pub fn reset(&mut self) {
        if let Err(e) = self.stream.reset() {
            self.error.get_or_insert(e);
        }
    }

    /// Samples by which its output lags its input.
    pub fn latency(&self) -> usize {
        self.stream.latency()
    }

    /// Processes one block in place.
    pub fn process<T: Real>(&mut self, channels: &mut [&mut [T]]) {
        let len = channels.first().map_or(0, |c| c.len());
        let mut start = 0;
        while start < len {
            let n = (len - start).min(crate::lv2::MAX_BLOCK);
            for (s, c) in self.scratch.iter_mut().zip(channels.iter()) {
                for (d, x) in s[..n].iter_mut().zip(&c[start..start + n]) {
                    *d = x.to64() as f32;
                }
            }
            let mut views: [&mut [f32]; super::chain::MAX_RAMP_CHANNELS] = std::array::from_fn(|_| <&mut [f32]>::default());
            let count = channels.len().min(views.len());
            for (v, s) in views.iter_mut().zip(self.scratch.iter_mut()) {
                *v = &mut s[..n];
            }
            if let Err(e) = self.stream.process(&mut views[..count]) {
                self.error.get_or_insert(e);
                self.scratch.iter_mut().for_each(|s| s.fill(0.0));
            }
            for (c, s) in channels.iter_mut().zip(&self.scratch) {
                for (d, x) in c[start..start + n].iter_mut().zip(&s[..n]) {
                    *d = T::of(f64::from(*x));
                }
            }
            start += n;
        }
    }

    /// The first failure since the last call, if any.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

#[cfg(not(feature = "lv2"))]
impl PluginNode {
    pub fn new(_: &'static PluginInfo, _: &[f64], _: u32, _: usize) -> Result<Self> {
        Err(Error::Lv2Disabled)
    }

    pub fn set(&mut self, _: &[f64]) {
        match *self {}
    }

    pub fn reset(&mut self) {
        match *self {}
    }

    pub fn latency(&self) -> usize {
        match *self {}
    }

    pub fn process<T: Real>(&mut self, _: &mut [&mut [T]]) {
        match *self {}
    }

    pub fn take_error(&mut self) -> Option<Error> {
        match *self {}
    }
}
