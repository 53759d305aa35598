//! Training data, made the way DeepAFx-ST makes it but with our own effect chain: audio folders
//! are scanned and split by file ([`source`]), decoded once into memory ([`Corpus`]), and cut into
//! (input, reference, target) pairs ([`pairs`]) whose target style is a named preset
//! ([`styles`]) or a random setting of the chain, and whose input is a randomly corrupted
//! version of the target's content ([`corrupt`](mod@corrupt)).
//!
//! One recording travels like this: file → [`Corpus`] (mono, training rate) → a 2L clip cut by
//! [`PairGenerator::pair`] → halves A and B → `input = corrupt(A)`, `target = style(A)`,
//! `reference = style(B)` → [`Batch`] → [`Loader`] → the training step.
//!
//! [`foreign`] holds processors that are not afx's chain (SoX's effects and designs of its own)
//! and seeded recipes of them, for the styles and corruptions of an evaluation.

pub mod corrupt;
pub mod foreign;
pub mod pairs;
pub mod source;
pub mod styles;
pub mod target;

pub use corrupt::{Corruption, ExpanderSettings, InputCorruption, corrupt, expand};
pub use pairs::{Batch, BatchPlan, ClipOrigin, Loader, Making, Mix, Pair, PairConfig, PairGenerator, StyleChoice, domain_of};
pub use source::{Corpus, CorpusConfig, Recording, Skipped, Split, SplitFractions, scan};
pub use styles::{Draw, Style, random_colour, random_style};
pub use target::TargetChain;

/// Peak level, in dBFS, of every signal the pairs hand out (input, and the louder of reference
/// and target), as in DeepAFx-ST.
pub const PEAK_DBFS: f64 = -12.0;

/// The gain that brings the largest peak among `signals` to `peak_dbfs` (1 when all are silent).
pub fn peak_gain<'a>(signals: impl IntoIterator<Item = &'a [f32]>, peak_dbfs: f64) -> f32 {
    let peak = signals.into_iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()));
    if peak > 0.0 { (10f64.powf(peak_dbfs / 20.0) / f64::from(peak)) as f32 } else { 1.0 }
}

/// Scales all `signals` by one common gain so that the largest peak among them is `peak_dbfs`;
/// silent signals (all zeros) are left alone.
pub fn normalize_peak(signals: &mut [&mut [f32]], peak_dbfs: f64) {
    let gain = peak_gain(signals.iter().map(|s| &**s), peak_dbfs);
    signals.iter_mut().flat_map(|s| s.iter_mut()).for_each(|x| *x *= gain);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_peak_applies_one_gain_to_all_signals() {
        let (mut a, mut b) = (vec![0.1f32, -0.5, 0.2], vec![0.25f32, 0.0]);
        normalize_peak(&mut [&mut a, &mut b], -6.0);
        assert!((a[1] + 10f32.powf(-6.0 / 20.0)).abs() < 1e-6, "the largest peak lands at -6 dBFS");
        assert!((b[0] / a[1] + 0.5).abs() < 1e-6, "relative levels are kept");
        let mut silent = vec![0.0f32; 4];
        normalize_peak(&mut [&mut silent], -12.0);
        assert_eq!(silent, [0.0; 4]);
    }
}

/// Generated audio files for the tests of this module.
#[cfg(test)]
pub(crate) mod test_files {
    use std::path::{Path, PathBuf};

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use crate::audio::{Audio, WavFormat, write_wav};

    /// Writes `audio` as a 32-bit float WAV file at `dir/name`, creating folders; returns the path.
    pub fn write(dir: &Path, name: &str, audio: &Audio) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_wav(&path, audio, WavFormat::F32).unwrap();
        path
    }

    /// `frames` samples of seeded uniform noise with peak 0.3.
    pub fn noise(frames: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..frames).map(|_| rng.random_range(-0.3..0.3)).collect()
    }

    /// Writes `count` mono grooves of `seconds` at `sample_rate` (`crate::example::groove`,
    /// seeds `first_seed..`) as `dir/clipNN.wav`: a small corpus of distinct recordings.
    pub fn write_grooves(dir: &Path, count: u64, seconds: f64, sample_rate: u32, first_seed: u64) {
        for i in 0..count {
            write(dir, &format!("clip{i:02}.wav"), &crate::example::groove(seconds, sample_rate, 1, first_seed + i));
        }
    }

    /// Writes `frames` frames of mono noise at `sample_rate` (see [`noise`]); returns the path.
    pub fn write_noise(dir: &Path, name: &str, sample_rate: u32, frames: usize, seed: u64) -> PathBuf {
        write(dir, name, &Audio { sample_rate, channels: vec![noise(frames, seed)] })
    }
}
