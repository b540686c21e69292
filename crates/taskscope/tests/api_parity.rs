//! `taskscope::sync` is tokio's sync types with the same methods: every public method of
//! tokio's `Mutex`, `RwLock`, `Semaphore`, their guards and permits — read from the source of
//! the tokio this workspace locks (found with `cargo metadata`) — has a counterpart here with
//! the same name and the same receiver (`self`, `&self`, `self: Arc<Self>`, `this: Self`, ...).
//! Their behaviour is tested in `sync_semantics.rs`; the traits below are checked by the
//! compiler.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{Debug, Display};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use taskscope::sync::*;

const TYPES: &[&str] = &[
    "Mutex",
    "MutexGuard",
    "MappedMutexGuard",
    "OwnedMutexGuard",
    "OwnedMappedMutexGuard",
    "RwLock",
    "RwLockReadGuard",
    "RwLockWriteGuard",
    "RwLockMappedWriteGuard",
    "OwnedRwLockReadGuard",
    "OwnedRwLockWriteGuard",
    "OwnedRwLockMappedWriteGuard",
    "Semaphore",
    "SemaphorePermit",
    "OwnedSemaphorePermit",
];

/// Type name → its public inherent methods, as `name(receiver)`.
type Methods = BTreeMap<String, BTreeSet<String>>;

/// The public methods of inherent `impl` blocks in `files` (items at the impl's top level:
/// four spaces in; items generated inside macros such as tokio's `cfg_*!` are deeper).
fn public_methods(files: &[PathBuf]) -> Methods {
    let mut methods = Methods::new();
    for file in files {
        let source = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = source.lines().collect();
        let mut current: Option<String> = None;
        for (i, line) in lines.iter().enumerate() {
            if let Some(header) = line.strip_prefix("impl") {
                current = impl_type(header);
            } else if line.starts_with('}') {
                current = None;
            }
            let Some(ty) = &current else { continue };
            let Some(rest) = ["    pub fn ", "    pub async fn ", "    pub const fn "]
                .iter()
                .find_map(|p| line.strip_prefix(p))
            else {
                continue;
            };
            let signature = lines[i..(i + 6).min(lines.len())].join(" ");
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let receiver = receiver(&signature[signature.find(&*name).unwrap() + name.len()..]);
            methods
                .entry(ty.clone())
                .or_default()
                .insert(format!("{name}({receiver})"));
        }
    }
    methods
}

/// The type an inherent `impl` header names (`<T: ?Sized> Mutex<T> {` → `Mutex`); `None` for a
/// trait impl.
fn impl_type(header: &str) -> Option<String> {
    let header = skip_generics(header.trim_start());
    if header.contains(" for ") {
        return None;
    }
    let name: String = header
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// `text` after a leading `<...>` (balanced; `->` inside closures' bounds is not a bracket).
fn skip_generics(text: &str) -> &str {
    if !text.starts_with('<') {
        return text;
    }
    let mut depth = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' => {
                depth -= 1;
                if depth == 0 {
                    return &text[i + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// The receiver of a method from the text after its name: `self`, `&self`, `&mut self`,
/// `self: Arc<Self>`, `this: Self` (`mut` dropped), or `-` for none.
fn receiver(after_name: &str) -> String {
    let params = skip_generics(after_name.trim_start());
    let params = params.trim_start().strip_prefix('(').unwrap_or("");
    let first: String = params
        .chars()
        .take_while(|c| *c != ',' && *c != ')')
        .collect();
    let first = first.trim().trim_start_matches("mut ").trim();
    let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
    if first == "self"
        || first == "&self"
        || first == "&mut self"
        || first.starts_with("self:")
        || first.starts_with("this:")
    {
        first.replace("mut ", "")
    } else {
        "-".into()
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The source directory of the tokio this workspace builds with.
fn tokio_source() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let tokio = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tokio")
        .expect("tokio is a dependency");
    PathBuf::from(tokio["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .join("src/sync")
}

#[test]
fn every_public_method_of_tokios_locks_and_semaphore_has_a_counterpart() {
    let dir = tokio_source();
    let mut files: Vec<PathBuf> = ["mutex.rs", "rwlock.rs", "semaphore.rs"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    files.extend(rust_files(&dir.join("rwlock")));
    let tokio = public_methods(&files);
    let ours = public_methods(&rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sync"),
    ));

    let mut missing = Vec::new();
    let mut counted = 0;
    for ty in TYPES {
        let theirs = tokio
            .get(*ty)
            .unwrap_or_else(|| panic!("tokio's {ty} has no methods read"));
        counted += theirs.len();
        let ours = ours.get(*ty).cloned().unwrap_or_default();
        missing.extend(theirs.difference(&ours).map(|m| format!("{ty}::{m}")));
    }
    // The reading itself works: tokio's well-known methods are among those read.
    for known in [
        "lock(&self)",
        "try_lock_owned(self: Arc<Self>)",
        "map(this: Self)",
    ] {
        assert!(
            tokio["Mutex"].contains(known) || tokio["MutexGuard"].contains(known),
            "{known} not read from tokio: {:?}",
            tokio["Mutex"]
        );
    }
    assert!(tokio["RwLockWriteGuard"].contains("downgrade(self)"));
    assert!(counted > 80, "only {counted} methods read from tokio");
    assert!(
        missing.is_empty(),
        "no counterpart in taskscope::sync: {missing:#?}"
    );
}

fn debug_display_deref<G: Debug + Display + Deref<Target = u8>>() {}
fn writes<G: DerefMut<Target = u8>>() {}
fn send_sync<G: Send + Sync>() {}

/// Compiles only if the traits tokio's types have are there.
#[test]
fn the_traits_are_tokios() {
    debug_display_deref::<MutexGuard<'static, u8>>();
    debug_display_deref::<MappedMutexGuard<'static, u8>>();
    debug_display_deref::<OwnedMutexGuard<u8>>();
    debug_display_deref::<OwnedMappedMutexGuard<u8>>();
    debug_display_deref::<RwLockReadGuard<'static, u8>>();
    debug_display_deref::<RwLockWriteGuard<'static, u8>>();
    debug_display_deref::<RwLockMappedWriteGuard<'static, u8>>();
    debug_display_deref::<OwnedRwLockReadGuard<u8>>();
    debug_display_deref::<OwnedRwLockWriteGuard<u8>>();
    debug_display_deref::<OwnedRwLockMappedWriteGuard<u8>>();
    writes::<MutexGuard<'static, u8>>();
    writes::<MappedMutexGuard<'static, u8>>();
    writes::<OwnedMutexGuard<u8>>();
    writes::<OwnedMappedMutexGuard<u8>>();
    writes::<RwLockWriteGuard<'static, u8>>();
    writes::<RwLockMappedWriteGuard<'static, u8>>();
    writes::<OwnedRwLockWriteGuard<u8>>();
    writes::<OwnedRwLockMappedWriteGuard<u8>>();
    send_sync::<Mutex<u8>>();
    send_sync::<RwLock<u8>>();
    send_sync::<Semaphore>();
    send_sync::<OwnedMutexGuard<u8>>();
    send_sync::<OwnedRwLockWriteGuard<u8>>();
    send_sync::<OwnedRwLockReadGuard<u8>>();
    send_sync::<OwnedSemaphorePermit>();
    let _: Mutex<u8> = Mutex::default();
    let _: RwLock<u8> = RwLock::from(1);
    let _: Mutex<u8> = Mutex::from(1);
}
