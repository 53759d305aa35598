//! Pair generation as DeepAFx-ST makes it (`data/dataset.py: generate_pair` and
//! `system.py: common_paired_step`), with our chain for every effect: a 2L clip is cut from a
//! recording and split into halves A and B; one target style renders both halves, so the
//! reference (B) and the ground truth (A) share a style but not content, and the input is A
//! corrupted independently. Every pair is a pure function of (split, index, seed), so batches
//! can be made on any thread, in any order, and still be reproducible.

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::foreign::{Domain, ForeignKind, ForeignRecipe};
use super::target::TargetChain;
use super::{
    Corpus, Corruption, InputCorruption, PEAK_DBFS, Recording, Split, Style, corrupt, normalize_peak, peak_gain, random_colour,
    random_style,
};
use crate::audio::Audio;
use crate::fx::{ChainKnobs, Knobs, render};
use crate::{Error, Result};

/// Default half-clip length L in frames: 131072, 5.46 s at 24 kHz (DeepAFx-ST's `train_length`).
pub const DEFAULT_HALF_FRAMES: usize = 131_072;

/// The target style of the pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StyleChoice {
    /// A [`random_style`] setting of the whole chain per pair (the random-style protocol).
    Random,
    /// A fresh draw of one named style per pair.
    Named(Style),
}

impl StyleChoice {
    fn sample<R: Rng + ?Sized>(self, rng: &mut R) -> Knobs {
        match self {
            StyleChoice::Random => random_style(rng),
            StyleChoice::Named(style) => style.sample(rng),
        }
    }
}

/// How pairs are made.
#[derive(Clone, Debug, PartialEq)]
pub struct PairConfig {
    /// L, the length of input and target in frames (and of the reference, by default).
    pub half_frames: usize,
    /// The reference's length R in frames, when not L: clips are then L + R long, and the
    /// reference is the clip's other R frames. DeepAFx-ST's protocol has R = L; a longer
    /// reference measures what a user's longer recording of the style is worth.
    pub reference_frames: Option<usize>,
    pub style: StyleChoice,
    /// What the input's corruption may do.
    pub corruption: InputCorruption,
    /// Both halves of a clip must have a mean energy `Σx²/L` above this (DeepAFx-ST: 1e-5,
    /// −50 dB), measured before normalisation; otherwise another clip is drawn.
    pub min_mean_energy: f64,
    /// Clip draws before a pair gives up with an error (a corpus of near silence).
    pub max_attempts: usize,
    /// Speed augmentation of training clips, in cents (0: none). With probability 0.5 a
    /// training-split clip is played faster or slower by a uniform draw in ±`speed_cents`,
    /// pitch and tempo together as on a tape machine, before it is split. DeepAFx-ST shifts
    /// pitch by up to ±200 cents and tempo by 0.8–1.2 separately, half the time; either way the
    /// network meets more spectra than the recordings hold. Validation and test clips are never
    /// changed, so validation and evaluation follow the protocol.
    pub speed_cents: f64,
    /// Colour augmentation of training clips, in dB (0: none). With probability 0.5 a
    /// training-split clip is coloured as a whole, both halves alike, before it is split, by a
    /// [`random_colour`] of at most ± this many dB per band: the content's long-term spectrum
    /// varies beyond the recordings' own, while the reference and the input still share it, so
    /// a network can learn the style from how the two differ but cannot lean on knowing the
    /// training recordings. Validation and test clips are never coloured.
    pub colour_db: f64,
    /// Mix augmentation of training clips: the probability (0: none) that a training-split
    /// clip has a second training clip mixed into it, from anywhere in the split, at a peak
    /// level 0 to 12 dB below its own, both halves alike, before it is split. Mixtures are
    /// pieces no recording holds, so the network meets content it cannot have learned by heart.
    /// Validation and test clips are never mixed.
    pub mix: f64,
    /// Foreign pairs, made as a user meets them (`None`: afx's own, DeepAFx-ST's protocol):
    /// the corruption and the style are each a random [`ForeignRecipe`] of processors that are
    /// not afx's chain ([`ForeignKind::NATIVE`]: FIR EQ, tilt, RMS compressor, tape, limiter;
    /// SoX is left out, so an evaluation with it meets a processor training never saw), drawn
    /// from the ranges of the recording's [`Domain`] ([`domain_of`]), and with the probability
    /// given here the reference is a passage of *another* recording of the same domain instead
    /// of the clip's other part.
    pub foreign: Option<f64>,
    /// Pairs made by a chain the user names ([`TargetChain`]: emulation, mastering): target
    /// and reference through it, the input as it is; `None` for afx's styles.
    pub target: Option<TargetChain>,
}

impl Default for PairConfig {
    fn default() -> Self {
        PairConfig {
            half_frames: DEFAULT_HALF_FRAMES,
            reference_frames: None,
            style: StyleChoice::Random,
            corruption: InputCorruption::EqAndCompressor,
            min_mean_energy: 1e-5,
            max_attempts: 100,
            speed_cents: 0.0,
            colour_db: 0.0,
            mix: 0.0,
            foreign: None,
            target: None,
        }
    }
}

/// The domain whose foreign recipes a recording's pairs draw ([`PairConfig::foreign`]):
/// speech when a folder on the path of its first file is named `speech` (the layout
/// `scripts/get-training-audio.sh` writes), music otherwise.
pub fn domain_of(recording: &Recording) -> Domain {
    let speech = recording.sources.first().is_some_and(|path| path.parent().is_some_and(|p| p.iter().any(|c| c == "speech")));
    if speech { Domain::Speech } else { Domain::Music }
}

impl PairConfig {
    /// R, the reference's length in frames.
    pub fn reference_frames(&self) -> usize {
        self.reference_frames.unwrap_or(self.half_frames)
    }

    /// L + R, the length of the clips the pairs are cut from.
    pub fn clip_frames(&self) -> usize {
        self.half_frames + self.reference_frames()
    }
}

