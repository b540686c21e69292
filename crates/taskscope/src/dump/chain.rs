//! From the stack a trace poll captured at a waker's registration to the chain a person reads:
//! the frames between the tracing waker and the trace poll, of which the `async` bodies are the
//! chain (each at the line of its `.await`) and the outermost other frame before them is the
//! leaf future. An `async` body is told from a plain closure (both are `{{closure}}`s) by what
//! polls it: a `poll` function or another `async` body.

use taskscope_wire::{AsyncFrame, Chain};

/// One symbol of a resolved stack (an inlined call is a symbol of its own).
struct Symbol {
    name: String,
    file: Option<String>,
    line: Option<u32>,
}

/// The chain of a captured stack (resolved here).
pub(crate) fn chain(mut stack: backtrace::Backtrace) -> Chain {
    stack.resolve();
    let symbols: Vec<Symbol> = stack
        .frames()
        .iter()
        .flat_map(|frame| frame.symbols())
        .map(|s| Symbol {
            name: s
                .name()
                .map(|n| format!("{n:#}"))
                .unwrap_or_else(|| "?".to_string()),
            file: s.filename().map(|p| p.display().to_string()),
            line: s.lineno(),
        })
        .collect();
    chain_of(&symbols)
}

fn chain_of(symbols: &[Symbol]) -> Chain {
    // Innermost first: the capture, the tracing waker, the leaf's registration, ... the poll.
    let start = symbols
        .iter()
        .rposition(|s| is_tracer(&s.name))
        .map_or(0, |i| i + 1);
    // Trace polls nest (a scope traced inside a traced task): a stack captured by the n-th
    // tracing waker from the inside (its registration passes through n of them) ends at the
    // n-th trace poll.
    let tracers = symbols[..start]
        .iter()
        .filter(|s| is_tracer(&s.name))
        .count()
        .max(1);
    let mut polls_passed = 0;
    let mut end = symbols.len();
    for (i, s) in symbols.iter().enumerate().skip(start) {
        if s.name.contains("trace::traced_poll") {
            if polls_passed + 1 == tracers {
                end = i;
                break;
            }
            if !is_async_name(&s.name) && !s.name.contains("{closure") {
                polls_passed += 1;
            }
        }
    }
    let window = &symbols[start..end];
    // An `async` body is a closure-named frame polled by a `poll` or by another `async` body
    // (a plain closure, like the one a channel registers its waker in, is neither).
    let mut bodies = vec![false; window.len()];
    let mut inner: Option<usize> = None;
    for (i, s) in window.iter().enumerate() {
        bodies[i] = is_async_name(&s.name)
            && !s.name.contains("taskscope::task::trace::")
            && inner.is_some_and(|j| bodies[j] || window[j].name.contains("poll"));
        inner = Some(i);
    }
    // The leaf: the outermost named function before the chain, not the standard library's.
    let first_body = bodies.iter().position(|&b| b).unwrap_or(window.len());
    let leaf = window[..first_body]
        .iter()
        .rev()
        .find(|s| !is_plumbing(&s.name) && !is_async_name(&s.name))
        .map(|s| match (&s.file, s.line) {
            (Some(file), Some(line)) => format!("{} ({}:{line})", s.name, short_path(file)),
            _ => s.name.clone(),
        });
    let frames = window
        .iter()
        .zip(&bodies)
        .filter(|(_, &body)| body)
        .map(|(s, _)| AsyncFrame {
            function: match s.name.starts_with('{') {
                // Only `{async_fn#0}`: a release build's line tables name no inlined function.
                true => recover_name(&s.name, s.file.as_deref(), s.line),
                false => function_of(&s.name),
            },
            file: s.file.as_deref().map(short_path),
            line: s.line,
        })
        .collect();
    Chain { leaf, frames }
}

/// The name of the function around `file:line` read from the source, when the debug info has
/// none (`{async_fn#0}`), marked as read from the source; the compiler's placeholder when the
/// source cannot be read.
fn recover_name(placeholder: &str, file: Option<&str>, line: Option<u32>) -> String {
    match crate::stacks::enclosing_fn(file, line) {
        Some(name) if placeholder.starts_with("{async_block") => {
            format!("{name}::{{async_block}} (name from the source)")
        }
        Some(name) => format!("{name} (name from the source)"),
        None => placeholder.to_string(),
    }
}

/// A frame of a tracing waker's registration.
fn is_tracer(name: &str) -> bool {
    name.contains("trace::trace_clone") || name.contains("trace::trace_wake_by_ref")
}

/// Named as the body of an `async fn` or block is: a closure as the compiler names it
/// (`{{closure}}` in a debug build, `{async_fn#0}` / `{async_block#0}` with v0 or
/// line-tables-only names).
fn is_async_name(name: &str) -> bool {
    name.ends_with("{{closure}}") || name.contains("{async_fn#") || name.contains("{async_block#")
}

