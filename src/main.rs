//! The `afx` command line: parse, call the library, print.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use afx::audio::WavFormat;
use afx::data::{Draw, InputCorruption, Split, Style};
use afx::eval::{EvalConfig, StyleSet};
use afx::fx::knob::short_number;
use afx::fx::level::OutputLevel;
use afx::fx::{ChainKnobs, ChainSpec, EffectKind};
use afx::model::ProxyConfig;
use afx::probe::ProbeConfig;
use afx::train::{EstimatorKind, ProxyTrainConfig, TrainConfig};
use afx::transfer::TransferOptions;

#[derive(Parser)]
#[command(name = "afx", version, about = "Neural networks that turn the knobs of real audio effects")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a file through an effect chain (by default the parametric EQ, then the compressor).
    Apply {
        /// Input audio (WAV, FLAC, OGG Vorbis or MP3; any rate from 8 to 192 kHz; mono or stereo).
        #[arg(long)]
        input: PathBuf,
        /// Output WAV file (written atomically; never the input).
        #[arg(long)]
        output: PathBuf,
        /// Knob file (`{"chain": ..., "knobs": {...}}`, or a flat object of knob names to values);
        /// absent knobs keep their defaults. Its chain is rendered unless --chain is given.
        #[arg(long)]
        params: Option<PathBuf>,
        /// The effects in order, comma-separated, e.g. `hpf,eq,comp` (`afx params --effects`
        /// lists them; default `eq,comp`, or the knob file's chain).
        #[arg(long)]
        chain: Option<String>,
        /// Set one knob, e.g. `--set comp.ratio=4` (repeatable; applied after --params).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Output sample format.
        #[arg(long, value_enum, default_value_t = WavFormat::F32)]
        format: WavFormat,
        /// Also draw the chain's response and static curve into this PNG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Give a recording the production style of a reference: the network sets the EQ and
    /// compressor knobs, the chain renders the whole input at its own rate.
    Transfer {
        /// Recording to process (WAV, FLAC, OGG Vorbis or MP3; 16–96 kHz; mono or stereo).
        #[arg(long)]
        input: PathBuf,
        /// Recording whose style to take on (any length, rate and channel count as above).
        #[arg(long)]
        reference: PathBuf,
        /// Output WAV file, at the input's rate and channel count (never an input).
        #[arg(long)]
        output: PathBuf,
        /// Also save the chosen knobs as the flat JSON `afx apply --params` reads.
        #[arg(long)]
        params_out: Option<PathBuf>,
        /// A model file from `afx train` instead of the bundled model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Output sample format.
        #[arg(long, value_enum, default_value_t = WavFormat::F32)]
        format: WavFormat,
        /// Print the knobs as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also draw the chosen EQ curve and compressor curve into this PNG.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Refine the network's knobs by this many steps of exact-gradient descent on a style
        /// distance to the reference (average spectrum and dynamics; about 20 ms per step per
        /// minute of input).
        #[arg(long, default_value_t = 0)]
        refine: usize,
        /// The whole chain: the model's, then effects that process the output at its final
        /// level, e.g. `eq,comp,limiter` for the bundled model (at their defaults unless --set).
        #[arg(long)]
        chain: Option<String>,
        /// Set a knob after the model chose them, e.g. `--set limiter.ceiling_db=-1`
        /// (repeatable; overrides the model's value for its own knobs).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
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
        /// Seed for the voicings and noise (and the style's draw).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Render it in one of the named production styles (`afx styles` lists them), e.g.
        /// to make a reference for `afx transfer`.
        #[arg(long)]
        style: Option<String>,
    },
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
    Probe {
        /// Model files (repeatable); `bundled` names the model inside afx, `untrained` a freshly
        /// initialised network (the control).
        #[arg(long = "model", default_value = "bundled")]
        models: Vec<String>,
        #[arg(long, num_args = 1.., required = true)]
        data: Vec<PathBuf>,
        /// Clips per style to fit the probe on.
        #[arg(long, default_value_t = 40)]
        train_clips: usize,
        /// Clips per style to score it on.
        #[arg(long, default_value_t = 20)]
        test_clips: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print JSON instead of the markdown table.
        #[arg(long)]
        json: bool,
    },
    /// Neural proxies: networks that imitate a chain of effects, such as the EQ or the
    /// compressor (for the NP, NP-HH and NP-FH gradient methods).
    Proxy {
        #[command(subcommand)]
        command: ProxyCommand,
    },
    /// Measure models on held-out files with the DeepAFx-ST synthetic protocol.
    Eval {
        /// Model files to evaluate (repeatable); `bundled` names the model inside afx, `untrained` a
        /// freshly initialised network.
        #[arg(long = "model", default_value = "bundled")]
        models: Vec<String>,
        /// Folders (or files) of audio; only their test split (10 % of files, never used in
        /// training) is used.
        #[arg(long, num_args = 1.., required = true)]
        data: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = StyleSet::Random)]
        styles: StyleSet,
        /// The input's corruption: afx's (a random EQ and compressor) or DeepAFx-ST's own (an
        /// EQ in three pairs of four, never a compressor), to compare with its published figures.
        #[arg(long, value_enum, default_value_t = InputCorruption::EqAndCompressor)]
        corruption: InputCorruption,
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Adam steps of the oracle's per-pair knob fit (0 leaves the oracle out).
        #[arg(long, default_value_t = 100)]
        oracle_steps: usize,
        /// The chain of the oracle's fit and of `--model untrained` (default `eq,comp`, the
        /// chain the target styles are made with); a trained model renders its own chain.
        #[arg(long)]
        chain: Option<String>,
        /// Also evaluate the first model with this many steps of inference-time refinement (as
        /// `afx transfer --refine`); 0 leaves that row out.
        #[arg(long, default_value_t = 0)]
        refine: usize,
        /// Also render the knobs of each model trained through proxies (`--estimator proxy`)
        /// through these neural proxies, in chain order (repeatable; their chains together
        /// must be the model's): its NP row (its own row, with the real chain, is NP-HH).
        #[arg(long = "proxy", value_name = "FILE")]
        proxies: Vec<PathBuf>,
        #[command(flatten)]
        old_proxies: OldProxyArgs,
        /// Also a row per model whose reference is the target itself (a reference with the
        /// input's content): the controller's error without the content gap between the halves.
        #[arg(long)]
        same_content: bool,
        /// The reference's length in frames at 24 kHz (default: the clip length, 131072, as in
        /// DeepAFx-ST): a longer reference is more of the same recording beside the input.
        #[arg(long, value_parser = clap::value_parser!(u64).range(4096..))]
        reference_frames: Option<u64>,
        /// The files the pairs come from. Results are the test split's; the training split
        /// (files the model learned from) measures its generalisation gap.
        #[arg(long, value_enum, default_value_t = Split::Test)]
        split: Split,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also write the markdown table to this file.
        #[arg(long)]
        table: Option<PathBuf>,
        /// Print JSON instead of the markdown table.
        #[arg(long)]
        json: bool,
    },
    /// Run the speed benchmarks.
    Bench {
        /// Print one flat JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ProxyCommand {
    /// Fit a proxy to a real chain on folders of audio (random knobs over the whole range,
    /// MR-STFT + L1 against the real chain's output).
    Train(ProxyTrainArgs),
    /// Measure how closely a proxy imitates its chain on the test split (files never used in
    /// training), beside the identity.
    Eval {
        #[arg(long)]
        proxy: PathBuf,
        #[arg(long, num_args = 1.., required = true)]
        data: Vec<PathBuf>,
        #[arg(long, default_value_t = 32)]
        clips: usize,
        /// Clip length in frames at the proxy's rate.
        #[arg(long, default_value_t = 65_536)]
        clip_frames: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print JSON instead of the markdown table.
        #[arg(long)]
        json: bool,
    },
}

