//! Input corruption: what turns a clean half-clip into the input a model must restyle. As in
//! DeepAFx-ST (`data/augmentations.py`), a random EQ and compression, sometimes a downward
//! expander, then peak normalisation to −12 dBFS; here the EQ and compressor are our own chain
//! rather than SoX.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::styles::bypass_compressor;
use super::{PEAK_DBFS, normalize_peak, random_style};
use crate::Result;
use crate::fx::compressor::{FLOOR_DB, LEVEL_EPS, smoothing_coeff};
use crate::fx::params::{KNOBS_PER_SECTION, NUM_EQ_SECTIONS};
use crate::fx::{Knobs, render};

/// Probability that a corruption includes the expander (DeepAFx-ST's `dynamic_range_corruption`).
pub const EXPANDER_PROBABILITY: f64 = 0.1;

/// Probability that a [`InputCorruption::DeepAfxSt`] corruption includes an EQ (DeepAFx-ST's
/// `frequency_corruption`).
pub const DEEPAFX_ST_EQ_PROBABILITY: f64 = 0.75;

/// What a corruption may do to the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum InputCorruption {
    /// A random setting of the whole chain, EQ and compressor (afx's protocol, as its issue
    /// sets it: the compressor is bypassed in a quarter of the draws).
    #[default]
    #[cfg_attr(feature = "cli", value(name = "afx"))]
    EqAndCompressor,
    /// DeepAFx-ST's own: an EQ in three draws of four and no compressor (its input is never
    /// compressed; only its targets are).
    #[cfg_attr(feature = "cli", value(name = "deepafx-st"))]
    DeepAfxSt,
}

/// A downward expander's settings: below the threshold, every dB the level falls becomes
/// `ratio` dB at the output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpanderSettings {
    pub threshold_db: f64,
    pub ratio: f64,
    pub attack_ms: f64,
    pub release_ms: f64,
}

impl ExpanderSettings {
    /// DeepAFx-ST's draw: attack U(1, 51) ms, release = attack + U(0, 200) ms, threshold
    /// −U(10, 30) dB, ratio U(1, 5). (SoX's knee and make-up are left out: the output is
    /// peak-normalised anyway, and a knee changes little on program material.)
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> ExpanderSettings {
        let attack_ms = rng.random_range(1.0..=51.0);
        ExpanderSettings {
            threshold_db: -rng.random_range(10.0..=30.0),
            ratio: rng.random_range(1.0..=5.0),
            attack_ms,
            release_ms: attack_ms + rng.random_range(0.0..=200.0),
        }
    }
}

/// A downward expander in the log domain with a linked detector, in place. It makes training
/// data only, so it is plain and has no adjoint.
///
/// Per frame, `x_G = max(20·log10(max_c |x_c| + 1e-8), −96)` is smoothed by a branching one-pole
/// `v[n] = α·v[n−1] + (1 − α)·x_G[n]`, `α = exp(−ln 9 / (fs·τ))` with the attack time when the
/// level rises and the release time when it falls, starting from −96 dB (closed). Smoothing the
/// level, not the gain, keeps a loud tone's zero crossings from closing the expander. The gain
/// reduction is `(T − v)(R − 1)` dB below the threshold `T` and 0 above it.
pub fn expand(settings: &ExpanderSettings, sample_rate: u32, channels: &mut [&mut [f32]]) {
    let fs = f64::from(sample_rate);
    let (alpha_attack, alpha_release) = (smoothing_coeff(settings.attack_ms, fs), smoothing_coeff(settings.release_ms, fs));
    let frames = channels.first().map_or(0, |c| c.len());
    assert!(channels.iter().all(|c| c.len() == frames), "channels of unequal length");
    let mut level_db = FLOOR_DB;
    for n in 0..frames {
        let peak = channels.iter().fold(0.0f64, |p, c| p.max(f64::from(c[n].abs())));
        let x_g = (20.0 * (peak + LEVEL_EPS).log10()).max(FLOOR_DB);
        let alpha = if x_g > level_db { alpha_attack } else { alpha_release };
        level_db = alpha * level_db + (1.0 - alpha) * x_g;
        let reduction_db = (settings.threshold_db - level_db).max(0.0) * (settings.ratio - 1.0);
        let gain = 10f64.powf(-reduction_db / 20.0) as f32;
        channels.iter_mut().for_each(|c| c[n] *= gain);
    }
}

/// What [`corrupt`] did to a signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Corruption {
    /// The chain setting applied first (a [`random_style`] draw, independent of the target's).
    pub knobs: Knobs,
    /// The expander applied after the chain, if any.
    pub expander: Option<ExpanderSettings>,
}

