//! Getting a message into a peer. `route` decides whether a message may go
//! and commits it to the mailbox; this module delivers what waits there,
//! oldest first, under the peer's wake lock: into a live session's composer
//! (everything waiting for it as one paste), or as the first message of a
//! session it wakes. Nothing is typed into a session that is not ready for
//! it. What cannot go in now stays queued with the reason (the daemon tries
//! again); what can never go in is dead-lettered.
//!
//! A message is marked `submitted` just before it is typed. A deliverer
//! killed after that leaves it so; the next one, under the same lock, looks
//! at the runtime before typing it again: its record moved since → taken;
//! the paste still sits in the composer, or nothing moved → typed again (the
//! leftover is cleared first). The one case that cannot be told: the runtime
//! took the message and died before recording it; it is then typed again.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::events;
use crate::lifecycle::{Lifecycle, LifecycleError, WakeArgs, WakeOutcome, canonical};
use crate::mail::{self, Mailbox, Message, MessageId, MessageState};
use crate::names::{Identity, Personality, Runtime};
use crate::paste;
use crate::plugins::{Adapter, AdapterKind, TurnState};
use crate::poll::Poll;
use crate::registry::{DeliveryMode, PeerRecord, Registry};
use crate::store::{self, Mark};
use crate::tmux::{Liveness, probe};
use crate::turn_end::{MidTurn, Watch};

/// How long a delivery to a live TUI waits for its activity proxy to move
/// (proof the message was accepted).
pub(crate) const LIVE_DELIVERY_GRACE: Duration = Duration::from_secs(3);

/// At most this many batches per drain (a peer flooded while we deliver
/// is left to the next pass, so one peer cannot hold a task forever).
const MAX_BATCHES: usize = 16;

/// A message that could not go in now is tried again after this long,
/// doubling with each attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A live session that could not take a paste now (a dialog, a draft) is
/// looked at again this soon: a look costs one pane capture.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// The sender of system mail (bounces): never bounced itself.
pub const SYSTEM_SENDER: &str = "system-iapeer";

/// Why a live session did not take a paste.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryFailure {
    /// Nothing was submitted to the session.
    #[error(transparent)]
    Refused(paste::PasteRefused),
    /// Pasted, but the runtime showed no sign of taking it.
    #[error("no activity after the paste")]
    Unconfirmed,
}

impl DeliveryFailure {
    fn into_error(self, id: &Identity) -> LifecycleError {
        tracing::warn!(identity = %id, "delivery failed: {self}");
        match self {
            DeliveryFailure::Refused(e) => LifecycleError::NotDelivered {
                id: id.clone(),
                detail: e.to_string(),
            },
            DeliveryFailure::Unconfirmed => LifecycleError::Unconfirmed {
                id: id.clone(),
                secs: LIVE_DELIVERY_GRACE.as_secs(),
            },
        }
    }
}

/// The outcome of a delivery attempt to whatever is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Accepted,
    /// Not live (any more): the caller wakes it instead.
    NotLive,
}

/// Who may type into whom, checked at every exit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("cannot send to self")]
    SelfSend,
    #[error(
        "telegram policy: \"{caller}\" has no interfaces.telegram.bot in the registry, so it may not message a telegram channel"
    )]
    TelegramPolicy { caller: String },
}

/// A telegram channel is open only to callers with a telegram bot.
pub fn telegram_policy(sender: &PeerRecord, channel: &Runtime) -> Result<(), Refusal> {
    if channel.as_str() != "telegram" {
        return Ok(());
    }
    let has_bot = sender
        .interfaces
        .as_ref()
        .and_then(|i| i.get("telegram"))
        .and_then(|t| t.get("bot"))
        .and_then(|b| b.as_str())
        .is_some_and(|b| !b.trim().is_empty());
    if has_bot {
        Ok(())
    } else {
        Err(Refusal::TelegramPolicy {
            caller: sender.personality.to_string(),
        })
    }
}

/// May `sender` type into `to`? The system's own mail always may.
pub fn admit(registry: &Registry, sender: &str, to: &Identity) -> Result<(), Refusal> {
    if sender == SYSTEM_SENDER {
        return Ok(());
    }
    if sender == to.as_str() {
        return Err(Refusal::SelfSend);
    }
    let record = Identity::parse(sender)
        .ok()
        .and_then(|s| registry.find(s.personality().as_str()));
    match record {
        Some(rec) => telegram_policy(rec, to.runtime()),
        // A sender removed since: it may still reach anything but a
        // telegram channel.
        None if to.runtime().as_str() == "telegram" => Err(Refusal::TelegramPolicy {
            caller: sender.to_string(),
        }),
        None => Ok(()),
    }
}

