//! Measured matching: what can be read off the two recordings without learning, set as afx's
//! own knobs.
//!
//! - **Tone** ([`tone_match`]): the long-term average spectrum of each recording in 1/6-octave
//!   bands (Welch, Hann frames of about a quarter second, channels' powers averaged) → the
//!   difference `d = reference − input` in dB → smoothed across ½ octave into the part an
//!   equaliser can make, `s` → **held** to the share of it that is the recordings' production
//!   rather than their content ([`tone_strength`]): the correlation `r` of the two spectra's
//!   fine structure (each minus its own ¼-octave smoothing: partials, formants) is near 1 for
//!   two passages of one recording and near 0 for two songs, whose smoothed spectra differ
//!   mostly by content (on the training split, ~11 dB of content against ~2 dB of production
//!   between two songs) → the curve `α·(s − mean s)` (level-neutral; loudness is the next
//!   stage's) → fitted by Levenberg–Marquardt with afx's six-section parametric EQ (`eq`
//!   knobs). A reference from another song moves the tone a little, never to that song's
//!   spectrum.
//! - **Loudness** ([`loudness_stage`]): one gain to the reference's BS.1770 integrated loudness
//!   measured on the output, then afx's limiter at a −1 dBFS ceiling so the gain never clips
//!   (re-measured and corrected, since the limiter lowers loudness).

use crate::Result;
use crate::audio::Audio;
use crate::fx::{ChainKnobs, ChainSpec};
use crate::metrics::{audible_loudness, integrated_loudness};

/// Bands per octave of the measured spectra.
const BANDS_PER_OCTAVE: f64 = 6.0;
/// The lowest band's centre.
const LOWEST_BAND_HZ: f64 = 31.25;
/// The highest frequency analysed: 20 kHz, or 0.45 of the lower of the two rates.
const HIGHEST_HZ: f64 = 20_000.0;
/// Power floor below a spectrum's strongest band (dB), so empty bands stay finite.
const FLOOR_DB: f64 = -100.0;
/// Width (Gaussian σ, octaves) of the smoothing that leaves what an equaliser can make.
const SMOOTHING_OCTAVES: f64 = 0.5;
/// Width (Gaussian σ, octaves) of the smoothing whose residual is the fine structure.
const FINE_OCTAVES: f64 = 0.25;
/// The bands the strength and the level are judged on.
const JUDGED_HZ: (f64, f64) = (60.0, 16_000.0);
/// Most analysis frames per channel (at the hop of about 0.17 s, a little over a minute).
const MAX_FRAMES: usize = 400;
/// Levenberg–Marquardt iterations of the EQ fit.
const FIT_ITERATIONS: usize = 40;

/// The constants of the tone match's strength (see [`tone_strength`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToneConfig {
    /// Strength for two recordings with nothing in common.
    pub floor: f64,
    /// Strength added for one recording (fine structure fully correlated).
    pub same: f64,
    /// How steeply the added strength rises with the correlation.
    pub power: f64,
}

impl Default for ToneConfig {
    /// Fitted on the training split of the real-use items (music and speech, reference from
    /// the same and from another recording; docs/results.md).
    fn default() -> Self {
        ToneConfig { floor: 0.04, same: 0.8, power: 3.0 }
    }
}

/// How much of the measured tone difference to take on: `floor + same · r^power`, `r` the
/// correlation of the two spectra's fine structure (what is left of each after a ¼-octave
/// smoothing: partials, formants, the notes and voices themselves), clamped to [0, 1]. Two
/// passages of one recording share their fine structure and differ mostly by production, so
/// much of their difference is taken on, however large (a telephone band-pass is a large
/// difference); two songs share none, and their difference is mostly content.
pub fn tone_strength(config: &ToneConfig, relatedness: f64) -> f64 {
    config.floor + config.same * relatedness.clamp(0.0, 1.0).powf(config.power)
}

/// Pearson correlation (0 when either side is constant).
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    if aa > 0.0 && bb > 0.0 { ab / (aa * bb).sqrt() } else { 0.0 }
}

/// The centres of the bands analysed for two recordings at `rates`.
pub fn band_centres(rates: &[u32]) -> Vec<f64> {
    let top = rates.iter().map(|&r| 0.45 * f64::from(r)).fold(HIGHEST_HZ, f64::min);
    let count = (BANDS_PER_OCTAVE * (top / LOWEST_BAND_HZ).log2()).floor() as usize + 1;
    (0..count).map(|i| LOWEST_BAND_HZ * 2f64.powf(i as f64 / BANDS_PER_OCTAVE)).collect()
}

