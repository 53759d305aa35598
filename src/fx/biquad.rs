//! RBJ Audio-EQ-Cookbook biquads (Bristow-Johnson, "Cookbook formulae for audio EQ biquad
//! filter coefficients"): coefficient design with its Jacobian, and the true recursive filter
//! in transposed direct form II with its exact adjoint.

use super::jet::Jet;
use crate::Real;
use crate::simd::{Kernel, dispatch, madd};

/// The highest centre/corner frequency a section may have, as a fraction of the sample rate.
pub const MAX_FREQ_FRACTION: f64 = 0.45;

/// The shape of one EQ section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    LowShelf,
    Peaking,
    HighShelf,
    /// Second-order low-pass (gain unused).
    LowPass,
    /// Second-order high-pass (gain unused).
    HighPass,
    /// Second-order all-pass (gain unused).
    AllPass,
}

/// Biquad coefficients normalised by `a0`:
/// `y[n] = b0·x[n] + b1·x[n−1] + b2·x[n−2] − a1·y[n−1] − a2·y[n−2]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Coeffs {
    pub b0: f64,
    pub b1: f64,
    pub b2: f64,
    pub a1: f64,
    pub a2: f64,
}

impl Coeffs {
    /// The coefficients as an array `[b0, b1, b2, a1, a2]`.
    pub fn to_array(self) -> [f64; 5] {
        [self.b0, self.b1, self.b2, self.a1, self.a2]
    }

    /// Complex frequency response `H(e^{jω})` at `freq_hz`, as `(re, im)`.
    pub fn response(&self, freq_hz: f64, sample_rate: f64) -> (f64, f64) {
        let w = 2.0 * std::f64::consts::PI * freq_hz / sample_rate;
        let (s1, c1) = w.sin_cos();
        let (s2, c2) = (2.0 * w).sin_cos();
        let (nr, ni) = (self.b0 + self.b1 * c1 + self.b2 * c2, -(self.b1 * s1 + self.b2 * s2));
        let (dr, di) = (1.0 + self.a1 * c1 + self.a2 * c2, -(self.a1 * s1 + self.a2 * s2));
        let d = dr * dr + di * di;
        ((nr * dr + ni * di) / d, (ni * dr - nr * di) / d)
    }

    /// Magnitude response in dB at `freq_hz`.
    pub fn magnitude_db(&self, freq_hz: f64, sample_rate: f64) -> f64 {
        let (re, im) = self.response(freq_hz, sample_rate);
        10.0 * (re * re + im * im).log10()
    }
}

/// Coefficients of one section together with their partial derivatives with respect to
/// `(gain_db, freq_hz, q)`: `jacobian[p]` holds `∂coeffs/∂param_p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Design {
    pub coeffs: Coeffs,
    pub jacobian: [Coeffs; 3],
}

