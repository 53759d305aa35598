//! Model files: one file holds a network's kind (a style network, a neural proxy or a cTCN), its
//! config, its model card ([`ModelCard`]: how it was trained, held-out losses) and its weights.
//! A training checkpoint is a model file too, whose card is the training loop's state.
//!
//! Layout, integers little-endian:
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0 | 4 | magic `AFXM` |
//! | 4 | 4 | format version, [`FORMAT_VERSION`] |
//! | 8 | 4 | header length `H` |
//! | 12 | 8 | weights length `W` |
//! | 20 | 8 | FNV-1a 64-bit hash of every byte from offset 28 to the end |
//! | 28 | `H` | header, JSON: `{"kind": "style" \| "proxy" \| "ctcn", "config": StyleNetConfig \| ProxyConfig \| CtcnConfig, "card": ModelCard}` (no kind: style) |
//! | 28 + `H` | | zeros up to the next multiple of 256 |
//! | `P` | `W` | the weights as a burnpack (burn's own format) |
//!
//! Burnpack aligns each tensor to 256 bytes from its own start and loads without copying, so
//! its tensors must sit at 256-byte-aligned addresses; starting it at a multiple of 256 keeps a
//! whole file aligned when its buffer is, as for a model embedded with `include_bytes!` inside
//! an `#[repr(align(256))]` wrapper. Other buffers are copied into an aligned one.

use std::path::Path;

use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::card::ModelCard;
use super::ctcn::{Ctcn, CtcnConfig};
use super::network::{StyleNet, StyleNetConfig};
use super::proxy::{Proxy, ProxyConfig};
use crate::fx::ChainSpec;
use crate::{Error, Result};

/// Version of the layout above; bumped whenever a reader of the old one would misread it.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"AFXM";
/// Bytes before the header: magic, version, header length, weights length, hash.
const PREFIX_LEN: usize = 28;
/// Burnpack's tensor alignment, which the weights' start keeps.
const WEIGHTS_ALIGN: usize = 256;

/// A network read from a model file, with its model card.
#[derive(Debug)]
pub struct LoadedModel {
    pub net: StyleNet,
    pub card: ModelCard,
}

/// A cTCN read from a model file, with its card.
#[derive(Debug)]
pub struct LoadedCtcn {
    pub model: Ctcn,
    pub card: ModelCard,
}

/// Whatever a style-transfer model file holds: a knob-setting network or a cTCN.
// One value per loaded file, never in a hot path: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyModel {
    Style(LoadedModel),
    Ctcn(LoadedCtcn),
}

/// A proxy read from a model file, with its card.
#[derive(Debug)]
pub struct LoadedProxy {
    pub proxy: Proxy,
    pub card: ModelCard,
}

/// What a model file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Style,
    Proxy,
    Ctcn,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Style => "a style model",
            Kind::Proxy => "a neural proxy",
            Kind::Ctcn => "a cTCN model",
        }
    }
}

/// A module a model file can hold: its kind, and the config from which it is built again.
pub trait Stored: Module {
    const KIND: Kind;
    type Config: Serialize + serde::de::DeserializeOwned;
    fn stored_config(&self) -> Self::Config;
    /// The chain the module sets or imitates.
    fn chain(&self) -> ChainSpec;
    /// A module of `config`'s shape on `device` (weights to be loaded), if `config` validates.
    fn build(config: &Self::Config, device: &Device) -> Result<Self>;
}

impl Stored for StyleNet {
    const KIND: Kind = Kind::Style;
    type Config = StyleNetConfig;
    fn stored_config(&self) -> StyleNetConfig {
        self.config().clone()
    }
    fn chain(&self) -> ChainSpec {
        self.config().chain.clone()
    }
    fn build(config: &StyleNetConfig, device: &Device) -> Result<Self> {
        // Validation includes one network output per knob of the model's chain.
        config.validate()?;
        Ok(config.init(device, 0))
    }
}

