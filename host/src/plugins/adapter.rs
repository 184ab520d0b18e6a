//! `Adapter`: the typed, sandboxed handle the lifecycle code calls.
//!
//! Every call runs under two limits: the epoch deadline, which interrupts a
//! guest spinning in wasm, and a wall-clock timeout around the whole call,
//! which also covers time the guest spends blocked in a host call (a WASI
//! sleep, a slow read). Plus the store's memory and table caps.
//!
//! An instance is reused across calls (a call then costs a few microseconds
//! plus the guest's own work); one that failed or timed out is dropped, so
//! the next call gets a clean instance and a failure never outlives the call
//! that hit it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use wasmtime::{Store, Trap};

use super::bindings::{VersionedInstance, VersionedPre};
use super::guest::GuestState;
use super::health::Health;
use super::hostfs::FileGrants;
use super::sandbox::{self, MEMORY_CAP, Sandbox};
use super::types::{
    AdapterInfo, ControlSequence, DeclaredLimits, LaunchCommand, LaunchSpec, ResumeCheck, TurnState,
};
use super::{Source, validate};

/// Limits of adapter calls: the host's defaults, or what an adapter
/// declared (`info.limits`) within the operator's [`LimitCaps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudgets {
    /// A call that only looks at its arguments (and instantiation).
    pub quick: Duration,
    /// A call that scans transcript directories.
    pub scan: Duration,
    /// Linear memory of one instance, in bytes.
    pub memory: usize,
}

impl Default for CallBudgets {
    fn default() -> Self {
        CallBudgets {
            quick: Duration::from_secs(1),
            scan: Duration::from_secs(10),
            memory: MEMORY_CAP,
        }
    }
}

/// The most an adapter may declare (`IAPEER_PLUGIN_MAX_MEMORY_MIB`,
/// `IAPEER_PLUGIN_MAX_CALL_MS`). A component that does not instantiate
/// within the defaults is tried once more under these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCaps {
    pub memory: usize,
    pub call: Duration,
}

impl Default for LimitCaps {
    fn default() -> Self {
        LimitCaps {
            memory: 256 << 20,
            call: Duration::from_secs(30),
        }
    }
}

impl CallBudgets {
    /// What `declared` asks for, each value within `caps`.
    fn declared(declared: &DeclaredLimits, caps: LimitCaps) -> CallBudgets {
        let ms = |v: u32| Duration::from_millis(u64::from(v)).min(caps.call);
        CallBudgets {
            quick: ms(declared.call_ms),
            scan: ms(declared.scan_ms),
            memory: ((declared.memory_mib as usize) << 20).min(caps.memory),
        }
    }

    /// These budgets raised to the caps (for a component too big for them).
    fn raised_to(self, caps: LimitCaps) -> CallBudgets {
        CallBudgets {
            quick: self.quick.max(caps.call),
            scan: self.scan.max(caps.call),
            memory: self.memory.max(caps.memory),
        }
    }
}

/// An instance is retired after this many calls, so a guest that leaks
/// memory never grows into its cap.
const CALLS_PER_INSTANCE: u32 = 10_000;
/// Limits on what the host will send to tmux on an adapter's word.
const MAX_KEYS: usize = 32;
const MAX_CONTROL_STEPS: usize = 16;
/// Guest-provided text quoted in messages is clipped to this many chars.
const MAX_GUEST_TEXT: usize = 300;

/// A failed adapter call. The host stays up; only this call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The guest trapped, timed out, ran out of memory or could not be
    /// instantiated.
    #[error("adapter {plugin}: {call} failed: {message}")]
    Crashed {
        plugin: String,
        call: &'static str,
        message: String,
    },
    /// The guest answered something the contract does not allow.
    #[error("adapter {plugin}: {call} returned an invalid result: {reason}")]
    Invalid {
        plugin: String,
        call: &'static str,
        reason: String,
    },
    /// `build-launch` declined the spec with this message.
    #[error("{0}")]
    Refused(String),
    /// Out of service after repeated crashes (see `health`).
    #[error("adapter {plugin} is quarantined ({reason}); a reload or a changed file lifts it")]
    Quarantined { plugin: String, reason: String },
}

struct Live {
    store: Store<GuestState>,
    /// Its memory cap, for messages.
    memory: usize,
    instance: VersionedInstance,
    preopen_mask: u64,
    calls: u32,
}