/// The long-term average power spectrum of `audio` in dB at each band of `centres` (each band
/// one 1/6 octave wide; channels' powers averaged). Relative: 0 dB is the strongest band.
pub fn average_spectrum_db(audio: &Audio, centres: &[f64]) -> Vec<f64> {
    let rate = f64::from(audio.sample_rate);
    let n = (rate / 4.0).max(256.0).log2().ceil().exp2() as usize;
    let hop = n / 2;
    let window: Vec<f64> = (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()).collect();
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let mut frame = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut power = vec![0.0f64; n / 2 + 1];
    for channel in &audio.channels {
        let frames = if channel.len() <= n { 1 } else { (channel.len() - n) / hop + 1 };
        // A long recording: at most MAX_FRAMES frames spread evenly over it (an average over
        // a minute of frames is as good as over an hour, and costs the same for any length).
        let every = frames.div_ceil(MAX_FRAMES);
        for f in (0..frames).step_by(every) {
            for (i, slot) in frame.iter_mut().enumerate() {
                *slot = channel.get(f * hop + i).map_or(0.0, |&x| f64::from(x)) * window[i];
            }
            fft.process(&mut frame, &mut spectrum).expect("buffers sized by the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p += c.norm_sqr();
            }
        }
    }
    let bin_hz = rate / n as f64;
    let half_band = 2f64.powf(0.5 / BANDS_PER_OCTAVE);
    let bands: Vec<f64> = centres
        .iter()
        .map(|&c| {
            let (lo, hi) = (((c / half_band) / bin_hz).ceil() as usize, ((c * half_band) / bin_hz).floor() as usize);
            let hi = hi.min(power.len() - 1);
            if lo > hi {
                power[((c / bin_hz).round() as usize).min(power.len() - 1)]
            } else {
                power[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64
            }
        })
        .collect();
    let strongest = bands.iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    bands.iter().map(|&p| (10.0 * (p / strongest).log10()).max(FLOOR_DB)).collect()
}

/// `values` smoothed by a Gaussian of `sigma` bands (weights renormalised at the edges).
fn smooth(values: &[f64], sigma: f64) -> Vec<f64> {
    let reach = (3.0 * sigma).ceil() as isize;
    (0..values.len() as isize)
        .map(|i| {
            let (mut sum, mut weight) = (0.0, 0.0);
            for j in (i - reach).max(0)..=(i + reach).min(values.len() as isize - 1) {
                let w = (-0.5 * ((j - i) as f64 / sigma).powi(2)).exp();
                sum += w * values[j as usize];
                weight += w;
            }
            sum / weight
        })
        .collect()
}

/// What the tone match measured and chose.
#[derive(Clone, Debug)]
pub struct ToneMatch {
    pub centres_hz: Vec<f64>,
    /// The smoothed difference reference − input, level removed (dB per band).
    pub difference_db: Vec<f64>,
    /// How alike the two spectra's fine structure is (correlation, −1 to 1; about 0 for two
    /// unrelated recordings).
    pub relatedness: f64,
    /// The share of the difference taken on ([`tone_strength`]).
    pub strength: f64,
    /// The curve aimed at: `strength × difference_db`.
    pub curve_db: Vec<f64>,
}

/// Measures the tone difference of `input` and `reference` and the share of it to take on (see
/// the module doc); [`ToneMatch::fit`] sets afx's EQ to it.
pub fn tone_match(input: &Audio, reference: &Audio, config: &ToneConfig) -> Result<ToneMatch> {
    let centres = band_centres(&[input.sample_rate, reference.sample_rate]);
    let (input_db, reference_db) = (average_spectrum_db(input, &centres), average_spectrum_db(reference, &centres));
    let raw: Vec<f64> = reference_db.iter().zip(&input_db).map(|(r, i)| r - i).collect();
    let smoothed = smooth(&raw, SMOOTHING_OCTAVES * BANDS_PER_OCTAVE);
    let judged: Vec<usize> = (0..centres.len()).filter(|&b| (JUDGED_HZ.0..=JUDGED_HZ.1).contains(&centres[b])).collect();
    let mean = judged.iter().map(|&b| smoothed[b]).sum::<f64>() / judged.len().max(1) as f64;
    let difference_db: Vec<f64> = smoothed.iter().map(|s| s - mean).collect();
    let fine = |db: &[f64]| -> Vec<f64> {
        let broad = smooth(db, FINE_OCTAVES * BANDS_PER_OCTAVE);
        judged.iter().map(|&b| db[b] - broad[b]).collect()
    };
    let relatedness = correlation(&fine(&input_db), &fine(&reference_db));
    let strength = tone_strength(config, relatedness);
    let curve_db: Vec<f64> = difference_db.iter().map(|d| strength * d).collect();
    Ok(ToneMatch { centres_hz: centres, difference_db, relatedness, strength, curve_db })
}

impl ToneMatch {
    /// The `eq` knobs (designed at `sample_rate`) fitted to the held curve, and their RMS
    /// misfit in dB. With a network's EQ setting and a weight (`network`), its curve scaled by
    /// the weight is added to the held curve: the tone match's strength is the safeguard on a
    /// network trained on one recording's halves (where the recordings are unrelated its moves
    /// shrink with the measurement's, where they are one recording they stand); a network that
    /// learned its own hold on foreign pairs gets weight 1.
    pub fn fit(&self, network: Option<(&ChainKnobs, f64)>, sample_rate: f64) -> Result<(ChainKnobs, f64)> {
        let Some((network_eq, weight)) = network else { return fit_eq(&self.centres_hz, &self.curve_db, sample_rate) };
        let network = crate::curves::response_db(network_eq, sample_rate, &self.centres_hz);
        let curve: Vec<f64> = self.curve_db.iter().zip(&network).map(|(m, n)| m + weight * n).collect();
        fit_eq(&self.centres_hz, &curve, sample_rate)
    }
}

/// Measured matching alone, no network: `input` through the tone match's EQ, then the loudness
/// stage to the reference's loudness.
pub fn measured_match(input: &Audio, reference: &Audio) -> Result<Audio> {
    let (eq, _) = tone_match(input, reference, &ToneConfig::default())?.fit(None, f64::from(input.sample_rate))?;
    let mut output = input.clone();
    let mut views: Vec<&mut [f32]> = output.channels.iter_mut().map(Vec::as_mut_slice).collect();
    crate::fx::render(&eq, input.sample_rate, &mut views)?;
    loudness_stage(&mut output, audible_loudness(&reference.channels, reference.sample_rate, "reference")?)?;
    Ok(output)
}

/// The `eq` knobs whose response at `centres` best matches `curve_db` (least squares on the
/// dB response, Levenberg–Marquardt in normalised knob space from the flat EQ), and the RMS
/// misfit.
pub fn fit_eq(centres: &[f64], curve_db: &[f64], sample_rate: f64) -> Result<(ChainKnobs, f64)> {
    let chain: ChainSpec = "eq".parse()?;
    let residuals = |u: &[f64]| -> Result<Vec<f64>> {
        let knobs = ChainKnobs::from_normalized(chain.clone(), u)?;
        Ok(crate::curves::response_db(&knobs, sample_rate, centres).iter().zip(curve_db).map(|(h, c)| h - c).collect())
    };
    let cost = |r: &[f64]| r.iter().map(|x| x * x).sum::<f64>();
    let mut u = ChainKnobs::defaults(chain.clone()).to_normalized();
    let mut r = residuals(&u)?;
    let mut lambda = 1e-2;
    const STEP: f64 = 1e-5;
    for _ in 0..FIT_ITERATIONS {
        let p = u.len();
        let mut jacobian = vec![vec![0.0; r.len()]; p];
        for k in 0..p {
            let mut v = u.clone();
            let h = if v[k] + STEP <= 1.0 { STEP } else { -STEP };
            v[k] += h;
            for (j, (a, b)) in residuals(&v)?.iter().zip(&r).enumerate() {
                jacobian[k][j] = (a - b) / h;
            }
        }
        let mut normal = vec![vec![0.0; p]; p];
        let mut gradient = vec![0.0; p];
        for a in 0..p {
            gradient[a] = jacobian[a].iter().zip(&r).map(|(j, r)| j * r).sum();
            for b in 0..p {
                normal[a][b] = jacobian[a].iter().zip(&jacobian[b]).map(|(x, y)| x * y).sum();
            }
        }
        let mut improved = false;
        for _ in 0..8 {
            let mut system = normal.clone();
            for (a, row) in system.iter_mut().enumerate() {
                row[a] += lambda * (normal[a][a] + 1e-6);
            }
            let step = solve(system, gradient.iter().map(|g| -g).collect());
            let candidate: Vec<f64> = u.iter().zip(&step).map(|(x, s)| (x + s).clamp(0.0, 1.0)).collect();
            let candidate_r = residuals(&candidate)?;
            if cost(&candidate_r) < cost(&r) {
                (u, r) = (candidate, candidate_r);
                lambda = (lambda / 3.0).max(1e-7);
                improved = true;
                break;
            }
            lambda *= 4.0;
        }
        if !improved {
            break;
        }
    }
    let misfit = (cost(&r) / r.len().max(1) as f64).sqrt();
    Ok((ChainKnobs::from_normalized(chain, &u)?, misfit))
}

/// Solves `a·x = b` (symmetric positive definite, small) by Gaussian elimination with partial
/// pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).expect("non-empty");
        a.swap(col, pivot);
        b.swap(col, pivot);
        let d = a[col][col];
        if d.abs() < 1e-300 {
            continue;
        }
        for row in col + 1..n {
            let f = a[row][col] / d;
            if f != 0.0 {
                let (upper, lower) = a.split_at_mut(row);
                for (x, p) in lower[0][col..].iter_mut().zip(&upper[col][col..]) {
                    *x -= f * p;
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = if a[row][row].abs() < 1e-300 { 0.0 } else { (b[row] - s) / a[row][row] };
    }
    x
}

/// Peak ceiling of the loudness stage (dBFS).
pub const CEILING_DBFS: f64 = -1.0;
/// Passes of gain → limiter → measure.
const LOUDNESS_PASSES: usize = 6;
/// Margin below the ceiling within which the limiter is taken to act (dB).
const HEADROOM_DB: f64 = 0.1;
/// Close enough to the reference's loudness (LU).
const LOUDNESS_TOLERANCE_LU: f64 = 0.15;
/// The most gain the search looks above the plain gain for (dB).
const MOST_EXTRA_DB: f64 = 30.0;

/// Brings `output` to `target_lufs` (BS.1770 integrated loudness) by one gain followed by
/// afx's limiter at [`CEILING_DBFS`] (`gain,limiter`). Where the limiter has nothing to do the
/// gain alone meets the target. Otherwise the gain is first chosen on a [`LimitedLoudness`]
/// prediction (no rendering), then rendered and measured, and corrected by secant steps on the
/// measurements while it misses by more than 0.15 LU. An output silent to the meter gets no
/// gain.
pub fn loudness_stage(output: &mut Audio, target_lufs: f64) -> Result<Leveled> {
    let rate = output.sample_rate;
    let start = integrated_loudness(&output.channels, rate, "output")?;
    let mut knobs = ChainKnobs::defaults("gain,limiter".parse()?);
    knobs.set("limiter.ceiling_db", CEILING_DBFS)?;
    let (min_gain, max_gain) = {
        let spec = knobs.chain().specs().next().expect("gain has a knob");
        (spec.min, spec.max)
    };
    let plain_db = start.map_or(0.0, |lufs| target_lufs - lufs).clamp(min_gain, max_gain);
    let peak_db = 20.0 * f64::from(output.channels.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()))).log10();
    let (Some(start), false) = (start, peak_db + plain_db < CEILING_DBFS - HEADROOM_DB) else {
        // Under the ceiling the limiter passes the signal as it is (to rounding): the gain
        // alone meets the target (and a silent output keeps its level).
        knobs.set("gain.gain_db", plain_db)?;
        let gain = 10f64.powf(plain_db / 20.0) as f32;
        output.channels.iter_mut().flatten().for_each(|x| *x *= gain);
        return Ok(Leveled { knobs, lufs: start.map(|lufs| lufs + plain_db), passes: 0 });
    };
    let model = LimitedLoudness::new(&output.channels, rate, CEILING_DBFS, knobs.get("limiter.release_ms")?, start);
    let mut gain_db = model.gain_for(target_lufs, plain_db, max_gain);
    let original = output.channels.clone();
    let mut lufs = Some(start);
    let mut previous: Option<(f64, f64)> = None;
    let mut passes = 0;
    for pass in 0..LOUDNESS_PASSES {
        gain_db = gain_db.clamp(min_gain, max_gain);
        knobs.set("gain.gain_db", gain_db)?;
        if pass > 0 {
            output.channels.clone_from(&original);
        }
        let mut views: Vec<&mut [f32]> = output.channels.iter_mut().map(Vec::as_mut_slice).collect();
        crate::fx::render(&knobs, rate, &mut views)?;
        passes += 1;
        lufs = integrated_loudness(&output.channels, rate, "output")?;
        let Some(now) = lufs else { break };
        let miss = target_lufs - now;
        if miss.abs() < LOUDNESS_TOLERANCE_LU || pass + 1 == LOUDNESS_PASSES {
            break;
        }
        // The slope between two measurements, or before there are two, the prediction's.
        let slope = match previous {
            Some((g, l)) if (gain_db - g).abs() > 1e-6 => (now - l) / (gain_db - g),
            _ => model.slope(gain_db),
        };
        previous = Some((gain_db, now));
        gain_db += miss / slope.clamp(0.1, 1.0);
    }
    Ok(Leveled { knobs, lufs, passes })
}

