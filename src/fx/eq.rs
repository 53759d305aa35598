//! Six-section parametric EQ: low shelf, four peaking bands, high shelf, in series, as true
//! recursive RBJ biquads (see [`super::biquad`]), with its exact adjoint.

use super::biquad::{self, Design, Shape};
use super::cascade::{CascadeTape, Cascades, adjoint_channels, forward_channels};
use super::effect::Effect;
use super::knob::{KnobSpec, Skew};
use super::track::Track;
use super::params::{KNOBS_PER_SECTION, NUM_EQ_SECTIONS};
use crate::Real;

macro_rules! section {
    ($prefix:literal, $what:literal, $fmin:expr, $fmax:expr, $fdef:expr) => {
        [
            KnobSpec::new(concat!($prefix, ".gain_db"), "dB", (-24.0, 24.0), 0.0, Skew::Linear, concat!($what, " gain")),
            KnobSpec::new(
                concat!($prefix, ".freq_hz"),
                "Hz",
                ($fmin, $fmax),
                $fdef,
                Skew::Log,
                concat!($what, " frequency (clamped to 0.45 x sample rate)"),
            ),
            KnobSpec::new(concat!($prefix, ".q"), "", (0.1, 10.0), 0.707, Skew::Log, concat!($what, " Q")),
        ]
    };
}

const SECTIONS: [[KnobSpec; KNOBS_PER_SECTION]; NUM_EQ_SECTIONS] = [
    section!("low_shelf", "low shelf", 20.0, 200.0, 100.0),
    section!("band1", "peaking band 1", 200.0, 2000.0, 400.0),
    section!("band2", "peaking band 2", 800.0, 4000.0, 1000.0),
    section!("band3", "peaking band 3", 2000.0, 8000.0, 4000.0),
    section!("band4", "peaking band 4", 4000.0, 12000.0, 8000.0),
    section!("high_shelf", "high shelf", 4000.0, 12000.0, 8000.0),
];

/// The EQ's knobs: gain, frequency and Q of each section in chain order.
pub const EQ_KNOBS: &[KnobSpec] = SECTIONS.as_flattened();

/// The EQ's settings from its knob values ([`EQ_KNOBS`] order).
pub fn settings(knobs: &[f64]) -> EqSettings {
    std::array::from_fn(|s| {
        let b = &knobs[s * KNOBS_PER_SECTION..];
        BandSettings { gain_db: b[0], freq_hz: b[1], q: b[2] }
    })
}

/// The six-section parametric EQ as a chain effect (`eq`).
pub struct EqEffect;

impl Effect for EqEffect {
    const NAME: &'static str = "eq";
    const DESCRIPTION: &'static str = "parametric EQ: low shelf, four peaking bands, high shelf (RBJ biquads)";
    const KNOBS: &'static [KnobSpec] = EQ_KNOBS;
    type Stream<T: Real> = Eq<T>;
    /// Every section's output, per channel.
    type Tape<T: Real> = Vec<EqTape<T>>;

    fn stream<T: Real>(knobs: &[f64], sample_rate: f64, channels: usize) -> Eq<T> {
        Eq::new(&settings(knobs), sample_rate, channels)
    }

    fn set<T: Real>(stream: &mut Eq<T>, knobs: &[f64], sample_rate: f64) {
        stream.set(&settings(knobs), sample_rate);
    }

    fn reset<T: Real>(stream: &mut Eq<T>) {
        stream.reset();
    }

    fn process<T: Real>(stream: &mut Eq<T>, channels: &mut [&mut [T]]) {
        stream.process(channels);
    }

    fn forward<T: Real>(track: Track<'_>, sample_rate: f64, channels: &mut [&mut [T]], tape: &mut Vec<EqTape<T>>) {
        forward_channels(&designs_of(&track, sample_rate), &track, channels, tape);
    }

    fn adjoint<T: Real>(
        track: Track<'_>,
        sample_rate: f64,
        input: &[&[T]],
        tape: &Vec<EqTape<T>>,
        grad: &mut [&mut [T]],
        knob_grad: &mut [f64],
    ) {
        let eq_grad = adjoint_channels(&designs_of(&track, sample_rate), &track, input, tape, grad);
        for (k, g) in knob_grad.iter_mut().zip(eq_grad.iter().flat_map(|s| s.as_flattened())) {
            *k += g;
        }
    }