pub struct Adapter {
    info: AdapterInfo,
    source: Source,
    pre: VersionedPre,
    grants: Arc<FileGrants>,
    sandbox: &'static Sandbox,
    budgets: CallBudgets,
    idle: Mutex<Option<Live>>,
    health: Mutex<Health>,
}

/// Guest text made safe for one terminal line: control characters become
/// spaces, runs of whitespace one space, and the result is clipped.
pub fn sanitize_guest_text(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut clipped: String = one_line.chars().take(MAX_GUEST_TEXT).collect();
    if one_line.chars().count() > MAX_GUEST_TEXT {
        clipped.push('…');
    }
    clipped
}

/// A one-line description of why a guest call failed.
fn describe_failure(e: &wasmtime::Error, stderr: &str, budget: Duration, memory: usize) -> String {
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return format!("timed out after {budget:?}");
    }
    let root = e.root_cause().to_string();
    let mut message = if root.contains("growing memory") || root.contains("growing table") {
        format!("exceeded its memory cap ({} MiB)", memory >> 20)
    } else {
        sanitize_guest_text(&root)
    };
    // A guest panic prints its message to stderr before trapping.
    let stderr = sanitize_guest_text(stderr);
    if !stderr.is_empty() {
        message.push_str(&format!(" ({stderr})"));
    }
    message
}

/// `none_means_wait`: `boot-dialog-keys` may answer with no keys (a screen
/// it knows that passes by itself); a control step may not.
fn check_keys(keys: &[String], none_means_wait: bool) -> Result<(), String> {
    let least = usize::from(!none_means_wait);
    if keys.len() < least || keys.len() > MAX_KEYS {
        return Err(format!(
            "{} keys (expected {least}..={MAX_KEYS})",
            keys.len()
        ));
    }
    match keys
        .iter()
        .find(|k| k.is_empty() || k.chars().any(char::is_control) || k.len() > 4096)
    {
        Some(k) => Err(format!(
            "key {:?} is empty, too long or has control characters",
            sanitize_guest_text(k)
        )),
        None => Ok(()),
    }
}

/// The wall-clock limit of a whole call: the epoch deadline plus slack, so a
/// guest spinning in wasm is reported as the epoch trap, and only a guest
/// stuck in a host call hits this.
fn wall_clock(budget: Duration) -> Duration {
    budget + budget / 2 + Duration::from_millis(100)
}

/// Why a guest call failed, and whether the guest itself is to blame (a
/// trap, its memory cap, its own time spent in wasm) — as opposed to time
/// lost in a host call, which a slow disk or a busy machine can cause.
struct CallFailure {
    message: String,
    guest_fault: bool,
}

/// Runs one guest call on `live` (which the caller drops on any error).
async fn guest_call<R>(
    live: &mut Live,
    budget: Duration,
    call: impl AsyncFnOnce(&VersionedInstance, &mut Store<GuestState>) -> wasmtime::Result<R>,
) -> Result<R, CallFailure> {
    sandbox::arm_deadline(&mut live.store, budget);
    match tokio::time::timeout(wall_clock(budget), call(&live.instance, &mut live.store)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallFailure {
            message: describe_failure(&e, &live.store.data().stderr_text(), budget, live.memory),
            guest_fault: true,
        }),
        Err(_) => Err(CallFailure {
            message: format!("timed out after {budget:?} (blocked in a host call)"),
            guest_fault: false,
        }),
    }
}

