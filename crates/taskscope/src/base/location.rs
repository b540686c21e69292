//! How a source location is shown: `file:line:column`, dependencies' files from their crate's
//! directory, the tower layer's requests as `(tower layer)`.

use std::panic::Location;

/// Where the tower layer's requests are created (one location, inside taskscope).
pub(crate) fn layer_location() -> &'static Location<'static> {
    Location::caller()
}

/// How that location is shown: the application has no line of its own for it.
pub(crate) const LAYER_LOCATION: &str = "(tower layer)";

/// `file:line:column`, the form every view and report uses.
pub(crate) fn format_location(location: &Location<'_>) -> String {
    if *location == *layer_location() {
        return LAYER_LOCATION.to_string();
    }
    format!(
        "{}:{}:{}",
        short_file(location.file()),
        location.line(),
        location.column()
    )
}

/// A dependency's file as `crate-version/src/..`: the part of the path after cargo's registry
/// directory (`~/.cargo/registry/src/index.crates.io-<hash>/`), which says nothing a reader needs;
/// any other path unchanged.
fn short_file(file: &str) -> &str {
    for marker in ["/registry/src/", "\\registry\\src\\"] {
        if let Some(at) = file.rfind(marker) {
            let index_dir = &file[at + marker.len()..];
            if let Some(slash) = index_dir.find(['/', '\\']) {
                return &index_dir[slash + 1..];
            }
        }
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_files_are_named_from_their_crate() {
        assert_eq!(
            short_file("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/axum-0.8.9/src/serve/mod.rs"),
            "axum-0.8.9/src/serve/mod.rs"
        );
        assert_eq!(
            short_file("C:\\Users\\me\\.cargo\\registry\\src\\index.crates.io-1949cf8c6b5b557f\\hyper-1.7.0\\src\\lib.rs"),
            "hyper-1.7.0\\src\\lib.rs"
        );
        assert_eq!(short_file("src/main.rs"), "src/main.rs");
        assert_eq!(
            short_file("/home/me/registry/src/"),
            "/home/me/registry/src/"
        );
    }
}
