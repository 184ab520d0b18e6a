//! The paste primitive: get one message into one TUI's composer and
//! submit it, typing nothing anywhere else. A message goes in only when the
//! adapter sees its composer ready (no dialog up) and no paste a killed
//! sender left is in it; Enter follows only once the paste shows there.
//! A paste in flight is recorded (`state/lifecycle/<id>.pasting`), so the
//! next delivery can tell a leftover apart from history and clear it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::sleep;

use crate::fsutil;
use crate::plugins::{Adapter, AdapterKind, ControlSequence, DeliveryMarkers};
use crate::poll::Poll;
use crate::tmux::Tmux;

/// How long to wait for a paste to show in the pane before giving up on it.
const PASTE_SHOW_TIMEOUT: Duration = Duration::from_millis(1500);
/// A router's paste settles this long before its Ctrl-J.
const ROUTER_PASTE_SETTLE: Duration = Duration::from_millis(250);
/// How long a composer may take to repaint after one `clear-input` press
/// (no change by then: there was nothing left to clear).
const CLEAR_REPAINT: Duration = Duration::from_millis(300);
/// At most this many `clear-input` presses (a line each, for a paste shown
/// in full: an envelope of a few lines takes about twice its line count).
const MAX_CLEAR_PRESSES: usize = 48;

/// The control command that deletes part of a TUI's composer without
/// submitting it, and nothing when it is empty; the host presses it until
/// the screen stops changing. An adapter that has none leaves a stale paste
/// to its operator.
pub const CLEAR_INPUT: &str = "clear-input";

/// The activity proxy, or 0 when the adapter has none (or fails).
pub async fn activity(adapter: &Adapter, cwd: &str) -> u64 {
    adapter
        .newest_activity_mtime(cwd)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// The last two non-empty lines of a pane, flattened for a one-line message.
pub fn pane_tail(pane: &str) -> String {
    let tail = crate::deaths::flat_tail(pane, 2).replace('"', "'");
    tail.chars().take(160).collect()
}

/// `; pane tail: …` for a one-line message, or nothing.
pub fn tail_suffix(pane: &str) -> String {
    let tail = pane_tail(pane);
    if tail.is_empty() {
        String::new()
    } else {
        format!("; pane tail: {tail}")
    }
}

/// The session a paste goes into, and where its paste in flight is
/// recorded.
pub struct Composer<'a> {
    pub tmux: &'a Tmux,
    pub sock: &'a Path,
    pub id: &'a str,
    pub adapter: &'a Adapter,
    pub in_flight: &'a InFlight,
}

/// Where a runtime's own record shows it took a message (its activity
/// proxy moved past `baseline`), for a paste it never showed.
pub struct Taken<'a> {
    pub cwd: &'a str,
    pub baseline: u64,
}

/// Where a paste in flight is recorded: written before the paste, again
/// once it shows, and removed once its fate is known. A record left behind
/// means a process died between a paste and its Enter.
#[derive(Debug, Clone)]
pub struct InFlight(pub PathBuf);

/// What a record of a paste in flight says: the message, so that what is
/// left of it on screen can be told from anyone else's text.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct PasteRecord {
    message: String,
    /// Enter was about to go in: the runtime may have taken it.
    #[serde(default)]
    entered: bool,
}

impl InFlight {
    fn left_behind(&self) -> Option<PasteRecord> {
        let text = fsutil::read_regular_text(&self.0, 256 << 10).ok()?;
        Some(serde_json::from_str(&text).unwrap_or_default())
    }

    fn record(&self, record: &PasteRecord) -> Result<(), PasteRefused> {
        let json = serde_json::to_vec(record).map_err(std::io::Error::other);
        json.and_then(|json| fsutil::write_atomic_lazy(&self.0, &json))
            .map_err(PasteRefused::Record)
    }

    /// Whether a paste holding `text` was left in flight, and if so
    /// whether its Enter was about to go in (`false`: never submitted).
    pub fn left_with(&self, text: &str) -> Option<bool> {
        self.left_behind()
            .filter(|r| !r.message.is_empty() && r.message.contains(text))
            .map(|r| r.entered)
    }

    /// The text of the paste left in flight, if any.
    pub fn pasted(&self) -> Option<String> {
        self.left_behind()
            .map(|r| r.message)
            .filter(|m| !m.is_empty())
    }

