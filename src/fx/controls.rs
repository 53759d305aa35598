//! Which knobs of a chain a network sets (`afx train --learn`), and where the others stay: at
//! their defaults or at `--set` values. A model records its [`Controls`]; the training and
//! inference paths use their resolved form, a [`Selection`].

use serde::{Deserialize, Serialize};

use super::{ChainKnobs, ChainSpec};
use crate::fx::chain::StageKind;
use crate::{Error, Result};

/// The knobs a network sets and the values held for the others, by full knob name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Controls {
    /// The knobs the network sets, in the order of its outputs (chain order); empty: every knob
    /// of the chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learn: Vec<String>,
    /// Knobs the network does not set that hold another value than their default (physical
    /// units).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, f64)>,
}

impl Controls {
    /// Every knob learnt, none held: what a model that records no controls means.
    pub fn is_every(&self) -> bool {
        self.learn.is_empty() && self.set.is_empty()
    }

    /// The controls of `chain` that `--learn` patterns (comma-separated full knob names, where
    /// `*` stands for any run of characters: `fil4.gain*`, `darc.*`) and `--set NAME=VALUE`
    /// assignments give. Without patterns: every knob of afx's effects and every continuous knob
    /// of a plugin (its switches and stepped settings keep their defaults: no estimator gives
    /// them a gradient). Knobs are kept in chain order whatever the order of the patterns.
    pub fn parse(chain: &ChainSpec, learn: Option<&str>, set: &[String]) -> Result<Self> {
        let knobs = chain.knobs();
        let bad = |reason: String| Error::BadLearn { reason };
        let mut chosen = vec![false; knobs.len()];
        match learn {
            Some(patterns) => {
                for pattern in patterns.split(',').map(str::trim) {
                    if pattern.is_empty() {
                        return Err(bad(format!("empty knob name in `{patterns}`")));
                    }
                    if !pattern.contains('*') {
                        // A plain name: its own error (unknown knob, effect not in the chain).
                        chosen[chain.knob_index(pattern)?] = true;
                        continue;
                    }
                    let mut any = false;
                    for (c, k) in chosen.iter_mut().zip(&knobs) {
                        if glob(pattern, &k.name) {
                            *c = true;
                            any = true;
                        }
                    }
                    if !any {
                        return Err(bad(format!("`{pattern}` matches no knob of the chain `{chain}` (`afx params --chain` lists them)")));
                    }
                }
            }
            None => {
                for s in chain.stages() {
                    let plugin = matches!(s.kind, StageKind::Plugin(_));
                    for (i, spec) in s.knobs().zip(s.kind.knobs()) {
                        chosen[i] = !plugin || spec.is_continuous();
                    }
                }
            }
        }
        let mut held = ChainKnobs::defaults(chain.clone());
        held.apply_assignments(set)?;
        let mut set_values = Vec::new();
        for assignment in set {
            let name = assignment.split_once('=').map_or(assignment.as_str(), |(n, _)| n).trim();
            let i = chain.knob_index(name)?;
            if chosen[i] {
                return Err(bad(format!("`{name}` is both learnt and set; leave it out of --learn to hold it")));
            }
            set_values.push((knobs[i].name.clone(), held.values()[i]));
        }
        if !chosen.contains(&true) {
            return Err(bad(format!("no knob of the chain `{chain}` is left for the network to set")));
        }
        let every = chosen.iter().all(|&c| c);
        let learn = if every { Vec::new() } else { knobs.iter().zip(&chosen).filter(|(_, c)| **c).map(|(k, _)| k.name.clone()).collect() };
        Ok(Controls { learn, set: set_values })
    }

    /// How many knobs the network sets.
    pub fn count(&self, chain: &ChainSpec) -> usize {
        if self.learn.is_empty() { chain.num_knobs() } else { self.learn.len() }
    }

    /// Positions and held values for `chain` (errors for names it lacks, values out of range,
    /// a knob both learnt and held, knobs out of chain order).
    pub fn resolve(&self, chain: &ChainSpec) -> Result<Selection> {
        let mut held = ChainKnobs::defaults(chain.clone());
        for (name, value) in &self.set {
            held.set(name, *value)?;
        }
        let free: Vec<usize> = if self.learn.is_empty() {
            (0..chain.num_knobs()).collect()
        } else {
            self.learn.iter().map(|n| chain.knob_index(n)).collect::<Result<_>>()?
        };
        if free.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::BadLearn {
                reason: format!("the learnt knobs {} are not in chain order, once each", self.learn.join(", ")),
            });
        }
        if let Some((name, _)) = self.set.iter().find(|(n, _)| chain.knob_index(n).is_ok_and(|i| free.contains(&i))) {
            return Err(Error::BadLearn { reason: format!("`{name}` is both learnt and set") });
        }
        Ok(Selection { free, base: held.to_normalized().iter().map(|&v| v as f32).collect() })
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.len() >= part.len() && rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// [`Controls`] resolved for a chain: the positions of the free knobs in the chain's knob
/// vector, and every knob's normalised value where it is held.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// Positions of the free knobs (ascending for a model's controls).
    pub free: Vec<usize>,
    /// Every knob, normalised; the free knobs' entries are overwritten by [`Selection::expand`].
    pub base: Vec<f32>,
}

