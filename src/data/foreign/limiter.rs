//! A look-ahead brickwall limiter with an oversampled ("true-peak-ish") peak detector.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{check_input, check_setting, db_to_gain, ms_to_samples, one_pole_coeff};
use crate::Result;
use crate::audio::{Audio, resample};

/// Oversampling of the peak detector (BS.1770-4 Annex 2 measures true peak at 4×).
const PEAK_OVERSAMPLING: u32 = 4;

/// A limiter's settings: `input_gain_db` drives the signal into it, no sample leaves above
/// `ceiling_db` (dBFS); the gain goes down over `lookahead_ms` before a peak and comes back with
/// the time constant `release_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimiterSettings {
    pub input_gain_db: f64,
    pub ceiling_db: f64,
    pub lookahead_ms: f64,
    pub release_ms: f64,
}

impl LimiterSettings {
    fn check(&self) -> Result<()> {
        let check = |setting, value, low, high| check_setting("limiter", setting, value, low, high);
        check("input_gain_db", self.input_gain_db, -40.0, 40.0)?;
        check("ceiling_db", self.ceiling_db, -40.0, 0.0)?;
        check("lookahead_ms", self.lookahead_ms, 0.05, 50.0)?;
        check("release_ms", self.release_ms, 1.0, 5_000.0)
    }
}

/// Limits all channels by one gain (linked) so that no output sample exceeds the ceiling.
///
/// After the input gain, the peak at frame `n` is the largest magnitude over the channels of the
/// sample itself and of the 4× oversampled signal from `n − ½` to `n + ½`, so
/// most inter-sample peaks count too; it asks for the gain `q[n] = min(1, ceiling / peak[n])`.
/// With `D` the look-ahead in samples, the gain is a running minimum of `q` over `D` frames
/// followed by a `D`-frame moving average, `g[n] = (1/D) Σ_{k<D} min_{j∈[n+k−D+1, n+k]} q[j]`: each
/// term's window holds `n`, so `g[n] ≤ q[n]`, and the gain falls smoothly over `D` frames before
/// the peak (the hold-then-average design of Geraint Luff, "Designing a straightforward limiter",
/// Signalsmith Audio). Recovery is an exponential release, `g'[n] = g[n]` when it is lower
/// than `g'[n−1]`, else `g'[n−1] + (1 − a)(g[n] − g'[n−1])`, which never rises above `g`. The
/// look-ahead needs no delay here: the whole signal is at hand, so output frame `n` lines up with
/// input frame `n`. A final clamp to ±ceiling only guards against rounding.
pub fn limit(channels: &[Vec<f32>], sample_rate: u32, settings: &LimiterSettings) -> Result<Vec<Vec<f32>>> {
    check_input(channels, sample_rate, "limiter")?;
    settings.check()?;
    let input_gain = db_to_gain(settings.input_gain_db);
    let ceiling = db_to_gain(settings.ceiling_db);
    let driven =
        Audio { sample_rate, channels: channels.iter().map(|c| c.iter().map(|&x| (f64::from(x) * input_gain) as f32).collect()).collect() };
    let asked: Vec<f64> = peaks(&driven)?.into_iter().map(|peak| if peak > ceiling { ceiling / peak } else { 1.0 }).collect();
    let lookahead = ms_to_samples(settings.lookahead_ms, sample_rate);
    let held = running_min(&asked, lookahead);
    let release = one_pole_coeff(settings.release_ms, sample_rate);
    let (mut window_sum, mut gain) = (held[..lookahead].iter().sum::<f64>(), 1.0f64);
    let mut gains = Vec::with_capacity(asked.len());
    for n in 0..asked.len() {
        let smoothed = window_sum / lookahead as f64;
        gain = if smoothed <= gain { smoothed } else { smoothed + release * (gain - smoothed) };
        gains.push(gain);
        window_sum += held[n + lookahead] - held[n];
    }
    let ceiling = ceiling as f32;
    Ok(driven
        .channels
        .iter()
        .map(|c| c.iter().zip(&gains).map(|(&x, &g)| ((f64::from(x) * g) as f32).clamp(-ceiling, ceiling)).collect())
        .collect())
}

