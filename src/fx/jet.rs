//! A first-order forward-mode derivative carrier for the few scalar formulas whose partial
//! derivatives the adjoints need (biquad coefficients as functions of gain, frequency and Q).

use std::ops::{Add, Div, Mul, Neg, Sub};

/// A value with its partial derivatives with respect to `N` inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jet<const N: usize> {
    pub value: f64,
    pub grad: [f64; N],
}

impl<const N: usize> Jet<N> {
    /// A quantity that does not depend on the inputs.
    pub fn constant(value: f64) -> Self {
        Jet { value, grad: [0.0; N] }
    }

    /// The `i`-th input variable itself.
    pub fn variable(value: f64, i: usize) -> Self {
        let mut grad = [0.0; N];
        grad[i] = 1.0;
        Jet { value, grad }
    }

    /// Applies a scalar function `f` with derivative `df` evaluated at this value.
    fn chain(self, f: f64, df: f64) -> Self {
        Jet { value: f, grad: self.grad.map(|g| g * df) }
    }

    pub fn sin(self) -> Self {
        self.chain(self.value.sin(), self.value.cos())
    }

    pub fn cos(self) -> Self {
        self.chain(self.value.cos(), -self.value.sin())
    }

    pub fn sqrt(self) -> Self {
        let s = self.value.sqrt();
        self.chain(s, 0.5 / s)
    }

    pub fn exp(self) -> Self {
        let e = self.value.exp();
        self.chain(e, e)
    }
}

impl<const N: usize> Add for Jet<N> {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Jet { value: self.value + o.value, grad: std::array::from_fn(|i| self.grad[i] + o.grad[i]) }
    }
}

impl<const N: usize> Sub for Jet<N> {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Jet { value: self.value - o.value, grad: std::array::from_fn(|i| self.grad[i] - o.grad[i]) }
    }
}

impl<const N: usize> Mul for Jet<N> {
    type Output = Self;
    // The product rule: the gradient of a product is a sum.
    #[allow(clippy::suspicious_arithmetic_impl)]
    fn mul(self, o: Self) -> Self {
        Jet { value: self.value * o.value, grad: std::array::from_fn(|i| self.grad[i] * o.value + self.value * o.grad[i]) }
    }
}

impl<const N: usize> Div for Jet<N> {
    type Output = Self;
    fn div(self, o: Self) -> Self {
        let inv = 1.0 / o.value;
        Jet { value: self.value * inv, grad: std::array::from_fn(|i| (self.grad[i] - self.value * inv * o.grad[i]) * inv) }
    }
}

impl<const N: usize> Neg for Jet<N> {
    type Output = Self;
    fn neg(self) -> Self {
        Jet { value: -self.value, grad: self.grad.map(|g| -g) }
    }
}

impl<const N: usize> Add<f64> for Jet<N> {
    type Output = Self;
    fn add(self, c: f64) -> Self {
        Jet { value: self.value + c, grad: self.grad }
    }
}

impl<const N: usize> Mul<f64> for Jet<N> {
    type Output = Self;
    fn mul(self, c: f64) -> Self {
        Jet { value: self.value * c, grad: self.grad.map(|g| g * c) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_closed_forms() {
        let (x0, y0) = (0.7, -1.3);
        let x = Jet::<2>::variable(x0, 0);
        let y = Jet::<2>::variable(y0, 1);
        // f = sin(x)·exp(y) / sqrt(x² + 1) − cos(x·y)
        let f = x.sin() * y.exp() / (x * x + 1.0).sqrt() - (x * y).cos();
        let r = (x0 * x0 + 1.0f64).sqrt();
        let dfdx = (x0.cos() * r - x0.sin() * x0 / r) / (r * r) * y0.exp() + (x0 * y0).sin() * y0;
        let dfdy = x0.sin() * y0.exp() / r + (x0 * y0).sin() * x0;
        assert!((f.value - (x0.sin() * y0.exp() / r - (x0 * y0).cos())).abs() < 1e-15);
        assert!((f.grad[0] - dfdx).abs() < 1e-14, "{} vs {dfdx}", f.grad[0]);
        assert!((f.grad[1] - dfdy).abs() < 1e-14, "{} vs {dfdy}", f.grad[1]);
        assert_eq!((-x * 2.0).grad, [-2.0, 0.0]);
    }
}