/// Where a pair's audio came from in its split of the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipOrigin {
    /// Index into [`Corpus::recordings`] of the split.
    pub recording: usize,
    /// First frame of half A (input and target).
    pub input_start: usize,
    /// Index of the recording the reference comes from: `recording`, unless a foreign pair
    /// took it from another ([`PairConfig::foreign`]).
    pub reference_recording: usize,
    /// First frame of half B (reference), in `reference_recording`.
    pub reference_start: usize,
    /// The rate the recording's frames were played at to make the clip: the corpus's own rate,
    /// or, after a speed change ([`PairConfig::speed_cents`]), that rate times the speed. The
    /// starts are then recording frames rounded to the nearest.
    pub played_at_hz: u32,
}

/// A second clip mixed into a training clip ([`PairConfig::mix`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// Index into [`Corpus::recordings`] of the split.
    pub recording: usize,
    /// Its first frame.
    pub start: usize,
    /// Its peak relative to the clip's own, in dB (−12 to 0), before the sum is normalised.
    pub gain_db: f64,
}

/// One training example: mono, at the corpus rate; input and target
/// [`PairConfig::half_frames`] long, the reference [`PairConfig::reference_frames`].
///
/// Levels: the clip (2L, or L + R) is first peak-normalised to −12 dBFS as a whole. `input` is
/// `corrupt(A)` peak-normalised on its own to −12 dBFS. `target = style(A)` and
/// `reference = style(B)` are scaled by one common gain that brings the louder of the two to
/// −12 dBFS, so their relative level is the style's: the reference tells how loud the target
/// is, and the chain's make-up gain (±24 dB) can bring an output to the target's level.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub input: Vec<f32>,
    pub reference: Vec<f32>,
    pub target: Vec<f32>,
    /// The target style and the corruption.
    pub making: Making,
    /// The colour rendered on the whole clip before it was split ([`PairConfig::colour_db`]).
    pub colour: Option<Knobs>,
    /// The clip mixed into it before that ([`PairConfig::mix`]).
    pub mix: Option<Mix>,
    pub origin: ClipOrigin,
}

/// What made a pair's target, reference and input.
// The afx variant holds two knob arrays inline; a pair also holds three clips of audio, so the
// variants' size difference is noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Making {
    /// afx's chain (DeepAFx-ST's protocol).
    Afx {
        /// The target style's knobs, as rendered on the −12 dBFS clip halves. They are not the
        /// knobs that map `input` to `target` (the corruption lies in between).
        style: Knobs,
        /// What was done to A to make `input`.
        corruption: Corruption,
    },
    /// Foreign processors ([`PairConfig::foreign`]), run on the −12 dBFS parts.
    Foreign { style: ForeignRecipe, corruption: ForeignRecipe },
    /// A chain the user named ([`PairConfig::target`]) with these settings, run on the
    /// −12 dBFS parts; the input is the part as it is.
    Chain { knobs: ChainKnobs },
}

impl Pair {
    /// The style's knobs of a pair made with afx's chain; `None` for a foreign pair.
    pub fn afx_style(&self) -> Option<&Knobs> {
        match &self.making {
            Making::Afx { style, .. } => Some(style),
            Making::Foreign { .. } | Making::Chain { .. } => None,
        }
    }
}

/// Makes pairs from a corpus.
#[derive(Debug)]
pub struct PairGenerator {
    corpus: Corpus,
    config: PairConfig,
    /// Per split, per recording: the running total of clip start positions (`len − (L + R) + 1`
    /// each, 0 for recordings shorter than L + R), so that one uniform draw picks a recording in
    /// proportion to its length and a start inside it.
    cumulative_starts: [Vec<u64>; 3],
    /// Per split, per recording: its [`domain_of`].
    domains: [Vec<Domain>; 3],
    /// The target chain's settings (draws centre on them), with [`PairConfig::target`].
    target_settings: Option<ChainKnobs>,
}

impl PairGenerator {
    /// A generator over `corpus`; recordings shorter than L + R are never drawn.
    pub fn new(corpus: Corpus, config: PairConfig) -> Result<PairGenerator> {
        if config.half_frames == 0 || config.reference_frames() == 0 {
            return Err(Error::BadConfig { what: "pair", reason: "input and reference need lengths of at least one frame".into() });
        }
        let clip = config.clip_frames();
        let cumulative_starts = Split::ALL.map(|split| {
            corpus
                .recordings(split)
                .iter()
                .scan(0u64, |total, r| {
                    *total += (r.samples.len() + 1).saturating_sub(clip) as u64;
                    Some(*total)
                })
                .collect()
        });
        let domains = Split::ALL.map(|split| corpus.recordings(split).iter().map(domain_of).collect());
        let target_settings = config.target.as_ref().map(TargetChain::settings).transpose()?;
        Ok(PairGenerator { corpus, config, cumulative_starts, domains, target_settings })
    }

    /// The corpus the pairs come from.
    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// How the pairs are made.
    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    /// Pair number `index` of `split` for `seed`: the same (split, index, seed) always gives the
    /// same pair. Its random numbers are stream `index` of ChaCha8 seeded with `seed` mixed with
    /// the split.
    ///
    /// Steps: draw a clip of L + R frames (every start position of the split equally likely)
    /// until both parts pass the energy test; peak-normalise it; split it into A (L frames)
    /// and B (R frames), with probability 0.5 B first (as DeepAFx-ST, so the reference comes
    /// as often after the input as before); draw the style and render it on both parts;
    /// corrupt A into the input. With [`PairConfig::speed_cents`], a training clip is first
    /// played at another speed half the time (in place of DeepAFx-ST's pitch and tempo
    /// augmentation), with [`PairConfig::mix`] has a second clip mixed in, and with
    /// [`PairConfig::colour_db`] is coloured half the time. DeepAFx-ST's 50 ms fades are not
    /// done.
    pub fn pair(&self, split: Split, index: u64, seed: u64) -> Result<Pair> {
        self.pair_with_style(split, index, seed, self.config.style)
    }

