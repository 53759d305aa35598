//! What every effect is: one declaration (name, knobs) with two faces, streaming (blocks of any
//! size, state carried across blocks, no allocation) and taped (a whole render recorded for the
//! exact adjoint); and the `registry!` macro that `fx/mod.rs` lists every effect file in.

use std::fmt::Debug;

use super::EffectKind;
use super::knob::KnobSpec;
use super::track::Track;
use crate::Real;

/// An effect's declaration and kernels. The type is a marker; its streaming state and its tape
/// are associated types. Knob values arrive as a slice in physical units, in [`Effect::KNOBS`]
/// order; the kernels know nothing of normalisation or learning.
pub trait Effect {
    /// The name used in `--chain` and as the prefix of its knobs.
    const NAME: &'static str;
    /// One line for `afx params`.
    const DESCRIPTION: &'static str;
    /// The knobs, each declared once.
    const KNOBS: &'static [KnobSpec];
    /// The most channels a streaming instance handles.
    const MAX_CHANNELS: usize = usize::MAX;
    /// How the effect meets a change of its input's level: the knobs (positions in
    /// [`Effect::KNOBS`], in dB) referred to the signal's level, such as thresholds and a
    /// ceiling. With the input `G` dB louder and these knobs `G` dB higher, the output is the
    /// same, `G` dB louder (`[]` for a linear effect). `None` for an effect that no knob setting
    /// makes level-independent (a saturator). What lets a level change around a chain fold into
    /// its knobs ([`crate::fx::ChainKnobs::fold_levels`]).
    const LEVEL_KNOBS: Option<&'static [usize]> = Some(&[]);
    /// A knob (position in [`Effect::KNOBS`]) that adds its value in dB to the output after
    /// everything level-dependent inside the effect: an output gain (a compressor's make-up).
    const OUTPUT_GAIN: Option<usize> = None;
    /// Streaming state for one effect instance.
    type Stream<T: Real>: Clone + Debug + Send;
    /// What [`Effect::adjoint`] needs from [`Effect::forward`] (reused across calls).
    type Tape<T: Real>: Clone + Debug + Default + Send;

    /// A streaming instance at rest for `channels` channels.
    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, channels: usize) -> Self::Stream<T>;
    /// Changes the knobs, keeping the state; allocates nothing.
    fn set<T: Real>(stream: &mut Self::Stream<T>, knobs: &[f64], sample_rate: f64);
    /// Returns the state to rest.
    fn reset<T: Real>(stream: &mut Self::Stream<T>);
    /// Processes one block in place (every channel the same length); allocates nothing.
    fn process<T: Real>(stream: &mut Self::Stream<T>, channels: &mut [&mut [T]]);

    /// Samples by which the streaming output lags the input (a look-ahead), at a sample rate.
    fn latency(_sample_rate: f64) -> usize {
        0
    }

    /// Renders whole signals in place from rest with the knobs following `track`, recording
    /// the tape. The output equals what [`Effect::process`] gives from rest, with
    /// [`Effect::set`] called at every segment's start, for any split into blocks (latency
    /// included; the chain compensates it).
    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut Self::Tape<T>);
    /// The exact vector–Jacobian product of [`Effect::forward`]: `input` holds the effect's
    /// input channels, `grad` holds `∂L/∂output` on entry and `∂L/∂input` on return, and the
    /// knob gradients of every segment (physical units, [`Effect::KNOBS`] order, segment after
    /// segment) are added to `knob_grad`.
    fn adjoint<T: Real>(
        track: Track<'_>,
        sample_rate: f64,
        input: &[&[T]],
        tape: &Self::Tape<T>,
        grad: &mut [&mut [T]],
        knob_grad: &mut [f64],
    );

    /// The magnitude response in dB at `freq_hz`, for an effect that is a linear,
    /// time-invariant filter (or gain) on each channel; `None` otherwise.
    fn response_db(_knobs: &[f64], _sample_rate: f64, _freq_hz: f64) -> Option<f64> {
        None
    }

    /// The output level in dB for a steady input level in dB, for an effect whose gain depends
    /// on level only (once its ballistics have settled) or not at all; `None` otherwise.
    fn static_curve_db(_knobs: &[f64], _level_db: f64) -> Option<f64> {
        None
    }
}

impl std::str::FromStr for EffectKind {
    type Err = crate::Error;

    fn from_str(name: &str) -> crate::Result<Self> {
        EffectKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name)
            .ok_or_else(|| crate::Error::UnknownEffect { name: name.to_string(), known: Self::names() })
    }
}

impl EffectKind {
    /// The names of every effect, comma-separated (for messages).
    pub fn names() -> String {
        EffectKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }
}