/// Designs one RBJ section and its Jacobian.
///
/// With `A = 10^(gain_db/40)`, `ω0 = 2π·f/fs` and `α = sin ω0 / (2Q)` (the cookbook's Q form,
/// which for the shelves sets the shelf slope), the peaking section is
/// `b = [1 + αA, −2cos ω0, 1 − αA]`, `a = [1 + α/A, −2cos ω0, 1 − α/A]`, and the shelves use the
/// cookbook's formulas with `2√A·α`; the low-pass is `b = [(1 − cos ω0)/2, 1 − cos ω0,
/// (1 − cos ω0)/2]`, the high-pass `b = [(1 + cos ω0)/2, −(1 + cos ω0), (1 + cos ω0)/2]`, both with
/// `a = [1 + α, −2cos ω0, 1 − α]`, and the all-pass `b = [1 − α, −2cos ω0, 1 + α]` with the same
/// `a`; all are divided by `a0`. A frequency above
/// [`MAX_FREQ_FRACTION`]·fs is clamped there, where its derivative is zero.
pub fn design(shape: Shape, gain_db: f64, freq_hz: f64, q: f64, sample_rate: f64) -> Design {
    let g = Jet::<3>::variable(gain_db, 0);
    let f_max = MAX_FREQ_FRACTION * sample_rate;
    let f = if freq_hz > f_max { Jet::constant(f_max) } else { Jet::variable(freq_hz, 1) };
    let q = Jet::variable(q, 2);

    let a = (g * (std::f64::consts::LN_10 / 40.0)).exp();
    let w0 = f * (2.0 * std::f64::consts::PI / sample_rate);
    let (sin, cos) = (w0.sin(), w0.cos());
    let alpha = sin / (q * 2.0);
    let one = Jet::constant(1.0);
    let two_sqrt_a_alpha = a.sqrt() * alpha * 2.0;

    let [b0, b1, b2, a0, a1, a2] = match shape {
        Shape::Peaking => [one + alpha * a, cos * -2.0, one - alpha * a, one + alpha / a, cos * -2.0, one - alpha / a],
        Shape::LowShelf => {
            let (ap1, am1) = (a + 1.0, a + -1.0);
            [
                a * (ap1 - am1 * cos + two_sqrt_a_alpha),
                a * (am1 - ap1 * cos) * 2.0,
                a * (ap1 - am1 * cos - two_sqrt_a_alpha),
                ap1 + am1 * cos + two_sqrt_a_alpha,
                (am1 + ap1 * cos) * -2.0,
                ap1 + am1 * cos - two_sqrt_a_alpha,
            ]
        }
        Shape::HighShelf => {
            let (ap1, am1) = (a + 1.0, a + -1.0);
            [
                a * (ap1 + am1 * cos + two_sqrt_a_alpha),
                a * (am1 + ap1 * cos) * -2.0,
                a * (ap1 + am1 * cos - two_sqrt_a_alpha),
                ap1 - am1 * cos + two_sqrt_a_alpha,
                (am1 - ap1 * cos) * 2.0,
                ap1 - am1 * cos - two_sqrt_a_alpha,
            ]
        }
        Shape::LowPass => {
            let b = (one - cos) * 0.5;
            [b, one - cos, b, one + alpha, cos * -2.0, one - alpha]
        }
        Shape::HighPass => {
            let b = (one + cos) * 0.5;
            [b, (one + cos) * -1.0, b, one + alpha, cos * -2.0, one - alpha]
        }
        Shape::AllPass => [one - alpha, cos * -2.0, one + alpha, one + alpha, cos * -2.0, one - alpha],
    };
    let n = [b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0];
    let pick = |p: Option<usize>| {
        let v = |j: Jet<3>| p.map_or(j.value, |p| j.grad[p]);
        Coeffs { b0: v(n[0]), b1: v(n[1]), b2: v(n[2]), a1: v(n[3]), a2: v(n[4]) }
    };
    Design { coeffs: pick(None), jacobian: [pick(Some(0)), pick(Some(1)), pick(Some(2))] }
}

/// Coefficients and state of one biquad in transposed direct form II. The arithmetic is in
/// `f64` whatever the sample type: in `f32`, coefficient rounding moves the poles of
/// low-frequency sections audibly (and makes the response jump as knobs move).
#[derive(Clone, Copy, Debug, Default)]
pub struct Biquad {
    c: Coeffs,
    s1: f64,
    s2: f64,
}

impl Biquad {
    /// A filter with the given coefficients and zero state.
    pub fn new(c: Coeffs) -> Self {
        Biquad { c, s1: 0.0, s2: 0.0 }
    }

    /// Changes the coefficients, keeping the state.
    pub fn set_coeffs(&mut self, c: Coeffs) {
        self.c = c;
    }

    /// Clears the state.
    pub fn reset(&mut self) {
        self.s1 = 0.0;
        self.s2 = 0.0;
    }
}

/// Lanes of [`run_cascade`]'s time-skewed vectors.
const WAVEFRONT_LANES: usize = 8;

