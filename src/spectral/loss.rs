//! The multi-resolution STFT loss DeepAFx-ST trained with, and its exact gradient.
//!
//! Reference: auraloss `MultiResolutionSTFTLoss` / `STFTLoss` (csteinmetz1/auraloss,
//! `auraloss/freq.py`), configured as in DeepAFx-ST (adobe-research/DeepAFx-ST,
//! `deepafx_st/system.py`: FFT sizes 32…32768, hop = size/2, window length = size, `w_sc=0`,
//! `w_log_mag=1`, `w_lin_mag=1`; `configs/train_all_*_style.sh`: `--recon_losses mrstft l1`
//! with weights `1.0 100.0`).

use rayon::prelude::*;
use realfft::num_complex::Complex;

use super::stft::Stft;
use crate::simd::{Kernel, dispatch};
use crate::{Error, Real, Result};

/// auraloss's `eps`: the power `|X|²` is clamped to at least this before the square root.
pub const POWER_EPS: f64 = 1e-8;

/// Weights and resolutions of [`MrStftLoss`]. [`Default`] is DeepAFx-ST's training loss.
#[derive(Clone, Debug, PartialEq)]
pub struct MrStftConfig {
    /// FFT sizes, one per resolution; the window length equals the FFT size.
    pub fft_sizes: Vec<usize>,
    /// Hop as a fraction of the FFT size (rounded to a whole number of samples, at least 1).
    pub hop_fraction: f64,
    /// Weight of the log-magnitude term `mean |ln M̂ − ln M|`.
    pub w_log_mag: f64,
    /// Weight of the linear-magnitude term `mean |M̂ − M|`.
    pub w_lin_mag: f64,
    /// Weight of the spectral convergence term `‖M − M̂‖_F / ‖M‖_F`.
    pub w_sc: f64,
    /// Weight of the time-domain term `mean |x̂ − x|`.
    pub l1_weight: f64,
}

impl Default for MrStftConfig {
    fn default() -> Self {
        Self {
            fft_sizes: vec![32, 128, 512, 2048, 8192, 32768],
            hop_fraction: 0.5,
            w_log_mag: 1.0,
            w_lin_mag: 1.0,
            w_sc: 0.0,
            l1_weight: 100.0,
        }
    }
}

impl MrStftConfig {
    /// Checks that every FFT size is at least 2, the hop fraction is positive and finite, and
    /// the weights are finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        if let Some(n) = self.fft_sizes.iter().find(|&&n| n < 2) {
            return Err(Error::BadConfig { what: "MR-STFT loss", reason: format!("FFT size {n} is smaller than 2") });
        }
        if !(self.hop_fraction.is_finite() && self.hop_fraction > 0.0) {
            return Err(Error::BadConfig { what: "MR-STFT loss", reason: format!("hop fraction {} must be positive", self.hop_fraction) });
        }
        let weights = [("w_log_mag", self.w_log_mag), ("w_lin_mag", self.w_lin_mag), ("w_sc", self.w_sc), ("l1_weight", self.l1_weight)];
        if let Some((name, w)) = weights.iter().find(|(_, w)| !(w.is_finite() && *w >= 0.0)) {
            return Err(Error::BadConfig { what: "MR-STFT loss", reason: format!("{name} = {w} must be finite and >= 0") });
        }
        Ok(())
    }

    fn hop(&self, n_fft: usize) -> usize {
        ((n_fft as f64 * self.hop_fraction).round() as usize).max(1)
    }
}