    /// The paste's fate is known (submitted, or never shown).
    pub fn settle(&self) {
        let _ = fsutil::remove_if_exists(&self.0);
    }
}

/// Why a message did not go into a TUI. Enter was never pressed, so
/// nothing was submitted: the message was NOT delivered.
#[derive(Debug, thiserror::Error)]
pub enum PasteRefused {
    #[error("the paste failed: {0}")]
    Tmux(#[from] crate::tmux::TmuxError),
    /// The adapter does not see an empty composer (a dialog, a picker, a
    /// question, someone's unsent draft): no key may go in.
    #[error("its input composer is not showing or holds unsent text, so nothing was typed (a dialog, a prompt or someone's draft?){}", tail_suffix(.0))]
    NotReady(String),
    /// The composer holds an earlier paste that never went out (its
    /// sender was killed before Enter), and it could not be cleared.
    #[error(
        "its composer still holds an earlier message that was never submitted ({0:?}); nothing was typed (clear it: iapeer attach)"
    )]
    Leftover(String),
    /// Pasted, but it never showed in a ready composer: Enter was not
    /// pressed (it would have gone to whatever took the paste). If it sits
    /// somewhere unsent, the next delivery clears it first.
    #[error("the paste did not show in a ready composer, so Enter was not pressed")]
    NotSeen,
    /// Keys typed into the composer no longer show there alone (a dialog
    /// came up, or someone typed too): the rest were not sent.
    #[error(
        "after typing {typed:?} the composer no longer shows just that, so the rest of the keys were not sent{}",
        tail_suffix(pane)
    )]
    Diverted { typed: String, pane: String },
    #[error("cannot record the paste in flight: {0}")]
    Record(std::io::Error),
}

/// What the adapter makes of a pane: a composer ready for input?
pub async fn composer_ready(adapter: &Adapter, pane: &str) -> bool {
    adapter.is_input_ready(pane).await.unwrap_or(false)
}

/// Pastes a message into a session and submits it (`just_captured`: see
/// [`ready_composer`]). A router gets the text
/// with LF line ends, then Ctrl-J. A TUI gets it only into a composer
/// [`ready_composer`] accepts; then a bracketed paste, and Enter only once
/// the pane shows the paste in the composer (see [`paste_shown`]) with the
/// composer still ready. A paste that never shows gets no Enter: NOT
/// delivered, unless the runtime's record says it took it all the same.
pub async fn deliver(
    to: &Composer<'_>,
    message: &str,
    taken: &Taken<'_>,
    just_captured: Option<String>,
) -> Result<(), PasteRefused> {
    let &Composer {
        tmux,
        sock,
        id,
        adapter,
        in_flight,
    } = to;
    if adapter.info().kind == AdapterKind::Router {
        tmux.paste(sock, id, message, true).await?;
        sleep(ROUTER_PASTE_SETTLE).await;
        let _ = tmux.send_keys(sock, id, &["C-j".to_string()]).await;
        return Ok(());
    }
    let markers = &adapter.info().delivery;
    let before = ready_composer(to, just_captured).await?;
    let probe = probe_text(message);
    in_flight.record(&PasteRecord {
        message: message.to_string(),
        entered: false,
    })?;
    if let Err(e) = tmux.paste(sock, id, message, false).await {
        in_flight.settle();
        return Err(e.into());
    }
    let mut poll = Poll::new(
        PASTE_SHOW_TIMEOUT,
        Duration::from_millis(10),
        Duration::from_millis(100),
    );
    loop {
        let now = tmux.capture_pane(sock, id).await.unwrap_or_default();
        if paste_shown(&before, &now, &probe, markers) {
            if composer_ready(adapter, &without_paste(&now, message, markers)).await {
                break;
            }
            // Taller than the pane: the composer is out of sight, and will
            // stay so. Judged now as an unseen paste is once its time is up.
            if fills_pane(&now, message, markers) {
                match taken_line_by_line(adapter, taken, &now, message, &probe).await {
                    Some(true) => break,
                    Some(false) => return Ok(()),
                    None => {}
                }
            }
        }
        if !poll.pause().await {
            return match taken_line_by_line(adapter, taken, &now, message, &probe).await {
                Some(true) => break,
                Some(false) => Ok(()),
                None => Err(PasteRefused::NotSeen),
            };
        }
    }
    // From here the runtime may take it: a process killed now leaves the
    // record saying so, and the next deliverer waits for the runtime's
    // record before typing it again.
    in_flight.record(&PasteRecord {
        message: message.to_string(),
        entered: true,
    })?;
    let _ = tmux.send_keys(sock, id, &["Enter".to_string()]).await;
    Ok(())
}

