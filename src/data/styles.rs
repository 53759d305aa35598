//! Target styles: the five named styles of DeepAFx-ST (`scripts/generate_styles.py`) as
//! distributions over our knobs, and a random setting of the whole chain for the random-style
//! protocol.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fx::params::{KNOBS_PER_SECTION, NUM_EQ_SECTIONS, default_chain, knob_index};
use crate::fx::{KNOBS, Knobs};
use crate::{Error, Result};

/// A named production style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Style {
    Broadcast,
    Telephone,
    Neutral,
    Bright,
    /// The script's code boosts the high shelf where its comment asks for a cut; we cut (see
    /// [`Style::distribution`]).
    Warm,
}

/// How a named style sets one knob: a fixed value, or a uniform draw in physical units
/// (`torch.rand` scaled and offset, as `generate_styles.py` draws).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Draw {
    Fixed(f64),
    Uniform { low: f64, high: f64 },
}

use Draw::{Fixed, Uniform};

/// `U(low, high)`.
const fn uniform(low: f64, high: f64) -> Draw {
    Uniform { low, high }
}

/// The compressor of "bright" and "warm": ratio 1 and threshold 0 dB, i.e. bypassed.
const BYPASSED_COMPRESSOR: [(&str, Draw); 4] =
    [("comp.threshold_db", Fixed(0.0)), ("comp.ratio", Fixed(1.0)), ("comp.attack_ms", Fixed(50.0)), ("comp.release_ms", Fixed(250.0))];

impl Style {
    /// All named styles, in the order of DeepAFx-ST's class labels (`data/style.py`: broadcast 0,
    /// telephone 1, neutral 2, bright 3, warm 4).
    pub const ALL: [Style; 5] = [Style::Broadcast, Style::Telephone, Style::Neutral, Style::Bright, Style::Warm];