/// Runs `signal` in place through a cascade of up to eight sections, exactly as running each
/// sample through every section in turn would (same operations, same rounding), but with the
/// sections as SIMD lanes: at step `t` section `k` filters sample `t − k`, taking as input what
/// section `k − 1` produced one step earlier. The skew fills over the first steps of a call and
/// drains over `N − 1` extra steps at its end (lanes outside `0 ≤ t − k < len` keep their state),
/// so calls may have any length and the state between calls is the plain cascade's. With
/// `stages`, every section's output is also recorded (`stages[k][n]`, each `signal.len()` long).
#[inline(always)]
pub fn run_cascade<const FMA: bool, T: Real, const N: usize>(
    filters: &mut [Biquad; N],
    signal: &mut [T],
    mut stages: Option<&mut [Vec<T>; N]>,
) {
    const L: usize = WAVEFRONT_LANES;
    assert!((1..=L).contains(&N), "a cascade has 1 to {L} sections");
    let len = signal.len();
    let lane = |f: &dyn Fn(&Biquad) -> f64, pad: f64| -> [f64; L] { std::array::from_fn(|k| if k < N { f(&filters[k]) } else { pad }) };
    let (b0, b1, b2) = (lane(&|f| f.c.b0, 1.0), lane(&|f| f.c.b1, 0.0), lane(&|f| f.c.b2, 0.0));
    let (na1, na2) = (lane(&|f| -f.c.a1, 0.0), lane(&|f| -f.c.a2, 0.0));
    let (mut s1, mut s2) = (lane(&|f| f.s1, 0.0), lane(&|f| f.s2, 0.0));
    let mut z = [0.0f64; L];
    let step = |x: &[f64; L], s1: &mut [f64; L], s2: &mut [f64; L]| -> [f64; L] {
        let mut y = [0.0; L];
        for k in 0..L {
            y[k] = madd::<FMA, _>(b0[k], x[k], s1[k]);
            s1[k] = madd::<FMA, _>(na1[k], y[k], madd::<FMA, _>(b1[k], x[k], s2[k]));
            s2[k] = madd::<FMA, _>(na2[k], y[k], b2[k] * x[k]);
        }
        y
    };
    for t in 0..len + N - 1 {
        let mut x = [0.0f64; L];
        x[0] = if t < len { signal[t].to64() } else { 0.0 };
        x[1..].copy_from_slice(&z[..L - 1]);
        if t + 1 >= N && t < len {
            z = step(&x, &mut s1, &mut s2);
        } else {
            // Filling or draining: only sections with a sample in range advance.
            let (old1, old2) = (s1, s2);
            z = step(&x, &mut s1, &mut s2);
            for k in 0..N {
                if k > t || t - k >= len {
                    s1[k] = old1[k];
                    s2[k] = old2[k];
                }
            }
        }
        if let Some(stages) = stages.as_deref_mut() {
            for (k, stage) in stages.iter_mut().enumerate() {
                if k <= t && t - k < len {
                    stage[t - k] = T::of(z[k]);
                }
            }
        }
        if t + 1 >= N {
            signal[t + 1 - N] = T::of(z[N - 1]);
        }
    }
    for (k, f) in filters.iter_mut().enumerate() {
        f.s1 = s1[k];
        f.s2 = s2[k];
    }
}

