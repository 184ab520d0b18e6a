//! The plugin host: finds runtime adapters (built-in and in plugin dirs),
//! validates each one, and hands the lifecycle code a typed `Adapter` per
//! runtime. A plugin that fails validation is reported, never fatal.
//!
//! Precedence when two plugins claim one runtime: a plugin-dir adapter
//! overrides the built-in one (an operator can ship a fixed adapter without a
//! new iapeerd); between plugin-dir adapters the first wins, in the order of
//! the plugin dirs and then of file names. The losers are listed as
//! `overridden` / `duplicate` with the winner named.

mod adapter;
mod bindings;
mod builtin;
mod cache;
mod fscache;
mod grants;
mod guest;
mod health;
mod hostfs;
mod plugin_dir;
mod sandbox;
mod secrets;
mod types;
#[macro_use]
mod version_glue;
mod v0_1;
mod v0_2;
mod v0_3;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

pub use adapter::{Adapter, AdapterError, CallBudgets, LimitCaps, sanitize_guest_text};
pub use builtin::is_builtin_runtime;
pub use cache::{CacheEntry, CompileCache, Origin};
pub use grants::{Grant, Grants, path as grants_path};
pub use types::*;
#[cfg(test)]
pub(crate) use v0_1::legacy_defaults;
#[cfg(test)]
pub(crate) use validate::info as validate_info;

/// For tests: the info a 0.1 claude adapter gets (Claude Code's markers
/// and environment, from the 0.1 host's assumptions).
#[cfg(test)]
pub(crate) fn legacy_claude_info() -> AdapterInfo {
    validate_info(RawInfo {
        runtime: "claude".into(),
        version: "1.0.0".into(),
        default_binary: "claude".into(),
        ..legacy_defaults((0, 1))
    })
    .unwrap()
}

use bindings::VersionedPre;
use plugin_dir::PluginDir;
use sandbox::Sandbox;

/// The WIT package every adapter implements.
pub const CONTRACT_PACKAGE: &str = "iapeer:adapter";
/// The contract versions this host serves (one generated module each).
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1", "0.2", "0.3"];
/// The contract versions served, as a range: `0.1`, `0.1–0.2`.
fn served_contracts() -> String {
    match SUPPORTED_CONTRACTS {
        [only] => only.to_string(),
        [first, .., last] => format!("{first}–{last}"),
        [] => "none".into(),
    }
}

/// A plugin file larger than this is refused unread.
pub(crate) const MAX_PLUGIN_BYTES: u64 = 64 << 20;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    BuiltIn(&'static str),
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::BuiltIn(name) => write!(f, "built-in:{name}"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the daemon reports is read back by `iapeer plugins list`. A
/// built-in's name is not `'static` when read: it is kept as a path-like
/// file source then (only printed).
impl<'de> serde::Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.strip_prefix("built-in:") {
            Some(name) => crate::plugins::builtin::BUILTINS
                .iter()
                .find(|b| b.name == name)
                .map(|b| Source::BuiltIn(b.name))
                .unwrap_or(Source::File(PathBuf::from(text))),
            None => Source::File(PathBuf::from(text)),
        })
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum PluginState {
    /// Serving its runtime.
    Loaded,
    /// Not a valid adapter (see the reason).
    Failed,
    /// Built for a contract version this host does not serve.
    Incompatible,
    /// A valid built-in adapter replaced by a plugin-dir adapter.
    Overridden,
    /// A valid adapter for a runtime another plugin already serves.
    Duplicate,
    /// Out of service after repeated crashes; a reload lifts it.
    Quarantined,
    /// A valid plugin-dir adapter that declares read dirs the operator has
    /// not granted to this exact file (see `grants`).
    #[serde(rename = "needs-grant")]
    #[strum(serialize = "needs-grant")]
    NeedsGrant,
}

/// One row of `iapeer plugins list`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PluginReport {
    pub runtime: Option<String>,
    pub version: Option<String>,
    /// The contract version the component was built against.
    pub wit: Option<String>,
    pub kind: Option<AdapterKind>,
    pub source: Source,
    pub builtin: bool,
    pub sha256: String,
    pub state: PluginState,
    pub reason: Option<String>,
    pub read_dirs: Vec<String>,
    /// Paths it reads below a peer's cwd (contract 0.2).
    pub cwd_read_paths: Vec<String>,
    pub uses_doctrine: Option<bool>,
    pub requires_intelligence: Option<String>,
    pub default_binary: Option<String>,
    pub binary_env: Option<String>,
    /// `compiled` now or loaded from the compile `cache`.
    pub load: Option<String>,
    /// The limits its calls run under (its declaration within the
    /// operator's caps, else the defaults).
    pub limits: Option<String>,
}

