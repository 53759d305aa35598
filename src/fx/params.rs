//! Knob values: a setting of any chain ([`ChainKnobs`]), read from and written to knob files
//! and `--set` assignments; and the fixed layout of the default chain `eq,comp` ([`Knobs`]),
//! which today's style network predicts.
//!
//! A knob file is `{"chain": "hpf,eq,comp", "knobs": {"hpf.freq_hz": 80, ...}}`; the flat
//! object of earlier versions (`{"eq.band1.gain_db": 3, ...}`) is still read, as knobs of the
//! chain it is given (the default chain unless `--chain` says otherwise). Absent knobs keep
//! their defaults; a repeated knob is an error.

use std::path::Path;
use std::sync::LazyLock;

use super::chain::ChainSpec;
use super::knob::Knob;
use super::{compressor, eq};
use crate::{Error, Result};

/// A full setting of a chain in physical units (dB, Hz, ms, ratio), in the chain's knob order.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainKnobs {
    chain: ChainSpec,
    values: Vec<f64>,
}

impl ChainKnobs {
    /// Every knob of `chain` at its default.
    pub fn defaults(chain: ChainSpec) -> Self {
        let values = chain.specs().map(|k| k.default).collect();
        ChainKnobs { chain, values }
    }

    /// Builds knobs from normalised values (each clamped to `[0, 1]`).
    pub fn from_normalized(chain: ChainSpec, n: &[f64]) -> Result<Self> {
        if n.len() != chain.num_knobs() {
            return Err(Error::KnobCount { chain: chain.to_string(), expected: chain.num_knobs(), got: n.len() });
        }
        let values = chain.specs().zip(n).map(|(k, &n)| k.denormalize(n)).collect();
        Ok(ChainKnobs { chain, values })
    }

    /// The chain these knobs set.
    pub fn chain(&self) -> &ChainSpec {
        &self.chain
    }

    /// The values in knob order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The values in knob order, to change in place (unchecked until [`ChainKnobs::validate`]).
    pub fn values_mut(&mut self) -> &mut [f64] {
        &mut self.values
    }

    /// The normalised values of these knobs.
    pub fn to_normalized(&self) -> Vec<f64> {
        self.chain.specs().zip(&self.values).map(|(k, &x)| k.normalize(x)).collect()
    }

    /// The value of the chain's [output gain](ChainSpec::output_gain) in dB (0 without one).
    pub fn output_gain_db(&self) -> f64 {
        self.chain.output_gain().map_or(0.0, |(i, _)| self.values[i])
    }

    /// The knobs that render the input as it is the way these knobs render it `input_gain_db`
    /// louder, followed by a gain of `output_gain_db`, with whether they do so exactly.
    ///
    /// Each effect declares the knobs referred to its signal's level
    /// ([`Effect::LEVEL_KNOBS`](super::effect::Effect::LEVEL_KNOBS)): up to and including the
    /// last effect with an output gain, those knobs move down by the input gain (each effect
    /// then sees the unscaled signal as it saw the scaled one), that output gain takes both
    /// gains, and the level knobs of the effects after it move up by the output gain (they then
    /// see the signal as loud as the final output is). Not exact when a knob leaves its range
    /// (it is clamped), when an effect without level knobs (a saturator) would hear another
    /// level, or when the chain has no output gain to take the two gains.
    pub fn fold_levels(&self, input_gain_db: f64, output_gain_db: f64) -> (ChainKnobs, bool) {
        let mut folded = self.clone();
        let stages = self.chain.stages();
        let gain_stage = stages.iter().rposition(|s| s.kind.output_gain().is_some());
        let mut exact = true;
        for (i, stage) in stages.iter().enumerate() {
            let shift = if gain_stage.is_some_and(|g| i > g) { output_gain_db } else { -input_gain_db };
            match stage.kind.level_knobs() {
                Some(knobs) => knobs.iter().for_each(|k| folded.values[stage.offset + k] += shift),
                None => exact &= shift == 0.0,
            }
        }
        match self.chain.output_gain() {
            Some((i, _)) => folded.values[i] += input_gain_db + output_gain_db,
            None => exact &= input_gain_db + output_gain_db == 0.0,
        }
        for (value, spec) in folded.values.iter_mut().zip(self.chain.specs()) {
            let clamped = value.clamp(spec.min, spec.max);
            exact &= clamped == *value;
            *value = clamped;
        }
        (folded, exact)
    }