/// Where a training run reads and writes, for `afx train` and `afx proxy train`.
#[derive(clap::Args)]
struct RunArgs {
    /// Folders (or files) of training audio, any decodable format and rate; split by file into
    /// train (80 %), validation (10 %) and test (10 %, for `afx eval`).
    #[arg(long, num_args = 1.., required_unless_present = "resume")]
    data: Vec<PathBuf>,
    /// Where the result goes (the weights with the best validation loss).
    #[arg(long)]
    out: PathBuf,
    /// Run folder: checkpoint, log.csv, curves.png, best.afx. Default: OUT with `.run` appended.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue the run in the run folder from its checkpoint (its settings are kept).
    #[arg(long)]
    resume: bool,
}

impl RunArgs {
    /// `--run-dir`, or OUT with `.run` appended.
    fn run_dir(&self) -> PathBuf {
        self.run_dir.clone().unwrap_or_else(|| {
            let mut dir = self.out.as_os_str().to_owned();
            dir.push(".run");
            PathBuf::from(dir)
        })
    }
}

/// `afx proxy train`'s options; unset ones take `ProxyTrainConfig::new`'s values.
#[derive(clap::Args)]
struct ProxyTrainArgs {
    /// The chain to imitate, e.g. `eq`, `comp` or `hpf,gain` (`afx params --effects` lists the
    /// effects; with --resume, the run's own is kept).
    #[arg(long, required_unless_present_any = ["resume", "effect"])]
    chain: Option<String>,
    /// Deprecated spelling of --chain: `eq`, `comp`, or `chain` for `eq,comp`.
    #[arg(long, value_enum, conflicts_with = "chain")]
    effect: Option<Effect>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    budget: BudgetArgs,
    /// Channels of every TCN block (published: 64).
    #[arg(long)]
    channels: Option<usize>,
}

