//! Example recordings the program generates itself, so a fresh clone can run the main job
//! without any third-party audio: a short stereo groove of plucked chords, bass and drums.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::audio::Audio;

/// A plucked note: harmonics with a decay that shortens with the partial number.
fn pluck(out: &mut [f32], start: usize, freq_hz: f64, amp: f64, decay_s: f64, sample_rate: f64) {
    let len = ((decay_s * 5.0) * sample_rate) as usize;
    for (i, s) in out.iter_mut().skip(start).take(len).enumerate() {
        let t = i as f64 / sample_rate;
        let attack = (t / 0.004).min(1.0);
        let v: f64 = (1..=6)
            .map(|h| {
                let h = h as f64;
                (2.0 * std::f64::consts::PI * freq_hz * h * t).sin() * (-t * h / decay_s).exp() / h
            })
            .sum();
        *s += (amp * attack * v) as f32;
    }
}

/// A drum hit: a pitch-dropping sine (kick) or filtered noise (snare, hat).
fn drum(out: &mut [f32], start: usize, kind: usize, amp: f64, sample_rate: f64, rng: &mut ChaCha8Rng) {
    let (len_s, decay_s) = [(0.35, 0.08), (0.25, 0.05), (0.06, 0.012)][kind];
    let mut lp = 0.0;
    let mut phase = 0.0;
    for (i, s) in out.iter_mut().skip(start).take((len_s * sample_rate) as usize).enumerate() {
        let t = i as f64 / sample_rate;
        let env = (-t / decay_s).exp();
        let v = match kind {
            0 => {
                phase += 2.0 * std::f64::consts::PI * (45.0 + 90.0 * (-t / 0.03).exp()) / sample_rate;
                phase.sin()
            }
            1 => {
                let n: f64 = rng.random_range(-1.0..1.0);
                lp += 0.35 * (n - lp);
                0.7 * lp + 0.3 * (2.0 * std::f64::consts::PI * 190.0 * t).sin()
            }
            _ => {
                let n: f64 = rng.random_range(-1.0..1.0);
                let hp = n - lp;
                lp = n;
                hp
            }
        };
        *s += (amp * env * v) as f32;
    }
}

/// Generates `seconds` of the example groove at `sample_rate` with `channels` channels (1 or
/// 2); `seed` picks the chord voicings and the noise. Peak-normalised to −3 dBFS.
pub fn groove(seconds: f64, sample_rate: u32, channels: usize, seed: u64) -> Audio {
    let fs = sample_rate as f64;
    let len = (seconds * fs) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let beat = (0.5 * fs) as usize; // 120 BPM
    let chords: [[f64; 3]; 4] = [[220.0, 261.63, 329.63], [174.61, 220.0, 261.63], [196.0, 246.94, 293.66], [164.81, 207.65, 246.94]];
    let mut left = vec![0.0f32; len];
    let mut right = vec![0.0f32; len];
    let mut start = 0;
    let mut step = 0;
    while start < len {
        let chord = chords[(step / 8) % 4];
        if step % 2 == 0 {
            for (k, f) in chord.iter().enumerate() {
                let pan = 0.3 + 0.2 * k as f64;
                let amp = rng.random_range(0.08..0.12);
                pluck(&mut left, start, *f, amp * (1.0 - pan), 0.5, fs);
                pluck(&mut right, start, *f, amp * pan, 0.5, fs);
            }
        }
        let bass = chord[0] / 2.0;
        pluck(&mut left, start, bass, 0.25, 0.3, fs);
        pluck(&mut right, start, bass, 0.25, 0.3, fs);
        let kind = if step % 4 == 0 {
            0
        } else if step % 4 == 2 {
            1
        } else {
            2
        };
        drum(&mut left, start, kind, 0.5, fs, &mut rng);
        drum(&mut right, start, kind, 0.45, fs, &mut rng);
        start += beat / 2;
        step += 1;
    }
    let peak = left.iter().chain(&right).fold(0.0f32, |m, v| m.max(v.abs())).max(1e-9);
    let scale = 10f32.powf(-3.0 / 20.0) / peak;
    let mut chans = vec![left, right];
    for c in &mut chans {
        c.iter_mut().for_each(|v| *v *= scale);
    }
    if channels == 1 {
        let mono: Vec<f32> = chans[0].iter().zip(&chans[1]).map(|(l, r)| 0.5 * (l + r)).collect();
        chans = vec![mono];
    }
    Audio { sample_rate, channels: chans }
}

/// `afx example`'s options.
#[cfg(feature = "cli")]
#[derive(clap::Args)]
pub struct ExampleArgs {
    #[arg(long)]
    pub output: std::path::PathBuf,
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 44_100)]
    pub sample_rate: u32,
    #[arg(long, default_value_t = 2)]
    pub channels: usize,
    /// Seed for the voicings and noise (and the style's draw).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Render it in one of the named production styles (`afx styles` lists them), e.g.
    /// to make a reference for `afx transfer`.
    #[arg(long)]
    pub style: Option<String>,
}

#[cfg(feature = "cli")]
impl ExampleArgs {
    /// `afx example`: the groove, rendered in the style if one is named, written as a 32-bit
    /// float WAV and reported to `out`.
    pub fn run(&self, out: &mut impl std::io::Write) -> crate::Result<()> {
        use crate::Error;
        let (seconds, sample_rate, channels) = (self.seconds, self.sample_rate, self.channels);
        if !(0.5..=600.0).contains(&seconds) {
            return Err(Error::Setting { name: "seconds", value: seconds.to_string(), expected: "in 0.5..=600".into() });
        }
        if !(1..=2).contains(&channels) {
            return Err(Error::Setting { name: "channels", value: channels.to_string(), expected: "1 or 2".into() });
        }
        crate::fx::check_sample_rate(sample_rate)?;
        let style: Option<crate::data::Style> = self.style.as_deref().map(str::parse).transpose()?;
        let mut audio = groove(seconds, sample_rate, channels, self.seed);
        if let Some(style) = style {
            crate::apply::render(&mut audio, &style.sample_seeded(self.seed).chain_knobs())?;
        }
        crate::audio::write_wav(&self.output, &audio, crate::audio::WavFormat::F32)?;
        let styled = style.map(|s| format!(", {} style", s.name())).unwrap_or_default();
        writeln!(out, "wrote {} ({channels} ch, {sample_rate} Hz, {seconds:.2} s{styled})", self.output.display())?;
        Ok(())
    }
}
