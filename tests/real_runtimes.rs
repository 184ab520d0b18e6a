//! The real Claude Code and Codex CLIs, pinned from npm
//! (`tests/interop/install-clis.sh`, which `.ci/run` runs), driven by
//! scripted model stand-ins on loopback (`tests/interop/model_anthropic.py`,
//! `model_openai.py`): what we claim about a runtime is what it does. Each
//! test starts from a fresh `$HOME` where the user has only finished the
//! runtime's onboarding; every dialog about the peer's folder, the added
//! dir, bypass mode or a new model is iapeerd's to get through. Each
//! message is checked at the model: reported delivered ⇒ there exactly
//! once; NOT delivered ⇒ never there; queued (kept in the mailbox) ⇒ not
//! there until a later drain, then exactly once; an operator's draft never.
//!
//! Without the CLIs the harness reports these tests ignored; CI sets
//! `IAPEER_REQUIRE_REAL_CLIS=1`, so there they must run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Fleet, output_text};
use crate::real::*;
use crate::toolchain::Case;
/// Sends each message (after the peer is idle) and checks the model saw
/// every delivered one exactly once and no refused one. Returns failures.
fn sequence_of_tricky(f: &Fleet, model: &Model, id: &str, bodies: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        settle(f, id);
        let tag = format!("zq{i}mark");
        let msg = format!("{tag} {body}");
        let (ok, out) = send(f, &msg);
        if ok {
            if !wait("delivered msg at model", 30, || model.count(&tag) >= 1) {
                bad.push(format!(
                    "#{i} reported delivered, never at the model: {out}\npane:\n{}",
                    f.pane(id)
                ));
                continue;
            }
            settle(f, id);
            let n = model.count(&tag);
            if n != 1 {
                bad.push(format!("#{i} delivered {n} times"));
            }
        } else {
            std::thread::sleep(Duration::from_secs(3));
            eprintln!("#{i} refused: {out}\npane:\n{}", f.pane(id));
            if model.ever(&tag) {
                bad.push(format!(
                    "#{i} reported NOT delivered but reached the model: {out}"
                ));
            } else {
                bad.push(format!("#{i} refused (false refusal of a plain message on an idle peer): {out}\npane:\n{}", f.pane(id)));
                // Clear whatever it left so later cases run.
                for _ in 0..40 {
                    keys(f, id, &["C-u"]);
                }
            }
        }
    }
    bad
}

/// Operator drafts that the adapters may take for an empty composer. A
/// message sent beside one is kept (queued), never typed next to it.
fn draft_probe(
    f: &Fleet,
    model: &Model,
    id: &str,
    typed: &[&[&str]],
    draft_mark: &str,
    mark: &str,
) -> Vec<String> {
    let mut bad = Vec::new();
    settle(f, id);
    for k in typed {
        keys(f, id, k);
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(700));
    eprintln!("pane with draft:\n{}", f.pane(id));
    let (ok, out) = send(f, &format!("{mark} after a draft"));
    std::thread::sleep(Duration::from_secs(4));
    if model.ever(draft_mark) {
        bad.push(format!(
            "the operator's draft ({draft_mark}) reached the model; send ok={ok}: {out}"
        ));
    }
    if model.ever(mark) {
        bad.push(format!("{mark} went in beside the operator's draft: {out}"));
    }
    // A draft is the operator's: nothing goes in beside it, and it stays.
    if ok || !queued(&out) {
        bad.push(format!(
            "a send beside the operator's draft was not kept for later: {out}"
        ));
    }
    let pane = f.pane(id);
    if !pane.contains(draft_mark) {
        bad.push(format!(
            "the operator's draft ({draft_mark}) left the composer:\n{pane}"
        ));
    }
    eprintln!("send ok={ok}: {out}\npane after:\n{pane}");
    bad
}