    /// [`PairGenerator::pair`] with the target style drawn from `style` instead of the
    /// configured choice (evaluation cycles through the named styles on one corpus).
    pub fn pair_with_style(&self, split: Split, index: u64, seed: u64, style: StyleChoice) -> Result<Pair> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (split.index() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rng.set_stream(index);
        let (half, reference_frames) = (self.config.half_frames, self.config.reference_frames());
        let (recording, start) = self.draw_clip(split, &mut rng)?;
        let sample_rate = self.corpus.sample_rate();
        let samples = &self.corpus.recordings(split)[recording].samples;
        let changed = match self.speed_change(split, &mut rng) {
            Some(rate) => self.played_at(samples, start, rate)?.map(|(clip, first)| (clip, first, rate)),
            None => None,
        };
        let (mut clip, start, played_at_hz) =
            changed.unwrap_or_else(|| (samples[start..start + half + reference_frames].to_vec(), start, sample_rate));
        let mix = self.mix(split, &mut rng)?;
        if let Some(m) = &mix {
            let other = &self.corpus.recordings(split)[m.recording].samples[m.start..m.start + clip.len()];
            // Brings the other clip's peak to `gain_db` relative to this clip's peak.
            let gain = peak_gain([other], m.gain_db) / peak_gain([&clip[..]], 0.0);
            clip.iter_mut().zip(other).for_each(|(x, y)| *x += gain * y);
        }
        let colour = self.colour(split, &mut rng);
        if let Some(knobs) = &colour {
            render(&knobs.chain_knobs(), sample_rate, &mut [&mut clip])?;
        }
        normalize_peak(&mut [&mut clip], PEAK_DBFS);
        let swap = rng.random_bool(0.5);
        let (a, b) = if swap {
            let (first, second) = clip.split_at(reference_frames);
            (second, first)
        } else {
            clip.split_at(half)
        };
        let source_frames = |clip_frames: usize| (clip_frames as f64 * f64::from(played_at_hz) / f64::from(sample_rate)).round() as usize;
        let mut origin = ClipOrigin {
            recording,
            input_start: start + source_frames(if swap { reference_frames } else { 0 }),
            reference_recording: recording,
            reference_start: start + source_frames(if swap { 0 } else { half }),
            played_at_hz,
        };

        if let (Some(target), Some(settings)) = (&self.config.target, &self.target_settings) {
            let knobs = target.sample(settings, &mut rng);
            let (mut target, mut reference) = (a.to_vec(), b.to_vec());
            render(&knobs, sample_rate, &mut [&mut target])?;
            render(&knobs, sample_rate, &mut [&mut reference])?;
            normalize_peak(&mut [&mut target, &mut reference], PEAK_DBFS);
            return Ok(Pair { input: a.to_vec(), reference, target, making: Making::Chain { knobs }, colour, mix, origin });
        }
        if let Some(other) = self.config.foreign {
            let domain = self.domains[split.index()][recording];
            let elsewhere =
                if rng.random_bool(other.clamp(0.0, 1.0)) { self.draw_other(split, recording, domain, &mut rng)? } else { None };
            let b = match elsewhere {
                Some((other_recording, other_start)) => {
                    origin.reference_recording = other_recording;
                    origin.reference_start = other_start;
                    let mut part = self.corpus.recordings(split)[other_recording].samples[other_start..][..reference_frames].to_vec();
                    normalize_peak(&mut [&mut part], PEAK_DBFS);
                    part
                }
                None => b.to_vec(),
            };
            let style = ForeignRecipe::random_from(&mut rng, domain, &ForeignKind::NATIVE);
            let corruption = ForeignRecipe::random_from(&mut rng, domain, &ForeignKind::NATIVE);
            let (mut target, mut reference) =
                (style.apply(&[a.to_vec()], sample_rate)?.remove(0), style.apply(&[b], sample_rate)?.remove(0));
            normalize_peak(&mut [&mut target, &mut reference], PEAK_DBFS);
            let mut input = corruption.apply(&[a.to_vec()], sample_rate)?.remove(0);
            normalize_peak(&mut [&mut input], PEAK_DBFS);
            let making = Making::Foreign { style, corruption };
            return Ok(Pair { input, reference, target, making, colour, mix, origin });
        }

        let style = style.sample(&mut rng);
        let (mut target, mut reference) = (a.to_vec(), b.to_vec());
        render(&style.chain_knobs(), sample_rate, &mut [&mut target])?;
        render(&style.chain_knobs(), sample_rate, &mut [&mut reference])?;
        normalize_peak(&mut [&mut target, &mut reference], PEAK_DBFS);

        let mut input = a.to_vec();
        let corruption = corrupt(&mut input, sample_rate, self.config.corruption, &mut rng)?;
        Ok(Pair { input, reference, target, making: Making::Afx { style, corruption }, colour, mix, origin })
    }

    /// A reference passage from a recording of `split` other than `recording`, of the same
    /// `domain`: (recording, start) of R frames that pass the energy test, drawn as clips are
    /// (every start equally likely); `None` when [`PairConfig::max_attempts`] draws find none
    /// (a split with one recording of the domain), and the pair keeps its own other part.
    fn draw_other(&self, split: Split, recording: usize, domain: Domain, rng: &mut ChaCha8Rng) -> Result<Option<(usize, usize)>> {
        for _ in 0..self.config.max_attempts {
            let (other, start) = self.draw_clip(split, rng)?;
            if other != recording && self.domains[split.index()][other] == domain {
                return Ok(Some((other, start)));
            }
        }
        Ok(None)
    }

    /// Clip number `index` of `split` for `seed`: L + R frames whose halves both pass the
    /// energy test, peak-normalised to −12 dBFS (the neural proxies train on these).
    pub fn clip(&self, split: Split, index: u64, seed: u64) -> Result<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (split.index() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rng.set_stream(index);
        let (recording, start) = self.draw_clip(split, &mut rng)?;
        let mut clip = self.corpus.recordings(split)[recording].samples[start..start + self.config.clip_frames()].to_vec();
        normalize_peak(&mut [&mut clip], PEAK_DBFS);
        Ok(clip)
    }

    /// Whether this training pair's clip is played at another speed, and if so the rate, in Hz,
    /// its recording's frames are played at: the corpus rate times `2^(c/1200)`, `c` uniform
    /// in ±[`PairConfig::speed_cents`], rounded to 100 Hz (so the resampler's FFTs stay short).
    /// Draws nothing without the augmentation, so pairs stay those of earlier versions.
    fn speed_change(&self, split: Split, rng: &mut ChaCha8Rng) -> Option<u32> {
        let cents = self.config.speed_cents;
        if split != Split::Train || cents <= 0.0 || !rng.random_bool(0.5) {
            return None;
        }
        let speed = (rng.random_range(-cents..=cents) / 1200.0).exp2();
        let rate = (f64::from(self.corpus.sample_rate()) * speed / 100.0).round() as u32 * 100;
        (rate != self.corpus.sample_rate()).then_some(rate)
    }