/// The budget every training takes (`afx train`, `afx proxy train`); unset ones keep the
/// training's defaults, and with --resume only `--steps` counts (it extends the run).
#[derive(clap::Args)]
struct BudgetArgs {
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Clip length L in frames at 24 kHz.
    #[arg(long)]
    clip_frames: Option<usize>,
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Effect {
    Eq,
    Comp,
    /// The whole chain in one proxy (the published "channel" proxy).
    Chain,
}

impl Effect {
    /// The chain the old `--effect` names.
    fn chain(self) -> &'static str {
        match self {
            Effect::Eq => "eq",
            Effect::Comp => "comp",
            Effect::Chain => "eq,comp",
        }
    }
}

/// `--eq-proxy E --comp-proxy C`, the old spelling of `--proxy E --proxy C`.
#[derive(clap::Args)]
struct OldProxyArgs {
    /// Old spelling of --proxy E --proxy C (with --comp-proxy C).
    #[arg(long, requires = "comp_proxy", conflicts_with = "proxies")]
    eq_proxy: Option<PathBuf>,
    /// Old spelling, with --eq-proxy.
    #[arg(long, requires = "eq_proxy", conflicts_with = "proxies")]
    comp_proxy: Option<PathBuf>,
}

/// The proxy files of `--proxy`, or of the old `--eq-proxy`, `--comp-proxy`.
fn proxy_files(proxies: &[PathBuf], old: &OldProxyArgs) -> Vec<PathBuf> {
    old.eq_proxy.iter().chain(&old.comp_proxy).chain(proxies).cloned().collect()
}

impl ProxyTrainArgs {
    fn config(&self) -> afx::Result<ProxyTrainConfig> {
        let chain = match (&self.chain, self.effect) {
            (Some(chain), _) => chain.as_str(),
            (None, Some(effect)) => effect.chain(),
            // Resumed: the run's own settings are used.
            (None, None) => "eq",
        };
        let d = ProxyTrainConfig::new(chain.parse()?);
        Ok(ProxyTrainConfig {
            data: self.run.data.clone(),
            proxy: ProxyConfig { channels: self.channels.unwrap_or(d.proxy.channels), ..d.proxy.clone() },
            steps: self.budget.steps.unwrap_or(d.steps),
            batch_size: self.budget.batch_size.unwrap_or(d.batch_size),
            clip_frames: self.budget.clip_frames.unwrap_or(d.clip_frames),
            learning_rate: self.budget.learning_rate.unwrap_or(d.learning_rate),
            seed: self.budget.seed.unwrap_or(d.seed),
            ..d
        })
    }
}