    /// The style's name, as parsed and printed.
    pub fn name(self) -> &'static str {
        match self {
            Style::Broadcast => "broadcast",
            Style::Telephone => "telephone",
            Style::Neutral => "neutral",
            Style::Bright => "bright",
            Style::Warm => "warm",
        }
    }

    /// One line describing the style, for listings.
    pub fn description(self) -> &'static str {
        match self {
            Style::Broadcast => "more presence (low and high shelf boosts) and aggressive compression",
            Style::Telephone => "band-pass (low and high shelf cuts, 1-2 kHz boost) and compression",
            Style::Neutral => "slight presence (small shelf boosts) and gentle compression",
            Style::Bright => "strong high-shelf boost and low cut, no compression",
            Style::Warm => "strong bass boost and high-shelf cut, no compression",
        }
    }

    /// The knobs this style sets, with their distributions, as `generate_styles.py` draws them
    /// (attack and release there in seconds, here in ms). Every other knob keeps its value in
    /// [`Style::base`].
    ///
    /// "warm" differs from the code on purpose: its high shelf is coded `-(U·6) + 20`, i.e. a
    /// boost of U(14, 20) dB, where the comment says "high-shelf decrease" and every other cut
    /// in the script is `-(U·6 + 20)`. We implement the intended cut, U(−26, −20) dB.
    pub fn distribution(self) -> Vec<(&'static str, Draw)> {
        let mut knobs = match self {
            Style::Neutral => vec![
                ("comp.threshold_db", uniform(-30.0, -20.0)),
                ("comp.ratio", uniform(1.5, 2.0)),
                ("comp.attack_ms", uniform(50.0, 70.0)),
                ("comp.release_ms", uniform(100.0, 300.0)),
                ("eq.low_shelf.gain_db", uniform(1.0, 3.0)),
                ("eq.low_shelf.freq_hz", uniform(80.0, 200.0)),
                ("eq.high_shelf.gain_db", uniform(1.0, 3.0)),
                ("eq.high_shelf.freq_hz", uniform(6000.0, 8000.0)),
            ],
            Style::Broadcast => vec![
                ("comp.threshold_db", uniform(-50.0, -40.0)),
                ("comp.ratio", uniform(3.0, 5.0)),
                ("comp.attack_ms", uniform(5.0, 30.0)),
                ("comp.release_ms", uniform(50.0, 150.0)),
                ("eq.low_shelf.gain_db", uniform(2.0, 6.0)),
                ("eq.low_shelf.freq_hz", uniform(80.0, 200.0)),
                ("eq.high_shelf.gain_db", uniform(2.0, 6.0)),
                ("eq.high_shelf.freq_hz", uniform(6000.0, 8000.0)),
            ],
            Style::Telephone => vec![
                ("comp.threshold_db", uniform(-40.0, -20.0)),
                ("comp.ratio", uniform(1.5, 3.0)),
                ("comp.attack_ms", uniform(1.0, 6.0)),
                ("comp.release_ms", uniform(10.0, 60.0)),
                ("eq.low_shelf.gain_db", uniform(-26.0, -20.0)),
                ("eq.low_shelf.freq_hz", uniform(200.0, 400.0)),
                ("eq.band1.gain_db", uniform(12.0, 16.0)),
                ("eq.band1.freq_hz", uniform(1000.0, 2000.0)),
                ("eq.high_shelf.gain_db", uniform(-26.0, -20.0)),
                ("eq.high_shelf.freq_hz", uniform(4000.0, 6000.0)),
            ],
            Style::Bright => vec![
                ("eq.low_shelf.gain_db", uniform(-26.0, -20.0)),
                ("eq.low_shelf.freq_hz", uniform(200.0, 400.0)),
                ("eq.high_shelf.gain_db", uniform(20.0, 26.0)),
                ("eq.high_shelf.freq_hz", uniform(8000.0, 10000.0)),
            ],
            Style::Warm => vec![
                ("eq.low_shelf.gain_db", uniform(20.0, 26.0)),
                ("eq.low_shelf.freq_hz", uniform(200.0, 400.0)),
                ("eq.high_shelf.gain_db", uniform(-26.0, -20.0)),
                ("eq.high_shelf.freq_hz", uniform(8000.0, 10000.0)),
            ],
        };
        if matches!(self, Style::Bright | Style::Warm) {
            knobs.extend(BYPASSED_COMPRESSOR);
        }
        knobs
    }

    /// The knobs a style starts from: our defaults, with the compressor's knee and make-up at
    /// 0 dB, the defaults of the `compressor` function `generate_styles.py` calls, and peaking
    /// band 1 flat at 1 kHz as the script sets it (bands 2–4 are flat by default).
    pub fn base() -> Knobs {
        let mut knobs = Knobs::default();
        knobs.0[default_chain::KNEE_DB] = 0.0;
        knobs.0[default_chain::MAKEUP_DB] = 0.0;
        knobs.0[knob_index("eq.band1.freq_hz").expect("declared knob")] = 1000.0;
        knobs
    }

    /// Draws one setting of this style: [`Style::base`] with every knob of
    /// [`Style::distribution`] drawn and then clamped into our knob range. The clamping matters
    /// in two places, because the script's draws exceed even its own processor's ranges: shelf
    /// gains of ±(20…26) dB become ±(20…24) dB, and the low-shelf frequencies U(200, 400) Hz of
    /// "telephone", "bright" and "warm" become 200 Hz, the top of the low shelf's range.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Knobs {
        let mut knobs = Style::base();
        for (name, draw) in self.distribution() {
            let i = knob_index(name).expect("styles name declared knobs");
            let value = match draw {
                Fixed(v) => v,
                Uniform { low, high } => rng.random_range(low..=high),
            };
            knobs.0[i] = value.clamp(KNOBS[i].min, KNOBS[i].max);
        }
        knobs
    }

    /// [`Style::sample`] with a generator seeded by `seed` (`afx styles --sample`, `afx example
    /// --style`).
    pub fn sample_seeded(&self, seed: u64) -> Knobs {
        self.sample(&mut ChaCha8Rng::seed_from_u64(seed))
    }
}