impl PluginReport {
    fn new(source: Source, sha256: String) -> Self {
        PluginReport {
            runtime: None,
            version: None,
            wit: None,
            kind: None,
            builtin: matches!(source, Source::BuiltIn(_)),
            source,
            sha256,
            state: PluginState::Failed,
            reason: None,
            read_dirs: Vec::new(),
            cwd_read_paths: Vec::new(),
            uses_doctrine: None,
            requires_intelligence: None,
            default_binary: None,
            binary_env: None,
            load: None,
            limits: None,
        }
    }

    /// `~/.gemini/tmp, <cwd>/.aider`: what it reads, `None` when nothing.
    pub fn reads(&self) -> Option<String> {
        let home = self.read_dirs.iter().map(|d| format!("~/{d}"));
        let cwd = self.cwd_read_paths.iter().map(|p| format!("<cwd>/{p}"));
        let all: Vec<String> = home.chain(cwd).collect();
        (!all.is_empty()).then(|| all.join(", "))
    }

    /// Do `grants` let this very file (its sha256) read all it declares?
    pub fn granted_by(&self, grants: &Grants) -> bool {
        grants.covers(&self.sha256, &self.read_dirs, &self.cwd_read_paths)
    }

    fn failed(mut self, state: PluginState, reason: impl Into<String>) -> Self {
        self.state = state;
        self.reason = Some(reason.into());
        self
    }
}

/// Where to look for plugins and how to load them.
#[derive(Debug, Clone)]
pub struct PluginOptions {
    /// The home directory the adapters' `read-dirs` are relative to.
    pub home: PathBuf,
    pub plugin_dirs: Vec<PathBuf>,
    pub builtins: bool,
    pub cache: CompileCache,
    pub budgets: CallBudgets,
    /// The most an adapter may declare it needs.
    pub caps: LimitCaps,
    /// The operator's grants file (`None`: nothing is granted).
    pub grants: Option<PathBuf>,
}

/// The loaded plugins: one adapter per runtime, plus a report on every
/// plugin found.
pub struct PluginHost {
    adapters: BTreeMap<String, Arc<Adapter>>,
    reports: Vec<PluginReport>,
    plugin_dirs: Vec<PathBuf>,
    /// How many adapters a reload kept from the previous host unchanged.
    reused: usize,
}

impl PluginHost {
    /// Loads the built-ins and every `*.wasm` of the plugin dirs. Fails only
    /// when the wasm engine itself cannot start.
    pub async fn load(opts: &PluginOptions) -> Result<PluginHost, String> {
        Self::load_reusing(opts, None).await
    }

    /// Loads again, reusing what did not change: an adapter whose file has
    /// the same sha256 as before is kept as it is (not recompiled, not
    /// re-probed); a changed file that does not validate leaves the previous
    /// version serving (its row says why); a removed file unloads.
    ///
    /// `lift_quarantines`: an operator asked (a file event does not put a
    /// quarantined adapter back; its own changed file does, being new).
    pub async fn reload(
        &self,
        opts: &PluginOptions,
        lift_quarantines: bool,
    ) -> Result<PluginHost, String> {
        if lift_quarantines {
            for a in self.adapters.values() {
                a.lift_quarantine();
            }
        }
        Self::load_reusing(opts, Some(self)).await
    }