    /// The [`random_colour`] of this training pair's clip, if it is coloured
    /// ([`PairConfig::colour_db`]). Draws nothing without the augmentation.
    fn colour(&self, split: Split, rng: &mut ChaCha8Rng) -> Option<Knobs> {
        let max_db = self.config.colour_db;
        (split == Split::Train && max_db > 0.0 && rng.random_bool(0.5)).then(|| random_colour(rng, max_db))
    }

    /// The clip mixed into this training pair's clip, if any ([`PairConfig::mix`]): drawn as
    /// any clip is, at a level uniform in −12 to 0 dB. Draws nothing without the augmentation.
    fn mix(&self, split: Split, rng: &mut ChaCha8Rng) -> Result<Option<Mix>> {
        let probability = self.config.mix;
        if split != Split::Train || probability <= 0.0 || !rng.random_bool(probability) {
            return Ok(None);
        }
        let (recording, start) = self.draw_clip(split, rng)?;
        Ok(Some(Mix { recording, start, gain_db: rng.random_range(-12.0..=0.0) }))
    }

    /// The L + R clip heard when `samples`, from about `start`, are played at `rate` Hz and
    /// resampled to the corpus rate (rubato; a margin each side keeps the resampler's edges
    /// out of the clip), with its first source frame. `None` (keep the clip as drawn) when the
    /// recording is too short for it or a part of the changed clip fails the energy test.
    fn played_at(&self, samples: &[f32], start: usize, rate: u32) -> Result<Option<(Vec<f32>, usize)>> {
        const MARGIN: usize = 1024;
        let (corpus_rate, clip_frames) = (self.corpus.sample_rate(), self.config.clip_frames());
        let needed = (clip_frames as f64 * f64::from(rate) / f64::from(corpus_rate)).ceil() as usize + 2 * MARGIN;
        if needed > samples.len() {
            return Ok(None);
        }
        // Centred on the drawn clip, moved inside the recording where needed.
        let centre = start + clip_frames / 2;
        let first = centre.saturating_sub(needed / 2).min(samples.len() - needed);
        let played = Audio { sample_rate: rate, channels: vec![samples[first..first + needed].to_vec()] };
        let mut clip = crate::audio::resample(&played, corpus_rate)?.channels.remove(0);
        let skip = (MARGIN as f64 * f64::from(corpus_rate) / f64::from(rate)).round() as usize;
        clip.drain(..skip);
        clip.truncate(clip_frames);
        assert_eq!(clip.len(), clip_frames, "the resampled segment covers the clip and its margin");
        Ok(self.passes_energy_test(&clip).then_some((clip, first + MARGIN)))
    }

    /// Whether both parts of an L + R clip have a mean energy above
    /// [`PairConfig::min_mean_energy`] in either order (input first or reference first).
    fn passes_energy_test(&self, clip: &[f32]) -> bool {
        let (half, reference_frames) = (self.config.half_frames, self.config.reference_frames());
        let loud = |part: &[f32]| mean_energy(part) > self.config.min_mean_energy;
        let (first, second) = clip.split_at(half);
        let (before, after) = clip.split_at(reference_frames);
        // With R = L the two orders split the clip alike.
        loud(first) && loud(second) && (half == reference_frames || (loud(before) && loud(after)))
    }

    /// Draws (recording, start) of an L + R clip whose halves both pass the energy test in
    /// either order (input first or reference first).
    fn draw_clip(&self, split: Split, rng: &mut ChaCha8Rng) -> Result<(usize, usize)> {
        let (half, reference_frames) = (self.config.half_frames, self.config.reference_frames());
        let cumulative = &self.cumulative_starts[split.index()];
        let total = cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return Err(Error::NoClips {
                reason: format!(
                    "the {split} split has no recording of at least {half} + {reference_frames} frames ({} recordings)",
                    cumulative.len()
                ),
            });
        }
        for _ in 0..self.config.max_attempts {
            let position = rng.random_range(0..total);
            let recording = cumulative.partition_point(|&end| end <= position);
            let first_position = recording.checked_sub(1).map_or(0, |r| cumulative[r]);
            let start = (position - first_position) as usize;
            let clip = &self.corpus.recordings(split)[recording].samples[start..start + half + reference_frames];
            if self.passes_energy_test(clip) {
                return Ok((recording, start));
            }
        }
        Err(Error::NoClips {
            reason: format!(
                "the {split} split gave no clip with both halves above mean energy {} in {} draws",
                self.config.min_mean_energy, self.config.max_attempts
            ),
        })
    }

    /// Batch number `index` of `plan`: pairs `index·B .. (index+1)·B`, made in parallel (rayon).
    pub fn batch(&self, plan: &BatchPlan, index: u64) -> Result<Batch> {
        let first = index * plan.batch_size as u64;
        let pairs = (first..first + plan.batch_size as u64)
            .into_par_iter()
            .map(|i| self.pair(plan.split, i, plan.seed))
            .collect::<Result<Vec<_>>>()?;
        Ok(Batch { index, pairs })
    }
}

/// `Σ x² / N`: DeepAFx-ST's test for silent clips.
fn mean_energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64
}

/// Which batches to make: batch `b` holds pairs `b·batch_size .. (b+1)·batch_size` of `split`
/// for `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    pub split: Split,
    pub batch_size: usize,
    pub seed: u64,
}

/// B pairs, in index order.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The batch's number in its plan.
    pub index: u64,
    pub pairs: Vec<Pair>,
}

