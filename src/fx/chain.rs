//! A chain is data: an ordered list of effects ([`ChainSpec`], spelled `hpf,eq,comp`), its knob
//! vector the concatenation of theirs. Streaming rendering for users ([`Chain`]), and taped
//! rendering with its exact vector–Jacobian product for training ([`forward`], [`vjp`]), which
//! walks the list backwards.

use std::fmt;
use std::str::FromStr;

use super::knob::{Knob, KnobSpec};
use super::params::ChainKnobs;
use super::plugin::{PluginInfo, PluginNode};
use super::{EffectKind, Stage, StageTape, Track};
use crate::{Error, Real, Result};

/// Lowest sample rate the chain accepts.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate the chain accepts.
pub const MAX_SAMPLE_RATE: u32 = 192_000;
/// The chain of today's style network and of commands given no `--chain`.
pub const DEFAULT_CHAIN: &str = "eq,comp";

/// Checks that the chain supports a sample rate.
pub fn check_sample_rate(sample_rate: u32) -> Result<()> {
    crate::audio::check_sample_rate(sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
}

/// What a stage of a chain is: one of afx's effects, or a hosted LV2 plugin (`NAME=lv2:URI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    Effect(EffectKind),
    Plugin(&'static PluginInfo),
}

impl From<EffectKind> for StageKind {
    fn from(kind: EffectKind) -> Self {
        StageKind::Effect(kind)
    }
}

impl StageKind {
    /// The stage's knob declarations (a plugin's: its control inputs).
    pub fn knobs(self) -> &'static [KnobSpec] {
        match self {
            StageKind::Effect(k) => k.knobs(),
            StageKind::Plugin(p) => &p.knobs,
        }
    }

    /// The most channels the stage handles.
    pub fn max_channels(self) -> usize {
        match self {
            StageKind::Effect(k) => k.max_channels(),
            StageKind::Plugin(p) => p.max_channels(),
        }
    }

    /// Its level knobs ([`crate::fx::effect::Effect::LEVEL_KNOBS`]); `None` for a plugin, whose
    /// behaviour with level afx does not know.
    pub fn level_knobs(self) -> Option<&'static [usize]> {
        match self {
            StageKind::Effect(k) => k.level_knobs(),
            StageKind::Plugin(_) => None,
        }
    }

    /// Its output-gain knob ([`crate::fx::effect::Effect::OUTPUT_GAIN`]); `None` for a plugin.
    pub fn output_gain(self) -> Option<usize> {
        match self {
            StageKind::Effect(k) => k.output_gain(),
            StageKind::Plugin(_) => None,
        }
    }

    /// The look-ahead known before running (a plugin's own is compensated by its node, see
    /// [`Chain::latency`]).
    pub fn latency(self, sample_rate: f64) -> usize {
        match self {
            StageKind::Effect(k) => k.latency(sample_rate),
            StageKind::Plugin(_) => 0,
        }
    }

    /// [`EffectKind::response_db`]; `None` for a plugin.
    pub fn response_db(self, knobs: &[f64], sample_rate: f64, freq_hz: f64) -> Option<f64> {
        match self {
            StageKind::Effect(k) => k.response_db(knobs, sample_rate, freq_hz),
            StageKind::Plugin(_) => None,
        }
    }

    /// [`EffectKind::static_curve_db`]; `None` for a plugin.
    pub fn static_curve_db(self, knobs: &[f64], level_db: f64) -> Option<f64> {
        match self {
            StageKind::Effect(k) => k.static_curve_db(knobs, level_db),
            StageKind::Plugin(_) => None,
        }
    }
}

/// One stage of a chain: its kind, its label (an effect's name, with a 1-based index when the
/// chain holds the effect more than once: `eq1`, `eq2`; a plugin's name as given) and where its
/// knobs start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageSpec {
    pub kind: StageKind,
    pub label: String,
    pub offset: usize,
}

impl StageSpec {
    /// The range of this effect's knobs in the chain's knob vector.
    pub fn knobs(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.kind.knobs().len()
    }

    /// The plugin's name in the chain (its label), for a plugin stage.
    fn plugin_name(&self) -> Option<String> {
        matches!(self.kind, StageKind::Plugin(_)).then(|| self.label.clone())
    }
}

/// An ordered list of effects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    stages: Vec<StageSpec>,
}

impl ChainSpec {
    /// A chain of afx's effects `kinds`, in order (at least one).
    pub fn new(kinds: &[EffectKind]) -> Result<Self> {
        Self::build(kinds.iter().map(|&k| (StageKind::Effect(k), None)).collect())
    }

    /// A chain of stages (each a kind, with its name for a plugin), in order (at least one).
    /// Effects are labelled by name (numbered when one appears twice); plugins by their names,
    /// which must be new: no other stage's label, no effect's name.
    fn build(parts: Vec<(StageKind, Option<String>)>) -> Result<Self> {
        if parts.is_empty() {
            return Err(Error::BadChain { chain: String::new(), reason: "a chain needs at least one effect".into() });
        }
        let effects: Vec<Option<EffectKind>> =
            parts.iter().map(|(k, _)| if let StageKind::Effect(e) = k { Some(*e) } else { None }).collect();
        let mut offset = 0;
        let mut stages: Vec<StageSpec> = Vec::with_capacity(parts.len());
        for (i, (kind, name)) in parts.into_iter().enumerate() {
            let label = match (kind, name) {
                (StageKind::Effect(e), _) => {
                    let count = effects.iter().filter(|k| **k == Some(e)).count();
                    if count > 1 {
                        let index = effects[..=i].iter().filter(|k| **k == Some(e)).count();
                        format!("{}{index}", e.name())
                    } else {
                        e.name().to_string()
                    }
                }
                (StageKind::Plugin(_), Some(name)) => name,
                (StageKind::Plugin(p), None) => {
                    return Err(Error::BadChain { chain: p.uri.clone(), reason: "a plugin needs a name (NAME=lv2:URI)".into() });
                }
            };
            stages.push(StageSpec { kind, label, offset });
            offset += kind.knobs().len();
        }
        let spec = ChainSpec { stages };
        for (i, s) in spec.stages.iter().enumerate() {
            if let StageKind::Plugin(_) = s.kind {
                let clash = s.label.parse::<EffectKind>().is_ok()
                    || spec.stages.iter().enumerate().any(|(j, o)| j != i && o.label == s.label)
                    || !s.label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || s.label.is_empty();
                if clash {
                    return Err(Error::BadChain {
                        chain: spec.to_string(),
                        reason: format!(
                            "the plugin name `{}` must be new (no effect's name, no other stage's) and of letters, digits and `_`",
                            s.label
                        ),
                    });
                }
            }
        }
        Ok(spec)
    }

