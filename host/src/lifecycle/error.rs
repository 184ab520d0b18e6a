//! Why a lifecycle verb refused or failed. One enum for every verb, so the
//! CLI, the MCP tool and the fleet API map the same cause to their own
//! surface (an exit code, a tool error, an HTTP status) without comparing
//! strings.

use std::path::PathBuf;

use crate::guard::Owner;
use crate::names::{Identity, Personality, Runtime};
use crate::registry::RegistryError;
use crate::tmux::TmuxError;
use crate::wakelock::WakeLockError;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("peer {0:?} is not registered")]
    NotRegistered(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("invalid runtime {0:?}")]
    InvalidRuntime(String),
    #[error("runtime {runtime:?} is not declared for {personality:?}")]
    UndeclaredRuntime {
        personality: String,
        runtime: String,
    },
    #[error("no adapter for runtime \"{0}\" (see `iapeer plugins list`)")]
    NoAdapter(Runtime),
    /// An adapter for the runtime was found but does not serve (it needs a
    /// grant).
    #[error("the {runtime} adapter is not serving: {reason}")]
    AdapterNotServing { runtime: Runtime, reason: String },
    /// launchd or a systemd user unit owns the peer: hands off.
    #[error("{}", owner_refusal(.personality, .owner, *.mid_wake))]
    ExternallyOwned {
        personality: Personality,
        owner: Owner,
        /// The unit appeared while this wake waited for the lock.
        mid_wake: bool,
    },
    /// A durable operator stop.
    #[error("\"{}\" ({}) is stopped and not accepting messages; start it to resume", .0.personality(), .0.runtime())]
    Stopped(Identity),
    #[error(transparent)]
    Busy(#[from] WakeLockError),
    /// Neither provably alive nor dead: never spawned over.
    #[error("cannot tell whether {id} is running ({why}); not starting another")]
    LivenessUnknown { id: Identity, why: String },
    #[error("peer cwd does not exist: {}", .0.display())]
    CwdMissing(PathBuf),
    /// An explicit resume found nothing (or the adapter could not tell).
    #[error("{reason}")]
    CannotResume { id: Identity, reason: String },
    #[error("{id}: {reason}")]
    Adapter { id: Identity, reason: String },
    /// The launch did not bring a usable session up. `message_pasted`: the
    /// first message went in before it failed (the ready gate never saw the
    /// model take it), so it may have been delivered.
    #[error("{reason}")]
    Launch {
        id: Identity,
        reason: String,
        message_pasted: bool,
    },
    /// Live, but the paste itself failed: nothing reached the session.
    #[error(
        "{id} is live but the message could not be pasted into it ({detail}); message NOT delivered"
    )]
    NotDelivered { id: Identity, detail: String },
    /// Pasted and submitted, but the runtime showed no sign of taking it.
    #[error(
        "{id} was given the message but showed no sign of taking it within {secs} s; delivery NOT confirmed (it may still arrive: check before resending)"
    )]
    Unconfirmed { id: Identity, secs: u64 },
    /// Too many deaths in the window: left asleep.
    #[error(
        "crash-loop guard: {deaths} deaths in {window_secs}s, leaving asleep (last: {last}; `iapeer start --reset` clears it)"
    )]
    CrashLoop {
        id: Identity,
        deaths: usize,
        window_secs: u64,
        last: String,
    },
    /// The verb needs a running session and there is none.
    #[error("{id} is not running")]
    NotLive { id: Identity },
    /// A control meant for the composer while the adapter does not see one
    /// (a dialog or prompt is up): no key was sent.
    #[error("{id} shows no input composer (a dialog or prompt is up?); no keys sent: attach to see it{}", crate::paste::tail_suffix(.pane))]
    NoComposer { id: Identity, pane: String },
    /// A control whose keys could not go in safely (a paste left in the
    /// composer that could not be cleared, a pane that cannot be read).
    #[error("{id}: no keys sent ({why})")]
    ControlRefused { id: Identity, why: String },
    /// The runtime's adapter has no key sequence for this control command.
    #[error("the {runtime} adapter has no `{command}` control")]
    ControlUnsupported { runtime: Runtime, command: String },
    /// The daemon is stopping: nothing was started or pasted.
    #[error("the daemon is shutting down; nothing was done")]
    ShuttingDown,
    #[error("{personality:?} is live in several runtimes ({}); name one with --runtime", .runtimes.join(", "))]
    AmbiguousRuntime {
        personality: String,
        runtimes: Vec<String>,
    },
    #[error("{0}")]
    Tmux(#[from] TmuxError),
    #[error("cannot write {what}: {source}")]
    State {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The message cannot be pasted (too long, or only control characters).
    #[error("{0}; message NOT delivered")]
    BadMessage(String),
    /// Something other than a regular file sits at a state path (the
    /// error names it).
    #[error("{0}")]
    StateInTheWay(std::io::Error),
    #[error("no peer in this folder: none is registered here, and there is no peer profile {}", .0.display())]
    NoProfile(PathBuf),
    #[error("{} names no personality", .0.display())]
    NoPersonality(PathBuf),
    #[error(
        "{} names \"{personality}\", which is registered at {}, not here; this folder is not its \
         (if it moved: iapeer register {personality} --cwd .)",
        .profile.display(),
        .registered_cwd.display()
    )]
    ProfileElsewhere {
        profile: PathBuf,
        personality: Personality,
        registered_cwd: PathBuf,
    },
}

