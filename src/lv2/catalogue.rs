//! The installed LV2 plugins: the lilv world, scanned once per process (it reads every bundle,
//! 3–5 s with a few hundred plugins), and each plugin's description as afx sees it — its audio
//! ports, its control inputs as knobs ([`KnobSpec`]: range, default, skew and unit read from the
//! plugin's data) and its latency port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use livi::{Features, FeaturesBuilder, PortType};

use crate::fx::knob::{Knob, KnobSpec, Skew, StepSize};
pub use crate::fx::plugin::PluginInfo;
use crate::{Error, Result};

/// The longest block a plugin is run on; longer blocks are split.
pub const MAX_BLOCK: usize = 4096;

/// One line of `afx plugins`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PluginEntry {
    pub uri: String,
    pub name: String,
    pub audio_inputs: usize,
    pub audio_outputs: usize,
    pub control_inputs: usize,
}

/// The lilv world and the features every instance shares. lilv's world is not thread-safe, so
/// it lives behind a lock; it is used only to describe and instantiate plugins, never while
/// audio is processed.
pub(super) struct Catalogue {
    pub(super) world: livi::World,
    pub(super) features: Arc<Features>,
    infos: HashMap<String, &'static PluginInfo>,
}

// SAFETY: the world is only ever reached through the `Mutex` in `catalogue()`, one thread at a
// time; lilv allows a world to be used from any thread if calls do not overlap.
unsafe impl Send for Catalogue {}

/// The process's catalogue, scanned on first use.
pub(super) fn catalogue() -> MutexGuard<'static, Catalogue> {
    static CATALOGUE: OnceLock<Mutex<Catalogue>> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| {
            let world = livi::World::new();
            let features = world
                .try_build_features(FeaturesBuilder { min_block_length: 1, max_block_length: MAX_BLOCK })
                .expect("1 ≤ MAX_BLOCK is a valid block range");
            Mutex::new(Catalogue { world, features, infos: HashMap::new() })
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Catalogue {
    /// The description of the plugin `uri`, read on first use.
    pub(super) fn info(&mut self, uri: &str) -> Result<&'static PluginInfo> {
        if let Some(info) = self.infos.get(uri) {
            return Ok(info);
        }
        let plugin = self.plugin(uri)?;
        let info: &'static PluginInfo = Box::leak(Box::new(describe(&self.world, &plugin)?));
        self.infos.insert(uri.to_string(), info);
        Ok(info)
    }

    /// The plugin `uri`, or a clear error when it is not installed.
    pub(super) fn plugin(&self, uri: &str) -> Result<livi::Plugin> {
        self.world.plugin_by_uri(uri).ok_or_else(|| Error::PluginNotFound { uri: uri.to_string() })
    }
}

/// Every installed plugin that afx can host (livi leaves out those needing features it lacks),
/// sorted by URI.
pub fn installed() -> Vec<PluginEntry> {
    let catalogue = catalogue();
    let mut entries: Vec<PluginEntry> = catalogue
        .world
        .iter_plugins()
        .map(|p| {
            let counts = p.port_counts();
            PluginEntry {
                uri: p.uri(),
                name: p.name(),
                audio_inputs: counts.audio_inputs,
                audio_outputs: counts.audio_outputs,
                control_inputs: counts.control_inputs,
            }
        })
        .collect();
    entries.sort_by(|a, b| a.uri.cmp(&b.uri));
    entries
}

/// The description of the installed plugin `uri`.
pub fn plugin_info(uri: &str) -> Result<&'static PluginInfo> {
    catalogue().info(uri)
}

/// The `afx plugins` listing: one line per plugin (URI, audio in → out, knobs, name), or JSON.
pub fn plugin_listing(json: bool) -> String {
    let entries = installed();
    if json {
        return serde_json::to_string_pretty(&entries).expect("plugin entries serialise") + "\n";
    }
    entries
        .iter()
        .map(|e| format!("{}  {} in, {} out, {} controls  {}\n", e.uri, e.audio_inputs, e.audio_outputs, e.control_inputs, e.name))
        .collect()
}

/// `afx plugins URI`: the plugin's knobs (its control inputs with a range, named by symbol).
pub fn plugin_knob_listing(uri: &str, json: bool) -> Result<String> {
    let info = plugin_info(uri)?;
    let knobs: Vec<Knob> = info.knobs.iter().map(|spec| Knob { name: spec.name.to_string(), spec: *spec }).collect();
    Ok(crate::fx::params::knob_table(&knobs, json))
}

