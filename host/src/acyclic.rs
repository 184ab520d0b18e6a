//! The crate's modules import each other without cycles: among the
//! top-level modules (a folder counts as one), and among the members of
//! each folder at any depth (a folder's `mod.rs`, which declares them, is
//! none). Read from the source with comments, literals and test modules
//! blanked: every `crate::`, `super::` and `use` path, groups expanded,
//! followed through any `use` (public or not, named or glob) to the module
//! that defines the item, and every call of a `macro_rules!` macro. Not
//! seen: `#[path]`, `include!`, `extern crate self`, spaced paths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every `.rs` file under `src/` but the binaries, as its module path.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            out.insert(module, path);
        }
    }
    out
}

/// The code of a file with its comments and the insides of its string and
/// character literals blanked out (line breaks kept), so neither a `//` in
/// a string nor a path in a comment is read as code.
fn code(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && {
            // `r"…"`, and `br"…"`/`cr"…"`: the `b` or `c` must start a token.
            let before = &chars[..i];
            let starts = |cs: &[char]| {
                cs.last()
                    .is_none_or(|p| !(p.is_alphanumeric() || *p == '_'))
            };
            starts(before)
                || (matches!(before.last(), Some('b' | 'c')) && starts(&before[..before.len() - 1]))
        } {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            out.push_str(&" ".repeat(j - i + 1));
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    out.push_str(&" ".repeat(hashes + 1));
                    i += hashes + 1;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            i = quoted(&chars, i, &mut out);
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime.
            i = quoted(&chars, i, &mut out);
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The code without its `#[cfg(test)] mod … { … }` blocks: what a test
/// imports is no dependency of the module (and `super` in there is the
/// file's own module, one level below what the file's paths start from).
fn without_test_modules(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]").map(|i| from + i) {
        from = at + 12;
        let rest = out[from..].trim_start();
        let is_mod = rest.starts_with("mod ") || rest.starts_with("pub mod ");
        let Some(open) = rest
            .find('{')
            .filter(|o| is_mod && !rest[..*o].contains(';'))
        else {
            continue;
        };
        let start = out.len() - rest.len() + open;
        let mut depth = 0;
        let mut end = out.len();
        for (i, c) in out[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = start + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let blank: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blank);
    }
    out
}

/// Blanks a quoted literal that opens at `chars[i]` (escapes honoured, line
/// breaks kept); the index after it.
fn quoted(chars: &[char], mut i: usize, out: &mut String) -> usize {
    let quote = chars[i];
    out.push(' ');
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' {
            out.push(' ');
            i += 1;
        }
        if let Some(&c) = chars.get(i) {
            out.push(if c == '\n' { '\n' } else { ' ' });
            i += 1;
        }
    }
    out.push(' ');
    i + 1
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// `$crate::` (inside a macro) is not a path of the defining module.
fn word_starts_at(code: &str, i: usize) -> bool {
    !code[..i]
        .chars()
        .last()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$')
}

/// The paths of a path tree (`a::b`, `a::{b, c::{d, e as f}}`, `a::*`)
/// starting at `s`, each as its segments and the name it binds (its alias,
/// else its last segment).
fn bindings(s: &str) -> Vec<(Vec<String>, String)> {
    fn parse(s: &str, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) -> usize {
        let mut path = prefix.to_vec();
        let mut at = 0;
        loop {
            let rest = s[at..].trim_start();
            at = s.len() - rest.len();
            if rest.starts_with('{') {
                at += 1;
                loop {
                    at += parse(&s[at..], &path, out);
                    let rest = s[at..].trim_start();
                    at = s.len() - rest.len();
                    if rest.starts_with(',') {
                        at += 1;
                        continue;
                    }
                    if rest.starts_with('}') {
                        at += 1;
                    }
                    return at;
                }
            }
            let segment = if rest.starts_with('*') {
                "*"
            } else {
                match ident_at(rest) {
                    Some(id) => id,
                    None => break,
                }
            };
            path.push(segment.to_string());
            at += segment.len();
            match s[at..].strip_prefix("::") {
                Some(_) => at += 2,
                None => break,
            }
        }
        let mut name = path.last().cloned().unwrap_or_default();
        let rest = s[at..].trim_start();
        if let Some(after) = rest.strip_prefix("as ") {
            let alias_at = after.len() - after.trim_start().len();
            if let Some(alias) = ident_at(after.trim_start()) {
                name = alias.to_string();
                at = s.len() - after.len() + alias_at + alias.len();
            }
        }
        if path.len() > prefix.len() {
            out.push((path, name));
        }
        at
    }
    let mut out = Vec::new();
    parse(s, &[], &mut out);
    out
}

/// The paths of a path tree, without the names they bind.
fn tree(s: &str) -> Vec<Vec<String>> {
    bindings(s).into_iter().map(|(path, _)| path).collect()
}

