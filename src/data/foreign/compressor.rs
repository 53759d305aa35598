//! An RMS compressor with opto-style, program-dependent release: another design than afx's
//! peak-detecting, log-domain compressor (`fx/compressor.rs`).

use serde::{Deserialize, Serialize};

use super::{check_input, check_setting, db_to_gain, ms_to_samples, one_pole_coeff};
use crate::Result;

/// How much slower the slow release is than `release_ms` (an opto cell's long tail: the LA-2A's
/// T4 releases its first half in about 60 ms and the rest over one to several seconds).
const SLOW_RELEASE_FACTOR: f64 = 15.0;

/// Time constant with which the slow path charges toward the gain reduction: only reduction
/// held for about this long reaches the slow path and lengthens the release.
const SLOW_CHARGE_MS: f64 = 1_500.0;

/// Level floor of the detector, in dB (silence reads as this, not −∞).
const FLOOR_DB: f64 = -200.0;

/// A compressor's settings: above `threshold_db` (dBFS RMS), every `ratio` dB of level in is
/// one dB out; `attack_ms` and `release_ms` are the time constants of the gain reduction's fast
/// path, `window_ms` the RMS detector's window, `makeup_db` a gain after it all.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmsCompressorSettings {
    pub threshold_db: f64,
    pub ratio: f64,
    pub attack_ms: f64,
    pub release_ms: f64,
    pub window_ms: f64,
    pub makeup_db: f64,
}

impl RmsCompressorSettings {
    fn check(&self) -> Result<()> {
        let check = |setting, value, low, high| check_setting("rms_compressor", setting, value, low, high);
        check("threshold_db", self.threshold_db, -90.0, 0.0)?;
        check("ratio", self.ratio, 1.0, 50.0)?;
        check("attack_ms", self.attack_ms, 0.05, 1_000.0)?;
        check("release_ms", self.release_ms, 1.0, 5_000.0)?;
        check("window_ms", self.window_ms, 0.1, 1_000.0)?;
        check("makeup_db", self.makeup_db, -40.0, 40.0)
    }

    /// The static curve: the gain in dB that a steady input at `level_db` (dBFS RMS) settles to,
    /// `makeup − r*`, `r* = max(0, (level − threshold)(1 − 1/ratio))` (hard knee).
    pub fn static_gain_db(&self, level_db: f64) -> f64 {
        self.makeup_db - self.reduction_db(level_db)
    }

    /// The gain reduction a steady level asks for, `r* = max(0, (level − threshold)(1 − 1/ratio))`
    /// (hard knee).
    fn reduction_db(&self, level_db: f64) -> f64 {
        ((level_db - self.threshold_db) * (1.0 - 1.0 / self.ratio)).max(0.0)
    }
}

/// Compresses all channels by one gain (linked detector).
///
/// Detector: the mean square over channels, `p[n] = (1/C) Σ_c x_c[n]²`, averaged over a sliding
/// rectangular window of `window_ms` (a true RMS, as in the dbx 160's RMS detector, rather than a
/// peak follower), in dB. Static curve: [`RmsCompressorSettings::static_gain_db`], giving the
/// target reduction `r*[n]`. Ballistics, opto style (two time constants in parallel, the idea of
/// program-dependent release in the Teletronix LA-2A's electro-optical cell and of two-stage
/// "auto" release): a fast path follows `r*` with `attack_ms` going up and `release_ms` going
/// down; a slow path charges toward `r*` with a time constant of 1.5 s (`SLOW_CHARGE_MS`) and
/// releases with 15 × `release_ms` (`SLOW_RELEASE_FACTOR`); the reduction `r[n]` is the larger of
/// the two. A short burst releases quickly, long compression slowly. Output
/// `y_c[n] = x_c[n] · 10^((makeup − r[n]) / 20)`.
pub fn rms_compress(channels: &[Vec<f32>], sample_rate: u32, settings: &RmsCompressorSettings) -> Result<Vec<Vec<f32>>> {
    check_input(channels, sample_rate, "rms_compressor")?;
    settings.check()?;
    let window = ms_to_samples(settings.window_ms, sample_rate);
    let (attack, release) = (one_pole_coeff(settings.attack_ms, sample_rate), one_pole_coeff(settings.release_ms, sample_rate));
    let (slow_charge, slow_release) =
        (one_pole_coeff(SLOW_CHARGE_MS, sample_rate), one_pole_coeff(SLOW_RELEASE_FACTOR * settings.release_ms, sample_rate));
    let power = |n: usize| channels.iter().map(|c| f64::from(c[n]).powi(2)).sum::<f64>() / channels.len() as f64;
    let (mut window_sum, mut fast, mut slow) = (0.0, 0.0f64, 0.0f64);
    let mut gains = Vec::with_capacity(channels[0].len());
    for n in 0..channels[0].len() {
        window_sum += power(n) - if n >= window { power(n - window) } else { 0.0 };
        let mean_square = window_sum.max(0.0) / window as f64;
        let level_db = if mean_square > 0.0 { (10.0 * mean_square.log10()).max(FLOOR_DB) } else { FLOOR_DB };
        let target = settings.reduction_db(level_db);
        fast = target + if target > fast { attack } else { release } * (fast - target);
        slow = target + if target > slow { slow_charge } else { slow_release } * (slow - target);
        gains.push(db_to_gain(settings.makeup_db - fast.max(slow)));
    }
    Ok(channels.iter().map(|channel| channel.iter().zip(&gains).map(|(&x, &g)| (f64::from(x) * g) as f32).collect()).collect())
}

