//! Vectorisable `log2` and `exp2` for `f32` audio kernels, accurate to a few parts in 10^7.
//!
//! libm's `logf`/`exp2f` are opaque calls that keep loops from vectorising; these are plain
//! arithmetic on the float's bits, so loops over blocks compile to SIMD.

/// `log2(x)` for finite `x > 0`: `x = m·2^e` with `m ∈ [√½, √2)`, then
/// `ln m = 2·atanh(t)`, `t = (m − 1)/(m + 1)`, as its odd series to `t⁹` (|t| ≤ 0.172, so the
/// first omitted term is below 2e-9).
#[inline(always)]
pub fn log2_f32(x: f32) -> f32 {
    let bits = x.to_bits() as i32;
    // Shift the exponent split so the mantissa lands in [√½, √2).
    let offset = bits - 0x3f35_04f3;
    let e = offset >> 23;
    let m = f32::from_bits((bits - (e << 23)) as u32);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = 1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0))));
    e as f32 + (2.0 * std::f32::consts::LOG2_E) * t * series
}

/// `2^x` for `x ∈ [−126, 127]`: `x = n + f`, `n = round(x)`, `2^f` by its Taylor series to
/// `f⁷` (|f| ≤ ½, remainder below 3e-9 relative), scaled by `2^n` through the exponent bits.
#[inline(always)]
pub fn exp2_f32(x: f32) -> f32 {
    // Adding and removing 1.5·2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-126.0, 127.0);
    let shifted = x + ROUND;
    let n = shifted - ROUND;
    // The rounded integer sits in the low mantissa bits of `shifted`: no float-to-int conversion.
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let f = (x - n) * std::f32::consts::LN_2;
    let p =
        1.0 + f * (1.0 + f * (1.0 / 2.0 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    p * f32::from_bits(((n_int + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = 1e-9f32;
        while x < 1e4 {
            let exact = (x as f64).log2();
            let err = (log2_f32(x) as f64 - exact).abs() / exact.abs().max(1.0);
            worst = worst.max(err);
            x *= 1.000_37;
        }
        assert!(worst < 3e-7, "worst error {worst}");
    }

    #[test]
    fn exp2_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -40.0f32;
        while x < 40.0 {
            let exact = (x as f64).exp2();
            worst = worst.max((exp2_f32(x) as f64 - exact).abs() / exact);
            x += 0.000_731;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
    }
}
