//! Run-time selection of an AVX2 + FMA build of hot loops. The crate compiles for baseline
//! x86-64 (SSE2, no FMA) so the binary runs everywhere; kernels written as [`Kernel`]s get a
//! second build with the wider vectors and fused multiply–adds, used when the CPU has them.

/// A computation with a plain build and an AVX2 + FMA build, chosen at run time by
/// [`dispatch`]. `FMA` selects fused multiply–adds ([`madd`]), which are slow library calls
/// without the hardware instruction.
pub trait Kernel {
    type Output;
    /// The computation. Implementations must be `#[inline(always)]` so that they are compiled
    /// inside the feature-enabled caller.
    fn run<const FMA: bool>(self) -> Self::Output;
}

/// Runs `kernel` compiled for AVX2 and FMA when the CPU has them, else as plain code. The
/// feature check is a cached atomic load: no allocation or lock, fine on the audio path.
#[inline(always)]
pub fn dispatch<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { run_avx2_fma(kernel) };
    }
    kernel.run::<false>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2_fma<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<true>()
}

/// `a·b + c`, fused when `FMA` is set.
#[inline(always)]
pub fn madd<const FMA: bool, T: num_traits::Float>(a: T, b: T, c: T) -> T {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}
