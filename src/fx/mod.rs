//! The effect chain: RBJ biquad parametric EQ then a log-domain feed-forward compressor, as
//! plain-Rust kernels with hand-written adjoints. Nothing here knows about learning.

pub mod biquad;
pub mod chain;
pub mod compressor;
pub mod eq;
pub mod level;
pub(crate) mod fastmath;
mod jet;
pub mod params;

pub use chain::{Chain, ChainGrad, ChainSettings, ChainTape, check_sample_rate, forward, render, vjp};
pub use params::{KNOBS, KnobSpec, Knobs, NUM_KNOBS, Skew};

#[cfg(test)]
pub(crate) mod test_signals;