/// `afx styles`: every named style, its description and how each of its knobs is drawn.
pub fn listing() -> String {
    let mut out = String::new();
    for style in Style::ALL {
        out += &format!("{:<10} {}\n", style.name(), style.description());
        for (knob, draw) in style.distribution() {
            out += &match draw {
                Fixed(v) => format!("    {knob:<22} {v}\n"),
                Uniform { low, high } => format!("    {knob:<22} {low} .. {high}\n"),
            };
        }
    }
    out
}

/// `afx styles --sample NAME`: a draw of the style named `name` as the flat JSON knob file
/// `afx apply --params` reads.
pub fn sample_file(name: &str, seed: u64) -> Result<String> {
    Ok(name.parse::<Style>()?.sample_seeded(seed).to_json() + "\n")
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Style {
    type Err = Error;

    /// Parses a style name (case-insensitive).
    fn from_str(s: &str) -> Result<Style> {
        Style::ALL.into_iter().find(|style| style.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            let names: Vec<&str> = Style::ALL.iter().map(|style| style.name()).collect();
            Error::UnknownStyle { name: s.to_string(), known: names.join(", ") }
        })
    }
}

/// Probability that an EQ section of a random setting is active; an inactive one is flat.
const SECTION_ACTIVE_PROBABILITY: f64 = 0.8;
/// Probability that an active section's gain is drawn from ±[`MODERATE_GAIN_DB`] rather than
/// from the knob's full ±24 dB.
const MODERATE_GAIN_PROBABILITY: f64 = 0.9;
const MODERATE_GAIN_DB: f64 = 12.0;
/// Q range of the peaking bands: from about three octaves wide to a fifth of an octave.
const PEAKING_Q: (f64, f64) = (0.3, 5.0);
/// Q range of the shelves: up to 1, above which an RBJ shelf overshoots audibly.
const SHELF_Q: (f64, f64) = (0.4, 1.0);
/// Probability that the compressor of a random setting is bypassed (ratio 1, threshold 0 dB).
const COMPRESSOR_BYPASS_PROBABILITY: f64 = 0.25;
/// Threshold range of an active compressor, for audio peaking at −12 dBFS: from the peak down
/// to −64 dB, the range of DeepAFx-ST's `dynamic_range_compression`.
const THRESHOLD_DB: (f64, f64) = (-64.0, -12.0);

/// A random setting of the whole chain, for the random-style protocol and for input corruption.
///
/// Knobs are drawn uniformly in the normalised domain (so log-skewed knobs are log-uniform),
/// over a musically sane part of their range: each EQ section is active with probability 0.8
/// (else 0 dB), with a gain within ±12 dB nine times in ten and within ±24 dB otherwise, any
/// frequency of its range, and a moderate Q; the compressor is bypassed one time in four,
/// otherwise its threshold lies between −64 and −12 dB, and ratio, attack, release and knee
/// span their whole ranges. Make-up keeps its default, 0 dB: every pair is peak-normalised
/// afterwards.
pub fn random_style<R: Rng + ?Sized>(rng: &mut R) -> Knobs {
    let mut knobs = Knobs::default();
    for section in 0..NUM_EQ_SECTIONS {
        let [gain, freq, q] = std::array::from_fn(|k| section * KNOBS_PER_SECTION + k);
        let gain_range_db = if rng.random_bool(MODERATE_GAIN_PROBABILITY) { MODERATE_GAIN_DB } else { KNOBS[gain].max };
        let active = rng.random_bool(SECTION_ACTIVE_PROBABILITY);
        knobs.0[gain] = if active { rng.random_range(-gain_range_db..=gain_range_db) } else { 0.0 };
        knobs.0[freq] = normalized_uniform(rng, freq, KNOBS[freq].min, KNOBS[freq].max);
        let shelf = section == 0 || section == NUM_EQ_SECTIONS - 1;
        let (q_low, q_high) = if shelf { SHELF_Q } else { PEAKING_Q };
        knobs.0[q] = normalized_uniform(rng, q, q_low, q_high);
    }
    for i in [default_chain::RATIO, default_chain::ATTACK_MS, default_chain::RELEASE_MS, default_chain::KNEE_DB] {
        knobs.0[i] = normalized_uniform(rng, i, KNOBS[i].min, KNOBS[i].max);
    }
    if rng.random_bool(COMPRESSOR_BYPASS_PROBABILITY) {
        bypass_compressor(&mut knobs);
    } else {
        knobs.0[default_chain::THRESHOLD_DB] = rng.random_range(THRESHOLD_DB.0..=THRESHOLD_DB.1);
    }
    knobs
}

