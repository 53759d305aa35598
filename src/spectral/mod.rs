//! Short-time Fourier transforms, the multi-resolution STFT loss with its exact gradient, and
//! mel filterbanks.

pub mod loss;
pub mod mel;
pub mod stft;

pub use loss::{MrStftBatch, MrStftConfig, MrStftLoss};
pub use mel::MelFilterbank;
pub use stft::Stft;