/// The integrated loudness of `gain,limiter` (afx's limiter, [`crate::fx::limiter`]) on a
/// recording at any gain, predicted without rendering it, so the loudness stage renders once
/// where a search would render several times.
///
/// The recording is cut into blocks of the limiter's look-ahead `D` (2 ms); each keeps its
/// peak over channels `P` and its K-weighted energy `E` (BS.1770's filter, channels summed).
/// At gain `G` a block needs the gain `r = min(1, c / (G·P))`; the limiter's release lets the
/// gain rise by `α^D` per block and fall at once (`s = min(r, α^D·s + (1 − α^D)·r)`), and
/// the block leaves with energy `G²·s²·E`. (Spreading each block's need to its neighbours, as
/// the look-ahead's ramp does to a few samples of them, predicted worse: 0.5 LU low at 15 dB
/// into the limiter on a drum groove, against 0.1 LU high without.) The blocks' energies fill
/// BS.1770's 100 ms steps, gated as the meter gates (400 ms windows, −70 LUFS absolute, −10 LU
/// relative). `offset` ties the prediction to the
/// meter: it is what the meter read at gain 1 minus what the blocks read unlimited.
#[derive(Clone, Debug)]
pub struct LimitedLoudness {
    peaks: Vec<f64>,
    energies: Vec<f64>,
    /// Frames per block and per 100 ms step.
    block: usize,
    step: usize,
    ceiling: f64,
    /// `α^D`: the release per block.
    release: f64,
    offset: f64,
}