impl Stored for Proxy {
    const KIND: Kind = Kind::Proxy;
    type Config = ProxyConfig;
    fn stored_config(&self) -> ProxyConfig {
        self.config().clone()
    }
    fn chain(&self) -> ChainSpec {
        self.config().chain.clone()
    }
    fn build(config: &ProxyConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        Ok(config.init(device, 0))
    }
}

impl Stored for Ctcn {
    const KIND: Kind = Kind::Ctcn;
    type Config = CtcnConfig;
    fn stored_config(&self) -> CtcnConfig {
        self.config()
    }
    fn chain(&self) -> ChainSpec {
        self.net.config().chain.clone()
    }
    fn build(config: &CtcnConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        Ok(config.init(device, 0))
    }
}

/// The JSON header; `config` is read once the kind is known.
#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(default = "style_kind")]
    kind: Kind,
    config: serde_json::Value,
    card: serde_json::Value,
}

fn style_kind() -> Kind {
    Kind::Style
}

impl Header {
    /// The config, if the file holds `kind`.
    fn config<C: serde::de::DeserializeOwned>(&self, kind: Kind) -> Result<C, String> {
        if self.kind != kind {
            return Err(format!("holds {}, not {}", self.kind.describe(), kind.describe()));
        }
        serde_json::from_value(self.config.clone()).map_err(|e| format!("unreadable header: {e}"))
    }
}

/// Writes `module` and `card` (stamped with the current version, the module's kind and
/// chain) to `path`, replacing any file there. The bytes go to a temporary file in the same
/// directory, which is synced and then renamed onto `path`, so a failure never leaves a partial
/// model.
pub fn save_module<M: Stored>(path: &Path, module: &M, card: &ModelCard) -> Result<()> {
    let fail = |reason: String| Error::ModelFile { what: path.display().to_string(), reason };
    let card = card.clone().upgraded(M::KIND, &module.chain());
    let card = serde_json::to_value(card).map_err(|e| fail(format!("cannot serialise the card: {e}")))?;
    crate::atomic::write_bytes_atomic(path, &encode(module, &card).map_err(fail)?).map_err(|e| fail(e.to_string()))
}

/// Writes a style network and its card to `path` ([`save_module`]).
pub fn save(path: &Path, net: &StyleNet, card: &ModelCard) -> Result<()> {
    save_module(path, net, card)
}

/// Writes a proxy and its card to `path` ([`save_module`]).
pub fn save_proxy(path: &Path, proxy: &Proxy, card: &ModelCard) -> Result<()> {
    save_module(path, proxy, card)
}

/// Writes a cTCN and its card to `path` ([`save_module`]).
pub fn save_ctcn(path: &Path, model: &Ctcn, card: &ModelCard) -> Result<()> {
    save_module(path, model, card)
}

/// The bytes of the file at `path`; errors name it.
fn read(path: &Path) -> Result<(Vec<u8>, String)> {
    let what = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::ModelFile { what: what.clone(), reason: e.to_string() })?;
    Ok((bytes, what))
}

/// Reads a module of kind `M` and its card, as written, from the bytes of a model file onto `device`;
/// `what` names it in errors. The weights are copied into an aligned buffer. Parameter ids are
/// the saved ones, which a checkpoint's optimiser state refers to.
pub(super) fn decode<M: Stored>(bytes: &[u8], what: &str, device: &Device) -> Result<(M, serde_json::Value)> {
    let fail = |reason| Error::ModelFile { what: what.into(), reason };
    let (header, weights) = parse(bytes).map_err(fail)?;
    build(header, copied(weights), device).map_err(fail)
}

/// Builds the module the header describes on `device` and loads the weights, which must match
/// it tensor for tensor.
fn build<M: Stored>(header: Header, store: BurnpackStore, device: &Device) -> Result<(M, serde_json::Value), String> {
    let config: M::Config = header.config(M::KIND)?;
    let mut module = M::build(&config, device).map_err(|e| e.to_string())?;
    load_weights(&mut module, store)?;
    Ok((module, header.card))
}