/// Bypasses the compressor of `knobs`: ratio 1 makes it the identity (threshold 0 dB as well,
/// so the setting reads as off); the make-up gain is left alone.
pub(super) fn bypass_compressor(knobs: &mut Knobs) {
    knobs.0[default_chain::THRESHOLD_DB] = 0.0;
    knobs.0[default_chain::RATIO] = 1.0;
}

/// A random colouring of content, for training augmentation: the two shelves and the broadest
/// peaking band (band 1) of our EQ, each with a gain uniform in ±`max_db`, any frequency of its
/// range and the broad end of its Q range (shelves 0.4–0.7, the band 0.3–1, about 2.4 to 1.4
/// octaves); the compressor bypassed. Gentle and broad by design: it changes a recording's
/// long-term spectrum (a darker or brighter, thinner or fuller room or microphone) rather than
/// adding a production style.
pub fn random_colour<R: Rng + ?Sized>(rng: &mut R, max_db: f64) -> Knobs {
    let mut knobs = Knobs::default();
    bypass_compressor(&mut knobs);
    for (section, q_range) in [(0, (0.4, 0.7)), (1, (0.3, 1.0)), (NUM_EQ_SECTIONS - 1, (0.4, 0.7))] {
        let [gain, freq, q] = std::array::from_fn(|k| section * KNOBS_PER_SECTION + k);
        knobs.0[gain] = rng.random_range(-max_db..=max_db);
        knobs.0[freq] = normalized_uniform(rng, freq, KNOBS[freq].min, KNOBS[freq].max);
        knobs.0[q] = normalized_uniform(rng, q, q_range.0, q_range.1);
    }
    knobs
}