    /// The knobs of this chain followed by those of `after`, as one chain (labels renumbered
    /// where an effect now appears twice: `eq` + `eq` is `eq1,eq2`).
    pub fn concat(&self, after: &ChainKnobs) -> ChainKnobs {
        let chain = ChainSpec::of_stages(self.chain.stages().iter().chain(after.chain.stages())).expect("two chains make a chain");
        ChainKnobs { chain, values: [&self.values[..], &after.values[..]].concat() }
    }

    /// The first `stages` effects' knobs and the rest's, as two chains (the second `None` when
    /// nothing is left).
    pub fn split_at(&self, stages: usize) -> (ChainKnobs, Option<ChainKnobs>) {
        let all = self.chain.stages();
        let part = |stages: &[super::chain::StageSpec], values: &[f64]| ChainKnobs {
            chain: ChainSpec::of_stages(stages).expect("a part of a chain is a chain"),
            values: values.to_vec(),
        };
        if stages >= all.len() {
            return (self.clone(), None);
        }
        let at = all[stages].offset;
        (part(&all[..stages], &self.values[..at]), Some(part(&all[stages..], &self.values[at..])))
    }

    /// These values carried into another chain: each knob of `chain` that these knobs also
    /// have (by full name: `eq.band1.gain_db` of `eq,comp` in `hpf,eq,comp`) takes its value
    /// here, the others their defaults.
    pub fn carried_into(&self, chain: &ChainSpec) -> ChainKnobs {
        let mut out = ChainKnobs::defaults(chain.clone());
        let mine = self.chain.knobs();
        for (knob, value) in chain.knobs().iter().zip(&mut out.values) {
            if let Some(i) = mine.iter().position(|k| k.name == knob.name) {
                *value = self.values[i];
            }
        }
        out
    }

    /// Reads a knob by its full name.
    pub fn get(&self, name: &str) -> Result<f64> {
        Ok(self.values[self.chain.knob_index(name)?])
    }

    /// Sets a knob by its full name after checking its range.
    pub fn set(&mut self, name: &str, value: f64) -> Result<()> {
        let i = self.chain.knob_index(name)?;
        self.chain.specs().nth(i).expect("an index of this chain").validate_as(name, value)?;
        self.values[i] = value;
        Ok(())
    }

    /// Checks every knob against its range; allocates nothing unless a knob is bad (the
    /// streaming chain calls it when knobs change).
    pub fn validate(&self) -> Result<()> {
        let all_good = self.chain.specs().zip(&self.values).all(|(k, &v)| k.accepts(v));
        if all_good { Ok(()) } else { self.chain.knobs().iter().zip(&self.values).try_for_each(|(k, &v)| k.validate(v)) }
    }

    /// Applies `NAME=VALUE` assignments (as given to `--set`), in order; a knob named twice is
    /// an error.
    pub fn apply_assignments(&mut self, assignments: &[String]) -> Result<()> {
        let mut seen = Vec::new();
        for assignment in assignments {
            let (name, value) = assignment.split_once('=').ok_or_else(|| Error::BadAssignment { assignment: assignment.clone() })?;
            let name = name.trim();
            let value: f64 = value.trim().parse().map_err(|_| Error::BadAssignment { assignment: assignment.clone() })?;
            if seen.contains(&name) {
                return Err(Error::RepeatedKnob { name: name.to_string() });
            }
            seen.push(name);
            self.set(name, value)?;
        }
        Ok(())
    }

