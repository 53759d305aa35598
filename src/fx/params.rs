//! The knobs of the effect chain, each declared once: name, unit, range, default and skew.
//!
//! Everything else derives from [`KNOBS`]: the CLI's `afx params`, the flat JSON knob files,
//! validation and the mapping between physical values and the normalised `[0, 1]` values a
//! network predicts. The dotted names are the public contract of the CLI and the JSON files.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{Error, Result};

/// How a knob's physical range maps to `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skew {
    /// `n = (x − min) / (max − min)`.
    Linear,
    /// Geometric: `n = ln(x / min) / ln(max / min)`, equal ratios get equal steps (Hz, ms, Q, ratio).
    Log,
}

/// One knob's declaration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KnobSpec {
    /// Flat dotted name, e.g. `eq.band1.gain_db`.
    pub name: &'static str,
    /// Unit shown to users (`dB`, `Hz`, `ms`, `:1`, or empty).
    pub unit: &'static str,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub skew: Skew,
    /// One line for `afx params`.
    pub description: &'static str,
}

impl KnobSpec {
    /// Maps a physical value to `[0, 1]` (values outside the range map outside `[0, 1]`).
    pub fn normalize(&self, x: f64) -> f64 {
        match self.skew {
            Skew::Linear => (x - self.min) / (self.max - self.min),
            Skew::Log => (x / self.min).ln() / (self.max / self.min).ln(),
        }
    }

    /// Maps a normalised value to physical units; `n` is clamped to `[0, 1]` first, and the
    /// result to the range (`exp(ln(max/min))·min` can round a hair above `max`).
    pub fn denormalize(&self, n: f64) -> f64 {
        let n = n.clamp(0.0, 1.0);
        let x = match self.skew {
            Skew::Linear => self.min + n * (self.max - self.min),
            Skew::Log => self.min * ((self.max / self.min).ln() * n).exp(),
        };
        x.clamp(self.min, self.max)
    }

    /// `d physical / d normalised` at the physical value `x` (chain rule for knob gradients).
    pub fn physical_per_normalized(&self, x: f64) -> f64 {
        match self.skew {
            Skew::Linear => self.max - self.min,
            Skew::Log => x * (self.max / self.min).ln(),
        }
    }

    /// Checks that `x` is finite and inside the range.
    pub fn validate(&self, x: f64) -> Result<()> {
        if !x.is_finite() {
            return Err(Error::KnobNotFinite { name: self.name.to_string() });
        }
        if x < self.min || x > self.max {
            return Err(Error::KnobOutOfRange {
                name: self.name.to_string(),
                value: x,
                min: self.min,
                max: self.max,
                unit: self.unit,
            });
        }
        Ok(())
    }
}

macro_rules! eq_section {
    ($prefix:literal, $what:literal, $fmin:expr, $fmax:expr, $fdef:expr) => {
        [
            KnobSpec {
                name: concat!($prefix, ".gain_db"),
                unit: "dB",
                min: -24.0,
                max: 24.0,
                default: 0.0,
                skew: Skew::Linear,
                description: concat!($what, " gain"),
            },
            KnobSpec {
                name: concat!($prefix, ".freq_hz"),
                unit: "Hz",
                min: $fmin,
                max: $fmax,
                default: $fdef,
                skew: Skew::Log,
                description: concat!($what, " frequency (clamped to 0.45 x sample rate)"),
            },
            KnobSpec {
                name: concat!($prefix, ".q"),
                unit: "",
                min: 0.1,
                max: 10.0,
                default: 0.707,
                skew: Skew::Log,
                description: concat!($what, " Q"),
            },
        ]
    };
}

/// Number of EQ sections (low shelf, four peaking bands, high shelf).
pub const NUM_EQ_SECTIONS: usize = 6;
/// Knobs per EQ section (gain, frequency, Q).
pub const KNOBS_PER_SECTION: usize = 3;
/// Index of the first compressor knob in [`KNOBS`].
pub const COMP_OFFSET: usize = NUM_EQ_SECTIONS * KNOBS_PER_SECTION;
/// Number of compressor knobs.
pub const NUM_COMP_KNOBS: usize = 6;
/// Total number of knobs of the chain.
pub const NUM_KNOBS: usize = COMP_OFFSET + NUM_COMP_KNOBS;