impl Selection {
    /// Every knob of `chain` free.
    pub fn every(chain: &ChainSpec) -> Self {
        let base = ChainKnobs::defaults(chain.clone()).to_normalized().iter().map(|&v| v as f32).collect();
        Selection { free: (0..chain.num_knobs()).collect(), base }
    }

    /// Whether every knob is free.
    pub fn is_every(&self) -> bool {
        self.free.len() == self.base.len()
    }

    /// The whole knob vector for values of the free knobs.
    pub fn expand(&self, free: &[f32]) -> Vec<f32> {
        assert_eq!(free.len(), self.free.len(), "one value per free knob");
        let mut all = self.base.clone();
        for (&i, &v) in self.free.iter().zip(free) {
            all[i] = v;
        }
        all
    }

    /// The free knobs' entries of a whole knob vector (values or gradients).
    pub fn select<T: Copy>(&self, all: &[T]) -> Vec<T> {
        self.free.iter().map(|&i| all[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob("eq.*", "eq.band1.gain_db"));
        assert!(glob("eq.band*.gain_db", "eq.band3.gain_db"));
        assert!(!glob("eq.band*.gain_db", "eq.band3.q"));
        assert!(glob("*gain_db", "comp.makeup_gain_db") && !glob("*gain_db", "comp.ratio"));
        assert!(!glob("comp.*", "eq.band1.q"));
        assert!(glob("comp.ratio", "comp.ratio") && !glob("comp.ratio", "comp.ratio2"));
    }

    #[test]
    fn learnt_knobs_are_free_and_held_knobs_keep_their_values() {
        let chain: ChainSpec = "hpf,eq,comp".parse().unwrap();
        let every = Controls::parse(&chain, None, &[]).unwrap();
        assert!(every.is_every() && every.count(&chain) == chain.num_knobs());
        assert!(every.resolve(&chain).unwrap().is_every());

        let controls = Controls::parse(&chain, Some("comp.*, eq.band*.gain_db"), &["hpf.freq_hz=120".into()]).unwrap();
        let names: Vec<String> = chain.knobs().into_iter().map(|k| k.name).collect();
        let want: Vec<&String> =
            names.iter().filter(|n| n.starts_with("comp.") || (n.starts_with("eq.band") && n.ends_with("gain_db"))).collect();
        assert_eq!(controls.learn.iter().collect::<Vec<_>>(), want, "chain order, whatever the patterns' order");
        let selection = controls.resolve(&chain).unwrap();
        assert_eq!(selection.free.len(), controls.count(&chain));
        // Expanded knobs: the free ones as given, the held one at 120 Hz, the rest at defaults.
        let free: Vec<f32> = (0..selection.free.len()).map(|i| i as f32 / 20.0).collect();
        let all = selection.expand(&free);
        let physical = ChainKnobs::from_normalized(chain.clone(), &all.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()).unwrap();
        assert!((physical.get("hpf.freq_hz").unwrap() - 120.0).abs() < 1e-3 * 120.0);
        let defaults = ChainKnobs::defaults(chain.clone());
        assert_eq!(physical.get("eq.band1.freq_hz").unwrap() as f32, defaults.get("eq.band1.freq_hz").unwrap() as f32);
        assert_eq!(selection.select(&all), free);
        // The controls survive JSON.
        let back: Controls = serde_json::from_str(&serde_json::to_string(&controls).unwrap()).unwrap();
        assert_eq!(back, controls);
    }

    #[test]
    fn bad_controls_are_one_line_errors() {
        let chain: ChainSpec = "eq,comp".parse().unwrap();
        for (learn, set, needle) in [
            (Some("comp.nope"), vec![], "comp.nope"),
            (Some("lpf.*"), vec![], "matches no knob"),
            (Some("comp.ratio"), vec!["comp.ratio=4".to_string()], "both learnt and set"),
            (Some("comp.ratio"), vec!["comp.threshold_db=99".to_string()], "out of range"),
            (Some("comp.ratio,"), vec![], "empty knob name"),
        ] {
            let e = Controls::parse(&chain, learn, &set).unwrap_err().to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{learn:?} {set:?}: {e}");
        }
        let swapped = Controls { learn: vec!["comp.ratio".into(), "eq.band1.gain_db".into()], set: vec![] };
        assert!(swapped.resolve(&chain).unwrap_err().to_string().contains("chain order"));
    }
}