/// The reverse-time pass of a cascade's adjoint, from zero state, with the sections as SIMD
/// lanes like [`run_cascade`]. For each section, run from the last sample to the first,
/// `λ[n] = ∂L/∂y[n] − a1·λ[n+1] − a2·λ[n+2]` (the all-pole part backwards in time) and
/// `∂L/∂x[n] = b0·λ[n] + b1·λ[n+1] + b2·λ[n+2]`, which is `∂L/∂y` of the section before.
/// `grad` holds `∂L/∂output` of the last section on entry and `∂L/∂input` of the first on
/// return; `lambda[k]` receives section `k`'s `λ` (for [`coeff_grad`]). Lane `j` is section
/// `N − 1 − j` and at step `t` handles the sample `t − j` places from the end; steps outside a
/// lane's range start from or feed only zeros, so no masking is needed.
#[inline(always)]
pub fn run_cascade_adjoint<const FMA: bool, T: Real, const N: usize>(coeffs: &[Coeffs; N], grad: &mut [T], lambda: &mut [Vec<T>; N]) {
    const L: usize = WAVEFRONT_LANES;
    assert!((1..=L).contains(&N), "a cascade has 1 to {L} sections");
    let len = grad.len();
    let lane = |f: &dyn Fn(&Coeffs) -> f64| -> [f64; L] { std::array::from_fn(|j| if j < N { f(&coeffs[N - 1 - j]) } else { 0.0 }) };
    let (b0, b1, b2) = (lane(&|c| c.b0), lane(&|c| c.b1), lane(&|c| c.b2));
    let (na1, na2) = (lane(&|c| -c.a1), lane(&|c| -c.a2));
    let (mut l1, mut l2) = ([0.0f64; L], [0.0f64; L]);
    let mut z = [0.0f64; L];
    for t in 0..len + N - 1 {
        let mut g = [0.0f64; L];
        g[0] = if t < len { grad[len - 1 - t].to64() } else { 0.0 };
        g[1..].copy_from_slice(&z[..L - 1]);
        for j in 0..L {
            let l0 = madd::<FMA, _>(na1[j], l1[j], madd::<FMA, _>(na2[j], l2[j], g[j]));
            z[j] = madd::<FMA, _>(b0[j], l0, madd::<FMA, _>(b1[j], l1[j], b2[j] * l2[j]));
            l2[j] = l1[j];
            l1[j] = l0;
        }
        for (j, section) in lambda.iter_mut().rev().enumerate() {
            if j <= t && t - j < len {
                section[len - 1 - (t - j)] = T::of(l1[j]);
            }
        }
        if t + 1 >= N {
            grad[len - 1 - (t + 1 - N)] = T::of(z[N - 1]);
        }
    }
}

/// `∂L/∂[b0, b1, b2, a1, a2]` from the adjoint state `λ` and the filter's input `x` and output
/// `y`: `∂L/∂b_k = Σ_n λ[n]·x[n−k]`, `∂L/∂a_k = −Σ_n λ[n]·y[n−k]` (zero initial state).
pub fn coeff_grad<T: Real>(lambda: &[T], x: &[T], y: &[T]) -> [f64; 5] {
    let lagged = |s: &[T], k: usize| {
        if k < s.len() { dispatch(Dot(&lambda[k..], &s[..s.len() - k])) } else { 0.0 }
    };
    [lagged(x, 0), lagged(x, 1), lagged(x, 2), -lagged(y, 1), -lagged(y, 2)]
}

/// `Σ a[i]·b[i]` over sixteen independent partial sums in the sample type (so it vectorises),
/// combined in `f64`.
struct Dot<'a, T>(&'a [T], &'a [T]);

impl<T: Real> Kernel for Dot<'_, T> {
    type Output = f64;
    #[inline(always)]
    fn run<const FMA: bool>(self) -> f64 {
        const LANES: usize = 16;
        let mut acc = [T::zero(); LANES];
        let (ca, cb) = (self.0.chunks_exact(LANES), self.1.chunks_exact(LANES));
        let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x.to64() * y.to64()).sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..LANES {
                acc[i] = madd::<FMA, _>(x[i], y[i], acc[i]);
            }
        }
        acc.iter().map(|v| v.to64()).sum::<f64>() + tail
    }
}

