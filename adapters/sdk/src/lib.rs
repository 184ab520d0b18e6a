//! Bindings and small helpers for writing an iapeer runtime adapter.
//!
//! An adapter is a `cdylib` crate built for `wasm32-wasip2`:
//!
//! ```ignore
//! use iapeer_adapter_sdk::{Guest, export_adapter};
//! struct MyRuntime;
//! impl Guest for MyRuntime { /* … */ }
//! export_adapter!(MyRuntime);
//! ```
//!
//! It serves the current contract, `iapeer:adapter@0.3.0` (new in 0.3:
//! the required `judge-turn` export, answering a `turn-state`, the
//! required `record-holds` export, and `host-fs.read-tail`). The contract
//! itself, every type and function documented, ships inside this crate, one
//! frozen file per version: `wit/since_v0.X/adapter.wit` (an adapter built
//! for 0.1 from `wit/since_v0.1` keeps loading on every host that serves 0.3;
//! see the gemini example).

wit_bindgen::generate!({
    world: "runtime-adapter",
    path: "wit/since_v0.3",
    default_bindings_module: "iapeer_adapter_sdk",
    pub_export_macro: true,
    export_macro_name: "export_adapter",
});

pub mod screen;

pub use exports::iapeer::adapter::adapter::Guest;
pub use iapeer::adapter::host_fs;
pub use iapeer::adapter::types::{
    AdapterInfo, ControlSequence, DeliveryMarkers, DirEntry, EntryKind, EnvVar, FsError, Kind,
    LaunchCommand, LaunchSpec, TurnState,
};

/// What a TUI that shows Claude Code's paste placeholders declares (the
/// markers every 0.1 host assumed).
pub fn claude_like_delivery() -> DeliveryMarkers {
    DeliveryMarkers {
        paste_placeholders: vec!["[Pasted text".into(), "[Image #".into()],
        composer_rows: 6,
    }
}

/// What a router declares for `delivery` (no composer: not used).
pub fn no_tui_delivery() -> DeliveryMarkers {
    DeliveryMarkers {
        paste_placeholders: Vec::new(),
        composer_rows: 1,
    }
}

/// Newest mtime (epoch ms) among the non-directory entries whose name ends
/// with `suffix`, with the entry's name.
pub fn newest_with_suffix<'a>(entries: &'a [DirEntry], suffix: &str) -> Option<&'a DirEntry> {
    entries
        .iter()
        .filter(|e| e.kind != EntryKind::Directory && e.name.ends_with(suffix))
        .max_by_key(|e| e.mtime_ms)
}

/// `argv` = `head…` followed by the spec's extra arguments, as the contract
/// requires (extras always last).
pub fn argv_with_extras(head: Vec<String>, spec: &LaunchSpec) -> Vec<String> {
    let mut argv = head;
    argv.extend(spec.extra_args.iter().cloned());
    argv
}

/// The control keys shared by the TUI runtimes: `interrupt` is Escape;
/// `compact` types `/compact` literally, then Enter after 300 ms;
/// `clear-input` (empty the composer without submitting it, as the host
/// does with a paste a killed sender left there) is the adapter's own.
pub fn tui_control_keys(command: &str) -> Option<ControlSequence> {
    match command {
        "interrupt" => Some(ControlSequence {
            steps: vec![keys(&["Escape"])],
            step_delay_ms: 0,
        }),
        "compact" => Some(ControlSequence {
            steps: vec![keys(&["-l", "/compact"]), keys(&["Enter"])],
            step_delay_ms: 300,
        }),
        // One press of a key that deletes part of the composer and does
        // nothing on an empty one; the host repeats it until the screen
        // stops changing. Claude Code and Codex: Ctrl-U (one composer line,
        // or one collapsed paste). Never Escape (twice opens a rewind menu)
        // nor Ctrl-C (on an empty Codex composer it quits).
        "clear-input" => Some(ControlSequence {
            steps: vec![keys(&["C-u"])],
            step_delay_ms: 0,
        }),
        _ => None,
    }
}