/// Every path a file's code names: each `crate::…` and `super::…` path
/// (with its `{…}` groups expanded), and each path of a `use` statement
/// (which may also start with `self::` or a child module's name). Paths
/// stay relative (`super`, `self` as written); [`absolute`] resolves them.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for prefix in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(prefix).map(|i| from + i) {
            from = i + prefix.len();
            if word_starts_at(code, i) {
                out.extend(tree(&code[i..]));
            }
        }
    }
    let mut from = 0;
    while let Some(i) = code[from..].find("use ").map(|i| from + i) {
        from = i + 4;
        if word_starts_at(code, i) {
            out.extend(
                tree(&code[from..])
                    .into_iter()
                    .filter(|p| p[0] != "crate" && p[0] != "super"),
            );
        }
    }
    out
}

/// A path as written in `here` made absolute (`None`: another crate's).
fn absolute(path: &[String], here: &Module, known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let mut base = here.clone();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some("self") => rest = &rest[1..],
        Some(first) if known.contains_key(&[here.clone(), vec![first.to_string()]].concat()) => {}
        _ => return None,
    }
    Some([base, rest.to_vec()].concat())
}

/// What each module's `use` statements bind, public or not (a child module
/// sees its parent's private imports): a name to the absolute path it
/// stands for, and the modules it imports all of.
#[derive(Default)]
struct Reexports {
    named: BTreeMap<String, Module>,
    globs: Vec<Module>,
}

fn reexports(code: &str, here: &Module, known: &BTreeMap<Module, PathBuf>) -> Reexports {
    let mut out = Reexports::default();
    let mut from = 0;
    while let Some(i) = code[from..].find("use ").map(|i| from + i) {
        from = i + 4;
        if !word_starts_at(code, i) {
            continue;
        }
        let tail = &code[from..];
        let statement = &tail[..tail.find(';').unwrap_or(tail.len())];
        for (path, name) in bindings(statement) {
            let Some(abs) = absolute(&path, here, known) else {
                continue;
            };
            if name == "*" {
                out.globs.push(abs[..abs.len() - 1].to_vec());
            } else {
                out.named.insert(name, abs);
            }
        }
    }
    out
}

/// Whether a module's code defines an item named `name` at its top level
/// (a line that starts with the item, so not a method in an `impl`).
fn defines(code: &str, name: &str) -> bool {
    let kinds = [
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod", "union",
    ];
    code.lines().any(|line| {
        let mut rest = line;
        if let Some(r) = rest.strip_prefix("pub") {
            rest = r.trim_start();
            if rest.starts_with('(') {
                rest = rest[rest.find(')').map_or(rest.len(), |e| e + 1)..].trim_start();
            }
        }
        kinds.iter().any(|kind| {
            rest.strip_prefix(kind)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|r| ident_at(r.trim_start()))
                == Some(name)
        })
    })
}

/// The module an absolute path lands in: the longest known module it
/// starts with, followed through that module's re-exports of the next
/// segment (a re-exported item lives where it is defined).
fn resolve(
    path: &Module,
    known: &BTreeMap<Module, PathBuf>,
    exports: &BTreeMap<Module, Reexports>,
    codes: &BTreeMap<Module, String>,
) -> Option<Module> {
    let mut path = path.clone();
    for _ in 0..8 {
        let module = (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| known.contains_key(m))?;
        let Some(item) = path.get(module.len()) else {
            return Some(module);
        };
        let ex = &exports[&module];
        if let Some(target) = ex.named.get(item) {
            path = [target.clone(), path[module.len() + 1..].to_vec()].concat();
            continue;
        }
        let glob = ex
            .globs
            .iter()
            .find(|g| codes.get(*g).is_some_and(|c| defines(c, item)));
        match glob {
            Some(g) => path = [g.clone(), path[module.len()..].to_vec()].concat(),
            None => return Some(module),
        }
    }
    None
}

/// The crate's macros (`macro_rules!`, exported or not) and the module
/// defining each.
fn macros(codes: &BTreeMap<Module, String>) -> BTreeMap<String, Module> {
    let mut out = BTreeMap::new();
    for (module, code) in codes {
        let mut from = 0;
        while let Some(at) = code[from..].find("macro_rules!").map(|i| from + i) {
            from = at + 12;
            if let Some(name) = ident_at(code[from..].trim_start()) {
                out.insert(name.to_string(), module.clone());
            }
        }
    }
    out
}

/// The groups of modules that reach each other (each a cycle or more),
/// sorted.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for m in edges.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|n| (n, reach(n))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (n, from_n) in &reached {
        if !from_n.contains(*n) {
            continue;
        }
        let group: Vec<String> = from_n
            .iter()
            .filter(|m| reached.get(m).is_some_and(|r| r.contains(*n)))
            .cloned()
            .collect();
        if !out.contains(&group) {
            out.push(group);
        }
    }
    out
}