/// auraloss's multi-resolution STFT loss plus DeepAFx-ST's weighted time-domain L1 term, for one
/// channel, with its exact gradient. Owns FFT plans and scratch buffers: one per thread; no
/// call allocates after the first one with a given signal length.
///
/// With `M̂_r`, `M_r` the magnitudes `sqrt(max(Re² + Im², 1e-8))` of the STFTs at resolution `r`
/// (see [`Stft`]: `torch.stft` defaults, reflect padding, periodic Hann, not normalised) of the
/// estimate `x̂` and the target `x`, each with `F_r` frames × `K_r` bins:
///
/// `L = (1/R) Σ_r [ w_log · mean|ln M̂_r − ln M_r| + w_lin · mean|M̂_r − M_r|
///                  + w_sc · ‖M_r − M̂_r‖_F / ‖M_r‖_F ]  +  l1_weight · mean|x̂ − x|`
///
/// with natural logarithms and means over all `F_r·K_r` bins (auraloss's `L1Loss`,
/// `reduction="mean"`). Deviation: torch fails on a signal of `len ≤ ⌊N/2⌋` samples (reflect
/// padding impossible); here such resolutions are skipped and `R` counts the resolutions used
/// (the spectral part is 0 when none is). The gradient uses `sign(0) = 0` at the kinks of the
/// absolute values and zero where the power clamp is active (as torch's autograd does).
///
/// Both signals are reflect-padded once, for the widest resolution (the others use its centre),
/// and frames are processed one at a time: one packed FFT for both signals
/// ([`Stft::frame_pair`]), bin sums, gradient, inverse FFT, overlap-add. With `w_sc > 0` the
/// gradient needs both Frobenius norms first, so each resolution takes a second pass. Because
/// both spectra come from one FFT, identical frames inside otherwise different signals give
/// equal magnitudes only up to rounding (~1e-16 relative), so the sign at that kink is
/// arbitrary; identical signals are caught up front and give exactly 0 and a zero gradient.
pub struct MrStftLoss<T: Real> {
    config: MrStftConfig,
    stfts: Vec<Stft<T>>,
    padded_estimate: Vec<T>,
    padded_target: Vec<T>,
    padded_grad: Vec<T>,
    spectrum_estimate: Vec<Complex<T>>,
    spectrum_target: Vec<Complex<T>>,
}

impl<T: Real> MrStftLoss<T> {
    /// Plans every resolution of `config`.
    ///
    /// # Panics
    /// If `config` fails [`MrStftConfig::validate`].
    pub fn new(config: MrStftConfig) -> Self {
        if let Err(e) = config.validate() {
            panic!("{e}");
        }
        let stfts: Vec<Stft<T>> = config.fft_sizes.iter().map(|&n| Stft::new(n, config.hop(n))).collect();
        let max_bins = stfts.iter().map(Stft::num_bins).max().unwrap_or(0);
        Self {
            config,
            stfts,
            padded_estimate: Vec::new(),
            padded_target: Vec::new(),
            padded_grad: Vec::new(),
            spectrum_estimate: vec![Complex::default(); max_bins],
            spectrum_target: vec![Complex::default(); max_bins],
        }
    }

    pub fn config(&self) -> &MrStftConfig {
        &self.config
    }

    /// The loss `L(estimate, target)`.
    ///
    /// # Panics
    /// If the two signals differ in length.
    pub fn value(&mut self, estimate: &[T], target: &[T]) -> f64 {
        self.evaluate(estimate, target, None)
    }

    /// The loss, and its gradient with respect to `estimate` written into `grad` (overwritten).
    ///
    /// # Panics
    /// If the three slices differ in length.
    pub fn value_and_grad(&mut self, estimate: &[T], target: &[T], grad: &mut [T]) -> f64 {
        assert_eq!(grad.len(), estimate.len(), "gradient length");
        self.evaluate(estimate, target, Some(grad))
    }