/// A value of knob `i` drawn uniformly in the normalised domain between the physical values
/// `low` and `high`.
fn normalized_uniform<R: Rng + ?Sized>(rng: &mut R, i: usize, low: f64, high: f64) -> f64 {
    let spec = &KNOBS[i];
    spec.denormalize(rng.random_range(spec.normalize(low)..=spec.normalize(high))).clamp(low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Every knob's expected range `[low, high]` for a style, written out from the table of
    /// DeepAFx-ST's `generate_styles.py` (warm's high shelf as a cut) and clamped by hand into
    /// our knob ranges; knobs a style does not set sit at the script's defaults.
    fn expected(style: Style) -> Vec<(&'static str, f64, f64)> {
        let mut table = vec![
            ("eq.low_shelf.q", 0.707, 0.707),
            ("eq.band1.gain_db", 0.0, 0.0),
            ("eq.band1.freq_hz", 1000.0, 1000.0),
            ("eq.band1.q", 0.707, 0.707),
            ("eq.band2.gain_db", 0.0, 0.0),
            ("eq.band2.freq_hz", 1000.0, 1000.0),
            ("eq.band2.q", 0.707, 0.707),
            ("eq.band3.gain_db", 0.0, 0.0),
            ("eq.band3.freq_hz", 4000.0, 4000.0),
            ("eq.band3.q", 0.707, 0.707),
            ("eq.band4.gain_db", 0.0, 0.0),
            ("eq.band4.freq_hz", 8000.0, 8000.0),
            ("eq.band4.q", 0.707, 0.707),
            ("eq.high_shelf.q", 0.707, 0.707),
            ("comp.knee_db", 0.0, 0.0),
            ("comp.makeup_db", 0.0, 0.0),
        ];
        let bypassed =
            [("comp.threshold_db", 0.0, 0.0), ("comp.ratio", 1.0, 1.0), ("comp.attack_ms", 50.0, 50.0), ("comp.release_ms", 250.0, 250.0)];
        let specific: Vec<(&str, f64, f64)> = match style {
            Style::Neutral => vec![
                ("comp.threshold_db", -30.0, -20.0),
                ("comp.ratio", 1.5, 2.0),
                ("comp.attack_ms", 50.0, 70.0),
                ("comp.release_ms", 100.0, 300.0),
                ("eq.low_shelf.gain_db", 1.0, 3.0),
                ("eq.low_shelf.freq_hz", 80.0, 200.0),
                ("eq.high_shelf.gain_db", 1.0, 3.0),
                ("eq.high_shelf.freq_hz", 6000.0, 8000.0),
            ],
            Style::Broadcast => vec![
                ("comp.threshold_db", -50.0, -40.0),
                ("comp.ratio", 3.0, 5.0),
                ("comp.attack_ms", 5.0, 30.0),
                ("comp.release_ms", 50.0, 150.0),
                ("eq.low_shelf.gain_db", 2.0, 6.0),
                ("eq.low_shelf.freq_hz", 80.0, 200.0),
                ("eq.high_shelf.gain_db", 2.0, 6.0),
                ("eq.high_shelf.freq_hz", 6000.0, 8000.0),
            ],
            Style::Telephone => vec![
                ("comp.threshold_db", -40.0, -20.0),
                ("comp.ratio", 1.5, 3.0),
                ("comp.attack_ms", 1.0, 6.0),
                ("comp.release_ms", 10.0, 60.0),
                ("eq.low_shelf.gain_db", -24.0, -20.0),
                ("eq.low_shelf.freq_hz", 200.0, 200.0),
                ("eq.band1.gain_db", 12.0, 16.0),
                ("eq.band1.freq_hz", 1000.0, 2000.0),
                ("eq.high_shelf.gain_db", -24.0, -20.0),
                ("eq.high_shelf.freq_hz", 4000.0, 6000.0),
            ],
            Style::Bright => [
                &bypassed[..],
                &[
                    ("eq.low_shelf.gain_db", -24.0, -20.0),
                    ("eq.low_shelf.freq_hz", 200.0, 200.0),
                    ("eq.high_shelf.gain_db", 20.0, 24.0),
                    ("eq.high_shelf.freq_hz", 8000.0, 10000.0),
                ],
            ]
            .concat(),
            Style::Warm => [
                &bypassed[..],
                &[
                    ("eq.low_shelf.gain_db", 20.0, 24.0),
                    ("eq.low_shelf.freq_hz", 200.0, 200.0),
                    ("eq.high_shelf.gain_db", -24.0, -20.0),
                    ("eq.high_shelf.freq_hz", 8000.0, 10000.0),
                ],
            ]
            .concat(),
        };
        for (name, low, high) in specific {
            table.retain(|(n, _, _)| *n != name);
            table.push((name, low, high));
        }
        table
    }

    #[test]
    fn named_styles_stay_inside_their_documented_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for style in Style::ALL {
            let table = expected(style);
            assert_eq!(table.len(), KNOBS.len(), "{style}: the test table covers every knob");
            let draws: Vec<Knobs> = (0..2000).map(|_| style.sample(&mut rng)).collect();
            for (name, low, high) in table {
                let i = knob_index(name).unwrap();
                let values: Vec<f64> = draws.iter().map(|k| k.0[i]).collect();
                let (min, max) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                assert!(low <= min && max <= high, "{style} {name}: drawn [{min}, {max}], documented [{low}, {high}]");
                let reach = 0.02 * (high - low);
                assert!(min <= low + reach && max >= high - reach, "{style} {name}: [{min}, {max}] does not span [{low}, {high}]");
            }
            draws.iter().for_each(|k| k.validate().unwrap());
        }
    }

    #[test]
    fn style_names_parse_and_list_themselves() {
        for style in Style::ALL {
            assert_eq!(style.name().parse::<Style>().unwrap(), style);
            assert_eq!(style.to_string(), style.name());
            assert!(!style.description().is_empty());
        }
        assert_eq!(" Telephone".parse::<Style>().unwrap(), Style::Telephone);
        let error = "radio".parse::<Style>().unwrap_err().to_string();
        assert!(error.contains("radio") && Style::ALL.iter().all(|s| error.contains(s.name())), "{error}");
    }

    #[test]
    fn random_style_is_valid_reproducible_and_moderate() {
        let draw = |seed| random_style(&mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws: Vec<Knobs> = (0..4000).map(|_| random_style(&mut rng)).collect();
        draws.iter().for_each(|k| k.validate().unwrap());
        let gains: Vec<f64> = draws.iter().flat_map(|k| (0..NUM_EQ_SECTIONS).map(|s| k.0[s * KNOBS_PER_SECTION])).collect();
        let share = |pred: &dyn Fn(f64) -> bool, values: &[f64]| values.iter().filter(|&&v| pred(v)).count() as f64 / values.len() as f64;
        let flat = share(&|g| g == 0.0, &gains);
        assert!((flat - 0.2).abs() < 0.02, "flat sections {flat}");
        let moderate = share(&|g| g.abs() <= MODERATE_GAIN_DB, &gains);
        assert!(moderate > 0.93, "gains within ±12 dB: {moderate}");
        let ratios: Vec<f64> = draws.iter().map(|k| k.0[default_chain::RATIO]).collect();
        let bypassed = share(&|r| r == 1.0, &ratios);
        assert!((bypassed - 0.25).abs() < 0.03, "bypassed compressors {bypassed}");
        for k in &draws {
            for section in 0..NUM_EQ_SECTIONS {
                let q = k.0[section * KNOBS_PER_SECTION + 2];
                let (low, high) = if section == 0 || section == NUM_EQ_SECTIONS - 1 { SHELF_Q } else { PEAKING_Q };
                assert!((low..=high).contains(&q), "section {section}: Q {q}");
            }
            let threshold = k.0[default_chain::THRESHOLD_DB];
            assert!(threshold == 0.0 || (THRESHOLD_DB.0..=THRESHOLD_DB.1).contains(&threshold));
        }
    }

    /// A colour moves only the shelves and band 1, within ±max dB and their broad Q ranges;
    /// the other bands stay flat and the compressor is the identity.
    #[test]
    fn random_colour_is_broad_gentle_and_leaves_the_compressor_off() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let coloured = [0, 1, NUM_EQ_SECTIONS - 1];
        for _ in 0..500 {
            let k = random_colour(&mut rng, 4.0);
            k.validate().unwrap();
            for section in 0..NUM_EQ_SECTIONS {
                let (gain, q) = (k.0[section * KNOBS_PER_SECTION], k.0[section * KNOBS_PER_SECTION + 2]);
                if coloured.contains(&section) {
                    assert!(gain.abs() <= 4.0 && (0.3..=1.0).contains(&q), "section {section}: {gain} dB, Q {q}");
                } else {
                    assert_eq!(gain, 0.0, "section {section}");
                }
            }
            assert_eq!((k.0[default_chain::RATIO], k.0[default_chain::MAKEUP_DB]), (1.0, 0.0));
        }
    }
}