/// The `run` launch shared by the router runtimes: `<binary> run <extras…>`.
/// Personality and cwd reach the process through `PEER_*` and the session cwd.
pub fn router_run_launch(spec: &LaunchSpec) -> LaunchCommand {
    LaunchCommand {
        argv: argv_with_extras(vec![spec.binary.clone(), "run".into()], spec),
        env: Vec::new(),
    }
}

/// True when `pane` contains any of `markers`.
pub fn contains_any(pane: &str, markers: &[&str]) -> bool {
    markers.iter().any(|m| pane.contains(m))
}

/// Keys for one `tmux send-keys` call.
pub fn keys(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_string()).collect()
}


/// Whitespace as JavaScript's `\s` sees it (the original adapters were
/// written with JS regexes): Unicode White_Space plus U+FEFF.
pub fn is_js_whitespace(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// The error message of a refused intelligence gate.
pub fn intelligence_gate_error(required: &str, actual: Option<&str>) -> String {
    format!(
        "requires intelligence={required} (peer has {})",
        actual.filter(|a| !a.is_empty()).unwrap_or("unknown")
    )
}

/// What a TUI's screen says of its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneTurn {
    /// A dialog, a permission prompt, a question or a menu is up: a key
    /// typed now would answer it.
    Dialog,
    /// A status line says the model or a tool is at work.
    Working,
    /// Neither (a ready composer, or a screen the adapter does not know).
    Other,
}

/// What a runtime's own record (the last entries of its transcript) says of
/// the current turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptTurn {
    /// The last entry opens a turn that has not ended.
    Open,
    /// The last turn ended.
    Ended,
    /// It cannot tell: no transcript, or an entry it does not know.
    Unknown,
}

/// The `judge-turn` rule of a TUI adapter: a dialog on screen wins; then
/// `working` when the pane or the transcript says a turn is open; then
/// `idle` when the composer is ready; else `unknown`. The transcript and
/// the composer are only looked at when the pane has not decided.
pub fn judge_tui_turn(
    pane: PaneTurn,
    transcript: impl FnOnce() -> TranscriptTurn,
    composer_ready: impl FnOnce() -> bool,
) -> TurnState {
    match pane {
        PaneTurn::Dialog => TurnState::Dialog,
        PaneTurn::Working => TurnState::Working,
        PaneTurn::Other if transcript() == TranscriptTurn::Open => TurnState::Working,
        PaneTurn::Other if composer_ready() => TurnState::Idle,
        PaneTurn::Other => TurnState::Unknown,
    }
}

/// Reads a transcript's tail (what `host_fs::read_tail` returned) from its
/// last line back: `judge` gives a line's verdict, or `None` to look at the
/// line before it. A last line with no line break yet (still being written)
/// and blank lines are passed over; no verdict at all is `Unknown`.
pub fn judge_tail(
    tail: &str,
    mut judge: impl FnMut(&str) -> Option<TranscriptTurn>,
) -> TranscriptTurn {
    let complete = tail.rfind('\n').map_or("", |end| &tail[..end]);
    complete
        .rsplit('\n')
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty())
        .find_map(&mut judge)
        .unwrap_or(TranscriptTurn::Unknown)
}

/// The predicates of a router adapter — nothing to resume (always `ok`), no
/// transcripts, no dialogs, always ready, no control keys, no turns (`unknown`:
/// the host falls back to `is-input-ready`), no record to look a message up
/// in — for use inside `impl Guest for …`.
#[macro_export]
macro_rules! router_predicates {
    () => {
        fn resolve_resume(_cwd: String) -> Result<Option<String>, String> {
            Ok(None)
        }

        fn newest_activity_mtime(_cwd: String) -> Option<u64> {
            None
        }

        fn boot_dialog_keys(_pane: String) -> Option<Vec<String>> {
            None
        }

        fn is_input_ready(_pane: String) -> bool {
            true
        }

        fn control_keys(_command: String) -> Option<$crate::ControlSequence> {
            None
        }

        fn judge_turn(_pane: String, _cwd: String) -> $crate::TurnState {
            $crate::TurnState::Unknown
        }

        fn record_holds(_cwd: String, _needle: String) -> Option<bool> {
            None
        }
    };
}

