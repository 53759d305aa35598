//! The real-use evaluation (`afx real-eval`): style transfer as users meet it, beside the
//! paper's synthetic protocol of [`crate::eval`].
//!
//! Held-out audio (the test split of the folders, as training splits them) at its own rate and
//! channel count (16–96 kHz, the rates `afx transfer` takes) → items: a passage `A` of one recording and a passage `B`, either the next
//! passage of the same recording or a passage of *another* recording (another track, another
//! speaker: another folder) → input = corruption(A), reference = style(B), target = style(A),
//! where corruption and style are random chains of *foreign* processors
//! ([`crate::data::foreign`]: SoX's effects and designs of our own that are not afx's effects,
//! so no model can win by recognising its own chain) → each peer's output for (input,
//! reference) → metrics against the target.
//!
//! Peers: the input as it is; a loudness-only match ([`baseline::loudness_match`], one gain,
//! peak-safe); RB-DSP ([`baseline::rb_dsp`], run on each channel with the reference's mono
//! mix; a silent channel passes); matchering 2.0 (run outside by `scripts/matchering.sh` on the items this evaluation
//! writes, read back when present); afx's measured matching without a network
//! ([`matching::measured_match`]); and each style model through [`transfer::transfer`], the
//! path `afx transfer` takes on a user's file, in both of its modes (`matched`, the default, and
//! `model`, the network alone).
//!
//! For every metric the report gives the ratio of the peer's mean error to the input's mean
//! error (1: as far from the target as the untouched input; lower is better) and the share of
//! items on which the peer's error is below the input's.

use std::path::{Path, PathBuf};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::audio::{self, Audio, WavFormat};
use crate::baseline;
use crate::data::Split;
use crate::data::foreign::{Domain, ForeignRecipe};
use crate::data::source::{SplitFractions, content_hash, scan};
use crate::matching;
use crate::metrics::{self, Metrics};
use crate::model::StyleNet;
use crate::transfer::{self, Mode, TransferOptions};
use crate::{Error, Result};

/// Where an item's reference comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum ReferenceFrom {
    /// The passage after the input's, in the same recording.
    Same,
    /// A passage of another recording (another file; for speech, another folder: another voice).
    Other,
}

/// How the items are drawn.
#[derive(Clone, Debug)]
pub struct RealEvalConfig {
    /// Audio folders of one domain; their test split is used.
    pub data: Vec<PathBuf>,
    pub domain: Domain,
    pub reference_from: ReferenceFrom,
    pub items: usize,
    /// Length of every passage.
    pub seconds: f64,
    pub seed: u64,
    pub fractions: SplitFractions,
    /// The split the recordings come from: the test split to report, the training split to
    /// tune a measured method's constants on.
    pub split: Split,
}

