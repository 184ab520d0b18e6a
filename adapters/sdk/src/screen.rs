//! Reading a TUI's screen the way its user does: what is live at the
//! bottom (a dialog, or the composer), not the conversation above it, and
//! a dialog's options by their words, not their position.
//!
//! A pane is plain text, one row per line. Conversation history can hold
//! any text — a message that quotes a dialog's title included — so an
//! adapter judges dialogs and readiness only on the live region, and
//! answers a dialog only by moving the cursor to the option whose text is
//! the intended answer and confirming once the cursor is proven there.

use crate::is_js_whitespace;

/// A pane split into rows once, with its rules found once: the rows of a
/// screen and the horizontal rules (`────…`, as wide as the screen) that
/// TUIs draw above and below a composer or above a dialog. A line of
/// dashes in a message is narrower than the widest row, so it is no rule.
pub struct Screen<'a> {
    rows: Vec<&'a str>,
    rules: Vec<usize>,
}

impl<'a> Screen<'a> {
    pub fn new(pane: &'a str) -> Screen<'a> {
        let rows: Vec<&str> = pane.lines().collect();
        let widths: Vec<usize> = rows
            .iter()
            .map(|r| r.trim_matches(is_js_whitespace).chars().count())
            .collect();
        let widest = widths.iter().copied().max().unwrap_or(0);
        let rules = (0..rows.len())
            .filter(|&i| {
                widths[i] >= 10
                    && widths[i] * 5 >= widest * 4
                    && rows[i]
                        .trim_matches(is_js_whitespace)
                        .chars()
                        .all(|c| c == '─' || c == '━')
            })
            .collect();
        Screen { rows, rules }
    }

    /// Every row.
    pub fn rows(&self) -> &[&'a str] {
        &self.rows
    }

    /// The rows below the last rule (none: the pane has no rule).
    pub fn below_last_rule(&self) -> Option<Vec<&'a str>> {
        let last = *self.rules.last()?;
        Some(self.rows[last + 1..].to_vec())
    }

    /// The rows between the last two rules (the composer of a TUI that
    /// frames it with rules); none unless there are two.
    pub fn between_last_two_rules(&self) -> Option<Vec<&'a str>> {
        let [.., before, last] = self.rules[..] else {
            return None;
        };
        Some(self.rows[before + 1..last].to_vec())
    }

    /// The rows above the last two rules (what a TUI shows above a composer
    /// it frames with rules: the conversation, and at its end a status line
    /// such as a spinner); none unless there are two.
    pub fn above_last_two_rules(&self) -> Option<Vec<&'a str>> {
        let [.., before, _] = self.rules[..] else {
            return None;
        };
        Some(self.rows[..before].to_vec())
    }

    /// The last `n` non-blank rows.
    pub fn last_rows(&self, n: usize) -> Vec<&'a str> {
        let filled: Vec<&str> = self
            .rows
            .iter()
            .copied()
            .filter(|r| !r.trim_matches(is_js_whitespace).is_empty())
            .collect();
        filled[filled.len().saturating_sub(n)..].to_vec()
    }
}

/// True when any row holds `phrase`.
pub fn any_row_has(rows: &[&str], phrase: &str) -> bool {
    rows.iter().any(|r| r.contains(phrase))
}

/// One option of a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Its words, without the cursor glyph and without a `1. ` number.
    pub text: String,
    /// The cursor is on it.
    pub selected: bool,
}

impl Choice {
    /// Does this option say `intended`? Exactly, or followed only by a
    /// mark such as ` ✔` or ` (recommended)` — never by more words
    /// (`Yes` is not `Yes, and don't ask again`).
    pub fn says(&self, intended: &str) -> bool {
        match self.text.strip_prefix(intended) {
            Some("") => true,
            Some(rest) => {
                let mut after = rest.chars();
                after.next() == Some(' ')
                    && after.next().is_some_and(|c| !c.is_alphanumeric())
            }
            None => false,
        }
    }
}

