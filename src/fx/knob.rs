//! A knob's declaration (name, unit, range, default, skew), made once beside its effect, and
//! the mapping between physical values and the normalised `[0, 1]` values a network predicts.

use std::ops::Deref;

use crate::{Error, Result};

/// How a knob's physical range maps to `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skew {
    /// `n = (x − min) / (max − min)`.
    Linear,
    /// Geometric: `n = ln(x / min) / ln(max / min)`, equal ratios get equal steps (Hz, ms, Q, ratio).
    Log,
    /// Linear, but only `min`, `min + step`, …, `max` are settings (a switch such as a filter's
    /// slope): a normalised value is rounded to the nearest one, and no gradient flows through it.
    Stepped(StepSize),
}

/// The step of a [`Skew::Stepped`] knob (a wrapper so that [`Skew`] stays `Eq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepSize(pub u32);

impl Skew {
    /// The lower-case name shown by `afx params`.
    pub fn name(self) -> &'static str {
        match self {
            Skew::Linear => "linear",
            Skew::Log => "log",
            Skew::Stepped(_) => "stepped",
        }
    }
}

/// One knob's declaration, inside its effect: `name` is local to the effect (`band1.gain_db`);
/// in a chain it is prefixed with the effect's label ([`Knob`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KnobSpec {
    /// Name inside the effect, e.g. `band1.gain_db`.
    pub name: &'static str,
    /// Unit shown to users (`dB`, `Hz`, `ms`, `:1`, `%`, or empty).
    pub unit: &'static str,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub skew: Skew,
    /// One line for `afx params`.
    pub description: &'static str,
}

impl KnobSpec {
    /// A continuous knob.
    pub const fn new(
        name: &'static str,
        unit: &'static str,
        (min, max): (f64, f64),
        default: f64,
        skew: Skew,
        description: &'static str,
    ) -> Self {
        KnobSpec { name, unit, min, max, default, skew, description }
    }

    /// Whether a gradient flows through this knob (every skew but [`Skew::Stepped`]).
    pub fn is_continuous(&self) -> bool {
        !matches!(self.skew, Skew::Stepped(_))
    }

    /// Maps a physical value to `[0, 1]` (values outside the range map outside `[0, 1]`).
    pub fn normalize(&self, x: f64) -> f64 {
        match self.skew {
            Skew::Linear | Skew::Stepped(_) => (x - self.min) / (self.max - self.min),
            Skew::Log => (x / self.min).ln() / (self.max / self.min).ln(),
        }
    }

    /// Maps a normalised value to physical units; `n` is clamped to `[0, 1]` first, and the
    /// result to the range (`exp(ln(max/min))·min` can round a hair above `max`); a stepped
    /// knob's value is rounded to its nearest step.
    pub fn denormalize(&self, n: f64) -> f64 {
        let n = n.clamp(0.0, 1.0);
        let x = match self.skew {
            Skew::Linear => self.min + n * (self.max - self.min),
            Skew::Log => self.min * ((self.max / self.min).ln() * n).exp(),
            Skew::Stepped(StepSize(step)) => {
                let step = f64::from(step);
                self.min + (n * (self.max - self.min) / step).round() * step
            }
        };
        x.clamp(self.min, self.max)
    }

    /// `d physical / d normalised` at the physical value `x` (chain rule for knob gradients);
    /// zero for a stepped knob.
    pub fn physical_per_normalized(&self, x: f64) -> f64 {
        match self.skew {
            Skew::Linear => self.max - self.min,
            Skew::Log => x * (self.max / self.min).ln(),
            Skew::Stepped(_) => 0.0,
        }
    }

    /// Whether `x` is a valid setting (finite, inside the range, on a step); allocates nothing.
    pub fn accepts(&self, x: f64) -> bool {
        x.is_finite() && (self.min..=self.max).contains(&x) && self.on_step(x)
    }

    fn on_step(&self, x: f64) -> bool {
        match self.skew {
            Skew::Stepped(StepSize(step)) => {
                let steps = (x - self.min) / f64::from(step);
                (steps - steps.round()).abs() <= 1e-9
            }
            _ => true,
        }
    }

    /// Checks that `x` is finite, inside the range and (for a stepped knob) on a step; errors
    /// name the knob `name`.
    pub fn validate_as(&self, name: &str, x: f64) -> Result<()> {
        if !x.is_finite() {
            return Err(Error::KnobNotFinite { name: name.to_string() });
        }
        if x < self.min || x > self.max {
            return Err(Error::KnobOutOfRange { name: name.to_string(), value: x, min: self.min, max: self.max, unit: self.unit });
        }
        match self.skew {
            Skew::Stepped(StepSize(step)) if !self.on_step(x) => {
                Err(Error::KnobNotOnStep { name: name.to_string(), value: x, min: self.min, max: self.max, step })
            }
            _ => Ok(()),
        }
    }
}

/// A value as tables show it: at most four decimals, trailing zeros dropped (`0.7071`, `12`).
pub fn short_number(x: f64) -> String {
    let text = format!("{x:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A knob placed in a chain: its full dotted name (`eq.band1.gain_db`, `eq2.band1.gain_db`)
/// and its declaration (whose fields it derefs to).
#[derive(Clone, Debug, PartialEq)]
pub struct Knob {
    /// `LABEL.NAME`, the name in knob files, `--set` and `afx params`.
    pub name: String,
    pub spec: KnobSpec,
}

impl Knob {
    /// Checks a value against the declaration; errors carry the full name.
    pub fn validate(&self, x: f64) -> Result<()> {
        self.spec.validate_as(&self.name, x)
    }
}

impl Deref for Knob {
    type Target = KnobSpec;
    fn deref(&self) -> &KnobSpec {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_knobs_round_to_steps_and_pass_no_gradient() {
        let slope = KnobSpec::new("slope_db", "dB/oct", (12.0, 24.0), 12.0, Skew::Stepped(StepSize(12)), "slope");
        assert_eq!(slope.denormalize(0.2), 12.0);
        assert_eq!(slope.denormalize(0.7), 24.0);
        assert_eq!(slope.normalize(24.0), 1.0);
        assert_eq!(slope.physical_per_normalized(12.0), 0.0);
        assert!(!slope.is_continuous());
        slope.validate_as("hpf.slope_db", 24.0).unwrap();
        let e = slope.validate_as("hpf.slope_db", 18.0).unwrap_err().to_string();
        assert!(e.contains("hpf.slope_db") && e.contains("12"), "{e}");
    }
}