/// `afx train`'s options; unset ones take [`TrainConfig::default`]'s values.
#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    #[arg(long, value_enum, default_value_t = EstimatorKind::Exact)]
    estimator: EstimatorKind,
    #[command(flatten)]
    budget: BudgetArgs,
    /// SPSA perturbations per example.
    #[arg(long)]
    spsa_pairs: Option<usize>,
    /// SPSA / finite-difference step, normalised knob units.
    #[arg(long)]
    epsilon: Option<f32>,
    #[arg(long)]
    validate_every: Option<u64>,
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Validation pairs, measured every --validate-every steps.
    #[arg(long)]
    validation_pairs: Option<usize>,
    /// The network's shape as JSON (the `config` of a model file's header; see
    /// `StyleNetConfig`); default: the 398 k-parameter network.
    #[arg(long)]
    net: Option<PathBuf>,
    /// Start from this model file's weights (fine-tuning, e.g. with longer clips); its network
    /// shape replaces `--net`.
    #[arg(long, conflicts_with = "net")]
    init: Option<PathBuf>,
    /// The chain the network sets, e.g. `hpf,eq,comp,limiter` (`afx params --effects` lists the
    /// effects); default: that of --net / --init, else `eq,comp`. The target styles are made
    /// with `eq,comp` whatever the network's chain.
    #[arg(long)]
    chain: Option<String>,
    /// How the output level is set: `absolute` (the make-up knob is a plain gain) or
    /// `reference` (the output is scaled to the reference's K-weighted level plus the make-up
    /// knob). Default: that of --net / --init, else absolute.
    #[arg(long, value_enum)]
    output_level: Option<OutputLevel>,
    /// Weight of the time-domain L1 term of the loss (MR-STFT + weight·L1); default 100, as
    /// DeepAFx-ST.
    #[arg(long)]
    l1_weight: Option<f64>,
    /// Weight of a level term in the loss: weight x mean |L(output) - L(target)|, K-weighted
    /// levels in dB; default 0 (none).
    #[arg(long)]
    level_weight: Option<f64>,
    /// The inputs' corruption: afx's (a random EQ and compressor; the default) or DeepAFx-ST's
    /// own (an EQ in three pairs of four, never a compressor).
    #[arg(long, value_enum)]
    corruption: Option<InputCorruption>,
    /// Speed augmentation: half the training clips are played faster or slower by up to this
    /// many cents (pitch and tempo together); default 0 (none). Validation pairs are never
    /// changed.
    #[arg(long, value_parser = parse_speed_cents)]
    speed_cents: Option<f64>,
    /// Colour augmentation: half the training clips are coloured as a whole (both halves
    /// alike) by random broad shelves and a broad band of up to ± this many dB; default 0
    /// (none). Validation pairs are never changed.
    #[arg(long, value_parser = parse_colour_db)]
    colour_db: Option<f64>,
    /// Mix augmentation: the probability, in [0, 1], that a training clip has a second one
    /// mixed into it (0 to 12 dB quieter, both halves alike); default 0 (none). Validation
    /// pairs are never changed.
    #[arg(long)]
    mix: Option<f64>,
    /// Dropout in the controller: the probability, in [0, 1), that each of its inputs and
    /// hidden units is dropped in a training step; default 0 (none).
    #[arg(long)]
    dropout: Option<f64>,
    /// A proxy file (`afx proxy train --chain C`), for the proxy estimators; repeatable, in
    /// chain order, their chains together the network's (e.g. `--proxy eq.afx --proxy comp.afx`).
    #[arg(long = "proxy", value_name = "FILE")]
    proxies: Vec<PathBuf>,
    #[command(flatten)]
    old_proxies: OldProxyArgs,
}

/// `--speed-cents`: 0 to 1200 (an octave either way).
fn parse_speed_cents(text: &str) -> std::result::Result<f64, String> {
    parse_within(text, 1200.0, "cents")
}

/// `--colour-db`: 0 to 12 dB.
fn parse_colour_db(text: &str) -> std::result::Result<f64, String> {
    parse_within(text, 12.0, "dB")
}