/// Makes batches on a background thread while the training step runs, keeping a few ready in
/// a bounded channel. Batches arrive in index order and each is a pure function of its plan and
/// index, so what a consumer sees does not depend on timing. Dropping the loader stops the
/// thread after the batch it is making.
#[derive(Debug)]
pub struct Loader {
    batches: Option<Receiver<Result<Batch>>>,
    worker: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts making batches `batches` of `plan` (e.g. `0..steps`), holding at most `prefetch`
    /// finished batches. The first error ends the sequence after it is delivered.
    pub fn spawn(generator: Arc<PairGenerator>, plan: BatchPlan, batches: Range<u64>, prefetch: usize) -> Result<Loader> {
        let (sender, receiver) = sync_channel(prefetch);
        let worker = std::thread::Builder::new().name("afx-data-loader".into()).spawn(move || {
            for index in batches {
                let batch = generator.batch(&plan, index);
                let failed = batch.is_err();
                if sender.send(batch).is_err() || failed {
                    return;
                }
            }
        })?;
        Ok(Loader { batches: Some(receiver), worker: Some(worker) })
    }

    /// Closes the channel and waits for the thread; a panic on the thread is resumed here, so a
    /// failure never looks like the end of the sequence.
    fn finish(&mut self) {
        self.batches.take();
        if let Some(worker) = self.worker.take()
            && let Err(panic) = worker.join()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let received = self.batches.as_ref()?.recv();
        if received.is_err() {
            self.finish();
        }
        received.ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audio::Audio;
    use crate::data::test_files::{noise, write, write_noise};
    use crate::data::{CorpusConfig, SplitFractions, expand, scan};
    use crate::fx::params::knob_index;

    const RATE: u32 = 24_000;
    const HALF: usize = 2048;

    /// A generator over the WAV files written by `make_files`, all in the training split.
    fn make_generator(make_files: impl FnOnce(&std::path::Path), config: PairConfig) -> PairGenerator {
        let dir = tempfile::tempdir().unwrap();
        make_files(dir.path());
        let corpus_config =
            CorpusConfig { fractions: SplitFractions { validation: 0.0, test: 0.0 }, join_shorter_than: 0, ..CorpusConfig::default() };
        let corpus = Corpus::load(&scan(&[dir.path().to_path_buf()]).unwrap(), &corpus_config).unwrap();
        // The files are deleted when `dir` drops on return: pairs come from the decoded copies.
        PairGenerator::new(corpus, config).unwrap()
    }

    fn noise_files(dir: &std::path::Path) {
        for i in 0..4 {
            write_noise(dir, &format!("{i}.wav"), RATE, 20_000, i);
        }
    }

    fn config(style: StyleChoice) -> PairConfig {
        PairConfig { half_frames: HALF, style, ..PairConfig::default() }
    }

    /// The largest absolute sample value.
    fn peak(x: &[f32]) -> f32 {
        x.iter().fold(0.0f32, |p, v| p.max(v.abs()))
    }

    fn peak_db(signals: &[&[f32]]) -> f64 {
        20.0 * f64::from(signals.iter().map(|s| peak(s)).fold(0.0f32, f32::max)).log10()
    }

    /// An augmentation's draw for validation and test clips: none, and nothing taken from the
    /// random stream (so those pairs stay what they were before the augmentation existed).
    fn assert_no_draw_outside_training<T: std::fmt::Debug>(draw: impl Fn(Split, &mut ChaCha8Rng) -> Option<T>) {
        for split in [Split::Validation, Split::Test] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            assert!(draw(split, &mut rng).is_none(), "{split} augmented");
            assert_eq!(rng.random::<u64>(), ChaCha8Rng::seed_from_u64(3).random::<u64>(), "{split} drew");
        }
    }

    #[test]
    fn pairs_are_reproducible_from_the_seed_and_differ_across_seeds() {
        let generator = make_generator(noise_files, config(StyleChoice::Random));
        let pair = generator.pair(Split::Train, 5, 1).unwrap();
        assert_eq!(pair, generator.pair(Split::Train, 5, 1).unwrap());
        assert_ne!(pair.input, generator.pair(Split::Train, 5, 2).unwrap().input);
        assert_ne!(pair.making, generator.pair(Split::Train, 6, 1).unwrap().making);
        assert!([&pair.input, &pair.reference, &pair.target].iter().all(|s| s.len() == HALF));
        assert!((peak_db(&[&pair.input]) - PEAK_DBFS).abs() < 1e-4);
        assert!((peak_db(&[&pair.reference, &pair.target]) - PEAK_DBFS).abs() < 1e-4);
        assert!(generator.pair(Split::Validation, 0, 1).unwrap_err().to_string().contains("validation split"));
    }

    /// Rebuilds a pair from its origin and knobs, independently of [`PairGenerator::pair`]:
    /// the clip at −12 dBFS peak, its two halves rendered with the style and matched to the
    /// target and reference by one least-squares gain, and the input as the corruption redone.
    fn check_rebuilt(generator: &PairGenerator, pair: &Pair) {
        let Making::Afx { style, corruption } = &pair.making else { panic!("not one of afx's pairs") };
        let samples = &generator.corpus().recordings(Split::Train)[pair.origin.recording].samples;
        let (length, reference_length) = (generator.config().half_frames, generator.config().reference_frames());
        assert_eq!((pair.input.len(), pair.target.len(), pair.reference.len()), (length, length, reference_length));
        let (input_start, reference_start) = (pair.origin.input_start, pair.origin.reference_start);
        let start = input_start.min(reference_start);
        let gap = if input_start < reference_start { length } else { reference_length };
        assert_eq!(input_start.abs_diff(reference_start), gap, "the halves are not adjacent");
        let mut clip = samples[start..start + length + reference_length].to_vec();
        if let Some(mix) = &pair.mix {
            let other = &generator.corpus().recordings(Split::Train)[mix.recording].samples[mix.start..][..clip.len()];
            let gain = peak(&clip) / peak(other) * 10f32.powf(mix.gain_db as f32 / 20.0);
            clip = clip.iter().zip(other).map(|(x, y)| x + gain * y).collect();
        }
        if let Some(colour) = &pair.colour {
            render(&colour.chain_knobs(), RATE, &mut [&mut clip]).unwrap();
        }
        let clip_gain = 10f32.powf(-12.0 / 20.0) / peak(&clip);
        let part = |first: usize, frames: usize| -> Vec<f32> {
            clip[first - start..first - start + frames].iter().map(|x| x * clip_gain).collect()
        };
        let (a, b) = (part(input_start, length), part(reference_start, reference_length));
        let styled = |x: &[f32]| {
            let mut y = x.to_vec();
            render(&style.chain_knobs(), RATE, &mut [&mut y]).unwrap();
            y
        };
        let rendered = [styled(&a), styled(&b)].concat();
        let wanted = [pair.target.clone(), pair.reference.clone()].concat();
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>();
        let gain = dot(&rendered, &wanted) / dot(&rendered, &rendered);
        let residual = rendered.iter().zip(&wanted).map(|(r, w)| (gain * f64::from(*r) - f64::from(*w)).powi(2)).sum::<f64>();
        assert!(residual <= 1e-10 * dot(&wanted, &wanted), "target and reference are not style(A), style(B) at one gain");

        let mut input = a;
        render(&corruption.knobs.chain_knobs(), RATE, &mut [&mut input]).unwrap();
        if let Some(settings) = &corruption.expander {
            expand(settings, RATE, &mut [&mut input]);
        }
        let scale = 10f32.powf(-12.0 / 20.0) / peak(&input);
        let error = input.iter().zip(&pair.input).fold(0.0f32, |m, (x, y)| m.max((x * scale - y).abs()));
        assert!(error < 1e-6, "input is not the corrupted A: {error}");
    }

