//! Deterministic test signals and knob draws shared by the effect tests.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::chain::ChainSpec;
use super::params::{ChainKnobs, Knobs, NUM_KNOBS};

/// Noise plus two sines under a slow tremolo with loud bursts, so the compressor attacks and
/// releases many times; `channels` channels with different content.
pub fn program(seed: u64, channels: usize, len: usize, sample_rate: f64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..channels)
        .map(|c| {
            let (f1, f2) = (rng.random_range(60.0..400.0), rng.random_range(800.0..3000.0f64).min(0.4 * sample_rate));
            let burst_hz = rng.random_range(4.0..12.0);
            (0..len)
                .map(|n| {
                    let t = n as f64 / sample_rate;
                    let env = 0.05 + 0.9 * (0.5 + 0.5 * (2.0 * std::f64::consts::PI * burst_hz * t + c as f64).sin()).powi(4);
                    let tone = 0.5 * (2.0 * std::f64::consts::PI * f1 * t).sin() + 0.3 * (2.0 * std::f64::consts::PI * f2 * t).sin();
                    env * (tone + 0.2 * rng.random_range(-1.0..1.0))
                })
                .collect()
        })
        .collect()
}

/// Knobs drawn uniformly in the normalised domain.
pub fn random_knobs(seed: u64) -> Knobs {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: Vec<f64> = (0..NUM_KNOBS).map(|_| rng.random_range(0.0..1.0)).collect();
    Knobs::from_normalized(&n)
}

/// A random vector in `[-1, 1]` (weights of a linear test loss).
pub fn weights(seed: u64, len: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Knobs of `chain` drawn uniformly in the normalised domain.
pub fn random_chain_knobs(chain: &ChainSpec, seed: u64) -> ChainKnobs {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: Vec<f64> = (0..chain.num_knobs()).map(|_| rng.random_range(0.0..1.0)).collect();
    ChainKnobs::from_normalized(chain.clone(), &n).expect("one value per knob")
}

/// Knobs of `chain` with every normalised value at one end of its range.
pub fn corner_chain_knobs(chain: &ChainSpec, seed: u64) -> ChainKnobs {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: Vec<f64> = (0..chain.num_knobs()).map(|_| if rng.random_bool(0.5) { 1.0 } else { 0.0 }).collect();
    ChainKnobs::from_normalized(chain.clone(), &n).expect("one value per knob")
}
