//! Paths for the short names of inlined functions.
//!
//! In an optimised build with `debug = "line-tables-only"`, a function inlined into another is
//! named in the debug info by its bare name (`checksum`, `poll<F>`), without its module path;
//! only functions that kept a symbol of their own have full names. Profiles and stacks would
//! then list `poll<…>` of four crates as if they were one function. The module path is read off
//! the function's source file instead: Cargo lays crates out as `<crate>[-<version>]/src/<module
//! path>.rs`, and so does Rust's standard library (`library/<crate>/src/…`). A module declared
//! inline (`mod x { … }`) or with `#[path]` is not seen; the name then lacks that segment.

/// `name` with the module path of `file` in front, when `name` is a bare name (no path outside
/// its generic arguments) of a Rust source file; `None` to keep `name` as it is. The
/// placeholder of a closure or an async body (`{closure#0}`, `{async_fn#0}`) also gets the name
/// of the function around `line`, read from the source (`app::handler::{async_fn#0}`), when the
/// source can be read.
pub(crate) fn qualified(name: &str, file: Option<&str>, line: Option<u32>) -> Option<String> {
    let file = file?;
    if name.starts_with('<') || has_path(name) {
        return None;
    }
    let module = module_path(file)?;
    if name.starts_with('{') {
        let function = enclosing_fn(Some(file), line)?;
        return Some(format!("{module}::{function}::{name}"));
    }
    Some(format!("{module}::{name}"))
}

/// The name of the function whose body holds `file:line`, read from the source: the nearest
/// `fn NAME` above the line. `None` when the file cannot be read (a binary away from its
/// sources) or the line is in a macro's definition (code a macro expands is attributed there).
pub(crate) fn enclosing_fn(file: Option<&str>, line: Option<u32>) -> Option<String> {
    let (file, line) = file.zip(line)?;
    let source = std::fs::read_to_string(file).ok()?;
    let lines: Vec<&str> = source.lines().collect();
    let at = (line as usize).min(lines.len());
    lines[..at]
        .iter()
        .rev()
        .take(400)
        .find_map(|l| match l.contains("macro_rules!") {
            true => Some(None),
            false => fn_name(l).map(Some),
        })
        .flatten()
}

/// `NAME` of a line declaring `fn NAME`.
fn fn_name(line: &str) -> Option<String> {
    let code = line.split("//").next()?;
    let at = code.find("fn ")?;
    if at > 0 && !code[..at].ends_with(' ') {
        return None; // `xfn `, not a declaration
    }
    let name: String = code[at + 3..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Whether `name` has a `::` outside its generic arguments.
fn has_path(name: &str) -> bool {
    let mut depth = 0usize;
    let bytes = name.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => return true,
            _ => {}
        }
    }
    false
}

/// `tokio::runtime::task::harness` of `…/tokio-1.47.1/src/runtime/task/harness.rs`; the file's
/// stem alone for a Rust file outside any `src/` (an example, a test).
fn module_path(file: &str) -> Option<String> {
    let path = file.strip_suffix(".rs")?;
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let src = parts.iter().rposition(|&p| p == "src");
    let (krate, modules) = match src {
        // `src/bin/NAME.rs` and `src/bin/NAME/main.rs` are crates of their own.
        Some(at) if parts.get(at + 1) == Some(&"bin") && parts.len() > at + 2 => {
            (Some(crate_name(parts[at + 2])), &parts[at + 3..])
        }
        Some(at) if at > 0 => (Some(crate_name(parts[at - 1])), &parts[at + 1..]),
        _ => (None, &parts[parts.len().saturating_sub(1)..]),
    };
    let mut segments: Vec<String> = krate.into_iter().collect();
    let last = modules.len().saturating_sub(1);
    for (i, m) in modules.iter().enumerate() {
        // `src/lib.rs`, `src/main.rs` and `x/mod.rs` add no segment.
        let unnamed = i == last && (*m == "mod" || (i == 0 && (*m == "lib" || *m == "main")));
        if !unnamed {
            segments.push(m.replace('-', "_"));
        }
    }
    (!segments.is_empty()).then(|| segments.join("::"))
}

/// `tokio` of `tokio-1.47.1`, `axum_core` of `axum-core-0.5.2`: a registry directory's version
/// suffix dropped, dashes as the crate name has them in paths.
fn crate_name(dir: &str) -> String {
    let name = match dir.rfind('-') {
        Some(at) if dir[at + 1..].starts_with(|c: char| c.is_ascii_digit()) => &dir[..at],
        _ => dir,
    };
    name.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::{fn_name, qualified};

    #[test]
    fn a_function_is_named_from_its_declaration() {
        assert_eq!(
            fn_name("async fn backend_call(reply: Receiver<String>) -> String {").as_deref(),
            Some("backend_call")
        );
        assert_eq!(
            fn_name("    pub(crate) async fn lock(&self) -> Guard<'_, T> {").as_deref(),
            Some("lock")
        );
        assert_eq!(fn_name("    let f = |x| x; // fn not here"), None);
        assert_eq!(fn_name("    handlefn (x)"), None);
    }

    #[test]
    fn bare_names_take_their_files_module_path() {
        let q = |name: &str, file: &str| qualified(name, Some(file), None);
        let registry = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        assert_eq!(
            q(
                "poll<F>",
                &format!("{registry}/axum-core-0.5.2/src/ext_traits/request.rs")
            ),
            Some("axum_core::ext_traits::request::poll<F>".into())
        );
        assert_eq!(
            q("spawn", &format!("{registry}/tokio-1.47.1/src/task/mod.rs")),
            Some("tokio::task::spawn".into())
        );
        assert_eq!(
            q("new", &format!("{registry}/bytes-1.10.1/src/lib.rs")),
            Some("bytes::new".into())
        );
        assert_eq!(
            q(
                "next<A>",
                "/rustc/17067e9ac6d7e98f18d4a3a5ed6a1b7e2b8f3e1c/library/core/src/iter/range.rs"
            ),
            Some("core::iter::range::next<A>".into())
        );
        assert_eq!(
            q("checksum", "/work/app/src/main.rs"),
            Some("app::checksum".into())
        );
        assert_eq!(
            q("run", "/work/app/src/bin/load-gen.rs"),
            Some("load_gen::run".into())
        );
        assert_eq!(
            q("checksum", "/work/app/examples/common/cpu_work.rs"),
            Some("cpu_work::checksum".into())
        );
    }

    #[test]
    fn an_async_body_is_named_by_its_function_in_the_source() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/src/stacks/names.rs");
        let line = line!();
        assert_eq!(
            qualified("{async_fn#0}", Some(file), Some(line)),
            // The inline `mod tests` is not seen.
            Some(
                "taskscope::stacks::names::an_async_body_is_named_by_its_function_in_the_source::{async_fn#0}"
                    .into()
            )
        );
    }

    #[test]
    fn full_names_and_c_code_are_left_alone() {
        let q = |name: &str, file: Option<&str>| qualified(name, file, None);
        let file = Some("/work/app/src/main.rs");
        assert_eq!(q("app::checksum", file), None);
        assert_eq!(
            q("poll<alloc::boxed::Box<dyn Future>>", file),
            Some("app::poll<alloc::boxed::Box<dyn Future>>".into())
        );
        assert_eq!(q("<app::Work as core::fmt::Debug>::fmt", file), None);
        // A placeholder is named only from a source that can be read.
        assert_eq!(q("{async_fn#0}", file), None);
        assert_eq!(q("checksum", None), None);
        assert_eq!(
            q("__memcpy_avx512_unaligned_erms", Some("./string/memmove.S")),
            None
        );
    }
}