    /// The chain of these stages, in order (at least one), relabelled for the whole.
    pub fn of_stages<'a>(stages: impl IntoIterator<Item = &'a StageSpec>) -> Result<Self> {
        Self::build(stages.into_iter().map(|s| (s.kind, s.plugin_name())).collect())
    }

    /// The chain of `parts` one after another (at least one); its knob vector is theirs
    /// concatenated, its labels renumbered for the whole (`eq` and `eq` make `eq1,eq2`).
    pub fn concat<'a>(parts: impl IntoIterator<Item = &'a ChainSpec>) -> Result<Self> {
        Self::of_stages(parts.into_iter().flat_map(|p| p.stages.iter()))
    }

    /// Whether any stage is a hosted plugin (such a chain renders, but has no exact adjoint).
    pub fn has_plugins(&self) -> bool {
        self.stages.iter().any(|s| matches!(s.kind, StageKind::Plugin(_)))
    }

    /// For uses that need the exact adjoint: an error naming the first plugin stage, with
    /// `advice`.
    pub fn check_differentiable(&self, advice: &str) -> Result<()> {
        match self.stages.iter().find(|s| matches!(s.kind, StageKind::Plugin(_))) {
            Some(s) => Err(Error::BadChain {
                chain: self.to_string(),
                reason: format!("`{}` is a plugin, which has no exact adjoint; {advice}", s.label),
            }),
            None => Ok(()),
        }
    }

    /// The effects in order.
    pub fn stages(&self) -> &[StageSpec] {
        &self.stages
    }

    /// Number of knobs of the whole chain.
    pub fn num_knobs(&self) -> usize {
        self.stages.last().map_or(0, |s| s.offset + s.kind.knobs().len())
    }

    /// Every knob's declaration, in knob-vector order, without building names (what the
    /// audio and training paths use; [`ChainSpec::knobs`] adds the full names).
    pub fn specs(&self) -> impl Iterator<Item = &'static KnobSpec> + '_ {
        self.stages.iter().flat_map(|s| s.kind.knobs())
    }

    /// Every knob of the chain with its full name, in knob-vector order.
    pub fn knobs(&self) -> Vec<Knob> {
        self.stages
            .iter()
            .flat_map(|s| s.kind.knobs().iter().map(move |spec| Knob { name: format!("{}.{}", s.label, spec.name), spec: *spec }))
            .collect()
    }

    /// The position of a knob given by its full name (`comp.ratio`, `eq2.band1.gain_db`).
    pub fn knob_index(&self, name: &str) -> Result<usize> {
        let (label, local) = name.split_once('.').unwrap_or((name, ""));
        let Some(stage) = self.stages.iter().find(|s| s.label == label) else {
            // A known effect (or a numbered label of one) that this chain lacks.
            let effect = label.trim_end_matches(|c: char| c.is_ascii_digit());
            if EffectKind::from_str(effect).is_ok() {
                return Err(Error::KnobNotInChain { name: name.to_string(), chain: self.to_string() });
            }
            return Err(Error::UnknownKnob { name: name.to_string() });
        };
        stage
            .kind
            .knobs()
            .iter()
            .position(|k| k.name == local)
            .map(|i| stage.offset + i)
            .ok_or_else(|| Error::UnknownKnob { name: name.to_string() })
    }

    /// Samples by which the streaming chain lags its input at a sample rate (the sum of its
    /// effects' look-aheads); [`render`], [`forward`] and [`vjp`] compensate it.
    pub fn latency(&self, sample_rate: u32) -> usize {
        self.stages.iter().map(|s| s.kind.latency(f64::from(sample_rate))).sum()
    }

    /// Whether any effect is of `kind`.
    pub fn contains(&self, kind: EffectKind) -> bool {
        self.stages.iter().any(|s| s.kind == StageKind::Effect(kind))
    }

    /// The chain's output gain: the position of the last effect's
    /// [output-gain knob](crate::fx::effect::Effect::OUTPUT_GAIN) (the compressor's make-up,
    /// a gain), with its declaration; `None` for a chain without one. A level-relative model
    /// sets its output at the reference's level plus this knob.
    pub fn output_gain(&self) -> Option<(usize, &'static KnobSpec)> {
        self.stages.iter().rev().find_map(|s| s.kind.output_gain().map(|k| (s.offset + k, &s.kind.knobs()[k])))
    }
}

impl Default for ChainSpec {
    fn default() -> Self {
        DEFAULT_CHAIN.parse().expect("the default chain parses")
    }
}

impl FromStr for ChainSpec {
    type Err = Error;

    /// Parses comma-separated effect names, e.g. `hpf,eq,comp`, with hosted plugins as
    /// `NAME=lv2:URI` (`hpf,fil4=lv2:http://gareus.org/oss/lv2/fil4#mono,comp`), the URI or
    /// the whole item possibly a [plugin alias](super::plugin::ALIASES) (`hpf,fil4,comp`).
    fn from_str(text: &str) -> Result<Self> {
        let parts = text
            .split(',')
            .map(|item| {
                let item = item.trim();
                if item.is_empty() {
                    return Err(Error::BadChain { chain: text.to_string(), reason: "an effect name is empty".into() });
                }
                match item.split_once('=') {
                    Some((name, target)) => {
                        let Some(uri) = target.trim().strip_prefix("lv2:") else {
                            return Err(Error::BadChain { chain: text.to_string(), reason: format!("`{item}`: a plugin is NAME=lv2:URI") });
                        };
                        Ok((StageKind::Plugin(super::plugin::resolve(uri)?), Some(name.trim().to_string())))
                    }
                    None => match item.parse() {
                        Ok(effect) => Ok((StageKind::Effect(effect), None)),
                        Err(unknown) => match super::plugin::alias(item) {
                            Some(uri) => Ok((StageKind::Plugin(super::plugin::resolve(uri)?), Some(item.to_string()))),
                            None => Err(match unknown {
                                Error::UnknownEffect { name, known } => Error::UnknownEffect {
                                    name,
                                    known: format!(
                                        "{known}; plugin aliases: {}",
                                        super::plugin::ALIASES.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ")
                                    ),
                                },
                                other => other,
                            }),
                        },
                    },
                }
            })
            .collect::<Result<Vec<_>>>()?;
        ChainSpec::build(parts)
    }
}

impl fmt::Display for ChainSpec {
    /// The spelling [`ChainSpec::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match s.kind {
                StageKind::Effect(kind) => f.write_str(kind.name())?,
                StageKind::Plugin(p) => write!(f, "{}=lv2:{}", s.label, p.uri)?,
            }
        }
        Ok(())
    }
}