    async fn load_reusing(
        opts: &PluginOptions,
        previous: Option<&PluginHost>,
    ) -> Result<PluginHost, String> {
        let sandbox = Sandbox::shared()?;
        let mut candidates: Vec<(PluginReport, Option<Arc<Adapter>>)> = Vec::new();
        if opts.builtins {
            for b in builtin::BUILTINS {
                let source = Source::BuiltIn(b.name);
                let reused = previous.and_then(|p| p.reuse(&source, None));
                candidates.push(match reused {
                    Some(kept) => kept,
                    None => arc(load_bytes(sandbox, opts, b.wasm, source).await),
                });
            }
        }
        let grants = match &opts.grants {
            Some(path) => Grants::read(path),
            None => Ok(Grants::default()),
        };
        let was_loaded: Vec<Arc<Adapter>> = previous
            .map(|p| p.adapters.values().cloned().collect())
            .unwrap_or_default();
        for dir in &opts.plugin_dirs {
            match PluginDir::open(dir) {
                Ok(None) => {}
                Ok(Some(dir)) => {
                    for name in dir.wasm_names() {
                        let loaded = load_path(sandbox, opts, &dir, &name, previous).await;
                        candidates.push(require_grant(loaded, &grants));
                    }
                }
                Err(reason) => candidates.push((
                    PluginReport::new(Source::File(dir.clone()), String::new())
                        .failed(PluginState::Failed, reason),
                    None,
                )),
            }
        }
        let mut host = Self::resolve(candidates, opts.plugin_dirs.clone());
        host.reused = host
            .adapters
            .values()
            .filter(|a| was_loaded.iter().any(|w| Arc::ptr_eq(a, w)))
            .count();
        Ok(host)
    }

    /// How many adapters the reload that made this host kept unchanged.
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// The adapter this host loaded from `source`, if its bytes are still
    /// `sha` (`None`: a built-in, unchanged by definition).
    fn reuse(
        &self,
        source: &Source,
        sha: Option<&str>,
    ) -> Option<(PluginReport, Option<Arc<Adapter>>)> {
        let report = self.reports.iter().find(|r| &r.source == source)?;
        if sha.is_some_and(|sha| sha != report.sha256) {
            return None;
        }
        let adapter = self
            .adapters
            .values()
            .find(|a| a.source() == source)
            .cloned();
        let mut report = report.clone();
        // The file holds the serving bytes again: a note that it had
        // changed and did not load no longer holds.
        if sha.is_some() && report.state == PluginState::Loaded {
            report.reason = None;
        }
        // Precedence is decided afresh below.
        if matches!(
            report.state,
            PluginState::Overridden | PluginState::Duplicate
        ) {
            report.state = PluginState::Loaded;
            report.reason = None;
        }
        adapter.is_some().then_some((report, adapter))
    }

    /// Applies the precedence rule (see the module docs).
    fn resolve(
        candidates: Vec<(PluginReport, Option<Arc<Adapter>>)>,
        plugin_dirs: Vec<PathBuf>,
    ) -> Self {
        let mut reports: Vec<PluginReport> = Vec::new();
        let mut winners: BTreeMap<String, (usize, Arc<Adapter>)> = BTreeMap::new();
        for (mut report, adapter) in candidates {
            let idx = reports.len();
            if let Some(adapter) = adapter {
                let runtime = adapter.info().runtime.to_string();
                match winners.get(&runtime) {
                    None => {
                        winners.insert(runtime, (idx, adapter));
                    }
                    Some((prev, _)) if reports[*prev].builtin && !report.builtin => {
                        let prev = *prev;
                        reports[prev].state = PluginState::Overridden;
                        reports[prev].reason = Some(format!("overridden by {}", report.source));
                        winners.insert(runtime, (idx, adapter));
                    }
                    Some((prev, _)) => {
                        report.state = PluginState::Duplicate;
                        report.reason = Some(format!(
                            "runtime {runtime:?} is already provided by {}",
                            reports[*prev].source
                        ));
                    }
                }
            }
            reports.push(report);
        }
        PluginHost {
            adapters: winners.into_iter().map(|(rt, (_, a))| (rt, a)).collect(),
            reports,
            plugin_dirs,
            reused: 0,
        }
    }

    /// The compile cache's entries, each marked in use or not (a plugin
    /// that is gone, or a compile by another wasmtime version).
    pub fn cache_entries(&self, opts: &PluginOptions) -> Result<Vec<CacheEntry>, String> {
        let sandbox = Sandbox::shared()?;
        let live: Vec<String> = self.reports.iter().map(|r| r.sha256.clone()).collect();
        Ok(opts.cache.entries(&sandbox.engine, &live))
    }

    /// Validates one file without installing it (`iapeer plugins inspect`).
    pub async fn inspect(path: &Path, opts: &PluginOptions) -> Result<PluginReport, String> {
        let sandbox = Sandbox::shared()?;
        Ok(load_file(sandbox, opts, path).await.0)
    }

    /// The adapter serving `runtime`, if any.
    pub fn adapter(&self, runtime: &str) -> Option<&Arc<Adapter>> {
        self.adapters.get(runtime)
    }

