//! The short-time Fourier transform as `torch.stft` computes it with its defaults, and its exact
//! adjoint (the transpose used to backpropagate through it).
//!
//! Frame `t` of a signal `x` of length `L` is
//! `X_t[k] = Σ_{j<N} w[j] · p[t·hop + j] · e^{−2πi·jk/N}` for `k = 0..=N/2` and
//! `t = 0..1 + (L + 2⌊N/2⌋ − N)/hop`, where `p` is `x` reflect-padded by `⌊N/2⌋` samples on each
//! side (`center=True, pad_mode="reflect"`: `p[⌊N/2⌋ − m] = x[m]`,
//! `p[⌊N/2⌋ + L − 1 + m] = x[L − 1 − m]`) and `w` is the periodic Hann window
//! `w[j] = sin²(πj/N)` (`torch.hann_window(N)`, `periodic=True`), not normalised
//! (`normalized=False`). Reference: PyTorch `torch.stft` and `torch.hann_window` documentation.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

use crate::Real;

/// An STFT of one size and hop: plans, window and scratch buffers, reused across calls. One per
/// thread; no call allocates after the first one with a given signal length.
///
/// The transform is exposed in its three stages, each with its adjoint, so that callers can
/// process one frame at a time: [`Stft::pad`] / [`Stft::pad_adjoint`], then
/// [`Stft::frame`] / [`Stft::frame_adjoint`] per frame. [`Stft::forward`], [`Stft::adjoint`]
/// and [`Stft::magnitudes`] compose them over a whole signal.
pub struct Stft<T: Real> {
    n_fft: usize,
    hop: usize,
    window: Vec<T>,
    forward: Arc<dyn RealToComplex<T>>,
    inverse: Arc<dyn ComplexToReal<T>>,
    /// The complex FFT of size `N` for [`Stft::frame_pair`].
    complex: Arc<dyn Fft<T>>,
    frame: Vec<T>,
    frame_pair: Vec<Complex<T>>,
    scratch: Vec<Complex<T>>,
    /// The padded signal or its gradient, for the whole-signal methods.
    padded: Vec<T>,
    /// One frame's spectrum, for [`Stft::magnitudes`].
    spectrum: Vec<Complex<T>>,
}