/// Reads a style model file written by [`save`].
pub fn load(path: &Path) -> Result<LoadedModel> {
    let (bytes, what) = read(path)?;
    from_bytes(&bytes, &what)
}

/// Reads a model from the bytes of a model file; `what` names it in errors.
fn from_bytes(bytes: &[u8], what: &str) -> Result<LoadedModel> {
    let (net, card) = decode(bytes, what, &Device::flex())?;
    Ok(LoadedModel { card: read_card(&net, card), net })
}

/// A file's card, upgraded to the current version.
fn read_card<M: Stored>(module: &M, card: serde_json::Value) -> ModelCard {
    ModelCard::from_json(card).upgraded(M::KIND, &module.chain())
}

/// Reads a model embedded in the program (`include_bytes!`). Zero-copy when the weights start
/// at a 256-byte-aligned address (embed the file in an `#[repr(align(256))]` wrapper); any
/// other buffer is copied.
pub fn from_static(bytes: &'static [u8]) -> Result<LoadedModel> {
    let fail = |reason| Error::ModelFile { what: "(embedded)".into(), reason };
    let (header, weights) = parse(bytes).map_err(fail)?;
    let store = if weights.as_ptr().addr() % WEIGHTS_ALIGN == 0 { BurnpackStore::from_static(weights) } else { copied(weights) };
    let (net, card) = build(header, store, &Device::flex()).map_err(fail)?;
    Ok(LoadedModel { card: read_card(&net, card), net })
}

/// A store over a copy of `weights` in a buffer aligned for every tensor element type.
fn copied(weights: &[u8]) -> BurnpackStore {
    BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(weights.to_vec())))
}

/// The bytes of a model file holding `module` with its config, and `card`.
pub(super) fn encode<M: Stored>(module: &M, card: &serde_json::Value) -> Result<Vec<u8>, String> {
    let mut store = BurnpackStore::from_bytes(None);
    module.save_into(&mut store).map_err(|e| format!("cannot serialise the weights: {e}"))?;
    let weights = store.get_bytes().map_err(|e| format!("cannot serialise the weights: {e}"))?;
    let config = serde_json::to_value(module.stored_config()).map_err(|e| format!("cannot serialise the config: {e}"))?;
    let header = serde_json::to_vec(&Header { kind: M::KIND, config, card: card.clone() })
        .map_err(|e| format!("cannot serialise the header: {e}"))?;
    Ok(assemble(&header, &weights))
}

/// Reads a proxy file written by [`save_proxy`] onto `device`.
pub fn load_proxy_on(path: &Path, device: &Device) -> Result<LoadedProxy> {
    let (bytes, what) = read(path)?;
    let (proxy, card) = decode(&bytes, &what, device)?;
    Ok(LoadedProxy { card: read_card(&proxy, card), proxy })
}

/// Reads a proxy file onto the plain CPU device.
pub fn load_proxy(path: &Path) -> Result<LoadedProxy> {
    load_proxy_on(path, &Device::flex())
}

/// Reads a style model or a cTCN, whichever the file at `path` holds (a proxy is an error).
pub fn load_any(path: &Path) -> Result<AnyModel> {
    let (bytes, what) = read(path)?;
    let (header, _) = parse(&bytes).map_err(|reason| Error::ModelFile { what: what.clone(), reason })?;
    match header.kind {
        Kind::Ctcn => {
            let (model, card) = decode(&bytes, &what, &Device::flex())?;
            Ok(AnyModel::Ctcn(LoadedCtcn { card: read_card(&model, card), model }))
        }
        _ => Ok(AnyModel::Style(from_bytes(&bytes, &what)?)),
    }
}