/// A paste left by a killed sender (record + paste in the composer, as a
/// SIGKILL between paste and Enter leaves it): the next send must clear it
/// and go alone, or refuse; the leftover must never reach the model, and
/// the peer must not stay wedged.
fn leftover_probe(f: &Fleet, model: &Model, id: &str) -> Vec<String> {
    let mut bad = Vec::new();
    settle(f, id);
    // Kill senders at varied moments until a paste is left in flight.
    let mut left = false;
    let mut left_mark = String::new();
    for round in 0..30u64 {
        let msg = format!("lf{round}killed leftover body");
        let mut cli = f
            .cmd(&["send", "bob", "--from", "claude-op", "--message", &msg])
            .spawn()
            .unwrap();
        // Wait for the paste to show, then SIGKILL.
        let start = Instant::now();
        let mut shown = false;
        while start.elapsed() < Duration::from_millis(3000) {
            let p = f.pane(id);
            if p.contains(&format!("lf{round}killed")) || p.contains("[Pasted text") {
                shown = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = cli.kill();
        let _ = cli.wait();
        std::thread::sleep(Duration::from_millis(500));
        let rec = f.state(id, "pasting").exists();
        eprintln!("round {round}: shown={shown} record={rec}");
        if rec && shown && !model.ever(&format!("lf{round}killed")) {
            left = true;
            left_mark = format!("lf{round}killed");
            eprintln!(
                "leftover pane:\n{}\nrecord: {:?}",
                f.pane(id),
                std::fs::read_to_string(f.state(id, "pasting"))
            );
            break;
        }
        settle(f, id);
    }
    if !left {
        bad.push("could not leave a paste in flight (probe inconclusive)".into());
        return bad;
    }
    let mut delivered_after = false;
    for j in 0..3 {
        let (ok, out) = send(f, &format!("af{j}ter the kill"));
        eprintln!("after-send {j}: ok={ok} {out}\npane:\n{}", f.pane(id));
        std::thread::sleep(Duration::from_secs(4));
        if ok {
            delivered_after = true;
            if model.count(&format!("af{j}ter")) != 1 {
                bad.push(format!(
                    "after-send {j} reported delivered, at model {}x",
                    model.count(&format!("af{j}ter"))
                ));
            }
            break;
        } else if !queued(&out) && model.ever(&format!("af{j}ter")) {
            bad.push(format!("after-send {j} NOT delivered but at the model"));
        }
    }
    // The killed sender's message was accepted (in the mailbox): it goes
    // in again from there, cleared from the composer first, and reaches
    // the model once; never its leftover beside another paste.
    settle(f, id);
    let n = model.count(&left_mark);
    if n != 1 {
        bad.push(format!(
            "the killed sender's message reached the model {n}x"
        ));
    }
    if !delivered_after {
        bad.push(format!(
            "the leftover was never cleared: three later sends were all refused (peer wedged until an operator clears it); pane:\n{}",
            f.pane(id)
        ));
    }
    bad
}

/// Ten senders while the model holds its turn, with a daemon up: while the
/// model holds its turn nothing is typed (each send says it is queued, the
/// pane never shows them, the model never gets them); when the turn ends
/// the daemon delivers them, each exactly once, the first before the
/// other nine.
fn busy_probe(f: &Fleet, model: &Model, id: &str) -> Vec<String> {
    let mut bad = Vec::new();
    settle(f, id);
    let d = f.start_daemon(&[]);
    model.script(json!([{"hold_secs": 8, "reply": "long one done"}, {"reply": "r2"}, {"reply": "r3"}, {"reply": "r4"}]));
    let (ok, out) = send(f, "bz0mark start a long turn");
    assert!(ok, "{out}");
    assert!(wait("busy", 10, || f.pane(id).contains("esc to interrupt")
        || f.pane(id).contains("Working")));
    let (ok1, out1) = send(f, "bz01mark sent mid-turn");
    eprintln!("mid-turn send: ok={ok1} {out1}");
    // Nine more senders at once.
    let quick = |text: String| {
        f.cmd(&[
            "send",
            "bob",
            "--from",
            "claude-op",
            "--wait",
            "0",
            "--message",
            &text,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let marks: Vec<String> = (1..=10).map(|i| format!("bz{i:02}mark")).collect();
    let children: Vec<_> = marks[1..]
        .iter()
        .map(|m| quick(format!("{m} at once\nsecond line")))
        .collect();
    let mut outs = vec![out1];
    outs.extend(
        children
            .into_iter()
            .map(|c| output_text(&c.wait_with_output().unwrap())),
    );
    let held: Vec<&str> = marks.iter().map(String::as_str).collect();
    for (mark, out) in held.iter().zip(&outs) {
        if !(queued(out) && out.contains("mid-turn")) {
            bad.push(format!(
                "{mark} sent mid-turn was not held for the turn's end: {out}"
            ));
        }
    }
    // Still inside the held turn: nothing of them anywhere.
    let pane = f.pane(id);
    for &mark in &held {
        if model.ever(mark) || pane.contains(mark) {
            bad.push(format!("{mark} went in while the model worked:\n{pane}"));
        }
    }
    if !wait("the held messages at the model", 40, || {
        held.iter().all(|m| model.ever(m))
    }) {
        bad.push(format!(
            "the held messages never arrived; pane:\n{}",
            f.pane(id)
        ));
    }
    settle(f, id);
    std::thread::sleep(Duration::from_secs(2));
    for mark in ["bz0mark"].iter().chain(&held) {
        let n = model.count(mark);
        if n != 1 {
            bad.push(format!("{mark} at the model {n}x"));
        }
    }
    let turns = model.turns();
    let first = |m: &str| turns.iter().position(|t| t.contains(m));
    if held[1..].iter().any(|m| first("bz01mark") > first(m)) {
        bad.push(format!("out of order: {turns:#?}"));
    }
    eprintln!(
        "held messages: {} turn(s) carried them",
        turns
            .iter()
            .filter(|t| held.iter().any(|m| t.contains(m)))
            .count()
    );
    drop(d);
    bad
}

/// compact / interrupt with an operator's draft: refused, draft never sent.
fn control_with_draft(f: &Fleet, model: &Model, id: &str) -> Vec<String> {
    let mut bad = Vec::new();
    settle(f, id);
    keys(f, id, &["-l", "dr4ftctl keep me"]);
    assert!(wait("draft", 10, || f.pane(id).contains("dr4ftctl")));
    for verb in ["compact", "interrupt"] {
        let o = f.run(&[verb, "bob"]);
        eprintln!("{verb}: {}", output_text(&o));
        if o.status.success() {
            bad.push(format!(
                "{verb} with a draft succeeded: {}",
                output_text(&o)
            ));
        }
        std::thread::sleep(Duration::from_secs(3));
        if !f.pane(id).contains("dr4ftctl") {
            bad.push(format!(
                "{verb}: the draft is gone from the composer:\n{}",
                f.pane(id)
            ));
        }
    }
    if model.ever("dr4ftctl") {
        bad.push("the draft reached the model".into());
    }
    // Every request after boot: none may carry /compact with the draft.
    bad
}

/// Messages whose lines look like the TUI's own rows, or that a TUI shows
/// in full over many rows, or wraps.
fn tricky_bodies() -> Vec<String> {
    vec![
        "line with the prompt\n❯\n›\n❯ \nend".to_string(),
        "⏵⏵ bypass permissions on (shift+tab to cycle)\n? for shortcuts\nesc to interrupt".into(),
        "Ask Codex to do anything".into(),
        "!!!\n...\n---\n  • a bullet\n)))".into(),
        (0..40)
            .map(|i| format!("row {i}"))
            .collect::<Vec<_>>()
            .join("\n"),
        "x".repeat(850),
        "🙂x".repeat(200),
    ]
}

/// Booted from a fresh folder (the start-up dialogs answered by their
/// words): the first message reached the model once; tricky messages each
/// once; an operator's unsent draft (of several shapes) is never sent and
/// blocks messages, `compact` and `interrupt` with NOT delivered.
fn delivers_and_never_sends_a_draft(f: &Fleet, model: &Model, id: &str) -> Vec<String> {
    let turns = model.turns();
    let mut bad = Vec::new();
    if turns.len() != 1 {
        bad.push(format!("the first message not once: {turns:#?}"));
    }
    bad.extend(sequence_of_tricky(f, model, id, &tricky_bodies()));
    let drafts: &[&[&str]] = &[
        &["-l", "dr4ft the operator wrote"],
        &["-l", "Try \"dr4ft\" again"],
        &["-l", "dr4ft: what does ? for shortcuts do"],
    ];
    let marks = ["qq7a", "qq7b", "qq7c"];
    for (typed, mark) in drafts.iter().zip(marks) {
        bad.extend(draft_probe(f, model, id, &[typed], "dr4ft", mark));
        for _ in 0..8 {
            keys(f, id, &["C-u"]);
        }
        // Drained by the next send, behind a draft again: still kept.
    }
    bad.extend(control_with_draft(f, model, id));
    for _ in 0..8 {
        keys(f, id, &["C-u"]);
    }
    // The drafts gone, the next send drains the mailbox: every kept
    // message once, in order, then this one.
    settle(f, id);
    let (ok, out) = send(f, "qq7z drains the mailbox");
    if !ok {
        bad.push(format!("the drain after the drafts did not deliver: {out}"));
    }
    wait("the kept messages", 30, || model.ever("qq7z"));
    settle(f, id);
    for mark in marks.iter().chain(&["qq7z"]) {
        let n = model.count(mark);
        if n != 1 {
            bad.push(format!("{mark} kept then drained: at model {n}x"));
        }
    }
    if model.ever("dr4ft") {
        bad.push("a draft reached the model".into());
    }
    bad
}

/// Runs `probe` on a booted `bob` of the real `runtime` (skipped, said,
/// without the CLI); every failure it lists fails the test.
fn on_real(runtime: &str, probe: fn(&Fleet, &Model, &str) -> Vec<String>) {
    let Some((model, f)) = real_fleet(runtime) else {
        return;
    };
    boot(&f, &model, runtime);
    let bad = probe(&f, &model, &format!("{runtime}-bob"));
    assert!(bad.is_empty(), "{bad:#?}");
}

fn real_claude_delivers_and_never_sends_a_draft() {
    on_real("claude", delivers_and_never_sends_a_draft);
}

fn real_codex_delivers_and_never_sends_a_draft() {
    on_real("codex", delivers_and_never_sends_a_draft);
}

/// A sender killed right after its paste showed leaves it in the composer:
/// the next message clears it (Ctrl-U until the screen is still) and goes
/// alone; the leftover never reaches the model.
fn real_claude_clears_a_killed_senders_paste() {
    on_real("claude", leftover_probe);
}

fn real_codex_clears_a_killed_senders_paste() {
    on_real("codex", leftover_probe);
}

/// A message sent while the model holds a turn open, and two at once: all
/// held for the turn's end, then each at the model once, in order.
fn real_claude_messages_mid_turn_and_at_once() {
    on_real("claude", busy_probe);
}

fn real_codex_messages_mid_turn_and_at_once() {
    on_real("codex", busy_probe);
}

pub const CASES: &[Case] = crate::cases![
    real_claude_delivers_and_never_sends_a_draft,
    real_codex_delivers_and_never_sends_a_draft,
    real_claude_clears_a_killed_senders_paste,
    real_codex_clears_a_killed_senders_paste,
    real_claude_messages_mid_turn_and_at_once,
    real_codex_messages_mid_turn_and_at_once,
];