impl serde::Serialize for ChainSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for ChainSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How long a knob change takes in the streaming chain: the knobs glide from where they are to
/// the new setting over this many milliseconds, so that no change clicks.
pub const RAMP_MS: f64 = 20.0;

/// The length of a glide in samples at a sample rate.
pub(crate) fn ramp_samples(sample_rate: f64) -> usize {
    ((RAMP_MS * 1e-3 * sample_rate).round() as usize).max(1)
}

/// Most channels a streaming chain glides its knobs for (the per-sample channel views of a ramp
/// live on the stack); a wider chain changes its knobs at once.
pub const MAX_RAMP_CHANNELS: usize = 32;

/// One stage of a streaming chain: one of afx's effects, or a hosted plugin.
#[derive(Debug)]
enum Node<T: Real> {
    Effect(Stage<T>),
    Plugin(Box<PluginNode>),
}

impl<T: Real> Node<T> {
    fn new(kind: StageKind, knobs: &[f64], sample_rate: u32, channels: usize) -> Result<Self> {
        Ok(match kind {
            StageKind::Effect(k) => Node::Effect(Stage::new(k, knobs, f64::from(sample_rate), channels)),
            StageKind::Plugin(p) => Node::Plugin(Box::new(PluginNode::new(p, knobs, sample_rate, channels)?)),
        })
    }

    fn set(&mut self, knobs: &[f64], sample_rate: f64) {
        match self {
            Node::Effect(s) => s.set(knobs, sample_rate),
            Node::Plugin(p) => p.set(knobs),
        }
    }

    fn reset(&mut self) {
        match self {
            Node::Effect(s) => s.reset(),
            Node::Plugin(p) => p.reset(),
        }
    }

    fn process(&mut self, channels: &mut [&mut [T]]) {
        match self {
            Node::Effect(s) => s.process(channels),
            Node::Plugin(p) => p.process(channels),
        }
    }
}

/// The streaming chain: any block size, state carried across blocks, no allocation while
/// processing or changing knobs. Stereo (or more) channels share the settings. Its output lags
/// the input by [`ChainSpec::latency`] samples.
///
/// A knob change ([`Chain::set_knobs`]) glides: over [`RAMP_MS`] every knob moves in a straight
/// line in its normalised units (dB linearly, Hz and ms geometrically; a switch flips halfway)
/// from where it is to its new value, each effect set anew at every sample of the glide. The
/// glide is counted in samples from the change, so the output does not depend on how the audio
/// is split into blocks. A change during a glide starts a new one from where the knobs are.
#[derive(Debug)]
pub struct Chain<T: Real> {
    spec: ChainSpec,
    stages: Vec<Node<T>>,
    sample_rate: f64,
    channels: usize,
    /// The glide: normalised knobs at its start and end, the end in physical units (set exactly
    /// when the glide ends), the physical values at the current sample (scratch), its length
    /// and how far it has gone (`position == length`: no glide).
    from: Vec<f64>,
    to: Vec<f64>,
    to_physical: Vec<f64>,
    now: Vec<f64>,
    ramp_length: usize,
    ramp_position: usize,
}

impl<T: Real> Chain<T> {
    /// A chain at rest for `channels` channels at `sample_rate`.
    pub fn new(knobs: &ChainKnobs, sample_rate: u32, channels: usize) -> Result<Self> {
        check_sample_rate(sample_rate)?;
        if channels == 0 {
            return Err(Error::NoChannels { what: "the chain".into() });
        }
        if let Some(s) = knobs.chain().stages().iter().find(|s| channels > s.kind.max_channels()) {
            return Err(Error::TooManyChannels { effect: s.label.clone(), channels, max: s.kind.max_channels() });
        }
        knobs.validate()?;
        let fs = f64::from(sample_rate);
        let spec = knobs.chain().clone();
        let stages =
            spec.stages().iter().map(|s| Node::new(s.kind, &knobs.values()[s.knobs()], sample_rate, channels)).collect::<Result<_>>()?;
        let normalized = knobs.to_normalized();
        let ramp_length = ramp_samples(fs);
        Ok(Chain {
            spec,
            stages,
            sample_rate: fs,
            channels,
            from: normalized.clone(),
            to: normalized,
            to_physical: knobs.values().to_vec(),
            now: knobs.values().to_vec(),
            ramp_length,
            ramp_position: ramp_length,
        })
    }

    /// Changes the knobs (of the same chain), keeping the state: they glide to `knobs` over
    /// [`RAMP_MS`] from where they are (no allocation).
    pub fn set_knobs(&mut self, knobs: &ChainKnobs) -> Result<()> {
        self.check(knobs)?;
        if self.channels > MAX_RAMP_CHANNELS {
            return self.set_knobs_now(knobs);
        }
        let t = self.ramp_position as f64 / self.ramp_length as f64;
        for (((from, to), to_physical), (spec, &value)) in
            self.from.iter_mut().zip(&mut self.to).zip(&mut self.to_physical).zip(self.spec.specs().zip(knobs.values()))
        {
            *from += (*to - *from) * t;
            *to = spec.normalize(value);
            *to_physical = value;
        }
        self.ramp_position = 0;
        Ok(())
    }

    /// Changes the knobs at once, keeping the state (no allocation): for a chain that is not
    /// playing, or a change meant to be heard as a jump.
    pub fn set_knobs_now(&mut self, knobs: &ChainKnobs) -> Result<()> {
        self.check(knobs)?;
        for (stage, s) in self.stages.iter_mut().zip(self.spec.stages()) {
            stage.set(&knobs.values()[s.knobs()], self.sample_rate);
        }
        for ((from, to), (spec, &value)) in self.from.iter_mut().zip(&mut self.to).zip(self.spec.specs().zip(knobs.values())) {
            *from = spec.normalize(value);
            *to = *from;
        }
        self.to_physical.copy_from_slice(knobs.values());
        self.ramp_position = self.ramp_length;
        Ok(())
    }

    fn check(&self, knobs: &ChainKnobs) -> Result<()> {
        if knobs.chain() != &self.spec {
            return Err(Error::ChainMismatch { expected: self.spec.to_string(), got: knobs.chain().to_string() });
        }
        knobs.validate()
    }

    /// Samples by which the output lags the input (a plugin's as it reports it now).
    pub fn latency(&self) -> usize {
        let plugins: usize = self.stages.iter().map(|s| if let Node::Plugin(p) = s { p.latency() } else { 0 }).sum();
        self.spec.latency(self.sample_rate as u32) + plugins
    }

    /// The first failure of a hosted plugin since the last call (it left silence), if any.
    pub fn take_error(&mut self) -> Option<Error> {
        self.stages.iter_mut().find_map(|s| if let Node::Plugin(p) = s { p.take_error() } else { None })
    }

