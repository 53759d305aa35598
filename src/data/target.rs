//! Pairs made by a chain the user names (`--target-chain`): DeepAFx's emulation task (a
//! "device" — e.g. a tube stage and an EQ — at fixed settings, imitated by another chain) and its
//! mastering task (a mastering chain whose settings are drawn per pair around given ones). The
//! target and the reference are the clip's two parts through the chain, the input its first part
//! as it is.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::fx::{ChainKnobs, ChainSpec};
use crate::{Error, Result};

/// A chain with its settings: knobs set by name (the rest at defaults), and how widely each
/// pair's settings are drawn around them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetChain {
    pub chain: ChainSpec,
    /// Knobs away from their defaults, physical units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, f64)>,
    /// Width of each pair's draw around every continuous knob's setting, in normalised units (a
    /// uniform draw in ± width / 2, clamped to the range); 0 keeps the settings fixed.
    #[serde(default)]
    pub draw: f64,
}

impl TargetChain {
    /// From `--target-chain`, `--target-set NAME=VALUE` assignments and `--target-draw`.
    pub fn parse(chain: &str, set: &[String], draw: f64) -> Result<Self> {
        let chain: ChainSpec = chain.parse()?;
        let mut knobs = ChainKnobs::defaults(chain.clone());
        knobs.apply_assignments(set)?;
        let set = set
            .iter()
            .map(|a| {
                let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n).trim();
                Ok((chain.knobs()[chain.knob_index(name)?].name.clone(), knobs.get(name)?))
            })
            .collect::<Result<_>>()?;
        let target = TargetChain { chain, set, draw };
        target.settings()?;
        Ok(target)
    }

    /// The settings the draws centre on (errors for a bad name, value or width).
    pub fn settings(&self) -> Result<ChainKnobs> {
        if !(0.0..=1.0).contains(&self.draw) {
            return Err(Error::Setting { name: "target_draw", value: self.draw.to_string(), expected: "in [0, 1]".into() });
        }
        let mut knobs = ChainKnobs::defaults(self.chain.clone());
        for (name, value) in &self.set {
            knobs.set(name, *value)?;
        }
        Ok(knobs)
    }

    /// One pair's settings: `settings` with every continuous knob drawn within ± draw / 2
    /// (normalised) of its value.
    pub fn sample<R: Rng + ?Sized>(&self, settings: &ChainKnobs, rng: &mut R) -> ChainKnobs {
        if self.draw == 0.0 {
            return settings.clone();
        }
        let mut n = settings.to_normalized();
        for (v, spec) in n.iter_mut().zip(self.chain.specs()) {
            if spec.is_continuous() {
                *v = (*v + self.draw * (rng.random::<f64>() - 0.5)).clamp(0.0, 1.0);
            }
        }
        ChainKnobs::from_normalized(self.chain.clone(), &n).expect("one value per knob")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn settings_are_set_by_name_and_drawn_around_them() {
        let target = TargetChain::parse("eq,comp", &["comp.ratio=4".into(), "eq.band1.gain_db=6".into()], 0.2).unwrap();
        let settings = target.settings().unwrap();
        assert_eq!((settings.get("comp.ratio").unwrap(), settings.get("eq.band1.gain_db").unwrap()), (4.0, 6.0));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let drawn: Vec<ChainKnobs> = (0..200).map(|_| target.sample(&settings, &mut rng)).collect();
        // A linear knob of ±24 dB drawn within ±0.1 normalised: ±4.8 dB around 6 dB, and spread.
        let gains: Vec<f64> = drawn.iter().map(|k| k.get("eq.band1.gain_db").unwrap()).collect();
        assert!(gains.iter().all(|g| (g - 6.0).abs() <= 4.8 + 1e-9));
        assert!(gains.iter().any(|g| g - 6.0 > 3.0) && gains.iter().any(|g| 6.0 - g > 3.0));
        let fixed = TargetChain { draw: 0.0, ..target.clone() };
        assert_eq!(fixed.sample(&settings, &mut rng), settings);
        for (set, draw, needle) in [(vec!["comp.nope=1".to_string()], 0.0, "comp.nope"), (vec![], 1.5, "target_draw")] {
            let e = TargetChain::parse("eq,comp", &set, draw).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}

/// `--target-chain C [--target-set NAME=VALUE]... [--target-draw W]` (`afx train`, `afx eval`).
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TargetArgs {
    /// Make the pairs with this chain instead of afx's styles (DeepAFx's emulation and
    /// mastering tasks): target and reference are a clip's two parts through it, the input the
    /// first part as it is. Plugins as in --chain (`invada_tube,fil4`).
    #[arg(long)]
    pub target_chain: Option<String>,
    /// A knob of the target chain away from its default (NAME=VALUE, physical units;
    /// repeatable).
    #[arg(long = "target-set", value_name = "NAME=VALUE", requires = "target_chain")]
    pub target_set: Vec<String>,
    /// Draw each pair's settings within ± this / 2 (normalised) of every continuous knob's
    /// setting; default 0 (one fixed "device").
    #[arg(long, requires = "target_chain")]
    pub target_draw: Option<f64>,
}

#[cfg(feature = "cli")]
impl TargetArgs {
    /// The target chain asked for, if any.
    pub fn target(&self) -> Result<Option<TargetChain>> {
        self.target_chain.as_deref().map(|chain| TargetChain::parse(chain, &self.target_set, self.target_draw.unwrap_or(0.0))).transpose()
    }
}
