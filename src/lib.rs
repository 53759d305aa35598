//! afx: neural networks that learn to turn the knobs of real audio effects.
//!
//! The effect chain (parametric EQ, then compressor) lives in [`fx`] as plain Rust kernels with
//! hand-written adjoints; [`grad`] turns rendering into knob gradients (exact, SPSA, finite
//! differences); [`spectral`] holds the multi-resolution STFT loss and its gradient; [`metrics`]
//! the evaluation measures; [`audio`] decoding, encoding and resampling; [`model`] the networks
//! that predict the knobs (the only module that uses burn).

pub mod apply;
pub mod atomic;
pub mod audio;
pub mod baseline;
pub mod bench;
pub mod curves;
pub mod data;
pub mod error;
pub mod eval;
pub mod example;
pub mod fx;
pub mod grad;
#[cfg(feature = "lv2")]
pub mod lv2;
pub mod matching;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod probe;
pub mod progress;
pub mod real;
pub mod real_eval;
pub mod refine;
pub mod simd;
pub mod spectral;
pub mod train;
pub mod transfer;

pub use error::{Error, Result};
pub use real::Real;