impl Adapter {
    /// Instantiates once and asks `info`: type mismatches between the
    /// component and the contract only show up at instantiation, so a plugin
    /// is not accepted before this succeeded.
    pub(crate) async fn probe(
        sandbox: &'static Sandbox,
        pre: VersionedPre,
        source: Source,
        home: &std::path::Path,
        budgets: CallBudgets,
        caps: LimitCaps,
    ) -> Result<Adapter, String> {
        let no_grants = Arc::new(FileGrants::new(home, &[], &[]));
        // A big component (a language runtime inside) may need more than the
        // defaults just to start: then once more under the operator's caps,
        // which it keeps unless it declares its own limits.
        let (mut live, budgets) = match instantiate(sandbox, &pre, &no_grants, 0, budgets).await {
            Ok(live) => (live, budgets),
            Err(first) => {
                let raised = budgets.raised_to(caps);
                if raised == budgets {
                    return Err(format!(
                        "does not instantiate against the contract: {first}"
                    ));
                }
                let live = instantiate(sandbox, &pre, &no_grants, 0, raised)
                    .await
                    .map_err(|e| format!("does not instantiate against the contract: {e}"))?;
                (live, raised)
            }
        };
        let raw = guest_call(&mut live, budgets.quick, async |i, s| i.info(s).await)
            .await
            .map_err(|e| format!("info() failed: {}", e.message))?;
        let info = validate::info(raw)?;
        let probed = budgets;
        let budgets = match &info.limits {
            Some(declared) => CallBudgets::declared(declared, caps),
            None => budgets,
        };
        // Under other limits than the probe's: it must start under those.
        if budgets != probed {
            instantiate(sandbox, &pre, &no_grants, 0, budgets)
                .await
                .map_err(|e| {
                    format!(
                        "does not start within its limits ({} MiB, {:?}; the operator's caps: \
                         IAPEER_PLUGIN_MAX_MEMORY_MIB, IAPEER_PLUGIN_MAX_CALL_MS): {e}",
                        budgets.memory >> 20,
                        budgets.quick
                    )
                })?;
        }
        let grants = Arc::new(FileGrants::new(home, &info.read_dirs, &info.cwd_read_paths));
        Ok(Adapter {
            info,
            source,
            pre,
            grants,
            sandbox,
            budgets,
            idle: Mutex::new(None),
            health: Mutex::new(Health::default()),
        })
    }

    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    /// The limits its calls run under.
    pub fn budgets(&self) -> CallBudgets {
        self.budgets
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// `runtime (source)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.info.runtime, self.source)
    }