/// Delivers `message` to the session of `id` if it is live, under the
/// wake lock — serialised with wakes, reaps and other deliveries to the
/// same peer, so two pastes never interleave and a reap never kills a
/// session between our liveness check and the paste.
pub async fn to_live(
    lc: &Lifecycle,
    id: &Identity,
    cwd: &Path,
    message: &str,
) -> Result<Delivery, LifecycleError> {
    let adapter = lc.adapter(id.runtime())?;
    let queued_at = Instant::now();
    let _lock = lc.lock(id).await?;
    match live_under_lock(lc, id, queued_at).await? {
        false => Ok(Delivery::NotLive),
        true => {
            into_live_session(lc, &adapter, id, cwd, message, None)
                .await
                .map_err(|failure| failure.into_error(id))?;
            Ok(Delivery::Accepted)
        }
    }
}

/// Wakes `args.personality` with `args.task` as its first message, and
/// hands the task over through the live path when the wake did not (the
/// session was live already, or is a router). Outside the mailbox: what
/// `iapeer wake --message` and `plugins try` do.
pub async fn wake_with_task(lc: &Lifecycle, args: &WakeArgs) -> WakeOutcome {
    let mut woken = lc.wake_or_spawn(args).await?;
    if woken.task_delivered == Some(false) {
        let peer = lc.registered_peer(&args.personality)?;
        match to_live(lc, &woken.identity, &peer.cwd, &args.task).await? {
            Delivery::Accepted => woken.task_delivered = Some(true),
            Delivery::NotLive => {
                return Err(LifecycleError::NotLive { id: woken.identity });
            }
        }
    }
    Ok(woken)
}

/// With `id`'s lock held: is it live and ready for a paste? A stop wins;
/// a boot that failed while we waited is shared, not repeated.
async fn live_under_lock(
    lc: &Lifecycle,
    id: &Identity,
    queued_at: Instant,
) -> Result<bool, LifecycleError> {
    // A stop lands its mark before it takes the lock to kill.
    if store::has_mark(&lc.cfg, id, Mark::Stopped) {
        return Err(LifecycleError::Stopped(id.clone()));
    }
    match probe(&lc.socket(id)) {
        Liveness::Dead(_) => match lc.failed_since(id, queued_at) {
            Some(reason) => Err(LifecycleError::Launch {
                id: id.clone(),
                reason: format!("{reason} (a concurrent wake just failed the same way)"),
                message_pasted: false,
            }),
            None => Ok(false),
        },
        Liveness::Unknown(why) => Err(LifecycleError::LivenessUnknown {
            id: id.clone(),
            why,
        }),
        Liveness::Alive => {
            lc.check_orphan_boot(id).await?;
            Ok(true)
        }
    }
}

/// Pastes a message into a live session (the caller holds the lock).
/// A router has accepted it once the paste went through; a TUI once its
/// activity proxy moves, or the paste has left the composer. Enter is
/// pressed once more only while the paste still visibly sits in a
/// composer the adapter judges ready (a swallowed Enter), never into
/// anything else.
pub(crate) async fn into_live_session(
    lc: &Lifecycle,
    adapter: &Adapter,
    id: &Identity,
    cwd: &Path,
    message: &str,
    just_captured: Option<String>,
) -> Result<(), DeliveryFailure> {
    let tmux = &lc.tmux;
    let sock = lc.socket(id);
    let cwd = canonical(cwd);
    let cwd = cwd.to_string_lossy();
    let baseline = paste::activity(adapter, &cwd).await;
    let message = message.trim_end_matches(['\n', '\r']);
    let in_flight = lc.in_flight(id);
    let taken = paste::Taken {
        cwd: &cwd,
        baseline,
    };
    let to = paste::Composer {
        tmux,
        sock: &sock,
        id: id.as_str(),
        adapter,
        in_flight: &in_flight,
    };
    paste::deliver(&to, message, &taken, just_captured)
        .await
        .map_err(DeliveryFailure::Refused)?;
    if adapter.info().kind == AdapterKind::Router {
        return Ok(());
    }
    let mut poll = Poll::new(
        LIVE_DELIVERY_GRACE,
        Duration::from_millis(20),
        Duration::from_millis(250),
    );
    let press_again_after = tokio::time::Instant::now() + LIVE_DELIVERY_GRACE / 3;
    let look_at_composer_after = tokio::time::Instant::now() + Duration::from_millis(150);
    let mut pressed_again = false;
    let markers = &adapter.info().delivery;
    loop {
        // Accepted: the transcript moved, or the paste has left the
        // composer (submitted; the transcript may lag).
        if paste::activity(adapter, &cwd).await > baseline {
            in_flight.settle();
            return Ok(());
        }
        // The pane costs a tmux process; the transcript usually moves
        // first, so look at the composer only once it has not.
        let now = tokio::time::Instant::now();
        if now >= look_at_composer_after {
            let pane = tmux.capture_pane(&sock, id.as_str()).await.ok();
            let in_composer = pane
                .as_deref()
                .is_none_or(|p| paste::paste_in_composer(p, message, markers));
            if !in_composer {
                in_flight.settle();
                return Ok(());
            }
            // A swallowed Enter leaves the paste sitting in the
            // composer: press again, once, only there.
            if !pressed_again
                && now > press_again_after
                && let Some(pane) = &pane
                && paste::composer_ready(adapter, &paste::without_paste(pane, message, markers))
                    .await
            {
                pressed_again = true;
                let _ = tmux
                    .send_keys(&sock, id.as_str(), &["Enter".to_string()])
                    .await;
            }
        }
        if !poll.pause().await {
            return Err(DeliveryFailure::Unconfirmed);
        }
    }
}

