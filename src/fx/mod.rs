//! The effects, each one declaration ([`effect::Effect`]) in its own file, and the chain that
//! runs any ordered list of them ([`chain`]), as plain-Rust kernels with hand-written adjoints.
//! Nothing here knows about learning.

pub mod biquad;
pub mod cascade;
pub mod chain;
pub mod compressor;
pub mod effect;
pub mod eq;
pub(crate) mod fastmath;
pub mod filter;
pub mod gain;
pub mod gate;
mod jet;
pub mod knob;
pub mod level;
pub mod limiter;
pub mod params;
pub mod width;

pub use chain::{Chain, ChainGrad, ChainSpec, ChainTape, check_sample_rate, forward, render, vjp};
pub use effect::EffectKind;
pub use knob::{Knob, KnobSpec, Skew};
pub use params::{ChainKnobs, KNOBS, Knobs, NUM_KNOBS};

#[cfg(test)]
pub(crate) mod test_signals;
