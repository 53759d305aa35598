//! A series of biquad sections run as one filter (the EQ's six, a filter's two): streaming per
//! channel, and taped from rest with its exact adjoint down to each section's design knobs.

use super::biquad::{self, Biquad, Coeffs, Design};
use crate::Real;
use crate::simd::{Kernel, dispatch};

/// `N` sections per channel, state carried across blocks.
#[derive(Clone, Debug)]
pub struct Cascades<T, const N: usize> {
    channels: Vec<[Biquad; N]>,
    sample_type: std::marker::PhantomData<T>,
}

fn cascade<const N: usize>(designs: &[Design; N]) -> [Biquad; N] {
    designs.map(|d| Biquad::new(d.coeffs))
}

impl<T: Real, const N: usize> Cascades<T, N> {
    /// Filters at rest for `channels` channels.
    pub fn new(designs: &[Design; N], channels: usize) -> Self {
        Cascades { channels: vec![cascade(designs); channels], sample_type: std::marker::PhantomData }
    }

    /// Changes every section's coefficients, keeping its state.
    pub fn set(&mut self, designs: &[Design; N]) {
        for c in &mut self.channels {
            for (f, d) in c.iter_mut().zip(designs) {
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
struct Filter<'a, T, const N: usize> {
    filters: &'a mut [Biquad; N],
    signal: &'a mut [T],
    stages: Option<&'a mut CascadeTape<T, N>>,
}

impl<T: Real, const N: usize> Kernel for Filter<'_, T, N> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let mut local = *self.filters;
        biquad::run_cascade::<FMA, _, N>(&mut local, self.signal, self.stages);
        *self.filters = local;
    }
}

/// The reverse-time pass of the adjoint (see [`biquad::run_cascade_adjoint`]).
struct Reverse<'a, T, const N: usize> {
    coeffs: &'a [Coeffs; N],
    lambda: &'a mut [Vec<T>; N],
    grad: &'a mut [T],
}

impl<T: Real, const N: usize> Kernel for Reverse<'_, T, N> {
    type Output = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        biquad::run_cascade_adjoint::<FMA, _, N>(self.coeffs, self.grad, self.lambda);
    }
}

/// The output of every section of one channel, recorded for the adjoint:
/// `stages[k]` is the output of section `k` (the input of section `k + 1`).
pub type CascadeTape<T, const N: usize> = [Vec<T>; N];

/// Filters one channel in place from rest, recording every section's output.
pub fn forward<T: Real, const N: usize>(designs: &[Design; N], signal: &mut [T], stages: &mut CascadeTape<T, N>) {
    let mut filters = cascade(designs);
    for s in stages.iter_mut() {
        s.resize(signal.len(), T::zero());
    }
    dispatch(Filter { filters: &mut filters, signal, stages: Some(stages) });
}

/// The exact adjoint of [`forward`] for one channel: `grad` holds `∂L/∂output` on entry and
/// `∂L/∂input` on return; each section's `[gain_db, freq_hz, q]` gradients are added to
/// `section_grad`.
pub fn adjoint<T: Real, const N: usize>(
    designs: &[Design; N],
    input: &[T],
    stages: &CascadeTape<T, N>,
    grad: &mut [T],
    section_grad: &mut [[f64; 3]; N],
) {
    let len = input.len();
    let coeffs = designs.map(|d| d.coeffs);
    let mut lambda: [Vec<T>; N] = std::array::from_fn(|_| vec![T::zero(); len]);
    dispatch(Reverse { coeffs: &coeffs, lambda: &mut lambda, grad: &mut grad[..len] });
    for k in 0..N {
        let x: &[T] = if k == 0 { input } else { &stages[k - 1] };
        let coeff_grad = biquad::coeff_grad(&lambda[k], x, &stages[k]);
        for (g, p) in section_grad[k].iter_mut().zip(biquad::param_grad(&designs[k], &coeff_grad)) {
            *g += p;
        }
    }
}