    /// Reads a knob file's text. `chain` is the chain asked for (`--chain`), if any: a file that
    /// names another chain is an error, and a flat file's knobs belong to it (or to the default
    /// chain).
    pub fn from_json(json: &str, chain: Option<&ChainSpec>) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| Error::KnobJson { reason: format!("not JSON: {e}") })?;
        let (file_chain, Entries(entries)) = if value.get("chain").is_some() {
            let file: ChainedFile = serde_json::from_str(json)
                .map_err(|e| Error::KnobJson { reason: format!("expected {{\"chain\": ..., \"knobs\": {{...}}}}: {e}") })?;
            (Some(file.chain.parse::<ChainSpec>()?), file.knobs)
        } else {
            (None, serde_json::from_str(json).map_err(|e| Error::KnobJson { reason: format!("expected a JSON object of knobs: {e}") })?)
        };
        let chain = match (file_chain, chain) {
            (Some(file), Some(asked)) if &file != asked => {
                return Err(Error::ChainMismatch { expected: asked.to_string(), got: file.to_string() });
            }
            (Some(file), _) => file,
            (None, Some(asked)) => asked.clone(),
            (None, None) => ChainSpec::default(),
        };
        let mut out = ChainKnobs::defaults(chain);
        for (name, value) in entries {
            let v = value.as_f64().ok_or_else(|| Error::KnobNotANumber { name: name.clone(), value: value.to_string() })?;
            out.set(&name, v)?;
        }
        Ok(out)
    }

    /// Reads a knob file (see [`ChainKnobs::from_json`]).
    pub fn from_json_file(path: &Path, chain: Option<&ChainSpec>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::KnobFile { path: path.to_path_buf(), reason: e.to_string() })?;
        Self::from_json(&text, chain).map_err(|e| Error::KnobFile { path: path.to_path_buf(), reason: e.to_string() })
    }

    /// The knob file: `{"chain": ..., "knobs": {...}}`, knobs in chain order.
    pub fn to_json(&self) -> String {
        let mut knobs = serde_json::Map::new();
        for (k, v) in self.chain.knobs().iter().zip(&self.values) {
            knobs.insert(k.name.clone(), serde_json::json!(v));
        }
        let file = serde_json::json!({ "chain": self.chain.to_string(), "knobs": knobs });
        serde_json::to_string_pretty(&file).expect("knobs serialise")
    }
}

/// A knob file with its chain named.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainedFile {
    chain: String,
    knobs: Entries,
}

/// The `(name, value)` entries of a JSON object in file order; a name given twice is an error
/// (a plain map would keep the last silently).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of knob names to numbers")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Entries, A::Error> {
                let mut out: Vec<(String, serde_json::Value)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!("knob `{k}` is given twice")));
                    }
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The knob table of every effect as Markdown (one row per knob, named `effect.knob`): what
/// `afx params --markdown` prints and the README holds between `<!-- knobs -->` markers.
pub fn knob_table_markdown() -> String {
    let number = |x: f64| super::knob::short_number(x).replace('-', "−");
    let mut out = String::from("| knob | unit | range | default | skew | what it does |\n|---|---|---|---|---|---|\n");
    for &kind in super::EffectKind::ALL {
        for k in kind.knobs() {
            out += &format!(
                "| `{}.{}` | {} | {} – {} | {} | {} | {} |\n",
                kind.name(),
                k.name,
                if k.unit.is_empty() { "–" } else { k.unit },
                number(k.min),
                number(k.max),
                number(k.default),
                k.skew.name(),
                k.description
            );
        }
    }
    out
}

/// `afx params --effects`: every effect with its number of knobs and its description, as a
/// table or as JSON.
pub fn effect_listing(json: bool) -> String {
    let effects = super::EffectKind::ALL;
    if json {
        let list: Vec<_> = effects
            .iter()
            .map(|e| serde_json::json!({ "name": e.name(), "description": e.description(), "knobs": e.knobs().len() }))
            .collect();
        return serde_json::to_string_pretty(&list).expect("effect list serialises") + "\n";
    }
    effects.iter().map(|e| format!("{:<10} {:>2} knobs  {}\n", e.name(), e.knobs().len(), e.description())).collect()
}

/// `afx params`: every knob of `chain` with its unit, range, default, skew and description, as
/// a table or as JSON.
pub fn knob_listing(chain: &ChainSpec, json: bool) -> String {
    knob_table(&chain.knobs(), json)
}

