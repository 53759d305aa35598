//! The effect chain: RBJ biquad parametric EQ then a log-domain feed-forward compressor, as
//! plain-Rust kernels with hand-written adjoints. Nothing here knows about learning.

pub mod params;

pub use params::{KNOBS, Knobs, KnobSpec, NUM_KNOBS, Skew};
