//! Where training audio comes from: folders scanned for audio files, a split of those files into
//! train / validation / test that evaluation can trust, and the decode cache that holds every
//! file once, as mono PCM at the training rate, in memory.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::audio;
use crate::fx::check_sample_rate;
use crate::{Error, Result};

/// File extensions (compared case-insensitively) that [`scan`] picks up: what
/// [`audio::read`] decodes.
pub const AUDIO_EXTENSIONS: [&str; 4] = ["wav", "flac", "ogg", "mp3"];

/// Every audio file under `roots` (folders, searched recursively, or audio files themselves),
/// sorted by path so that everything built from the list is deterministic. Symbolic links to
/// files are followed, links to folders are not (no cycles). A root that cannot be listed is an
/// error naming it.
pub fn scan(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for root in roots {
        if root.is_file() && has_audio_extension(root) {
            files.push(root.clone());
        } else {
            scan_folder(root, &mut files)?;
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn scan_folder(folder: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let fail = |e: std::io::Error| Error::ListFolder { path: folder.to_path_buf(), reason: e.to_string() };
    for entry in std::fs::read_dir(folder).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let path = entry.path();
        if entry.file_type().map_err(fail)?.is_dir() {
            scan_folder(&path, files)?;
        } else if has_audio_extension(&path) && path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

fn has_audio_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| AUDIO_EXTENSIONS.iter().any(|a| a.eq_ignore_ascii_case(e)))
}

/// One of the three disjoint parts of a corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    /// All splits, in this order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// The split's name, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }

    /// Position in [`Split::ALL`] (and in per-split arrays).
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The shares of files that go to validation and test; the rest is training data.
///
/// A file's split is decided by a stable hash of its bytes ([`content_hash`]), not by its place in
/// a list: it never changes when files are added, removed, renamed or moved, and byte-identical
/// copies (the speech package ships a few under two names) always land in the same split, so
/// evaluation never hears a training file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitFractions {
    pub validation: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    /// 80 / 10 / 10.
    fn default() -> Self {
        SplitFractions { validation: 0.1, test: 0.1 }
    }
}

impl SplitFractions {
    /// Checks that both fractions are in `[0, 1]` and sum to at most 1.
    pub fn validate(&self) -> Result<()> {
        let valid = |f: f64| (0.0..=1.0).contains(&f);
        if valid(self.validation) && valid(self.test) && self.validation + self.test <= 1.0 {
            Ok(())
        } else {
            Err(Error::BadConfig {
                what: "split",
                reason: format!("fractions validation = {}, test = {} must lie in [0, 1] and sum to at most 1", self.validation, self.test),
            })
        }
    }

    /// The split of a file whose content hashes to `hash`: the hash's top 53 bits as a number
    /// `u` in `[0, 1)`; test when `u < test`, validation when `u < test + validation`, else train.
    pub fn split_of(&self, hash: u64) -> Split {
        let u = (hash >> 11) as f64 / (1u64 << 53) as f64;
        if u < self.test {
            Split::Test
        } else if u < self.test + self.validation {
            Split::Validation
        } else {
            Split::Train
        }
    }
}

/// A 64-bit hash of `bytes` that is the same on every platform and Rust version: FNV-1a, then
/// the SplitMix64 finaliser so that the top bits [`SplitFractions::split_of`] reads are well mixed.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let fnv = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    let mut z = fnv.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How a [`Corpus`] is built.
#[derive(Clone, Debug, PartialEq)]
pub struct CorpusConfig {
    /// The training rate every file is resampled to (24 kHz, as DeepAFx-ST).
    pub sample_rate: u32,
    pub fractions: SplitFractions,
    /// Files shorter than this many frames (at `sample_rate`) are joined end to end, in path
    /// order, with the other short files of their split *in the same folder* into one
    /// recording. Speech packages ship one utterance per file, mostly shorter than a 2L clip
    /// (10.9 s); DeepAFx-ST joined each LibriTTS speaker's utterances into one file, so that
    /// the two halves of a clip share a voice, and a folder per speaker does the same here.
    /// 0 keeps every file on its own.
    pub join_shorter_than: usize,
    /// The splits to decode; files of other splits are hashed but never decoded (evaluation
    /// needs only the test files).
    pub splits: Vec<Split>,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            sample_rate: 24_000,
            fractions: SplitFractions::default(),
            join_shorter_than: 2 * super::pairs::DEFAULT_HALF_FRAMES,
            splits: Split::ALL.to_vec(),
        }
    }
}