impl<T: Real> Stft<T> {
    /// Plans an STFT with FFT size and window length `n_fft` and hop `hop` (both at least 1).
    pub fn new(n_fft: usize, hop: usize) -> Self {
        assert!(n_fft >= 1 && hop >= 1, "STFT needs n_fft >= 1 and hop >= 1 (got {n_fft}, {hop})");
        let mut planner = RealFftPlanner::<T>::new();
        let forward = planner.plan_fft_forward(n_fft);
        let inverse = planner.plan_fft_inverse(n_fft);
        let complex = FftPlanner::new().plan_fft_forward(n_fft);
        let scratch_len = forward.get_scratch_len().max(inverse.get_scratch_len()).max(complex.get_inplace_scratch_len());
        Self {
            n_fft,
            hop,
            window: periodic_hann(n_fft),
            forward,
            inverse,
            complex,
            frame: vec![T::zero(); n_fft],
            frame_pair: vec![Complex::default(); n_fft],
            scratch: vec![Complex::default(); scratch_len],
            padded: Vec::new(),
            spectrum: vec![Complex::default(); n_fft / 2 + 1],
        }
    }

    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Bins per frame, `N/2 + 1`.
    pub fn num_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Whether a signal of `len` samples can be reflect-padded: `⌊N/2⌋ < len` (torch's condition).
    pub fn fits(&self, len: usize) -> bool {
        self.pad_len() < len
    }

    /// Frames of a signal of `len` samples: `1 + (len + 2⌊N/2⌋ − N) / hop`.
    pub fn num_frames(&self, len: usize) -> usize {
        1 + (len + 2 * self.pad_len() - self.n_fft) / self.hop
    }

    /// Samples of reflect padding on each side, `⌊N/2⌋`. Reflect padding by `p` is the centre
    /// of reflect padding by any `P ≥ p`, so one padded buffer serves every smaller STFT.
    pub fn pad_len(&self) -> usize {
        self.n_fft / 2
    }

    /// Writes `signal` reflect-padded by `⌊N/2⌋` samples on each side into `padded`.
    ///
    /// # Panics
    /// If the signal does not [fit](Stft::fits).
    pub fn pad(&self, signal: &[T], padded: &mut Vec<T>) {
        let (len, pad) = (signal.len(), self.pad_len());
        assert!(self.fits(len), "signal of {len} samples is too short for an STFT of size {}", self.n_fft);
        padded.clear();
        padded.extend((1..=pad).rev().map(|m| signal[m]));
        padded.extend_from_slice(signal);
        padded.extend((1..=pad).map(|m| signal[len - 1 - m]));
    }

    /// Adds the adjoint of [`Stft::pad`] applied to `padded_grad` to `grad`: each padding
    /// sample's gradient goes to the sample it copied.
    pub fn pad_adjoint(&self, padded_grad: &[T], grad: &mut [T]) {
        let (len, pad) = (grad.len(), self.pad_len());
        assert_eq!(padded_grad.len(), len + 2 * pad, "padded gradient length");
        for (g, &p) in grad.iter_mut().zip(&padded_grad[pad..pad + len]) {
            *g = *g + p;
        }
        for m in 1..=pad {
            grad[m] = grad[m] + padded_grad[pad - m];
            grad[len - 1 - m] = grad[len - 1 - m] + padded_grad[pad + len - 1 + m];
        }
    }

    /// Writes the spectrum of frame `t` of a [padded](Stft::pad) signal into `spectrum`
    /// (`num_bins()` values).
    #[inline(always)]
    pub fn frame(&mut self, padded: &[T], t: usize, spectrum: &mut [Complex<T>]) {
        let segment = &padded[t * self.hop..t * self.hop + self.n_fft];
        for ((f, &x), &w) in self.frame.iter_mut().zip(segment).zip(&self.window) {
            *f = x * w;
        }
        self.forward.process_with_scratch(&mut self.frame, spectrum, &mut self.scratch).expect("buffer lengths match the plan");
    }

    /// [`Stft::frame`] of two padded signals `a` and `b` at once, by one complex FFT of
    /// `z = w·(a + i·b)` split with the Hermitian symmetry of real signals' spectra:
    /// `A_k = (Z_k + conj Z_{N−k}) / 2`, `B_k = (Z_k − conj Z_{N−k}) / 2i`.
    #[inline(always)]
    pub fn frame_pair(&mut self, padded_a: &[T], padded_b: &[T], t: usize, spectrum_a: &mut [Complex<T>], spectrum_b: &mut [Complex<T>]) {
        let (n, bins, start) = (self.n_fft, self.num_bins(), t * self.hop);
        let (a, b) = (&padded_a[start..start + n], &padded_b[start..start + n]);
        for (((z, &a), &b), &w) in self.frame_pair.iter_mut().zip(a).zip(b).zip(&self.window) {
            *z = Complex::new(a * w, b * w);
        }
        self.complex.process_with_scratch(&mut self.frame_pair, &mut self.scratch);
        let half = T::of(0.5);
        let z = &self.frame_pair;
        spectrum_a[0] = Complex::new(z[0].re, T::zero());
        spectrum_b[0] = Complex::new(z[0].im, T::zero());
        let mirrored = z[n + 1 - bins..].iter().rev();
        let split = spectrum_a[1..bins].iter_mut().zip(&mut spectrum_b[1..bins]);
        for ((z, &mirror), (a, b)) in z[1..bins].iter().zip(mirrored).zip(split) {
            let (sum, difference) = (z + mirror.conj(), z - mirror.conj());
            *a = sum.scale(half);
            *b = Complex::new(difference.im * half, -difference.re * half);
        }
    }

    /// Adds the adjoint of [`Stft::frame`] to `padded_grad`: with `G = ∂ℓ/∂Re X + i·∂ℓ/∂Im X`
    /// per bin in `spectrum_grad`, `∂ℓ/∂p[t·hop + j] += w[j] · Re Σ_k G_k e^{2πi·jk/N}`, computed
    /// by the unnormalised inverse real FFT of the Hermitian half spectrum (interior bins halved,
    /// imaginary parts of DC and Nyquist dropped). `spectrum_grad` is used as scratch space.
    #[inline(always)]
    pub fn frame_adjoint(&mut self, spectrum_grad: &mut [Complex<T>], t: usize, padded_grad: &mut [T]) {
        let bins = self.num_bins();
        let has_nyquist = self.n_fft.is_multiple_of(2);
        spectrum_grad[0].im = T::zero();
        if has_nyquist {
            spectrum_grad[bins - 1].im = T::zero();
        }
        let half = T::of(0.5);
        for g in &mut spectrum_grad[1..if has_nyquist { bins - 1 } else { bins }] {
            *g = g.scale(half);
        }
        self.inverse
            .process_with_scratch(spectrum_grad, &mut self.frame, &mut self.scratch)
            .expect("buffer lengths match the plan and DC/Nyquist are real");
        let segment = &mut padded_grad[t * self.hop..t * self.hop + self.n_fft];
        for ((p, &y), &w) in segment.iter_mut().zip(&self.frame).zip(&self.window) {
            *p = *p + y * w;
        }
    }

    /// Writes the spectra of all frames of `signal`, frame after frame, into `spectra`
    /// (`num_frames(len) × num_bins()` values).
    ///
    /// # Panics
    /// If the signal does not [fit](Stft::fits) or `spectra` has the wrong length.
    pub fn forward(&mut self, signal: &[T], spectra: &mut [Complex<T>]) {
        let bins = self.num_bins();
        let mut padded = std::mem::take(&mut self.padded);
        self.pad(signal, &mut padded);
        assert_eq!(spectra.len(), self.num_frames(signal.len()) * bins, "STFT output length");
        for (t, spectrum) in spectra.chunks_exact_mut(bins).enumerate() {
            self.frame(&padded, t, spectrum);
        }
        self.padded = padded;
    }

    /// Adds the adjoint (transpose) of [`Stft::forward`] applied to `spectra_grad` to `grad`
    /// ([`Stft::frame_adjoint`] per frame, then [`Stft::pad_adjoint`]). `spectra_grad` is used as
    /// scratch space.
    ///
    /// # Panics
    /// If the lengths do not match as in [`Stft::forward`].
    pub fn adjoint(&mut self, spectra_grad: &mut [Complex<T>], grad: &mut [T]) {
        let (len, bins) = (grad.len(), self.num_bins());
        assert!(self.fits(len), "signal of {len} samples is too short for an STFT of size {}", self.n_fft);
        assert_eq!(spectra_grad.len(), self.num_frames(len) * bins, "STFT gradient length");
        let mut padded_grad = std::mem::take(&mut self.padded);
        padded_grad.clear();
        padded_grad.resize(len + 2 * self.pad_len(), T::zero());
        for (t, spectrum_grad) in spectra_grad.chunks_exact_mut(bins).enumerate() {
            self.frame_adjoint(spectrum_grad, t, &mut padded_grad);
        }
        self.pad_adjoint(&padded_grad, grad);
        self.padded = padded_grad;
    }

    /// Writes the magnitudes `|X_t[k]|` of all frames of `signal`, frame after frame, into `out`
    /// (`num_frames(len) × num_bins()` values).
    ///
    /// # Panics
    /// As [`Stft::forward`].
    pub fn magnitudes(&mut self, signal: &[T], out: &mut [T]) {
        let bins = self.num_bins();
        let (mut padded, mut spectrum) = (std::mem::take(&mut self.padded), std::mem::take(&mut self.spectrum));
        self.pad(signal, &mut padded);
        assert_eq!(out.len(), self.num_frames(signal.len()) * bins, "STFT output length");
        for (t, magnitudes) in out.chunks_exact_mut(bins).enumerate() {
            self.frame(&padded, t, &mut spectrum);
            for (m, x) in magnitudes.iter_mut().zip(&spectrum) {
                *m = x.norm();
            }
        }
        (self.padded, self.spectrum) = (padded, spectrum);
    }
}

/// The periodic Hann window of length `n`, `w[j] = sin²(πj/n)` (`torch.hann_window(n)`).
pub fn periodic_hann<T: Real>(n: usize) -> Vec<T> {
    (0..n).map(|j| T::of((std::f64::consts::PI * j as f64 / n as f64).sin().powi(2))).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// `torch.stft` written out naively: explicit reflect padding, explicit DFT sums.
    pub(crate) fn naive_stft(x: &[f64], n: usize, hop: usize) -> Vec<Complex<f64>> {
        let pad = n / 2;
        let len = x.len() as isize;
        let padded: Vec<f64> = (-(pad as isize)..len + pad as isize)
            .map(|i| {
                let r = if i < 0 {
                    -i
                } else if i >= len {
                    2 * (len - 1) - i
                } else {
                    i
                };
                x[r as usize]
            })
            .collect();
        let frames = 1 + (padded.len() - n) / hop;
        let mut out = Vec::new();
        for t in 0..frames {
            for k in 0..=n / 2 {
                let mut acc = Complex::new(0.0, 0.0);
                for j in 0..n {
                    let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * j as f64 / n as f64).cos();
                    let phase = -2.0 * std::f64::consts::PI * (j * k) as f64 / n as f64;
                    acc += Complex::from_polar(w * padded[t * hop + j], phase);
                }
                out.push(acc);
            }
        }
        out
    }

