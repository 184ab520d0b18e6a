//! The crate's modules import each other without cycles: among the
//! top-level modules (a folder counts as one), and among the files of each
//! folder (its `mod.rs` aside, which declares them). Read from the source,
//! `crate::` and `super::` paths outside comments.

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

/// The code of a file with its comments blanked out.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// The module paths a file names: `crate::a::b…` and `super::a…`,
/// including `crate::{a, b::c}` groups (their first segments).
fn named_paths(code: &str, here: &Module) -> Vec<Module> {
    let mut out = Vec::new();
    // `super` from a file: its folder's module (a `mod.rs` file's module is
    // its folder, so `super` is the folder above).
    let parent = here[..here.len().saturating_sub(1)].to_vec();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    if let Some(id) = ident_at(item.trim()) {
                        out.push([base.clone(), vec![id.to_string()]].concat());
                    }
                }
                continue;
            }
            let mut path = base.clone();
            let mut s = rest;
            while let Some(id) = ident_at(s) {
                path.push(id.to_string());
                match s[id.len()..].strip_prefix("::") {
                    Some(next) if !next.starts_with('{') => s = next,
                    _ => break,
                }
            }
            out.push(path);
        }
    }
    out
}

/// The longest known module a path starts with.
fn resolve(path: &Module, known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains_key(m))
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
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut within: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (here, file) in &known {
        if here.is_empty() {
            continue;
        }
        let is_mod_file = file.file_name().is_some_and(|n| n == "mod.rs");
        let text = code(&std::fs::read_to_string(file).unwrap());
        for named in named_paths(&text, here) {
            let Some(target) = resolve(&named, &known) else {
                continue;
            };
            if target.is_empty() {
                continue;
            }
            if target[0] != here[0] {
                top.entry(here[0].clone())
                    .or_default()
                    .insert(target[0].clone());
                continue;
            }
            // Siblings in one folder: the files under the same parent.
            let folder = &here[..here.len() - 1];
            if !is_mod_file
                && target.len() > folder.len()
                && target[..folder.len()] == *folder
                && target.len() == here.len()
                && target != *here
            {
                within
                    .entry(folder.to_vec())
                    .or_default()
                    .entry(here.last().unwrap().clone())
                    .or_default()
                    .insert(target[folder.len()].clone());
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

    #[test]
    fn paths_are_read_from_code_not_comments() {
        let here = vec!["a".to_string(), "b".to_string()];
        let code = code("use crate::x::y; // crate::z\nuse super::{c, d::e};\nfoo::crate::w;");
        let named = named_paths(&code, &here);
        assert_eq!(
            named,
            [vec!["x", "y"], vec!["a", "c"], vec!["a", "d"]]
                .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
        );
    }
}