#[cfg(test)]
mod tests {
    use super::super::test_signals::{noise, rms, sine};
    use super::*;
    use crate::Error;

    fn settings(threshold_db: f64, ratio: f64) -> RmsCompressorSettings {
        RmsCompressorSettings { threshold_db, ratio, attack_ms: 10.0, release_ms: 100.0, window_ms: 10.0, makeup_db: 2.0 }
    }

    /// The gain a steady 1 kHz sine settles to, from the output's RMS over the last half second
    /// of three seconds.
    fn settled_gain_db(amplitude: f64, settings: &RmsCompressorSettings, sample_rate: u32) -> f64 {
        let x = sine(1_000.0, amplitude, sample_rate, 3 * sample_rate as usize);
        let y = rms_compress(std::slice::from_ref(&x), sample_rate, settings).unwrap().remove(0);
        let tail = x.len() - sample_rate as usize / 2;
        20.0 * (rms(&y[tail..]) / rms(&x[tail..])).log10()
    }

    #[test]
    fn settled_gain_follows_the_static_curve() {
        for sample_rate in [44_100, 48_000, 96_000] {
            for (threshold_db, ratio) in [(-20.0, 4.0), (-30.0, 2.0), (-12.0, 10.0)] {
                let compressor = settings(threshold_db, ratio);
                for amplitude in [0.01, 0.1, 0.5, 0.9] {
                    let level_db = 20.0 * (amplitude / 2f64.sqrt()).log10();
                    let got_db = settled_gain_db(amplitude, &compressor, sample_rate);
                    let want_db = compressor.static_gain_db(level_db);
                    assert!(
                        (got_db - want_db).abs() < 0.5,
                        "{sample_rate} Hz, threshold {threshold_db}, ratio {ratio}, level {level_db:.1} dB: got {got_db} dB, want {want_db} dB"
                    );
                }
            }
        }
    }

    /// After a loud passage, a short burst lets the gain recover quickly, a long one slowly.
    #[test]
    fn release_depends_on_how_long_the_compression_lasted() {
        let sample_rate = 48_000;
        let recovery_db = |burst_s: f64| {
            let burst = (burst_s * f64::from(sample_rate)) as usize;
            let quiet = sample_rate as usize / 2;
            let mut x = sine(1_000.0, 0.9, sample_rate, burst + quiet);
            x[burst..].iter_mut().for_each(|v| *v *= 0.01);
            let compressor = settings(-30.0, 8.0);
            let y = rms_compress(std::slice::from_ref(&x), sample_rate, &compressor).unwrap().remove(0);
            let probe = burst + quiet / 2..burst + quiet;
            20.0 * (rms(&y[probe.clone()]) / rms(&x[probe])).log10() - compressor.makeup_db
        };
        let (after_short, after_long) = (recovery_db(0.05), recovery_db(4.0));
        assert!(after_short > -2.0, "a 50 ms burst is nearly released after 250 ms: {after_short} dB");
        assert!(after_long < after_short - 6.0, "4 s of compression release slowly: {after_long} dB");
    }

    #[test]
    fn stereo_is_linked_and_stays_stereo() {
        let (left, right) = (noise(1, 0.8, 20_000), noise(2, 0.05, 20_000));
        let output = rms_compress(&[left.clone(), right.clone()], 44_100, &settings(-30.0, 4.0)).unwrap();
        assert_eq!(output.len(), 2);
        for n in (100..20_000).step_by(997) {
            let (gain_left, gain_right) = (output[0][n] / left[n], output[1][n] / right[n]);
            assert!((gain_left / gain_right - 1.0).abs() < 1e-4, "frame {n}: one gain for both channels");
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let good = settings(-20.0, 4.0);
        assert!(matches!(rms_compress(&[vec![]], 48_000, &good), Err(Error::BadAudio { .. })));
        assert!(matches!(rms_compress(&[], 48_000, &good), Err(Error::BadAudio { .. })));
        assert!(matches!(rms_compress(&[vec![0.1, f32::NAN]], 48_000, &good), Err(Error::BadAudio { .. })));
        assert!(matches!(rms_compress(&[vec![0.1; 10]], 4_000, &good), Err(Error::SampleRate { .. })));
        assert!(matches!(rms_compress(&[vec![0.1; 10]], 400_000, &good), Err(Error::SampleRate { .. })));
        let bad = RmsCompressorSettings { ratio: 0.5, ..good };
        assert!(matches!(rms_compress(&[vec![0.1; 10]], 48_000, &bad), Err(Error::ForeignSetting { setting: "ratio", .. })));
    }
}