    /// Why a runtime that has an adapter on disk is not served by it (it
    /// waits for a grant), if that is the case.
    pub fn why_not_serving(&self, runtime: &str) -> Option<String> {
        self.reports
            .iter()
            .find(|r| r.state == PluginState::NeedsGrant && r.runtime.as_deref() == Some(runtime))
            .and_then(|r| r.reason.clone())
    }

    /// The runtimes served, sorted.
    pub fn runtimes(&self) -> impl Iterator<Item = &str> {
        self.adapters.keys().map(String::as_str)
    }

    /// One row per plugin, as things stand now (a serving adapter may have
    /// been quarantined since the load).
    pub fn reports(&self) -> Vec<PluginReport> {
        self.reports
            .iter()
            .map(|r| {
                let quarantine = (r.state == PluginState::Loaded)
                    .then(|| self.adapters.values().find(|a| a.source() == &r.source))
                    .flatten()
                    .and_then(|a| a.quarantine());
                match quarantine {
                    Some(reason) => PluginReport {
                        state: PluginState::Quarantined,
                        reason: Some(reason),
                        ..r.clone()
                    },
                    None => r.clone(),
                }
            })
            .collect()
    }

    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }
}

fn arc((report, adapter): (PluginReport, Option<Adapter>)) -> (PluginReport, Option<Arc<Adapter>>) {
    (report, adapter.map(Arc::new))
}

/// A plugin-dir adapter that reads files serves only once the operator
/// granted its read dirs to this exact file (by sha256).
fn require_grant(
    (report, adapter): (PluginReport, Option<Arc<Adapter>>),
    grants: &Result<Grants, String>,
) -> (PluginReport, Option<Arc<Adapter>>) {
    let Some(a) = adapter else {
        return (report, None);
    };
    let Some(reads) = report.reads() else {
        return (report, Some(a));
    };
    if grants.as_ref().is_ok_and(|g| report.granted_by(g)) {
        return (report, Some(a));
    }
    let file = match &report.source {
        Source::File(path) => path.display().to_string(),
        Source::BuiltIn(name) => name.to_string(),
    };
    let mut reason = format!(
        "reads {reads}, not granted to this file (sha256 {}…): run `iapeer plugins grant {file}`",
        &report.sha256[..12.min(report.sha256.len())]
    );
    if let Err(e) = grants {
        reason.push_str(&format!(" (the grants file is unusable: {e})"));
    }
    (report.failed(PluginState::NeedsGrant, reason), None)
}

/// One plugin file, reusing the previous host's adapter when the bytes did
/// not change, and keeping it when the new bytes cannot be read or do not
/// validate (its previous bytes were judged when they were read).
async fn load_path(
    sandbox: &'static Sandbox,
    opts: &PluginOptions,
    dir: &PluginDir,
    name: &std::ffi::OsStr,
    previous: Option<&PluginHost>,
) -> (PluginReport, Option<Arc<Adapter>>) {
    let source = Source::File(dir.path_of(name));
    let bytes = match dir.read(name) {
        Ok(b) => b,
        Err(reason) => {
            let report = PluginReport::new(source.clone(), String::new())
                .failed(PluginState::Failed, reason);
            return keep_previous(previous, &source, report, "cannot be used");
        }
    };
    let sha = sha256_hex(&bytes);
    if let Some(kept) = previous.and_then(|p| p.reuse(&source, Some(&sha))) {
        return kept;
    }
    let (report, adapter) = arc(load_bytes(sandbox, opts, &bytes, source.clone()).await);
    if adapter.is_some() {
        return (report, adapter);
    }
    let what = format!("changed (sha256 {}…) but does not load", &sha[..12]);
    keep_previous(previous, &source, report, &what)
}

/// A file that no longer loads: the version that validated keeps serving,
/// with the reason in its report; without one, the failure stands.
fn keep_previous(
    previous: Option<&PluginHost>,
    source: &Source,
    failed: PluginReport,
    what: &str,
) -> (PluginReport, Option<Arc<Adapter>>) {
    match previous.and_then(|p| p.reuse(source, None)) {
        Some((mut old, Some(adapter))) => {
            old.reason = Some(format!(
                "the file {what}: {}; the previous version keeps serving",
                failed.reason.as_deref().unwrap_or("invalid")
            ));
            (old, Some(adapter))
        }
        _ => (failed, None),
    }
}