/// Contiguous mono audio at the corpus rate: one file, or the short files of one split and
/// folder joined end to end (see [`CorpusConfig::join_shorter_than`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    /// The files it was made of, in order.
    pub sources: Vec<PathBuf>,
    pub samples: Vec<f32>,
}

/// A file left out of the corpus, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The decode cache: every usable file decoded once ([`audio::read`]), mixed to mono, resampled
/// to the training rate ([`audio::resample`]) and kept in memory as `f32`, grouped by split.
#[derive(Clone, Debug)]
pub struct Corpus {
    sample_rate: u32,
    recordings: [Vec<Recording>; 3],
    skipped: Vec<Skipped>,
}

impl Corpus {
    /// Hashes and splits `files`, then decodes the files of the wanted splits in parallel (rayon)
    /// under a progress bar. The files are taken in path order whatever order they come in, so
    /// the corpus depends only on the set of files. A file that cannot be read or decoded, or
    /// that repeats the bytes of a file earlier in path order, is skipped with a warning line on
    /// stderr (one line for all repeats) and listed in [`skipped`](Self::skipped); only a bad configuration is an error.
    pub fn load(files: &[PathBuf], config: &CorpusConfig) -> Result<Corpus> {
        check_sample_rate(config.sample_rate)?;
        config.fractions.validate()?;
        let mut files = files.to_vec();
        files.sort();
        files.dedup();
        let bar = progress_bar();
        let mut skipped = Vec::new();
        let mut skip = |path: &Path, reason: String| {
            skipped.push(Skipped { path: path.to_path_buf(), reason });
        };

        let hashes: Vec<_> = files.par_iter().map(|path| std::fs::read(path).map(|b| content_hash(&b))).collect();
        let mut first_with_hash: HashMap<u64, &PathBuf> = HashMap::new();
        let mut wanted = Vec::new();
        let mut repeats = 0;
        for (path, hash) in files.iter().zip(hashes) {
            let reason = match hash {
                Err(e) => format!("cannot read: {e}"),
                Ok(hash) => match first_with_hash.entry(hash) {
                    Entry::Occupied(first) => {
                        // Games ship the same line in several levels: one summary line, not one each.
                        repeats += 1;
                        skip(path, format!("same content as {}", first.get().display()));
                        continue;
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(path);
                        let split = config.fractions.split_of(hash);
                        if config.splits.contains(&split) {
                            wanted.push((path, split));
                        }
                        continue;
                    }
                },
            };
            warn(&bar, path, &reason);
            skip(path, reason);
        }
        if repeats > 0 {
            bar.suspend(|| eprintln!("note: skipping {repeats} files that repeat an earlier file's content"));
        }

        bar.set_length(wanted.len() as u64);
        let decoded: Vec<_> = wanted
            .par_iter()
            .map(|&(path, split)| {
                let samples = decode_mono(path, config.sample_rate).map_err(|e| {
                    let reason = reason_of(e);
                    warn(&bar, path, &reason);
                    reason
                });
                bar.inc(1);
                (path, split, samples)
            })
            .collect();
        bar.finish_and_clear();

        let mut recordings: [Vec<Recording>; 3] = Default::default();
        // (split, folder) → the index of that folder's joined recording in its split's list.
        let mut joined: HashMap<(usize, PathBuf), usize> = HashMap::new();
        for (path, split, samples) in decoded {
            let samples = match samples {
                Ok(samples) => samples,
                Err(reason) => {
                    skip(path, reason);
                    continue;
                }
            };
            let list = &mut recordings[split.index()];
            if samples.len() >= config.join_shorter_than {
                list.push(Recording { sources: vec![path.clone()], samples });
                continue;
            }
            let folder = path.parent().unwrap_or(Path::new("")).to_path_buf();
            match joined.entry((split.index(), folder)) {
                Entry::Occupied(i) => {
                    let recording = &mut list[*i.get()];
                    recording.sources.push(path.clone());
                    recording.samples.extend_from_slice(&samples);
                }
                Entry::Vacant(slot) => {
                    slot.insert(list.len());
                    list.push(Recording { sources: vec![path.clone()], samples });
                }
            }
        }
        Ok(Corpus { sample_rate: config.sample_rate, recordings, skipped })
    }

