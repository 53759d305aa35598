//! The `afx` command line: parse, call the library, print.

use std::io::{Write, stderr, stdout};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use afx::apply::ApplyArgs;
use afx::eval::EvalArgs;
use afx::example::ExampleArgs;
use afx::probe::ProbeArgs;
use afx::real_eval::RealEvalArgs;
use afx::train::{ProxyEvalArgs, ProxyTrainArgs, TrainArgs};
use afx::transfer::TransferArgs;

#[derive(Parser)]
#[command(name = "afx", version, about = "Neural networks that turn the knobs of real audio effects")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a file through an effect chain (by default the parametric EQ, then the compressor).
    Apply(ApplyArgs),
    /// Give a recording the production style of a reference: the network and a measurement of
    /// both recordings set the knobs, the loudness is matched, the chain renders the whole input
    /// at its own rate.
    Transfer(TransferArgs),
    /// Write a generated example recording (a short stereo groove) to try the other commands on.
    Example(ExampleArgs),
    /// List every knob of a chain with its unit, range and default, or every effect.
    Params {
        /// The effects in order, comma-separated, e.g. `hpf,eq,comp,limiter` (default `eq,comp`).
        #[arg(long)]
        chain: Option<String>,
        /// List the effects instead of knobs.
        #[arg(long, conflicts_with = "chain")]
        effects: bool,
        /// Print every effect's knobs as the Markdown table of the README.
        #[arg(long, conflicts_with_all = ["chain", "effects", "json"])]
        markdown: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the installed LV2 plugins afx can host, or one plugin's knobs (needs the `lv2`
    /// feature).
    Plugins {
        /// Show this plugin's knobs (its control inputs) instead of the list.
        uri: Option<String>,
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
    /// Train a style network through the effect chain on folders of audio.
    Train(Box<TrainArgs>),
    /// Score each model's encoder with a linear probe on the five named styles (train split to
    /// fit, test split to score).
    Probe(ProbeArgs),
    /// Neural proxies: networks that imitate a chain of effects, such as the EQ or the
    /// compressor (for the NP, NP-HH and NP-FH gradient methods).
    Proxy {
        #[command(subcommand)]
        command: ProxyCommand,
    },
    /// Measure models on held-out files with the DeepAFx-ST synthetic protocol.
    Eval(Box<EvalArgs>),
    /// Measure models and their peers as users use them: held-out recordings at their own
    /// rate, references from another recording (or the same), foreign corruptions and styles.
    RealEval(Box<RealEvalArgs>),
    /// Run the speed benchmarks.
    Bench {
        /// Print one flat JSON object.
        #[arg(long)]
        json: bool,
        /// Measure the LV2 host instead: each plugin's own speed against its renders inside an
        /// SPSA step (needs the `lv2` feature).
        #[arg(long)]
        plugins: bool,
    },
}

#[derive(Subcommand)]
enum ProxyCommand {
    /// Fit a proxy to a real chain on folders of audio (random knobs over the whole range,
    /// MR-STFT + L1 against the real chain's output).
    Train(ProxyTrainArgs),
    /// Measure how closely a proxy imitates its chain on the test split (files never used in
    /// training), beside the identity.
    Eval(ProxyEvalArgs),
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
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// `afx plugins`: the installed LV2 plugins, or one plugin's knobs.
#[cfg(feature = "lv2")]
fn plugins(uri: Option<&str>, json: bool) -> afx::Result<String> {
    match uri {
        Some(uri) => afx::lv2::plugin_knob_listing(uri, json),
        None => Ok(afx::lv2::plugin_listing(json)),
    }
}

/// `afx bench --plugins`: the LV2 host's speed.
#[cfg(feature = "lv2")]
fn plugin_bench(json: bool) -> afx::Result<String> {
    afx::lv2::bench::report(json)
}

/// `afx bench --plugins` in a build without LV2 hosting.
#[cfg(not(feature = "lv2"))]
fn plugin_bench(_json: bool) -> afx::Result<String> {
    Err(afx::Error::Lv2Disabled)
}

/// `afx plugins` in a build without LV2 hosting.
#[cfg(not(feature = "lv2"))]
fn plugins(_uri: Option<&str>, _json: bool) -> afx::Result<String> {
    Err(afx::Error::Lv2Disabled)
}

/// The one-line message for a library error, naming the command line's flags where the
/// library names its settings.
fn message(error: &afx::Error) -> String {
    use afx::Error;
    match error {
        Error::Setting { name, value, expected } => match flag(name) {
            Some(flag) => format!("{flag} {value} must be {expected}"),
            None => error.to_string(),
        },
        Error::CtcnSetting { setting, reason } => format!("--{} {reason}", setting.replace('_', "-")),
        Error::RunExists { run_dir } => {
            format!("{} already holds a training run; pass --resume to continue it or choose another --run-dir", run_dir.display())
        }
        Error::MissingProxies { estimator } => format!("--estimator {estimator} needs at least one --proxy"),
        Error::UnusedProxies { estimator } => format!("--proxy goes with the proxy estimators, not --estimator {estimator}"),
        Error::InitMismatch { path } => format!("the --init model {}'s network differs from the run's network settings", path.display()),
        _ => error.to_string(),
    }
}

/// The flag that sets a library setting, where one does.
fn flag(setting: &str) -> Option<&'static str> {
    const FLAGS: [(&str, &str); 19] = [
        ("steps", "--steps"),
        ("batch_size", "--batch-size"),
        ("half_frames", "--clip-frames"),
        ("clip_frames", "--clip-frames"),
        ("learning_rate", "--learning-rate"),
        ("validate_every", "--validate-every"),
        ("checkpoint_every", "--checkpoint-every"),
        ("validation_pairs", "--validation-pairs"),
        ("spsa_pairs", "--spsa-pairs"),
        ("epsilon", "--epsilon"),
        ("l1_weight", "--l1-weight"),
        ("level_weight", "--level-weight"),
        ("mix", "--mix"),
        ("dropout", "--dropout"),
        ("pairs", "--pairs"),
        ("clips", "--clips"),
        ("seconds", "--seconds"),
        ("channels", "--channels"),
        ("init", "--init"),
    ];
    FLAGS.iter().find(|(name, _)| *name == setting).map(|(_, flag)| *flag)
}

fn run(cli: Cli) -> afx::Result<()> {
    let out = &mut stdout();
    match cli.command {
        Command::Apply(args) => args.run(out)?,
        Command::Transfer(args) => args.run(out, &mut stderr())?,
        Command::Example(args) => args.run(out)?,
        Command::Params { markdown: true, .. } => write!(out, "{}", afx::fx::params::knob_table_markdown())?,
        Command::Params { effects: true, json, .. } => write!(out, "{}", afx::fx::params::effect_listing(json))?,
        Command::Params { chain, json, .. } => {
            let chain = chain.as_deref().map(str::parse).transpose()?.unwrap_or_default();
            write!(out, "{}", afx::fx::params::knob_listing(&chain, json))?;
        }
        Command::Plugins { uri, json } => write!(out, "{}", plugins(uri.as_deref(), json)?)?,
        Command::Analyze { estimate, target, json } => write!(out, "{}", afx::apply::analysis(&estimate, &target, json)?)?,
        Command::Styles { sample: Some(name), seed } => write!(out, "{}", afx::data::styles::sample_file(&name, seed)?)?,
        Command::Styles { sample: None, .. } => write!(out, "{}", afx::data::styles::listing())?,
        Command::Train(args) => args.run(out)?,
        Command::Probe(args) => args.run(out)?,
        Command::Proxy { command: ProxyCommand::Train(args) } => args.run(out)?,
        Command::Proxy { command: ProxyCommand::Eval(args) } => args.run(out)?,
        Command::Eval(args) => args.run(out)?,
        Command::RealEval(args) => args.run(out)?,
        Command::Bench { json, plugins: false } => write!(out, "{}", afx::bench::report(json))?,
        Command::Bench { json, plugins: true } => write!(out, "{}", plugin_bench(json)?)?,
    }
    Ok(())
}