/// A paste not seen in a ready composer, judged as a runtime without
/// bracketed paste takes one: line by line, its record moving. What is
/// left of the paste (its last line) waits for Enter in a composer still
/// ready, or in the composer rows with no dialog or turn on screen (a long paste
/// fills more rows than the composer, so the rest cannot be judged):
/// `Some(true)`, press Enter. A runtime that took it all and ended has
/// nothing left to press: `Some(false)`. Its record did not move: `None`,
/// not taken. The caller settles the in-flight record once the delivery is
/// confirmed.
async fn taken_line_by_line(
    adapter: &Adapter,
    taken: &Taken<'_>,
    pane: &str,
    message: &str,
    probe: &str,
) -> Option<bool> {
    if activity(adapter, taken.cwd).await <= taken.baseline {
        return None;
    }
    let markers = &adapter.info().delivery;
    if composer_ready(adapter, &without_paste(pane, message, markers)).await {
        return Some(true);
    }
    // No Enter into a dialog, nor into a turn the lines already taken
    // started: what is left stays in the composer, and the next paste
    // clears it.
    let busy = matches!(
        adapter.turn_state(pane, taken.cwd).await,
        Ok(crate::plugins::TurnState::Dialog | crate::plugins::TurnState::Working)
    );
    Some(in_composer(pane, probe, markers) && !busy)
}

/// A paste of `message` that a runtime reading line by line took before a
/// crash, its Enter never pressed: what is left of it (its last line)
/// waits in the composer. Enter goes in only where that line sits in a
/// composer otherwise ready, with no dialog or turn on screen; then the
/// in-flight record is settled. `false`: left as it is, with its record
/// (the next paste clears what is left).
pub async fn finish_taken(to: &Composer<'_>, message: &str, cwd: &str) -> bool {
    let Ok(pane) = to.tmux.capture_pane(to.sock, to.id).await else {
        return false;
    };
    let markers = &to.adapter.info().delivery;
    // A composer that looks empty may still hold the line in the runtime's
    // input buffer (echoed elsewhere): the next paste judges and clears it.
    let busy = matches!(
        to.adapter.turn_state(&pane, cwd).await,
        Ok(crate::plugins::TurnState::Dialog | crate::plugins::TurnState::Working)
    );
    let left = in_composer(&pane, &probe_text(message), markers)
        && composer_ready(to.adapter, &without_paste(&pane, message, markers)).await;
    if busy || !left {
        return false;
    }
    if to
        .tmux
        .send_keys(to.sock, to.id, &["Enter".to_string()])
        .await
        .is_err()
    {
        return false;
    }
    to.in_flight.settle();
    true
}

/// Whether `message`, pasted line by line, fills the pane so that the
/// composer drawn above it is out of sight.
fn fills_pane(pane: &str, message: &str, markers: &DeliveryMarkers) -> bool {
    message.lines().count() + markers.composer_rows >= pane.lines().count()
}

/// The pane of a composer ready for our keys: the adapter sees one, and
/// a paste a killed sender left in it is cleared (or the keys refused).
/// A leftover is judged only on a ready pane: a dialog hides the composer.
/// `just_captured`: the pane a caller read a moment ago (the boot loop's),
/// saving a tmux process.
pub async fn ready_composer(
    to: &Composer<'_>,
    just_captured: Option<String>,
) -> Result<String, PasteRefused> {
    let &Composer {
        tmux,
        sock,
        id,
        adapter,
        in_flight,
    } = to;
    let pane = match just_captured {
        Some(pane) => pane,
        None => tmux.capture_pane(sock, id).await?,
    };
    let Some(earlier) = in_flight.left_behind() else {
        return if composer_ready(adapter, &pane).await {
            Ok(pane)
        } else {
            Err(PasteRefused::NotReady(pane))
        };
    };
    // A paste a killed sender left: judged with it taken out, so that a
    // dialog or someone's draft still refuses (the record waits for a
    // composer that shows nothing but what is left of it).
    let without = without_paste(&pane, &earlier.message, &adapter.info().delivery);
    if without == pane || !composer_ready(adapter, &without).await {
        return if composer_ready(adapter, &pane).await {
            // Nothing of it on screen, and the composer empty.
            in_flight.settle();
            Ok(pane)
        } else {
            Err(PasteRefused::NotReady(pane))
        };
    }
    let probe = probe_text(&earlier.message);
    let Ok(Some(clear)) = adapter.control_keys(CLEAR_INPUT).await else {
        // Nothing this host can do: said once (this refusal), and left to
        // the operator.
        in_flight.settle();
        return Err(PasteRefused::Leftover(probe));
    };
    let Some(pane) = clear_until_still(tmux, sock, id, &clear, pane).await? else {
        return Err(PasteRefused::Leftover(probe));
    };
    if !composer_ready(adapter, &pane).await {
        return Err(PasteRefused::NotReady(pane));
    }
    in_flight.settle();
    Ok(pane)
}