/// Knobs with their unit, range, default, skew and description, as a table or as JSON.
pub fn knob_table(knobs: &[Knob], json: bool) -> String {
    if json {
        let list: Vec<_> = knobs
            .iter()
            .map(|k| {
                serde_json::json!({ "name": k.name, "unit": k.unit, "min": k.min, "max": k.max,
                    "default": k.default, "skew": k.skew.name(), "description": k.description })
            })
            .collect();
        return serde_json::to_string_pretty(&list).expect("knob list serialises") + "\n";
    }
    let mut out = format!("{:<26} {:>6} {:>9} {:>9} {:>9}  {:<7}  description\n", "knob", "unit", "min", "max", "default", "skew");
    for k in knobs {
        let [min, max, default] = [k.min, k.max, k.default].map(super::knob::short_number);
        out += &format!("{:<26} {:>6} {min:>9} {max:>9} {default:>9}  {:<7}  {}\n", k.name, k.unit, k.skew.name(), k.description);
    }
    out
}

/// Number of EQ sections (low shelf, four peaking bands, high shelf).
pub const NUM_EQ_SECTIONS: usize = 6;
/// Knobs per EQ section (gain, frequency, Q).
pub const KNOBS_PER_SECTION: usize = 3;
/// Index of the first compressor knob in [`KNOBS`].
pub const COMP_OFFSET: usize = eq::EQ_KNOBS.len();
/// Number of compressor knobs.
pub const NUM_COMP_KNOBS: usize = compressor::COMP_KNOBS.len();
/// Total number of knobs of the default chain `eq,comp`.
pub const NUM_KNOBS: usize = COMP_OFFSET + NUM_COMP_KNOBS;

/// Every knob of the default chain `eq,comp`, in the order of its knob vector.
pub static KNOBS: LazyLock<Vec<Knob>> = LazyLock::new(|| ChainSpec::default().knobs());

/// Position of each compressor knob in a compressor's knob group (and, for the default chain,
/// in [`KNOBS`] after [`COMP_OFFSET`]).
pub mod comp_index {
    pub const THRESHOLD_DB: usize = 0;
    pub const RATIO: usize = 1;
    pub const ATTACK_MS: usize = 2;
    pub const RELEASE_MS: usize = 3;
    pub const KNEE_DB: usize = 4;
    pub const MAKEUP_DB: usize = 5;
}

/// Positions of the compressor knobs in the default chain's knob vector.
pub mod default_chain {
    use super::{COMP_OFFSET, comp_index};
    pub const THRESHOLD_DB: usize = COMP_OFFSET + comp_index::THRESHOLD_DB;
    pub const RATIO: usize = COMP_OFFSET + comp_index::RATIO;
    pub const ATTACK_MS: usize = COMP_OFFSET + comp_index::ATTACK_MS;
    pub const RELEASE_MS: usize = COMP_OFFSET + comp_index::RELEASE_MS;
    pub const KNEE_DB: usize = COMP_OFFSET + comp_index::KNEE_DB;
    pub const MAKEUP_DB: usize = COMP_OFFSET + comp_index::MAKEUP_DB;
}

/// Looks a knob of the default chain up by its dotted name.
pub fn knob_index(name: &str) -> Result<usize> {
    ChainSpec::default().knob_index(name)
}

/// A setting of the default chain `eq,comp` in physical units, in [`KNOBS`] order: the fixed
/// layout today's style network predicts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Knobs(pub [f64; NUM_KNOBS]);