const fn flatten(
    sections: [[KnobSpec; KNOBS_PER_SECTION]; NUM_EQ_SECTIONS],
    comp: [KnobSpec; NUM_COMP_KNOBS],
) -> [KnobSpec; NUM_KNOBS] {
    let mut out = [comp[0]; NUM_KNOBS];
    let mut s = 0;
    while s < NUM_EQ_SECTIONS {
        let mut k = 0;
        while k < KNOBS_PER_SECTION {
            out[s * KNOBS_PER_SECTION + k] = sections[s][k];
            k += 1;
        }
        s += 1;
    }
    let mut c = 0;
    while c < NUM_COMP_KNOBS {
        out[COMP_OFFSET + c] = comp[c];
        c += 1;
    }
    out
}

const fn comp(
    name: &'static str,
    unit: &'static str,
    min: f64,
    max: f64,
    default: f64,
    skew: Skew,
    description: &'static str,
) -> KnobSpec {
    KnobSpec { name, unit, min, max, default, skew, description }
}

/// Every knob of the chain, in the order of the knob vector: EQ sections, then compressor.
pub const KNOBS: [KnobSpec; NUM_KNOBS] = flatten(
    [
        eq_section!("eq.low_shelf", "low shelf", 20.0, 200.0, 100.0),
        eq_section!("eq.band1", "peaking band 1", 200.0, 2000.0, 400.0),
        eq_section!("eq.band2", "peaking band 2", 800.0, 4000.0, 1000.0),
        eq_section!("eq.band3", "peaking band 3", 2000.0, 8000.0, 4000.0),
        eq_section!("eq.band4", "peaking band 4", 4000.0, 12000.0, 8000.0),
        eq_section!("eq.high_shelf", "high shelf", 4000.0, 12000.0, 8000.0),
    ],
    [
        comp("comp.threshold_db", "dB", -80.0, 0.0, -12.0, Skew::Linear, "compressor threshold"),
        comp("comp.ratio", ":1", 1.0, 20.0, 2.0, Skew::Log, "compressor ratio"),
        comp("comp.attack_ms", "ms", 0.1, 100.0, 1.0, Skew::Log, "compressor attack time (to 90 %)"),
        comp("comp.release_ms", "ms", 5.0, 1000.0, 45.0, Skew::Log, "compressor release time (to 90 %)"),
        comp("comp.knee_db", "dB", 0.0, 12.0, 6.0, Skew::Linear, "compressor soft-knee width"),
        comp("comp.makeup_db", "dB", -24.0, 24.0, 0.0, Skew::Linear, "compressor make-up gain"),
    ],
);

/// Position of each compressor knob in the knob vector.
pub mod comp_index {
    use super::COMP_OFFSET;
    pub const THRESHOLD_DB: usize = COMP_OFFSET;
    pub const RATIO: usize = COMP_OFFSET + 1;
    pub const ATTACK_MS: usize = COMP_OFFSET + 2;
    pub const RELEASE_MS: usize = COMP_OFFSET + 3;
    pub const KNEE_DB: usize = COMP_OFFSET + 4;
    pub const MAKEUP_DB: usize = COMP_OFFSET + 5;
}

/// Looks a knob up by its dotted name.
pub fn knob_index(name: &str) -> Result<usize> {
    KNOBS
        .iter()
        .position(|k| k.name == name)
        .ok_or_else(|| Error::UnknownKnob { name: name.to_string() })
}

/// A full setting of the chain in physical units (dB, Hz, ms, ratio), in [`KNOBS`] order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Knobs(pub [f64; NUM_KNOBS]);

impl Default for Knobs {
    fn default() -> Self {
        Knobs(KNOBS.map(|k| k.default))
    }
}

impl Knobs {
    /// Builds knobs from normalised values (each clamped to `[0, 1]`).
    pub fn from_normalized(n: &[f64]) -> Knobs {
        assert_eq!(n.len(), NUM_KNOBS, "expected {NUM_KNOBS} normalised knobs");
        Knobs(std::array::from_fn(|i| KNOBS[i].denormalize(n[i])))
    }

    /// The normalised values of these knobs.
    pub fn to_normalized(&self) -> [f64; NUM_KNOBS] {
        std::array::from_fn(|i| KNOBS[i].normalize(self.0[i]))
    }

    /// Reads a knob by name.
    pub fn get(&self, name: &str) -> Result<f64> {
        Ok(self.0[knob_index(name)?])
    }

