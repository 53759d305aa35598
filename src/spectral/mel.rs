//! Mel filterbanks as librosa builds them by default: `librosa.filters.mel(sr, n_fft,
//! n_mels=128, fmin=0, fmax=sr/2, htk=False, norm="slaney")` (librosa/librosa,
//! `librosa/filters.py` and `librosa/core/convert.py`), the bank auraloss's `MelSTFTLoss` uses.
//!
//! Slaney's mel scale is linear below 1 kHz and logarithmic above:
//! `mel(f) = f / (200/3)` for `f < 1000 Hz`, `mel(f) = 15 + ln(f/1000) / (ln 6.4 / 27)` above.
//! The `n_mels + 2` edge frequencies `f_0 … f_{n+1}` are equally spaced in mel between `fmin` and
//! `fmax`; filter `m` is the triangle rising from `f_m` to 1 at `f_{m+1}` and falling to `f_{m+2}`,
//! sampled at the FFT bin frequencies `k·sr/n_fft`, then scaled by `2 / (f_{m+2} − f_m)`
//! (Slaney's area normalisation: every triangle has area 1 in Hz).

/// Hz to mel on Slaney's scale (librosa `hz_to_mel(htk=False)`).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ { MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step() } else { hz / HZ_PER_MEL }
}

/// Mel to Hz on Slaney's scale (librosa `mel_to_hz(htk=False)`).
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL { MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp() } else { HZ_PER_MEL * mel }
}

const HZ_PER_MEL: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / HZ_PER_MEL;

/// The step of `ln f` per mel above 1 kHz: `ln(6.4) / 27`.
fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// A mel filterbank, stored sparsely: each filter's non-zero weights and the bin they start at.
#[derive(Clone, Debug)]
pub struct MelFilterbank {
    num_bins: usize,
    filters: Vec<Filter>,
}

#[derive(Clone, Debug)]
struct Filter {
    first_bin: usize,
    weights: Vec<f64>,
}

impl MelFilterbank {
    /// librosa's default bank: 128 filters from 0 Hz to `sample_rate / 2`.
    pub fn librosa_default(sample_rate: f64, n_fft: usize) -> Self {
        Self::new(sample_rate, n_fft, 128, 0.0, sample_rate / 2.0)
    }