/// The sha256 of a file, as grants name it.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(sha256_hex(&crate::fsutil::read_regular_file(
        path,
        MAX_PLUGIN_BYTES,
    )?))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn load_file(
    sandbox: &'static Sandbox,
    opts: &PluginOptions,
    path: &Path,
) -> (PluginReport, Option<Adapter>) {
    let source = Source::File(path.to_path_buf());
    match crate::fsutil::read_regular_file(path, MAX_PLUGIN_BYTES) {
        Ok(bytes) => load_bytes(sandbox, opts, &bytes, source).await,
        Err(e) => (
            PluginReport::new(source, String::new())
                .failed(PluginState::Failed, format!("cannot read: {e}")),
            None,
        ),
    }
}

/// What the first bytes say the file is.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(
            "a core WebAssembly module, not a component: build the adapter for wasm32-wasip2 \
             (or wrap the module with `wasm-tools component new`)"
                .into(),
        ),
        Some([0, b'a', b's', b'm', ..]) => {
            Err("a WebAssembly binary of an unsupported version or layer".into())
        }
        _ => Err("not a WebAssembly file (no \\0asm header)".into()),
    }
}

/// The version of `iapeer:adapter/adapter` the component exports.
fn exported_contract(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<semver::Version, String> {
    let prefix = format!("{CONTRACT_PACKAGE}/adapter@");
    let ty = component.component_type();
    let names: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let version = names
        .iter()
        .find_map(|n| n.strip_prefix(&prefix))
        .ok_or_else(|| {
            format!(
                "not a runtime adapter: it does not export {CONTRACT_PACKAGE}/adapter (exports: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )
        })?;
    semver::Version::parse(version).map_err(|e| format!("bad contract version {version:?}: {e}"))
}

async fn load_bytes(
    sandbox: &'static Sandbox,
    opts: &PluginOptions,
    bytes: &[u8],
    source: Source,
) -> (PluginReport, Option<Adapter>) {
    let sha = sha256_hex(bytes);
    let report = PluginReport::new(source.clone(), sha.clone());
    if let Err(reason) = check_header(bytes) {
        return (report.failed(PluginState::Failed, reason), None);
    }
    let (component, origin) = match opts.cache.load(&sandbox.engine, bytes, &sha) {
        Ok(c) => c,
        Err(e) => {
            return (
                report.failed(
                    PluginState::Failed,
                    format!("not a valid component: {:#}", e.root_cause()),
                ),
                None,
            );
        }
    };
    let mut report = report;
    report.load = Some(
        match origin {
            Origin::Compiled => "compiled",
            Origin::Cached => "cache",
        }
        .to_string(),
    );
    let version = match exported_contract(&sandbox.engine, &component) {
        Ok(v) => v,
        Err(reason) => return (report.failed(PluginState::Failed, reason), None),
    };
    report.wit = Some(version.to_string());
    let pre = match VersionedPre::new((version.major, version.minor), &sandbox.linker, &component) {
        Some(pre) => pre,
        None => {
            let reason = format!(
                "built for {CONTRACT_PACKAGE} {}.{}; this host serves {}",
                version.major,
                version.minor,
                served_contracts()
            );
            return (report.failed(PluginState::Incompatible, reason), None);
        }
    };
    let pre = match pre {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("cannot link against the host: {:#}", e.root_cause());
            return (report.failed(PluginState::Failed, reason), None);
        }
    };
    match Adapter::probe(sandbox, pre, source, &opts.home, opts.budgets, opts.caps).await {
        Ok(adapter) => {
            let info = adapter.info();
            report.state = PluginState::Loaded;
            report.runtime = Some(info.runtime.to_string());
            report.version = Some(info.version.clone());
            report.kind = Some(info.kind);
            report.read_dirs = info.read_dirs.clone();
            report.cwd_read_paths = info.cwd_read_paths.clone();
            report.uses_doctrine = Some(info.uses_doctrine);
            report.requires_intelligence = info.requires_intelligence.clone();
            report.default_binary = Some(info.default_binary.clone());
            report.binary_env = info.binary_env.clone();
            let b = adapter.budgets();
            report.limits = Some(format!(
                "{} MiB, {} ms a call, {} ms a scan",
                b.memory >> 20,
                b.quick.as_millis(),
                b.scan.as_millis()
            ));
            (report, Some(adapter))
        }
        Err(reason) => (report.failed(PluginState::Failed, reason), None),
    }
}