impl LimitedLoudness {
    /// The blocks of `channels` (all of one length) for a limiter at `ceiling_db` with
    /// `release_ms`; `measured_lufs` is the meter's reading of `channels` as they are.
    pub fn new(channels: &[Vec<f32>], sample_rate: u32, ceiling_db: f64, release_ms: f64, measured_lufs: f64) -> LimitedLoudness {
        let fs = f64::from(sample_rate);
        let block = crate::fx::limiter::lookahead(fs);
        let frames = channels.first().map_or(0, Vec::len);
        let count = frames.div_ceil(block);
        let per_channel: Vec<(Vec<f64>, Vec<f64>)> = std::thread::scope(|scope| {
            let sections = crate::fx::level::k_weighting(sample_rate);
            let handles: Vec<_> = channels
                .iter()
                .map(|channel| {
                    scope.spawn(move || {
                        let mut filter = crate::fx::level::KFilter::new(&sections);
                        let (mut peaks, mut energies) = (Vec::with_capacity(count), Vec::with_capacity(count));
                        for chunk in channel.chunks(block) {
                            let peak = chunk.iter().fold(0.0f32, |p, x| p.max(x.abs()));
                            let mut energy = 0.0f64;
                            filter.each(chunk, |k| energy += k * k);
                            peaks.push(f64::from(peak));
                            energies.push(energy);
                        }
                        (peaks, energies)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a K-weighting thread")).collect()
        });
        let (mut peaks, mut energies) = (vec![0.0f64; count], vec![0.0f64; count]);
        for (p, e) in &per_channel {
            peaks.iter_mut().zip(p).for_each(|(a, b)| *a = a.max(*b));
            energies.iter_mut().zip(e).for_each(|(a, b)| *a += b);
        }
        let step = ((fs / 10.0).round() as usize).max(1);
        let alpha = crate::fx::compressor::smoothing_coeff(release_ms, fs);
        let mut model = LimitedLoudness {
            peaks,
            energies,
            block,
            step,
            ceiling: 10f64.powf(ceiling_db / 20.0),
            release: alpha.powi(block as i32),
            offset: 0.0,
        };
        if let Some(unlimited) = model.gated(|_| 1.0) {
            model.offset = measured_lufs - unlimited;
        }
        model
    }

    /// The predicted loudness after `gain_db` and the limiter (LUFS), `None` if silent.
    pub fn lufs(&self, gain_db: f64) -> Option<f64> {
        let gain = 10f64.powf(gain_db / 20.0);
        // `gated` visits the blocks in order, so the release runs as it scales them.
        let mut s = 1.0f64;
        let scaled = |j: usize| {
            let need = (self.ceiling / (gain * self.peaks[j])).min(1.0);
            s = need.min(self.release * s + (1.0 - self.release) * need);
            (gain * s) * (gain * s)
        };
        self.gated(scaled).map(|l| l + self.offset)
    }

    /// d(lufs)/d(gain_db) at `gain_db`, by central differences of half a dB.
    pub fn slope(&self, gain_db: f64) -> f64 {
        match (self.lufs(gain_db + 0.25), self.lufs(gain_db - 0.25)) {
            (Some(up), Some(down)) => (up - down) / 0.5,
            _ => 1.0,
        }
    }

    /// The gain (dB, from `lowest_db` up to `highest_db`) the prediction says reaches
    /// `target_lufs`: bisection, since the limited loudness never falls as the gain rises
    /// (`highest_db` where even that falls short, `lowest_db` where the blocks read nothing).
    pub fn gain_for(&self, target_lufs: f64, lowest_db: f64, highest_db: f64) -> f64 {
        let (mut low, mut high) = (lowest_db, highest_db.min(lowest_db + MOST_EXTRA_DB).max(lowest_db));
        match self.lufs(high) {
            // Nothing the blocks can read (too short to gate): the plain gain, for the
            // measurements to correct.
            None => return lowest_db,
            Some(l) if l <= target_lufs => return high,
            Some(_) => {}
        }
        for _ in 0..40 {
            let mid = 0.5 * (low + high);
            if self.lufs(mid).is_some_and(|l| l < target_lufs) { low = mid } else { high = mid }
        }
        0.5 * (low + high)
    }

    /// BS.1770's gated loudness of the blocks, each block's energy scaled by `scale(j)` (called
    /// once per block, in order), without the offset.
    fn gated(&self, mut scale: impl FnMut(usize) -> f64) -> Option<f64> {
        let steps = (self.peaks.len() * self.block) / self.step;
        let mut sums = vec![0.0f64; steps + 1];
        for (j, e) in self.energies.iter().enumerate() {
            sums[((j * self.block) / self.step).min(steps)] += e * scale(j);
        }
        let windows: Vec<f64> = (0..steps.saturating_sub(3)).map(|k| sums[k..k + 4].iter().sum::<f64>() / (4 * self.step) as f64).collect();
        let loudness = |z: f64| -0.691 + 10.0 * z.log10();
        let mean_of = |keep: &dyn Fn(f64) -> bool| {
            let kept: Vec<f64> = windows.iter().copied().filter(|&z| keep(z)).collect();
            (!kept.is_empty()).then(|| kept.iter().sum::<f64>() / kept.len() as f64)
        };
        let absolute = mean_of(&|z| loudness(z) > -70.0)?;
        let relative = loudness(absolute) - 10.0;
        mean_of(&|z| loudness(z) > -70.0 && loudness(z) > relative).map(loudness)
    }
}

/// What [`loudness_stage`] did.
#[derive(Clone, Debug)]
pub struct Leveled {
    /// The `gain,limiter` knobs rendered.
    pub knobs: ChainKnobs,
    /// The output's integrated loudness (LUFS; `None`: silent to the meter).
    pub lufs: Option<f64>,
    /// Renders of the limiter it took (0 where the gain alone did it).
    pub passes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const RATE: u32 = 48_000;

    /// Harmonic program: partials of `f0` (and of a fifth above) with their own slow swells, a
    /// little noise; two fundamentals a few semitones apart share no partials.
    fn harmonic(f0: f64, seconds: f64, seed: u64) -> Audio {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let partials: Vec<(f64, f64, f64)> = [f0, 1.5 * f0]
            .iter()
            .flat_map(|&f| (1..40).map(move |k| f * k as f64))
            .filter(|&f| f < 18_000.0)
            .map(|f| (f, rng.random_range(0.2..1.0) / (f / 200.0).max(1.0).sqrt(), rng.random_range(0.3..2.0)))
            .collect();
        let n = (seconds * f64::from(RATE)) as usize;
        let samples = (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(RATE);
                let tone: f64 = partials
                    .iter()
                    .map(|&(f, a, swell)| {
                        a * (0.6 + 0.4 * (std::f64::consts::TAU * swell * t).sin()) * (std::f64::consts::TAU * f * t).sin()
                    })
                    .sum();
                (0.02 * tone + 0.002 * rng.random_range(-1.0..1.0)) as f32
            })
            .collect();
        Audio { sample_rate: RATE, channels: vec![samples] }
    }

    fn through(audio: &Audio, knobs: &ChainKnobs) -> Audio {
        let mut out = audio.clone();
        let mut views: Vec<&mut [f32]> = out.channels.iter_mut().map(Vec::as_mut_slice).collect();
        crate::fx::render(knobs, audio.sample_rate, &mut views).unwrap();
        out
    }

    fn shelves() -> ChainKnobs {
        let mut eq = ChainKnobs::defaults("eq".parse().unwrap());
        eq.set("eq.low_shelf.gain_db", -4.0).unwrap();
        eq.set("eq.low_shelf.freq_hz", 150.0).unwrap();
        eq.set("eq.high_shelf.gain_db", 6.0).unwrap();
        eq.set("eq.high_shelf.freq_hz", 5_000.0).unwrap();
        eq
    }

    #[test]
    fn a_tone_lands_in_its_band_and_white_noise_is_flat() {
        let centres = band_centres(&[RATE]);
        let sine = Audio {
            sample_rate: RATE,
            channels: vec![(0..RATE).map(|i| (std::f64::consts::TAU * 1_000.0 * f64::from(i) / f64::from(RATE)).sin() as f32).collect()],
        };
        let spectrum = average_spectrum_db(&sine, &centres);
        let loudest = (0..centres.len()).max_by(|&a, &b| spectrum[a].total_cmp(&spectrum[b])).unwrap();
        assert!((centres[loudest] / 1_000.0).log2().abs() < 1.0 / 12.0, "1 kHz landed at {} Hz", centres[loudest]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let noise = Audio { sample_rate: RATE, channels: vec![(0..5 * RATE).map(|_| rng.random_range(-0.5f32..0.5)).collect()] };
        let spectrum = average_spectrum_db(&noise, &centres);
        let judged: Vec<f64> = centres.iter().zip(&spectrum).filter(|(c, _)| **c >= 200.0).map(|(_, s)| *s).collect();
        let (lo, hi) = judged.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        assert!(hi - lo < 1.5, "white noise spans {lo:.2}..{hi:.2} dB");
    }

    /// A curve that the EQ can make (another EQ setting's response) is fitted to a fraction of
    /// a dB, between the fitted frequencies too.
    #[test]
    fn the_eq_fit_recovers_a_curve_the_eq_can_make() {
        let mut truth = shelves();
        truth.set("eq.band2.gain_db", 5.0).unwrap();
        truth.set("eq.band2.freq_hz", 1_500.0).unwrap();
        truth.set("eq.band2.q", 1.2).unwrap();
        let centres = band_centres(&[RATE]);
        let curve = crate::curves::response_db(&truth, f64::from(RATE), &centres);
        let (fitted, misfit) = fit_eq(&centres, &curve, f64::from(RATE)).unwrap();
        assert!(misfit < 0.25, "misfit {misfit} dB");
        let fine: Vec<f64> = (0..300).map(|i| 40.0 * (16_000.0f64 / 40.0).powf(f64::from(i) / 299.0)).collect();
        let (a, b) =
            (crate::curves::response_db(&truth, f64::from(RATE), &fine), crate::curves::response_db(&fitted, f64::from(RATE), &fine));
        let worst = a.iter().zip(&b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst < 1.0, "fitted response off by {worst} dB");
    }

    /// The same music through an EQ: the fine structure matches, the measured difference is the
    /// EQ's response (level removed) and much of it is taken on. Noise through the same EQ
    /// shares nothing with the music: unrelated, and the difference is hardly taken on.
    #[test]
    fn related_recordings_take_on_the_difference_unrelated_ones_hardly() {
        let config = ToneConfig::default();
        let input = harmonic(110.0, 4.0, 1);
        let same = tone_match(&input, &through(&input, &shelves()), &config).unwrap();
        assert!(same.relatedness > 0.9, "relatedness {}", same.relatedness);
        let truth = crate::curves::response_db(&shelves(), f64::from(RATE), &same.centres_hz);
        let smoothed = smooth(&truth, SMOOTHING_OCTAVES * BANDS_PER_OCTAVE);
        let judged: Vec<usize> = (0..same.centres_hz.len()).filter(|&b| (200.0..=12_000.0).contains(&same.centres_hz[b])).collect();
        let all: Vec<usize> = (0..same.centres_hz.len()).filter(|&b| (JUDGED_HZ.0..=JUDGED_HZ.1).contains(&same.centres_hz[b])).collect();
        let mean = all.iter().map(|&b| smoothed[b]).sum::<f64>() / all.len() as f64;
        for &b in &judged {
            let expected = smoothed[b] - mean;
            assert!((same.difference_db[b] - expected).abs() < 1.0, "{} Hz: {} vs {expected}", same.centres_hz[b], same.difference_db[b]);
        }
        assert!((same.strength - tone_strength(&config, same.relatedness)).abs() < 1e-12);
        assert!(same.strength > 0.5, "strength {}", same.strength);

        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let other = Audio { sample_rate: RATE, channels: vec![(0..4 * RATE).map(|_| rng.random_range(-0.1f32..0.1)).collect()] };
        let unrelated = tone_match(&input, &through(&other, &shelves()), &config).unwrap();
        assert!(unrelated.relatedness < 0.3, "relatedness {}", unrelated.relatedness);
        assert!(unrelated.strength < 0.2, "strength {}", unrelated.strength);
    }

    /// Up: the output reaches the target loudness with no sample over the ceiling. Down: a
    /// plain gain (the limiter has nothing to do).
    #[test]
    fn the_loudness_stage_reaches_its_target_under_the_ceiling() {
        let mut input = harmonic(110.0, 4.0, 5);
        input.channels[0].iter_mut().for_each(|x| *x *= 4.0);
        let start = audible_loudness(&input.channels, RATE, "input").unwrap();
        let mut up = input.clone();
        loudness_stage(&mut up, -16.0).unwrap();
        let reached = audible_loudness(&up.channels, RATE, "up").unwrap();
        assert!((reached + 16.0).abs() < 0.15, "{reached} LUFS");
        let peak = up.channels.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()));
        assert!(peak <= 10f32.powf(CEILING_DBFS as f32 / 20.0) * (1.0 + 1e-5), "peak {peak}");

        let mut down = input.clone();
        loudness_stage(&mut down, start - 12.0).unwrap();
        let gain = 10f32.powf(-12.0 / 20.0);
        let worst = down.channels[0].iter().zip(&input.channels[0]).fold(0.0f32, |m, (y, x)| m.max((y - gain * x).abs()));
        assert!(worst < 1e-5, "off a plain gain by {worst}");
    }

    /// The limiter's loudness predicted without rendering is within 0.2 LU of what the meter
    /// reads on the rendered `gain,limiter` (the independent expectation) from no limiting to
    /// 15 dB into the limiter, on a drum groove (sharp transients) and on sustained tones, at
    /// 44.1 and 48 kHz; so the stage renders once on such material.
    #[test]
    fn the_limited_loudness_is_predicted_without_rendering() {
        let groove = |rate| crate::example::groove(6.0, rate, 2, 3);
        let tones = |_| {
            let mut audio = harmonic(110.0, 6.0, 5);
            audio.channels.iter_mut().flatten().for_each(|x| *x *= 4.0);
            audio
        };
        let makers: [(&str, &dyn Fn(u32) -> Audio); 2] = [("groove", &groove), ("tones", &tones)];
        for (name, make) in makers {
            for rate in [44_100, 48_000] {
                let audio = make(rate);
                let rate = audio.sample_rate;
                let start = audible_loudness(&audio.channels, rate, "x").unwrap();
                let peak_db = 20.0 * f64::from(audio.channels.iter().flatten().fold(0.0f32, |p, x| p.max(x.abs()))).log10();
                let model = LimitedLoudness::new(&audio.channels, rate, CEILING_DBFS, 60.0, start);
                let mut measured_at = Vec::new();
                for into_limiter_db in [-3.0, 0.0, 3.0, 8.0, 15.0] {
                    let gain_db = CEILING_DBFS - peak_db + into_limiter_db;
                    let mut knobs = ChainKnobs::defaults("gain,limiter".parse().unwrap());
                    knobs.set("gain.gain_db", gain_db).unwrap();
                    knobs.set("limiter.ceiling_db", CEILING_DBFS).unwrap();
                    let rendered = through(&audio, &knobs);
                    let measured = audible_loudness(&rendered.channels, rate, "y").unwrap();
                    let predicted = model.lufs(gain_db).unwrap();
                    assert!((predicted - measured).abs() < 0.2, "{name} at {rate} Hz, {into_limiter_db} dB in: {predicted} vs {measured}");
                    measured_at.push(measured);
                }
                // A loudness the stage can reach (what 8 dB into the limiter gave): one render.
                let leveled = loudness_stage(&mut audio.clone(), measured_at[3]).unwrap();
                assert_eq!(leveled.passes, 1, "{name} at {rate} Hz");
            }
        }
    }
}