/// Copies the model file `from` to `to` with `card` in place of its card (the module's bytes
/// are not decoded; the copy's checksum is new).
pub fn copy_with_card(from: &Path, to: &Path, card: &ModelCard) -> Result<()> {
    let (bytes, what) = read(from)?;
    let fail = |reason: String| Error::ModelFile { what: what.clone(), reason };
    let (header, weights) = parse(&bytes).map_err(fail)?;
    let chain = match header.kind {
        Kind::Style => header.config::<StyleNetConfig>(Kind::Style).map(|c| c.chain),
        Kind::Proxy => header.config::<ProxyConfig>(Kind::Proxy).map(|c| c.chain),
        Kind::Ctcn => header.config::<CtcnConfig>(Kind::Ctcn).map(|c| c.net.chain),
    }
    .map_err(fail)?;
    let card =
        serde_json::to_value(card.clone().upgraded(header.kind, &chain)).map_err(|e| fail(format!("cannot serialise the card: {e}")))?;
    let header = serde_json::to_vec(&Header { card, ..header }).map_err(|e| fail(format!("cannot serialise the header: {e}")))?;
    let fail_to = |reason: String| Error::ModelFile { what: to.display().to_string(), reason };
    crate::atomic::write_bytes_atomic(to, &assemble(&header, weights)).map_err(|e| fail_to(e.to_string()))
}

/// The kind of module the model file at `path` holds.
pub fn kind_of(path: &Path) -> Result<Kind> {
    let (bytes, what) = read(path)?;
    Ok(parse(&bytes).map_err(|reason| Error::ModelFile { what, reason })?.0.kind)
}

