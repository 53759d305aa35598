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

/// Asserts that `exact` matches `fd` coordinate by coordinate, relative to each entry (and
/// to the vector's scale for entries that are nearly zero).
/// Where the finite differences vanish (an effect that does not act on this signal: a
/// limiter under its ceiling, width on mono), the exact gradient must vanish too.
pub fn assert_close(what: &str, exact: &[f64], fd: &[f64], tol: f64) {
    let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        assert!(exact.iter().all(|a| a.abs() < 1e-12), "{what}: finite differences vanish, exact {exact:?}");
        return;
    }
    for (i, (a, b)) in exact.iter().zip(fd).enumerate() {
        let err = (a - b).abs() / b.abs().max(1e-4 * scale);
        assert!(err <= tol, "{what}: entry {i}: exact {a:e} vs finite difference {b:e} (rel {err:e})");
    }
}

/// The central difference `(f(h) − f(−h)) / 2h` closest to `exact` over a sweep of steps
/// `h = scale·10^−k`, k = 2..=7. Effects are piecewise smooth (compressor branches flip
/// under large steps) and large gains amplify rounding under small ones, so no single step
/// suits every knob; a wrong gradient matches none of them.
pub fn derivative(f: impl Fn(f64) -> f64, scale: f64, exact: f64) -> f64 {
    (2..=7)
        .map(|k| {
            let h = scale * 10f64.powi(-k);
            (f(h) - f(-h)) / (2.0 * h)
        })
        .min_by(|a, b| (a - exact).abs().total_cmp(&(b - exact).abs()))
        .unwrap()
}
