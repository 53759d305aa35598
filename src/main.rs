//! The `afx` command line: parse, call the library, print.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use afx::audio::WavFormat;
use afx::data::{Draw, Style};
use afx::fx::{KNOBS, Knobs};

#[derive(Parser)]
#[command(name = "afx", version, about = "Neural networks that turn the knobs of real audio effects")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a file through the effect chain (parametric EQ, then compressor).
    Apply {
        /// Input audio (WAV, FLAC, OGG Vorbis or MP3; any rate from 8 to 192 kHz; mono or stereo).
        #[arg(long)]
        input: PathBuf,
        /// Output WAV file (written atomically; never the input).
        #[arg(long)]
        output: PathBuf,
        /// Flat JSON object of knob names to values; absent knobs keep their defaults.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Set one knob, e.g. `--set comp.ratio=4` (repeatable; applied after --params).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Output sample format.
        #[arg(long, value_enum, default_value_t = Format::F32)]
        format: Format,
    },
    /// Write a generated example recording (a short stereo groove) to try the other commands on.
    Example {
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value_t = 8.0)]
        seconds: f64,
        #[arg(long, default_value_t = 44_100)]
        sample_rate: u32,
        #[arg(long, default_value_t = 2)]
        channels: usize,
        /// Seed for the voicings and noise.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// List every knob with its unit, range and default.
    Params {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure an estimate against a target recording.
    Analyze {
        #[arg(long)]
        estimate: PathBuf,
        #[arg(long)]
        target: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the named production styles, or draw one style's knobs as a knob file.
    Styles {
        /// Draw the knobs of this style (printed as the flat JSON `afx apply --params` reads).
        #[arg(long)]
        sample: Option<String>,
        /// Seed of the draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Run the speed benchmarks.
    Bench {
        /// Print one flat JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    F32,
    I16,
    I24,
}

impl From<Format> for WavFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::F32 => WavFormat::F32,
            Format::I16 => WavFormat::I16,
            Format::I24 => WavFormat::I24,
        }
    }
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away (`afx params | head`).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread or I/O starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> afx::Result<()> {
    match cli.command {
        Command::Apply { input, output, params, set, format } => {
            let mut knobs = match params {
                Some(path) => Knobs::from_json_file(&path)?,
                None => Knobs::default(),
            };
            for assignment in &set {
                knobs.apply_assignment(assignment)?;
            }
            let audio = afx::apply::apply_file(&input, &output, &knobs, format.into())?;
            println!(
                "wrote {} ({} ch, {} Hz, {:.2} s)",
                output.display(),
                audio.num_channels(),
                audio.sample_rate,
                audio.duration_s()
            );
        }
        Command::Example { output, seconds, sample_rate, channels, seed } => {
            if !(0.5..=600.0).contains(&seconds) || !(1..=2).contains(&channels) {
                return Err(afx::Error::Invalid("--seconds must be 0.5..=600 and --channels 1 or 2".into()));
            }
            afx::fx::check_sample_rate(sample_rate)?;
            let audio = afx::example::groove(seconds, sample_rate, channels, seed);
            afx::audio::write_wav(&output, &audio, WavFormat::F32)?;
            println!("wrote {} ({channels} ch, {sample_rate} Hz, {seconds:.2} s)", output.display());
        }
        Command::Params { json } => {
            if json {
                let list: Vec<_> = KNOBS
                    .iter()
                    .map(|k| {
                        serde_json::json!({ "name": k.name, "unit": k.unit, "min": k.min, "max": k.max,
                            "default": k.default, "skew": format!("{:?}", k.skew).to_lowercase(),
                            "description": k.description })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list).expect("knob list serialises"));
            } else {
                println!("{:<24} {:>4} {:>9} {:>9} {:>9}  {:<6}  description", "knob", "unit", "min", "max", "default", "skew");
                for k in &KNOBS {
                    let skew = format!("{:?}", k.skew).to_lowercase();
                    println!("{:<24} {:>4} {:>9} {:>9} {:>9}  {:<6}  {}", k.name, k.unit, k.min, k.max, k.default, skew, k.description);
                }
            }
        }
        Command::Analyze { estimate, target, json } => {
            let m = afx::apply::analyze_files(&estimate, &target)?;
            if json {
                println!("{}", serde_json::to_string(&m).expect("metrics serialise"));
            } else {
                println!("MR-STFT distance        {:>10.4}", m.mrstft);
                println!("mel spectral distance   {:>10.4}", m.mel_distance);
                println!("spectral centroid error {:>10.1} Hz", m.centroid_error_hz);
                println!("RMS error               {:>10.2} dB", m.rms_error_db);
                println!("crest factor error      {:>10.2} dB", m.crest_factor_error_db);
                println!("loudness error          {:>10.2} LU", m.loudness_error_lu);
            }
        }
        Command::Styles { sample: Some(name), seed } => {
            let style: Style = name.parse()?;
            let knobs = style.sample(&mut ChaCha8Rng::seed_from_u64(seed));
            println!("{}", knobs.to_json());
        }
        Command::Styles { sample: None, .. } => {
            for style in Style::ALL {
                println!("{:<10} {}", style.name(), style.description());
                for (knob, draw) in style.distribution() {
                    match draw {
                        Draw::Fixed(v) => println!("    {knob:<22} {v}"),
                        Draw::Uniform { low, high } => println!("    {knob:<22} {low} .. {high}"),
                    }
                }
            }
        }
        Command::Bench { json } => {
            let report = afx::bench::run();
            if json {
                println!("{}", serde_json::to_string(&report).expect("report serialises"));
            } else {
                println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
            }
        }
    }
    Ok(())
}