/// Every import circle: the top-level ones (`a ↔ b`) and those among the
/// files of one folder (`plugins/{a, b}`).
pub fn cycles(src: &Path) -> Vec<String> {
    let known = modules(src);
    let codes: BTreeMap<Module, String> = known
        .iter()
        .map(|(m, f)| {
            let text = code(&std::fs::read_to_string(f).unwrap());
            (m.clone(), without_test_modules(&text))
        })
        .collect();
    let exports: BTreeMap<Module, Reexports> = codes
        .iter()
        .map(|(m, c)| (m.clone(), reexports(c, m, &known)))
        .collect();
    let macros = macros(&codes);
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut within: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for here in known.keys() {
        if here.is_empty() {
            continue;
        }
        let text = &codes[here];
        let mut targets: Vec<Module> = named_paths(text)
            .iter()
            .filter_map(|p| absolute(p, here, &known))
            .filter_map(|p| resolve(&p, &known, &exports, &codes))
            .collect();
        // A macro lives where it is defined, whatever path it is called by
        // (one the file defines itself is its own).
        for (name, module) in &macros {
            let call = format!("{name}!");
            if !text.contains(&format!("macro_rules! {name}"))
                && text
                    .match_indices(&call)
                    .any(|(i, _)| !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
            {
                targets.push(module.clone());
            }
        }
        for target in targets {
            if target.is_empty() {
                continue;
            }
            if target[0] != here[0] {
                top.entry(here[0].clone())
                    .or_default()
                    .insert(target[0].clone());
                continue;
            }
            // Within the deepest folder both sit in: the member of it that
            // holds `here` uses the member that holds the target. A folder's
            // own `mod.rs` (its members' declarer) is no member of it.
            let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < here.len() && common < target.len() {
                within
                    .entry(here[..common].to_vec())
                    .or_default()
                    .entry(here[common].clone())
                    .or_default()
                    .insert(target[common].clone());
            }
        }
    }
    let mut out: Vec<String> = circles(&top).iter().map(|c| c.join(" ↔ ")).collect();
    for (folder, edges) in &within {
        for c in circles(edges) {
            out.push(format!("{}/{{{}}}", folder.join("/"), c.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modules_import_each_other_without_cycles() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = cycles(&src);
        assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
    }

    fn v(paths: &[&[&str]]) -> Vec<Vec<String>> {
        paths
            .iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn paths_are_read_from_code_not_comments_or_strings() {
        let text = "use crate::x::y; // crate::z\n/* crate::b */ let u = \"http://a\"; crate::w::q();\nlet s = r#\"crate::s\"#; let c = '\"'; let l: &'a str = crate::l::m;";
        assert_eq!(
            named_paths(&code(text)),
            v(&[
                &["crate", "x", "y"],
                &["crate", "w", "q"],
                &["crate", "l", "m"]
            ])
        );
    }

    #[test]
    fn groups_nest_and_aliases_bind() {
        assert_eq!(
            bindings("a::{b as c, d}")
                .into_iter()
                .map(|(_, n)| n)
                .collect::<Vec<_>>(),
            ["c", "d"]
        );
        assert_eq!(
            tree("crate::{names::{Identity, Runtime as Rt}, route::SendRequest, x::*};"),
            v(&[
                &["crate", "names", "Identity"],
                &["crate", "names", "Runtime"],
                &["crate", "route", "SendRequest"],
                &["crate", "x", "*"],
            ])
        );
    }

    /// A cycle hidden behind a re-export, a nested group or a macro is
    /// still a cycle.
    #[test]
    fn reexports_groups_and_macros_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        let write = |path: &str, text: &str| {
            let p = src.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("lib.rs", "mod a; mod b; mod f; mod t; mod s; mod p; mod q;");
        // Through a parent's private import, and across two levels.
        write("p/mod.rs", "mod x; mod wasm;\nuse x::X;");
        write("p/x.rs", "pub struct X; fn f() { super::wasm::a::A; }");
        write("p/wasm/mod.rs", "pub mod a;");
        write("p/wasm/a.rs", "use super::super::X;\npub struct A;");
        // Not a cycle: a test module's import, a raw byte string, a method
        // that shares a name, `$crate` in a macro.
        write(
            "q.rs",
            "pub fn q() { let _ = br#\"crate::a::A\"#; }\n#[cfg(test)]\nmod tests { use crate::b::B; }\nmacro_rules! m { () => { $crate::b::B } }",
        );
        write(
            "f/mod.rs",
            "mod one; mod two;\npub use one::One;\npub use two::*;",
        );
        write("f/one.rs", "use super::Two;\npub struct One;");
        write("f/two.rs", "use super::One;\npub struct Two;");
        write("a.rs", "use crate::{x::y, b::{B}};\npub struct A;");
        write(
            "b.rs",
            "use crate::a::A;\npub struct B;\nimpl B { fn q() {} }\nfn g() { crate::q::q(); }",
        );
        write(
            "t.rs",
            "#[macro_export]\nmacro_rules! say { () => {} }\nuse crate::s::S;",
        );
        write("s.rs", "pub struct S; fn f() { crate::say!(); }");
        let mut found = cycles(src);
        found.sort();
        assert_eq!(found, ["a ↔ b", "f/{one, two}", "p/{wasm, x}", "s ↔ t"]);
    }
}