impl LifecycleError {
    /// The runtime the failure concerns, when one was resolved.
    pub fn runtime(&self) -> Option<&Runtime> {
        match self {
            LifecycleError::NoAdapter(rt)
            | LifecycleError::AdapterNotServing { runtime: rt, .. } => Some(rt),
            LifecycleError::ControlUnsupported { runtime, .. } => Some(runtime),
            LifecycleError::Stopped(id)
            | LifecycleError::LivenessUnknown { id, .. }
            | LifecycleError::CannotResume { id, .. }
            | LifecycleError::Adapter { id, .. }
            | LifecycleError::Launch { id, .. }
            | LifecycleError::NotDelivered { id, .. }
            | LifecycleError::CrashLoop { id, .. }
            | LifecycleError::NotLive { id }
            | LifecycleError::NoComposer { id, .. }
            | LifecycleError::ControlRefused { id, .. }
            | LifecycleError::Unconfirmed { id, .. } => Some(id.runtime()),
            _ => None,
        }
    }

    /// What this failure means for a message the wake carried, as a
    /// suffix for its one-line error (empty when the error says it).
    pub fn undelivered_note(&self) -> &'static str {
        match self {
            LifecycleError::NotDelivered { .. }
            | LifecycleError::BadMessage(_)
            | LifecycleError::Unconfirmed { .. } => "",
            LifecycleError::Launch {
                message_pasted: true,
                ..
            } => {
                "; the message went in before the failure: delivery NOT confirmed (check before resending)"
            }
            _ => "; message NOT delivered",
        }
    }

    /// The caller named something that does not exist or is malformed (as
    /// opposed to a refusal or a failure of the peer itself).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            LifecycleError::InvalidRuntime(_)
                | LifecycleError::UndeclaredRuntime { .. }
                | LifecycleError::AmbiguousRuntime { .. }
                | LifecycleError::BadMessage(_)
        )
    }

    pub(crate) fn state(what: impl Into<String>, source: std::io::Error) -> LifecycleError {
        LifecycleError::State {
            what: what.into(),
            source,
        }
    }
}

fn owner_refusal(p: &Personality, owner: &Owner, mid_wake: bool) -> String {
    if mid_wake {
        return format!(
            "\"{p}\" became {} mid-wake; the daemon does not wake it",
            owner.describe()
        );
    }
    let who = match owner {
        Owner::Launchd(_) => "launchd KeepAlive owns its lifecycle",
        Owner::SystemdUser(_) => "its systemd user unit owns its lifecycle",
    };
    format!(
        "\"{p}\" is {}; the daemon does not wake it ({who})",
        owner.describe()
    )
}
