//! Seeded random chains of foreign processors, set as a mastering engineer (music) or a podcast
//! editor (speech) would set them, serialisable so an evaluation can print what made each item.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{
    EqPoint, FirEqSettings, LimiterSettings, RmsCompressorSettings, SoxEffect, TapeSettings, TiltSettings, check_input, db_to_gain, fir_eq,
    limit, rms_compress, sox, tape, tilt,
};
use crate::Result;
use crate::metrics::integrated_loudness;

/// Most processors in one recipe.
const MAX_STEPS: usize = 4;

/// Most SoX effects in one SoX step.
const MAX_SOX_EFFECTS: usize = 3;

/// What the audio is, which sets the ranges the settings are drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    Music,
    Speech,
}

/// The kinds of processor a recipe draws from, in the order a chain runs them: equalisers, then
/// SoX (filters before its dynamics), then dynamics and colour, the limiter last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForeignKind {
    FirEq,
    Tilt,
    Sox,
    RmsCompressor,
    Tape,
    Limiter,
}

impl ForeignKind {
    /// Every kind, in chain order.
    pub const ALL: [ForeignKind; 6] =
        [ForeignKind::FirEq, ForeignKind::Tilt, ForeignKind::Sox, ForeignKind::RmsCompressor, ForeignKind::Tape, ForeignKind::Limiter];
    /// Every kind but SoX (for machines without `sox`), in chain order.
    pub const NATIVE: [ForeignKind; 5] =
        [ForeignKind::FirEq, ForeignKind::Tilt, ForeignKind::RmsCompressor, ForeignKind::Tape, ForeignKind::Limiter];

    fn chain_position(self) -> usize {
        Self::ALL.iter().position(|&kind| kind == self).expect("ALL lists every kind")
    }
}

/// One processor of a recipe with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "processor", rename_all = "snake_case")]
pub enum ForeignStep {
    FirEq(FirEqSettings),
    Tilt(TiltSettings),
    Sox { effects: Vec<SoxEffect> },
    RmsCompressor(RmsCompressorSettings),
    Tape(TapeSettings),
    Limiter(LimiterSettings),
}

impl ForeignStep {
    /// Runs this processor on the channels.
    pub fn apply(&self, channels: &[Vec<f32>], sample_rate: u32) -> Result<Vec<Vec<f32>>> {
        match self {
            ForeignStep::FirEq(settings) => fir_eq(channels, sample_rate, settings),
            ForeignStep::Tilt(settings) => tilt(channels, sample_rate, settings),
            ForeignStep::Sox { effects } => sox(channels, sample_rate, effects),
            ForeignStep::RmsCompressor(settings) => rms_compress(channels, sample_rate, settings),
            ForeignStep::Tape(settings) => tape(channels, sample_rate, settings),
            ForeignStep::Limiter(settings) => limit(channels, sample_rate, settings),
        }
    }
}

/// A chain of foreign processors. The input is first brought to `stage_lufs` (BS.1770
/// integrated loudness; input too short or quiet to measure is left as it is), the gain staging
/// an engineer does before the chain, so that thresholds and drives in dBFS mean the same on any
/// recording; then the steps run in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForeignRecipe {
    pub domain: Domain,
    pub stage_lufs: f64,
    pub steps: Vec<ForeignStep>,
}

impl ForeignRecipe {
    /// A recipe of 1–4 processors of any kind (see [`random_from`](Self::random_from)); its SoX
    /// steps need the `sox` command ([`sox_available`](super::sox_available)), so without it draw
    /// from [`ForeignKind::NATIVE`].
    pub fn random<R: Rng + ?Sized>(rng: &mut R, domain: Domain) -> Self {
        Self::random_from(rng, domain, &ForeignKind::ALL)
    }

