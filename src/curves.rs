//! What a knob setting does, drawn: the chain's magnitude response (its linear effects: EQ,
//! filters, gain) and its static curve (its dynamics: compressor, gain), side by side in one
//! PNG (`afx transfer --plot`, `afx apply --plot`). Each effect says what it contributes
//! ([`crate::fx::effect::Effect::response_db`], [`crate::fx::effect::Effect::static_curve_db`]).

use std::path::Path;

use crate::atomic::write_bytes_atomic;
use crate::fx::ChainKnobs;
use crate::plot::{Chart, Scale, Series, render_row_png};
use crate::{Error, Result};

/// The magnitude response in dB at each frequency of the chain's linear effects in series (the
/// sum of their responses, designed at `sample_rate` as the chain runs them).
pub fn response_db(knobs: &ChainKnobs, sample_rate: f64, freqs_hz: &[f64]) -> Vec<f64> {
    freqs_hz
        .iter()
        .map(|&f| knobs.chain().stages().iter().filter_map(|s| s.kind.response_db(&knobs.values()[s.knobs()], sample_rate, f)).sum())
        .collect()
}

/// The static curve of the chain's level-dependent effects in series: output level in dB for a
/// steady input level in dB (what the detectors settle to once attack and release are done).
pub fn static_curve_db(knobs: &ChainKnobs, levels_db: &[f64]) -> Vec<f64> {
    levels_db
        .iter()
        .map(|&x| {
            knobs.chain().stages().iter().fold(x, |level, s| s.kind.static_curve_db(&knobs.values()[s.knobs()], level).unwrap_or(level))
        })
        .collect()
}