const LV2_CORE: &str = "http://lv2plug.in/ns/lv2core#";
const PORT_PROPS: &str = "http://lv2plug.in/ns/ext/port-props#";
const UNITS: &str = "http://lv2plug.in/ns/extensions/units#";
/// A positive range at least this wide (max / min) maps logarithmically whatever the plugin says.
const LOG_SPAN: f64 = 30.0;

/// Reads a plugin's ports into a [`PluginInfo`].
fn describe(world: &livi::World, plugin: &livi::Plugin) -> Result<PluginInfo> {
    let raw = plugin.raw();
    let property = |name: &str| world.raw().new_uri(name);
    let (toggled, integer, enumeration) =
        (property(&format!("{LV2_CORE}toggled")), property(&format!("{LV2_CORE}integer")), property(&format!("{LV2_CORE}enumeration")));
    let logarithmic = property(&format!("{PORT_PROPS}logarithmic"));
    let unit_predicate = property(&format!("{UNITS}unit"));
    let side_chain = property(&format!("{LV2_CORE}isSideChain"));
    let mut audio_ports: Vec<(usize, bool)> = plugin
        .ports_with_type(PortType::AudioInput)
        .map(|p| (p.index.0, raw.port_by_index(p.index.0).is_some_and(|lp| lp.has_property(&side_chain))))
        .collect();
    audio_ports.sort_unstable();
    let mains = audio_ports.iter().filter(|(_, side)| !side).count();
    let mut next_main = 0;
    let input_sources: Vec<usize> = audio_ports
        .iter()
        .enumerate()
        .map(|(i, &(_, side))| {
            if side {
                i % mains.max(1)
            } else {
                next_main += 1;
                next_main - 1
            }
        })
        .collect();
    let counts = plugin.port_counts();
    let mut knobs = Vec::new();
    let mut knob_ports = Vec::new();
    for port in plugin.ports_with_type(PortType::ControlInput) {
        let (Some(min), Some(max)) = (port.min_value, port.max_value) else { continue };
        let (min, max) = (f64::from(min), f64::from(max));
        if min.partial_cmp(&max) != Some(std::cmp::Ordering::Less) {
            continue;
        }
        let lilv_port = raw.port_by_index(port.index.0).expect("a listed port exists");
        let stepped = [&toggled, &integer, &enumeration].iter().any(|p| lilv_port.has_property(p));
        let skew = if stepped && min.fract() == 0.0 && max.fract() == 0.0 {
            Skew::Stepped(StepSize(1))
        } else if min > 0.0 && (lilv_port.has_property(&logarithmic) || max / min >= LOG_SPAN) {
            // A positive range over decades (Calf's linear amplitudes: thresholds 0.001–1,
            // gains 1/64–64) maps logarithmically even unmarked: an even step of a normalised
            // knob is then an even step in dB, not nearly all of it in the top decade.
            Skew::Log
        } else {
            Skew::Linear
        };
        let unit = lilv_port.get(&unit_predicate).and_then(|n| n.as_uri().map(unit_symbol)).unwrap_or("");
        let mut default = f64::from(port.default_value).clamp(min, max);
        if let Skew::Stepped(_) = skew {
            default = default.round();
        }
        knobs.push(KnobSpec::new(leak(port.symbol), unit, (min, max), default, skew, leak(port.name)));
        knob_ports.push(port.index.0);
    }
    if mains == 0 || counts.audio_outputs == 0 {
        return Err(Error::Plugin {
            uri: plugin.uri(),
            reason: format!("has {mains} audio inputs and {} outputs; an effect needs both", counts.audio_outputs),
        });
    }
    Ok(PluginInfo {
        uri: plugin.uri(),
        name: plugin.name(),
        audio_inputs: mains,
        input_sources,
        audio_outputs: counts.audio_outputs,
        knobs,
        knob_ports,
        latency_port: raw.latency_port_index(),
        activation_resets: OnceLock::new(),
        measured_latency: Mutex::new(Vec::new()),
        settle: Mutex::new(Vec::new()),
    })
}

/// afx's spelling of an LV2 unit (`units:db` → `dB`), empty for units it does not show.
fn unit_symbol(uri: &str) -> &'static str {
    match uri.strip_prefix(UNITS) {
        Some("db") => "dB",
        Some("hz") => "Hz",
        Some("khz") => "kHz",
        Some("ms") => "ms",
        Some("s") => "s",
        Some("pc") => "%",
        Some("frame") => "samples",
        Some("oct") => "oct",
        Some("semitone12TET") => "st",
        _ => "",
    }
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}