    /// A recipe of 1–4 distinct processors drawn from `kinds` (fewer when `kinds` is
    /// shorter, none when it is empty), run in [`ForeignKind::ALL`]'s order, with settings drawn
    /// from `domain`'s ranges. Every random choice comes from `rng`: the same seed gives the same
    /// recipe.
    pub fn random_from<R: Rng + ?Sized>(rng: &mut R, domain: Domain, kinds: &[ForeignKind]) -> Self {
        let stage_lufs = uniform(rng, pick(domain, (-23.0, -16.0), (-26.0, -18.0)));
        let count = rng.random_range(1..=MAX_STEPS).min(kinds.len());
        let mut chosen: Vec<ForeignKind> = rand::seq::index::sample(rng, kinds.len(), count).into_iter().map(|i| kinds[i]).collect();
        chosen.sort_by_key(|kind| kind.chain_position());
        let steps = chosen.into_iter().map(|kind| draw_step(rng, kind, domain, stage_lufs)).collect();
        ForeignRecipe { domain, stage_lufs, steps }
    }

    /// Stages the channels' loudness, then runs the steps in order.
    pub fn apply(&self, channels: &[Vec<f32>], sample_rate: u32) -> Result<Vec<Vec<f32>>> {
        check_input(channels, sample_rate, "foreign recipe")?;
        let gain =
            integrated_loudness(channels, sample_rate, "foreign recipe input")?.map_or(1.0, |lufs| db_to_gain(self.stage_lufs - lufs));
        let staged = channels.iter().map(|c| c.iter().map(|&x| (f64::from(x) * gain) as f32).collect()).collect();
        self.steps.iter().try_fold(staged, |audio: Vec<Vec<f32>>, step| step.apply(&audio, sample_rate))
    }
}

/// `music` or `speech`, by domain.
fn pick<T>(domain: Domain, music: T, speech: T) -> T {
    match domain {
        Domain::Music => music,
        Domain::Speech => speech,
    }
}

/// Uniform on `[low, high]`.
fn uniform<R: Rng + ?Sized>(rng: &mut R, (low, high): (f64, f64)) -> f64 {
    rng.random_range(low..=high)
}

/// Log-uniform on `[low, high)`: equal chances per octave, as frequencies and times are heard.
fn log_uniform<R: Rng + ?Sized>(rng: &mut R, (low, high): (f64, f64)) -> f64 {
    rng.random_range(low.ln()..high.ln()).exp()
}

/// Settings for one step of `kind`. Thresholds and drives are set relative to the staged
/// loudness (the limiter's drive aims at a loudness: −14 to −9 LUFS for a music master, −19 to
/// −14 LUFS for speech, as streaming and podcast norms ask), ranges per domain: gentle broad
/// moves for music, stronger voice shaping (low cut, presence, firmer compression) for speech.
fn draw_step<R: Rng + ?Sized>(rng: &mut R, kind: ForeignKind, domain: Domain, stage_lufs: f64) -> ForeignStep {
    match kind {
        ForeignKind::FirEq => ForeignStep::FirEq(draw_fir_eq(rng, domain)),
        ForeignKind::Tilt => ForeignStep::Tilt(TiltSettings {
            tilt_db: uniform(rng, pick(domain, (-3.0, 3.0), (-4.0, 4.0))),
            pivot_hz: log_uniform(rng, pick(domain, (400.0, 2_000.0), (800.0, 3_000.0))),
        }),
        ForeignKind::Sox => ForeignStep::Sox { effects: draw_sox(rng, domain, stage_lufs) },
        ForeignKind::RmsCompressor => {
            let (depth_db, ratio) = draw_depth_and_ratio(rng, domain);
            ForeignStep::RmsCompressor(RmsCompressorSettings {
                threshold_db: stage_lufs - depth_db,
                ratio,
                attack_ms: log_uniform(rng, pick(domain, (5.0, 50.0), (2.0, 20.0))),
                release_ms: log_uniform(rng, pick(domain, (80.0, 600.0), (40.0, 250.0))),
                window_ms: log_uniform(rng, pick(domain, (5.0, 50.0), (3.0, 20.0))),
                makeup_db: uniform(rng, (0.0, depth_db * (1.0 - 1.0 / ratio))),
            })
        }
        ForeignKind::Tape => ForeignStep::Tape(TapeSettings {
            drive_db: uniform(rng, pick(domain, (-18.0, -6.0), (-22.0, -12.0))) - stage_lufs,
            asymmetry: uniform(rng, (0.0, 0.3)),
            emphasis_db: uniform(rng, (0.0, 6.0)),
            emphasis_hz: log_uniform(rng, (2_000.0, 8_000.0)),
        }),
        ForeignKind::Limiter => ForeignStep::Limiter(LimiterSettings {
            input_gain_db: uniform(rng, pick(domain, (-14.0, -9.0), (-19.0, -14.0))) - stage_lufs,
            ceiling_db: uniform(rng, pick(domain, (-1.0, -0.1), (-3.0, -1.0))),
            lookahead_ms: log_uniform(rng, (1.0, 5.0)),
            release_ms: log_uniform(rng, pick(domain, (20.0, 300.0), (30.0, 200.0))),
        }),
    }
}