    /// `n_mels` Slaney-normalised filters between `fmin_hz` and `fmax_hz` for an FFT of `n_fft`.
    pub fn new(sample_rate: f64, n_fft: usize, n_mels: usize, fmin_hz: f64, fmax_hz: f64) -> Self {
        let num_bins = n_fft / 2 + 1;
        let (mel_lo, mel_hi) = (hz_to_mel(fmin_hz), hz_to_mel(fmax_hz));
        let edges: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_mels + 1) as f64)).collect();
        let bin_hz = sample_rate / n_fft as f64;
        let filters = edges
            .windows(3)
            .map(|e| {
                let (lo, centre, hi) = (e[0], e[1], e[2]);
                let area_norm = 2.0 / (hi - lo);
                let weight = |k: usize| {
                    let f = k as f64 * bin_hz;
                    ((f - lo) / (centre - lo)).min((hi - f) / (hi - centre)).max(0.0) * area_norm
                };
                let first_bin = ((lo / bin_hz) as usize..num_bins).find(|&k| weight(k) > 0.0).unwrap_or(num_bins);
                let weights: Vec<f64> = (first_bin..num_bins).map(weight).take_while(|&w| w > 0.0).collect();
                Filter { first_bin, weights }
            })
            .collect();
        Self { num_bins, filters }
    }

    pub fn num_mels(&self) -> usize {
        self.filters.len()
    }

    /// FFT bins per frame this bank expects, `n_fft/2 + 1`.
    pub fn num_bins(&self) -> usize {
        self.num_bins
    }

    /// Filter `m` as a dense row of `num_bins` weights.
    pub fn row(&self, m: usize) -> Vec<f64> {
        let filter = &self.filters[m];
        let mut row = vec![0.0; self.num_bins];
        row[filter.first_bin..filter.first_bin + filter.weights.len()].copy_from_slice(&filter.weights);
        row
    }

    /// `out[m] = Σ_k W[m][k] · spectrum[k]` for one frame.
    ///
    /// # Panics
    /// If `spectrum` does not have `num_bins` values or `out` `num_mels`.
    pub fn apply(&self, spectrum: &[f64], out: &mut [f64]) {
        assert_eq!(spectrum.len(), self.num_bins, "mel filterbank input length");
        assert_eq!(out.len(), self.filters.len(), "mel filterbank output length");
        for (o, filter) in out.iter_mut().zip(&self.filters) {
            let bins = &spectrum[filter.first_bin..filter.first_bin + filter.weights.len()];
            *o = bins.iter().zip(&filter.weights).map(|(s, w)| s * w).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slaney's centre frequencies written out independently: equal mel steps, then back to Hz.
    fn slaney_centres(n_mels: usize, fmax: f64) -> Vec<f64> {
        let to_mel = |f: f64| if f < 1000.0 { 3.0 * f / 200.0 } else { 15.0 + 27.0 * (f / 1000.0).ln() / 6.4f64.ln() };
        let to_hz = |m: f64| if m < 15.0 { 200.0 * m / 3.0 } else { 1000.0 * 6.4f64.powf((m - 15.0) / 27.0) };
        let top = to_mel(fmax);
        (0..n_mels + 2).map(|i| to_hz(top * i as f64 / (n_mels + 1) as f64)).collect()
    }

    #[test]
    fn scale_round_trips_and_is_continuous_at_1khz() {
        for f in [0.0, 50.0, 999.0, 1000.0, 1001.0, 8000.0, 22050.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-9 * f.max(1.0), "{f}");
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(1000.0 - 1e-9) - 15.0).abs() < 1e-9);
        assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-12);
    }

    #[test]
    fn filters_are_triangles_peaking_at_slaney_centres_with_unit_area() {
        let (sr, n_fft, n_mels) = (44100.0, 65536, 128);
        let bank = MelFilterbank::librosa_default(sr, n_fft);
        let edges = slaney_centres(n_mels, sr / 2.0);
        let bin_hz = sr / n_fft as f64;
        assert_eq!(bank.num_mels(), n_mels);
        for m in 0..n_mels {
            let row = bank.row(m);
            let (lo, centre, hi) = (edges[m], edges[m + 1], edges[m + 2]);
            let peak_bin = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            assert!((peak_bin as f64 * bin_hz - centre).abs() <= bin_hz, "filter {m} peaks off centre");
            let height = 2.0 / (hi - lo);
            assert!(row[peak_bin] <= height * (1.0 + 1e-12) && row[peak_bin] > 0.9 * height, "filter {m} height");
            for (k, &w) in row.iter().enumerate() {
                let f = k as f64 * bin_hz;
                if f <= lo || f >= hi {
                    assert!(w < 1e-12 * height, "filter {m} leaks at {f} Hz");
                }
            }
            let area = row.iter().sum::<f64>() * bin_hz;
            assert!((area - 1.0).abs() < 0.01, "filter {m}: area {area}");
        }
    }

    #[test]
    fn apply_is_the_matrix_product() {
        let bank = MelFilterbank::new(16000.0, 512, 40, 100.0, 7000.0);
        let spectrum: Vec<f64> = (0..bank.num_bins()).map(|k| (k as f64 * 0.37).sin().abs()).collect();
        let mut out = vec![0.0; 40];
        bank.apply(&spectrum, &mut out);
        for (m, &o) in out.iter().enumerate() {
            let dense: f64 = bank.row(m).iter().zip(&spectrum).map(|(w, s)| w * s).sum();
            assert!((o - dense).abs() < 1e-12);
        }
    }
}