    async fn call<R>(
        &self,
        call: &'static str,
        budget: Duration,
        cwd: Option<&str>,
        f: impl AsyncFnOnce(&VersionedInstance, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, AdapterError> {
        if let Some(reason) = self.quarantine() {
            return Err(AdapterError::Quarantined {
                plugin: self.label(),
                reason,
            });
        }
        let crashed = |CallFailure {
                           message,
                           guest_fault,
                       }| {
            // Only a plugin's own faults count: time lost in host calls is
            // not its doing, and the built-ins are trusted as shipped.
            let counts = guest_fault && matches!(self.source, Source::File(_));
            if counts && self.health().crashed(std::time::Instant::now(), &message) {
                tracing::warn!(adapter = %self.label(), "quarantined after repeated crashes: {message}");
            }
            AdapterError::Crashed {
                plugin: self.label(),
                call,
                message,
            }
        };
        let mask = self.grants.presence_mask();
        let cached = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|l| l.preopen_mask == mask && l.calls < CALLS_PER_INSTANCE);
        let mut live = match cached {
            Some(live) => live,
            None => instantiate(self.sandbox, &self.pre, &self.grants, mask, self.budgets)
                .await
                .map_err(|e| {
                    crashed(CallFailure {
                        message: format!("cannot instantiate: {e}"),
                        guest_fault: false,
                    })
                })?,
        };
        live.store.data_mut().call_cwd = cwd.map(str::to_string);
        // On any error the instance may be poisoned: it is dropped with it.
        let value = guest_call(&mut live, budget, f).await.map_err(crashed)?;
        live.store.data_mut().call_cwd = None;
        live.calls += 1;
        let mut slot = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(live);
        }
        Ok(value)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why the adapter is out of service, if it is.
    pub fn quarantine(&self) -> Option<String> {
        self.health().quarantined().map(str::to_string)
    }

    /// Back in service (a reload).
    pub fn lift_quarantine(&self) {
        self.health().lift();
    }

    fn invalid(&self, call: &'static str, reason: String) -> AdapterError {
        AdapterError::Invalid {
            plugin: self.label(),
            call,
            reason,
        }
    }

    /// Calls the guest's `info` again (the loaded facts are in `info()`);
    /// measures the bare cost of a call.
    #[cfg(any(test, feature = "testing"))]
    pub async fn fetch_info(&self) -> Result<AdapterInfo, AdapterError> {
        let raw = self
            .call("info", self.budgets.quick, None, async |i, s| {
                i.info(s).await
            })
            .await?;
        validate::info(raw).map_err(|r| self.invalid("info", r))
    }

    /// Drops the cached instance: the next call instantiates afresh.
    #[cfg(any(test, feature = "testing"))]
    pub fn drop_cached_instance(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The argv and extra env for `spec`, checked against the contract
    /// (resolved binary first, extras last, no NUL, valid env names).
    pub async fn build_launch(&self, spec: &LaunchSpec) -> Result<LaunchCommand, AdapterError> {
        let answer = self
            .call(
                "build-launch",
                self.budgets.quick,
                // The contract lets it read its cwd paths (the peer's folder).
                Some(&spec.cwd),
                async |i, s| i.build_launch(s, spec).await,
            )
            .await?;
        let cmd = answer.map_err(|m| AdapterError::Refused(sanitize_guest_text(&m)))?;
        validate::launch_command(spec, &cmd).map_err(|r| self.invalid("build-launch", r))?;
        Ok(cmd)
    }

    pub async fn resolve_resume(&self, cwd: &str) -> Result<ResumeCheck, AdapterError> {
        let check = self
            .call(
                "resolve-resume",
                self.budgets.scan,
                Some(cwd),
                async |i, s| i.resolve_resume(s, cwd).await,
            )
            .await?;
        Ok(match check {
            ResumeCheck::Nothing(reason) => ResumeCheck::Nothing(sanitize_guest_text(&reason)),
            found => found,
        })
    }

    pub async fn newest_activity_mtime(&self, cwd: &str) -> Result<Option<u64>, AdapterError> {
        self.call(
            "newest-activity-mtime",
            self.budgets.scan,
            Some(cwd),
            async |i, s| i.newest_activity_mtime(s, cwd).await,
        )
        .await
    }

    /// Where the session in `cwd`, showing `pane`, is in its turn (contract
    /// 0.3; older adapters say `Unknown`). It may read the transcript's tail.
    pub async fn turn_state(&self, pane: &str, cwd: &str) -> Result<TurnState, AdapterError> {
        self.call("judge-turn", self.budgets.scan, Some(cwd), async |i, s| {
            i.turn_state(s, pane, cwd).await
        })
        .await
    }

    /// Whether the runtime's record of the session in `cwd` holds `needle`
    /// (a message id); `None`: it cannot tell (contract 0.3; older
    /// adapters cannot).
    pub async fn record_holds(
        &self,
        cwd: &str,
        needle: &str,
    ) -> Result<Option<bool>, AdapterError> {
        self.call(
            "record-holds",
            self.budgets.scan,
            Some(cwd),
            async |i, s| i.record_holds(s, cwd, needle).await,
        )
        .await
    }

    pub async fn boot_dialog_keys(&self, pane: &str) -> Result<Option<Vec<String>>, AdapterError> {
        let keys = self
            .call(
                "boot-dialog-keys",
                self.budgets.quick,
                None,
                async |i, s| i.boot_dialog_keys(s, pane).await,
            )
            .await?;
        if let Some(k) = &keys {
            check_keys(k, true).map_err(|r| self.invalid("boot-dialog-keys", r))?;
        }
        Ok(keys)
    }

    pub async fn is_input_ready(&self, pane: &str) -> Result<bool, AdapterError> {
        self.call("is-input-ready", self.budgets.quick, None, async |i, s| {
            i.is_input_ready(s, pane).await
        })
        .await
    }

    pub async fn control_keys(
        &self,
        command: &str,
    ) -> Result<Option<ControlSequence>, AdapterError> {
        let seq = self
            .call("control-keys", self.budgets.quick, None, async |i, s| {
                i.control_keys(s, command).await
            })
            .await?;
        if let Some(seq) = &seq {
            if seq.steps.is_empty() || seq.steps.len() > MAX_CONTROL_STEPS {
                return Err(self.invalid("control-keys", format!("{} steps", seq.steps.len())));
            }
            for step in &seq.steps {
                check_keys(step, false).map_err(|r| self.invalid("control-keys", r))?;
            }
        }
        Ok(seq)
    }
}

async fn instantiate(
    sandbox: &Sandbox,
    pre: &VersionedPre,
    grants: &Arc<FileGrants>,
    preopen_mask: u64,
    budgets: CallBudgets,
) -> Result<Live, String> {
    let budget = budgets.quick;
    let mut store = sandbox
        .new_store(grants, budgets.memory)
        .map_err(|e| format!("{e:#}"))?;
    // Instantiation runs guest code too (initialisers): bound it as well.
    sandbox::arm_deadline(&mut store, budget);
    let timed_out = |_| format!("instantiation timed out after {budget:?}");
    let instance = tokio::time::timeout(wall_clock(budget), pre.instantiate(&mut store))
        .await
        .map_err(timed_out)?
        .map_err(|e| describe_failure(&e, &store.data().stderr_text(), budget, budgets.memory))?;
    Ok(Live {
        store,
        memory: budgets.memory,
        instance,
        preopen_mask,
        calls: 0,
    })
}