/// How long a message waits after `attempts` tries.
fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (FIRST_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

/// Delivers what waits for `p`, oldest first, until it is empty or the
/// oldest cannot go in now. Nothing overtakes an older message, and the
/// oldest is not tried again before its backoff is over: a peer that
/// cannot boot is not booted once per new message. Says whether the
/// oldest waits for a turn to end (another drain running for `p` is left
/// to look again, and says nothing).
pub async fn drain(lc: &Lifecycle, p: &Personality) -> Result<Option<MidTurn>, LifecycleError> {
    let Some(_ours) = lc.drains().enter(p.as_str()) else {
        return Ok(None);
    };
    loop {
        let left = drain_once(lc, p).await?;
        if !lc.drains().again(p.as_str()) {
            return Ok(left);
        }
    }
}

/// The daemon's drain: [`drain`], and mail that waits for a turn to end
/// goes in as soon as it has (see [`crate::turn_end`]).
pub async fn drain_watching(lc: &Lifecycle, p: &Personality) -> Result<(), LifecycleError> {
    let Some(_ours) = lc.drains().enter(p.as_str()) else {
        return Ok(());
    };
    let mut watch = Watch::new();
    loop {
        match drain_once(lc, p).await? {
            Some(turn) => {
                if !watch.until_it_may_have_ended(lc, &turn).await {
                    return Ok(());
                }
                lc.drains().again(p.as_str());
            }
            None if !lc.drains().again(p.as_str()) => return Ok(()),
            None => {}
        }
    }
}

async fn drain_once(lc: &Lifecycle, p: &Personality) -> Result<Option<MidTurn>, LifecycleError> {
    let mb = lc.mailbox()?;
    let mut turn_started = None;
    for _ in 0..MAX_BATCHES {
        // What waits is read once a slot is ours: what came meanwhile
        // goes in the same batch.
        let slot = lc.delivery_slot().await;
        let waiting = mb.waiting(Some(p.as_str()))?;
        if waiting.is_empty() {
            return Ok(None);
        }
        if let Some(turn) = turn_started.take() {
            return Ok(Some(turn));
        }
        let registry = lc.registry()?;
        let now = lc.clock.now_ms();
        let Some(target) = registry.find(p.as_str()) else {
            let why = format!("peer \"{p}\" is not in the iapeer peers index");
            for m in waiting.iter().filter(|m| m.state == MessageState::Queued) {
                give_up(lc, mb, m, &why)?;
            }
            return Ok(None);
        };
        // Typed in by a deliverer that is gone: settled first, under its
        // lock, before anything else goes to that peer.
        if let Some(orphan) = waiting.iter().find(|m| is_orphan(m)) {
            if !recover(lc, mb, target, orphan).await? {
                return Ok(None);
            }
            continue;
        }
        // The oldest waiting message goes first: one being typed in by
        // another process (a CLI beside the daemon) holds the rest back.
        if waiting
            .first()
            .is_some_and(|m| m.state != MessageState::Queued)
        {
            return Ok(None);
        }
        let queued: Vec<&Message> = waiting
            .iter()
            .filter(|m| m.state == MessageState::Queued)
            .collect();
        let Some(head) = queued.first().filter(|m| m.not_before_ms <= now) else {
            return Ok(None);
        };
        let rt = match runtime_for(lc, target, head) {
            Ok(rt) => rt,
            Err(why) => {
                let ids = [head.id.clone()];
                mb.wait_again(&ids, &why, retry_at(lc, head))?;
                return Ok(None);
            }
        };
        let id = Identity::new(&rt, &target.personality);
        // An ephemeral peer takes one message per session.
        let ephemeral = lc.is_ephemeral(target);
        let batch: Vec<&Message> = queued
            .iter()
            .copied()
            .take_while(|m| m.runtime.as_deref().is_none_or(|r| r == rt.as_str()))
            .take(if ephemeral { 1 } else { usize::MAX })
            .collect();
        let mut admitted = Vec::new();
        for m in batch {
            match admit(&registry, &m.sender, &id) {
                Ok(()) => admitted.push(m),
                Err(refusal) => give_up(lc, mb, m, &refusal.to_string())?,
            }
        }
        if admitted.is_empty() {
            continue;
        }
        match deliver_batch(lc, mb, target, &id, &admitted, ephemeral, slot).await? {
            // What it was given starts a turn: more mail waits for its end
            // (the pane may not show the turn yet).
            Next::Go if takes_turns(lc, target, &id) => {
                turn_started = Some(MidTurn {
                    id,
                    cwd: target.cwd.clone(),
                });
            }
            Next::Go => {}
            Next::Stop => return Ok(None),
            Next::TurnEnd => {
                return Ok(Some(MidTurn {
                    id,
                    cwd: target.cwd.clone(),
                }));
            }
        }
    }
    Ok(None)
}

/// A message typed in (or about to be) by a process that is gone, or left
/// unconfirmed by one that gave up on it.
fn is_orphan(m: &Message) -> bool {
    match m.state {
        MessageState::Submitted => m
            .claimed_by
            .as_deref()
            .is_none_or(|c| !mail::claimer_alive(c)),
        _ => false,
    }
}

/// The runtime a message goes to: its own, else where the peer is live,
/// else the default. Two live runtimes and none named: it waits.
fn runtime_for(lc: &Lifecycle, target: &PeerRecord, m: &Message) -> Result<Runtime, String> {
    if let Some(rt) = &m.runtime {
        return Runtime::new(rt).map_err(|e| e.to_string());
    }
    match lc.delivery_runtime(target) {
        Ok(Some(rt)) => Ok(rt),
        Ok(None) => Ok(target.default_runtime.clone()),
        Err(e) => Err(e.to_string()),
    }
}

fn retry_at(lc: &Lifecycle, m: &Message) -> u64 {
    let wait = u64::try_from(backoff(m.attempts.max(1)).as_millis()).unwrap_or(u64::MAX);
    lc.clock.now_ms().saturating_add(wait)
}

/// Whether `id`'s mail waits for its turns to end: a TUI delivered to
/// at the turn's end.
fn takes_turns(lc: &Lifecycle, target: &PeerRecord, id: &Identity) -> bool {
    target.delivery() == DeliveryMode::AtTurnEnd
        && lc
            .adapter(id.runtime())
            .is_ok_and(|a| a.info().kind == AdapterKind::Tui)
}

/// What a drain does after a batch.
enum Next {
    /// All delivered: on with the next batch.
    Go,
    /// The head waits (order is kept): stop here.
    Stop,
    /// The head waits for the peer's turn to end.
    TurnEnd,
}

/// What became of one batch.
async fn deliver_batch(
    lc: &Lifecycle,
    mb: &Mailbox,
    target: &PeerRecord,
    id: &Identity,
    batch: &[&Message],
    ephemeral: bool,
    slot: tokio::sync::SemaphorePermit<'_>,
) -> Result<Next, LifecycleError> {
    let ids: Vec<MessageId> = batch.iter().map(|m| m.id.clone()).collect();
    let head = batch[0];
    let waits = |why: &str| -> Result<Next, LifecycleError> {
        mb.wait_again(&ids, why, retry_at(lc, head))?;
        Ok(Next::Stop)
    };
    let adapter = match lc.adapter(id.runtime()) {
        Ok(a) => a,
        Err(e) => return waits(&e.to_string()),
    };
    let claimer = mail::claimer();
    // Hit: live, under the lock.
    {
        let queued_at = Instant::now();
        let lock = match lc.lock(id).await {
            Ok(lock) => lock,
            Err(e) => return waits(&e.to_string()),
        };
        match live_under_lock(lc, id, queued_at).await {
            Ok(true) if ephemeral => {
                let why = format!(
                    "{id} is ephemeral: one message per session; it goes in once the live one is done and reaped"
                );
                let again = lc
                    .clock
                    .now_ms()
                    .saturating_add(LOOK_AGAIN.as_millis() as u64);
                mb.wait_again(&ids, &why, again)?;
                return Ok(Next::Stop);
            }
            Ok(true) => {
                let pane = match not_now(lc, &adapter, target, id).await {
                    Ok(pane) => pane,
                    Err(not_now) => {
                        let again = lc
                            .clock
                            .now_ms()
                            .saturating_add(not_now.look_again().as_millis() as u64);
                        mb.wait_again(&ids, &not_now.to_string(), again)?;
                        return Ok(match not_now {
                            NotNow::MidTurn(_) => Next::TurnEnd,
                            NotNow::Dialog { .. } => Next::Stop,
                        });
                    }
                };
                let claimed = mb.claim(&ids, id.as_str(), &claimer, lc.clock.now_ms())?;
                if claimed.is_empty() {
                    return Ok(Next::Go);
                }
                let text = joined(batch, &claimed);
                let result = into_live_session(lc, &adapter, id, &target.cwd, &text, pane).await;
                drop(lock);
                let taken = result.is_ok();
                let settled = settle_live(lc, mb, id, &claimed, result, false)?;
                if taken {
                    note_topics(lc, id, batch);
                }
                return Ok(if settled { Next::Go } else { Next::Stop });
            }
            Ok(false) => {}
            Err(e) => return waits(&undelivered_reason(target, &e)),
        }
    }
    // Miss: wake it with the batch as its first message (a boot does not
    // hold a delivery slot). The claim keeps other deliverers off these
    // messages while the wake takes the lock.
    drop(slot);
    let claimed = mb.claim(&ids, id.as_str(), &claimer, lc.clock.now_ms())?;
    if claimed.is_empty() {
        return Ok(Next::Go);
    }
    let text = joined(batch, &claimed);
    let woken = lc
        .wake_or_spawn(&WakeArgs {
            personality: target.personality.to_string(),
            runtime: Some(id.runtime().to_string()),
            task: text.clone(),
            topic: head.topic.clone(),
            ..WakeArgs::default()
        })
        .await;
    let now = lc.clock.now_ms();
    match woken {
        Ok(w) if w.task_delivered == Some(true) => {
            mb.delivered(&claimed, w.identity.as_str(), w.woke(), None, now)?;
            note_topics(lc, &w.identity, batch);
            Ok(Next::Go)
        }
        // Up, but the message did not go in with the wake (it was live
        // by then, or a router): over the live path, verified first.
        Ok(w) => {
            let result = to_live(lc, &w.identity, &target.cwd, &text).await;
            match result {
                Ok(Delivery::Accepted) => {
                    mb.delivered(&claimed, w.identity.as_str(), w.woke(), None, now)?;
                    note_topics(lc, &w.identity, batch);
                    Ok(Next::Go)
                }
                Ok(Delivery::NotLive) => {
                    let why = format!(
                        "peer \"{}\" reported READY but is not live (verify-before-act)",
                        target.personality
                    );
                    mb.requeue(&claimed, &why, retry_at(lc, head))?;
                    Ok(Next::Stop)
                }
                Err(e @ LifecycleError::Unconfirmed { .. }) => {
                    mb.release(&claimed)?;
                    tracing::warn!(identity = %id, "{e}");
                    Ok(Next::Stop)
                }
                Err(e) => {
                    mb.requeue(
                        &claimed,
                        &undelivered_reason(target, &e),
                        retry_at(lc, head),
                    )?;
                    Ok(Next::Stop)
                }
            }
        }
        // The message went in before the boot failed: it may have been
        // taken. Left for the next deliverer to check first.
        Err(LifecycleError::Launch {
            message_pasted: true,
            ref reason,
            ..
        }) => {
            tracing::warn!(identity = %id, "woke with the message, then the launch failed: {reason}");
            mb.release(&claimed)?;
            Ok(Next::Stop)
        }
        Err(e) if permanent(&e) => {
            mb.requeue(&claimed, &e.to_string(), now)?;
            for m in batch.iter().filter(|m| claimed.contains(&m.id)) {
                give_up(lc, mb, m, &e.to_string())?;
            }
            Ok(Next::Go)
        }
        Err(e) => {
            mb.requeue(&claimed, &wake_failed(target, &e), retry_at(lc, head))?;
            Ok(Next::Stop)
        }
    }
}

/// Why a live TUI must not get mail now.
#[derive(Debug, thiserror::Error)]
enum NotNow {
    /// Never typed into; the tail of the pane says what it shows.
    #[error("{id} shows a dialog or prompt: nothing is typed until it is answered{tail}")]
    Dialog { id: Identity, tail: String },
    /// It takes its mail at the turn's end.
    #[error("{0} is mid-turn: it goes in when the turn ends")]
    MidTurn(Identity),
}

impl NotNow {
    /// When the mail pass may look again. Mail waiting on a turn is due at
    /// once: the daemon's drain watches for the turn's end, and a pass
    /// that finds it due starts that watch if none runs.
    fn look_again(&self) -> Duration {
        match self {
            NotNow::Dialog { .. } => LOOK_AGAIN,
            NotNow::MidTurn(_) => Duration::ZERO,
        }
    }
}

/// Whether a live TUI may get mail now: not while a dialog is up, nor
/// mid-turn when it takes its mail at the turn's end. `Ok`: go ahead, with
/// the pane just read (the paste judges the composer on it instead of
/// capturing again).
async fn not_now(
    lc: &Lifecycle,
    adapter: &Adapter,
    target: &PeerRecord,
    id: &Identity,
) -> Result<Option<String>, NotNow> {
    if adapter.info().kind != AdapterKind::Tui {
        return Ok(None);
    }
    let Ok(pane) = lc.tmux.capture_pane(&lc.socket(id), id.as_str()).await else {
        return Ok(None);
    };
    let cwd = canonical(&target.cwd);
    let turn = adapter
        .turn_state(&pane, &cwd.to_string_lossy())
        .await
        .unwrap_or(TurnState::Unknown);
    match turn {
        TurnState::Dialog => Err(NotNow::Dialog {
            id: id.clone(),
            tail: paste::tail_suffix(&pane),
        }),
        TurnState::Working if target.delivery() == DeliveryMode::AtTurnEnd => {
            Err(NotNow::MidTurn(id.clone()))
        }
        _ => Ok(Some(pane)),
    }
}

/// Records a live paste's outcome.
fn settle_live(
    lc: &Lifecycle,
    mb: &Mailbox,
    id: &Identity,
    claimed: &[MessageId],
    result: Result<(), DeliveryFailure>,
    woke: bool,
) -> Result<bool, LifecycleError> {
    match result {
        Ok(()) => {
            mb.delivered(claimed, id.as_str(), woke, None, lc.clock.now_ms())?;
            Ok(true)
        }
        // Nothing typed: it waits, with what was on screen.
        Err(DeliveryFailure::Refused(refused)) => {
            let why = format!("{id}: {refused}");
            tracing::info!("mail waits: {why}");
            let again = lc
                .clock
                .now_ms()
                .saturating_add(LOOK_AGAIN.as_millis() as u64);
            mb.requeue(claimed, &why, again)?;
            Ok(false)
        }
        // Typed in, not seen taken: checked before any second try.
        Err(DeliveryFailure::Unconfirmed) => {
            mb.release(claimed)?;
            Ok(false)
        }
    }
}

/// Whether a wake failure can never deliver this message (a retry would
/// fail the same way).
fn permanent(e: &LifecycleError) -> bool {
    e.is_bad_request() || matches!(e, LifecycleError::NotRegistered(_))
}

fn wake_failed(target: &PeerRecord, e: &LifecycleError) -> String {
    match e {
        LifecycleError::Stopped(_) | LifecycleError::ShuttingDown => e.to_string(),
        e => format!(
            "peer \"{}\" was asleep and the wake failed: {e}",
            target.personality
        ),
    }
}

fn undelivered_reason(target: &PeerRecord, e: &LifecycleError) -> String {
    match e {
        LifecycleError::Launch { .. } => wake_failed(target, e),
        e => e.to_string(),
    }
}

/// The session saw these messages' topics.
fn note_topics(lc: &Lifecycle, id: &Identity, batch: &[&Message]) {
    for topic in batch.iter().filter_map(|m| m.topic.as_deref()) {
        lc.note_topic(id, topic);
    }
}

/// The claimed messages' envelopes, in order, as one paste.
fn joined(batch: &[&Message], claimed: &[MessageId]) -> String {
    batch
        .iter()
        .filter(|m| claimed.contains(&m.id))
        .map(|m| m.envelope.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message a gone deliverer typed in (or was about to): taken if the
/// runtime's record moved since; not taken if its session is gone, or if
/// nothing moved within [`settle_window`] (typed again: a leftover paste
/// is cleared by the next one). `false`: too soon to tell; the peer's
/// later mail waits behind it.
async fn recover(
    lc: &Lifecycle,
    mb: &Mailbox,
    target: &PeerRecord,
    m: &Message,
) -> Result<bool, LifecycleError> {
    let requeue = |why: &str| -> Result<bool, LifecycleError> {
        mb.requeue(std::slice::from_ref(&m.id), why, 0)?;
        Ok(true)
    };
    let Some(id) = m
        .to_identity
        .as_deref()
        .and_then(|i| Identity::parse(i).ok())
    else {
        return requeue("its delivery was interrupted");
    };
    let _lock = lc.lock(&id).await?;
    // Re-read under the lock: someone may have settled it meanwhile.
    let Some(m) = mb.get(&m.id)? else {
        return Ok(true);
    };
    if !is_orphan(&m) {
        return Ok(true);
    }
    let now = lc.clock.now_ms();
    let adapter = lc.adapter(id.runtime())?;
    let live = probe(&lc.socket(&id)) == Liveness::Alive;
    if adapter.info().kind == AdapterKind::Router {
        if !live {
            log_recovery(lc, &m, &id, "again");
            return requeue("its bridge went away while it was typed in; it goes in again");
        }
        // A router keeps no record to ask: typed into a live bridge is as
        // far as can be told.
        mb.delivered(
            std::slice::from_ref(&m.id),
            id.as_str(),
            m.woke,
            Some("typed into the bridge before a crash; it keeps no record to check"),
            now,
        )?;
        log_recovery(lc, &m, &id, "unconfirmed");
        return Ok(true);
    }
    let cwd = canonical(&target.cwd);
    let cwd = cwd.to_string_lossy();
    let since = m.claimed_ms.unwrap_or(m.created_ms);
    let left = lc.in_flight(&id).left_with(&m.envelope);
    let (unsent, entered) = (left == Some(false), left == Some(true));
    // How long its record may lag: a paste that never got its Enter was
    // taken only by a runtime that reads it line by line, which records
    // what it reads as it goes.
    let lag = if unsent {
        LIVE_DELIVERY_GRACE
    } else {
        settle_window(lc)
    };
    let settling = live && now.saturating_sub(since) < lag.as_millis() as u64;
    let taken = || -> Result<bool, LifecycleError> {
        mb.delivered(std::slice::from_ref(&m.id), id.as_str(), m.woke, None, now)?;
        log_recovery(lc, &m, &id, "taken");
        Ok(true)
    };
    // A record that cannot be searched now (a trap, a timeout) is one that
    // does not show it yet: never a reason to count it taken unseen.
    let held = match adapter.record_holds(&cwd, m.id.as_str()).await {
        Ok(held) => held,
        Err(_) => Some(false),
    };
    let moved = paste::activity(&adapter, &cwd).await > since;
    match held {
        // Its id is in the runtime's record: taken (a runtime that reads a
        // paste line by line takes it before its Enter, whose last line
        // then waits in the composer for the Enter the crash cut off).
        Some(true) => {
            if unsent && live {
                let in_flight = lc.in_flight(&id);
                let sock = lc.socket(&id);
                let to = paste::Composer {
                    tmux: &lc.tmux,
                    sock: &sock,
                    id: id.as_str(),
                    adapter: &adapter,
                    in_flight: &in_flight,
                };
                if let Some(pasted) = in_flight.pasted() {
                    paste::finish_taken(&to, &pasted, &cwd).await;
                }
            }
            taken()
        }
        // Not there yet: the record may lag behind what was typed.
        Some(false) if settling => Ok(false),
        // Its Enter went in and the runtime has worked since: taken, its
        // entry beyond the tail searched (much written since) or in
        // another file.
        Some(false) if entered && moved => taken(),
        Some(false) if unsent => {
            log_recovery(lc, &m, &id, "again-unsent");
            requeue("its paste never got its Enter and its runtime never took it; it goes in again")
        }
        Some(false) => {
            log_recovery(lc, &m, &id, "again");
            requeue("typed in but never taken; it goes in again")
        }
        // No record to look in: its activity says. A paste recorded before
        // its Enter was never submitted, whatever the runtime did meanwhile
        // (the next paste clears it).
        None if unsent => {
            log_recovery(lc, &m, &id, "again-unsent");
            requeue("its paste never got its Enter; it goes in again")
        }
        None if moved => taken(),
        None if settling => Ok(false),
        None => {
            log_recovery(lc, &m, &id, "again");
            requeue("typed in but never taken; it goes in again")
        }
    }
}

/// How long a message typed in may take to show in the runtime's record
/// before it counts as not taken: the ready gate, at most 30 s.
fn settle_window(lc: &Lifecycle) -> Duration {
    lc.cfg.ready_gate.min(Duration::from_secs(30))
}

fn log_recovery(lc: &Lifecycle, m: &Message, id: &Identity, outcome: &str) {
    events::log(
        &lc.cfg,
        "mail-recovered",
        &[
            ("id", m.id.as_str()),
            ("identity", id.as_str()),
            ("outcome", outcome),
        ],
    );
}

/// The minute of the last prune.
static LAST_PRUNE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Finished messages are kept this long for `message_status`, then pruned.
const KEEP_FINISHED: Duration = Duration::from_secs(7 * 24 * 3600);

/// The daemon's periodic look at the mailbox: dead-letters what outlived
/// its TTL (its sender gets a bounce), prunes what finished long ago, and
/// names the peers whose mail is due for another try (or was left
/// mid-delivery by a process that is gone).
pub fn mail_pass(lc: &Lifecycle) -> Result<Vec<Personality>, LifecycleError> {
    let mb = lc.mailbox()?;
    let now = lc.clock.now_ms();
    for m in mb.expired(now)? {
        let ttl = Duration::from_millis(m.expires_ms.saturating_sub(m.created_ms));
        let last = m.why.as_deref().unwrap_or("it never went in");
        let why = format!(
            "not delivered within its time to live ({} s); last: {last}",
            ttl.as_secs()
        );
        if mb.dead_letter(std::slice::from_ref(&m.id), &why, now)? == 1 {
            events::log(
                &lc.cfg,
                "mail-dead-letter",
                &[("id", m.id.as_str()), ("to", &m.personality), ("why", &why)],
            );
            bounce(lc, mb, &m, &why, now);
        }
    }
    // Once a minute is plenty for the pruning.
    if now / 60_000 != LAST_PRUNE.swap(now / 60_000, std::sync::atomic::Ordering::Relaxed) {
        let _ = mb.prune(now.saturating_sub(KEEP_FINISHED.as_millis() as u64));
    }
    let mut due: Vec<Personality> = Vec::new();
    for m in mb.waiting(None)? {
        let ready = match m.state {
            MessageState::Queued => m.not_before_ms <= now,
            _ => is_orphan(&m),
        };
        if ready
            && let Ok(p) = Personality::new(&m.personality)
            && !due.contains(&p)
        {
            due.push(p);
        }
    }
    Ok(due)
}

/// Dead-letters a waiting message that can never go in, and tells its
/// sender (a message being typed in is not touched).
fn give_up(lc: &Lifecycle, mb: &Mailbox, m: &Message, why: &str) -> Result<(), LifecycleError> {
    let now = lc.clock.now_ms();
    if mb.dead_letter(std::slice::from_ref(&m.id), why, now)? == 1 {
        events::log(
            &lc.cfg,
            "mail-dead-letter",
            &[("id", m.id.as_str()), ("to", &m.personality), ("why", why)],
        );
        bounce(lc, mb, m, why, now);
    }
    Ok(())
}

/// Tells the sender of a dead-lettered message, as mail from the system
/// (never for the system's own mail).
/// Tells the sender of `m` (a peer here) it was NOT delivered, by mail.
/// Mail from another host is told to that host instead, which tells its
/// sender.
pub(crate) fn bounce(lc: &Lifecycle, mb: &Mailbox, m: &Message, why: &str, now: u64) {
    if m.sender == SYSTEM_SENDER || m.from_host.is_some() {
        return;
    }
    let Ok(sender) = Identity::parse(&m.sender) else {
        return;
    };
    let (runtime, personality) = SYSTEM_SENDER
        .split_once('-')
        .unwrap_or(("system", "iapeer"));
    let text = |id: &MessageId| {
        crate::envelope::build(
            id.as_str(),
            &crate::envelope::Sender {
                personality,
                runtime,
                intelligence: "absent",
            },
            m.topic.as_deref(),
            &[],
            &format!(
                "Your message {} to \"{}\" was NOT delivered: {why}. Nothing of it reached the \
                 peer; send it again if it still matters.",
                m.id, m.personality
            ),
        )
    };
    let committed = mb.commit(
        &mail::NewMessage {
            personality: sender.personality().as_str(),
            runtime: Some(sender.runtime().as_str()),
            sender: SYSTEM_SENDER,
            door: "system",
            topic: m.topic.as_deref(),
            envelope: &text,
            ttl: lc.cfg.mail_ttl,
        },
        now,
    );
    if let Err(e) = committed {
        tracing::warn!(id = %m.id, "cannot queue the bounce: {e}");
    }
}

/// The operator gives up on a waiting message: dead-lettered, its sender
/// told. A message being typed in right now cannot be dropped.
pub fn drop_message(lc: &Lifecycle, id: &MessageId) -> Result<(), String> {
    let mb = lc.mailbox().map_err(|e| e.to_string())?;
    let m = mb
        .get(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{id}: no such message"))?;
    if m.state != MessageState::Queued {
        return Err(format!(
            "{id}: it is {}, not waiting; nothing dropped",
            m.state
        ));
    }
    let why = "dropped by the operator";
    let now = lc.clock.now_ms();
    if mb
        .dead_letter(std::slice::from_ref(id), why, now)
        .map_err(|e| e.to_string())?
        == 0
    {
        return Err(format!(
            "{id}: it left the queue meanwhile; nothing dropped"
        ));
    }
    bounce(lc, mb, &m, why, now);
    Ok(())
}