/// Writes the two curves of `knobs` at `sample_rate` to `path` as a PNG.
pub fn write_png(path: &Path, knobs: &ChainKnobs, sample_rate: u32) -> Result<()> {
    let nyquist = f64::from(sample_rate) / 2.0;
    let top_hz = 20_000f64.min(0.999 * nyquist);
    let freqs: Vec<f64> = (0..=400).map(|i| 20.0 * (top_hz / 20.0).powf(f64::from(i) / 400.0)).collect();
    let levels: Vec<f64> = (0..=160).map(|i| -80.0 + 0.5 * f64::from(i)).collect();
    let series = |name: &str, x: &[f64], y: Vec<f64>| Series { name: name.into(), points: x.iter().copied().zip(y).collect() };
    let chain = knobs.chain().to_string();
    let response = Chart {
        title: format!("{chain}: response ({sample_rate} Hz)"),
        x_label: "frequency (Hz)".into(),
        y_label: "gain (dB)".into(),
        x_scale: Scale::Log10,
        y_scale: Scale::Linear,
        series: vec![series("response", &freqs, response_db(knobs, f64::from(sample_rate), &freqs))],
    };
    let dynamics = Chart {
        title: format!("{chain}: static curve"),
        x_label: "input level (dB)".into(),
        y_label: "output level (dB)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        series: vec![series("unity", &levels, levels.clone()), series("chain", &levels, static_curve_db(knobs, &levels))],
    };
    let png = render_row_png(&[response, dynamics], 800, 500).map_err(|reason| Error::Plot { reason })?;
    write_bytes_atomic(path, &png).map_err(|e| Error::WriteFile { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::{self, Knobs, compressor::CompressorSettings};

    fn busy() -> ChainKnobs {
        let mut knobs = Knobs::default();
        knobs
            .apply_json(
                r#"{"eq.low_shelf.gain_db": -6, "eq.band2.gain_db": 9, "eq.band2.freq_hz": 1500, "eq.band2.q": 2,
                    "eq.high_shelf.gain_db": 4, "comp.threshold_db": -30, "comp.ratio": 4, "comp.knee_db": 6,
                    "comp.makeup_db": 5}"#,
            )
            .unwrap();
        knobs.chain_knobs()
    }

    /// Asserts that the drawn response of `knobs` is the gain (in dB, within 0.02) the chain
    /// gives a steady sine at each frequency, at 48 kHz.
    fn assert_response_matches_filtered_tones(knobs: &ChainKnobs, freqs_hz: &[f64]) {
        let rate = 48_000;
        for &hz in freqs_hz {
            let tone: Vec<f64> = (0..48_000).map(|n| (std::f64::consts::TAU * hz * f64::from(n) / 48_000.0).sin() * 0.1).collect();
            let mut out = tone.clone();
            fx::render(knobs, rate, &mut [&mut out]).unwrap();
            let rms = |x: &[f64]| (x[24_000..].iter().map(|v| v * v).sum::<f64>() / 24_000.0).sqrt();
            let measured = 20.0 * (rms(&out) / rms(&tone)).log10();
            let drawn = response_db(knobs, f64::from(rate), &[hz])[0];
            assert!((measured - drawn).abs() < 0.02, "{hz} Hz: measured {measured:.3} dB, drawn {drawn:.3} dB");
        }
    }

    /// The drawn EQ response is the gain the chain gives a steady sine (compressor at ratio 1,
    /// so only the EQ acts).
    #[test]
    fn eq_response_matches_filtered_tones() {
        let mut knobs = busy();
        knobs.set("comp.ratio", 1.0).unwrap();
        knobs.set("comp.makeup_db", 0.0).unwrap();
        assert_response_matches_filtered_tones(&knobs, &[60.0, 400.0, 1500.0, 5000.0, 12_000.0]);
    }

    /// The drawn static curve is where the compressor settles on a signal of constant magnitude
    /// (a square wave, so the detector sees one level), EQ flat.
    #[test]
    fn compressor_curve_matches_a_settled_square_wave() {
        let mut knobs = busy();
        for band in ["low_shelf", "band2", "high_shelf"] {
            knobs.set(&format!("eq.{band}.gain_db"), 0.0).unwrap();
        }
        for level_db in [-50.0, -33.0, -30.0, -27.0, -10.0] {
            let amplitude = 10f64.powf(level_db / 20.0);
            let square: Vec<f64> = (0..24_000).map(|n| if (n / 50) % 2 == 0 { amplitude } else { -amplitude }).collect();
            let mut out = square.clone();
            let comp = &knobs.values()[knobs.chain().stages()[1].knobs()];
            fx::compressor::Compressor::<f64>::new(&CompressorSettings::from_knobs(comp), 48_000.0).process(&mut [&mut out]);
            let settled = 20.0 * out[23_990].abs().log10();
            let drawn = static_curve_db(&knobs, &[level_db])[0];
            assert!((settled - drawn).abs() < 0.01, "{level_db} dB: settled {settled:.3}, drawn {drawn:.3}");
        }
    }

    /// The drawn response of a chain of filters and a gain is the gain it gives steady sines,
    /// and the drawn static curve of gain, gate and limiter is where a square wave settles.
    #[test]
    fn the_new_effects_curves_match_what_they_do() {
        let mut filters = ChainKnobs::defaults("hpf,lpf,gain".parse().unwrap());
        let set = ["hpf.freq_hz=300", "hpf.slope_db=24", "lpf.freq_hz=5000", "lpf.q=2", "gain.gain_db=-6"];
        filters.apply_assignments(&set.map(String::from)).unwrap();
        assert_response_matches_filtered_tones(&filters, &[100.0, 300.0, 1000.0, 5000.0, 12_000.0]);
        let mut dynamics = ChainKnobs::defaults("gain,gate,limiter".parse().unwrap());
        let set = ["gain.gain_db=6", "gate.threshold_db=-40", "gate.ratio=3", "gate.hold_ms=0", "limiter.ceiling_db=-10"];
        dynamics.apply_assignments(&set.map(String::from)).unwrap();
        for level_db in [-60.0, -50.0, -30.0, -20.0, -6.0] {
            let amplitude = 10f64.powf(level_db / 20.0);
            let square: Vec<f64> = (0..48_000).map(|n| if (n / 50) % 2 == 0 { amplitude } else { -amplitude }).collect();
            let mut out = square.clone();
            fx::render(&dynamics, 48_000, &mut [&mut out]).unwrap();
            let settled = 20.0 * out[47_000].abs().log10();
            let drawn = static_curve_db(&dynamics, &[level_db])[0];
            // The detectors' 1e-8 offset and the limiter's 1e-9 headroom move levels by µdB.
            assert!((settled - drawn).abs() < 0.01, "{level_db} dB: settled {settled:.3}, drawn {drawn:.3}");
        }
    }

    #[test]
    fn the_png_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knobs.png");
        write_png(&path, &busy(), 44_100).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");
    }
}
