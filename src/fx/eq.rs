//! Six-section parametric EQ: low shelf, four peaking bands, high shelf, in series, as true
//! recursive RBJ biquads (see [`super::biquad`]), with its exact adjoint.

use super::biquad::{self, Biquad, Coeffs, Design, Shape};
use crate::simd::{Kernel, dispatch};
use super::params::NUM_EQ_SECTIONS;
use crate::Real;

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

/// Designs every section (coefficients and their Jacobians) at a sample rate.
pub fn design_all(settings: &EqSettings, sample_rate: f64) -> [Design; NUM_EQ_SECTIONS] {
    std::array::from_fn(|i| {
        let b = settings[i];
        biquad::design(SHAPES[i], b.gain_db, b.freq_hz, b.q, sample_rate)
    })
}

type Cascade = [Biquad; NUM_EQ_SECTIONS];

fn cascade(designs: &[Design; NUM_EQ_SECTIONS]) -> Cascade {
    designs.map(|d| Biquad::new(d.coeffs))
}

/// The streaming EQ: one cascade per channel, state carried across blocks.
#[derive(Clone, Debug)]
pub struct Eq<T> {
    channels: Vec<Cascade>,
    sample_type: std::marker::PhantomData<T>,
}

impl<T: Real> Eq<T> {
    /// An EQ at rest for `channels` channels.
    pub fn new(settings: &EqSettings, sample_rate: f64, channels: usize) -> Self {
        Eq { channels: vec![cascade(&design_all(settings, sample_rate)); channels], sample_type: std::marker::PhantomData }
    }

    /// Changes the settings, keeping every filter's state.
    pub fn set(&mut self, settings: &EqSettings, sample_rate: f64) {
        let designs = design_all(settings, sample_rate);
        for c in &mut self.channels {
            for (f, d) in c.iter_mut().zip(&designs) {
                f.set_coeffs(d.coeffs);
            }
        }
    }

    /// Clears every filter's state.
    pub fn reset(&mut self) {
        self.channels.iter_mut().flatten().for_each(Biquad::reset);
    }

    /// Filters one block in place, sample by sample through all sections (which keeps
    /// several independent recursions in flight).
    pub fn process(&mut self, channels: &mut [&mut [T]]) {
        assert_eq!(channels.len(), self.channels.len(), "channel count");
        for (filters, signal) in self.channels.iter_mut().zip(channels.iter_mut()) {
            dispatch(Filter { filters, signal, stages: None });
        }
    }
}

/// Runs a signal in place through a cascade (see [`biquad::run_cascade`]), optionally recording
/// every section's output.
struct Filter<'a, T> {
    filters: &'a mut Cascade,
    signal: &'a mut [T],
    stages: Option<&'a mut EqTape<T>>,
}

impl<T: Real> Kernel for Filter<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let mut local = *self.filters;
        biquad::run_cascade::<FMA, _, NUM_EQ_SECTIONS>(&mut local, self.signal, self.stages);
        *self.filters = local;
    }
}

/// The reverse-time pass of the adjoint (see [`biquad::run_cascade_adjoint`]).
struct Reverse<'a, T> {
    coeffs: &'a [Coeffs; NUM_EQ_SECTIONS],
    lambda: &'a mut [Vec<T>; NUM_EQ_SECTIONS],
    grad: &'a mut [T],
}

impl<T: Real> Kernel for Reverse<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        biquad::run_cascade_adjoint::<FMA, _, NUM_EQ_SECTIONS>(self.coeffs, self.grad, self.lambda);
    }
}

/// The output of every section of one channel, recorded for the adjoint:
/// `stages[k]` is the output of section `k` (the input of section `k + 1`).
pub type EqTape<T> = [Vec<T>; NUM_EQ_SECTIONS];

/// Filters one channel in place from rest, recording every section's output.
pub fn forward<T: Real>(designs: &[Design; NUM_EQ_SECTIONS], signal: &mut [T], stages: &mut EqTape<T>) {
    let mut filters = cascade(designs);
    for s in stages.iter_mut() {
        s.resize(signal.len(), T::zero());
    }
    dispatch(Filter { filters: &mut filters, signal, stages: Some(stages) });
}

/// Gradients of the EQ knobs: `[section][gain_db, freq_hz, q]`.
pub type EqGrad = [[f64; 3]; NUM_EQ_SECTIONS];

/// The exact adjoint of [`forward`] for one channel: `grad` holds `∂L/∂output` on entry and
/// `∂L/∂input` on return; the knob gradients are added to `knob_grad`.
pub fn adjoint<T: Real>(
    designs: &[Design; NUM_EQ_SECTIONS],
    input: &[T],
    stages: &EqTape<T>,
    grad: &mut [T],
    knob_grad: &mut EqGrad,
) {
    let len = input.len();
    let coeffs = designs.map(|d| d.coeffs);
    let mut lambda: [Vec<T>; NUM_EQ_SECTIONS] = std::array::from_fn(|_| vec![T::zero(); len]);
    dispatch(Reverse { coeffs: &coeffs, lambda: &mut lambda, grad: &mut grad[..len] });
    for k in 0..NUM_EQ_SECTIONS {
        let x: &[T] = if k == 0 { input } else { &stages[k - 1] };
        let coeff_grad = biquad::coeff_grad(&lambda[k], x, &stages[k]);
        for (g, p) in knob_grad[k].iter_mut().zip(biquad::param_grad(&designs[k], &coeff_grad)) {
            *g += p;
        }
    }
}

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
