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
    /// Parked by an idle reap or a stop, a natural peer: resumed.
    IdleReapedHuman,
    /// … a natural peer with nothing to resume: fresh.
    IdleReapedHumanNoResume,
    /// Parked, and the message names no topic: resumed.
    IdleReapedNoTopic,
    /// Parked, and the message's topic is not one it has seen: fresh.
    IdleReapedNewTopic,
    /// Parked, and the message's topic is one it has seen: resumed.
    IdleReapedResume,
    /// Parked, but nothing to resume: fresh.
    IdleReapedNoResume,
    /// An ephemeral peer: every session fresh, one message each.
    EphemeralPolicy,
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

/// What a clean park (an idle reap, a stop) leaves the next wake to
/// decide by: who the peer is, the topic of the message that wakes it, and
/// the topics its last session saw.
#[derive(Debug, Clone, Copy)]
pub struct Parked<'a> {
    pub natural: bool,
    pub topic: Option<&'a str>,
    pub topics: &'a [String],
}

/// The priority: /new mark > explicit fresh > explicit resume
/// (fail-loud) > an ephemeral peer (always fresh) > a clean park (the topic decides: a topic the session has
/// not seen starts fresh) > default (resume when there is something to
/// resume, else fresh). `resume_check` is only called when the answer
/// depends on it.
pub fn resolve_wake_mode(
    new_mark: bool,
    requested: Option<bool>,
    ephemeral: bool,
    parked: Option<Parked<'_>>,
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
        None if ephemeral => WakeMode::Fresh(ModeCause::EphemeralPolicy),
        None if parked.is_some() => {
            let Parked {
                natural,
                topic,
                topics,
            } = parked.unwrap_or(Parked {
                natural: false,
                topic: None,
                topics: &[],
            });
            let topic = topic.map(str::trim).filter(|t| !t.is_empty());
            let (resume, fresh) = match topic {
                _ if natural => (
                    ModeCause::IdleReapedHuman,
                    ModeCause::IdleReapedHumanNoResume,
                ),
                None => (ModeCause::IdleReapedNoTopic, ModeCause::IdleReapedNoResume),
                Some(t) if !topics.iter().any(|k| k == t) => {
                    return WakeMode::Fresh(ModeCause::IdleReapedNewTopic);
                }
                Some(_) => (ModeCause::IdleReapedResume, ModeCause::IdleReapedNoResume),
            };
            match resume_check() {
                Ok(ResumeCheck::Resumable(reference)) => WakeMode::Resume {
                    cause: resume,
                    reference,
                },
                Ok(ResumeCheck::Nothing(_)) => WakeMode::Fresh(fresh),
                Err(e) => WakeMode::Fail(e),
            }
        }
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
            resolve_wake_mode(true, Some(true), false, None, never),
            WakeMode::Fresh(ModeCause::NewMark)
        );
        assert_eq!(
            resolve_wake_mode(true, None, false, None, never),
            WakeMode::Fresh(ModeCause::NewMark)
        );
        assert_eq!(
            resolve_wake_mode(false, Some(false), false, None, never),
            WakeMode::Fresh(ModeCause::ExplicitFresh)
        );
        assert_eq!(
            resolve_wake_mode(false, Some(true), false, None, found),
            WakeMode::Resume {
                cause: ModeCause::ExplicitResume,
                reference: Some("t1".into())
            }
        );
        assert_eq!(
            resolve_wake_mode(false, Some(true), false, None, nothing),
            WakeMode::Fail("no transcript to resume".into())
        );
        assert_eq!(
            resolve_wake_mode(false, None, false, None, found),
            WakeMode::Resume {
                cause: ModeCause::TranscriptPresent,
                reference: Some("t1".into())
            }
        );
        assert_eq!(
            resolve_wake_mode(false, None, false, None, nothing),
            WakeMode::Fresh(ModeCause::FirstWake)
        );
        assert_eq!(
            resolve_wake_mode(false, None, false, None, || Err("adapter crashed".into())),
            WakeMode::Fail("adapter crashed".into())
        );
    }

    #[test]
    fn a_clean_park_lets_the_topic_decide() {
        let found = || Ok(ResumeCheck::Resumable(None));
        let nothing = || Ok(ResumeCheck::Nothing("none".into()));
        let seen = vec!["release".to_string(), "bugs".to_string()];
        let parked = |natural, topic| {
            Some(Parked {
                natural,
                topic,
                topics: &seen,
            })
        };
        let resume = |cause| WakeMode::Resume {
            cause,
            reference: None,
        };
        let never = || -> Result<ResumeCheck, String> { panic!("must not be asked") };
        assert_eq!(
            resolve_wake_mode(false, None, false, parked(false, None), found),
            resume(ModeCause::IdleReapedNoTopic)
        );
        assert_eq!(
            resolve_wake_mode(false, None, false, parked(false, Some(" ")), nothing),
            WakeMode::Fresh(ModeCause::IdleReapedNoResume)
        );
        assert_eq!(
            resolve_wake_mode(false, None, false, parked(false, Some("billing")), never),
            WakeMode::Fresh(ModeCause::IdleReapedNewTopic)
        );
        assert_eq!(
            resolve_wake_mode(false, None, false, parked(false, Some("release")), found),
            resume(ModeCause::IdleReapedResume)
        );
        assert_eq!(
            resolve_wake_mode(false, None, false, parked(false, Some("release")), nothing),
            WakeMode::Fresh(ModeCause::IdleReapedNoResume)
        );
        // A human's conversation is resumed whatever the topic.
        assert_eq!(
            resolve_wake_mode(false, None, false, parked(true, Some("billing")), found),
            resume(ModeCause::IdleReapedHuman)
        );
        assert_eq!(
            resolve_wake_mode(false, None, false, parked(true, None), nothing),
            WakeMode::Fresh(ModeCause::IdleReapedHumanNoResume)
        );
        // An ephemeral peer is always fresh, unless asked otherwise.
        assert_eq!(
            resolve_wake_mode(false, None, true, parked(false, Some("release")), never),
            WakeMode::Fresh(ModeCause::EphemeralPolicy)
        );
        // The /new mark and an explicit wish still come first.
        assert_eq!(
            resolve_wake_mode(true, None, false, parked(false, Some("release")), never),
            WakeMode::Fresh(ModeCause::NewMark)
        );
        assert_eq!(
            ModeCause::IdleReapedNewTopic.as_str(),
            "idle-reaped-new-topic"
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
