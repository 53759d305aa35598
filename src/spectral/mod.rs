//! Short-time Fourier transforms, the multi-resolution STFT loss with its exact gradient, mel
//! filterbanks, and a style distance that needs no aligned target.

pub mod loss;
pub mod mel;
pub mod stft;
pub mod style;

pub use loss::{MrStftBatch, MrStftConfig, MrStftLoss};
pub use mel::MelFilterbank;
pub use stft::Stft;
pub use style::{StyleDistance, StyleDistanceConfig, StyleStats};