    /// Sets a knob by name after checking its range.
    pub fn set(&mut self, name: &str, value: f64) -> Result<()> {
        let i = knob_index(name)?;
        KNOBS[i].validate(value)?;
        self.0[i] = value;
        Ok(())
    }

    /// Checks every knob against its range.
    pub fn validate(&self) -> Result<()> {
        KNOBS.iter().zip(self.0).try_for_each(|(k, v)| k.validate(v))
    }

    /// Applies `name=value` assignments (as given to `--set`).
    pub fn apply_assignment(&mut self, assignment: &str) -> Result<()> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("expected NAME=VALUE, got `{assignment}`")))?;
        let name = name.trim();
        let value: f64 = value.trim().parse().map_err(|_| {
            Error::Invalid(format!("knob `{name}`: `{}` is not a number", value.trim()))
        })?;
        self.set(name, value)
    }

    /// Applies a flat JSON object `{ "eq.band1.gain_db": 3.0, ... }`; absent knobs keep their value.
    pub fn apply_json(&mut self, json: &str) -> Result<()> {
        let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| Error::Invalid(format!("expected a flat JSON object of knobs: {e}")))?;
        for (name, value) in map {
            let v = value
                .as_f64()
                .ok_or_else(|| Error::Invalid(format!("knob `{name}`: value {value} is not a number")))?;
            self.set(&name, v)?;
        }
        Ok(())
    }

    /// Reads a knob file (flat JSON object) on top of the defaults.
    pub fn from_json_file(path: &Path) -> Result<Knobs> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::KnobFile { path: path.to_path_buf(), reason: e.to_string() })?;
        let mut knobs = Knobs::default();
        knobs
            .apply_json(&text)
            .map_err(|e| Error::KnobFile { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(knobs)
    }

    /// The flat JSON object of all knobs, in declaration order.
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        for (k, v) in KNOBS.iter().zip(self.0) {
            map.insert(k.name.to_string(), serde_json::json!(v));
        }
        serde_json::to_string_pretty(&serde_json::Value::Object(map)).expect("knobs serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defaults_in_range() {
        for (i, a) in KNOBS.iter().enumerate() {
            a.validate(a.default).unwrap();
            assert!(a.min < a.max, "{}", a.name);
            assert!(a.skew == Skew::Linear || a.min > 0.0, "{}: log skew needs min > 0", a.name);
            for b in &KNOBS[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
        assert_eq!(KNOBS[comp_index::MAKEUP_DB].name, "comp.makeup_db");
        assert_eq!(KNOBS[17].name, "eq.high_shelf.q");
    }

    #[test]
    fn normalisation_round_trips_and_its_derivative_matches_finite_differences() {
        for k in &KNOBS {
            for n in [0.0, 0.13, 0.5, 0.77, 1.0] {
                let x = k.denormalize(n);
                assert!((k.normalize(x) - n).abs() < 1e-12, "{}", k.name);
                let h = 1e-6;
                let (lo, hi) = ((n - h).max(0.0), (n + h).min(1.0));
                let fd = (k.denormalize(hi) - k.denormalize(lo)) / (hi - lo);
                let d = k.physical_per_normalized(x);
                assert!((fd - d).abs() <= 1e-5 * d.abs(), "{}: {fd} vs {d}", k.name);
            }
            for i in 0..=1000 {
                k.validate(k.denormalize(f64::from(i) / 1000.0)).unwrap();
            }
            assert_eq!(k.denormalize(0.0), k.min);
            assert!((k.denormalize(1.0) - k.max).abs() < 1e-9 * k.max.abs().max(1.0));
        }
    }

    #[test]
    fn json_round_trip_and_errors_name_the_knob() {
        let mut k = Knobs::default();
        k.set("comp.ratio", 4.0).unwrap();
        k.set("eq.band2.freq_hz", 1234.5).unwrap();
        let mut back = Knobs::default();
        back.apply_json(&k.to_json()).unwrap();
        assert_eq!(back, k);
        let e = Knobs::default().apply_json(r#"{"comp.ratoi": 3}"#).unwrap_err().to_string();
        assert!(e.contains("comp.ratoi"), "{e}");
        let e = Knobs::default().apply_assignment("comp.ratio=40").unwrap_err().to_string();
        assert!(e.contains("comp.ratio") && e.contains("20"), "{e}");
    }
}
