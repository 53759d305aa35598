//! The library's error type: every variant carries the context a one-line message needs.

use std::path::PathBuf;

/// Errors raised by the afx library. The CLI prints them as one line each.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown knob `{name}` (run `afx params` for the list)")]
    UnknownKnob { name: String },
    #[error("knob `{name}` = {value} is out of range [{min}, {max}] {unit}")]
    KnobOutOfRange { name: String, value: f64, min: f64, max: f64, unit: &'static str },
    #[error("knob `{name}` = {value} is not one of its settings {min}, {min} + {step}, ..., {max}")]
    KnobNotOnStep { name: String, value: f64, min: f64, max: f64, step: u32 },
    #[error("knob `{name}` is set more than once")]
    RepeatedKnob { name: String },
    #[error("expected NAME=VALUE with a number, got `{assignment}`")]
    BadAssignment { assignment: String },
    #[error("knob `{name}` belongs to an effect that is not in the chain `{chain}`")]
    KnobNotInChain { name: String, chain: String },
    #[error("unknown effect `{name}` (known: {known})")]
    UnknownEffect { name: String, known: String },
    #[error("knobs to learn (--learn, --set): {reason}")]
    BadLearn { reason: String },
    #[error("bad chain `{chain}`: {reason}")]
    BadChain { chain: String, reason: String },
    #[error("expected knobs of the chain `{expected}`, got the chain `{got}`")]
    ChainMismatch { expected: String, got: String },
    #[error("the chain `{chain}` must begin with the model's chain `{model_chain}` (effects may follow it)")]
    ChainNotAfterModel { chain: String, model_chain: String },
    #[error("effect `{effect}` handles at most {max} channels, the audio has {channels}")]
    TooManyChannels { effect: String, channels: usize, max: usize },
    #[error("the chain `{chain}` has {expected} knobs, got {got} values")]
    KnobCount { chain: String, expected: usize, got: usize },
    #[error("knob `{name}` has a non-finite value")]
    KnobNotFinite { name: String },
    #[error("invalid knob file {path}: {reason}")]
    KnobFile { path: PathBuf, reason: String },
    #[error("sample rate {sample_rate} Hz is outside the supported range {min}..={max} Hz")]
    SampleRate { sample_rate: u32, min: u32, max: u32 },
    #[error("{path}: cannot read audio: {reason}")]
    AudioRead { path: PathBuf, reason: String },
    #[error("{path}: cannot write audio: {reason}")]
    AudioWrite { path: PathBuf, reason: String },
    #[error("{what}: {reason}")]
    BadAudio { what: String, reason: String },
    #[error("output {path} is also an input; refusing to overwrite it")]
    OutputIsInput { path: PathBuf },
    #[error("model file {what}: {reason}")]
    ModelFile { what: String, reason: String },
    #[error("the proxies imitate the chain `{proxies}`, the network sets the chain `{network}`")]
    ProxyChainMismatch { proxies: String, network: String },
    #[error("{reason}")]
    KnobJson { reason: String },
    #[error("knob `{name}`: value {value} is not a number")]
    KnobNotANumber { name: String, value: String },
    #[error("{what} needs at least one channel")]
    NoChannels { what: String },
    #[error("bad knob trajectory: {reason}")]
    BadTrajectory { reason: String },
    #[error("{run_dir} already holds a training run; resume it or choose another run folder")]
    RunExists { run_dir: PathBuf },
    #[error("run folder {path}: {reason}")]
    RunDir { path: PathBuf, reason: String },
    #[error("setting `{name}` = {value} must be {expected}")]
    Setting { name: &'static str, value: String, expected: String },
    #[error("{what} settings: {reason}")]
    BadConfig { what: &'static str, reason: String },
    #[error("network config {path}: {reason}")]
    NetConfigFile { path: PathBuf, reason: String },
    #[error("the estimator `{estimator}` needs at least one proxy file")]
    MissingProxies { estimator: &'static str },
    #[error("the estimator `{estimator}` takes no proxy files (only the proxy estimators do)")]
    UnusedProxies { estimator: &'static str },
    #[error("setting `{setting}` {reason}")]
    CtcnSetting { setting: &'static str, reason: &'static str },
    #[error("clips of {frames} frames are too short for the features (at least {min})")]
    ClipTooShort { frames: usize, min: usize },
    #[error("the network of the initial model {path} differs from the run's network settings")]
    InitMismatch { path: PathBuf },
    #[error("the data loader stopped before step {step}")]
    LoaderStopped { step: u64 },
    #[error("a cTCN's TCN takes the knobs of its network's chain `{network}`, not those of `{tcn}`")]
    TcnChain { network: String, tcn: String },
    #[error("{what} at {rate} Hz, where {expected} Hz is needed")]
    RateMismatch { what: &'static str, rate: u32, expected: u32 },
    #[error("the proxies run at {first} and {other} Hz")]
    ProxyRates { first: u32, other: u32 },
    #[error("a proxy chain needs at least one proxy")]
    NoProxies,
    #[error("non-finite loss ({loss}) or {what} gradient; the step was skipped")]
    NonFiniteStep { loss: f64, what: &'static str },
    #[error("only {audible} of {drawn} drawn clips are audible after the chain")]
    TooFewAudibleClips { audible: usize, drawn: usize },
    #[error("{reason}")]
    NoClips { reason: String },
    #[error("{path}: cannot list folder: {reason}")]
    ListFolder { path: PathBuf, reason: String },
    #[error("unknown style `{name}` (one of: {known})")]
    UnknownStyle { name: String, known: String },
    #[error("{path}: cannot write: {reason}")]
    WriteFile { path: PathBuf, reason: String },
    #[error("{estimate} has {estimate_channels} channel(s) but {target} has {target_channels}")]
    ChannelMismatch { estimate: PathBuf, estimate_channels: usize, target: PathBuf, target_channels: usize },
    #[error("cannot draw the chart: {reason}")]
    Plot { reason: String },
    #[error("{processor}: setting `{setting}` = {value} {reason}")]
    ForeignSetting { processor: &'static str, setting: &'static str, value: f64, reason: &'static str },
    #[error("`sox` cannot be run ({reason}); install SoX to use its effects")]
    SoxMissing { reason: String },
    #[error("`sox {effects}` failed: {reason}")]
    SoxFailed { effects: String, reason: String },
    #[error("LV2 plugins need afx built with `--features lv2` (scripts/install-lv2.sh installs what it links to)")]
    Lv2Disabled,
    #[error("LV2 plugin `{uri}` is not installed (`afx plugins` lists those that are)")]
    PluginNotFound { uri: String },
    #[error("LV2 plugin `{uri}` {reason}")]
    Plugin { uri: String, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