/// Presses `clear` until the pane stops changing (a press on an empty
/// composer changes nothing); the pane then, or `None` when it never
/// settled. The same text may also sit in history above the composer: a
/// press that changes nothing had nothing to clear.
async fn clear_until_still(
    tmux: &Tmux,
    sock: &Path,
    id: &str,
    clear: &ControlSequence,
    mut pane: String,
) -> Result<Option<String>, PasteRefused> {
    for _ in 0..MAX_CLEAR_PRESSES {
        send_sequence(tmux, sock, id, clear).await?;
        match changed_within(tmux, sock, id, &pane, CLEAR_REPAINT).await? {
            Some(now) => pane = now,
            None => return Ok(Some(pane)),
        }
    }
    Ok(None)
}

/// Sends a control sequence into a TUI's composer, step by step: the
/// first step only into a composer [`ready_composer`] accepts; each later
/// one only while the composer holds nothing but what the earlier steps
/// typed (a `-l` step's text) and the adapter calls it ready with that
/// taken out (a dialog that came up since hides it). Typed text is
/// recorded in flight like a paste, so that text left by a refusal is
/// cleared by the next delivery.
pub async fn send_into_composer(
    to: &Composer<'_>,
    seq: &ControlSequence,
) -> Result<(), PasteRefused> {
    let markers = &to.adapter.info().delivery;
    let mut typed = String::new();
    for (i, step) in seq.steps.iter().enumerate() {
        if i > 0 {
            sleep(Duration::from_millis(u64::from(seq.step_delay_ms))).await;
        }
        if typed.is_empty() {
            ready_composer(to, None).await?;
        } else {
            let pane = to.tmux.capture_pane(to.sock, to.id).await?;
            if !paste_in_composer(&pane, &typed, markers)
                || !composer_ready(to.adapter, &without_paste(&pane, &typed, markers)).await
            {
                return Err(PasteRefused::Diverted { typed, pane });
            }
        }
        if let [flag, text @ ..] = step.as_slice()
            && flag == "-l"
        {
            typed.push_str(&text.concat());
            to.in_flight.record(&PasteRecord {
                message: typed.clone(),
                entered: false,
            })?;
        }
        to.tmux.send_keys(to.sock, to.id, step).await?;
    }
    if !typed.is_empty() {
        to.in_flight.settle();
    }
    Ok(())
}

/// Sends a control sequence, step by step.
pub async fn send_sequence(
    tmux: &Tmux,
    sock: &Path,
    id: &str,
    seq: &ControlSequence,
) -> Result<(), crate::tmux::TmuxError> {
    for (i, step) in seq.steps.iter().enumerate() {
        if i > 0 {
            sleep(Duration::from_millis(u64::from(seq.step_delay_ms))).await;
        }
        tmux.send_keys(sock, id, step).await?;
    }
    Ok(())
}

/// The pane once it differs from `pane`, within `within`; `None`: it did not.
async fn changed_within(
    tmux: &Tmux,
    sock: &Path,
    id: &str,
    pane: &str,
    within: Duration,
) -> Result<Option<String>, crate::tmux::TmuxError> {
    let mut poll = Poll::new(within, Duration::from_millis(10), Duration::from_millis(50));
    loop {
        let now = tmux.capture_pane(sock, id).await?;
        if now != pane {
            return Ok(Some(now));
        }
        if !poll.pause().await {
            return Ok(None);
        }
    }
}