    fn evaluate(&mut self, estimate: &[T], target: &[T], mut grad: Option<&mut [T]>) -> f64 {
        let len = estimate.len();
        assert_eq!(len, target.len(), "estimate and target lengths differ");
        if estimate == target {
            if let Some(grad) = grad {
                grad.fill(T::zero());
            }
            return 0.0;
        }
        let config = &self.config;
        let l1 = config.l1_weight / len as f64;
        let mut loss = l1 * estimate.iter().zip(target).map(|(&e, &t)| (e - t).abs().to64()).sum::<f64>();
        if let Some(grad) = grad.as_deref_mut() {
            let scale = T::of(l1);
            for ((g, &e), &t) in grad.iter_mut().zip(estimate).zip(target) {
                *g = sign(e - t) * scale;
            }
        }
        let fitting = self.stfts.iter().filter(|s| s.fits(len)).count();
        let per_resolution = 1.0 / fitting.max(1) as f64;
        let widest = (0..self.stfts.len()).filter(|&i| self.stfts[i].fits(len)).max_by_key(|&i| self.stfts[i].pad_len());
        let Some(widest) = widest else {
            return loss;
        };
        let max_pad = self.stfts[widest].pad_len();
        self.stfts[widest].pad(estimate, &mut self.padded_estimate);
        self.stfts[widest].pad(target, &mut self.padded_target);
        if grad.is_some() {
            self.padded_grad.clear();
            self.padded_grad.resize(self.padded_estimate.len(), T::zero());
        }
        for stft in self.stfts.iter_mut().filter(|s| s.fits(len)) {
            let span = max_pad - stft.pad_len()..max_pad + len + stft.pad_len();
            let mut pass = FramePass {
                stft,
                padded_estimate: &self.padded_estimate[span.clone()],
                padded_target: &self.padded_target[span.clone()],
                spectrum_estimate: &mut self.spectrum_estimate,
                spectrum_target: &mut self.spectrum_target,
            };
            let count = (pass.stft.num_frames(len) * pass.stft.num_bins()) as f64;
            if grad.is_none() {
                loss += per_resolution * pass.run(None).loss(config, count);
                continue;
            }
            let sc_norms = if config.w_sc > 0.0 { pass.run(None).sc_norms() } else { 0.0 };
            let weights = GradWeights {
                log_mag: T::of(per_resolution * config.w_log_mag / count),
                lin_mag: T::of(per_resolution * config.w_lin_mag / count),
                sc: T::of(if sc_norms > 0.0 { per_resolution * config.w_sc / sc_norms } else { 0.0 }),
            };
            let sums = pass.run(Some((&weights, &mut self.padded_grad[span])));
            loss += per_resolution * sums.loss(config, count);
        }
        if let Some(grad) = grad {
            self.stfts[widest].pad_adjoint(&self.padded_grad, grad);
        }
        loss
    }
}

/// [`FramePass::run_frames`] as a [`Kernel`].
struct Frames<'p, 'a, 'g, T: Real> {
    pass: &'p mut FramePass<'a, T>,
    gradient: Option<(&'g GradWeights<T>, &'g mut [T])>,
}

impl<T: Real> Kernel for Frames<'_, '_, '_, T> {
    type Output = BinSums;
    #[inline(always)]
    fn run<const FMA: bool>(self) -> BinSums {
        self.pass.run_frames(self.gradient)
    }
}

/// The buffers of one pass over the frames of one resolution.
struct FramePass<'a, T: Real> {
    stft: &'a mut Stft<T>,
    padded_estimate: &'a [T],
    padded_target: &'a [T],
    spectrum_estimate: &'a mut [Complex<T>],
    spectrum_target: &'a mut [Complex<T>],
}

impl<T: Real> FramePass<'_, T> {
    /// Transforms every frame of both signals and sums its bins; with `gradient`, also adds the
    /// loss's gradient with respect to the padded estimate into the given buffer. The loops get
    /// an AVX2 + FMA build (see [`crate::simd`]).
    fn run(&mut self, gradient: Option<(&GradWeights<T>, &mut [T])>) -> BinSums {
        dispatch(Frames { pass: self, gradient })
    }

    #[inline(always)]
    fn run_frames(&mut self, mut gradient: Option<(&GradWeights<T>, &mut [T])>) -> BinSums {
        let bins = self.stft.num_bins();
        let frames = self.stft.num_frames(self.padded_estimate.len() - 2 * self.stft.pad_len());
        let (estimate, target) = (&mut self.spectrum_estimate[..bins], &mut self.spectrum_target[..bins]);
        let mut sums = BinSums::default();
        for t in 0..frames {
            self.stft.frame_pair(self.padded_estimate, self.padded_target, t, estimate, target);
            sums.add_frame(estimate, target);
            if let Some((weights, padded_grad)) = gradient.as_mut() {
                magnitude_gradient(estimate, target, weights);
                self.stft.frame_adjoint(estimate, t, padded_grad);
            }
        }
        sums
    }
}

/// Lanes of the bin loop: independent accumulators the compiler can keep in SIMD registers.
const LANES: usize = 8;
/// Bins between flushes of the lane accumulators. Each lane then multiplies at most 8 ratios
/// `≤ f32::MAX`, whose product stays below `f64::MAX`.
const BLOCK: usize = 8 * LANES;