    /// The rate of every recording, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The recordings of `split`, ordered by their first file's path.
    pub fn recordings(&self, split: Split) -> &[Recording] {
        &self.recordings[split.index()]
    }

    /// The files left out: unreadable files and duplicates, then files that failed to decode,
    /// each group in path order.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The `splits` of the audio under `roots` ([`scan`], then [`Corpus::load`] with the
    /// default settings); each must have files, or the error says that `purpose` needs more.
    pub fn from_roots(roots: &[PathBuf], splits: &[Split], purpose: &str) -> Result<Corpus> {
        let files = scan(roots)?;
        let corpus = Corpus::load(&files, &CorpusConfig { splits: splits.to_vec(), ..CorpusConfig::default() })?;
        if let Some(split) = splits.iter().find(|&&split| corpus.num_files(split) == 0) {
            let roots = roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ");
            return Err(Error::NoClips {
                reason: format!("the {split} split of {roots} has no usable files; {purpose} needs more audio files"),
            });
        }
        Ok(corpus)
    }

    /// Number of files in `split`.
    pub fn num_files(&self, split: Split) -> usize {
        self.recordings(split).iter().map(|r| r.sources.len()).sum()
    }

    /// Total duration of `split` in seconds.
    pub fn duration_s(&self, split: Split) -> f64 {
        let frames: usize = self.recordings(split).iter().map(|r| r.samples.len()).sum();
        frames as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes a file, mixes it to mono and resamples it to `sample_rate`.
fn decode_mono(path: &Path, sample_rate: u32) -> Result<Vec<f32>> {
    let mono = audio::resample(&audio::read(path)?.to_mono(), sample_rate)?;
    Ok(mono.channels.into_iter().next().expect("mono audio has one channel"))
}

/// The reason half of an error (the warning line names the file already).
fn reason_of(error: Error) -> String {
    match error {
        Error::AudioRead { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Prints the warning line for a skipped file, above the progress bar.
fn warn(bar: &ProgressBar, path: &Path, reason: &str) {
    bar.suspend(|| eprintln!("warning: skipping {}: {reason}", path.display()));
}

/// The decoding progress bar (its length is set once the files to decode are known).
fn progress_bar() -> ProgressBar {
    let style =
        ProgressStyle::with_template("decoding {bar:40} {pos}/{len} files, {elapsed} (eta {eta})").expect("valid progress template");
    ProgressBar::new(0).with_style(style)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::audio::Audio;
    use crate::data::test_files::{noise, write, write_noise};

    const RATE: u32 = 24_000;

    fn config(fractions: SplitFractions, join_shorter_than: usize) -> CorpusConfig {
        CorpusConfig { fractions, join_shorter_than, ..CorpusConfig::default() }
    }

    fn all_train() -> SplitFractions {
        SplitFractions { validation: 0.0, test: 0.0 }
    }

    /// Every file of the corpus with its split; panics if a file is in two splits.
    fn split_map(corpus: &Corpus) -> BTreeMap<PathBuf, Split> {
        let mut map = BTreeMap::new();
        for split in Split::ALL {
            for path in corpus.recordings(split).iter().flat_map(|r| &r.sources) {
                assert!(map.insert(path.clone(), split).is_none(), "{} is in two splits", path.display());
            }
        }
        map
    }

    #[test]
    fn scan_finds_audio_files_recursively_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for name in ["c/d/e.wav", "b/x.wav", "a.WAV"] {
            write_noise(&root, name, RATE, 100, 1);
        }
        std::fs::write(root.join("b/notes.txt"), "not audio").unwrap();
        let want: Vec<PathBuf> = ["a.WAV", "b/x.wav", "c/d/e.wav"].iter().map(|n| root.join(n)).collect();
        assert_eq!(scan(std::slice::from_ref(&root)).unwrap(), want);
        assert_eq!(scan(&[root.join("c"), root.clone()]).unwrap(), want, "overlapping roots list a file once");
        assert_eq!(scan(&[root.join("b/x.wav"), root.join("a.WAV")]).unwrap(), want[..2], "files as roots");
        let missing = root.join("missing");
        let error = scan(std::slice::from_ref(&missing)).unwrap_err().to_string();
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }

    #[test]
    fn split_is_deterministic_disjoint_and_stable_when_files_are_added() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let fractions = SplitFractions::default();
        for i in 0..40 {
            write_noise(&root, &format!("first/{i:02}.wav"), RATE, 500, i);
        }
        let load = |splits: &[Split]| {
            let config = CorpusConfig { splits: splits.to_vec(), ..config(fractions, 0) };
            Corpus::load(&scan(std::slice::from_ref(&root)).unwrap(), &config).unwrap()
        };
        let before = split_map(&load(&Split::ALL));
        assert_eq!(before.len(), 40, "every file is in exactly one split");
        assert_eq!(split_map(&load(&Split::ALL)), before, "deterministic");

        for i in 40..100 {
            write_noise(&root, &format!("added/{i:02}.wav"), RATE, 500, i);
        }
        let after = split_map(&load(&Split::ALL));
        assert_eq!(after.len(), 100);
        for (path, split) in &before {
            assert_eq!(after[path], *split, "{} moved", path.display());
        }
        for split in Split::ALL {
            assert!(after.values().any(|&s| s == split), "{split} is empty");
        }
        let test_only = split_map(&load(&[Split::Test]));
        let test_files: BTreeMap<_, _> = after.into_iter().filter(|&(_, s)| s == Split::Test).collect();
        assert_eq!(test_only, test_files, "loading one split decodes exactly its files");
    }

    #[test]
    fn split_fractions_are_followed_and_checked() {
        let fractions = SplitFractions { validation: 0.2, test: 0.05 };
        let mut counts = [0usize; 3];
        let n = 20_000;
        for i in 0..n as u64 {
            counts[fractions.split_of(content_hash(&i.to_le_bytes())).index()] += 1;
        }
        for (count, want) in counts.iter().zip([0.75, 0.2, 0.05]) {
            let share = *count as f64 / n as f64;
            assert!((share - want).abs() < 0.01, "{counts:?}");
        }
        // The hash decides every file's split, so it must never change.
        assert_eq!(content_hash(b"afx"), 0x2429_f7e5_5ae9_432e);
        assert!(SplitFractions { validation: 0.6, test: 0.5 }.validate().is_err());
        assert!(SplitFractions { validation: -0.1, test: 0.1 }.validate().is_err());
        SplitFractions { validation: 0.0, test: 1.0 }.validate().unwrap();
    }

    #[test]
    fn corpus_decodes_to_mono_at_the_training_rate() {
        let dir = tempfile::tempdir().unwrap();
        let left = noise(48_001, 3);
        let right: Vec<f32> = left.iter().map(|x| 0.5 * x).collect();
        let path = write(dir.path(), "stereo48k.wav", &Audio { sample_rate: 48_000, channels: vec![left.clone(), right] });
        let corpus = Corpus::load(std::slice::from_ref(&path), &config(all_train(), 0)).unwrap();
        assert_eq!(corpus.sample_rate(), RATE);
        let recording = &corpus.recordings(Split::Train)[0];
        assert_eq!(recording.sources, [path]);
        assert_eq!(recording.samples.len(), 24_001, "round(48001 / 2)");
        let mix = Audio { sample_rate: 48_000, channels: vec![left.iter().map(|x| 0.75 * x).collect()] };
        let want = crate::audio::resample(&mix, RATE).unwrap();
        let error = recording.samples.iter().zip(&want.channels[0]).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(error < 1e-6, "not the resampled mono mix: {error}");
        assert!((corpus.duration_s(Split::Train) - 24_001.0 / 24_000.0).abs() < 1e-12);
    }

    #[test]
    fn unreadable_and_duplicate_files_are_skipped_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let good = write_noise(dir.path(), "a.wav", RATE, 1000, 4);
        let copy = dir.path().join("sub/b.wav");
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&good, &copy).unwrap();
        std::fs::write(dir.path().join("c.ogg"), b"this is not an Ogg file").unwrap();
        std::fs::write(dir.path().join("d.flac"), b"").unwrap();
        let files = scan(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(files.len(), 4);
        let corpus = Corpus::load(&files, &config(all_train(), 0)).unwrap();
        assert_eq!(corpus.num_files(Split::Train), 1);
        let reasons: BTreeMap<_, _> = corpus.skipped().iter().map(|s| (s.path.clone(), s.reason.clone())).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[&copy].contains("same content as") && reasons[&copy].contains("a.wav"), "{reasons:?}");
        assert!(reasons[&dir.path().join("d.flac")].contains("empty"), "{reasons:?}");
        assert!(reasons.contains_key(&dir.path().join("c.ogg")));
    }

    #[test]
    fn short_files_are_joined_within_their_split_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..12u64 {
            write_noise(dir.path(), &format!("speech/{i:02}.wav"), RATE, 2000, 10 + i);
        }
        for i in 0..5u64 {
            write_noise(dir.path(), &format!("speech/more/{i:02}.wav"), RATE, 1500, 30 + i);
        }
        let long = write_noise(dir.path(), "speech/long.wav", RATE, 50_000, 40);
        let files = scan(&[dir.path().to_path_buf()]).unwrap();

        let single = Corpus::load(&files, &config(all_train(), 0)).unwrap();
        let joined = Corpus::load(&files, &config(all_train(), 10_000)).unwrap();
        let reversed: Vec<PathBuf> = files.iter().rev().cloned().collect();
        let from_reversed = Corpus::load(&reversed, &config(all_train(), 10_000)).unwrap();
        assert_eq!(from_reversed.recordings(Split::Train), joined.recordings(Split::Train), "file order does not matter");
        let sources: Vec<Vec<PathBuf>> = joined.recordings(Split::Train).iter().map(|r| r.sources.clone()).collect();
        let in_folder =
            |folder: &str, n: usize| -> Vec<PathBuf> { (0..n).map(|i| dir.path().join(folder).join(format!("{i:02}.wav"))).collect() };
        assert_eq!(sources, [in_folder("speech", 12), vec![long], in_folder("speech/more", 5)], "joined per folder");
        for recording in joined.recordings(Split::Train) {
            let parts: Vec<f32> = recording
                .sources
                .iter()
                .flat_map(|s| single.recordings(Split::Train).iter().find(|r| r.sources == [s.clone()]).unwrap().samples.clone())
                .collect();
            assert_eq!(recording.samples, parts, "a joined recording is its files end to end");
        }

        let by_split = split_map(&Corpus::load(&files, &config(SplitFractions::default(), 0)).unwrap());
        let joined = Corpus::load(&files, &config(SplitFractions::default(), 10_000)).unwrap();
        for split in Split::ALL {
            for path in joined.recordings(split).iter().flat_map(|r| &r.sources) {
                assert_eq!(by_split[path], split, "joining never mixes splits");
            }
        }
    }
}