/// Chains coefficient gradients into `(gain_db, freq_hz, q)` gradients through a [`Design`].
pub fn param_grad(design: &Design, coeff_grad: &[f64; 5]) -> [f64; 3] {
    design.jacobian.map(|j| j.to_array().iter().zip(coeff_grad).map(|(d, g)| d * g).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FS: f64 = 48_000.0;

    #[test]
    fn responses_match_the_cookbook_definitions() {
        for gain in [-24.0, -7.5, 0.0, 6.0, 24.0] {
            // A peaking section has exactly `gain` at its centre frequency.
            let p = design(Shape::Peaking, gain, 1000.0, 2.0, FS).coeffs;
            assert!((p.magnitude_db(1000.0, FS) - gain).abs() < 1e-9, "peak {gain}");
            // Shelves: full gain on their side, unity on the other, half the gain (in dB) at
            // the corner frequency.
            let lo = design(Shape::LowShelf, gain, 100.0, 0.707, FS).coeffs;
            assert!((lo.magnitude_db(0.0, FS) - gain).abs() < 1e-9);
            assert!(lo.magnitude_db(FS / 2.0, FS).abs() < 1e-9);
            assert!((lo.magnitude_db(100.0, FS) - gain / 2.0).abs() < 1e-9);
            let hi = design(Shape::HighShelf, gain, 8000.0, 0.707, FS).coeffs;
            assert!((hi.magnitude_db(FS / 2.0, FS) - gain).abs() < 1e-9);
            assert!(hi.magnitude_db(0.0, FS).abs() < 1e-9);
            assert!((hi.magnitude_db(8000.0, FS) - gain / 2.0).abs() < 1e-9);
        }
    }

    #[test]
    fn jacobian_matches_central_differences() {
        let cases = [
            (Shape::LowShelf, 9.0, 35.0, 0.3, 8_000.0),
            (Shape::Peaking, -13.0, 1500.0, 7.0, 44_100.0),
            (Shape::Peaking, 24.0, 200.0, 0.1, 192_000.0),
            (Shape::HighShelf, -24.0, 11_000.0, 10.0, 96_000.0),
            (Shape::HighShelf, 3.0, 5000.0, 1.0, 24_000.0),
            (Shape::LowPass, 0.0, 700.0, 0.4, 16_000.0),
            (Shape::HighPass, 0.0, 90.0, 3.0, 48_000.0),
            (Shape::AllPass, 0.0, 2500.0, 0.7, 44_100.0),
        ];
        for (shape, g, f, q, fs) in cases {
            let d = design(shape, g, f, q, fs);
            let at = |p: [f64; 3]| design(shape, p[0], p[1], p[2], fs).coeffs.to_array();
            for i in 0..3 {
                let mut p = [g, f, q];
                let h = 1e-6 * p[i].abs().max(1.0);
                p[i] += h;
                let plus = at(p);
                p[i] -= 2.0 * h;
                let minus = at(p);
                for k in 0..5 {
                    let fd = (plus[k] - minus[k]) / (2.0 * h);
                    let an = d.jacobian[i].to_array()[k];
                    assert!((fd - an).abs() <= 1e-6 * (1.0 + an.abs()), "{shape:?} p{i} c{k}: {fd} vs {an}");
                }
            }
        }
    }

    #[test]
    fn frequency_is_clamped_below_nyquist_with_zero_derivative() {
        let d = design(Shape::Peaking, 6.0, 8000.0, 1.0, 16_000.0);
        let clamped = design(Shape::Peaking, 6.0, 0.45 * 16_000.0, 1.0, 16_000.0);
        assert_eq!(d.coeffs, clamped.coeffs);
        assert_eq!(d.jacobian[1], Coeffs::default());
    }

    #[test]
    fn cascade_matches_the_difference_equations_for_any_split() {
        let sections = [
            design(Shape::Peaking, 12.0, 3000.0, 4.0, FS).coeffs,
            design(Shape::LowShelf, -6.0, 150.0, 0.7, FS).coeffs,
            design(Shape::HighShelf, 9.0, 9000.0, 2.0, FS).coeffs,
        ];
        let x: Vec<f64> = (0..300).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
        // Independent reference: each section's difference equation over the whole signal.
        let mut expected = x.clone();
        for c in &sections {
            let input = expected.clone();
            for n in 0..input.len() {
                let get = |s: &[f64], k: usize| if n >= k { s[n - k] } else { 0.0 };
                expected[n] =
                    c.b0 * input[n] + c.b1 * get(&input, 1) + c.b2 * get(&input, 2) - c.a1 * get(&expected, 1) - c.a2 * get(&expected, 2);
            }
        }
        for split in [1usize, 2, 3, 7, 150, 300] {
            let mut filters = sections.map(Biquad::new);
            let mut y = x.clone();
            for chunk in y.chunks_mut(split) {
                run_cascade::<false, f64, 3>(&mut filters, chunk, None);
            }
            for (n, (a, b)) in y.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() < 1e-12, "split {split}, sample {n}: {a} vs {b}");
            }
        }
    }
}