/// A number in `0..=max`.
fn parse_within(text: &str, max: f64, unit: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=max).contains(&x) => Ok(x),
        Ok(x) => Err(format!("{x} is outside 0..={max} {unit}")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

impl TrainArgs {
    fn config(&self) -> afx::Result<TrainConfig> {
        let d = TrainConfig::default();
        let chain = self.chain.as_deref().map(str::parse).transpose()?;
        let net = afx::train::style::network_for(self.init.as_deref(), self.net.as_deref(), chain, self.output_level)?;
        Ok(TrainConfig {
            net,
            init: self.init.clone(),
            proxies: proxy_files(&self.proxies, &self.old_proxies),
            data: self.run.data.clone(),
            estimator: self.estimator,
            spsa_pairs: self.spsa_pairs.unwrap_or(d.spsa_pairs),
            epsilon: self.epsilon.unwrap_or(d.epsilon),
            steps: self.budget.steps.unwrap_or(d.steps),
            batch_size: self.budget.batch_size.unwrap_or(d.batch_size),
            half_frames: self.budget.clip_frames.unwrap_or(d.half_frames),
            learning_rate: self.budget.learning_rate.unwrap_or(d.learning_rate),
            seed: self.budget.seed.unwrap_or(d.seed),
            validate_every: self.validate_every.unwrap_or(d.validate_every),
            checkpoint_every: self.checkpoint_every.unwrap_or(d.checkpoint_every),
            validation_pairs: self.validation_pairs.unwrap_or(d.validation_pairs),
            l1_weight: self.l1_weight.unwrap_or(d.l1_weight),
            level_weight: self.level_weight.unwrap_or(d.level_weight),
            corruption: self.corruption.unwrap_or(d.corruption),
            speed_cents: self.speed_cents.unwrap_or(d.speed_cents),
            colour_db: self.colour_db.unwrap_or(d.colour_db),
            mix: self.mix.unwrap_or(d.mix),
            dropout: self.dropout.unwrap_or(d.dropout),
            ..d
        })
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
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
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
    match cli.command {
        Command::Apply { input, output, params, chain, set, format, plot } => {
            let chain: Option<ChainSpec> = chain.map(|c| c.parse()).transpose()?;
            let mut knobs = match params {
                Some(path) => ChainKnobs::from_json_file(&path, chain.as_ref())?,
                None => ChainKnobs::defaults(chain.unwrap_or_default()),
            };
            knobs.apply_assignments(&set)?;
            let audio = afx::apply::apply_file(&input, &output, &knobs, format)?;
            println!("wrote {} ({} ch, {} Hz, {:.2} s)", output.display(), audio.num_channels(), audio.sample_rate, audio.duration_s());
            if let Some(path) = plot {
                afx::curves::write_png(&path, &knobs, audio.sample_rate)?;
            }
        }
        Command::Example { output, seconds, sample_rate, channels, seed, style } => {
            if !(0.5..=600.0).contains(&seconds) {
                return Err(afx::Error::Setting { name: "seconds", value: seconds.to_string(), expected: "in 0.5..=600".into() });
            }
            if !(1..=2).contains(&channels) {
                return Err(afx::Error::Setting { name: "channels", value: channels.to_string(), expected: "1 or 2".into() });
            }
            afx::fx::check_sample_rate(sample_rate)?;
            let style: Option<Style> = style.map(|name| name.parse()).transpose()?;
            let mut audio = afx::example::groove(seconds, sample_rate, channels, seed);
            if let Some(style) = style {
                afx::apply::render(&mut audio, &style.sample(&mut ChaCha8Rng::seed_from_u64(seed)).chain_knobs())?;
            }
            afx::audio::write_wav(&output, &audio, WavFormat::F32)?;
            let styled = style.map(|s| format!(", {} style", s.name())).unwrap_or_default();
            println!("wrote {} ({channels} ch, {sample_rate} Hz, {seconds:.2} s{styled})", output.display());
        }
        Command::Params { markdown: true, .. } => print!("{}", afx::fx::params::knob_table_markdown()),
        Command::Params { chain: _, effects: true, json, .. } => {
            if json {
                let list: Vec<_> = EffectKind::ALL
                    .iter()
                    .map(|e| serde_json::json!({ "name": e.name(), "description": e.description(), "knobs": e.knobs().len() }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list).expect("effect list serialises"));
            } else {
                for e in EffectKind::ALL {
                    println!("{:<10} {:>2} knobs  {}", e.name(), e.knobs().len(), e.description());
                }
            }
        }
        Command::Params { chain, effects: false, json, .. } => {
            let chain: ChainSpec = chain.map(|c| c.parse()).transpose()?.unwrap_or_default();
            let knobs = chain.knobs();
            if json {
                let list: Vec<_> = knobs
                    .iter()
                    .map(|k| {
                        serde_json::json!({ "name": k.name, "unit": k.unit, "min": k.min, "max": k.max,
                            "default": k.default, "skew": k.skew.name(), "description": k.description })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list).expect("knob list serialises"));
            } else {
                println!("{:<26} {:>6} {:>9} {:>9} {:>9}  {:<7}  description", "knob", "unit", "min", "max", "default", "skew");
                for k in &knobs {
                    let [min, max, default] = [k.min, k.max, k.default].map(short_number);
                    println!("{:<26} {:>6} {min:>9} {max:>9} {default:>9}  {:<7}  {}", k.name, k.unit, k.skew.name(), k.description);
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
                println!("loudness difference     {:>+10.2} LU (estimate - target)", m.loudness_bias_lu);
                println!("centroid difference     {:>+10.1} Hz (estimate - target)", m.centroid_bias_hz);
            }
        }
        Command::Transfer { input, reference, output, params_out, model, format, json, plot, refine, chain, set } => {
            let options = TransferOptions { chain: chain.map(|c| c.parse()).transpose()?, set, refine_steps: refine };
            let model = match model {
                Some(path) => afx::model::file::load(&path)?,
                None => afx::transfer::bundled_model()?,
            };
            let (done, loudness) =
                afx::transfer::transfer_files(&model.net, &input, &reference, &output, params_out.as_deref(), format, &options)?;
            if json {
                println!("{}", done.file_knobs.to_json());
            } else {
                for (k, v) in done.file_knobs.chain().knobs().iter().zip(done.file_knobs.values()) {
                    println!("{:<24} {:>10.2} {}", k.name, v, k.unit);
                }
                let lufs = |l: Option<f64>| l.map_or_else(|| "below −70 LUFS".to_string(), |l| format!("{l:.1} LUFS"));
                eprintln!("wrote {} (loudness {}; reference {})", output.display(), lufs(loudness.output), lufs(loudness.reference));
            }
            if let Some(warning) = loudness.warning() {
                eprintln!("{warning}");
            }
            if let Some(path) = plot {
                afx::curves::write_png(&path, &done.file_knobs, done.output.sample_rate)?;
            }
            if !done.file_knobs_exact {
                eprintln!(
                    "note: the input's and reference's levels do not fold into these knobs (a level knob out of range, \
                     or no output gain in the chain); they differ from what was rendered in level"
                );
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
        Command::Probe { models, data, train_clips, test_clips, seed, json } => {
            let loaded = afx::eval::load_named_models(&models, &ChainSpec::default())?;
            let config =
                ProbeConfig { data, train_clips_per_style: train_clips, test_clips_per_style: test_clips, seed, ..ProbeConfig::default() };
            let rows = afx::probe::probe(&config, &afx::eval::candidates(&models, &loaded))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialise"));
            } else {
                print!("{}", afx::probe::markdown(&rows));
            }
        }
        Command::Proxy { command: ProxyCommand::Train(args) } => {
            let (run, run_dir) = (&args.run, args.run.run_dir());
            let summary = afx::train::train_proxy(&args.config()?, &run_dir, &run.out, run.resume, args.budget.steps)?;
            println!(
                "trained {} steps in {:.0} s; wrote {} (best validation loss {}, unprocessed {}) and {}",
                summary.steps,
                summary.elapsed_s,
                run.out.display(),
                summary.best.map(|(step, loss)| format!("{loss:.4} at step {step}")).unwrap_or("-".into()),
                summary.last_validation.map(|v| format!("{:.4}", v.input_loss)).unwrap_or("-".into()),
                run_dir.display()
            );
        }
        Command::Proxy { command: ProxyCommand::Eval { proxy, data, clips, clip_frames, seed, json } } => {
            let measured = afx::train::evaluate_proxy(&proxy, &data, clips, clip_frames, seed)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&measured).expect("the match serialises"));
            } else {
                print!("{}", measured.markdown());
            }
        }
        Command::Train(args) => {
            let (run, run_dir) = (&args.run, args.run.run_dir());
            let summary = afx::train::train(&args.config()?, &run_dir, &run.out, run.resume, args.budget.steps)?;
            println!(
                "trained {} steps in {:.0} s; wrote {} (best validation loss {}) and {}",
                summary.steps,
                summary.elapsed_s,
                run.out.display(),
                summary.best.map(|(step, loss)| format!("{loss:.4} at step {step}")).unwrap_or("-".into()),
                run_dir.display()
            );
        }
        Command::Eval {
            models,
            data,
            styles,
            corruption,
            pairs,
            oracle_steps,
            chain,
            refine,
            proxies,
            old_proxies,
            same_content,
            reference_frames,
            split,
            seed,
            table,
            json,
        } => {
            let chain: ChainSpec = chain.map(|c| c.parse()).transpose()?.unwrap_or_default();
            let loaded = afx::eval::load_named_models(&models, &chain)?;
            let candidates = afx::eval::candidates(&models, &loaded);
            let config = EvalConfig {
                oracle_chain: chain,
                data,
                styles,
                pairs,
                oracle_steps,
                refine_steps: refine,
                proxies: proxy_files(&proxies, &old_proxies),
                same_content,
                reference_frames: reference_frames.map(|r| r as usize),
                corruption,
                split,
                seed,
                ..EvalConfig::default()
            };
            let report = afx::eval::evaluate(&config, &candidates)?;
            let markdown = report.markdown();
            if json {
                println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
            } else {
                print!("{markdown}");
            }
            if let Some(path) = table {
                afx::atomic::write_bytes_atomic(&path, markdown.as_bytes())?;
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