/// The registry: from one line per effect file (`mod filter { Hpf => HpfEffect, Lpf => LpfEffect }`)
/// declares the module and builds [`EffectKind`](super::EffectKind) (every effect),
/// [`Stage`](super::Stage) (a streaming instance of any effect) and
/// [`StageTape`](super::StageTape) (a tape of any effect). Invoked once, in `fx/mod.rs`.
macro_rules! registry {
    ($(mod $module:ident { $($variant:ident => $marker:ident),+ $(,)? })*) => {
        $(pub mod $module;)*
        registry!(@build $($($variant => $module::$marker),+),*);
    };
    (@build $($variant:ident => $effect:ty),*) => {
        /// Every effect afx has, in the order `afx params --effects` lists them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EffectKind {
            $($variant),*
        }

        impl EffectKind {
            /// All effects.
            pub const ALL: &'static [EffectKind] = &[$(EffectKind::$variant),*];

            /// The name used in `--chain`.
            pub fn name(self) -> &'static str {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::NAME),*
                }
            }

            /// One line for `afx params`.
            pub fn description(self) -> &'static str {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::DESCRIPTION),*
                }
            }

            /// [`Effect::MAX_CHANNELS`](crate::fx::effect::Effect::MAX_CHANNELS) of this effect.
            pub fn max_channels(self) -> usize {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::MAX_CHANNELS),*
                }
            }

            /// [`Effect::LEVEL_KNOBS`](crate::fx::effect::Effect::LEVEL_KNOBS) of this effect.
            pub fn level_knobs(self) -> Option<&'static [usize]> {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::LEVEL_KNOBS),*
                }
            }

            /// [`Effect::OUTPUT_GAIN`](crate::fx::effect::Effect::OUTPUT_GAIN) of this effect.
            pub fn output_gain(self) -> Option<usize> {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::OUTPUT_GAIN),*
                }
            }

            /// The effect's knob declarations.
            pub fn knobs(self) -> &'static [$crate::fx::knob::KnobSpec] {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::KNOBS),*
                }
            }

            /// [`Effect::latency`](crate::fx::effect::Effect::latency) of this effect.
            pub fn latency(self, sample_rate: f64) -> usize {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::latency(sample_rate)),*
                }
            }

            /// [`Effect::response_db`](crate::fx::effect::Effect::response_db) of this effect.
            pub fn response_db(self, knobs: &[f64], sample_rate: f64, freq_hz: f64) -> Option<f64> {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::response_db(knobs, sample_rate, freq_hz)),*
                }
            }

            /// [`Effect::static_curve_db`](crate::fx::effect::Effect::static_curve_db) of this effect.
            pub fn static_curve_db(self, knobs: &[f64], level_db: f64) -> Option<f64> {
                match self {
                    $(EffectKind::$variant => <$effect as $crate::fx::effect::Effect>::static_curve_db(knobs, level_db)),*
                }
            }
        }

        /// A streaming instance of any effect.
        #[derive(Clone, Debug)]
        pub enum Stage<T: $crate::Real> {
            $($variant(<$effect as $crate::fx::effect::Effect>::Stream<T>)),*
        }

        impl<T: $crate::Real> Stage<T> {
            /// An instance of `kind` at rest.
            pub fn new(kind: EffectKind, knobs: &[f64], sample_rate: f64, channels: usize) -> Self {
                match kind {
                    $(EffectKind::$variant => Stage::$variant(<$effect as $crate::fx::effect::Effect>::stream::<T>(knobs, sample_rate, channels))),*
                }
            }

            /// Changes the knobs, keeping the state.
            pub fn set(&mut self, knobs: &[f64], sample_rate: f64) {
                match self {
                    $(Stage::$variant(s) => <$effect as $crate::fx::effect::Effect>::set::<T>(s, knobs, sample_rate)),*
                }
            }

            /// Returns the state to rest.
            pub fn reset(&mut self) {
                match self {
                    $(Stage::$variant(s) => <$effect as $crate::fx::effect::Effect>::reset::<T>(s)),*
                }
            }

            /// Processes one block in place.
            pub fn process(&mut self, channels: &mut [&mut [T]]) {
                match self {
                    $(Stage::$variant(s) => <$effect as $crate::fx::effect::Effect>::process::<T>(s, channels)),*
                }
            }
        }

        /// The tape of any effect.
        #[derive(Clone, Debug)]
        pub enum StageTape<T: $crate::Real> {
            $($variant(<$effect as $crate::fx::effect::Effect>::Tape<T>)),*
        }

        impl<T: $crate::Real> StageTape<T> {
            /// An empty tape for `kind`.
            pub fn empty(kind: EffectKind) -> Self {
                match kind {
                    $(EffectKind::$variant => StageTape::$variant(Default::default())),*
                }
            }

            /// [`Effect::forward`](crate::fx::effect::Effect::forward) of `kind`, recording into this tape (replaced if it belongs
            /// to another effect).
            pub fn forward(&mut self, kind: EffectKind, track: $crate::fx::Track<'_>, sample_rate: f64, channels: &mut [&mut [T]]) {
                match (kind, &mut *self) {
                    $((EffectKind::$variant, StageTape::$variant(t)) => <$effect as $crate::fx::effect::Effect>::forward(track, sample_rate, channels, t),)*
                    #[allow(unreachable_patterns)]
                    _ => {
                        *self = StageTape::empty(kind);
                        self.forward(kind, track, sample_rate, channels);
                    }
                }
            }

            /// [`Effect::adjoint`](crate::fx::effect::Effect::adjoint) of the effect this tape recorded.
            pub fn adjoint(&self, track: $crate::fx::Track<'_>, sample_rate: f64, input: &[&[T]], grad: &mut [&mut [T]], knob_grad: &mut [f64]) {
                match self {
                    $(StageTape::$variant(t) => <$effect as $crate::fx::effect::Effect>::adjoint(track, sample_rate, input, t, grad, knob_grad)),*
                }
            }
        }
    };
}