/// Sums over the bins of one resolution, in `f64`.
#[derive(Default)]
struct BinSums {
    /// `Σ |ln P̂ − ln P| = 2 Σ |ln M̂ − ln M|`, kept as a product (see [`LogSum`]).
    abs_log_power_ratio: LogSum,
    abs_difference: f64,
    squared_difference: f64,
    squared_target: f64,
}

impl BinSums {
    /// Adds one frame's bins, [`BLOCK`] at a time in [`LANES`] lanes.
    #[inline(always)]
    fn add_frame<T: Real>(&mut self, estimate: &[Complex<T>], target: &[Complex<T>]) {
        for (estimate, target) in estimate.chunks(BLOCK).zip(target.chunks(BLOCK)) {
            let mut lanes = Lanes::default();
            let whole = estimate.len() / LANES * LANES;
            let (estimate_tail, target_tail) = (&estimate[whole..], &target[whole..]);
            for (e, t) in estimate[..whole].chunks_exact(LANES).zip(target[..whole].chunks_exact(LANES)) {
                for lane in 0..LANES {
                    lanes.add(lane, e[lane], t[lane]);
                }
            }
            for (lane, (&e, &t)) in estimate_tail.iter().zip(target_tail).enumerate() {
                lanes.add(lane, e, t);
            }
            let total = |lanes: [T; LANES]| lanes.iter().map(|x| x.to64()).sum::<f64>();
            self.abs_difference += total(lanes.abs_difference);
            self.squared_difference += total(lanes.squared_difference);
            self.squared_target += total(lanes.squared_target);
            self.abs_log_power_ratio.multiply(lanes.power_ratio);
        }
    }

    /// `w_log · mean|ln M̂ − ln M| + w_lin · mean|M̂ − M| + w_sc · ‖M − M̂‖_F / ‖M‖_F`.
    fn loss(&self, config: &MrStftConfig, count: f64) -> f64 {
        config.w_log_mag * 0.5 * self.abs_log_power_ratio.ln() / count
            + config.w_lin_mag * self.abs_difference / count
            + config.w_sc * (self.squared_difference / self.squared_target).sqrt()
    }

    /// `‖M − M̂‖_F · ‖M‖_F`, the denominator of the spectral convergence gradient.
    fn sc_norms(&self) -> f64 {
        (self.squared_difference * self.squared_target).sqrt()
    }
}

/// Per-lane partial sums of one block of bins, in the signal's precision.
struct Lanes<T> {
    abs_difference: [T; LANES],
    squared_difference: [T; LANES],
    squared_target: [T; LANES],
    /// `Π max(P̂, P) / min(P̂, P)`: `|ln P̂ − ln P|` is the logarithm of that ratio, so one
    /// logarithm of the product replaces one per bin.
    power_ratio: [f64; LANES],
}

impl<T: Real> Default for Lanes<T> {
    fn default() -> Self {
        let zero = [T::zero(); LANES];
        Self { abs_difference: zero, squared_difference: zero, squared_target: zero, power_ratio: [1.0; LANES] }
    }
}

impl<T: Real> Lanes<T> {
    #[inline(always)]
    fn add(&mut self, lane: usize, estimate: Complex<T>, target: Complex<T>) {
        let eps = T::of(POWER_EPS);
        let (power_e, power_t) = (estimate.norm_sqr().max(eps), target.norm_sqr().max(eps));
        let difference = power_e.sqrt() - power_t.sqrt();
        self.abs_difference[lane] = self.abs_difference[lane] + difference.abs();
        self.squared_difference[lane] = self.squared_difference[lane] + difference * difference;
        self.squared_target[lane] = self.squared_target[lane] + power_t;
        self.power_ratio[lane] *= (power_e.max(power_t) / power_e.min(power_t)).to64();
    }
}

/// `Σ ln q_i` for many factors `q_i ≥ 1`, as a product: per lane, a mantissa in `[1, 2)` and a
/// binary exponent, renormalised after each block.
#[derive(Clone, Copy)]
struct LogSum {
    mantissas: [f64; LANES],
    exponent: i64,
}

impl Default for LogSum {
    fn default() -> Self {
        Self { mantissas: [1.0; LANES], exponent: 0 }
    }
}

impl LogSum {
    const EXPONENT_MASK: u64 = 0x7ff << 52;
    const EXPONENT_BIAS: i64 = 1023;

