//! LV2 plugins in the loop (the `lv2` feature): the installed plugins ([`catalogue`]), one
//! plugin hosted as a streaming effect ([`host`]), and a plugin as a black box that the
//! gradient estimators train through ([`PluginFx`]: SPSA and finite differences need only
//! renders).

pub mod bench;
pub mod catalogue;
pub mod host;

use std::sync::Mutex;

pub use catalogue::{MAX_BLOCK, PluginEntry, PluginInfo, installed, plugin_info, plugin_knob_listing, plugin_listing};
pub use host::PluginStream;

use crate::Result;
use crate::grad::{Channels, Render, copy_for_rendering};

/// One plugin at a sample rate as a [`Render`]: normalised knobs (`[0, 1]`, mapped by each
/// knob's range and skew) in, the whole signal rendered from rest with its latency compensated.
/// Instances are pooled (one per concurrent render, reset between renders), so rayon's workers
/// each reuse their own instead of instantiating per example.
pub struct PluginFx {
    info: &'static PluginInfo,
    sample_rate: u32,
    pool: Mutex<Vec<PluginStream>>,
}

impl PluginFx {
    /// The plugin `uri` at `sample_rate`; instantiates it once to surface any error here.
    pub fn new(uri: &str, sample_rate: u32) -> Result<Self> {
        crate::fx::check_sample_rate(sample_rate)?;
        let info = plugin_info(uri)?;
        let first = PluginStream::new(info, sample_rate, 1)?;
        Ok(PluginFx { info, sample_rate, pool: Mutex::new(vec![first]) })
    }

    /// The plugin's description.
    pub fn info(&self) -> &'static PluginInfo {
        self.info
    }

    /// Physical knob values of normalised ones.
    pub fn physical(&self, knobs: &[f32]) -> Vec<f64> {
        self.info.knobs.iter().zip(knobs).map(|(k, &n)| k.denormalize(f64::from(n))).collect()
    }

    /// Renders `channels` in place with physical `knobs` from rest, latency compensated.
    pub fn render_physical(&self, knobs: &[f64], channels: &mut [&mut [f32]]) -> Result<()> {
        let pooled = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let found = pool.iter().position(|s| s.channels() == channels.len());
            found.map(|i| pool.swap_remove(i))
        };
        let mut stream = match pooled {
            Some(s) => s,
            None => PluginStream::new(self.info, self.sample_rate, channels.len())?,
        };
        stream.set(knobs);
        stream.reset()?;
        let result = stream.render(channels);
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(stream);
        result
    }
}

impl Render for PluginFx {
    fn num_knobs(&self) -> usize {
        self.info.knobs.len()
    }

    /// Panics if the plugin fails while rendering (it instantiated and ran in [`PluginFx::new`]).
    fn render(&self, input: &[Vec<f32>], knobs: &[f32], output: &mut Channels) {
        let mut views = copy_for_rendering(input, output);
        if let Err(e) = self.render_physical(&self.physical(knobs), &mut views) {
            panic!("{e}");
        }
    }
}

#[cfg(test)]
mod tests;