/// Lays out prefix, header, padding and weights, and fills in the hash.
fn assemble(header: &[u8], weights: &[u8]) -> Vec<u8> {
    let weights_start = (PREFIX_LEN + header.len()).next_multiple_of(WEIGHTS_ALIGN);
    let mut bytes = Vec::with_capacity(weights_start + weights.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(header);
    bytes.resize(weights_start, 0);
    bytes.extend_from_slice(weights);
    let hash = fnv1a64(&bytes[PREFIX_LEN..]);
    bytes[20..PREFIX_LEN].copy_from_slice(&hash.to_le_bytes());
    bytes
}

/// Checks the prefix, lengths and hash, and parses and validates the header; returns the
/// header and the weights.
fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), String> {
    let field = |range: std::ops::Range<usize>| bytes.get(range).ok_or_else(|| truncated(bytes.len(), PREFIX_LEN));
    let u32_at = |at: usize| field(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let u64_at = |at: usize| field(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if field(0..4)? != MAGIC {
        return Err("not an afx model (wrong magic bytes)".into());
    }
    let version = u32_at(4)?;
    if version != FORMAT_VERSION {
        return Err(format!("format version {version}, this afx reads version {FORMAT_VERSION}"));
    }
    let header_len = u32_at(8)? as usize;
    let weights_len = usize::try_from(u64_at(12)?).map_err(|_| "weights length does not fit in memory".to_string())?;
    let weights_start = (PREFIX_LEN + header_len).next_multiple_of(WEIGHTS_ALIGN);
    let expected = weights_start.checked_add(weights_len).ok_or("weights length overflows")?;
    if bytes.len() != expected {
        return Err(if bytes.len() < expected {
            truncated(bytes.len(), expected)
        } else {
            format!("{} bytes after the end of the weights", bytes.len() - expected)
        });
    }
    if fnv1a64(&bytes[PREFIX_LEN..]) != u64_at(20)? {
        return Err("checksum mismatch: the file is damaged".into());
    }
    let header: Header =
        serde_json::from_slice(&bytes[PREFIX_LEN..PREFIX_LEN + header_len]).map_err(|e| format!("unreadable header: {e}"))?;
    Ok((header, &bytes[weights_start..]))
}

/// The model card of a model file's bytes, without building the network.
pub(super) fn card_of(bytes: &[u8]) -> Result<serde_json::Value, String> {
    parse(bytes).map(|(header, _)| header.card)
}

fn truncated(len: usize, expected: usize) -> String {
    format!("truncated: {len} bytes, expected {expected}")
}

/// Loads `store` into `module`, whose tensors it must match one for one.
fn load_weights<M: Module>(module: &mut M, mut store: BurnpackStore) -> Result<(), String> {
    let applied = module.load_from(&mut store).map_err(|e| format!("weights do not match the config: {e}"))?;
    if !applied.unused.is_empty() {
        return Err(format!("weights do not match the config: unused tensors {:?}", applied.unused));
    }
    Ok(())
}

/// FNV-1a, 64-bit (Fowler, Noll & Vo; IETF draft-eastlake-fnv): detects accidental damage, not
/// tampering.
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::{ChainSpec, NUM_KNOBS};
    use crate::model::network::tests::noise_features;
    use crate::model::network::{ConvSpec, StyleNetConfig};

    fn small_config() -> StyleNetConfig {
        let conv = vec![ConvSpec { channels: 16, stride: 1 }, ConvSpec { channels: 16, stride: 2 }];
        StyleNetConfig { conv, embedding_dim: 16, hidden_dim: 32, ..StyleNetConfig::default() }
    }

    fn card() -> ModelCard {
        ModelCard::from_json(serde_json::json!({ "trained_on": "tests", "mr_stft": 1.25 }))
    }

    fn card_json() -> serde_json::Value {
        serde_json::to_value(card()).unwrap()
    }

    /// `bytes` copied to a leaked buffer at an address `offset` bytes past a 256-byte boundary.
    fn leak_at(bytes: &[u8], offset: usize) -> &'static [u8] {
        let buffer: &'static mut [u8] = Vec::leak(vec![0u8; bytes.len() + 2 * WEIGHTS_ALIGN]);
        let start = buffer.as_ptr().addr().next_multiple_of(WEIGHTS_ALIGN) - buffer.as_ptr().addr() + offset;
        let slot = &mut buffer[start..start + bytes.len()];
        slot.copy_from_slice(bytes);
        slot
    }

    #[test]
    fn save_load_round_trip_is_bit_identical() {
        let config = StyleNetConfig::default();
        let net = config.init(&Device::flex(), 11);
        let input = noise_features(&config.features, 3, 30_000, 1);
        let reference = noise_features(&config.features, 3, 20_000, 2);
        let want = net.predict(&input, &reference);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("style.afxm");
        save(&path, &net, &card()).unwrap();
        save(&path, &net, &card()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary files left");
        let bytes = std::fs::read(&path).unwrap();

        let from_file = load(&path).unwrap();
        assert_eq!(from_file.net.config(), &config);
        assert_eq!(from_file.card, card().upgraded(Kind::Style, &config.chain));
        assert_eq!(from_file.net.predict(&input, &reference), want);
        for offset in [0, 1, 3, 128] {
            let loaded = from_static(leak_at(&bytes, offset)).unwrap();
            assert_eq!(loaded.net.predict(&input, &reference), want, "offset {offset}");
        }
    }

    /// A network of another chain keeps its chain and its predictions through a file.
    #[test]
    fn a_model_of_any_chain_round_trips() {
        let config = small_config().with_chain("hpf,eq,comp,limiter".parse().unwrap());
        let net = config.init(&Device::flex(), 5);
        let (input, reference) = (noise_features(&config.features, 2, 20_000, 3), noise_features(&config.features, 2, 20_000, 4));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.afx");
        save(&path, &net, &card()).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.net.config().chain.to_string(), "hpf,eq,comp,limiter");
        let predicted = loaded.net.predict(&input, &reference);
        assert_eq!(predicted[0].len(), config.chain.num_knobs());
        assert_eq!(predicted, net.predict(&input, &reference));
    }

    #[test]
    fn proxies_round_trip_and_kinds_are_not_confused() {
        use crate::model::proxy::ProxyConfig;
        let config = ProxyConfig { channels: 4, dilations: vec![1, 2], ..ProxyConfig::new("comp".parse().unwrap()) };
        let proxy = config.init(&Device::flex(), 5);
        let dir = tempfile::tempdir().unwrap();
        let (proxy_path, style_path) = (dir.path().join("comp.afx"), dir.path().join("style.afx"));
        save_proxy(&proxy_path, &proxy, &card()).unwrap();
        save(&style_path, &small_config().init(&Device::flex(), 1), &card()).unwrap();

        let loaded = load_proxy(&proxy_path).unwrap();
        assert_eq!(loaded.proxy.config(), &config);
        assert_eq!(loaded.card, card().upgraded(Kind::Proxy, &config.chain));
        let run = |p: &Proxy| {
            let x =
                Tensor::<2>::from_data(TensorData::new((0..40).map(|i| (i as f32).sin()).collect::<Vec<_>>(), [1, 40]), &Device::flex());
            let k = Tensor::<2>::from_data(TensorData::new(vec![0.3f32; 6], [1, 6]), &Device::flex());
            p.forward(x, k).into_data().try_into_vec::<f32>().unwrap()
        };
        assert_eq!(run(&loaded.proxy), run(&proxy));
        let style_error = load(&proxy_path).unwrap_err().to_string();
        assert!(style_error.contains("holds a neural proxy, not a style model"), "{style_error}");
        let proxy_error = load_proxy(&style_path).unwrap_err().to_string();
        assert!(proxy_error.contains("holds a style model, not a neural proxy"), "{proxy_error}");

        // A file from before proxies imitated chains names its effect; it reads as that chain.
        let bytes = std::fs::read(&proxy_path).unwrap();
        let (header, weights) = split(&bytes);
        let mut header: serde_json::Value = serde_json::from_slice(header).unwrap();
        let old_config = header["config"].as_object_mut().unwrap();
        assert_eq!(old_config.remove("chain").unwrap(), "comp");
        old_config.insert("effect".into(), "comp".into());
        let (old, _) = decode::<Proxy>(&assemble(&serde_json::to_vec(&header).unwrap(), weights), "old", &Device::flex()).unwrap();
        assert_eq!(old.config(), &config);
        assert_eq!(run(&old), run(&proxy));
    }

    #[test]
    fn ctcn_round_trips_and_is_told_apart() {
        use crate::model::network::tests::noise_features;
        use crate::model::proxy::ProxyConfig;
        let config = CtcnConfig {
            net: small_config(),
            tcn: ProxyConfig { channels: 3, kernel_size: 3, dilations: vec![1, 2], ..ProxyConfig::new(ChainSpec::default()) },
        };
        let model = config.init(&Device::flex(), 9);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctcn.afx");
        save_ctcn(&path, &model, &card()).unwrap();
        let AnyModel::Ctcn(loaded) = load_any(&path).unwrap() else { panic!("not read as a cTCN") };
        assert_eq!(loaded.model.config(), config);
        assert_eq!(loaded.card, card().upgraded(Kind::Ctcn, &config.net.chain));
        let input = noise_features(&config.net.features, 1, 12_000, 1);
        let reference = noise_features(&config.net.features, 1, 12_000, 2);
        let audio = vec![(0..50).map(|i| (i as f32 * 0.2).sin()).collect::<Vec<f32>>()];
        assert_eq!(loaded.model.process(&input, &reference, &audio), model.process(&input, &reference, &audio));
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("holds a cTCN model, not a style model"), "{error}");
        let style_path = dir.path().join("style.afx");
        save(&style_path, &small_config().init(&Device::flex(), 1), &card()).unwrap();
        assert!(matches!(load_any(&style_path).unwrap(), AnyModel::Style(_)));
    }

    /// Reading `bytes` must give a model-file error, not a model and not a panic.
    fn assert_refused(name: &str, bytes: &[u8]) {
        match from_bytes(bytes, "test") {
            Err(Error::ModelFile { reason, .. }) => eprintln!("{name}: {reason}"),
            other => panic!("{name}: {other:?}"),
        }
    }

    /// The header and the weights of a model file.
    fn split(bytes: &[u8]) -> (&[u8], &[u8]) {
        let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let weights_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
        (&bytes[PREFIX_LEN..PREFIX_LEN + header_len], &bytes[bytes.len() - weights_len..])
    }

    /// The bundled model's card, written before cards were typed, reads as the current version
    /// with the file's kind and chain and its training record.
    #[test]
    fn the_bundled_models_old_card_upgrades() {
        let card = crate::transfer::bundled_model().unwrap().card;
        assert_eq!(
            (card.version, card.kind, card.chain.clone()),
            (super::super::card::CARD_VERSION, Some(Kind::Style), Some(ChainSpec::default()))
        );
        assert_eq!(card.estimator(), Some(crate::train::EstimatorKind::Exact));
        assert!(card.training.is_some_and(|t| t.steps > 0 && t.config["net"].is_object()));
        assert!(card.data.is_some_and(|d| d.train.files > 0) && card.validation.is_some_and(|v| v.best_loss.is_some()));
    }

    #[test]
    fn damaged_files_are_errors() {
        let good = encode(&small_config().init(&Device::flex(), 1), &card_json()).unwrap();
        let weights_start = good.len() - split(&good).1.len();
        assert_refused("empty", &[]);
        assert_refused("wrong magic", &[b"RIFF".as_slice(), &good[4..]].concat());
        assert_refused("version 2", &[&good[..4], &2u32.to_le_bytes(), &good[8..]].concat());
        assert_refused("trailing byte", &[good.as_slice(), &[0]].concat());
        let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert_refused("noise", &noise);
        for len in [3, 10, PREFIX_LEN, PREFIX_LEN + 5, weights_start, good.len() - 1] {
            assert_refused(&format!("truncated to {len}"), &good[..len]);
        }
        for at in [PREFIX_LEN + 2, weights_start + 8, good.len() - 1] {
            let mut flipped = good.clone();
            flipped[at] ^= 0x40;
            assert_refused(&format!("byte {at} flipped"), &flipped);
        }
    }

    /// Files with a correct prefix and checksum whose header and weights do not belong together:
    /// configs that describe another network, and weights that are not a whole burnpack.
    #[test]
    fn well_formed_files_with_wrong_contents_are_errors() {
        let good = encode(&small_config().init(&Device::flex(), 1), &card_json()).unwrap();
        let (header, weights) = split(&good);
        let small = small_config();
        let extra_conv = ConvSpec { channels: 16, stride: 2 };
        let configs = [
            ("wider", StyleNetConfig { hidden_dim: 64, ..small.clone() }),
            ("deeper", StyleNetConfig { conv: [small.conv.clone(), vec![extra_conv]].concat(), ..small.clone() }),
            ("shallower", StyleNetConfig { conv: small.conv[..1].to_vec(), ..small.clone() }),
            ("fewer knobs", StyleNetConfig { num_knobs: NUM_KNOBS - 1, ..small.clone() }),
            ("another chain", StyleNetConfig { chain: "eq,gain,comp".parse().unwrap(), num_knobs: NUM_KNOBS + 1, ..small.clone() }),
        ];
        for (name, config) in configs {
            let header =
                serde_json::to_vec(&Header { kind: Kind::Style, config: serde_json::to_value(config).unwrap(), card: card_json() })
                    .unwrap();
            assert_refused(name, &assemble(&header, weights));
        }
        assert_refused("header not a config", &assemble(br#"{"config": 3, "card": null}"#, weights));
        assert_refused("half the weights", &assemble(header, &weights[..weights.len() / 2]));
        assert_refused("weights not a burnpack", &assemble(header, &vec![7; weights.len()]));
    }
}