    fn response_db(knobs: &[f64], sample_rate: f64, freq_hz: f64) -> Option<f64> {
        Some(design_all(&settings(knobs), sample_rate).iter().map(|d| d.coeffs.magnitude_db(freq_hz, sample_rate)).sum())
    }

    fn static_curve_db(_knobs: &[f64], _level_db: f64) -> Option<f64> {
        None
    }
}

/// The shape of each section, in chain order.
pub const SHAPES: [Shape; NUM_EQ_SECTIONS] =
    [Shape::LowShelf, Shape::Peaking, Shape::Peaking, Shape::Peaking, Shape::Peaking, Shape::HighShelf];

/// One section's settings in physical units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandSettings {
    pub gain_db: f64,
    pub freq_hz: f64,
    pub q: f64,
}

/// Settings of all sections, in chain order.
pub type EqSettings = [BandSettings; NUM_EQ_SECTIONS];

/// Every segment's designs.
fn designs_of(track: &Track<'_>, sample_rate: f64) -> Vec<[Design; NUM_EQ_SECTIONS]> {
    (0..track.segments()).map(|i| design_all(&settings(track.knobs(i)), sample_rate)).collect()
}

/// Designs every section (coefficients and their Jacobians) at a sample rate.
pub fn design_all(settings: &EqSettings, sample_rate: f64) -> [Design; NUM_EQ_SECTIONS] {
    std::array::from_fn(|i| {
        let b = settings[i];
        biquad::design(SHAPES[i], b.gain_db, b.freq_hz, b.q, sample_rate)
    })
}

/// The streaming EQ: one cascade of its six sections per channel, state carried across blocks.
#[derive(Clone, Debug)]
pub struct Eq<T>(Cascades<T, NUM_EQ_SECTIONS>);

impl<T: Real> Eq<T> {
    /// An EQ at rest for `channels` channels.
    pub fn new(settings: &EqSettings, sample_rate: f64, channels: usize) -> Self {
        Eq(Cascades::new(&design_all(settings, sample_rate), channels))
    }

    /// Changes the settings, keeping every filter's state.
    pub fn set(&mut self, settings: &EqSettings, sample_rate: f64) {
        self.0.set(&design_all(settings, sample_rate));
    }

    /// Clears every filter's state.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Filters one block in place.
    pub fn process(&mut self, channels: &mut [&mut [T]]) {
        self.0.process(channels);
    }
}

/// The output of every section of one channel, recorded for the adjoint.
pub type EqTape<T> = CascadeTape<T, NUM_EQ_SECTIONS>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_state_sines_get_the_designed_gain() {
        let fs = 44_100.0;
        let settings: EqSettings = [
            BandSettings { gain_db: 6.0, freq_hz: 100.0, q: 0.707 },
            BandSettings { gain_db: -9.0, freq_hz: 500.0, q: 2.0 },
            BandSettings { gain_db: 4.0, freq_hz: 1500.0, q: 1.0 },
            BandSettings { gain_db: 12.0, freq_hz: 3000.0, q: 4.0 },
            BandSettings { gain_db: -3.0, freq_hz: 9000.0, q: 0.5 },
            BandSettings { gain_db: -6.0, freq_hz: 10_000.0, q: 0.707 },
        ];
        let designs = design_all(&settings, fs);
        for f in [50.0, 500.0, 3000.0, 12_000.0] {
            // Expected: the product of the sections' analytic responses.
            let expected_db: f64 = designs.iter().map(|d| d.coeffs.magnitude_db(f, fs)).sum();
            let mut x: Vec<f64> = (0..44_100).map(|n| (2.0 * std::f64::consts::PI * f * n as f64 / fs).sin()).collect();
            let mut eq = Eq::new(&settings, fs, 1);
            eq.process(&mut [&mut x]);
            let tail = &x[22_050..];
            let rms = (tail.iter().map(|v| v * v).sum::<f64>() / tail.len() as f64).sqrt();
            let got_db = 20.0 * (rms * 2f64.sqrt()).log10();
            assert!((got_db - expected_db).abs() < 0.01, "{f} Hz: {got_db} vs {expected_db}");
        }
    }
}