/// How far below the staged loudness a compressor's threshold sits, and its ratio.
fn draw_depth_and_ratio<R: Rng + ?Sized>(rng: &mut R, domain: Domain) -> (f64, f64) {
    (uniform(rng, pick(domain, (0.0, 10.0), (4.0, 14.0))), log_uniform(rng, pick(domain, (1.5, 4.0), (2.0, 6.0))))
}

/// A curve of 3–5 points, one per equal log-frequency band across the range, so the points rise;
/// for speech the lowest point is a cut (rumble, proximity boom).
fn draw_fir_eq<R: Rng + ?Sized>(rng: &mut R, domain: Domain) -> FirEqSettings {
    let count = rng.random_range(3..=5);
    let (low_hz, high_hz): (f64, f64) = pick(domain, (30.0, 16_000.0), (60.0, 10_000.0));
    let max_db = pick(domain, 4.0, 6.0);
    let band = (high_hz / low_hz).powf(1.0 / f64::from(count));
    let mut points: Vec<EqPoint> = (0..count)
        .map(|i| {
            let band_low_hz = low_hz * band.powi(i);
            EqPoint { freq_hz: log_uniform(rng, (band_low_hz, band_low_hz * band)), gain_db: uniform(rng, (-max_db, max_db)) }
        })
        .collect();
    if domain == Domain::Speech {
        points[0].gain_db = uniform(rng, (-12.0, -3.0));
    }
    FirEqSettings { points }
}

/// The SoX effects a SoX step draws from, in the order it runs them.
#[derive(Clone, Copy)]
enum SoxPick {
    Highpass,
    Lowpass,
    Bass,
    Treble,
    Equalizer,
    Compand,
    Overdrive,
    Gain,
}

const SOX_POOL: [SoxPick; 8] = [
    SoxPick::Highpass,
    SoxPick::Lowpass,
    SoxPick::Bass,
    SoxPick::Treble,
    SoxPick::Equalizer,
    SoxPick::Compand,
    SoxPick::Overdrive,
    SoxPick::Gain,
];

