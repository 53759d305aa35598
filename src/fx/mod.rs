//! The effects, each one declaration ([`effect::Effect`]) in its own file, listed once in the
//! registry below, and the chain that runs any ordered list of them ([`chain`]), as plain-Rust
//! kernels with hand-written adjoints. Nothing here knows about learning.

#[macro_use]
pub mod effect;

pub mod biquad;
pub mod cascade;
pub mod chain;
pub mod controls;
pub(crate) mod fastmath;
mod jet;
pub mod knob;
pub mod level;
pub mod params;
pub mod plugin;
pub mod track;
pub mod trajectory;

// Every effect: its file and the variant of `EffectKind` each of its effects gets.
registry! {
    mod eq { Eq => EqEffect }
    mod compressor { Comp => CompEffect }
    mod gain { Gain => GainEffect }
    mod filter { Hpf => HpfEffect, Lpf => LpfEffect }
    mod width { Width => WidthEffect }
    mod limiter { Limiter => LimiterEffect }
    mod gate { Gate => GateEffect }
    mod saturate { Saturate => SaturateEffect }
    mod multiband { Multiband => MultibandEffect }
    mod tilt { Tilt => TiltEffect }
}

pub use chain::{Chain, ChainGrad, ChainSpec, ChainTape, check_sample_rate, forward, render, vjp};
pub use controls::{Controls, Selection};
pub use knob::{Knob, KnobSpec, Skew};
pub use params::{ChainKnobs, KNOBS, Knobs, NUM_KNOBS};
pub use track::Track;
pub use trajectory::{Trajectory, TrajectoryGrad};

#[cfg(test)]
pub(crate) mod test_signals;