    #[test]
    fn target_and_reference_are_one_style_rendered_on_the_two_halves() {
        for style in [StyleChoice::Random, StyleChoice::Named(Style::Telephone), StyleChoice::Named(Style::Warm)] {
            let generator = make_generator(noise_files, config(style));
            let pairs: Vec<Pair> = (0..12).map(|i| generator.pair(Split::Train, i, 3).unwrap()).collect();
            pairs.iter().for_each(|pair| check_rebuilt(&generator, pair));
            assert!(pairs.iter().any(|p| p.origin.input_start > p.origin.reference_start), "halves swap");
            assert!(pairs.iter().any(|p| p.origin.input_start < p.origin.reference_start), "halves swap");
            if let StyleChoice::Named(Style::Telephone) = style {
                let band1_gain_db = knob_index("eq.band1.gain_db").unwrap();
                assert!(pairs.iter().all(|p| (12.0..=16.0).contains(&p.afx_style().unwrap().0[band1_gain_db])));
            }
        }
        // A reference three times the input's length: the clip's other 3L frames, either side.
        let longer = PairConfig { reference_frames: Some(3 * HALF), ..config(StyleChoice::Random) };
        let generator = make_generator(noise_files, longer);
        let pairs: Vec<Pair> = (0..12).map(|i| generator.pair(Split::Train, i, 3).unwrap()).collect();
        pairs.iter().for_each(|pair| check_rebuilt(&generator, pair));
        assert!(pairs.iter().any(|p| p.origin.input_start > p.origin.reference_start), "halves swap");
        assert!(pairs.iter().any(|p| p.origin.input_start < p.origin.reference_start), "halves swap");
        let generator = make_generator(noise_files, config(StyleChoice::Random));
        let expanded = (0..400u64)
            .map(|i| generator.pair(Split::Train, i, 8).unwrap())
            .find(|p| matches!(&p.making, Making::Afx { corruption, .. } if corruption.expander.is_some()));
        check_rebuilt(&generator, &expanded.expect("one pair in ten is expanded"));
    }

    /// Speed augmentation: a clip played at `rate` Hz and resampled has its sine at
    /// `f · rate / 24000` (measured from the zero crossings), a quarter to three quarters of the
    /// training pairs are changed, every change lies within the cents asked for, the starts
    /// follow the played rate, and the validation and test splits are never changed nor draw.
    #[test]
    fn speed_augmentation_shifts_frequency_by_the_played_rate() {
        const TONE_HZ: f64 = 1000.0;
        let sines = |dir: &std::path::Path| {
            for i in 0..4 {
                let phase = i as f64;
                let tone = (0..20_000).map(|n| (0.5 * (std::f64::consts::TAU * TONE_HZ * n as f64 / f64::from(RATE) + phase).sin()) as f32);
                write(dir, &format!("{i}.wav"), &Audio { sample_rate: RATE, channels: vec![tone.collect()] });
            }
        };
        let generator = make_generator(sines, PairConfig { speed_cents: 200.0, ..config(StyleChoice::Random) });
        // Frequency from the first and last upward zero crossings, linearly interpolated.
        let frequency = |x: &[f32]| {
            let crossings: Vec<f64> = (1..x.len())
                .filter(|&n| x[n - 1] < 0.0 && x[n] >= 0.0)
                .map(|n| (n - 1) as f64 + f64::from(x[n - 1]) / f64::from(x[n - 1] - x[n]))
                .collect();
            (crossings.len() - 1) as f64 / (crossings[crossings.len() - 1] - crossings[0]) * f64::from(RATE)
        };
        let samples = &generator.corpus().recordings(Split::Train)[0].samples;
        for rate in [21_400, 23_900, 26_900] {
            let (clip, first) = generator.played_at(samples, 5_000, rate).unwrap().unwrap();
            assert_eq!(clip.len(), 2 * HALF);
            let expected = TONE_HZ * f64::from(rate) / f64::from(RATE);
            assert!((frequency(&clip) / expected - 1.0).abs() < 1e-4, "{rate} Hz: {} vs {expected}", frequency(&clip));
            // The source frames it was made of are centred on the drawn clip.
            let centre = first as f64 + HALF as f64 * f64::from(rate) / f64::from(RATE);
            assert!((centre - (5_000 + HALF) as f64).abs() <= 1.0, "{centre}");
        }
        let pairs: Vec<Pair> = (0..200).map(|i| generator.pair(Split::Train, i, 4).unwrap()).collect();
        let changed: Vec<&Pair> = pairs.iter().filter(|p| p.origin.played_at_hz != RATE).collect();
        assert!((50..150).contains(&changed.len()), "{} of 200 changed", changed.len());
        let (low, high) = (f64::from(RATE) * (-200.0f64 / 1200.0).exp2() - 50.0, f64::from(RATE) * (200.0f64 / 1200.0).exp2() + 50.0);
        assert!(changed.iter().all(|p| (low..=high).contains(&f64::from(p.origin.played_at_hz))));
        assert!(changed.iter().any(|p| p.origin.played_at_hz < 23_000) && changed.iter().any(|p| p.origin.played_at_hz > 25_000));
        for p in &changed {
            let frames = |clip_frames: usize| clip_frames as f64 * f64::from(p.origin.played_at_hz) / f64::from(RATE);
            let expected = frames(HALF);
            assert!((p.origin.input_start.abs_diff(p.origin.reference_start) as f64 - expected).abs() <= 1.0);
        }
        assert_no_draw_outside_training(|split, rng| generator.speed_change(split, rng));
    }

