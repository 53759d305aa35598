#!/usr/bin/env python3
"""Cross-check `afx analyze` against the Python metrics of the DeepAFx-ST evaluation.

For each (estimate, target) WAV pair, run `AFX analyze --estimate E --target T --json` and
recompute every metric with the reference libraries, set up as DeepAFx-ST's
`scripts/eval_style.py` and `deepafx_st/metrics.py` set them up:

  mrstft             auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[32, 128, ..., 32768],
                     hop_sizes=fft/2, win_lengths=fft, w_sc=0, w_phs=0, w_lin_mag=1,
                     w_log_mag=1) on tensors shaped (1, channels, T)
  mel_distance       auraloss.freq.MelSTFTLoss(sr, fft_size=hop_size=win_length=65536,
                     n_mels=128, w_sc=0, w_log_mag=1, w_lin_mag=1); shown as "-" where auraloss
                     raises (T <= 32768: torch.stft cannot reflect-pad by 32768)
  centroid_error_hz  |mean c(e + 1e-16) - mean c(t + 1e-16)|, c = torchaudio
                     SpectralCentroid(sr, n_fft=2048, hop_length=512), mean over channels+frames
  rms_error_db       |20 log10 rms(e) - 20 log10 rms(t)| (rms clamped at 1e-8), mean over
                     channels. afx's definition; DeepAFx-ST's RMSEnergyError uses 20 ln, which is
                     ln(10) = 2.303 times larger.
  crest_factor_error_db
                     |cf(e) - cf(t)|, cf = 20 log10(max(peak, 1e-8) / max(rms, 1e-8)), mean over
                     channels (afx's definition; DeepAFx-ST's CrestFactorError uses 20 ln).
  loudness_error_lu, loudness_bias_lu
                     pyloudnorm Meter(sr).integrated_loudness(x), x shaped (T, channels):
                     |I(e) - I(t)| and I(e) - I(t). pyloudnorm's default filter approximates
                     the BS.1770 K-weighting (RBJ shelf at 1500 Hz, 38 Hz high-pass) and it
                     counts a final partial gating block, so it differs from libebur128 (and
                     afx) by up to a few 0.01 LU: these two rows get an absolute tolerance of
                     0.05 LU by default.
  loudness_bias_lu[bs1770]
                     the same with pyloudnorm's filter_class="DeMan" (the exact BS.1770 / libebur128
                     coefficients) on the signals truncated to whole 100 ms steps (whole gating
                     blocks only, as libebur128): should match afx to rounding.

Both recordings are truncated to the shorter length, as afx does. The torch metrics run in
float64 with float64 windows and mel bank, which isolates afx's arithmetic; --float32 runs them
as DeepAFx-ST did (float32 tensors, auraloss's float32 windows and librosa's float32 mel bank).

A value fails when |afx - python| > atol + rtol * |python|. Defaults: rtol 1e-6 (1e-4 with
--float32), atol 1e-9 (0.01 Hz for the centroid with --float32; 0.05 LU for the two
pyloudnorm-default loudness rows); override per metric with --tol METRIC=ATOL.

Usage:
  crosscheck_metrics.py --afx ./afx EST1.wav TGT1.wav [EST2.wav TGT2.wav ...]
  crosscheck_metrics.py --afx ./afx [--keep DIR]   # no pairs: generate 14 with afx example/apply

Exit status: 0 all within tolerance, 1 some value outside it, 2 error.
Needs numpy, soundfile, torch, torchaudio, auraloss, librosa, pyloudnorm.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import auraloss
import librosa
import numpy as np
import pyloudnorm
import soundfile as sf
import torch
import torchaudio

FFT_SIZES = [32, 128, 512, 2048, 8192, 32768]
# (row label, afx JSON key)
ROWS = [("mrstft", "mrstft"), ("mel_distance", "mel_distance"),
        ("centroid_error_hz", "centroid_error_hz"), ("rms_error_db", "rms_error_db"),
        ("crest_factor_error_db", "crest_factor_error_db"),
        ("loudness_error_lu", "loudness_error_lu"), ("loudness_bias_lu", "loudness_bias_lu"),
        ("loudness_bias_lu[bs1770]", "loudness_bias_lu")]


def python_metrics(est: np.ndarray, tgt: np.ndarray, sr: int, float32: bool) -> dict:
    """Reference metrics of two float arrays shaped (channels, T)."""
    dtype = torch.float32 if float32 else torch.float64
    e, t = torch.from_numpy(est).to(dtype), torch.from_numpy(tgt).to(dtype)
    out = {}
    with torch.no_grad():
        mrstft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=FFT_SIZES, hop_sizes=[n // 2 for n in FFT_SIZES], win_lengths=FFT_SIZES,
            w_sc=0.0, w_phs=0.0, w_lin_mag=1.0, w_log_mag=1.0)
        if not float32:  # auraloss builds float32 windows
            for loss in mrstft.stft_losses:
                loss.window = torch.hann_window(loss.win_length, dtype=dtype)
        out["mrstft"] = float(mrstft(e[None], t[None]))

        mel = auraloss.freq.MelSTFTLoss(sr, fft_size=65536, hop_size=65536, win_length=65536,
                                        n_mels=128, w_sc=0, w_log_mag=1, w_lin_mag=1)
        if not float32:
            mel.window = torch.hann_window(65536, dtype=dtype)
            mel.fb = torch.from_numpy(
                librosa.filters.mel(sr=sr, n_fft=65536, n_mels=128, dtype=np.float64))[None]
        try:
            out["mel_distance"] = float(mel(e[None], t[None]))
        except RuntimeError:  # reflect padding by 32768 needs T > 32768
            out["mel_distance"] = None

        centroid = torchaudio.transforms.SpectralCentroid(
            sr, n_fft=2048, hop_length=512, wkwargs={"dtype": dtype})
        out["centroid_error_hz"] = abs(float(centroid(e + 1e-16).mean() - centroid(t + 1e-16).mean()))

    e64, t64 = est.astype(np.float64), tgt.astype(np.float64)
    db = lambda v: 20.0 * np.log10(np.maximum(v, 1e-8))
    rms = lambda x: np.sqrt(np.mean(x ** 2, axis=-1))
    crest = lambda x: db(np.max(np.abs(x), axis=-1)) - db(rms(x))
    out["rms_error_db"] = float(np.mean(np.abs(db(rms(e64)) - db(rms(t64)))))
    out["crest_factor_error_db"] = float(np.mean(np.abs(crest(e64) - crest(t64))))

    meter = pyloudnorm.Meter(sr)
    bias = meter.integrated_loudness(e64.T) - meter.integrated_loudness(t64.T)
    out["loudness_error_lu"], out["loudness_bias_lu"] = abs(bias), bias
    whole = e64.shape[1] // ((sr + 5) // 10) * ((sr + 5) // 10)
    exact = pyloudnorm.Meter(sr, filter_class="DeMan")
    out["loudness_bias_lu[bs1770]"] = (exact.integrated_loudness(e64[:, :whole].T)
                                       - exact.integrated_loudness(t64[:, :whole].T))
    return out


def afx_metrics(afx: str, est: Path, tgt: Path) -> dict:
    cmd = [afx, "analyze", "--estimate", str(est), "--target", str(tgt), "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def read_pair(est: Path, tgt: Path):
    """Both files as float32 (channels, T), truncated to the shorter one, and the rate."""
    (e, sr), (t, sr_t) = (sf.read(p, dtype="float32", always_2d=True) for p in (est, tgt))
    if sr != sr_t or e.shape[1] != t.shape[1]:
        raise ValueError(f"{est} / {tgt}: sample rates or channel counts differ")
    n = min(len(e), len(t))
    return np.ascontiguousarray(e[:n].T), np.ascontiguousarray(t[:n].T), sr


# name, samples, rate, channels, estimate and target recipes: (seed, style or None, knob settings)
DEFAULT_PAIRS = [
    ("eq+comp", 131072, 24000, 1, (1, None, ["eq.band2.gain_db=6", "comp.threshold_db=-30"]), (1, None, [])),
    ("small_eq", 131072, 24000, 1, (2, None, ["eq.band3.gain_db=1"]), (2, None, [])),
    ("gain_-10dB", 131072, 24000, 1, (3, None, ["comp.ratio=1", "comp.threshold_db=0", "comp.makeup_db=-10"]), (3, None, [])),
    ("heavy_comp", 131072, 24000, 1, (4, None, ["comp.threshold_db=-40", "comp.ratio=8", "comp.makeup_db=12"]), (4, None, [])),
    ("low_shelf", 131072, 24000, 1, (5, None, ["eq.low_shelf.gain_db=12"]), (5, None, [])),
    ("tel_vs_bright", 131072, 24000, 1, (6, "telephone", []), (6, "bright", [])),
    ("warm_vs_bcast", 131072, 24000, 1, (7, "warm", []), (7, "broadcast", [])),
    ("half_65536", 65536, 24000, 1, (14, None, ["eq.band1.gain_db=4", "comp.threshold_db=-25"]), (14, None, [])),
    ("44k_hshelf", 131072, 44100, 1, (8, None, ["eq.high_shelf.gain_db=-10"]), (8, None, [])),
    ("44k_st_comp", 132300, 44100, 2, (9, None, ["comp.threshold_db=-35", "comp.ratio=4"]), (9, None, [])),
    ("24k_st_neutral", 131072, 24000, 2, (10, "neutral", []), (10, None, [])),
    ("48k_st_tel_warm", 144000, 48000, 2, (11, "telephone", []), (11, "warm", [])),
    ("short_48000", 48000, 24000, 1, (12, None, ["eq.band1.gain_db=-8"]), (12, None, [])),
    ("short_30000", 30000, 24000, 1, (13, None, ["eq.band1.gain_db=-8"]), (13, None, [])),
]


def generate_pairs(afx: str, workdir: Path):
    """Writes DEFAULT_PAIRS with `afx example` and `afx apply`; returns (name, est, tgt) paths."""
    def afx_run(*args):
        subprocess.run([afx, *args], check=True, capture_output=True)

    pairs = []
    for name, n, sr, channels, *recipes in DEFAULT_PAIRS:
        paths = []
        for role, (seed, style, knobs) in zip(("est", "tgt"), recipes):
            path = workdir / f"{name}_{role}.wav"
            source = workdir / f"{name}_{role}_source.wav" if knobs else path
            afx_run("example", "--output", str(source), "--seconds", f"{(n + 0.25) / sr:.9f}",
                    "--sample-rate", str(sr), "--channels", str(channels), "--seed", str(seed),
                    *(["--style", style] if style else []))
            if knobs:
                afx_run("apply", "--input", str(source), "--output", str(path),
                        *[arg for knob in knobs for arg in ("--set", knob)])
            paths.append(path)
        pairs.append((name, *paths))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--afx", required=True, help="path of the afx binary")
    parser.add_argument("wavs", nargs="*", help="ESTIMATE TARGET [ESTIMATE TARGET ...]")
    parser.add_argument("--float32", action="store_true", help="torch metrics in float32, as DeepAFx-ST")
    parser.add_argument("--rtol", type=float, help="relative tolerance (default 1e-6; 1e-4 with --float32)")
    parser.add_argument("--tol", action="append", default=[], metavar="METRIC=ATOL",
                        help="absolute tolerance of one row, e.g. loudness_bias_lu=0.1")
    parser.add_argument("--keep", metavar="DIR", help="write generated pairs to DIR and keep them")
    args = parser.parse_args()
    if len(args.wavs) % 2:
        parser.error("give the WAV files as estimate/target pairs")
    rtol = args.rtol if args.rtol is not None else (1e-4 if args.float32 else 1e-6)
    atol = {label: 1e-9 for label, _ in ROWS}
    atol.update(loudness_error_lu=0.05, loudness_bias_lu=0.05)
    if args.float32:
        atol["centroid_error_hz"] = 1e-2
    for item in args.tol:
        label, _, value = item.partition("=")
        if label not in atol:
            parser.error(f"unknown metric {label!r}; one of {list(atol)}")
        atol[label] = float(value)

    with tempfile.TemporaryDirectory(prefix="afx_xcheck_") as tmp:
        if args.wavs:
            wavs = [Path(w) for w in args.wavs]
            pairs = [(e.stem, e, t) for e, t in zip(wavs[::2], wavs[1::2])]
        else:
            workdir = Path(args.keep or tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            pairs = generate_pairs(args.afx, workdir)

        failures, width = 0, max(len(name) for name, _, _ in pairs)
        print(f"{'pair':<{width}} {'ch':>2} {'rate':>5} {'samples':>7}  {'metric':<24} {'afx':>13}"
              f" {'python':>13} {'abs diff':>8} {'rel diff':>8}")
        for name, est, tgt in pairs:
            e, t, sr = read_pair(est, tgt)
            ours, ref = afx_metrics(args.afx, est, tgt), python_metrics(e, t, sr, args.float32)
            head = f"{name:<{width}} {e.shape[0]:>2} {sr:>5} {e.shape[1]:>7}  "
            for label, key in ROWS:
                a, b = ours[key], ref[label]
                if b is None:
                    print(f"{head}{label:<24} {a:>13.7g} {'(fails)':>13}")
                    continue
                diff = abs(a - b)
                rel = diff / abs(b) if b else (float("inf") if diff else 0.0)
                bad = diff > atol[label] + rtol * abs(b)
                failures += bad
                print(f"{head}{label:<24} {a:>13.7g} {b:>13.7g} {diff:>8.1e} {rel:>8.1e}"
                      + ("  FAIL" if bad else ""))
    print(f"{failures} value(s) outside tolerance (rtol {rtol:g})")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (subprocess.CalledProcessError, sf.SoundFileError, ValueError, OSError, KeyError) as err:
        detail = getattr(err, "stderr", None)
        print(f"error: {err}" + (f"\n{detail}" if detail else ""), file=sys.stderr)
        sys.exit(2)