/// How much of a record's end `record-holds` reads: the entries since a
/// message typed in a moment before a crash, with room for long replies.
pub const RECORD_TAIL_BYTES: u32 = 1 << 20;

/// `record-holds` for a runtime whose record is the file at `path` (none:
/// no record yet, so it holds nothing): whether its tail holds the message
/// id `needle` as it stands in an envelope's head (`id="…"`, or JSON-escaped
/// `id=\"…\"`), not merely quoted (a listing of mail the peer printed). A
/// file that cannot be read cannot tell (`None`).
pub fn tail_holds(path: Option<&str>, needle: &str) -> Option<bool> {
    let Some(path) = path else {
        return Some(false);
    };
    host_fs::read_tail(path, RECORD_TAIL_BYTES)
        .ok()
        .map(|tail| !needle.is_empty() && holds_id(&tail, needle))
}

/// Whether `text` holds envelope id `id` as an attribute, plain or
/// JSON-escaped.
fn holds_id(text: &str, id: &str) -> bool {
    text.contains(&format!("id=\"{id}\"")) || text.contains(&format!("id=\\\"{id}\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_word(line: &str) -> Option<TranscriptTurn> {
        match line {
            "open" => Some(TranscriptTurn::Open),
            "ended" => Some(TranscriptTurn::Ended),
            "skip" => None,
            _ => Some(TranscriptTurn::Unknown),
        }
    }

    #[test]
    fn an_id_counts_only_in_an_envelope_head() {
        let id = "01a2527f-1888-77af-b378-fff6239ea45a";
        assert!(holds_id(&format!("<iap from-personality=\"a\" id=\"{id}\">"), id));
        // As Claude Code and Codex keep it: a JSON string.
        assert!(holds_id(&format!(r#"{{"content":"<iap id=\"{id}\">"}}"#), id));
        // Quoted elsewhere (a listing the peer printed): not an envelope.
        assert!(!holds_id(&format!("queued for bob (id {id})"), id));
        assert!(!holds_id(&format!(r#"{{"id":"{id}"}}"#), id));
    }

    #[test]
    fn judge_tail_reads_complete_lines_from_the_last() {
        assert_eq!(judge_tail("ended\nopen\n", last_word), TranscriptTurn::Open);
        assert_eq!(
            judge_tail("open\nended\nskip\n\n", last_word),
            TranscriptTurn::Ended
        );
        // A line still being written is not read.
        assert_eq!(judge_tail("ended\nop", last_word), TranscriptTurn::Ended);
        assert_eq!(
            judge_tail("open\r\nskip\r\n", last_word),
            TranscriptTurn::Open
        );
        assert_eq!(judge_tail("open", last_word), TranscriptTurn::Unknown);
        assert_eq!(judge_tail("", last_word), TranscriptTurn::Unknown);
        assert_eq!(
            judge_tail("skip\nskip\n", last_word),
            TranscriptTurn::Unknown
        );
        assert_eq!(
            judge_tail("open\nraw line\n", last_word),
            TranscriptTurn::Unknown
        );
    }

    #[test]
    fn judge_tui_turn_orders_dialog_working_idle() {
        use TranscriptTurn::*;
        let never = || -> TranscriptTurn { panic!("the pane decided") };
        let never_ready = || -> bool { panic!("the pane decided") };
        assert_eq!(
            judge_tui_turn(PaneTurn::Dialog, never, never_ready),
            TurnState::Dialog
        );
        assert_eq!(
            judge_tui_turn(PaneTurn::Working, never, never_ready),
            TurnState::Working
        );
        assert_eq!(
            judge_tui_turn(PaneTurn::Other, || Open, || true),
            TurnState::Working
        );
        assert_eq!(
            judge_tui_turn(PaneTurn::Other, || Ended, || true),
            TurnState::Idle
        );
        assert_eq!(
            judge_tui_turn(PaneTurn::Other, || Unknown, || true),
            TurnState::Idle
        );
        assert_eq!(
            judge_tui_turn(PaneTurn::Other, || Ended, || false),
            TurnState::Unknown
        );
        assert_eq!(
            judge_tui_turn(PaneTurn::Other, || Unknown, || false),
            TurnState::Unknown
        );
    }
}
