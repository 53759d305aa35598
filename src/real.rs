//! The floating-point type the kernels are generic over: `f32` for audio and training, `f64`
//! for gradient checks against finite differences.

use num_traits::{Float, FloatConst, FromPrimitive};

/// A sample type for effect kernels, losses and their adjoints (`f32` or `f64`).
pub trait Real: Float + FloatConst + FromPrimitive + realfft::FftNum + Default + Send + Sync + std::iter::Sum + 'static {
    /// Converts from `f64`, rounding to the nearest representable value.
    fn of(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to64(self) -> f64;
    /// `log2`, vectorisable in `f32` (a few parts in 10^7), libm's in `f64`.
    fn fast_log2(self) -> Self;
    /// `2^x`, vectorisable in `f32` (a few parts in 10^7), libm's in `f64`.
    fn fast_exp2(self) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn fast_log2(self) -> Self {
        crate::fx::fastmath::log2_f32(self)
    }
    #[inline(always)]
    fn fast_exp2(self) -> Self {
        crate::fx::fastmath::exp2_f32(self)
    }
}

impl Real for f64 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn fast_log2(self) -> Self {
        self.log2()
    }
    #[inline(always)]
    fn fast_exp2(self) -> Self {
        self.exp2()
    }
}