    /// Returns every effect to rest (a glide under way jumps to its end).
    pub fn reset(&mut self) {
        self.stages.iter_mut().for_each(Node::reset);
        if self.ramp_position < self.ramp_length {
            self.ramp_position = self.ramp_length - 1;
            self.step_ramp();
        }
    }

    /// Processes one block in place; every channel must have the same length (and there must
    /// be as many channels as the chain was made for).
    pub fn process(&mut self, channels: &mut [&mut [T]]) {
        let (len, count) = (channels.first().map_or(0, |c| c.len()), channels.len());
        let mut done = 0;
        // A glide: one sample at a time, every effect set anew before it.
        while self.ramp_position < self.ramp_length && done < len {
            self.step_ramp();
            let mut views: [&mut [T]; MAX_RAMP_CHANNELS] = std::array::from_fn(|_| <&mut [T]>::default());
            for (view, channel) in views.iter_mut().zip(channels.iter_mut()) {
                *view = &mut channel[done..done + 1];
            }
            for stage in &mut self.stages {
                stage.process(&mut views[..count]);
            }
            done += 1;
        }
        if done == 0 {
            for stage in &mut self.stages {
                stage.process(channels);
            }
        } else if done < len {
            let mut views: [&mut [T]; MAX_RAMP_CHANNELS] = std::array::from_fn(|_| <&mut [T]>::default());
            for (view, channel) in views.iter_mut().zip(channels.iter_mut()) {
                *view = &mut channel[done..];
            }
            for stage in &mut self.stages {
                stage.process(&mut views[..count]);
            }
        }
    }

    /// Moves the glide one sample on and sets every effect whose knobs move to where they are.
    fn step_ramp(&mut self) {
        self.ramp_position += 1;
        let t = self.ramp_position as f64 / self.ramp_length as f64;
        let last = self.ramp_position == self.ramp_length;
        for (((now, spec), (&from, &to)), &end) in
            self.now.iter_mut().zip(self.spec.specs()).zip(self.from.iter().zip(&self.to)).zip(&self.to_physical)
        {
            *now = if last { end } else { spec.denormalize(from + (to - from) * t) };
        }
        for (stage, s) in self.stages.iter_mut().zip(self.spec.stages()) {
            let range = s.knobs();
            if self.from[range.clone()] != self.to[range.clone()] || last {
                stage.set(&self.now[range], self.sample_rate);
            }
        }
    }
}

/// Renders whole signals through the chain from rest, in place, with the chain's latency
/// compensated (the output is aligned with the input; the tail that a look-ahead holds back is
/// flushed with silence).
pub fn render<T: Real>(knobs: &ChainKnobs, sample_rate: u32, channels: &mut [&mut [T]]) -> Result<()> {
    let mut chain = Chain::new(knobs, sample_rate, channels.len())?;
    chain.process(channels);
    let latency = chain.latency();
    align_latency(channels, latency, |tail| {
        chain.process(tail);
        Ok(())
    })?;
    chain.take_error().map_or(Ok(()), Err)
}

/// Lines up a rendering that lags its input by `latency` samples: `process` renders `latency`
/// samples of silence past the end (it continues from where the rendering stopped), and every
/// channel is read from `latency` samples on, so the output starts with the input.
pub(crate) fn align_latency<T: Copy + num_traits::Zero>(
    channels: &mut [&mut [T]],
    latency: usize,
    process: impl FnOnce(&mut [&mut [T]]) -> Result<()>,
) -> Result<()> {
    if latency == 0 {
        return Ok(());
    }
    let mut tail = vec![vec![T::zero(); latency]; channels.len()];
    let mut views: Vec<&mut [T]> = tail.iter_mut().map(|c| c.as_mut_slice()).collect();
    process(&mut views)?;
    for (c, t) in channels.iter_mut().zip(&tail) {
        let len = c.len();
        let kept = len.saturating_sub(latency);
        c.copy_within(len - kept.., 0);
        let from_tail = len - kept;
        c[kept..].copy_from_slice(&t[latency - from_tail..]);
    }
    Ok(())
}

/// A rendering of one example (all its channels) with everything its adjoint needs. Reuse one
/// tape across calls to avoid reallocating.
#[derive(Clone, Debug, Default)]
pub struct ChainTape<T: Real> {
    /// The input of every effect, per channel, each padded with the chain's latency in silence
    /// (the first effect's is the chain's input, kept only when it was padded).
    inputs: Vec<Vec<Vec<T>>>,
    tapes: Vec<StageTape<T>>,
    output: Vec<Vec<T>>,
}

impl<T: Real> ChainTape<T> {
    /// The rendered output channels.
    pub fn output(&self) -> &[Vec<T>] {
        &self.output
    }
}

/// Gradients of a loss with respect to the chain's input and knobs.
#[derive(Clone, Debug)]
pub struct ChainGrad<T> {
    /// `∂L/∂input`, per channel.
    pub input: Vec<Vec<T>>,
    /// `∂L/∂knob` in physical units, in the chain's knob order.
    pub knobs: Vec<f64>,
}

impl<T> ChainGrad<T> {
    /// The knob gradient with respect to the normalised knobs (`∂L/∂n = ∂L/∂x · ∂x/∂n`).
    pub fn knobs_normalized(&self, knobs: &ChainKnobs) -> Vec<f64> {
        self.knobs.iter().zip(knobs.chain().specs()).zip(knobs.values()).map(|((g, k), &x)| g * k.physical_per_normalized(x)).collect()
    }
}

/// Renders one example from rest, recording the tape; returns the output channels, aligned
/// with the input as [`render`] aligns them (the streaming output shifted back by the
/// latency `L`: the input is rendered with `L` samples of silence after it, and the first `L`
/// output samples dropped).
pub fn forward<'a, T: Real>(knobs: &ChainKnobs, sample_rate: u32, input: &[&[T]], tape: &'a mut ChainTape<T>) -> &'a [Vec<T>] {
    let tracks: Vec<Track<'_>> = knobs.chain().stages().iter().map(|s| Track::constant(&knobs.values()[s.knobs()])).collect();
    forward_tracks(knobs.chain(), &tracks, sample_rate, input, tape)
}