impl Default for Knobs {
    fn default() -> Self {
        Knobs(std::array::from_fn(|i| KNOBS[i].default))
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

    /// These knobs as a setting of the default chain.
    pub fn chain_knobs(&self) -> ChainKnobs {
        ChainKnobs { chain: ChainSpec::default(), values: self.0.to_vec() }
    }

    /// Knobs of the default chain from a setting of it; another chain is an error.
    pub fn from_chain_knobs(knobs: &ChainKnobs) -> Result<Knobs> {
        let default = ChainSpec::default();
        if knobs.chain() != &default {
            return Err(Error::ChainMismatch { expected: default.to_string(), got: knobs.chain().to_string() });
        }
        Ok(Knobs(knobs.values().try_into().expect("the default chain has NUM_KNOBS knobs")))
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

    /// Applies knob-file text on top of these knobs (knobs absent from it keep their value).
    pub fn apply_json(&mut self, json: &str) -> Result<()> {
        let read = ChainKnobs::from_json(json, Some(&ChainSpec::default()))?;
        let value: serde_json::Value = serde_json::from_str(json).expect("parsed above");
        let named = value.get("knobs").unwrap_or(&value).as_object().expect("checked above");
        for name in named.keys() {
            let i = knob_index(name)?;
            self.0[i] = read.values()[i];
        }
        Ok(())
    }

    /// Reads a knob file of the default chain (chained or flat).
    pub fn from_json_file(path: &Path) -> Result<Knobs> {
        Knobs::from_chain_knobs(&ChainKnobs::from_json_file(path, Some(&ChainSpec::default()))?)
            .map_err(|e| Error::KnobFile { path: path.to_path_buf(), reason: e.to_string() })
    }

    /// The knob file of these knobs (with the default chain named).
    pub fn to_json(&self) -> String {
        self.chain_knobs().to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::EffectKind;
    use crate::fx::Skew;

    /// Knobs move between chains by name and split and join by position: values survive a
    /// split and a concatenation, a repeated effect is renumbered, and knobs a chain lacks
    /// take their defaults.
    #[test]
    fn knobs_carry_split_and_join_between_chains() {
        let mut knobs = ChainKnobs::defaults(ChainSpec::default());
        knobs.apply_assignments(&["eq.band2.gain_db=5".into(), "comp.ratio=4".into()]).unwrap();
        let carried = knobs.carried_into(&"hpf,eq,comp".parse().unwrap());
        assert_eq!(carried.get("eq.band2.gain_db").unwrap(), 5.0);
        assert_eq!(carried.get("comp.ratio").unwrap(), 4.0);
        assert_eq!(carried.get("hpf.freq_hz").unwrap(), ChainKnobs::defaults("hpf".parse().unwrap()).values()[0]);
        assert_eq!(knobs.carried_into(&"eq".parse().unwrap()).get("eq.band2.gain_db").unwrap(), 5.0);

        let (front, back) = carried.split_at(1);
        let back = back.unwrap();
        assert_eq!((front.chain().to_string(), back.chain().to_string()), ("hpf".into(), "eq,comp".into()));
        assert_eq!(back, knobs);
        assert_eq!(front.concat(&back), carried);
        assert_eq!(carried.split_at(3), (carried.clone(), None));
        let twice = back.concat(&knobs);
        assert_eq!(twice.chain().to_string(), "eq,comp,eq,comp");
        assert_eq!(twice.get("eq1.band2.gain_db").unwrap(), 5.0);
        assert_eq!(twice.get("comp2.ratio").unwrap(), 4.0);
    }

    #[test]
    fn every_effects_knobs_are_unique_with_defaults_in_range() {
        for &kind in EffectKind::ALL {
            let knobs = kind.knobs();
            assert!(!knobs.is_empty(), "{}", kind.name());
            for (i, a) in knobs.iter().enumerate() {
                a.validate_as(a.name, a.default).unwrap();
                assert!(a.min < a.max, "{}.{}", kind.name(), a.name);
                assert!(a.skew != Skew::Log || a.min > 0.0, "{}.{}: log skew needs min > 0", kind.name(), a.name);
                assert!(!a.name.contains(char::is_whitespace), "{}", a.name);
                for b in &knobs[i + 1..] {
                    assert_ne!(a.name, b.name);
                }
            }
        }
        assert_eq!(KNOBS.len(), NUM_KNOBS);
        assert_eq!(KNOBS[default_chain::MAKEUP_DB].name, "comp.makeup_db");
        assert_eq!(KNOBS[17].name, "eq.high_shelf.q");
    }

    #[test]
    fn normalisation_round_trips_and_its_derivative_matches_finite_differences() {
        for &kind in EffectKind::ALL {
            for k in kind.knobs().iter().filter(|k| k.is_continuous()) {
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
                    k.validate_as(k.name, k.denormalize(f64::from(i) / 1000.0)).unwrap();
                }
                assert_eq!(k.denormalize(0.0), k.min);
                assert!((k.denormalize(1.0) - k.max).abs() < 1e-9 * k.max.abs().max(1.0));
            }
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
        // The flat files of earlier versions still read.
        let mut flat = Knobs::default();
        flat.apply_json(r#"{"comp.ratio": 4, "eq.band2.freq_hz": 1234.5}"#).unwrap();
        assert_eq!(flat, k);
        let e = Knobs::default().apply_json(r#"{"comp.ratoi": 3}"#).unwrap_err().to_string();
        assert!(e.contains("comp.ratoi"), "{e}");
        let mut c = ChainKnobs::defaults(ChainSpec::default());
        let e = c.apply_assignments(&["comp.ratio=40".into()]).unwrap_err().to_string();
        assert!(e.contains("comp.ratio") && e.contains("20"), "{e}");
    }

    /// The README's knob table is the one the declarations give (regenerate it with
    /// `afx params --markdown`).
    #[test]
    fn the_readme_knob_table_matches_the_declarations() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let (start, end) = ("<!-- knobs: generated by `afx params --markdown` -->\n", "<!-- /knobs -->");
        let from = readme.find(start).expect("the README has the knob table's start marker") + start.len();
        let to = readme[from..].find(end).expect("the README has the knob table's end marker") + from;
        assert_eq!(&readme[from..to], knob_table_markdown(), "README.md's knob table is stale: paste `afx params --markdown`");
    }

    #[test]
    fn chained_files_round_trip_and_bad_files_are_errors() {
        let chain: ChainSpec = "hpf,eq,comp,eq".parse().unwrap();
        let mut k = ChainKnobs::defaults(chain.clone());
        k.apply_assignments(&["hpf.freq_hz=120".into(), "eq2.band1.gain_db=-4.5".into()]).unwrap();
        let text = k.to_json();
        assert!(text.contains("\"chain\": \"hpf,eq,comp,eq\""), "{text}");
        assert_eq!(ChainKnobs::from_json(&text, None).unwrap(), k);
        assert_eq!(ChainKnobs::from_json(&text, Some(&chain)).unwrap(), k);
        let e = ChainKnobs::from_json(&text, Some(&ChainSpec::default())).unwrap_err().to_string();
        assert!(e.contains("hpf,eq,comp,eq") && e.contains("eq,comp"), "{e}");
        // A flat file takes the chain it is given.
        let flat = ChainKnobs::from_json(r#"{"hpf.freq_hz": 90}"#, Some(&chain)).unwrap();
        assert_eq!(flat.get("hpf.freq_hz").unwrap(), 90.0);
        let repeated = r#"{"chain": "eq,comp", "knobs": {"comp.ratio": 2, "comp.ratio": 3}}"#;
        let e = ChainKnobs::from_json(repeated, None).unwrap_err().to_string();
        assert!(e.contains("comp.ratio") && e.contains("twice"), "{e}");
        let e = ChainKnobs::from_json(r#"{"comp.ratio": 2, "comp.ratio": 3}"#, None).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let e = ChainKnobs::from_json(r#"{"lpf.freq_hz": 5000}"#, None).unwrap_err().to_string();
        assert!(e.contains("lpf.freq_hz") && e.contains("not in the chain"), "{e}");
        let e = k.apply_assignments(&["comp.ratio=2".into(), "comp.ratio=3".into()]).unwrap_err().to_string();
        assert!(e.contains("comp.ratio") && e.contains("more than once"), "{e}");
        assert!(ChainKnobs::from_json(r#"{"chain": "eq,fuzz", "knobs": {}}"#, None).is_err());
        assert!(ChainKnobs::from_json("[1, 2]", None).is_err());
    }
}