/// The composer rows of a pane: its bottom non-empty rows, trimmed.
fn composer_rows<'a>(pane: &'a str, markers: &DeliveryMarkers) -> Vec<&'a str> {
    let rows: Vec<&str> = pane
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    rows[rows.len().saturating_sub(markers.composer_rows)..].to_vec()
}

/// Does a composer row show `probe` or a paste placeholder?
fn shows_paste(row: &str, probe: &str, markers: &DeliveryMarkers) -> bool {
    (!probe.is_empty() && row.contains(probe))
        || markers
            .paste_placeholders
            .iter()
            .any(|m| row.contains(m.as_str()))
}

/// Has a paste landed in the pane? It changed, and either the paste's last
/// line (or a collapsed-paste marker) now appears more often than before,
/// or it sits in the composer rows at the bottom. The second test matters
/// on a busy pane: once history scrolls, each new copy of the same last
/// line pushes an old one off the top and the count stays flat.
pub(crate) fn paste_shown(before: &str, now: &str, probe: &str, markers: &DeliveryMarkers) -> bool {
    if now == before {
        return false;
    }
    let count = |pane: &str| {
        (
            pane.matches(probe).count(),
            markers
                .paste_placeholders
                .iter()
                .map(|m| pane.matches(m.as_str()).count())
                .sum::<usize>(),
        )
    };
    let (b, n) = (count(before), count(now));
    n.0 > b.0 || n.1 > b.1 || in_composer(now, probe, markers)
}

/// The bottom non-empty rows of a pane (the adapter's `composer-rows`)
/// hold `probe` or a paste placeholder.
fn in_composer(pane: &str, probe: &str, markers: &DeliveryMarkers) -> bool {
    composer_rows(pane, markers)
        .iter()
        .any(|r| shows_paste(r, probe, markers))
}

/// The line a paste is recognised by: the message's last non-empty line,
/// cut to 30 characters.
fn probe_text(message: &str) -> String {
    message
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(30)
        .collect()
}

/// The pane as if `message` had not been pasted: its text (whole lines or
/// the wrapped pieces of one) and its collapsed placeholders taken out of
/// the composer rows, leaving each row's prompt. What the adapter judges
/// once the paste shows: a composer that holds only our paste is ready for
/// it, one that also holds someone's draft is not (the draft would go out
/// with it).
pub(crate) fn without_paste(pane: &str, message: &str, markers: &DeliveryMarkers) -> String {
    let mut rows: Vec<String> = pane.lines().map(str::to_string).collect();
    let filled: Vec<usize> = (0..rows.len())
        .filter(|&i| !rows[i].trim().is_empty())
        .collect();
    // The composer rows, and as many more as the message can fill (a line
    // a row, a long one wrapped over several).
    let tall: usize = message.lines().map(|l| 1 + l.chars().count() / 40).sum();
    for &i in &filled[filled.len().saturating_sub(markers.composer_rows + tall)..] {
        let mut row = rows[i].trim_end().to_string();
        for marker in &markers.paste_placeholders {
            while let Some(at) = row.find(marker.as_str()) {
                let end = row[at..].find(']').map_or(row.len(), |e| at + e + 1);
                row.replace_range(at..end, "");
            }
        }
        // The longest tail of the row that is message text, after a lead
        // of nothing but prompt and indent characters.
        let lead = row
            .char_indices()
            .find(|(_, c)| c.is_alphanumeric())
            .map_or(row.len(), |(at, _)| at);
        let tail = row
            .char_indices()
            .map(|(at, _)| at)
            .take_while(|&at| at <= lead)
            .find(|&at| {
                let tail = &row[at..];
                tail.chars().any(char::is_alphanumeric) && message.contains(tail)
            });
        if let Some(at) = tail {
            row.truncate(at);
        } else if row.starts_with(char::is_whitespace)
            && !row.trim().is_empty()
            && message.lines().any(|l| l.trim() == row.trim())
        {
            // A line of nothing but punctuation (`...`, `---`, a lone `❯`)
            // is ours only as a whole, indented continuation line: a
            // prompt row starts at the left edge and keeps its glyph.
            row.truncate(row.len() - row.trim_start().len());
        }
        rows[i] = row;
    }
    rows.join("\n")
}

