//! Drives the `afx` binary end to end on generated audio.

use std::path::Path;
use std::process::{Command, Output};

fn afx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_afx")).args(args).output().expect("run afx")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_wav(path: &Path) -> (u32, u16, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    (spec.sample_rate, spec.channels, r.samples::<f32>().map(Result::unwrap).collect())
}

fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    samples.iter().for_each(|s| w.write_sample(*s).unwrap());
    w.finalize().unwrap();
}

#[test]
fn example_apply_analyze_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    let output = dir.path().join("out.wav");
    let o = afx(&["example", "--output", input.to_str().unwrap(), "--seconds", "2", "--sample-rate", "48000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Neutral EQ, ratio 1 and +6 dB make-up: the chain is exactly a gain of 10^(6/20).
    let knobs = dir.path().join("knobs.json");
    std::fs::write(&knobs, r#"{"comp.ratio": 1.0, "comp.makeup_db": 6.0}"#).unwrap();
    let o = afx(&["apply", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap(), "--params", knobs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (rate_in, ch_in, x) = read_wav(&input);
    let (rate_out, ch_out, y) = read_wav(&output);
    assert_eq!((rate_in, ch_in), (48_000, 2));
    assert_eq!((rate_out, ch_out, y.len()), (48_000, 2, x.len()));
    let g = 10f32.powf(6.0 / 20.0);
    for (a, b) in x.iter().zip(&y) {
        assert!((a * g - b).abs() < 1e-5, "{a} -> {b}");
    }
    // analyze reports the 6 dB level difference in RMS and loudness.
    let o = afx(&["analyze", "--estimate", output.to_str().unwrap(), "--target", input.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!((m["rms_error_db"].as_f64().unwrap() - 6.0).abs() < 1e-3, "{m}");
    assert!((m["loudness_error_lu"].as_f64().unwrap() - 6.0).abs() < 0.01, "{m}");
    // The estimate is the louder one: a positive difference.
    assert!((m["loudness_bias_lu"].as_f64().unwrap() - 6.0).abs() < 0.01, "{m}");
    assert!(m["crest_factor_error_db"].as_f64().unwrap() < 1e-3, "{m}");
    // A gain moves no frame's centroid (up to the rounding of the f32 samples).
    assert!(m["centroid_bias_hz"].as_f64().unwrap().abs() < 0.01, "{m}");
}

#[test]
fn set_overrides_and_16_bit_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    let output = dir.path().join("out.wav");
    assert!(afx(&["example", "--output", input.to_str().unwrap(), "--seconds", "1", "--channels", "1"]).status.success());
    let o = afx(&[
        "apply",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--set",
        "comp.threshold_db=-30",
        "--set",
        "comp.ratio=8",
        "--format",
        "i16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = hound::WavReader::open(&output).unwrap();
    assert_eq!((r.spec().bits_per_sample, r.spec().channels), (16, 1));
}

#[test]
fn params_lists_every_knob() {
    let o = afx(&["params", "--json"]);
    assert!(o.status.success());
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.len(), afx::fx::NUM_KNOBS);
    let ratio = list.iter().find(|k| k["name"] == "comp.ratio").unwrap();
    assert_eq!((ratio["min"].as_f64(), ratio["max"].as_f64(), ratio["default"].as_f64()), (Some(1.0), Some(20.0), Some(2.0)));
    let table = String::from_utf8(afx(&["params"]).stdout).unwrap();
    assert!(table.contains("eq.high_shelf.freq_hz") && table.contains("12000"));
}

/// Every bad input gives a non-zero exit, one line on stderr naming the problem, and no output.
#[test]
fn bad_inputs_fail_cleanly_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.wav");
    assert!(afx(&["example", "--output", good.to_str().unwrap(), "--seconds", "1"]).status.success());
    let silent = dir.path().join("silent.wav");
    write_wav(&silent, 44_100, 1, &vec![0.0; 44_100]);
    let nan = dir.path().join("nan.wav");
    write_wav(&nan, 44_100, 1, &[0.1, f32::NAN, 0.2, 0.3]);
    let empty = dir.path().join("empty.wav");
    write_wav(&empty, 44_100, 2, &[]);
    let corrupt = dir.path().join("corrupt.wav");
    std::fs::write(&corrupt, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
    let low_rate = dir.path().join("low.wav");
    write_wav(&low_rate, 4_000, 1, &(0..4000).map(|n| (n as f32 * 0.1).sin()).collect::<Vec<_>>());
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, r#"{"eq.band9.gain_db": 1}"#).unwrap();
    let out = dir.path().join("out.wav");
    let (g, o) = (good.to_str().unwrap(), out.to_str().unwrap());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["apply", "--input", silent.to_str().unwrap(), "--output", o], "silent"),
        (vec!["apply", "--input", nan.to_str().unwrap(), "--output", o], "non-finite"),
        (vec!["apply", "--input", empty.to_str().unwrap(), "--output", o], "empty.wav"),
        (vec!["apply", "--input", corrupt.to_str().unwrap(), "--output", o], "corrupt.wav"),
        (vec!["apply", "--input", "/no/such/file.wav", "--output", o], "file.wav"),
        (vec!["apply", "--input", low_rate.to_str().unwrap(), "--output", o], "4000 Hz"),
        (vec!["apply", "--input", g, "--output", o, "--set", "comp.attack_ms=0"], "comp.attack_ms"),
        (vec!["apply", "--input", g, "--output", o, "--set", "eq.band1.q=nan"], "eq.band1.q"),
        (vec!["apply", "--input", g, "--output", o, "--set", "comp.knee"], "NAME=VALUE"),
        (vec!["apply", "--input", g, "--output", o, "--params", bad_json.to_str().unwrap()], "eq.band9.gain_db"),
        (vec!["apply", "--input", g, "--output", o, "--chain", "hpf,reverb"], "unknown effect `reverb`"),
        (vec!["apply", "--input", g, "--output", o, "--chain", "hpf,,eq"], "empty"),
        (vec!["apply", "--input", g, "--output", o, "--chain", "hpf", "--set", "comp.ratio=2"], "not in the chain"),
        (vec!["apply", "--input", g, "--output", o, "--set", "comp.ratio=2", "--set", "comp.ratio=3"], "more than once"),
        (vec!["apply", "--input", g, "--output", o, "--chain", "eq,eq", "--set", "eq.band1.gain_db=2"], "not in the chain"),
        (vec!["apply", "--input", g, "--output", o, "--chain", "hpf", "--set", "hpf.slope_db=18"], "hpf.slope_db"),
        (vec!["params", "--chain", "eq,fuzz"], "unknown effect `fuzz`"),
        (vec!["analyze", "--estimate", g, "--target", silent.to_str().unwrap()], "silent"),
    ];
    for (args, needle) in cases {
        let r = afx(&args);
        let err = stderr(&r);
        assert!(!r.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains(needle), "{args:?}: `{err}` does not mention `{needle}`");
        assert!(!out.exists(), "{args:?} left an output file");
    }
}

/// `--chain` on `params` and `apply`: the knobs of a chain with repeats, a knob file that names
/// its chain and renders the same without `--chain`, and a file of another chain refused.
#[test]
fn chains_are_chosen_on_the_command_line_and_recorded_in_knob_files() {
    let o = afx(&["params", "--chain", "hpf,eq,comp,eq,limiter", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = list.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3 + 18 + 6 + 18 + 2);
    assert_eq!(names[0], "hpf.freq_hz");
    assert!(names.contains(&"eq1.band2.gain_db") && names.contains(&"eq2.band2.gain_db") && names.contains(&"limiter.ceiling_db"));
    for k in &list {
        for field in ["name", "unit", "min", "max", "default", "skew", "description"] {
            assert!(!k[field].is_null(), "{k} lacks {field}");
        }
    }
    let effects = String::from_utf8(afx(&["params", "--effects"]).stdout).unwrap();
    for name in ["eq", "comp", "gain", "hpf", "lpf", "width", "limiter", "gate", "saturate", "multiband", "tilt"] {
        assert!(effects.lines().any(|l| l.starts_with(name)), "{name} missing from\n{effects}");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (input, first, second, knobs) = (path("in.wav"), path("first.wav"), path("second.wav"), path("knobs.json"));
    assert!(afx(&["example", "--output", &input, "--seconds", "1"]).status.success());
    let chain = "hpf,gain,limiter";
    let set = ["--set", "hpf.freq_hz=200", "--set", "gain.gain_db=18", "--set", "limiter.ceiling_db=-6"];
    let mut args = vec!["apply", "--input", &input, "--output", &first, "--chain", chain];
    args.extend(set);
    let o = afx(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // The limiter holds the 18 dB boost under its ceiling.
    let (_, _, samples) = read_wav(Path::new(&first));
    let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak <= 10f32.powf(-6.0 / 20.0) && peak > 0.4, "peak {peak}");
    // The same knobs written as a file render the same without --chain.
    let file = serde_json::json!({ "chain": chain, "knobs": { "hpf.freq_hz": 200, "gain.gain_db": 18, "limiter.ceiling_db": -6 } });
    std::fs::write(&knobs, file.to_string()).unwrap();
    let o = afx(&["apply", "--input", &input, "--output", &second, "--params", &knobs]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_wav(Path::new(&first)), read_wav(Path::new(&second)));
    let o = afx(&["apply", "--input", &input, "--output", &path("third.wav"), "--params", &knobs, "--chain", "eq,comp"]);
    assert!(!o.status.success() && stderr(&o).contains("hpf,gain,limiter"), "{}", stderr(&o));
    // Latency is compensated in files: saturate's dry path (63 samples behind) and a limiter
    // that never acts (2 ms behind) give back the input sample for sample.
    let dry = path("dry.wav");
    let args = ["apply", "--input", &input, "--output", &dry, "--chain", "saturate,limiter", "--set", "saturate.mix_pct=0"];
    let o = afx(&[&args[..], &["--set", "limiter.ceiling_db=0"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let ((_, _, original), (_, _, rendered)) = (read_wav(Path::new(&input)), read_wav(Path::new(&dry)));
    assert_eq!(original.len(), rendered.len());
    let worst = original.iter().zip(&rendered).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "the dry render differs from the input by {worst}");
}

#[test]
fn refuses_to_overwrite_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    assert!(afx(&["example", "--output", input.to_str().unwrap(), "--seconds", "1"]).status.success());
    let before = std::fs::read(&input).unwrap();
    let r = afx(&["apply", "--input", input.to_str().unwrap(), "--output", input.to_str().unwrap(), "--set", "comp.ratio=10"]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("refusing"));
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn styles_list_and_draw_knob_files_apply_reads() {
    let list = String::from_utf8(afx(&["styles"]).stdout).unwrap();
    for name in ["broadcast", "telephone", "neutral", "bright", "warm"] {
        assert!(list.contains(name), "{name} missing from\n{list}");
    }
    let dir = tempfile::tempdir().unwrap();
    let knobs = dir.path().join("telephone.json");
    let o = afx(&["styles", "--sample", "telephone", "--seed", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(&knobs, &o.stdout).unwrap();
    let drawn: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Telephone cuts the low shelf by 20–24 dB (the paper's 20–26, clamped to our range).
    assert_eq!(drawn["chain"], "eq,comp");
    let low = drawn["knobs"]["eq.low_shelf.gain_db"].as_f64().unwrap();
    assert!((-24.0..=-20.0).contains(&low), "{low}");
    assert_eq!(afx(&["styles", "--sample", "telephone", "--seed", "3"]).stdout, o.stdout);
    let input = dir.path().join("in.wav");
    let output = dir.path().join("out.wav");
    assert!(afx(&["example", "--output", input.to_str().unwrap(), "--seconds", "1"]).status.success());
    let r = afx(&["apply", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap(), "--params", knobs.to_str().unwrap()]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = afx(&["styles", "--sample", "lofi"]);
    assert!(!r.status.success() && stderr(&r).contains("unknown style `lofi`"));
}

/// The README's main job: transfer between generated recordings with the bundled model, the
/// knobs saved and replayed through `afx apply`, and the errors a user meets.
#[test]
fn transfer_with_the_bundled_model_and_replay_its_knobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (input, reference, output, knobs, replay) =
        (path("in.wav"), path("ref.wav"), path("out.wav"), path("knobs.json"), path("replay.wav"));
    assert!(afx(&["example", "--output", &input, "--seconds", "3", "--sample-rate", "44100"]).status.success());
    let o = afx(&[
        "example",
        "--output",
        &reference,
        "--seconds",
        "2",
        "--sample-rate",
        "22050",
        "--channels",
        "1",
        "--seed",
        "4",
        "--style",
        "telephone",
    ]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("telephone style"), "{}", stderr(&o));

    let o = afx(&["transfer", "--input", &input, "--reference", &reference, "--output", &output, "--params-out", &knobs]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(printed.contains("comp.threshold_db") && printed.contains("eq.band1.freq_hz"), "{printed}");
    let (rate, channels, samples) = read_wav(Path::new(&output));
    let (_, _, original) = read_wav(Path::new(&input));
    assert_eq!((rate, channels, samples.len()), (44_100, 2, original.len()));

    let o = afx(&["apply", "--input", &input, "--params", &knobs, "--output", &replay]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, _, replayed) = read_wav(Path::new(&replay));
    let peak = samples.iter().fold(0.0f32, |p, x| p.max(x.abs()));
    let worst = samples.iter().zip(&replayed).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 1e-4 * peak, "replayed knobs differ by {worst}");

    // A damaged model file, an input as output, and an unreadable reference are one-line errors.
    let bad_model = path("bad.afx");
    std::fs::write(&bad_model, b"AFXM not really a model").unwrap();
    let o = afx(&["transfer", "--input", &input, "--reference", &reference, "--output", &path("x.wav"), "--model", &bad_model]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("model file") && stderr(&o).lines().count() == 1, "{}", stderr(&o));
    let o = afx(&["transfer", "--input", &input, "--reference", &reference, "--output", &reference]);
    assert!(!o.status.success() && stderr(&o).contains("refusing to overwrite"), "{}", stderr(&o));
    std::fs::write(path("junk.wav"), b"RIFF....WAVEjunk").unwrap();
    let o = afx(&["transfer", "--input", &input, "--reference", &path("junk.wav"), "--output", &path("y.wav")]);
    assert!(!o.status.success() && stderr(&o).contains("junk.wav"), "{}", stderr(&o));
    assert!(!Path::new(&path("x.wav")).exists() && !Path::new(&path("y.wav")).exists());

    // A limiter after the model's chain: its knob file names the whole chain and replays it.
    let (limited, limited_knobs) = (path("limited.wav"), path("limited.json"));
    let o = afx(&[
        "transfer",
        "--input",
        &input,
        "--reference",
        &reference,
        "--output",
        &limited,
        "--params-out",
        &limited_knobs,
        "--chain",
        "eq,comp,limiter",
        "--set",
        "limiter.ceiling_db=-2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The loudness stage's limiter (at −1 dBFS) comes first, then the one asked for.
    let printed = String::from_utf8_lossy(&o.stdout);
    let ceiling = printed.lines().find(|l| l.starts_with("limiter2.ceiling_db")).unwrap_or_else(|| panic!("{printed}"));
    assert!(ceiling.contains("-2.00"), "{ceiling}");
    let o = afx(&["apply", "--input", &input, "--params", &limited_knobs, "--output", &replay]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, _, limited) = read_wav(Path::new(&limited));
    let (_, _, replayed) = read_wav(Path::new(&replay));
    let peak = limited.iter().fold(0.0f32, |p, x| p.max(x.abs()));
    assert!(peak <= 10f32.powf(-0.1) * (1.0 + 1e-5), "peak {peak} over −2 dBFS");
    assert!(limited.iter().zip(&replayed).all(|(a, b)| (a - b).abs() < 1e-4 * peak));
    for (chain, set, needle) in [
        ("limiter,eq,comp", "limiter.ceiling_db=-2", "must begin with the model's chain"),
        ("eq,comp,limitr", "comp.ratio=2", "unknown effect `limitr`"),
        ("eq,comp", "limiter.ceiling_db=-2", "not in the chain"),
    ] {
        let o =
            afx(&["transfer", "--input", &input, "--reference", &reference, "--output", &path("z.wav"), "--chain", chain, "--set", set]);
        assert!(!o.status.success() && stderr(&o).contains(needle) && stderr(&o).lines().count() == 1, "{chain}: {}", stderr(&o));
    }
    assert!(!Path::new(&path("z.wav")).exists());
}

/// `afx transfer` reports the output's and the reference's loudness: a mono 1 kHz sine of peak
/// −20 dBFS as the reference reads −23.0 LUFS (BS.1770's calibration). By default the output is
/// brought to that loudness; with `--mode model` the network sets the level, and a warning
/// comes exactly when the output is more than 20 LU below, and says by how much (the bundled
/// model, which never heard a reference like a sine, leaves this groove about 26 LU below it).
#[test]
fn transfer_reports_the_loudness_of_output_and_reference() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (input, reference, output) = (path("in.wav"), path("sine.wav"), path("out.wav"));
    assert!(afx(&["example", "--output", &input, "--seconds", "2"]).status.success());
    let w = 2.0 * std::f64::consts::PI * 1000.0 / 44_100.0;
    let sine: Vec<f32> = (0..2 * 44_100).map(|i| (0.1 * (w * f64::from(i)).sin()) as f32).collect();
    write_wav(Path::new(&reference), 44_100, 1, &sine);
    for mode in ["matched", "model"] {
        let o = afx(&["transfer", "--input", &input, "--reference", &reference, "--output", &output, "--mode", mode]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        let line = err.lines().find(|l| l.starts_with("wrote ")).unwrap_or_else(|| panic!("{err}"));
        assert!(line.ends_with("; reference -23.0 LUFS)"), "{line}");
        let output_lufs: f64 = line.split("(loudness ").nth(1).and_then(|r| r.split(" LUFS").next()).unwrap().parse().unwrap();
        if mode == "matched" {
            assert!((output_lufs + 23.0).abs() <= 0.2, "{line}");
        }
        let gap = -23.0 - output_lufs;
        let warning = err.lines().find(|l| l.starts_with("warning: the output is "));
        assert_eq!(warning.is_some(), gap > 20.0, "{err}");
        if let Some(warning) = warning {
            let said: f64 = warning["warning: the output is ".len()..].split(" LU quieter").next().unwrap().parse().unwrap();
            // The line's levels are rounded to 0.1 LU each.
            assert!((said - gap).abs() <= 0.11, "{warning} against {line}");
        }
    }
}

#[test]
fn transfer_refines_and_proxy_training_refuses_bad_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (input, reference, output) = (path("in.wav"), path("ref.wav"), path("out.wav"));
    assert!(afx(&["example", "--output", &input, "--seconds", "2"]).status.success());
    assert!(afx(&["example", "--output", &reference, "--seconds", "2", "--seed", "3", "--style", "bright"]).status.success());
    let o = afx(&["transfer", "--input", &input, "--reference", &reference, "--output", &output, "--refine", "5", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"comp.ratio\""));
    assert!(Path::new(&output).exists());

    // One recording is not enough for a train and a validation split; an empty folder has none.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(&input, data.join("only.wav")).unwrap();
    let proxy = path("eq.afx");
    for folder in [data.to_str().unwrap(), &path("missing")] {
        let o = afx(&["proxy", "train", "--effect", "eq", "--data", folder, "--out", &proxy, "--steps", "2"]);
        assert!(!o.status.success());
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    assert!(!Path::new(&proxy).exists());
    // A proxy of no channels is a settings error, not a panic.
    let o = afx(&["proxy", "train", "--effect", "eq", "--channels", "0", "--data", data.to_str().unwrap(), "--out", &proxy]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("0 channels"), "{}", stderr(&o));
    // A proxy of any chain: `--chain` is parsed as everywhere (a bad one is a one-line error)
    // and reaches the settings; the old `--effect` is its alias, not to be given beside it.
    let d = data.to_str().unwrap();
    let o = afx(&["proxy", "train", "--chain", "hpf,gain", "--channels", "0", "--data", d, "--out", &proxy]);
    assert!(stderr(&o).contains("0 channels") && stderr(&o).lines().count() == 1, "{}", stderr(&o));
    let o = afx(&["proxy", "train", "--chain", "hpf,reverb", "--data", d, "--out", &proxy]);
    assert!(stderr(&o).contains("unknown effect `reverb`") && stderr(&o).lines().count() == 1, "{}", stderr(&o));
    let o = afx(&["proxy", "train", "--chain", "eq", "--effect", "eq", "--data", d, "--out", &proxy]);
    assert!(!o.status.success() && stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    // Proxies for `afx train` come by `--proxy`, or by the old pair `--eq-proxy`, `--comp-proxy`.
    let train = |extra: &[&str]| afx(&[&["train", "--estimator", "proxy", "--data", d, "--out", &path("m.afx")], extra].concat());
    let o = train(&["--eq-proxy", "e.afx", "--comp-proxy", "c.afx", "--proxy", "x.afx"]);
    assert!(!o.status.success() && stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = train(&["--eq-proxy", "e.afx"]);
    assert!(!o.status.success() && stderr(&o).contains("--comp-proxy"), "{}", stderr(&o));

    // Estimators are named as model cards record them (finite_diff), or in kebab case; either
    // way the run gets past the option parsing to a one-line error about its settings or data.
    for estimator in ["finite_diff", "finite-diff", "proxy_full", "ctcn"] {
        let o = afx(&["train", "--estimator", estimator, "--data", data.to_str().unwrap(), "--out", &path("m.afx"), "--steps", "1"]);
        let message = stderr(&o);
        assert!(!o.status.success() && message.lines().count() == 1, "{message}");
        assert!(!message.contains("invalid value"), "{estimator}: {message}");
    }
    // Bad chains for training and evaluation are one-line errors.
    let d = data.to_str().unwrap();
    for (args, needle) in [
        (vec!["train", "--chain", "eq,,comp", "--data", d, "--out", &path("m.afx")], "an effect name is empty"),
        (vec!["train", "--chain", "eq,fuzz", "--data", d, "--out", &path("m.afx")], "unknown effect `fuzz`"),
        (vec!["eval", "--model", "untrained", "--chain", "fuzz", "--data", d], "unknown effect `fuzz`"),
    ] {
        let o = afx(&args);
        let message = stderr(&o);
        assert!(!o.status.success() && message.lines().count() == 1 && message.contains(needle), "{args:?}: {message}");
    }
}

#[test]
fn plugins_lists_lv2_plugins_or_names_the_feature_it_needs() {
    let o = afx(&["plugins"]);
    if cfg!(feature = "lv2") {
        assert!(o.status.success(), "{}", stderr(&o));
        let o = afx(&["plugins", "urn:afx:no-such-plugin"]);
        assert!(!o.status.success());
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("urn:afx:no-such-plugin"), "{}", stderr(&o));
    } else {
        assert!(!o.status.success());
        let message = stderr(&o);
        assert_eq!(message.trim().lines().count(), 1, "{message}");
        assert!(message.contains("--features lv2"), "{message}");
        // A chain naming a plugin says the same, whichever command reads it.
        let o = afx(&["params", "--chain", "hpf,fil4=lv2:http://gareus.org/oss/lv2/fil4#mono"]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("--features lv2") && stderr(&o).trim().lines().count() == 1, "{}", stderr(&o));
    }
}