/// The standard library's machinery between a leaf future and the waker.
fn is_plumbing(name: &str) -> bool {
    [
        "core::", "std::", "alloc::", "<core::", "<std::", "<alloc::",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// `app::fetch::{{closure}}` → `app::fetch`; a block inside a function keeps a marker.
fn function_of(name: &str) -> String {
    let mut name = name;
    let mut block = false;
    while let Some(rest) = name.strip_suffix("::{{closure}}") {
        block |= rest.ends_with("::{{closure}}");
        name = rest;
    }
    match block {
        true => format!("{name}::{{async_block}}"),
        false => name.to_string(),
    }
}

/// A path under the current directory, relative to it (as `Location`s print); a dependency's
/// from its crate directory (`tokio-1.54.1/src/...`).
fn short_path(path: &str) -> String {
    if let Ok(dir) = std::env::current_dir() {
        if let Ok(rest) = std::path::Path::new(path).strip_prefix(&dir) {
            return rest.display().to_string();
        }
    }
    match path.find("/registry/src/") {
        Some(at) => {
            let rest = &path[at + "/registry/src/".len()..];
            rest.split_once('/').map_or(rest, |(_, p)| p).to_string()
        }
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbol(name: &str, line: u32) -> Symbol {
        Symbol {
            name: name.to_string(),
            file: Some("src/main.rs".to_string()),
            line: Some(line),
        }
    }

    #[test]
    fn a_stack_through_two_tracing_wakers_ends_at_the_outer_trace_poll() {
        // A scope traced inside a traced task: the task's tracer captures through both.
        let stack = [
            symbol("taskscope::task::trace::Tracer::capture", 1),
            symbol("taskscope::task::trace::trace_clone", 2),
            symbol("<core::task::wake::Waker as core::clone::Clone>::clone", 3),
            symbol("taskscope::task::trace::trace_clone", 4),
            symbol(
                "<tokio::sync::oneshot::Receiver<T> as core::future::future::Future>::poll",
                5,
            ),
            symbol("app::load_user::{{closure}}", 20),
            symbol("taskscope::task::trace::traced_poll::{{closure}}", 6),
            symbol("taskscope::task::trace::traced_poll", 6),
            symbol("taskscope::task::scope::Scope<F>::poll_with", 7),
            symbol("app::handle::{{closure}}", 30),
            symbol("taskscope::task::trace::traced_poll::{{closure}}", 8),
            symbol("taskscope::task::trace::traced_poll", 8),
        ];
        let frames: Vec<String> = chain_of(&stack)
            .frames
            .into_iter()
            .map(|f| f.function)
            .collect();
        assert_eq!(frames, ["app::load_user", "app::handle"]);
        // The scope's own tracer, one level in, ends at the scope.
        let inner: Vec<&Symbol> = stack[..2].iter().chain(&stack[4..]).collect();
        let inner: Vec<Symbol> = inner
            .into_iter()
            .map(|s| symbol(&s.name, s.line.unwrap()))
            .collect();
        let frames: Vec<String> = chain_of(&inner)
            .frames
            .into_iter()
            .map(|f| f.function)
            .collect();
        assert_eq!(frames, ["app::load_user"]);
    }

    #[test]
    fn the_window_between_the_waker_and_the_poll_is_the_chain() {
        let stack = [
            symbol("backtrace::backtrace::trace", 1),
            symbol("taskscope::task::trace::Tracer::capture", 2),
            symbol("taskscope::task::trace::trace_clone", 3),
            symbol("<core::task::wake::Waker as core::clone::Clone>::clone", 4),
            symbol("tokio::sync::oneshot::Task::set_task::{{closure}}", 5),
            symbol("tokio::loom::std::unsafe_cell::UnsafeCell<T>::with_mut", 5),
            symbol("tokio::sync::oneshot::Task::set_task", 5),
            symbol(
                "<tokio::sync::oneshot::Receiver<T> as core::future::future::Future>::poll",
                6,
            ),
            symbol("app::inner_stage::{{closure}}", 16),
            symbol("app::middle_stage::{{closure}}", 19),
            symbol("app::main::{{closure}}::{{closure}}", 30),
            symbol("taskscope::task::trace::traced_poll", 7),
            symbol("taskscope::task::instrumented::untimed_poll", 8),
        ];
        let chain = chain_of(&stack);
        assert_eq!(
            chain.leaf.as_deref(),
            Some(
                "<tokio::sync::oneshot::Receiver<T> as core::future::future::Future>::poll \
                 (src/main.rs:6)"
            )
        );
        let frames: Vec<(String, Option<u32>)> = chain
            .frames
            .iter()
            .map(|f| (f.function.clone(), f.line))
            .collect();
        assert_eq!(
            frames,
            [
                ("app::inner_stage".to_string(), Some(16)),
                ("app::middle_stage".to_string(), Some(19)),
                ("app::main::{async_block}".to_string(), Some(30)),
            ]
        );
    }
}
