//! `taskscope::layer()`: a `tracing-subscriber` layer that tells the watchdog which span a worker
//! thread is in, so `blocked_worker` can name it (`handle_request{path=/users}`).
//!
//! It formats a span's name and fields once, when the span is created, and on enter/exit
//! publishes the innermost span of the thread into the thread's worker slot.

use std::cell::RefCell;
use std::fmt::Write;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::state::worker;

/// The layer returned by [`layer()`]. Compose it with the application's own layers:
///
/// ```
/// use tracing_subscriber::prelude::*;
/// tracing_subscriber::registry().with(taskscope::layer()).init();
/// ```
#[derive(Debug, Clone, Default)]
pub struct SpanLayer {
    _private: (),
}

/// A `tracing` layer that lets `blocked_worker` warnings name the span the blocked poll was in.
pub fn layer() -> SpanLayer {
    SpanLayer::default()
}

struct Label(Arc<str>);

struct Fields(String);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, format_args!("{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format_args!("{value:?}"));
    }
}

impl Fields {
    fn push(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = write!(self.0, "{}={}", field.name(), value);
    }

    fn label(&self, name: &str) -> Arc<str> {
        if self.0.is_empty() {
            Arc::from(name)
        } else {
            Arc::from(format!("{name}{{{}}}", self.0))
        }
    }
}

thread_local! {
    static STACK: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
}

fn publish(top: Option<Arc<str>>) {
    let slot = worker::current();
    *slot.span.lock().unwrap_or_else(|e| e.into_inner()) = top;
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields(String::new());
        attrs.record(&mut fields);
        let label = fields.label(span.name());
        span.extensions_mut().insert((Label(label), fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some((label, fields)) = ext.get_mut::<(Label, Fields)>() {
            values.record(fields);
            label.0 = fields.label(span.name());
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let label = span
            .extensions()
            .get::<(Label, Fields)>()
            .map(|(l, _)| l.0.clone());
        let Some(label) = label else { return };
        let _ = STACK.try_with(|stack| {
            stack.borrow_mut().push(label.clone());
            publish(Some(label));
        });
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        // Only spans labelled at creation were pushed on enter.
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<(Label, Fields)>().is_none() {
            return;
        }
        let _ = STACK.try_with(|stack| {
            let mut stack = stack.borrow_mut();
            stack.pop();
            publish(stack.last().cloned());
        });
    }
}