/// The exact vector–Jacobian product of [`forward`]: from `∂L/∂output` to the gradients with
/// respect to the input and every knob, walking the effects backwards.
pub fn vjp<T: Real>(knobs: &ChainKnobs, sample_rate: u32, input: &[&[T]], tape: &ChainTape<T>, grad_output: &[&[T]]) -> ChainGrad<T> {
    let stages = knobs.chain().stages();
    let tracks: Vec<Track<'_>> = stages.iter().map(|s| Track::constant(&knobs.values()[s.knobs()])).collect();
    let mut knob_grads: Vec<Vec<f64>> = stages.iter().map(|s| vec![0.0; s.kind.knobs().len()]).collect();
    let input_grad = vjp_tracks(knobs.chain(), &tracks, sample_rate, input, tape, grad_output, &mut knob_grads);
    ChainGrad { input: input_grad, knobs: knob_grads.concat() }
}

/// [`forward`] with each effect's knobs following its track (`tracks[i]` for stage `i`, in
/// the time of the chain's input).
pub(crate) fn forward_tracks<'a, T: Real>(
    chain: &ChainSpec,
    tracks: &[Track<'_>],
    sample_rate: u32,
    input: &[&[T]],
    tape: &'a mut ChainTape<T>,
) -> &'a [Vec<T>] {
    let fs = f64::from(sample_rate);
    let latency = chain.latency(sample_rate);
    let stages = chain.stages();
    tape.output.resize_with(input.len(), Vec::new);
    for (out, x) in tape.output.iter_mut().zip(input) {
        out.clear();
        out.extend_from_slice(x);
        out.resize(x.len() + latency, T::zero());
    }
    tape.inputs.resize_with(stages.len(), Vec::new);
    tape.tapes.truncate(stages.len());
    for (i, (s, track)) in stages.iter().zip(tracks).enumerate() {
        if i > 0 || latency > 0 {
            let saved = &mut tape.inputs[i];
            saved.resize_with(input.len(), Vec::new);
            for (dst, src) in saved.iter_mut().zip(&tape.output) {
                dst.clear();
                dst.extend_from_slice(src);
            }
        }
        let StageKind::Effect(kind) = s.kind else {
            panic!("the stage `{}` is a plugin: it has no exact adjoint (train such chains with SPSA or finite differences)", s.label)
        };
        if tape.tapes.len() <= i {
            tape.tapes.push(StageTape::empty(kind));
        }
        let mut views: Vec<&mut [T]> = tape.output.iter_mut().map(|c| c.as_mut_slice()).collect();
        tape.tapes[i].forward(kind, *track, fs, &mut views);
    }
    if latency > 0 {
        tape.output.iter_mut().for_each(|c| drop(c.drain(..latency)));
    }
    &tape.output
}

