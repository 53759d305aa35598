//! Evaluation metrics between an estimate and a target recording.
