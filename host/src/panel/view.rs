//! Drawing the panel (ratatui): the fleet table, a status line, the plugin
//! problems and the keys. Every state is a glyph and a word; colour only
//! underlines what the words say. Narrow terminals (< 80 columns) drop the
//! last-exit column.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Table, TableState};

use super::model::{Row, Snapshot, ago};
use crate::plugins::TurnState;
use crate::term::escape_controls;

pub struct ViewState<'a> {
    pub snapshot: &'a Snapshot,
    pub visible: &'a [&'a Row],
    pub selected: usize,
    pub now_ms: u64,
    pub status: &'a str,
    pub filter: Option<&'a str>,
    pub overlay: Option<&'a [String]>,
}

const KEYS: &str =
    "↑↓/jk move  Enter attach  w wake  s stop  S start  n new  l log  / filter  q quit";

pub fn draw(frame: &mut Frame, v: &ViewState) {
    let area = frame.area();
    let narrow = area.width < 80;
    let footer_lines = 2 + v.snapshot.problems.len().min(3) as u16;
    let [table_area, footer_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(footer_lines)]).areas(area);

    if let Some(lines) = v.overlay {
        let text: Vec<Line> = lines
            .iter()
            .map(|l| Line::raw(escape_controls(l, false).into_owned()))
            .collect();
        let para = Paragraph::new(text).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" pane log (any key closes) "),
        );
        frame.render_widget(para, table_area);
    } else {
        draw_table(frame, table_area, v, narrow);
    }

    let mut footer = vec![Line::raw(escape_controls(v.status, false).into_owned())];
    for p in v.snapshot.problems.iter().take(3) {
        footer.push(Line::raw(format!("plugin: {}", escape_controls(p, false))));
    }
    let keys = match v.filter {
        Some(f) => format!("filter: {f}▏ (Enter keeps it, Esc clears)"),
        None => KEYS.to_string(),
    };
    footer.push(Line::styled(
        keys,
        Style::default().add_modifier(Modifier::DIM),
    ));
    frame.render_widget(Paragraph::new(footer), footer_area);
}

fn draw_table(frame: &mut Frame, area: ratatui::layout::Rect, v: &ViewState, narrow: bool) {
    // A fleet across hosts adds each row's host.
    let hosts = v.visible.iter().any(|r| r.host.is_some());
    let mut header = if narrow {
        vec!["", "PEER", "RUNTIME", "STATE", "ACTIVE"]
    } else {
        vec!["", "PEER", "RUNTIME", "STATE", "ACTIVE", "LAST EXIT"]
    };
    if hosts {
        header.insert(1, "HOST");
    }
    let rows = v.visible.iter().map(|r| {
        let peer = escape_controls(&r.personality, false);
        let peer = match r.mail {
            0 => peer.into_owned(),
            n => format!("{peer} ✉{n}"),
        };
        // A live TUI mid-turn or at a dialog says so instead of "live".
        let word = match r.turn {
            Some(t @ (TurnState::Working | TurnState::Dialog)) => t.into(),
            _ => r.state.word(),
        };
        let mut cells = vec![
            Cell::from(r.state.glyph()),
            Cell::from(peer),
            Cell::from(escape_controls(&r.runtime, false).into_owned()),
            Cell::from(word),
            Cell::from(r.last_active_ms.map_or("-".into(), |t| ago(v.now_ms, t))),
        ];
        if !narrow {
            let exit = r.last_exit.as_deref().unwrap_or("-");
            cells.push(Cell::from(escape_controls(exit, false).into_owned()));
        }
        if hosts {
            let host = r
                .host
                .as_deref()
                .unwrap_or(v.snapshot.host.as_deref().unwrap_or("-"));
            cells.insert(1, Cell::from(escape_controls(host, false).into_owned()));
        }
        TableRow::new(cells)
    });
    let widths: Vec<Constraint> = if narrow {
        vec![
            Constraint::Length(1),
            Constraint::Min(10),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(8),
        ]
    } else {
        vec![
            Constraint::Length(1),
            Constraint::Min(12),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Percentage(40),
        ]
    };
    let mut widths = widths;
    if hosts {
        widths.insert(1, Constraint::Length(10));
    }
    let title = match &v.snapshot.error {
        Some(e) => format!(" iapeer fleet — {} ", escape_controls(e, false)),
        None if !v.snapshot.read => " iapeer fleet — reading… ".to_string(),
        None => format!(" iapeer fleet — {} runtimes ", v.visible.len()),
    };
    let table = Table::new(rows, widths)
        .header(TableRow::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ");
    let mut state = TableState::default();
    if !v.visible.is_empty() {
        state.select(Some(v.selected.min(v.visible.len() - 1)));
    }
    frame.render_stateful_widget(table, area, &mut state);
}