/// Column (in characters) where a row's text starts, and the text.
fn indent(row: &str) -> (usize, &str) {
    let text = row.trim_start_matches(is_js_whitespace);
    (row[..row.len() - text.len()].chars().count(), text)
}

/// `1. Yes` → `Yes`; other text unchanged. `None` when `numbered` is asked
/// and the text has no number.
fn option_words(text: &str, numbered: bool) -> Option<&str> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let unnumbered = (digits > 0)
        .then(|| text[digits..].strip_prefix(". "))
        .flatten();
    match (unnumbered, numbered) {
        (Some(words), _) => Some(words.trim_end_matches(is_js_whitespace)),
        (None, true) => None,
        (None, false) => Some(text.trim_end_matches(is_js_whitespace)),
    }
}

/// The menu under the cursor `glyph` in `rows`: the last row that starts
/// with the glyph followed by text, and the rows next to it whose text
/// starts in the same column (with a `N. ` number each when `numbered`).
/// A menu has at least two options; anything less is none.
pub fn choices(rows: &[&str], glyph: char, numbered: bool) -> Vec<Choice> {
    let cursor = rows.iter().rposition(|r| {
        let (_, text) = indent(r);
        text.strip_prefix(glyph)
            .is_some_and(|rest| rest.starts_with(is_js_whitespace) && !rest.trim().is_empty())
    });
    let Some(cursor) = cursor else {
        return Vec::new();
    };
    let (glyph_col, after_glyph) = indent(rows[cursor]);
    let after = &after_glyph[glyph.len_utf8()..];
    let (pad, selected_text) = indent(after);
    let column = glyph_col + 1 + pad;
    let Some(selected_words) = option_words(selected_text, numbered) else {
        return Vec::new();
    };
    let option_at = |row: &str| {
        let (col, text) = indent(row);
        (col == column && !text.is_empty())
            .then(|| option_words(text, numbered))
            .flatten()
            .map(str::to_string)
    };
    let mut above: Vec<String> = rows[..cursor]
        .iter()
        .rev()
        .map_while(|r| option_at(r))
        .collect();
    above.reverse();
    let below = rows[cursor + 1..].iter().map_while(|r| option_at(r));
    let mut menu: Vec<Choice> = above
        .into_iter()
        .map(|text| Choice {
            text,
            selected: false,
        })
        .collect();
    menu.push(Choice {
        text: selected_words.to_string(),
        selected: true,
    });
    menu.extend(below.map(|text| Choice {
        text,
        selected: false,
    }));
    if menu.len() < 2 { Vec::new() } else { menu }
}

/// One key toward the option that says one of `intended`: `Enter` once the
/// cursor is on it, else one `Down` or `Up`. `None` when no option says it
/// (the dialog is not the one the caller thinks: touch nothing).
pub fn step_toward(menu: &[Choice], intended: &[&str]) -> Option<Vec<String>> {
    let target = menu
        .iter()
        .position(|c| intended.iter().any(|i| c.says(i)))?;
    let at = menu.iter().position(|c| c.selected)?;
    let key = match at.cmp(&target) {
        std::cmp::Ordering::Equal => "Enter",
        std::cmp::Ordering::Less => "Down",
        std::cmp::Ordering::Greater => "Up",
    };
    Some(vec![key.to_string()])
}

/// A dialog an adapter knows: a phrase of its own text (in the live
/// region), and the options that answer it (the first one present wins).
pub struct KnownDialog {
    pub phrase: &'static str,
    pub answers: &'static [&'static str],
}

/// The keys for the first known dialog whose phrase is in `live` and whose
/// menu offers one of its answers.
pub fn answer_known(
    live: &[&str],
    menu: &[Choice],
    known: &[KnownDialog],
) -> Option<Vec<String>> {
    known
        .iter()
        .filter(|d| any_row_has(live, d.phrase))
        .find_map(|d| step_toward(menu, d.answers))
}
