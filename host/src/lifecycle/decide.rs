//! The pure decisions of a wake: which runtime, resume or fresh, and what
//! the first message is. Side effects (consuming the /new mark, reading the
//! profile) stay with the caller so these can be tested on their own.

use super::LifecycleError;
use crate::names::Runtime;
use crate::plugins::ResumeCheck;
use crate::registry::PeerRecord;

/// The runtime to wake, from the registry only (a dead peer has no live
/// socket to scan): an explicit runtime (must be declared), else the
/// registry default.
pub fn resolve_wake_runtime(
    requested: Option<&str>,
    peer: &PeerRecord,
) -> Result<Runtime, LifecycleError> {
    match requested.filter(|r| !r.is_empty()) {
        Some(r) => {
            let rt = Runtime::new(r).map_err(|_| LifecycleError::InvalidRuntime(r.to_string()))?;
            if peer.default_runtime != rt && !peer.declares(r) {
                return Err(LifecycleError::UndeclaredRuntime {
                    personality: peer.personality.to_string(),
                    runtime: r.to_string(),
                });
            }
            Ok(rt)
        }
        None => Ok(peer.default_runtime.clone()),
    }
}

/// Why a wake is fresh or a resume (logged as `cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum ModeCause {
    /// A `/new` mark: eager graceful relaunch.
    NewMark,
    /// The caller asked for fresh (folder launch, `new`, `--fresh`).
    ExplicitFresh,
    /// The caller asked to resume (attach, `--resume`).
    ExplicitResume,
    /// A message to a sleeping peer with a previous session: resume it.
    TranscriptPresent,
    /// Nothing to resume: a first-ever wake.
    FirstWake,
}

impl ModeCause {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeMode {
    Fresh(ModeCause),
    Resume {
        cause: ModeCause,
        reference: Option<String>,
    },
    /// An explicit resume found nothing: fail loud, never fall back to fresh.
    Fail(String),
}

/// The priority: /new mark > explicit fresh > explicit resume
/// (fail-loud) > default (resume when there is something to resume, else
/// fresh). `resume_check` is only called when the answer depends on it.
pub fn resolve_wake_mode(
    new_mark: bool,
    requested: Option<bool>,
    resume_check: impl FnOnce() -> Result<ResumeCheck, String>,
) -> WakeMode {
    if new_mark {
        return WakeMode::Fresh(ModeCause::NewMark);
    }
    match requested {
        Some(false) => WakeMode::Fresh(ModeCause::ExplicitFresh),
        Some(true) => match resume_check() {
            Ok(ResumeCheck::Resumable(reference)) => WakeMode::Resume {
                cause: ModeCause::ExplicitResume,
                reference,
            },
            Ok(ResumeCheck::Nothing(reason)) => WakeMode::Fail(reason),
            Err(e) => WakeMode::Fail(e),
        },
        None => match resume_check() {
            Ok(ResumeCheck::Resumable(reference)) => WakeMode::Resume {
                cause: ModeCause::TranscriptPresent,
                reference,
            },
            Ok(ResumeCheck::Nothing(_)) => WakeMode::Fresh(ModeCause::FirstWake),
            // An adapter that cannot tell fails the wake: starting fresh
            // would silently discard a session that may be resumable.
            Err(e) => WakeMode::Fail(e),
        },
    }
}

/// The first message of a session: on a fresh wake the peer's
/// `initial_prompt` comes first, then the task; on resume just the task.
pub fn compose_first_message(seed: Option<&str>, task: &str, fresh: bool) -> String {
    match seed.filter(|s| fresh && !s.is_empty()) {
        None => task.to_string(),
        Some(seed) if task.is_empty() => seed.to_string(),
        Some(seed) => format!("{seed}\n\n{task}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn peer(default: &str, runtimes: &[&str]) -> PeerRecord {
        PeerRecord {
            personality: crate::names::Personality::new("bob").unwrap(),
            default_runtime: Runtime::new(default).unwrap(),
            runtimes: runtimes.iter().map(|r| Runtime::new(*r).unwrap()).collect(),
            description: String::new(),
            intelligence: crate::registry::Intelligence::Artificial,
            raw_intelligence: None,
            cwd: PathBuf::from("/w"),
            interfaces: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn runtime_resolution() {
        let p = peer("claude", &["claude", "codex"]);
        assert_eq!(resolve_wake_runtime(None, &p).unwrap().as_str(), "claude");
        assert_eq!(
            resolve_wake_runtime(Some("codex"), &p).unwrap().as_str(),
            "codex"
        );
        let e = resolve_wake_runtime(Some("telegram"), &p).unwrap_err();
        assert!(e.to_string().contains("not declared"), "{e}");
        assert_eq!(
            resolve_wake_runtime(Some(""), &p).unwrap().as_str(),
            "claude"
        );
        let e = resolve_wake_runtime(Some("Bad-Rt"), &p).unwrap_err();
        assert!(e.to_string().contains("invalid runtime"), "{e}");
    }

    #[test]
    fn mode_priority() {
        let found = || Ok(ResumeCheck::Resumable(Some("t1".into())));
        let nothing = || Ok(ResumeCheck::Nothing("no transcript to resume".into()));
        let never = || -> Result<ResumeCheck, String> { panic!("must not be asked") };

        assert_eq!(
            resolve_wake_mode(true, Some(true), never),
            WakeMode::Fresh(ModeCause::NewMark)
        );
        assert_eq!(
            resolve_wake_mode(true, None, never),
            WakeMode::Fresh(ModeCause::NewMark)
        );
        assert_eq!(
            resolve_wake_mode(false, Some(false), never),
            WakeMode::Fresh(ModeCause::ExplicitFresh)
        );
        assert_eq!(
            resolve_wake_mode(false, Some(true), found),
            WakeMode::Resume {
                cause: ModeCause::ExplicitResume,
                reference: Some("t1".into())
            }
        );
        assert_eq!(
            resolve_wake_mode(false, Some(true), nothing),
            WakeMode::Fail("no transcript to resume".into())
        );
        assert_eq!(
            resolve_wake_mode(false, None, found),
            WakeMode::Resume {
                cause: ModeCause::TranscriptPresent,
                reference: Some("t1".into())
            }
        );
        assert_eq!(
            resolve_wake_mode(false, None, nothing),
            WakeMode::Fresh(ModeCause::FirstWake)
        );
        assert_eq!(
            resolve_wake_mode(false, None, || Err("adapter crashed".into())),
            WakeMode::Fail("adapter crashed".into())
        );
    }

    #[test]
    fn first_message() {
        assert_eq!(
            compose_first_message(Some("Seed."), "task", true),
            "Seed.\n\ntask"
        );
        assert_eq!(compose_first_message(Some("Seed."), "", true), "Seed.");
        assert_eq!(compose_first_message(Some("Seed."), "task", false), "task");
        assert_eq!(compose_first_message(None, "task", true), "task");
        assert_eq!(compose_first_message(Some(""), "task", true), "task");
    }
}
