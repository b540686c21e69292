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

/// The module a source file belongs to: its first path component, or its file stem.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
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

/// Top-level modules named after `crate::` in `code`, braces included (`crate::{a, b::c}`).
fn used_modules(code: &str) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                used.push(name);
            }
        } else {
            used.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
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
        let module = module_of(&src, file);
        let floor = *floors
            .get(&module)
            .unwrap_or_else(|| panic!("module `{module}` is on no floor of ARCHITECTURE.md"));
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_modules(&code(&text)) {
            // Items of lib.rs itself (`crate::Guard`, re-exports) and names that are no module.
            let Some(&used_floor) = floors.get(&used) else {
                continue;
            };
            if used != module && used_floor >= floor {
                upward.push(format!(
                    "{} (floor {floor}) uses `{used}` (floor {used_floor})",
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
    let uses = used_modules(&code(
        "use crate::registry::Registry; // crate::watchdog\nuse crate::{clock, stats::task::X};",
    ));
    assert_eq!(uses, ["registry", "clock", "stats"]);
}