/// The peak magnitude per frame over all channels: the sample and the oversampled signal within
/// half a frame of it.
fn peaks(audio: &Audio) -> Result<Vec<f64>> {
    let oversampled = resample(audio, audio.sample_rate * PEAK_OVERSAMPLING)?;
    let factor = PEAK_OVERSAMPLING as usize;
    let reach = factor / 2;
    let mut peaks = vec![0.0f64; audio.frames()];
    for (channel, fine) in audio.channels.iter().zip(&oversampled.channels) {
        for (n, peak) in peaks.iter_mut().enumerate() {
            let around = (n * factor).saturating_sub(reach)..(n * factor + reach + 1).min(fine.len());
            let fine_peak = fine[around].iter().fold(0.0f32, |p, x| p.max(x.abs()));
            *peak = peak.max(f64::from(channel[n].abs().max(fine_peak)));
        }
    }
    Ok(peaks)
}

/// `held[u] = min q[j]` over `j ∈ [u − width + 1, u]` ∩ the signal, for `u` in
/// `0..len(q) + width` (ones past the end: no gain is asked there), by a monotonic deque.
fn running_min(q: &[f64], width: usize) -> Vec<f64> {
    let mut window: VecDeque<usize> = VecDeque::new();
    (0..q.len() + width)
        .map(|u| {
            if u < q.len() {
                while window.back().is_some_and(|&j| q[j] >= q[u]) {
                    window.pop_back();
                }
                window.push_back(u);
            }
            while window.front().is_some_and(|&j| j + width <= u) {
                window.pop_front();
            }
            window.front().map_or(1.0, |&j| q[j])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_signals::{noise, sine};
    use super::*;

    fn settings(input_gain_db: f64, ceiling_db: f64) -> LimiterSettings {
        LimiterSettings { input_gain_db, ceiling_db, lookahead_ms: 3.0, release_ms: 80.0 }
    }

    #[test]
    fn loud_noise_never_exceeds_the_ceiling() {
        for (seed, sample_rate) in [(1, 8_000), (2, 44_100), (3, 48_000), (4, 192_000)] {
            for ceiling_db in [-0.1, -1.0, -6.0] {
                let channels = vec![noise(seed, 1.0, 30_000), noise(seed + 10, 0.3, 30_000)];
                let output = limit(&channels, sample_rate, &settings(12.0, ceiling_db)).unwrap();
                let ceiling = 10f64.powf(ceiling_db / 20.0) as f32;
                let peak = output.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()));
                assert!(peak <= ceiling, "{sample_rate} Hz, ceiling {ceiling_db} dB: peak {peak} > {ceiling}");
                assert!(peak > 0.5 * ceiling, "{sample_rate} Hz: the limiter does not mute, peak {peak}");
                let true_peak = resample(&Audio { sample_rate, channels: output }, 4 * sample_rate)
                    .unwrap()
                    .channels
                    .iter()
                    .flatten()
                    .fold(0.0f32, |p, x| p.max(x.abs()));
                let over_db = 20.0 * (true_peak / ceiling).log10();
                assert!(over_db < 0.5, "{sample_rate} Hz, ceiling {ceiling_db} dB: true peak {over_db} dB over");
            }
        }
    }

    #[test]
    fn quiet_audio_passes_unchanged() {
        let channels = vec![noise(7, 0.1, 20_000), sine(440.0, 0.2, 48_000, 20_000)];
        assert_eq!(limit(&channels, 48_000, &settings(0.0, -1.0)).unwrap(), channels);
    }

    /// The gain is down before a peak arrives and the peak keeps its place: a click on a steady
    /// level is met by a gain that starts falling one look-ahead early.
    #[test]
    fn gain_falls_before_the_peak_and_output_stays_aligned() {
        let (sample_rate, click) = (48_000, 4_800);
        let mut x = vec![0.1f32; 9_600];
        x[click] = 1.0;
        let output = limit(std::slice::from_ref(&x), sample_rate, &settings(0.0, -6.0)).unwrap().remove(0);
        let peak = output.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap().0;
        assert_eq!(peak, click, "the click stays at its frame");
        let lookahead = ms_to_samples(3.0, sample_rate);
        assert!(output[click - lookahead / 2] < 0.095, "the gain is already falling half a look-ahead before the click");
        assert_eq!(output[..click - lookahead - 2], x[..click - lookahead - 2], "nothing changes before the look-ahead");
    }

    #[test]
    fn running_min_matches_a_direct_minimum() {
        let q: Vec<f64> = noise(9, 1.0, 200).into_iter().map(|v| f64::from(v.abs())).collect();
        for width in [1, 2, 7, 40] {
            let fast = running_min(&q, width);
            for (u, &got) in fast.iter().enumerate() {
                let want = (u.saturating_sub(width - 1)..=u).filter(|&j| j < q.len()).map(|j| q[j]).fold(1.0, f64::min);
                assert_eq!(got, want, "width {width}, frame {u}");
            }
        }
    }
}