/// Corrupts a mono signal in place: a random setting of our chain (as `kind` allows), with
/// probability [`EXPANDER_PROBABILITY`] a random downward expander, then peak normalisation to
/// [`PEAK_DBFS`]. Fails only for a sample rate the chain does not support.
pub fn corrupt<R: Rng + ?Sized>(signal: &mut [f32], sample_rate: u32, kind: InputCorruption, rng: &mut R) -> Result<Corruption> {
    let mut knobs = random_style(rng);
    if kind == InputCorruption::DeepAfxSt {
        // A draw's make-up gain is 0 dB, so the bypassed compressor leaves the signal as it is.
        bypass_compressor(&mut knobs);
        if !rng.random_bool(DEEPAFX_ST_EQ_PROBABILITY) {
            (0..NUM_EQ_SECTIONS).for_each(|section| knobs.0[section * KNOBS_PER_SECTION] = 0.0);
        }
    }
    render(&knobs.chain_knobs(), sample_rate, &mut [&mut *signal])?;
    let expander = rng.random_bool(EXPANDER_PROBABILITY).then(|| ExpanderSettings::random(rng));
    if let Some(settings) = &expander {
        expand(settings, sample_rate, &mut [&mut *signal]);
    }
    normalize_peak(&mut [signal], PEAK_DBFS);
    Ok(Corruption { knobs, expander })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const RATE: u32 = 24_000;

    fn rms_db(x: &[f32]) -> f64 {
        let ms = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64;
        10.0 * ms.log10()
    }

    /// A 1 kHz tone at `amplitude` for `seconds`.
    fn tone(amplitude: f32, seconds: f64) -> Vec<f32> {
        let w = std::f64::consts::TAU * 1000.0 / f64::from(RATE);
        (0..(seconds * f64::from(RATE)) as usize).map(|n| amplitude * (w * n as f64).sin() as f32).collect()
    }

    #[test]
    fn expander_lowers_a_quiet_passage_and_leaves_a_loud_one_alone() {
        let settings = ExpanderSettings { threshold_db: -30.0, ratio: 3.0, attack_ms: 5.0, release_ms: 50.0 };
        // 0.5 s at −6 dBFS peak, then 0.5 s at −50 dBFS peak (20 dB below the threshold).
        let mut signal = [tone(0.5, 0.5), tone(0.003_16, 0.5)].concat();
        let original = signal.clone();
        expand(&settings, RATE, &mut [&mut signal]);
        let half = signal.len() / 2;
        let settled = RATE as usize / 20;
        let loud_change_db = rms_db(&signal[settled..half]) - rms_db(&original[settled..half]);
        assert!(loud_change_db.abs() < 0.01, "loud passage changed by {loud_change_db} dB");
        // The level sits about 20 dB below the threshold (sine peaks 3 dB above its RMS, the
        // smoothed level a little below the peaks): a reduction of about (R − 1)·20 = 40 dB.
        let quiet_change_db = rms_db(&signal[half + 4 * settled..]) - rms_db(&original[half + 4 * settled..]);
        assert!((-46.0..-38.0).contains(&quiet_change_db), "quiet passage changed by {quiet_change_db} dB");
    }

    #[test]
    fn expander_with_ratio_one_is_the_identity() {
        let settings = ExpanderSettings { threshold_db: -10.0, ratio: 1.0, attack_ms: 5.0, release_ms: 50.0 };
        let mut signal = tone(0.01, 0.1);
        let original = signal.clone();
        expand(&settings, RATE, &mut [&mut signal]);
        assert_eq!(signal, original);
    }

    #[test]
    fn corruption_is_reproducible_and_peaks_at_minus_12_dbfs() {
        let clean = [tone(0.5, 0.2), tone(0.05, 0.2)].concat();
        let run = |seed| {
            let mut signal = clean.clone();
            let corruption = corrupt(&mut signal, RATE, InputCorruption::default(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            (signal, corruption)
        };
        let (a, corruption) = run(3);
        assert_eq!((a.clone(), corruption), run(3));
        assert_ne!(a, run(4).0);
        let peak_db = 20.0 * f64::from(a.iter().fold(0.0f32, |p, x| p.max(x.abs()))).log10();
        assert!((peak_db - PEAK_DBFS).abs() < 1e-4, "peak {peak_db} dBFS");
        let with_expander = (0..200).filter(|&seed| run(seed).1.expander.is_some()).count();
        assert!((8..=35).contains(&with_expander), "{with_expander} of 200 corruptions expanded");
    }

    /// DeepAFx-ST's corruption never compresses: a loud and a quiet burst of one tone keep
    /// their 20 dB level difference through it (an EQ scales both alike) unless the expander
    /// was drawn, and about a quarter of the draws leave the EQ flat; afx's own corruption
    /// compresses most inputs, which closes the gap.
    #[test]
    fn deepafx_st_corruption_has_no_compressor_and_sometimes_no_eq() {
        let clean = [tone(0.5, 0.4), tone(0.05, 0.4)].concat();
        let half = clean.len() / 2;
        let rms_db_tail = |x: &[f32]| rms_db(&x[x.len() / 2..]);
        let run = |kind, seed| {
            let mut signal = clean.clone();
            let corruption = corrupt(&mut signal, RATE, kind, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            let gap_db = rms_db_tail(&signal[..half]) - rms_db_tail(&signal[half..]);
            (gap_db, corruption)
        };
        let (mut flat, mut plain) = (0, 0);
        for seed in 0..400 {
            let (gap_db, corruption) = run(InputCorruption::DeepAfxSt, seed);
            if corruption.expander.is_none() {
                plain += 1;
                assert!((gap_db - 20.0).abs() < 0.05, "seed {seed}: the bursts are {gap_db:.2} dB apart");
            }
            flat += usize::from((0..NUM_EQ_SECTIONS).all(|s| corruption.knobs.0[s * KNOBS_PER_SECTION] == 0.0));
        }
        assert!(plain > 300, "{plain} of 400 without the expander");
        assert!((70..=130).contains(&flat), "{flat} of 400 corruptions without an EQ");
        let compressed = (0..400).filter(|&seed| {
            let (gap_db, corruption) = run(InputCorruption::EqAndCompressor, seed);
            corruption.expander.is_none() && gap_db < 19.0
        });
        assert!(compressed.count() > 200, "afx's own corruption compresses most inputs");
    }
}
