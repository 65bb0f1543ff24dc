//! W3C trace context (`traceparent`) across the hops this crate makes: an
//! outbox row keeps the context of the transaction that wrote it, the
//! relay's publish span continues it and puts its own in the message's
//! `traceparent` header, and a consumer's handling span continues that.
//! So one order's choreography is one trace, however many services and
//! topics it crosses.
//!
//! Contexts come from `tracing` spans through `tracing-opentelemetry`: with
//! no OpenTelemetry layer installed there is no context, nothing is
//! written, and every function here is a no-op.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header, on HTTP requests and Kafka messages alike.
pub const TRACEPARENT: &str = "traceparent";

/// `span`'s context as a `traceparent` value, if it has a valid one.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The current span's `traceparent`.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The context a `traceparent` value names (an empty one if it does not
/// parse, as the W3C rules say: start a new trace).
pub fn context_from(traceparent: &str) -> Context {
    let mut carrier = HashMap::with_capacity(1);
    carrier.insert(TRACEPARENT.to_string(), traceparent.to_string());
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes `span` a child of the context `traceparent` names, when there is
/// one; otherwise it stays where it is (a new trace, or its parent span's).
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let cx = context_from(tp);
        if cx.span().span_context().is_valid() {
            // Fails only when the span is disabled, when there is nothing
            // to continue anyway.
            let _ = span.set_parent(cx);
        }
    }
}

/// The trace id (32 hex digits) of the current span, if it is traced.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The trace id a `traceparent` value carries.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let _version = parts.next()?;
    let id = parts.next()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}