    /// Multiplies lane `j` by `factors[j]` (each finite and `≥ 1`, their product with a mantissa
    /// below `f64::MAX`).
    fn multiply(&mut self, factors: [f64; LANES]) {
        for (m, f) in self.mantissas.iter_mut().zip(factors) {
            let bits = (*m * f).to_bits();
            self.exponent += ((bits & Self::EXPONENT_MASK) >> 52) as i64 - Self::EXPONENT_BIAS;
            *m = f64::from_bits((bits & !Self::EXPONENT_MASK) | ((Self::EXPONENT_BIAS as u64) << 52));
        }
    }

    fn ln(&self) -> f64 {
        self.mantissas.iter().map(|m| m.ln()).sum::<f64>() + self.exponent as f64 * std::f64::consts::LN_2
    }
}

/// Per-bin weights of the gradient: the term weights divided by the bin count and the number
/// of resolutions; `sc` further divided by `‖M − M̂‖_F · ‖M‖_F`.
struct GradWeights<T> {
    log_mag: T,
    lin_mag: T,
    sc: T,
}

/// Overwrites each estimate bin `X̂` with `∂L/∂Re X̂ + i ∂L/∂Im X̂ = X̂ · (∂L/∂M̂) / M̂`, where
/// `∂L/∂M̂ = sign(M̂ − M)(log_mag/M̂ + lin_mag) + sc·(M̂ − M)`, and zero where the clamp is active.
#[inline(always)]
fn magnitude_gradient<T: Real>(estimate: &mut [Complex<T>], target: &[Complex<T>], w: &GradWeights<T>) {
    let eps = T::of(POWER_EPS);
    for (e, t) in estimate.iter_mut().zip(target) {
        let power_e = e.norm_sqr();
        let mag_e = power_e.max(eps).sqrt();
        let inv_mag_e = T::one() / mag_e;
        let difference = mag_e - t.norm_sqr().max(eps).sqrt();
        let coefficient = inv_mag_e * (sign(difference) * (w.log_mag * inv_mag_e + w.lin_mag) + w.sc * difference);
        *e = e.scale(if power_e < eps { T::zero() } else { coefficient });
    }
}

/// `sign(x)` with `sign(0) = 0`: the subgradient torch's autograd uses for `|x|`.
#[inline(always)]
fn sign<T: Real>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

/// The mean loss over a batch of items (each one channel) and its gradient, items in parallel
/// on rayon's pool. Keeps one [`MrStftLoss`] per worker across calls, so plans and buffers are
/// made once. Equal to auraloss on a `(B, 1, T)` batch when `w_sc = 0`; with `w_sc > 0`
/// auraloss takes one Frobenius norm over the whole batch, here each item has its own.
pub struct MrStftBatch<T: Real> {
    config: MrStftConfig,
    losses: Vec<MrStftLoss<T>>,
}

impl<T: Real> MrStftBatch<T> {
    /// # Panics
    /// If `config` fails [`MrStftConfig::validate`].
    pub fn new(config: MrStftConfig) -> Self {
        Self { losses: vec![MrStftLoss::new(config.clone())], config }
    }

    /// `(1/B) Σ_i L(estimates[i], targets[i])`, with `grads[i] = ∂(mean)/∂estimates[i]`
    /// (overwritten). Items are split into one contiguous run per rayon worker.
    ///
    /// # Panics
    /// If the slices' counts differ, or an item's three slices differ in length.
    pub fn value_and_grad(&mut self, estimates: &[&[T]], targets: &[&[T]], grads: &mut [&mut [T]]) -> f64 {
        let items = estimates.len();
        assert!(
            items == targets.len() && items == grads.len(),
            "batch sizes differ: {items} estimates, {} targets, {} gradients",
            targets.len(),
            grads.len()
        );
        if items == 0 {
            return 0.0;
        }
        let workers = self.workers(items);
        let run = items.div_ceil(workers);
        let scale = T::of(1.0 / items as f64);
        let total: f64 = self.losses[..workers]
            .par_iter_mut()
            .zip(estimates.par_chunks(run).zip(targets.par_chunks(run)).zip(grads.par_chunks_mut(run)))
            .map(|(loss, ((estimates, targets), grads))| {
                let mut sum = 0.0;
                for ((estimate, target), grad) in estimates.iter().zip(targets).zip(grads.iter_mut()) {
                    sum += loss.value_and_grad(estimate, target, grad);
                    grad.iter_mut().for_each(|g| *g = *g * scale);
                }
                sum
            })
            .sum();
        total / items as f64
    }

