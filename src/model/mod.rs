//! The networks that set the effect chain's knobs; the only part of afx that knows burn.
//!
//! A clip becomes [`Features`] (plain Rust, [`features`]); [`StyleNet`] turns the features of
//! an input and a reference into normalised knobs ([`network`]); [`Trainer`] fits it through
//! gradients the caller computes outside burn ([`trainer`]); [`file`](mod@file) saves and loads it.

pub mod card;
pub mod ctcn;
pub mod features;
pub mod file;
pub mod network;
pub mod probe;
pub mod proxy;
pub mod proxy_trainer;
pub mod trainer;

pub use card::ModelCard;
pub use ctcn::{Ctcn, CtcnConfig, CtcnTrainer};
pub use features::{ANALYSIS_RATE_HZ, FeatureConfig, Features, LogMel};
pub use file::LoadedModel;
pub use network::{ConvSpec, StyleNet, StyleNetConfig};
pub use probe::LinearProbe;
pub use proxy::{Proxy, ProxyChain, ProxyConfig};
pub use proxy_trainer::ProxyTrainer;
pub use trainer::{Trainer, TrainerConfig};

/// A freshly initialised default network (seed 0) setting `chain`, the control row of
/// `afx probe` and `afx eval` (`--model untrained`): what the architecture gives before any
/// training.
pub fn untrained(chain: &crate::fx::ChainSpec) -> LoadedModel {
    let net = StyleNetConfig::default().with_chain(chain.clone()).init(&burn::prelude::Device::flex(), 0);
    LoadedModel { card: ModelCard { untrained: true, ..ModelCard::new() }.upgraded(file::Kind::Style, chain), net }
}
