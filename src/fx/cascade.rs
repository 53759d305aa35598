//! A series of biquad sections run as one filter (the EQ's six, a filter's two): streaming per
//! channel, and taped from rest with its exact adjoint down to each section's design knobs.

use super::biquad::{self, Biquad, Coeffs, Design};
use super::track::Track;
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

/// Filters one channel in place from rest, recording every section's output; segment `i` of
/// `track` uses `designs[i]`, the filters' state carried across (as [`Cascades::set`] keeps it).
pub fn forward<T: Real, const N: usize>(designs: &[[Design; N]], track: &Track<'_>, signal: &mut [T], stages: &mut CascadeTape<T, N>) {
    for s in stages.iter_mut() {
        s.resize(signal.len(), T::zero());
    }
    if let [designs] = designs {
        let mut filters = cascade(designs);
        dispatch(Filter { filters: &mut filters, signal, stages: Some(stages) });
        return;
    }
    // Section by section (the same arithmetic as sample by sample through all of them).
    for k in 0..N {
        let (before, rest) = stages.split_at_mut(k);
        let x: &[T] = if k == 0 { signal } else { &before[k - 1] };
        let y = &mut rest[0];
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for (i, range, _) in track.spans(x.len()) {
            let c = designs[i][k].coeffs;
            for n in range {
                let xn = x[n].to64();
                let yn = c.b0 * xn + s1;
                s1 = c.b1 * xn - c.a1 * yn + s2;
                s2 = c.b2 * xn - c.a2 * yn;
                y[n] = T::of(yn);
            }
        }
    }
    signal.copy_from_slice(&stages[N - 1]);
}

/// The exact adjoint of [`forward`] for one channel: `grad` holds `∂L/∂output` on entry and
/// `∂L/∂input` on return; each section's `[gain_db, freq_hz, q]` gradients of segment `i` are
/// added to `section_grad[i]`.
///
/// In transposed direct form II a coefficient set at sample `m` acts on `x[m]` and `y[m]`
/// only, so with per-sample coefficients `λ[n] = ∂L/∂y[n] − a1(n)·λ[n+1] − a2(n)·λ[n+2]`,
/// `∂L/∂x[n] = b0(n)·λ[n] + b1(n)·λ[n+1] + b2(n)·λ[n+2]`, `∂L/∂b_k(m) = λ[m+k]·x[m]` and
/// `∂L/∂a_k(m) = −λ[m+k]·y[m]`, summed over each segment.
pub fn adjoint<T: Real, const N: usize>(
    designs: &[[Design; N]],
    track: &Track<'_>,
    input: &[T],
    stages: &CascadeTape<T, N>,
    grad: &mut [T],
    section_grad: &mut [[[f64; 3]; N]],
) {
    let len = input.len();
    if let [designs] = designs {
        let coeffs = designs.map(|d| d.coeffs);
        let mut lambda: [Vec<T>; N] = std::array::from_fn(|_| vec![T::zero(); len]);
        dispatch(Reverse { coeffs: &coeffs, lambda: &mut lambda, grad: &mut grad[..len] });
        for k in 0..N {
            let x: &[T] = if k == 0 { input } else { &stages[k - 1] };
            let coeff_grad = biquad::coeff_grad(&lambda[k], x, &stages[k]);
            for (g, p) in section_grad[0][k].iter_mut().zip(biquad::param_grad(&designs[k], &coeff_grad)) {
                *g += p;
            }
        }
        return;
    }
    for k in (0..N).rev() {
        let x: &[T] = if k == 0 { input } else { &stages[k - 1] };
        let y = &stages[k];
        let (mut l1, mut l2) = (0.0f64, 0.0f64);
        for (i, range, _) in track.spans(len).rev() {
            let design = &designs[i][k];
            let c = design.coeffs;
            let mut coeff_grad = [0.0f64; 5];
            for n in range.rev() {
                let l0 = grad[n].to64() - c.a1 * l1 - c.a2 * l2;
                let (xn, yn) = (x[n].to64(), y[n].to64());
                coeff_grad[0] += l0 * xn;
                coeff_grad[1] += l1 * xn;
                coeff_grad[2] += l2 * xn;
                coeff_grad[3] -= l1 * yn;
                coeff_grad[4] -= l2 * yn;
                grad[n] = T::of(c.b0 * l0 + c.b1 * l1 + c.b2 * l2);
                (l2, l1) = (l1, l0);
            }
            for (g, p) in section_grad[i][k].iter_mut().zip(biquad::param_grad(design, &coeff_grad)) {
                *g += p;
            }
        }
    }
}

/// Filters every channel in place from rest with [`forward`], one tape per channel; segment
/// `i` of `track` uses `designs[i]`.
pub fn forward_channels<T: Real, const N: usize>(
    designs: &[[Design; N]],
    track: &Track<'_>,
    channels: &mut [&mut [T]],
    tape: &mut Vec<CascadeTape<T, N>>,
) {
    tape.resize_with(channels.len(), || std::array::from_fn(|_| Vec::new()));
    for (x, stages) in channels.iter_mut().zip(tape.iter_mut()) {
        forward(designs, track, x, stages);
    }
}

/// [`adjoint`] over every channel of [`forward_channels`]: returns each segment's sections'
/// `[gain_db, freq_hz, q]` gradients, summed over the channels.
pub fn adjoint_channels<T: Real, const N: usize>(
    designs: &[[Design; N]],
    track: &Track<'_>,
    input: &[&[T]],
    tape: &[CascadeTape<T, N>],
    grad: &mut [&mut [T]],
) -> Vec<[[f64; 3]; N]> {
    let mut section_grad = vec![[[0.0; 3]; N]; track.segments()];
    for ((x, stages), g) in input.iter().zip(tape).zip(grad.iter_mut()) {
        adjoint(designs, track, x, stages, g, &mut section_grad);
    }
    section_grad
}
