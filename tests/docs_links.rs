//! Every link between the repository's Markdown files (README, CHANGELOG, ARCHITECTURE,
//! docs/) points to a file that exists and, with a `#fragment`, to a heading that exists there,
//! as GitHub renders them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose links are checked.
fn documents() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "CHANGELOG.md", "ARCHITECTURE.md"]
        .iter()
        .map(|f| root().join(f))
        .filter(|p| p.exists())
        .collect();
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

/// The anchor GitHub gives a heading: lower case, spaces to hyphens, punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Headings outside code blocks.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// `(line, target)` of every inline link outside code blocks and code spans.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans: a `](` inside one is not a link.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    out
}

fn check(file: &Path, target: &str) -> Result<(), String> {
    if target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:")
    {
        return Ok(());
    }
    let (path, fragment) = match target.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (target, None),
    };
    let dest = if path.is_empty() {
        file.to_path_buf()
    } else {
        file.parent().unwrap().join(path)
    };
    if !dest.exists() {
        return Err(format!("{} does not exist", dest.display()));
    }
    if let Some(fragment) = fragment {
        let text = std::fs::read_to_string(&dest).map_err(|e| e.to_string())?;
        if !anchors(&text).contains(fragment) {
            return Err(format!("no heading #{fragment} in {}", dest.display()));
        }
    }
    Ok(())
}

#[test]
fn every_link_between_the_documents_works() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, target) in links(&text) {
            checked += 1;
            if let Err(why) = check(&file, &target) {
                broken.push(format!("{}:{line}: ({target}) {why}", file.display()));
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} links found: is the parser right?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_a_broken_link_and_github_anchors() {
    assert_eq!(
        slug(" In an axum / tonic / hyper service"),
        "in-an-axum--tonic--hyper-service"
    );
    assert_eq!(
        slug(" JSON report (`taskscope.report/v1`)"),
        "json-report-taskscopereportv1"
    );
    let readme = root().join("README.md");
    assert!(check(&readme, "docs/no-such-file.md").is_err());
    assert!(check(&readme, "#no-such-heading").is_err());
    assert!(check(&readme, "#set-up").is_ok());
    assert_eq!(
        links("see [a](b.md#c) and `[x](not-a-link)`"),
        [(1, "b.md#c".to_string())]
    );
}

#[test]
fn the_readme_stays_short() {
    let lines = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines: move details to docs/"
    );
}