/// `afx real-eval`'s options.
#[cfg(feature = "cli")]
#[derive(Clone, Debug, clap::Args)]
pub struct RealEvalArgs {
    /// Style models to evaluate (repeatable): model files, or `bundled` for the model inside afx.
    #[arg(long = "model", default_value = "bundled")]
    pub models: Vec<String>,
    /// Folders (or files) of audio of one domain; only their test split (10 % of files, never
    /// used in training) is used.
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// What the audio is: it sets the ranges of the foreign corruptions and styles, and
    /// whether a recording is a file (music) or a folder's files joined (speech: one voice).
    #[arg(long, value_enum)]
    pub domain: Domain,
    /// Where each item's reference comes from.
    #[arg(long, value_enum, default_value_t = ReferenceFrom::Other)]
    pub reference: ReferenceFrom,
    #[arg(long, default_value_t = 30)]
    pub items: usize,
    /// Length of each passage in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Draw the items from this split (the test split to report; the training split to tune on).
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// Write each item's input and reference here (`NAME.input.wav`, `NAME.reference.wav`) and
    /// read outside tools' outputs back from it: after `scripts/matchering.sh DIR`, a second
    /// run has a matchering row.
    #[arg(long, value_name = "DIR")]
    pub items_dir: Option<PathBuf>,
    /// Also give each model a row with this many steps of `afx transfer --refine` (0: none).
    #[arg(long, default_value_t = 0)]
    pub refine: usize,
    /// Also write the markdown table to this file.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Print JSON (with every item's recipes) instead of the markdown table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "cli")]
impl RealEvalArgs {
    /// `afx real-eval`: draws the items, runs the peers and the models, writes the report.
    pub fn run(&self, out: &mut impl std::io::Write) -> Result<()> {
        if !(self.seconds > 0.0 && self.seconds.is_finite()) || self.items == 0 {
            return Err(Error::BadConfig { what: "real-use evaluation", reason: "items and seconds must be positive".into() });
        }
        let loaded = crate::eval::load_named_models(&self.models, &crate::fx::ChainSpec::default())?;
        let config = RealEvalConfig {
            data: self.data.clone(),
            domain: self.domain,
            reference_from: self.reference,
            items: self.items,
            seconds: self.seconds,
            seed: self.seed,
            fractions: SplitFractions::default(),
            split: self.split,
        };
        let items = make_items(&config)?;
        let mut peers = vec![Peer::Input, Peer::Loudness, Peer::RbDsp];
        if let Some(dir) = &self.items_dir {
            write_items(dir, &items)?;
            peers.push(Peer::Files { name: "matchering 2.0".into(), dir: dir.clone(), suffix: "matchering".into() });
        }
        peers.push(Peer::Measured);
        for (name, model) in self.models.iter().zip(&loaded) {
            let crate::model::file::AnyModel::Style(model) = model else {
                return Err(Error::BadConfig { what: "real-use evaluation", reason: format!("{name} is not a style model") });
            };
            let label = if name == "bundled" { "afx (bundled)".to_string() } else { format!("afx ({})", file_stem(name)) };
            let options = |mode, refine_steps| TransferOptions { mode, refine_steps, ..Default::default() };
            peers.push(Peer::Model { name: label.clone(), net: &model.net, options: options(Mode::Matched, 0) });
            if self.refine > 0 {
                let name = format!("{label}, --refine {}", self.refine);
                peers.push(Peer::Model { name, net: &model.net, options: options(Mode::Matched, self.refine) });
            }
            peers.push(Peer::Model { name: format!("{label}, --mode learned"), net: &model.net, options: options(Mode::Learned, 0) });
            peers.push(Peer::Model { name: format!("{label}, --mode model"), net: &model.net, options: options(Mode::Model, 0) });
        }
        let report = evaluate(&config, &items, &peers)?;
        crate::eval::write_report(out, &report, &report.markdown(), self.json, self.table.as_deref())
    }
}

/// A model file's stem, for its row's name.
#[cfg(feature = "cli")]
fn file_stem(path: &str) -> String {
    Path::new(path).file_stem().map_or_else(|| path.to_string(), |s| s.to_string_lossy().into_owned())
}

/// Peak ceiling of the loudness-only peer.
pub const LOUDNESS_PEER_CEILING_DBFS: f64 = -1.0;
/// A clean passage quieter than this is drawn again (too quiet to judge a style on).
const QUIETEST_PASSAGE_LUFS: f64 = -50.0;
/// An error counts as below the input's only if lower by this fraction: a gain leaves the
/// centroid as it is up to rounding, which is not an improvement.
const BETTER_BY: f64 = 1e-6;
/// Draws allowed per item before the data is declared too small.
const DRAWS_PER_ITEM: usize = 40;

/// One recording of the test split: a file, or for speech the test files of one folder (one
/// voice) joined in path order.
#[derive(Clone, Debug)]
struct Recording {
    files: Vec<PathBuf>,
}

impl Recording {
    /// Decodes the recording at its first file's rate and channel count (a joined file of
    /// another rate is resampled, of another channel count mixed to mono and spread). A file
    /// that cannot be decoded is left out with a warning on stderr, as training leaves it out;
    /// `None` if none can be.
    fn decode(&self) -> Result<Option<Audio>> {
        let mut joined: Option<Audio> = None;
        for path in &self.files {
            let audio = match audio::read(path) {
                Ok(audio) => audio,
                Err(e) => {
                    eprintln!("warning: leaving out {e}");
                    continue;
                }
            };
            if let Some(first) = &mut joined {
                let audio = conformed(audio, first.sample_rate, first.num_channels())?;
                for (c, extra) in first.channels.iter_mut().zip(audio.channels) {
                    c.extend(extra);
                }
            } else {
                joined = Some(audio);
            }
        }
        Ok(joined)
    }
}

/// `audio` at `sample_rate` (resampled if need be) with `channels` channels (another count is
/// mixed to mono and spread).
fn conformed(mut audio: Audio, sample_rate: u32, channels: usize) -> Result<Audio> {
    if audio.sample_rate != sample_rate {
        audio = audio::resample(&audio, sample_rate)?;
    }
    if audio.num_channels() != channels {
        let mono = audio.to_mono().channels.swap_remove(0);
        audio.channels = vec![mono; channels];
    }
    Ok(audio)
}

/// Whether `afx transfer` takes audio at this rate.
fn transfer_takes(sample_rate: u32) -> bool {
    (transfer::MIN_RATE_HZ..=transfer::MAX_RATE_HZ).contains(&sample_rate)
}

/// The recordings of the configured split of `data`: music, one per file; speech, one per folder.
fn split_recordings(config: &RealEvalConfig) -> Result<Vec<Recording>> {
    config.fractions.validate()?;
    let mut files = scan(&config.data)?;
    files.sort();
    let mut seen = std::collections::HashSet::new();
    let mut chosen: Vec<PathBuf> = Vec::new();
    for path in files {
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let hash = content_hash(&bytes);
        if seen.insert(hash) && config.fractions.split_of(hash) == config.split {
            chosen.push(path);
        }
    }
    let recordings = match config.domain {
        Domain::Music => chosen.into_iter().map(|f| Recording { files: vec![f] }).collect(),
        Domain::Speech => {
            let mut by_folder: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
            for f in chosen {
                let folder = f.parent().unwrap_or(Path::new("")).to_path_buf();
                match by_folder.iter_mut().find(|(d, _)| *d == folder) {
                    Some((_, files)) => files.push(f),
                    None => by_folder.push((folder, vec![f])),
                }
            }
            by_folder.into_iter().map(|(_, files)| Recording { files }).collect()
        }
    };
    Ok(recordings)
}

/// One item: what a user would give afx, and what a perfect transfer would return.
#[derive(Clone, Debug)]
pub struct Item {
    /// `<domain>-<seed>-<index>`: also the stem of the files written for outside peers.
    pub name: String,
    pub input: Audio,
    pub reference: Audio,
    /// At the input's rate and channel count.
    pub target: Vec<Vec<f32>>,
    pub about: ItemInfo,
}

/// What made an item (printed with the report).
#[derive(Clone, Debug, Serialize)]
pub struct ItemInfo {
    pub name: String,
    pub input_from: Vec<PathBuf>,
    pub input_at_s: f64,
    pub reference_from: Vec<PathBuf>,
    pub reference_at_s: f64,
    pub corruption: ForeignRecipe,
    pub style: ForeignRecipe,
}

/// A passage of `frames` frames from `start`.
fn passage(audio: &Audio, start: usize, frames: usize) -> Vec<Vec<f32>> {
    audio.channels.iter().map(|c| c[start..start + frames].to_vec()).collect()
}

/// Whether a clean passage is loud enough to judge a style on.
fn audible(channels: &[Vec<f32>], sample_rate: u32) -> Result<bool> {
    Ok(metrics::integrated_loudness(channels, sample_rate, "passage")?.is_some_and(|l| l > QUIETEST_PASSAGE_LUFS))
}

/// Draws the items (deterministic for a seed and a set of files).
pub fn make_items(config: &RealEvalConfig) -> Result<Vec<Item>> {
    let recordings = split_recordings(config)?;
    let needed = match config.reference_from {
        ReferenceFrom::Same => 1,
        ReferenceFrom::Other => 2,
    };
    if recordings.len() < needed {
        return Err(Error::NoClips {
            reason: format!("the test split has {} recording(s); real-use items need {needed}", recordings.len()),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut items = Vec::with_capacity(config.items);
    let mut draws = 0;
    while items.len() < config.items {
        draws += 1;
        if draws > DRAWS_PER_ITEM * config.items.max(1) {
            return Err(Error::NoClips {
                reason: format!(
                    "only {} of {} real-use items could be drawn: too few long, audible test recordings",
                    items.len(),
                    config.items
                ),
            });
        }
        let a = rng.random_range(0..recordings.len());
        let Some(input_audio) = recordings[a].decode()? else { continue };
        let rate = input_audio.sample_rate;
        if !transfer_takes(rate) {
            // Narrow-band telephone prompts and the like: not what `afx transfer` takes.
            continue;
        }
        let frames = (config.seconds * f64::from(rate)).round() as usize;
        let span = if config.reference_from == ReferenceFrom::Same { 2 * frames } else { frames };
        if frames == 0 || input_audio.frames() < span {
            continue;
        }
        let start = rng.random_range(0..=input_audio.frames() - span);
        let clean_a = passage(&input_audio, start, frames);
        let (reference_audio, b, reference_start) = match config.reference_from {
            ReferenceFrom::Same => (input_audio.clone(), a, start + frames),
            ReferenceFrom::Other => {
                let others: Vec<usize> = (0..recordings.len()).filter(|&i| i != a).collect();
                let b = *others.choose(&mut rng).expect("at least two recordings");
                let Some(audio) = recordings[b].decode()? else { continue };
                if !transfer_takes(audio.sample_rate) {
                    continue;
                }
                let b_frames = (config.seconds * f64::from(audio.sample_rate)).round() as usize;
                if audio.frames() < b_frames {
                    continue;
                }
                let at = rng.random_range(0..=audio.frames() - b_frames);
                (audio, b, at)
            }
        };
        let b_frames = (config.seconds * f64::from(reference_audio.sample_rate)).round() as usize;
        let clean_b = passage(&reference_audio, reference_start, b_frames);
        if !audible(&clean_a, rate)? || !audible(&clean_b, reference_audio.sample_rate)? {
            continue;
        }
        let corruption = ForeignRecipe::random(&mut rng, config.domain);
        let style = ForeignRecipe::random(&mut rng, config.domain);
        let input = Audio { sample_rate: rate, channels: corruption.apply(&clean_a, rate)? };
        let reference = Audio { sample_rate: reference_audio.sample_rate, channels: style.apply(&clean_b, reference_audio.sample_rate)? };
        let target = style.apply(&clean_a, rate)?;
        if !audible(&input.channels, rate)? || !audible(&target, rate)? {
            continue;
        }
        let name = format!("{}-{}-{:03}", domain_name(config.domain), config.seed, items.len());
        let about = ItemInfo {
            name: name.clone(),
            input_from: recordings[a].files.clone(),
            input_at_s: start as f64 / f64::from(rate),
            reference_from: recordings[b].files.clone(),
            reference_at_s: reference_start as f64 / f64::from(reference_audio.sample_rate),
            corruption,
            style,
        };
        items.push(Item { name, input, reference, target, about });
    }
    Ok(items)
}

fn domain_name(domain: Domain) -> &'static str {
    match domain {
        Domain::Music => "music",
        Domain::Speech => "speech",
    }
}

/// Writes every item's input and reference as `DIR/NAME.input.wav` and `DIR/NAME.reference.wav`
/// (32-bit float), for peers that run outside afx (`scripts/matchering.sh DIR`).
pub fn write_items(dir: &Path, items: &[Item]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for item in items {
        audio::write_wav(&dir.join(format!("{}.input.wav", item.name)), &item.input, WavFormat::F32)?;
        audio::write_wav(&dir.join(format!("{}.reference.wav", item.name)), &item.reference, WavFormat::F32)?;
    }
    Ok(())
}

/// A peer of the evaluation.
pub enum Peer<'a> {
    /// The input, untouched.
    Input,
    /// One gain to the reference's loudness, peak-safe.
    Loudness,
    /// The rule-based baseline of DeepAFx-ST.
    RbDsp,
    /// Outputs written by another tool as `DIR/NAME.<suffix>.wav` (matchering: suffix
    /// `matchering`); an item without one is counted as missing.
    Files { name: String, dir: PathBuf, suffix: String },
    /// afx's measured matching alone, no network ([`matching::measured_match`]).
    Measured,
    /// A style model through `afx transfer`'s path with these options.
    Model { name: String, net: &'a StyleNet, options: TransferOptions },
}

impl Peer<'_> {
    fn name(&self) -> String {
        match self {
            Peer::Input => "Input (untouched)".into(),
            Peer::Loudness => "Loudness match".into(),
            Peer::RbDsp => "RB-DSP".into(),
            Peer::Files { name, .. } | Peer::Model { name, .. } => name.clone(),
            Peer::Measured => "afx measured match (no network)".into(),
        }
    }

    /// The peer's output for an item at the input's rate and channel count, or `None` where an
    /// outside tool left none.
    fn output(&self, item: &Item) -> Result<Option<Vec<Vec<f32>>>> {
        let rate = item.input.sample_rate;
        let reference_here = || -> Result<Audio> {
            if item.reference.sample_rate == rate { Ok(item.reference.clone()) } else { audio::resample(&item.reference, rate) }
        };
        Ok(Some(match self {
            Peer::Input => item.input.channels.clone(),
            Peer::Loudness => {
                baseline::loudness_match(&item.input.channels, &reference_here()?.channels, rate, LOUDNESS_PEER_CEILING_DBFS)?
            }
            Peer::RbDsp => {
                let reference = reference_here()?.to_mono().channels.swap_remove(0);
                // A channel silent to the meter (a stereo file with one side empty) passes as it is.
                let silent = |c: &Vec<f32>| Ok::<_, Error>(metrics::integrated_loudness(std::slice::from_ref(c), rate, "input")?.is_none());
                item.input
                    .channels
                    .iter()
                    .map(|c| if silent(c)? { Ok(c.clone()) } else { baseline::rb_dsp(c, &reference, rate) })
                    .collect::<Result<_>>()?
            }
            Peer::Files { dir, suffix, .. } => {
                let path = dir.join(format!("{}.{suffix}.wav", item.name));
                if !path.exists() {
                    return Ok(None);
                }
                conformed(audio::read(&path)?, rate, item.input.num_channels())?.channels
            }
            Peer::Measured => matching::measured_match(&item.input, &item.reference)?.channels,
            Peer::Model { net, options, .. } => transfer::transfer(net, &item.input, &item.reference, options)?.output.channels,
        }))
    }
}

/// The metrics the report gives, by name.
pub const METRICS: [&str; 5] = ["MR-STFT", "mel", "centroid", "RMS", "loudness"];

fn errors(m: &Metrics) -> [f64; 5] {
    [m.mrstft, m.mel_distance, m.centroid_error_hz, m.rms_error_db, m.loudness_error_lu]
}

/// One peer's results.
#[derive(Clone, Debug, Serialize)]
pub struct RealRow {
    pub peer: String,
    /// Items the peer produced an output for (others are left out of its row).
    pub items: usize,
    /// Mean error per metric ([`METRICS`] order), over the row's items.
    pub mean_error: [f64; 5],
    /// The mean error divided by the input's mean error over the same items.
    pub ratio: [f64; 5],
    /// Share of the row's items whose error is below the input's.
    pub better: [f64; 5],
    /// Wideband PESQ against the target (speech only).
    pub pesq: Option<PesqScore>,
}

/// A row's wideband PESQ ([`metrics::pesq_wb`]; higher is better).
#[derive(Clone, Debug, Serialize)]
pub struct PesqScore {
    /// Mean over the items PESQ scored for both the row and the input.
    pub mean: f64,
    /// The input's mean over the same items.
    pub input_mean: f64,
    /// Share of those items on which the row's PESQ is at least the input's.
    pub not_lower: f64,
    pub items: usize,
}

/// The evaluation's results.
#[derive(Clone, Debug, Serialize)]
pub struct RealReport {
    pub domain: Domain,
    pub reference_from: ReferenceFrom,
    pub seconds: f64,
    pub seed: u64,
    pub rows: Vec<RealRow>,
    pub items: Vec<ItemInfo>,
}

/// Runs every peer on every item and measures it against the target.
pub fn evaluate(config: &RealEvalConfig, items: &[Item], peers: &[Peer]) -> Result<RealReport> {
    let input_errors: Vec<[f64; 5]> = items
        .iter()
        .map(|item| Ok(errors(&metrics::compare_floored(&item.input.channels, &item.target, item.input.sample_rate)?.0)))
        .collect::<Result<_>>()?;
    // PESQ on speech, as DeepAFx-ST reports it.
    let pesq = |output: &[Vec<f32>], item: &Item| -> Result<Option<f64>> {
        if config.domain == Domain::Speech { metrics::pesq_wb(output, &item.target, item.input.sample_rate) } else { Ok(None) }
    };
    let input_pesq: Vec<Option<f64>> = items.iter().map(|item| pesq(&item.input.channels, item)).collect::<Result<_>>()?;
    let bar = crate::progress::bar((items.len() * peers.len()) as u64, "peers");
    let mut rows = Vec::with_capacity(peers.len());
    for peer in peers {
        let mut sums = ([0.0; 5], [0.0; 5], [0usize; 5]);
        let mut count = 0;
        let mut pesq_sums = (0.0, 0.0, 0usize, 0usize);
        for ((item, base), base_pesq) in items.iter().zip(&input_errors).zip(&input_pesq) {
            bar.inc(1);
            let Some(output) = peer.output(item)? else { continue };
            let e = errors(&metrics::compare_floored(&output, &item.target, item.input.sample_rate)?.0);
            count += 1;
            for k in 0..5 {
                sums.0[k] += e[k];
                sums.1[k] += base[k];
                sums.2[k] += usize::from(e[k] < base[k] * (1.0 - BETTER_BY));
            }
            if let (Some(base), Some(score)) = (base_pesq, pesq(&output, item)?) {
                pesq_sums.0 += score;
                pesq_sums.1 += base;
                pesq_sums.2 += 1;
                pesq_sums.3 += usize::from(score >= *base);
            }
        }
        let n = count.max(1) as f64;
        let scored = pesq_sums.2 as f64;
        rows.push(RealRow {
            peer: peer.name(),
            items: count,
            mean_error: sums.0.map(|s| s / n),
            ratio: std::array::from_fn(|k| if sums.1[k] > 0.0 { sums.0[k] / sums.1[k] } else { f64::NAN }),
            better: sums.2.map(|b| b as f64 / n),
            pesq: (pesq_sums.2 > 0).then(|| PesqScore {
                mean: pesq_sums.0 / scored,
                input_mean: pesq_sums.1 / scored,
                not_lower: pesq_sums.3 as f64 / scored,
                items: pesq_sums.2,
            }),
        });
    }
    bar.finish_and_clear();
    Ok(RealReport {
        domain: config.domain,
        reference_from: config.reference_from,
        seconds: config.seconds,
        seed: config.seed,
        rows,
        items: items.iter().map(|i| i.about.clone()).collect(),
    })
}

impl RealReport {
    /// The table: per metric the ratio to the input's error, the share of items made better in
    /// brackets.
    pub fn markdown(&self) -> String {
        let reference = match self.reference_from {
            ReferenceFrom::Same => "the next passage of the same recording",
            ReferenceFrom::Other => "another recording",
        };
        let mut out = format!(
            "Real-use evaluation, {}: {} items of {} s, reference = {reference}, foreign corruptions and styles, seed {}.\n\n",
            domain_name(self.domain),
            self.items.len(),
            self.seconds,
            self.seed
        );
        let with_pesq = self.rows.iter().any(|r| r.pesq.is_some());
        let (pesq_head, pesq_rule) = if with_pesq { (" PESQ (wb) |", "---:|") } else { ("", "") };
        out += &format!("| peer | items | {} |{pesq_head}\n|---|---:|{}{pesq_rule}\n", METRICS.join(" | "), "---:|".repeat(METRICS.len()));
        for row in &self.rows {
            let mut cells: Vec<String> = (0..5).map(|k| format!("{:.2} ({:.0} %)", row.ratio[k], 100.0 * row.better[k])).collect();
            if with_pesq {
                cells.push(row.pesq.as_ref().map_or_else(|| "–".into(), |p| format!("{:.2} ({:.0} %)", p.mean, 100.0 * p.not_lower)));
            }
            out += &format!("| {} | {} | {} |\n", row.peer, row.items, cells.join(" | "));
        }
        if with_pesq {
            out += "\nPESQ (wb): mean wideband PESQ against the target (higher is better), in brackets the share of items where it is at least the input's.\n";
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Program-like stereo material: two tones under a tremolo, a little noise, per file its own.
    fn program(seed: u64, seconds: f64, sample_rate: u32) -> Audio {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (f1, f2, trem) = (rng.random_range(80.0..300.0), rng.random_range(900.0..3000.0), rng.random_range(2.0..6.0));
        let frames = (seconds * f64::from(sample_rate)) as usize;
        let channels = (0..2)
            .map(|c| {
                (0..frames)
                    .map(|n| {
                        let t = n as f64 / f64::from(sample_rate);
                        let env = 0.3 + 0.6 * (0.5 + 0.5 * (std::f64::consts::TAU * trem * t + c as f64).sin());
                        let tone = 0.4 * (std::f64::consts::TAU * f1 * t).sin() + 0.2 * (std::f64::consts::TAU * f2 * t).sin();
                        (env * tone + 0.02 * rng.random_range(-1.0..1.0)) as f32
                    })
                    .collect()
            })
            .collect();
        Audio { sample_rate, channels }
    }

    fn config(dir: &Path, reference_from: ReferenceFrom, seed: u64) -> RealEvalConfig {
        RealEvalConfig {
            data: vec![dir.to_path_buf()],
            domain: Domain::Music,
            reference_from,
            items: 3,
            seconds: 2.0,
            seed,
            fractions: SplitFractions { validation: 0.0, test: 1.0 },
            split: Split::Test,
        }
    }

    fn folder_of_tracks() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (i, rate) in [44_100, 48_000, 48_000].into_iter().enumerate() {
            audio::write_wav(&dir.path().join(format!("track{i}.wav")), &program(i as u64, 5.0, rate), WavFormat::F32).unwrap();
        }
        dir
    }

    #[test]
    fn items_are_drawn_from_other_recordings_reproducibly() {
        let dir = folder_of_tracks();
        let items = make_items(&config(dir.path(), ReferenceFrom::Other, 7)).unwrap();
        let again = make_items(&config(dir.path(), ReferenceFrom::Other, 7)).unwrap();
        let other = make_items(&config(dir.path(), ReferenceFrom::Other, 8)).unwrap();
        assert_eq!(items.len(), 3);
        for ((a, b), c) in items.iter().zip(&again).zip(&other) {
            assert_eq!(a.input, b.input);
            assert_eq!(a.target, b.target);
            assert_ne!(a.about.input_from, a.about.reference_from, "{}: the reference must come from another recording", a.name);
            assert_eq!(a.input.num_channels(), 2);
            assert_eq!(a.target.len(), 2);
            assert_eq!(a.target[0].len(), a.input.frames());
            assert_eq!(a.input.frames(), (2.0 * f64::from(a.input.sample_rate)) as usize);
            assert_ne!(a.input, c.input);
        }
        let same = make_items(&config(dir.path(), ReferenceFrom::Same, 7)).unwrap();
        for item in &same {
            assert_eq!(item.about.input_from, item.about.reference_from);
            assert!((item.about.reference_at_s - item.about.input_at_s - 2.0).abs() < 1e-3, "the next passage");
        }
    }

    /// The input peer is the yardstick (ratio 1, nothing better); a peer that returns the target
    /// itself (written as an outside tool's files) has no error at all; a missing file leaves
    /// the item out of that peer's row.
    #[test]
    fn ratios_measure_against_the_input_and_outside_files_are_read_back() {
        let dir = folder_of_tracks();
        let config = config(dir.path(), ReferenceFrom::Other, 3);
        let items = make_items(&config).unwrap();
        let outputs = tempfile::tempdir().unwrap();
        write_items(outputs.path(), &items).unwrap();
        assert!(outputs.path().join(format!("{}.reference.wav", items[0].name)).exists());
        for item in &items[..2] {
            let target = Audio { sample_rate: item.input.sample_rate, channels: item.target.clone() };
            audio::write_wav(&outputs.path().join(format!("{}.oracle.wav", item.name)), &target, WavFormat::F32).unwrap();
        }
        let peers = [
            Peer::Input,
            Peer::Loudness,
            Peer::Files { name: "Oracle".into(), dir: outputs.path().to_path_buf(), suffix: "oracle".into() },
        ];
        let report = evaluate(&config, &items, &peers).unwrap();
        let input = &report.rows[0];
        assert_eq!(input.items, 3);
        assert!(input.ratio.iter().all(|&r| (r - 1.0).abs() < 1e-12) && input.better.iter().all(|&b| b == 0.0), "{input:?}");
        let oracle = &report.rows[2];
        assert_eq!(oracle.items, 2);
        assert!(oracle.mean_error.iter().all(|&e| e.abs() < 1e-6), "{oracle:?}");
        assert!(oracle.better.iter().all(|&b| b == 1.0), "{oracle:?}");
        let table = report.markdown();
        assert!(table.contains("| Oracle | 2 |") && table.contains("another recording"), "{table}");
    }
}
