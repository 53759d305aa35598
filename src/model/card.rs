//! The model card: what a model file says about how its model was made (kind, chain, data,
//! training, held-out losses), a versioned serde struct that the header of every model file
//! holds ([`super::file`]).
//!
//! Cards written before the struct existed (no `version`, e.g. the bundled model's) read as
//! version 0; reading a file upgrades them ([`ModelCard::upgraded`]). Fields this afx does not
//! know are kept in [`ModelCard::other`] and written back unchanged.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::file::Kind;
use crate::fx::ChainSpec;
use crate::train::EstimatorKind;

/// The version of the card's layout that this afx writes.
pub const CARD_VERSION: u32 = 1;

/// A model file's card.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Layout version, [`CARD_VERSION`]; 0 for the untyped cards of older files.
    #[serde(default)]
    pub version: u32,
    /// What the file holds (from version 1; the file's header says it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// The chain the model sets (a style network, a cTCN's conditioning) or imitates (a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainSpec>,
    /// The afx that trained it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub afx_version: Option<String>,
    /// The audio it was trained on (style training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingCard>,
    /// Held-out losses on the run's fixed validation set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<HeldOut>,
    /// A freshly initialised network, never trained (`--model untrained`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untrained: bool,
    /// Fields this afx does not know (written by hand or by another afx), kept as they are.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// The audio folders of a run and its splits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataCard {
    pub roots: Vec<PathBuf>,
    pub train: SplitCard,
    pub validation: SplitCard,
    pub sample_rate_hz: u32,
}

/// One split of the training audio.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitCard {
    pub files: usize,
    pub hours: f64,
}

/// How the model was trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingCard {
    /// The gradient estimator of a style network, or the cTCN; none for a proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimator: Option<EstimatorKind>,
    pub steps: u64,
    /// Training time over all sessions of the run.
    pub seconds: f64,
    /// The run's whole configuration (`TrainConfig` or `ProxyTrainConfig`), as saved.
    pub config: serde_json::Value,
}

/// The best validation loss, its step, and the unprocessed input's loss on the same set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub best_step: Option<u64>,
    pub best_loss: Option<f64>,
    pub input_loss: Option<f64>,
}

impl ModelCard {
    /// An empty card of the current version.
    pub fn new() -> Self {
        ModelCard { version: CARD_VERSION, ..ModelCard::default() }
    }

    /// Reads a card from a file's JSON. A card that does not fit the struct (a hand-written
    /// one) is kept whole in [`ModelCard::other`], so that reading never fails.
    pub fn from_json(value: serde_json::Value) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_else(|_| {
            let other = match value {
                serde_json::Value::Object(map) => map,
                value => [("card".to_string(), value)].into_iter().collect(),
            };
            ModelCard { other, ..ModelCard::default() }
        })
    }

    /// The card as the current version writes it, for a file that holds a `kind` of `chain`:
    /// an older card gains its kind and chain (from the file), and the version is brought up.
    pub fn upgraded(mut self, kind: Kind, chain: &ChainSpec) -> Self {
        self.kind.get_or_insert(kind);
        self.chain.get_or_insert_with(|| chain.clone());
        self.version = CARD_VERSION;
        self
    }

    /// The estimator a style network was trained with, if the card says.
    pub fn estimator(&self) -> Option<EstimatorKind> {
        self.training.as_ref().and_then(|t| t.estimator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An untyped card of the kind afx wrote before the struct (the bundled model's layout)
    /// reads into the struct, upgrades to the current version with the file's kind and chain,
    /// and keeps a field it does not know; a card that fits nothing is kept whole.
    #[test]
    fn old_untyped_cards_read_and_upgrade() {
        let old = serde_json::json!({
            "afx_version": "0.1.0",
            "data": { "roots": ["/audio"], "sample_rate_hz": 24000,
                      "train": { "files": 10, "hours": 1.5 }, "validation": { "files": 2, "hours": 0.25 } },
            "training": { "config": { "steps": 8 }, "estimator": "finite_diff", "seconds": 12.5, "steps": 8 },
            "validation": { "best_loss": 1.5, "best_step": 6, "input_loss": 3.0 },
            "note": "by hand",
        });
        let card = ModelCard::from_json(old);
        assert_eq!(card.version, 0);
        assert_eq!(card.estimator(), Some(EstimatorKind::FiniteDiff));
        assert_eq!(card.data.as_ref().unwrap().train, SplitCard { files: 10, hours: 1.5 });
        assert_eq!(card.validation.unwrap().best_step, Some(6));
        let card = card.upgraded(Kind::Style, &ChainSpec::default());
        assert_eq!((card.version, card.kind, card.chain.clone()), (CARD_VERSION, Some(Kind::Style), Some(ChainSpec::default())));
        let written = serde_json::to_value(&card).unwrap();
        assert_eq!(written["note"], "by hand");
        assert_eq!(ModelCard::from_json(written), card);
        let odd = ModelCard::from_json(serde_json::json!({ "training": "a lot" }));
        assert_eq!(odd.other["training"], "a lot");
    }
}