    /// [`MrStftBatch::value_and_grad`] for owned estimates, returning the gradients, one row per
    /// estimate (what a trainer's loss callback hands back).
    ///
    /// # Panics
    /// As [`MrStftBatch::value_and_grad`].
    pub fn value_and_grads(&mut self, estimates: &[Vec<T>], targets: &[&[T]]) -> (f64, Vec<Vec<T>>) {
        let views: Vec<&[T]> = estimates.iter().map(Vec::as_slice).collect();
        let mut grads: Vec<Vec<T>> = estimates.iter().map(|e| vec![T::of(0.0); e.len()]).collect();
        let mut grad_views: Vec<&mut [T]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
        let value = self.value_and_grad(&views, targets, &mut grad_views);
        (value, grads)
    }

    /// `(1/B) Σ_i L(estimates[i], targets[i])` alone (validation, baselines), items in parallel.
    ///
    /// # Panics
    /// If the slices' counts differ, or an item's two slices differ in length.
    pub fn value(&mut self, estimates: &[&[T]], targets: &[&[T]]) -> f64 {
        let items = estimates.len();
        assert_eq!(items, targets.len(), "batch sizes differ: {items} estimates, {} targets", targets.len());
        if items == 0 {
            return 0.0;
        }
        let workers = self.workers(items);
        let run = items.div_ceil(workers);
        let total: f64 = self.losses[..workers]
            .par_iter_mut()
            .zip(estimates.par_chunks(run).zip(targets.par_chunks(run)))
            .map(|(loss, (estimates, targets))| estimates.iter().zip(targets).map(|(e, t)| loss.value(e, t)).sum::<f64>())
            .sum();
        total / items as f64
    }