    /// Colour augmentation: a quarter to three quarters of the training pairs are coloured,
    /// within the dB asked for, and each coloured pair is its clip coloured as a whole and then
    /// split (rebuilt independently); validation and test clips are never coloured nor draw.
    #[test]
    fn colour_augmentation_colours_both_halves_of_training_clips_alike() {
        let generator = make_generator(noise_files, PairConfig { colour_db: 6.0, ..config(StyleChoice::Random) });
        let pairs: Vec<Pair> = (0..200).map(|i| generator.pair(Split::Train, i, 5).unwrap()).collect();
        let coloured: Vec<&Pair> = pairs.iter().filter(|p| p.colour.is_some()).collect();
        assert!((50..150).contains(&coloured.len()), "{} of 200 coloured", coloured.len());
        let gains = ["eq.low_shelf.gain_db", "eq.band1.gain_db", "eq.high_shelf.gain_db"].map(|name| knob_index(name).unwrap());
        for pair in &coloured {
            let colour = pair.colour.unwrap();
            assert!(gains.iter().all(|&g| colour.0[g].abs() <= 6.0), "{colour:?}");
            assert!(gains.iter().any(|&g| colour.0[g] != 0.0));
        }
        coloured.iter().take(6).for_each(|pair| check_rebuilt(&generator, pair));
        pairs.iter().filter(|p| p.colour.is_none()).take(6).for_each(|pair| check_rebuilt(&generator, pair));
        assert_no_draw_outside_training(|split, rng| generator.colour(split, rng));
    }

    /// Mix augmentation: a quarter to three quarters of the training pairs are mixed, at −12
    /// to 0 dB, and each mixed pair is its clip plus the other clip at that peak level, then
    /// split (rebuilt independently); validation and test clips are never mixed nor draw.
    #[test]
    fn mix_augmentation_adds_a_second_clip_to_both_halves() {
        let generator = make_generator(noise_files, PairConfig { mix: 0.5, colour_db: 3.0, ..config(StyleChoice::Random) });
        let pairs: Vec<Pair> = (0..200).map(|i| generator.pair(Split::Train, i, 6).unwrap()).collect();
        let mixed: Vec<&Pair> = pairs.iter().filter(|p| p.mix.is_some()).collect();
        assert!((50..150).contains(&mixed.len()), "{} of 200 mixed", mixed.len());
        assert!(mixed.iter().all(|p| (-12.0..=0.0).contains(&p.mix.unwrap().gain_db)));
        assert!(mixed.iter().any(|p| p.mix.unwrap().recording != p.origin.recording));
        mixed.iter().take(8).for_each(|pair| check_rebuilt(&generator, pair));
        assert_no_draw_outside_training(|split, rng| generator.mix(split, rng).unwrap());
    }

    /// Foreign pairs: with `foreign: Some(1)` every reference is a passage of another recording
    /// of the same domain (speech under a `speech` folder), with `Some(0)` the clip's other part;
    /// and target, reference and input are rebuilt independently from the recipes: the recipes
    /// stage loudness first, so `style(A)`, `style(B)` and `corruption(A)` of the raw passages
    /// match the pair up to one gain each (target and reference share theirs).
    #[test]
    fn foreign_pairs_take_references_from_other_recordings_of_their_domain() {
        const PART: usize = 12_000;
        let files = |dir: &std::path::Path| {
            for (i, name) in ["music/a.wav", "music/b.wav", "speech/one/c.wav", "speech/two/d.wav"].iter().enumerate() {
                write_noise(dir, name, RATE, 40_000, 10 + i as u64);
            }
        };
        let made = |foreign| make_generator(files, PairConfig { half_frames: PART, foreign: Some(foreign), ..config(StyleChoice::Random) });
        let generator = made(1.0);
        let recordings = generator.corpus().recordings(Split::Train);
        let domains: Vec<Domain> = recordings.iter().map(domain_of).collect();
        assert_eq!(domains.iter().filter(|&&d| d == Domain::Speech).count(), 2, "{domains:?}");
        let gain_fit = |made: &[f32], wanted: &[f32]| {
            let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>();
            let gain = dot(made, wanted) / dot(made, made);
            let residual = made.iter().zip(wanted).map(|(m, w)| (gain * f64::from(*m) - f64::from(*w)).powi(2)).sum::<f64>();
            residual / dot(wanted, wanted)
        };
        for i in 0..8 {
            let pair = generator.pair(Split::Train, i, 2).unwrap();
            assert_eq!(pair, generator.pair(Split::Train, i, 2).unwrap());
            let origin = pair.origin;
            assert_ne!(origin.reference_recording, origin.recording);
            assert_eq!(domains[origin.reference_recording], domains[origin.recording]);
            let Making::Foreign { style, corruption } = &pair.making else { panic!("an afx pair") };
            assert!(style.domain == domains[origin.recording] && corruption.domain == style.domain);
            let raw = |recording: usize, start: usize| recordings[recording].samples[start..start + PART].to_vec();
            let (a, b) = (raw(origin.recording, origin.input_start), raw(origin.reference_recording, origin.reference_start));
            let styled =
                [style.apply(std::slice::from_ref(&a), RATE).unwrap().remove(0), style.apply(&[b], RATE).unwrap().remove(0)].concat();
            assert!(gain_fit(&styled, &[pair.target.clone(), pair.reference.clone()].concat()) < 1e-9, "pair {i}: style");
            assert!(gain_fit(&corruption.apply(&[a], RATE).unwrap().remove(0), &pair.input) < 1e-9, "pair {i}: corruption");
            assert!((peak_db(&[&pair.input]) - PEAK_DBFS).abs() < 1e-4);
            assert!((peak_db(&[&pair.reference, &pair.target]) - PEAK_DBFS).abs() < 1e-4);
        }
        let generator = made(0.0);
        for i in 0..8 {
            let origin = generator.pair(Split::Train, i, 2).unwrap().origin;
            assert_eq!(origin.reference_recording, origin.recording);
            assert_eq!(origin.input_start.abs_diff(origin.reference_start), PART, "the clip's other part");
        }
    }

