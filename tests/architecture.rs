//! ARCHITECTURE.md's floors of the library hold: every module of `crates/taskscope/src` is on
//! one floor of its table, and no module uses one of its own floor or a higher one (a folder is
//! one module; its files may use each other).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `module → floor` from the table rows `| N | `a`, `b` | ... |`.
fn floors() -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut floors = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(floor) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else {
            continue;
        };
        for module in cells[2].split(',') {
            let module = module.trim().trim_matches('`');
            assert!(
                floors.insert(module.to_string(), floor).is_none(),
                "`{module}` is on two floors"
            );
        }
    }
    floors
}

/// A source file's module path: `state/registry/locks.rs` is `state::registry::locks`, a
/// folder's `mod.rs` is the folder, `lib.rs` is `lib`.
fn path_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The table's module a module path belongs to: the longest entry that is it or contains it
/// (`stats` holds `stats::task`), if any.
fn entry_of<'a>(floors: &'a BTreeMap<String, u32>, path: &str) -> Option<&'a String> {
    floors
        .keys()
        .filter(|entry| path == entry.as_str() || path.starts_with(&format!("{entry}::")))
        .max_by_key(|entry| entry.len())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its unit tests, which may use anything.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The paths `text` starts with: `a::b::c`, or a group `{a, b::{c, d}}` under `prefix`.
fn paths(prefix: &str, text: &str, out: &mut Vec<String>) {
    let mut path = prefix.to_string();
    let mut rest = text.trim_start();
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group's items at top-level commas.
            let (mut depth, mut start) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        paths(&path, &group[start..i], out);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        paths(&path, &group[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let name = ident(rest);
        if name.is_empty() {
            break;
        }
        if !path.is_empty() {
            path.push_str("::");
        }
        path.push_str(name);
        rest = &rest[name.len()..];
        match rest.strip_prefix("::") {
            Some(next) => rest = next.trim_start(),
            None => break,
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// The module paths named after `crate::` in `code`, groups expanded
/// (`crate::{a, b::{c, d}}` names `a`, `b::c` and `b::d`).
fn used_paths(code: &str) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        paths("", rest, &mut used);
    }
    used
}

#[test]
fn every_module_is_on_a_floor_and_uses_only_lower_floors() {
    let floors = floors();
    assert!(floors.len() > 10, "no floor table in ARCHITECTURE.md");
    let src = root().join("crates/taskscope/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let path = path_of(&src, file);
        let code = code(&std::fs::read_to_string(file).unwrap());
        let used = used_paths(&code);
        let Some(module) = entry_of(&floors, &path) else {
            // A folder's `mod.rs` that only declares its files is no module of its own.
            assert!(
                used.is_empty() && path_of(&src, file) != "lib",
                "module `{path}` is on no floor of ARCHITECTURE.md"
            );
            continue;
        };
        let floor = floors[module];
        for used in used {
            // Items of lib.rs itself (`crate::Guard`, re-exports) are on no floor.
            let Some(used_module) = entry_of(&floors, &used) else {
                continue;
            };
            let used_floor = floors[used_module];
            if used_module != module && used_floor >= floor {
                upward.push(format!(
                    "{} (floor {floor}) uses `{used_module}` (floor {used_floor})",
                    file.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports that do not run down:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_checker_sees_an_import_that_runs_up() {
    let used = used_paths(&code(
        "use crate::state::registry::Registry; // crate::threads\nuse crate::{base::clock, stats::{task::X, lock}};",
    ));
    assert_eq!(
        used,
        [
            "state::registry::Registry",
            "base::clock",
            "stats::task::X",
            "stats::lock"
        ]
    );
    let floors: BTreeMap<String, u32> = [("state::registry".into(), 6), ("stats".into(), 2)].into();
    assert_eq!(
        entry_of(&floors, "state::registry::Registry").unwrap(),
        "state::registry"
    );
    assert_eq!(entry_of(&floors, "stats::task::X").unwrap(), "stats");
    assert_eq!(entry_of(&floors, "state::shared"), None);
}