    /// The number of workers for `items` items, with a loss (plans, buffers) made for each.
    fn workers(&mut self, items: usize) -> usize {
        let workers = rayon::current_num_threads().min(items);
        while self.losses.len() < workers {
            self.losses.push(MrStftLoss::new(self.config.clone()));
        }
        workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectral::stft::tests::naive_stft;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn small_config(w_sc: f64) -> MrStftConfig {
        MrStftConfig { fft_sizes: vec![8, 16, 32], w_sc, ..MrStftConfig::default() }
    }

    /// The loss written out from its definition, on top of the naive DFT.
    fn reference_loss(config: &MrStftConfig, estimate: &[f64], target: &[f64]) -> f64 {
        let magnitudes =
            |x: &[f64], n: usize| -> Vec<f64> { naive_stft(x, n, n / 2).iter().map(|c| c.norm_sqr().max(1e-8).sqrt()).collect() };
        let used: Vec<usize> = config.fft_sizes.iter().copied().filter(|&n| n / 2 < estimate.len()).collect();
        let spectral: f64 = used
            .iter()
            .map(|&n| {
                let (me, mt) = (magnitudes(estimate, n), magnitudes(target, n));
                let count = me.len() as f64;
                let log: f64 = me.iter().zip(&mt).map(|(a, b)| (a.ln() - b.ln()).abs()).sum::<f64>() / count;
                let lin: f64 = me.iter().zip(&mt).map(|(a, b)| (a - b).abs()).sum::<f64>() / count;
                let diff: f64 = me.iter().zip(&mt).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
                let norm: f64 = mt.iter().map(|b| b * b).sum::<f64>().sqrt();
                config.w_log_mag * log + config.w_lin_mag * lin + config.w_sc * diff / norm
            })
            .sum::<f64>()
            / used.len().max(1) as f64;
        let l1 = estimate.iter().zip(target).map(|(a, b)| (a - b).abs()).sum::<f64>() / estimate.len() as f64;
        spectral + config.l1_weight * l1
    }

    #[test]
    fn value_matches_the_definition() {
        for (len, w_sc) in [(64, 0.0), (100, 0.7), (33, 0.3)] {
            let config = small_config(w_sc);
            let (e, t) = (random(len, 1), random(len, 2));
            let got = MrStftLoss::<f64>::new(config.clone()).value(&e, &t);
            let want = reference_loss(&config, &e, &t);
            assert!((got - want).abs() <= 1e-9 * want, "len {len}: {got} vs {want}");
        }
    }

    #[test]
    fn resolutions_too_long_for_the_signal_are_skipped() {
        let (e, t) = (random(14, 3), random(14, 4));
        let config = small_config(0.5);
        let got = MrStftLoss::<f64>::new(config.clone()).value(&e, &t);
        let only_fitting = MrStftConfig { fft_sizes: vec![8, 16], ..config.clone() };
        let want = reference_loss(&only_fitting, &e, &t);
        assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
        let none_fits = MrStftConfig { fft_sizes: vec![32], ..config };
        let l1_only = MrStftLoss::<f64>::new(none_fits).value(&e, &t);
        let l1 = 100.0 * e.iter().zip(&t).map(|(a, b)| (a - b).abs()).sum::<f64>() / 14.0;
        assert!((l1_only - l1).abs() <= 1e-12 * l1);
    }

    #[test]
    fn gradient_matches_central_differences() {
        for (w_sc, l1_weight, seed) in [(0.0, 100.0, 10), (0.8, 0.0, 20), (0.0, 0.0, 30)] {
            let config = MrStftConfig { l1_weight, ..small_config(w_sc) };
            let len = 150;
            let (estimate, target) = (random(len, seed), random(len, seed + 1));
            let mut loss = MrStftLoss::<f64>::new(config);
            let mut grad = vec![0.0; len];
            loss.value_and_grad(&estimate, &target, &mut grad);
            let h = 1e-6;
            let finite_difference = |i: usize, loss: &mut MrStftLoss<f64>| {
                let mut x = estimate.clone();
                x[i] += h;
                let up = loss.value(&x, &target);
                x[i] -= 2.0 * h;
                (up - loss.value(&x, &target)) / (2.0 * h)
            };
            let fd: Vec<f64> = (0..len).map(|i| finite_difference(i, &mut loss)).collect();
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let error: Vec<f64> = fd.iter().zip(&grad).map(|(a, b)| a - b).collect();
            assert!(norm(&error) <= 1e-6 * norm(&grad), "w_sc {w_sc}: error norm {}", norm(&error));
            for (i, (a, b)) in fd.iter().zip(&grad).enumerate() {
                assert!((a - b).abs() <= 1e-4 * b.abs(), "w_sc {w_sc} l1 {l1_weight}: d/dx[{i}] {b} vs fd {a}");
            }
        }
    }

    #[test]
    fn identical_signals_have_zero_loss_and_gradient() {
        let x = random(5000, 5);
        let mut grad = vec![1.0; x.len()];
        let mut loss = MrStftLoss::<f64>::new(MrStftConfig::default());
        assert_eq!(loss.value_and_grad(&x, &x, &mut grad), 0.0);
        assert!(grad.iter().all(|&g| g == 0.0));
        let mut y = x.clone();
        y[2500] += 1e-3;
        let nearly = loss.value(&x, &y);
        assert!(nearly > 0.0 && nearly < 1e-2, "{nearly}");
    }

    /// f32 and f64 agree on the value; on the gradient, the log-magnitude term weights each bin
    /// by `1/|X|`, which magnifies f32 rounding in near-empty bins, so it is compared looser than
    /// the linear-magnitude and L1 terms.
    #[test]
    fn f32_agrees_with_f64() {
        let to32 = |x: Vec<f64>| -> Vec<f32> { x.iter().map(|&v| v as f32).collect() };
        let (e32, t32) = (to32(random(40000, 6)), to32(random(40000, 7)));
        let to64 = |x: &[f32]| -> Vec<f64> { x.iter().map(|&v| v.into()).collect() };
        let (e, t) = (to64(&e32), to64(&t32));
        for (w_log_mag, gradient_tolerance) in [(1.0, 5e-3), (0.0, 1e-5)] {
            let config = MrStftConfig { w_log_mag, ..MrStftConfig::default() };
            let (mut g64, mut g32) = (vec![0.0; e.len()], vec![0.0f32; e.len()]);
            let v64 = MrStftLoss::<f64>::new(config.clone()).value_and_grad(&e, &t, &mut g64);
            let v32 = MrStftLoss::<f32>::new(config).value_and_grad(&e32, &t32, &mut g32);
            assert!((v64 - v32).abs() <= 1e-5 * v64, "{v64} vs {v32}");
            let diff = g64.iter().zip(&g32).map(|(a, &b)| (a - b as f64).powi(2)).sum::<f64>().sqrt();
            let norm = g64.iter().map(|a| a * a).sum::<f64>().sqrt();
            assert!(diff <= gradient_tolerance * norm, "w_log_mag {w_log_mag}: gradient differs by {diff} of {norm}");
        }
    }

    #[test]
    fn batch_is_the_mean_of_items() {
        let config = small_config(0.0);
        let estimates: Vec<Vec<f64>> = (0..3).map(|i| random(300, 40 + i)).collect();
        let targets: Vec<Vec<f64>> = (0..3).map(|i| random(300, 50 + i)).collect();
        let mut grads = vec![vec![0.0; 300]; 3];
        let e: Vec<&[f64]> = estimates.iter().map(Vec::as_slice).collect();
        let t: Vec<&[f64]> = targets.iter().map(Vec::as_slice).collect();
        let mut g: Vec<&mut [f64]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
        let value = MrStftBatch::new(config.clone()).value_and_grad(&e, &t, &mut g);
        let value_only = MrStftBatch::new(config.clone()).value(&e, &t);
        let mut loss = MrStftLoss::new(config);
        let mut single = vec![0.0; 300];
        let mut sum = 0.0;
        for i in 0..3 {
            sum += loss.value_and_grad(e[i], t[i], &mut single);
            for (a, b) in grads[i].iter().zip(&single) {
                assert!((a - b / 3.0).abs() <= 1e-15);
            }
        }
        assert!((value - sum / 3.0).abs() <= 1e-12 * value);
        assert!((value_only - sum / 3.0).abs() <= 1e-12 * value);
        let (owned_value, owned_grads) = MrStftBatch::new(small_config(0.0)).value_and_grads(&estimates, &t);
        assert_eq!((owned_value, &owned_grads), (value, &grads));
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for config in [
            MrStftConfig { fft_sizes: vec![1], ..MrStftConfig::default() },
            MrStftConfig { hop_fraction: 0.0, ..MrStftConfig::default() },
            MrStftConfig { w_sc: f64::NAN, ..MrStftConfig::default() },
            MrStftConfig { l1_weight: -1.0, ..MrStftConfig::default() },
        ] {
            assert!(config.validate().is_err(), "{config:?}");
        }
        assert!(MrStftConfig::default().validate().is_ok());
    }

    /// Throwaway timing of the training-size batch (best of 10, to see past other processes):
    /// `cargo test --release --lib time_batch -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn time_batch_value_and_grad() {
        let (items, len) = (6, 131072);
        let signal = |seed: u64| -> Vec<f32> { random(len, seed).iter().map(|&x| x as f32).collect() };
        let estimates: Vec<Vec<f32>> = (0..items as u64).map(|i| signal(60 + i)).collect();
        let targets: Vec<Vec<f32>> = (0..items as u64).map(|i| signal(70 + i)).collect();
        let mut grads = vec![vec![0.0f32; len]; items];
        let e: Vec<&[f32]> = estimates.iter().map(Vec::as_slice).collect();
        let t: Vec<&[f32]> = targets.iter().map(Vec::as_slice).collect();
        let best_ms = |run: Box<dyn FnMut() + '_>| crate::bench::best_of(10, run) * 1e3;
        let mut batch = MrStftBatch::new(MrStftConfig::default());
        let parallel = best_ms(Box::new(|| {
            let mut g: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
            batch.value_and_grad(&e, &t, &mut g);
        }));
        let mut loss = MrStftLoss::<f32>::new(MrStftConfig::default());
        let mut grad = vec![0.0f32; len];
        let one = best_ms(Box::new(|| {
            loss.value_and_grad(e[0], t[0], &mut grad);
        }));
        let value = best_ms(Box::new(|| {
            loss.value(e[0], t[0]);
        }));
        println!("batch of {items}x{len} value+grad: {parallel:.1} ms; one item: value+grad {one:.2} ms, value {value:.2} ms");
    }
}