    #[test]
    fn forward_matches_naive_stft() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (n, hop, len) in [(8, 4, 37), (16, 8, 16), (9, 3, 20), (32, 16, 17), (4, 1, 5)] {
            let x = random(len, &mut rng);
            let mut stft = Stft::<f64>::new(n, hop);
            let mut got = vec![Complex::default(); stft.num_frames(len) * stft.num_bins()];
            stft.forward(&x, &mut got);
            let want = naive_stft(&x, n, hop);
            assert_eq!(got.len(), want.len(), "n={n} hop={hop} len={len}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).norm() < 1e-12, "n={n} hop={hop}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn frame_pair_matches_single_frames() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (n, len) in [(8, 30), (9, 30), (32, 100), (1, 3), (2, 3)] {
            let mut stft = Stft::<f64>::new(n, (n / 2).max(1));
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            stft.pad(&random(len, &mut rng), &mut pa);
            stft.pad(&random(len, &mut rng), &mut pb);
            let bins = stft.num_bins();
            let mut single = [vec![Complex::default(); bins], vec![Complex::default(); bins]];
            let mut paired = [vec![Complex::default(); bins], vec![Complex::default(); bins]];
            for t in 0..stft.num_frames(len) {
                stft.frame(&pa, t, &mut single[0]);
                stft.frame(&pb, t, &mut single[1]);
                let [a, b] = &mut paired;
                stft.frame_pair(&pa, &pb, t, a, b);
                for (s, p) in single.iter().flatten().zip(paired.iter().flatten()) {
                    assert!((s - p).norm() < 1e-12, "n={n} frame {t}: {s} vs {p}");
                }
            }
        }
    }

    #[test]
    fn adjoint_is_the_transpose_of_forward() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (n, hop, len) in [(8, 4, 37), (16, 8, 9), (9, 3, 20), (32, 16, 100)] {
            let mut stft = Stft::<f64>::new(n, hop);
            let x = random(len, &mut rng);
            let size = stft.num_frames(len) * stft.num_bins();
            let y: Vec<Complex<f64>> = (0..size).map(|_| Complex::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0))).collect();
            let mut fx = vec![Complex::default(); size];
            stft.forward(&x, &mut fx);
            let lhs: f64 = fx.iter().zip(&y).map(|(a, b)| a.re * b.re + a.im * b.im).sum();
            let mut aty = vec![0.0; len];
            stft.adjoint(&mut y.clone(), &mut aty);
            let rhs: f64 = x.iter().zip(&aty).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0), "n={n}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn too_short_signals_do_not_fit() {
        let stft = Stft::<f32>::new(32, 16);
        assert!(!stft.fits(16));
        assert!(stft.fits(17));
    }
}