/// The exact vector–Jacobian product of [`forward_tracks`]: returns `∂L/∂input` and adds each
/// stage's knob gradients, one run per segment of its track, to `knob_grads[i]`.
pub(crate) fn vjp_tracks<T: Real>(
    chain: &ChainSpec,
    tracks: &[Track<'_>],
    sample_rate: u32,
    input: &[&[T]],
    tape: &ChainTape<T>,
    grad_output: &[&[T]],
    knob_grads: &mut [Vec<f64>],
) -> Vec<Vec<T>> {
    let fs = f64::from(sample_rate);
    let latency = chain.latency(sample_rate);
    // The dropped first `L` outputs get no gradient; the output is the padded render shifted.
    let mut grad: Vec<Vec<T>> = grad_output
        .iter()
        .map(|g| {
            let mut padded = vec![T::zero(); latency];
            padded.extend_from_slice(g);
            padded
        })
        .collect();
    for (i, track) in tracks.iter().enumerate().rev() {
        let stage_input: Vec<&[T]> =
            if i == 0 && latency == 0 { input.to_vec() } else { tape.inputs[i].iter().map(Vec::as_slice).collect() };
        let mut views: Vec<&mut [T]> = grad.iter_mut().map(|c| c.as_mut_slice()).collect();
        tape.tapes[i].adjoint(*track, fs, &stage_input, &mut views, &mut knob_grads[i]);
    }
    for (g, x) in grad.iter_mut().zip(input) {
        g.truncate(x.len());
    }
    grad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::params::comp_index;
    use crate::fx::test_signals::{assert_close, corner_chain_knobs, derivative, program, random_chain_knobs, weights};

    #[test]
    fn chains_parse_label_repeats_and_name_their_errors() {
        let c: ChainSpec = "hpf, eq,comp,eq".parse().unwrap();
        let labels: Vec<&str> = c.stages().iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["hpf", "eq1", "comp", "eq2"]);
        assert_eq!(c.to_string(), "hpf,eq,comp,eq");
        assert_eq!(c.to_string().parse::<ChainSpec>().unwrap(), c);
        let n = c.num_knobs();
        assert_eq!(n, c.knobs().len());
        assert_eq!(c.knob_index("eq2.band2.gain_db").unwrap(), c.stages()[3].offset + 6);
        assert_eq!(c.knobs()[c.knob_index("comp.ratio").unwrap()].name, "comp.ratio");
        let e = "eq,reverb".parse::<ChainSpec>().unwrap_err().to_string();
        assert!(e.contains("reverb") && e.contains("hpf") && e.contains("calf_multiband"), "{e}");
        assert!("eq,,comp".parse::<ChainSpec>().is_err());
        assert!("".parse::<ChainSpec>().is_err());
        let e = c.knob_index("eq.band1.gain_db").unwrap_err().to_string();
        assert!(e.contains("not in the chain"), "{e}");
        let e = ChainSpec::default().knob_index("lpf.freq_hz").unwrap_err().to_string();
        assert!(e.contains("lpf.freq_hz") && e.contains("not in the chain"), "{e}");
        let e = ChainSpec::default().knob_index("comp.rat").unwrap_err().to_string();
        assert!(e.contains("unknown knob"), "{e}");
        let wide = ChainKnobs::defaults("eq,multiband".parse().unwrap());
        let e = Chain::<f32>::new(&wide, 48_000, 33).unwrap_err().to_string();
        assert!(e.contains("multiband") && e.contains("33"), "{e}");
        Chain::<f32>::new(&wide, 48_000, 32).unwrap();
    }

    /// Concatenated chains renumber their labels and keep each part's knobs in order.
    #[test]
    fn chains_concatenate() {
        let parts: Vec<ChainSpec> = ["hpf,eq", "comp", "eq"].iter().map(|p| p.parse().unwrap()).collect();
        let whole = ChainSpec::concat(&parts).unwrap();
        assert_eq!(whole, "hpf,eq,comp,eq".parse().unwrap());
        assert_eq!(whole.num_knobs(), parts.iter().map(ChainSpec::num_knobs).sum::<usize>());
        let names: Vec<String> = whole.knobs().into_iter().map(|k| k.name).collect();
        assert_eq!(names[parts[0].num_knobs()], "comp.threshold_db");
        assert!(names.last().unwrap().starts_with("eq2."), "{names:?}");
        let specs: Vec<&KnobSpec> = parts.iter().flat_map(ChainSpec::specs).collect();
        assert!(whole.specs().eq(specs), "the parts' knobs, in order");
        assert!(ChainSpec::concat(&[]).is_err());
    }

    /// `L = Σ w·y` for a rendering; its gradient with respect to the output is `w`.
    fn linear_loss(knobs: &ChainKnobs, fs: u32, input: &[Vec<f64>], w: &[Vec<f64>]) -> f64 {
        let views: Vec<&[f64]> = input.iter().map(|c| c.as_slice()).collect();
        let mut tape = ChainTape::default();
        forward(knobs, fs, &views, &mut tape).iter().zip(w).map(|(y, w)| y.iter().zip(w).map(|(a, b)| a * b).sum::<f64>()).sum()
    }

    fn exact(knobs: &ChainKnobs, fs: u32, input: &[Vec<f64>], w: &[Vec<f64>]) -> ChainGrad<f64> {
        let views: Vec<&[f64]> = input.iter().map(|c| c.as_slice()).collect();
        let wv: Vec<&[f64]> = w.iter().map(|c| c.as_slice()).collect();
        let mut tape = ChainTape::default();
        forward(knobs, fs, &views, &mut tape);
        vjp(knobs, fs, &views, &tape, &wv)
    }

    /// Every knob's exact gradient against central differences (stepped knobs: exactly zero),
    /// and the normalised gradient of every continuous knob against differences taken in the
    /// normalised domain.
    fn check_knob_gradients(knobs: &ChainKnobs, fs: u32, channels: usize, seed: u64) {
        let len = 3000;
        let input = program(seed, channels, len, f64::from(fs));
        let w: Vec<Vec<f64>> = (0..channels).map(|c| weights(seed * 31 + c as u64, len)).collect();
        let g = exact(knobs, fs, &input, &w);
        let specs = knobs.chain().knobs();
        let perturbed = |i: usize, x: f64| {
            let mut k = knobs.clone();
            k.values_mut()[i] = x;
            linear_loss(&k, fs, &input, &w)
        };
        let fd: Vec<f64> = (0..specs.len())
            .map(|i| {
                let x = knobs.values()[i];
                if specs[i].is_continuous() { derivative(|d| perturbed(i, x + d), x.abs().max(1.0), g.knobs[i]) } else { 0.0 }
            })
            .collect();
        assert_close(&format!("knobs of {} at {fs} Hz, {channels} ch, {:?}", knobs.chain(), knobs.values()), &g.knobs, &fd, 1e-4);
        let n0 = knobs.to_normalized();
        let gn = g.knobs_normalized(knobs);
        let scale = gn.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, spec) in specs.iter().enumerate().filter(|(_, s)| s.is_continuous()) {
            let fd = derivative(|d| perturbed(i, denorm_unclamped(spec, n0[i] + d)), 1.0, gn[i]);
            let err = if scale == 0.0 { gn[i].abs() } else { (gn[i] - fd).abs() / fd.abs().max(1e-4 * scale) };
            assert!(err < 1e-4, "normalised knob {}: {} vs {fd}", spec.name, gn[i]);
        }
    }

    /// Denormalisation without clamping, so finite differences can step past the range ends.
    fn denorm_unclamped(k: &Knob, n: f64) -> f64 {
        match k.skew {
            crate::fx::Skew::Log => k.min * ((k.max / k.min).ln() * n).exp(),
            _ => k.min + n * (k.max - k.min),
        }
    }

    /// The chain that holds every effect once.
    fn every_effect() -> ChainSpec {
        ChainSpec::new(EffectKind::ALL).unwrap()
    }

    /// Every effect alone, and every effect in one chain (the composition: each effect's
    /// adjoint fed the next one's input gradient).
    fn chains_under_test() -> Vec<ChainSpec> {
        let mut chains: Vec<ChainSpec> = EffectKind::ALL.iter().map(|&k| ChainSpec::new(&[k]).unwrap()).collect();
        chains.push(every_effect());
        chains
    }

    #[test]
    fn knob_gradients_match_finite_differences_at_random_settings() {
        for chain in chains_under_test() {
            for (seed, fs) in [(1, 8_000), (2, 24_000), (3, 44_100), (4, 48_000), (5, 96_000), (6, 192_000)] {
                for trial in 0..2 {
                    let knobs = random_chain_knobs(&chain, seed * 10 + trial);
                    check_knob_gradients(&knobs, fs, 1 + (trial as usize % 2), seed);
                }
            }
        }
    }

    /// Range ends are each effect's own: every effect alone, and the default chain. (Every
    /// effect at its extremes in one chain boosts the signal so far, with EQ gains of ±24 dB at
    /// Q 10, that rounding in the finite differences sets the error, not the adjoint.)
    #[test]
    fn knob_gradients_match_finite_differences_at_range_ends() {
        let mut chains: Vec<ChainSpec> = EffectKind::ALL.iter().map(|&k| ChainSpec::new(&[k]).unwrap()).collect();
        chains.push(ChainSpec::default());
        for chain in chains {
            let comp = chain.stages().iter().find(|s| s.kind == StageKind::Effect(EffectKind::Comp)).map(|s| s.offset);
            let specs = chain.knobs();
            for (seed, fs) in [(11, 16_000), (12, 44_100), (13, 192_000)] {
                for trial in 0..2 {
                    let mut k = corner_chain_knobs(&chain, seed * 10 + trial);
                    // Some range ends are kinks with one-sided derivatives: ratio 1 of the
                    // compressor and the gate (x_L = y_L = 0 at every sample, so the smoother's
                    // branch of every sample is a tie), width 0 (mono, where a linked detector's
                    // max(|L|, |R|) = |M| + |w·S| has a kink in w). Probe each end just inside it
                    // (1e-3 of the normalised range), and the hard knee apart (below).
                    for (x, spec) in k.values_mut().iter_mut().zip(&specs).filter(|(_, s)| s.is_continuous()) {
                        let n = spec.normalize(*x).clamp(1e-3, 1.0 - 1e-3);
                        *x = spec.denormalize(n);
                    }
                    if let Some(comp) = comp {
                        k.values_mut()[comp + comp_index::KNEE_DB] = 3.0;
                    }
                    check_knob_gradients(&k, fs, 2, seed);
                }
            }
        }
        let mut hard = random_chain_knobs(&ChainSpec::default(), 99);
        hard.values_mut()[comp_index::KNEE_DB] = 0.0;
        hard.values_mut()[comp_index::THRESHOLD_DB] = -30.0;
        let len = 3000;
        let input = program(7, 1, len, 48_000.0);
        let w = vec![weights(8, len)];
        let g = exact(&hard, 48_000, &input, &w);
        for i in [comp_index::THRESHOLD_DB, comp_index::RATIO, comp_index::ATTACK_MS, comp_index::RELEASE_MS] {
            let x = hard.values()[i];
            let fd = derivative(
                |d| {
                    let mut k = hard.clone();
                    k.values_mut()[i] += d;
                    linear_loss(&k, 48_000, &input, &w)
                },
                x.abs(),
                g.knobs[i],
            );
            assert!((g.knobs[i] - fd).abs() <= 1e-4 * fd.abs(), "hard knee knob {i}: {} vs {fd}", g.knobs[i]);
        }
    }

    #[test]
    fn input_gradient_matches_finite_differences() {
        for (seed, fs, channels) in [(21, 24_000, 1), (22, 44_100, 2), (23, 8_000, 2)] {
            let len = 2000;
            let knobs = random_chain_knobs(&every_effect(), seed);
            let input = program(seed, channels, len, f64::from(fs));
            let w: Vec<Vec<f64>> = (0..channels).map(|c| weights(seed + 100 * c as u64, len)).collect();
            let g = exact(&knobs, fs, &input, &w);
            for c in 0..channels {
                let picks: Vec<usize> = (0..40).map(|i| (i * 997 + 13 * c) % len).collect();
                let fd: Vec<f64> = picks
                    .iter()
                    .map(|&n| {
                        derivative(
                            |d| {
                                let mut x = input.clone();
                                x[c][n] += d;
                                linear_loss(&knobs, fs, &x, &w)
                            },
                            1.0,
                            g.input[c][n],
                        )
                    })
                    .collect();
                let an: Vec<f64> = picks.iter().map(|&n| g.input[c][n]).collect();
                assert_close(&format!("input grad ch {c} at {fs} Hz"), &an, &fd, 1e-4);
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_block_size() {
        let fs = 44_100;
        let input: Vec<Vec<f32>> =
            program(5, 2, 10_000, f64::from(fs)).into_iter().map(|c| c.into_iter().map(|v| v as f32).collect()).collect();
        for chain in [ChainSpec::default(), every_effect()] {
            let knobs = random_chain_knobs(&chain, 17);
            let views: Vec<&[f32]> = input.iter().map(|c| c.as_slice()).collect();
            let mut tape = ChainTape::default();
            let reference = forward(&knobs, fs, &views, &mut tape).to_vec();
            let mut rendered = input.clone();
            let mut views: Vec<&mut [f32]> = rendered.iter_mut().map(|c| c.as_mut_slice()).collect();
            render(&knobs, fs, &mut views).unwrap();
            assert_eq!(rendered, reference, "{}: render and forward", knobs.chain());
            for block in [1usize, 7, 64, 255, 256, 257, 1000, 4096] {
                let mut chain = Chain::<f32>::new(&knobs, fs, 2).unwrap();
                let latency = chain.latency();
                let mut out = input.clone();
                let len = out[0].len();
                let mut start = 0;
                while start < len {
                    let end = (start + block).min(len);
                    let (l, r) = out.split_at_mut(1);
                    chain.process(&mut [&mut l[0][start..end], &mut r[0][start..end]]);
                    start = end;
                }
                // The stream lags by the latency: its sample n is the aligned render's n − L.
                for (o, r) in out.iter().zip(&reference) {
                    assert_eq!(o[latency..], r[..len - latency], "{} in blocks of {block}", knobs.chain());
                }
            }
        }
    }

    /// Renders `input` scaled by `gain_db` through `knobs` (f64, 48 kHz, from rest).
    fn render_scaled(knobs: &ChainKnobs, input: &[Vec<f64>], gain_db: f64) -> Vec<Vec<f64>> {
        let gain = 10f64.powf(gain_db / 20.0);
        let mut out: Vec<Vec<f64>> = input.iter().map(|c| c.iter().map(|x| gain * x).collect()).collect();
        let mut views: Vec<&mut [f64]> = out.iter_mut().map(|c| c.as_mut_slice()).collect();
        render(knobs, 48_000, &mut views).unwrap();
        out
    }

    fn max_abs_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
        a.iter().flatten().zip(b.iter().flatten()).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    /// What each effect declares of its level knobs holds: with the input G dB louder and those
    /// knobs G dB higher, the output is the same G dB louder (checked against the effect run
    /// on the unscaled input, at random settings); a saturator, which declares none, differs.
    #[test]
    fn level_knobs_make_each_effect_independent_of_its_input_level() {
        let input = program(3, 2, 24_000, 48_000.0);
        for &kind in EffectKind::ALL {
            let chain = ChainSpec::new(&[kind]).unwrap();
            for seed in 0..4 {
                let mut original = random_chain_knobs(&chain, 100 + seed);
                let level_knobs = kind.level_knobs().unwrap_or(&[]);
                let gain_db = -9.0;
                let mut shifted = original.clone();
                for &k in level_knobs {
                    // Keep the shifted knob inside its range.
                    original.values_mut()[k] = original.values()[k].max(kind.knobs()[k].min - gain_db);
                    shifted.values_mut()[k] = original.values()[k] + gain_db;
                }
                let expected: Vec<Vec<f64>> = render_scaled(&original, &input, 0.0)
                    .iter()
                    .map(|c| c.iter().map(|x| x * 10f64.powf(gain_db / 20.0)).collect())
                    .collect();
                let got = render_scaled(&shifted, &input, gain_db);
                let peak = expected.iter().flatten().fold(1e-3, |m: f64, x| m.max(x.abs()));
                let error = max_abs_difference(&got, &expected) / peak;
                if kind.level_knobs().is_some() {
                    assert!(error < 1e-6, "{}: relative error {error:e}", kind.name());
                } else {
                    assert!(error > 1e-3, "{} changes with level but its output scaled exactly", kind.name());
                }
            }
        }
    }

    /// Folding a gain before and a gain after the chain into its knobs renders the same as
    /// scaling around the chain, for chains with their output gain first, in the middle and
    /// last, and says it is not exact when a saturator would hear another level or the chain
    /// has no output gain.
    #[test]
    fn folded_levels_render_what_scaling_around_the_chain_renders() {
        let input = program(4, 2, 24_000, 48_000.0);
        for (text, exact) in [
            ("eq,comp", true),
            ("hpf,eq,comp,limiter", true),
            ("gate,gain,width,multiband,limiter", true),
            ("comp,lpf,gate", true),
            ("saturate,comp", false),
            ("comp,saturate", false),
            ("eq,limiter", false),
        ] {
            let chain: ChainSpec = text.parse().unwrap();
            // Mid-range values, so the shifts below stay inside every range.
            let middle: Vec<f64> = random_chain_knobs(&chain, 7).to_normalized().iter().map(|n| 0.25 + 0.5 * n).collect();
            let knobs = ChainKnobs::from_normalized(chain.clone(), &middle).unwrap();
            let (input_gain_db, output_gain_db) = (6.0, -3.5);
            let expected: Vec<Vec<f64>> = render_scaled(&knobs, &input, input_gain_db)
                .iter()
                .map(|c| c.iter().map(|x| x * 10f64.powf(output_gain_db / 20.0)).collect())
                .collect();
            let (folded, is_exact) = knobs.fold_levels(input_gain_db, output_gain_db);
            assert_eq!(is_exact, exact, "{text}");
            folded.validate().unwrap();
            let error = max_abs_difference(&render_scaled(&folded, &input, 0.0), &expected);
            if exact {
                assert!(error < 1e-7, "{text}: error {error:e}");
            } else {
                assert!(error > 1e-4, "{text}: said inexact but error {error:e}");
            }
        }
        // Out of range: clamped, and said so.
        let (clamped, exact) = ChainKnobs::defaults(ChainSpec::default()).fold_levels(-90.0, 0.0);
        assert!(!exact);
        clamped.validate().unwrap();
    }

    /// Streams `input` through the chain of `before` in blocks of `block` (one cut short at
    /// `at`), switching to `after` at sample `at`.
    fn stream_with_change(before: &ChainKnobs, after: &ChainKnobs, input: &[Vec<f64>], block: usize, at: usize) -> Vec<Vec<f64>> {
        let mut chain = Chain::<f64>::new(before, 48_000, input.len()).unwrap();
        let mut out = input.to_vec();
        let len = out[0].len();
        let mut start = 0;
        while start < len {
            if start == at {
                chain.set_knobs(after).unwrap();
            }
            let end = (start + block).min(len);
            let end = if start < at && end > at { at } else { end };
            let mut views: Vec<&mut [f64]> = out.iter_mut().map(|c| &mut c[start..end]).collect();
            chain.process(&mut views);
            start = end;
        }
        out
    }

    /// A gain stepped from −24 to +24 dB glides: the output is the input times a gain that
    /// moves linearly in dB over 20 ms from the sample after the change (the closed form), and
    /// no sample-to-sample step exceeds the steepest one of the steady +24 dB sine by more than
    /// the glide's own share.
    #[test]
    fn a_gain_step_glides_without_a_click() {
        let fs = 48_000.0;
        let sine: Vec<f64> = (0..9_600).map(|n| 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / fs).sin()).collect();
        let knobs = |db: f64| {
            let mut k = ChainKnobs::defaults("gain".parse().unwrap());
            k.set("gain.gain_db", db).unwrap();
            k
        };
        let at = 2_400;
        let out = stream_with_change(&knobs(-24.0), &knobs(24.0), std::slice::from_ref(&sine), 480, at).remove(0);
        let ramp = (RAMP_MS * 1e-3 * fs) as usize;
        for (n, (&y, &x)) in out.iter().zip(&sine).enumerate() {
            let db = if n < at { -24.0 } else { -24.0 + 48.0 * ((n - at + 1).min(ramp) as f64 / ramp as f64) };
            assert!((y - x * 10f64.powf(db / 20.0)).abs() < 1e-9, "sample {n}: {y} vs {}", x * 10f64.powf(db / 20.0));
        }
        let steepest = |y: &[f64]| y.windows(2).fold(0.0f64, |m, w| m.max((w[1] - w[0]).abs()));
        let steady = steepest(&out[at + ramp..]);
        assert!(steepest(&out) <= steady * 1.06, "a step of {} against the steady {steady}", steepest(&out));
    }

    /// Filters glide too: a bell stepped from −24 to +24 dB on its own frequency and back, and
    /// a low-pass cutoff swept three octaves either way, bend the output (its second
    /// difference) at most twice as much as it bends steadily before or after the change.
    #[test]
    fn filter_changes_glide_without_a_click() {
        let fs = 48_000.0;
        let sine: Vec<f64> = (0..24_000).map(|n| 0.03 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / fs).sin()).collect();
        // A sine's second difference is (2π f/fs)² times its amplitude; a click's far more.
        let bend = |y: &[f64]| y.windows(3).fold(0.0f64, |m, w| m.max((w[2] - 2.0 * w[1] + w[0]).abs()));
        let at = 9_600;
        for (chain, knob, low, high) in [("eq", "eq.band2.gain_db", -24.0, 24.0), ("lpf", "lpf.freq_hz", 500.0, 4000.0)] {
            let knobs = |value: f64| {
                let mut k = ChainKnobs::defaults(chain.parse().unwrap());
                k.set(knob, value).unwrap();
                if chain == "eq" {
                    k.set("eq.band2.freq_hz", 1000.0).unwrap();
                }
                k
            };
            for (before, after) in [(low, high), (high, low)] {
                let out = stream_with_change(&knobs(before), &knobs(after), std::slice::from_ref(&sine), 256, at).remove(0);
                let steady = bend(&out[at - 4_800..at]).max(bend(&out[out.len() - 4_800..]));
                let mut jump = Chain::<f64>::new(&knobs(before), 48_000, 1).unwrap();
                let mut y = sine.clone();
                let (a, b) = y.split_at_mut(at);
                jump.process(&mut [a]);
                jump.set_knobs_now(&knobs(after)).unwrap();
                jump.process(&mut [b]);
                // The check can fail: the same change at once bends the output 4 to 13 times
                // as much (a boost from a quiet bell grows from its small state either way).
                if (chain, before) != ("eq", low) {
                    assert!(bend(&y) > 3.0 * steady, "{chain} {before} -> {after}: the jump bends {} only", bend(&y));
                }
                assert!(bend(&out) <= steady * 2.0, "{chain} {before} -> {after}: a bend of {} against the steady {steady}", bend(&out));
            }
        }
    }

    /// With knobs changed while streaming, the output still does not depend on the block size,
    /// for every effect at once, stereo.
    #[test]
    fn gliding_knobs_do_not_depend_on_the_block_size() {
        let input = program(8, 2, 12_000, 48_000.0);
        let chain = every_effect();
        let (before, after) = (random_chain_knobs(&chain, 21), random_chain_knobs(&chain, 22));
        let reference = stream_with_change(&before, &after, &input, 1, 6_000);
        for block in [7, 64, 1000, 4096] {
            assert_eq!(stream_with_change(&before, &after, &input, block, 6_000), reference, "blocks of {block}");
        }
        assert_ne!(reference, stream_with_change(&before, &before, &input, 1, 6_000));
    }
}