/// 1–[`MAX_SOX_EFFECTS`] distinct SoX effects in [`SOX_POOL`]'s order (filters, shelves, peak,
/// compander, overdrive, gain); overdrive is followed by the gain that undoes its drive.
fn draw_sox<R: Rng + ?Sized>(rng: &mut R, domain: Domain, stage_lufs: f64) -> Vec<SoxEffect> {
    let count = rng.random_range(1..=MAX_SOX_EFFECTS);
    let mut chosen = rand::seq::index::sample(rng, SOX_POOL.len(), count).into_vec();
    chosen.sort_unstable();
    let shelf_db = pick(domain, (-4.0, 4.0), (-6.0, 6.0));
    let mut effects = Vec::new();
    for pick_of_pool in chosen.into_iter().map(|i| SOX_POOL[i]) {
        match pick_of_pool {
            SoxPick::Highpass => effects.push(SoxEffect::Highpass { freq_hz: log_uniform(rng, pick(domain, (20.0, 60.0), (60.0, 150.0))) }),
            SoxPick::Lowpass => {
                effects.push(SoxEffect::Lowpass { freq_hz: log_uniform(rng, pick(domain, (12_000.0, 20_000.0), (6_000.0, 12_000.0))) })
            }
            SoxPick::Bass => effects.push(SoxEffect::Bass { gain_db: uniform(rng, shelf_db), freq_hz: log_uniform(rng, (60.0, 250.0)) }),
            SoxPick::Treble => {
                effects.push(SoxEffect::Treble { gain_db: uniform(rng, shelf_db), freq_hz: log_uniform(rng, (3_000.0, 10_000.0)) })
            }
            SoxPick::Equalizer => effects.push(SoxEffect::Equalizer {
                freq_hz: log_uniform(rng, (100.0, 8_000.0)),
                q: log_uniform(rng, (0.5, 3.0)),
                gain_db: uniform(rng, pick(domain, (-5.0, 5.0), (-8.0, 8.0))),
            }),
            SoxPick::Compand => {
                let (depth_db, ratio) = draw_depth_and_ratio(rng, domain);
                effects.push(SoxEffect::Compand {
                    attack_ms: log_uniform(rng, (2.0, 40.0)),
                    decay_ms: log_uniform(rng, (50.0, 800.0)),
                    threshold_db: stage_lufs - depth_db,
                    ratio,
                    knee_db: uniform(rng, (0.0, 6.0)),
                    makeup_db: uniform(rng, (0.0, depth_db * (1.0 - 1.0 / ratio))),
                });
            }
            SoxPick::Overdrive => {
                let gain_db = uniform(rng, pick(domain, (0.0, 10.0), (0.0, 6.0)));
                effects.push(SoxEffect::Overdrive { gain_db, colour: uniform(rng, (0.0, 40.0)) });
                effects.push(SoxEffect::Gain { gain_db: -gain_db });
            }
            SoxPick::Gain => effects.push(SoxEffect::Gain { gain_db: uniform(rng, pick(domain, (-4.0, 4.0), (-6.0, 6.0))) }),
        }
    }
    effects
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::super::sox::tests::sox_present;
    use super::super::test_signals::{noise, sine};
    use super::*;

    fn recipe(seed: u64, domain: Domain, kinds: &[ForeignKind]) -> ForeignRecipe {
        ForeignRecipe::random_from(&mut ChaCha8Rng::seed_from_u64(seed), domain, kinds)
    }

    fn program(sample_rate: u32) -> Vec<Vec<f32>> {
        let frames = sample_rate as usize;
        let tone = sine(220.0, 0.3, sample_rate, frames);
        let left = tone.iter().zip(noise(1, 0.1, frames)).map(|(t, n)| t + n).collect();
        let right = tone.iter().zip(noise(2, 0.1, frames)).map(|(t, n)| 0.5 * t + n).collect();
        vec![left, right]
    }

    /// The kinds this machine can run: all with `sox`, the native ones without.
    fn kinds(test: &str) -> &'static [ForeignKind] {
        if sox_present(test) { &ForeignKind::ALL } else { &ForeignKind::NATIVE }
    }

    #[test]
    fn a_seed_gives_one_recipe_and_one_output_and_another_seed_another() {
        let kinds = kinds("a_seed_gives_one_recipe_and_one_output_and_another_seed_another");
        let audio = program(44_100);
        for domain in [Domain::Music, Domain::Speech] {
            let (first, again, other) = (recipe(7, domain, kinds), recipe(7, domain, kinds), recipe(8, domain, kinds));
            assert_eq!(first, again);
            assert_ne!(first, other);
            assert_eq!(first.apply(&audio, 44_100).unwrap(), again.apply(&audio, 44_100).unwrap());
            assert_ne!(first.apply(&audio, 44_100).unwrap(), other.apply(&audio, 44_100).unwrap());
        }
    }

    #[test]
    fn random_recipes_apply_at_any_rate_and_keep_the_shape() {
        let kinds = kinds("random_recipes_apply_at_any_rate_and_keep_the_shape");
        for (seed, sample_rate) in (0..24).zip([8_000, 22_050, 44_100, 48_000, 96_000, 192_000].into_iter().cycle()) {
            let domain = if seed % 2 == 0 { Domain::Music } else { Domain::Speech };
            let recipe = recipe(seed, domain, kinds);
            assert!((1..=MAX_STEPS).contains(&recipe.steps.len()), "{recipe:?}");
            let audio = program(sample_rate);
            let output = recipe.apply(&audio, sample_rate).unwrap_or_else(|e| panic!("{recipe:?} at {sample_rate} Hz: {e}"));
            assert_eq!((output.len(), output[0].len(), output[1].len()), (2, audio[0].len(), audio[0].len()), "{recipe:?}");
            assert!(output.iter().flatten().all(|x| x.is_finite()), "{recipe:?}");
            assert_ne!(output, audio, "{recipe:?} changes the audio");
        }
    }

    #[test]
    fn steps_run_in_chain_order_and_recipes_round_trip_through_json() {
        for seed in 0..40 {
            let recipe = recipe(seed, Domain::Music, &ForeignKind::ALL);
            let positions: Vec<usize> = recipe.steps.iter().map(|step| kind_of(step).chain_position()).collect();
            assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{recipe:?}");
            let json = serde_json::to_string(&recipe).unwrap();
            let reread: ForeignRecipe = serde_json::from_str(&json).unwrap();
            assert_same_numbers(&serde_json::to_value(&reread).unwrap(), &serde_json::to_value(&recipe).unwrap(), &json);
        }
    }

    /// Equal JSON values, numbers to 1e-12 (serde_json without `float_roundtrip` may read the
    /// last digit of a float differently).
    fn assert_same_numbers(got: &serde_json::Value, want: &serde_json::Value, json: &str) {
        use serde_json::Value;
        match (got, want) {
            (Value::Number(a), Value::Number(b)) => {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} read back as {b} in {json}");
            }
            (Value::Array(a), Value::Array(b)) => {
                assert_eq!(a.len(), b.len(), "{json}");
                a.iter().zip(b).for_each(|(a, b)| assert_same_numbers(a, b, json));
            }
            (Value::Object(a), Value::Object(b)) => {
                assert!(a.keys().eq(b.keys()), "{json}");
                a.values().zip(b.values()).for_each(|(a, b)| assert_same_numbers(a, b, json));
            }
            _ => assert_eq!(got, want, "{json}"),
        }
    }

    fn kind_of(step: &ForeignStep) -> ForeignKind {
        match step {
            ForeignStep::FirEq(_) => ForeignKind::FirEq,
            ForeignStep::Tilt(_) => ForeignKind::Tilt,
            ForeignStep::Sox { .. } => ForeignKind::Sox,
            ForeignStep::RmsCompressor(_) => ForeignKind::RmsCompressor,
            ForeignStep::Tape(_) => ForeignKind::Tape,
            ForeignStep::Limiter(_) => ForeignKind::Limiter,
        }
    }

    #[test]
    fn no_kinds_give_a_recipe_that_only_stages_the_level() {
        let recipe = recipe(3, Domain::Speech, &[]);
        assert!(recipe.steps.is_empty());
        let output = recipe.apply(&program(16_000), 16_000).unwrap();
        let lufs = integrated_loudness(&output, 16_000, "staged").unwrap().unwrap();
        assert!((lufs - recipe.stage_lufs).abs() < 0.1, "staged to {lufs} LUFS, asked {}", recipe.stage_lufs);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let recipe = recipe(1, Domain::Music, &ForeignKind::NATIVE);
        assert!(matches!(recipe.apply(&[], 48_000), Err(crate::Error::BadAudio { .. })));
        assert!(matches!(recipe.apply(&[vec![f32::NAN; 10]], 48_000), Err(crate::Error::BadAudio { .. })));
        assert!(matches!(recipe.apply(&[vec![0.1; 10]], 200_000), Err(crate::Error::SampleRate { .. })));
    }
}