/// Is the paste of `message` still sitting in the composer rows? Once it
/// was submitted, the composer clears ("paste cleared").
pub(crate) fn paste_in_composer(pane: &str, message: &str, markers: &DeliveryMarkers) -> bool {
    in_composer(pane, &probe_text(message), markers)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plugins::legacy_claude_info as legacy;

    fn paste_shown(before: &str, now: &str, probe: &str) -> bool {
        super::paste_shown(before, now, probe, &legacy().delivery)
    }

    #[test]
    fn a_paste_is_seen_even_when_the_pane_scrolls() {
        let probe = "</iap>";
        // Nothing changed: not shown.
        assert!(!paste_shown("a\n</iap>\n", "a\n</iap>\n", probe));
        // One more copy: shown.
        assert!(paste_shown("x\n", "x\n<iap>\n</iap>", probe));
        // A full pane scrolls: the count stays flat, but the new copy sits
        // at the bottom.
        let before: String = (0..50)
            .map(|i| format!("line {i}\n</iap>\n"))
            .collect::<Vec<_>>()[..25]
            .concat();
        let mut now = before.lines().skip(2).collect::<Vec<_>>().join("\n");
        now.push_str("\n<message>m</message>\n</iap>");
        assert_eq!(before.matches(probe).count(), now.matches(probe).count());
        assert!(paste_shown(&before, &now, probe));
        // A collapsed paste in the composer.
        assert!(paste_shown(
            "hist\n❯ \n  bypass permissions on",
            "hist\n❯ [Pasted text #3 +5 lines]\n  bypass permissions on",
            probe
        ));
        // Changed elsewhere, paste not visible at the bottom yet.
        let top_changed = format!(
            "{}\nnew history line\n❯ \n status\n a\n b\n c\n d",
            "</iap>"
        );
        assert!(!paste_shown(
            "</iap>\nold\n❯ \n status\n a\n b\n c\n d",
            &top_changed,
            probe
        ));
    }

    /// Our paste is taken out of the composer, a draft beside it is not.
    #[test]
    fn the_pane_without_our_paste() {
        let markers = legacy().delivery;
        let message = "<iap from-personality=\"a\">\nIAP message line\n<message><![CDATA[hello world]]></message>\n</iap>";
        let frame = |composer: &str| format!("● reply\n────\n{composer}\n────\n  ⏵⏵ status\n");
        // Collapsed.
        assert_eq!(
            without_paste(
                &frame("❯\u{a0}[Pasted text #3 +3 lines]"),
                message,
                &markers
            ),
            frame("❯\u{a0}").trim_end()
        );
        // In full, one row a line, and a long line wrapped over two rows.
        let full = frame(
            "› <iap from-personality=\"a\">\n  IAP message line\n  <message><![CDATA[hello\n  world]]></message>\n  </iap>",
        );
        let stripped = without_paste(&full, message, &legacy_nine_rows());
        let composer: Vec<&str> = stripped.lines().skip(2).take(5).collect();
        assert_eq!(composer[0], "› ", "{stripped}");
        assert!(
            composer[1..].iter().all(|r| r.trim().is_empty()),
            "{stripped}"
        );
        // A draft before the paste stays.
        let drafted = without_paste(
            &frame("❯ rm -rf my draft[Pasted text #3 +3 lines]"),
            message,
            &markers,
        );
        assert!(drafted.contains("❯ rm -rf my draft\n"), "{drafted}");
        let drafted = without_paste(
            &frame("❯ my draft<iap from-personality=\"a\">"),
            message,
            &markers,
        );
        assert!(drafted.contains("❯ my draft<iap"), "{drafted}");
        // A line of punctuation alone is ours as a whole line only.
        let dots = "<message><![CDATA[x\n...\n---\n❯\nend]]></message>";
        let shown = frame("› <message><![CDATA[x\n  ...\n  ---\n  ❯\n  end]]></message>");
        let stripped = without_paste(&shown, dots, &legacy_nine_rows());
        assert!(
            stripped
                .lines()
                .skip(2)
                .take(5)
                .skip(1)
                .all(|r| r.trim().is_empty()),
            "{stripped}"
        );
        // Rules and status rows that are not message text stay.
        assert!(without_paste(&frame("❯ "), message, &markers).contains("⏵⏵ status"));
    }

    fn legacy_nine_rows() -> DeliveryMarkers {
        DeliveryMarkers {
            composer_rows: 9,
            ..legacy().delivery
        }
    }
}
