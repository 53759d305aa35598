//! Tape-like saturation: an asymmetric soft clipper, oversampled, between pre- and de-emphasis.

use serde::{Deserialize, Serialize};

use super::tilt::FirstOrder;
use super::{below_nyquist, check_input, check_setting, db_to_gain};
use crate::Result;
use crate::audio::{Audio, resample};

/// Tape saturation: `drive_db` sets how hard the signal hits the curve (the small-signal gain
/// stays 1, so more drive means a lower clipping level), `asymmetry` the bias that bends one
/// half-wave more than the other (even harmonics), and `emphasis_db` at `emphasis_hz` the high
/// shelf of the record pre-emphasis, undone after the curve, so that highs saturate first.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TapeSettings {
    pub drive_db: f64,
    pub asymmetry: f64,
    pub emphasis_db: f64,
    pub emphasis_hz: f64,
}

impl TapeSettings {
    fn check(&self) -> Result<()> {
        let check = |setting, value, low, high| check_setting("tape", setting, value, low, high);
        check("drive_db", self.drive_db, -24.0, 40.0)?;
        check("asymmetry", self.asymmetry, 0.0, 1.0)?;
        check("emphasis_db", self.emphasis_db, 0.0, 20.0)?;
        check("emphasis_hz", self.emphasis_hz, 100.0, 20_000.0)
    }
}

/// Oversampling of the nonlinearity, so its harmonics up to 4× the Nyquist frequency are
/// filtered out by the way down rather than folded back.
const OVERSAMPLING: u32 = 4;

/// Corner of the high-pass that removes the offset the asymmetric curve adds (tape passes no DC).
const DC_BLOCK_HZ: f64 = 10.0;

/// Saturates every channel like tape.
///
/// Pre-emphasis `E(z)`: the first-order high shelf of [`tilt`](super::tilt) from 0 dB to
/// `emphasis_db` with its pole at `emphasis_hz` (a record equaliser, as in NAB/IEC tape
/// emphasis). Then, at 4× the rate (afx's FFT resampler), the asymmetric soft
/// clipper `f(x) = (tanh(g x + b) − tanh b) / (g (1 − tanh² b))`, `g = 10^(drive_db/20)`,
/// `b = asymmetry`: `f(0) = 0` and `f'(0) = 1`, so small signals pass at unity, and the halves
/// saturate at `(±1 − tanh b) / (g (1 − tanh² b))`, unequally for `b > 0` (the classic tanh tape
/// model, e.g. Zölzer, *DAFX*, ch. 4, with bias for asymmetry). Back at the file's rate, a
/// first-order high-pass at 10 Hz (tape passes no DC) and the de-emphasis `1/E(z)`.
pub fn tape(channels: &[Vec<f32>], sample_rate: u32, settings: &TapeSettings) -> Result<Vec<Vec<f32>>> {
    check_input(channels, sample_rate, "tape")?;
    settings.check()?;
    let emphasis = FirstOrder::shelf(1.0, db_to_gain(settings.emphasis_db), below_nyquist(settings.emphasis_hz, sample_rate), sample_rate);
    let dc_block = FirstOrder::shelf(0.0, 1.0, DC_BLOCK_HZ, sample_rate);
    let emphasised = Audio { sample_rate, channels: channels.iter().map(|c| emphasis.run(c)).collect() };
    let mut oversampled = resample(&emphasised, sample_rate * OVERSAMPLING)?;
    let (g, bias) = (db_to_gain(settings.drive_db), settings.asymmetry);
    let (offset, slope) = (bias.tanh(), g * (1.0 - bias.tanh().powi(2)));
    for x in oversampled.channels.iter_mut().flatten() {
        *x = (((g * f64::from(*x) + bias).tanh() - offset) / slope) as f32;
    }
    let saturated = resample(&oversampled, sample_rate)?;
    let de_emphasis = emphasis.inverse();
    Ok(saturated.channels.iter().map(|c| de_emphasis.run(&dc_block.run(c))).collect())
}

#[cfg(test)]
mod tests {
    use super::super::test_signals::{fit_sine, noise, sine, sine_gain_db};
    use super::*;
    use crate::Error;

    fn settings(drive_db: f64) -> TapeSettings {
        TapeSettings { drive_db, asymmetry: 0.2, emphasis_db: 6.0, emphasis_hz: 3_000.0 }
    }

    /// Total harmonic distortion of a 1 kHz sine of `amplitude`: what is left after the best
    /// fitting sine at 1 kHz, relative to that sine (both in RMS), over the middle half.
    fn thd(drive_db: f64, amplitude: f64) -> f64 {
        let sample_rate = 48_000;
        let frames = sample_rate as usize;
        let y = tape(&[sine(1_000.0, amplitude, sample_rate, frames)], sample_rate, &settings(drive_db)).unwrap().remove(0);
        let (fundamental, residual) = fit_sine(&y[frames / 4..3 * frames / 4], 1_000.0, sample_rate);
        residual / (fundamental / 2f64.sqrt())
    }

    #[test]
    fn small_signals_pass_at_unity() {
        for sample_rate in [8_000, 44_100, 96_000] {
            for freq_hz in [100.0, 1_000.0, 3_000.0] {
                let gain_db = sine_gain_db(|x| tape(x, sample_rate, &settings(12.0)).unwrap(), freq_hz, 1e-3, sample_rate);
                assert!(gain_db.abs() < 0.1, "{sample_rate} Hz, {freq_hz} Hz: small-signal gain {gain_db} dB");
            }
        }
        assert!(thd(12.0, 1e-3) < 0.01, "a small signal is barely distorted");
    }

    #[test]
    fn distortion_rises_with_drive() {
        let distortion: Vec<f64> = [0.0, 6.0, 12.0, 18.0].iter().map(|&drive_db| thd(drive_db, 0.3)).collect();
        assert!(distortion.windows(2).all(|pair| pair[1] > pair[0]), "THD by drive: {distortion:?}");
        assert!(distortion[3] > 0.05, "18 dB of drive saturates a −10 dBFS sine audibly: {distortion:?}");
    }

    #[test]
    fn stereo_stays_stereo_and_bad_input_is_a_typed_error() {
        let output = tape(&[noise(1, 0.5, 5_000), noise(2, 0.5, 5_000)], 44_100, &settings(6.0)).unwrap();
        assert_eq!((output.len(), output[0].len(), output[1].len()), (2, 5_000, 5_000));
        assert!(matches!(tape(&[vec![0.0, f32::INFINITY]], 44_100, &settings(6.0)), Err(Error::BadAudio { .. })));
        let bad = TapeSettings { asymmetry: f64::NAN, ..settings(6.0) };
        assert!(matches!(tape(&[vec![0.1; 10]], 44_100, &bad), Err(Error::ForeignSetting { setting: "asymmetry", .. })));
    }
}