    #[test]
    fn clips_avoid_silent_halves_and_short_recordings() {
        let gappy = |dir: &std::path::Path| {
            let silence = vec![0.0f32; 20_000];
            let samples = [silence.clone(), noise(6000, 1), silence].concat();
            write(dir, "gappy.wav", &Audio { sample_rate: RATE, channels: vec![samples] });
            write_noise(dir, "short.wav", RATE, 2 * HALF - 1, 2);
        };
        // The noise has a mean energy of 0.03, so a half passes only if about a third of it or
        // more is noise.
        let config_gappy = PairConfig { max_attempts: 1000, min_mean_energy: 0.01, ..config(StyleChoice::Random) };
        let generator = make_generator(gappy, config_gappy.clone());
        let gappy_index = generator.corpus().recordings(Split::Train).iter().position(|r| r.sources[0].ends_with("gappy.wav")).unwrap();
        for i in 0..50 {
            let origin = generator.pair(Split::Train, i, 4).unwrap().origin;
            assert_eq!(origin.recording, gappy_index, "a recording shorter than 2L was drawn");
            for start in [origin.input_start, origin.reference_start] {
                let noisy = (start + HALF).min(26_000).saturating_sub(start.max(20_000));
                assert!(noisy > HALF / 4, "half at {start} is mostly silent");
            }
        }
        // With a reference of 3L, each part passes the test on its own length, in either order.
        let longer = PairConfig { reference_frames: Some(3 * HALF), ..config_gappy };
        let generator = make_generator(gappy, longer);
        for i in 0..50 {
            let origin = generator.pair(Split::Train, i, 4).unwrap().origin;
            for (start, frames) in [(origin.input_start, HALF), (origin.reference_start, 3 * HALF)] {
                let noisy = (start + frames).min(26_000).saturating_sub(start.max(20_000));
                assert!(noisy > frames / 4, "the part of {frames} frames at {start} is mostly silent");
            }
        }

        let short_only = make_generator(
            |dir| {
                write_noise(dir, "short.wav", RATE, 2 * HALF - 1, 2);
            },
            config(StyleChoice::Random),
        );
        let error = short_only.pair(Split::Train, 0, 0).unwrap_err().to_string();
        assert!(error.contains("no recording of at least 2048 + 2048 frames"), "{error}");
        let silent = make_generator(
            |dir| {
                write(dir, "silent.wav", &Audio { sample_rate: RATE, channels: vec![vec![0.0; 10_000]] });
            },
            config(StyleChoice::Random),
        );
        let error = silent.pair(Split::Train, 0, 0).unwrap_err().to_string();
        assert!(error.contains("no clip with both halves above mean energy"), "{error}");
    }

    #[test]
    fn batches_and_the_loader_are_deterministic_regardless_of_timing() {
        let generator = Arc::new(make_generator(noise_files, config(StyleChoice::Random)));
        let plan = BatchPlan { split: Split::Train, batch_size: 3, seed: 9 };
        let direct: Vec<Batch> = (0..4).map(|b| generator.batch(&plan, b).unwrap()).collect();
        for (b, batch) in direct.iter().enumerate() {
            assert_eq!(batch.index, b as u64);
            for (i, pair) in batch.pairs.iter().enumerate() {
                assert_eq!(*pair, generator.pair(Split::Train, (3 * b + i) as u64, 9).unwrap());
            }
        }
        let fast: Vec<Batch> = Loader::spawn(generator.clone(), plan, 0..4, 2).unwrap().map(Result::unwrap).collect();
        assert_eq!(fast, direct);
        let slow: Vec<Batch> = Loader::spawn(generator.clone(), plan, 0..4, 1)
            .unwrap()
            .map(|batch| {
                std::thread::sleep(Duration::from_millis(30));
                batch.unwrap()
            })
            .collect();
        assert_eq!(slow, direct);
        let mut stopped_early = Loader::spawn(generator.clone(), plan, 2..u64::MAX, 1).unwrap();
        assert_eq!(stopped_early.next().unwrap().unwrap(), direct[2]);
        drop(stopped_early);

        let failing = BatchPlan { split: Split::Test, ..plan };
        let mut loader = Loader::spawn(generator, failing, 0..4, 1).unwrap();
        assert!(loader.next().unwrap().is_err());
        assert!(loader.next().is_none(), "the first error ends the sequence");
    }

    /// With a target chain, the input is the clip's part as it is and the target that part
    /// through the chain at the pair's settings (up to the common peak gain); drawn settings
    /// differ from pair to pair, fixed ones do not.
    #[test]
    fn a_target_chain_makes_the_target_from_the_untouched_input() {
        for draw in [0.0, 0.3] {
            let target = TargetChain::parse("eq,comp", &["eq.band2.gain_db=9".into(), "comp.threshold_db=-30".into()], draw).unwrap();
            let generator = make_generator(noise_files, PairConfig { target: Some(target), ..config(StyleChoice::Random) });
            let pairs: Vec<Pair> = (0..3).map(|i| generator.pair(Split::Train, i, 5).unwrap()).collect();
            for pair in &pairs {
                let Making::Chain { knobs } = &pair.making else { panic!("a target chain's pair") };
                let mut rendered = pair.input.clone();
                render(knobs, RATE, &mut [&mut rendered]).unwrap();
                let gain = pair.target.iter().zip(&rendered).map(|(t, r)| t * r).sum::<f32>() / rendered.iter().map(|r| r * r).sum::<f32>();
                let worst = pair.target.iter().zip(&rendered).map(|(t, r)| (t - gain * r).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "target differs from the input through the chain by {worst}");
            }
            let gains: Vec<f64> = pairs
                .iter()
                .map(|p| if let Making::Chain { knobs } = &p.making { knobs.get("eq.band2.gain_db").unwrap() } else { 0.0 })
                .collect();
            assert_eq!(gains.windows(2).all(|w| w[0] == w[1]), draw == 0.0, "{gains:?}");
        }
    }
}
