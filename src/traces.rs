//! Traces: the system's `tracing` spans (every request, outgoing call,
//! saga step, outbox publish and event handled) as OpenTelemetry spans.
//!
//! Trace context is always made and propagated (`traceparent` on every
//! HTTP call and Kafka message), so an order keeps its trace id whether or
//! not anything collects the spans. They are exported only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set: over OTLP/HTTP (protobuf) to that
//! endpoint, batched, with the standard `OTEL_*` variables honoured
//! (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, ...).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The variable that turns export on, as the OpenTelemetry spec names it.
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The crates whose spans are the system's (the harness's own are not).
const SYSTEM_TARGETS: [&str; 2] = ["gauntlet_system", "gauntlet_events"];

/// A tracer provider: exporting over OTLP when [`OTLP_ENDPOINT`] is set,
/// otherwise keeping nothing.
pub fn provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("gauntlet");
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    if std::env::var_os(OTLP_ENDPOINT).is_none() {
        return Ok(builder.build());
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// The layer that turns the system's spans (info and above) into
/// `provider`'s spans, whatever the log filter lets through.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let targets = SYSTEM_TARGETS.iter().fold(Targets::new(), |t, target| {
        t.with_target(*target, Level::INFO)
    });
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("gauntlet"))
        .with_filter(targets)
}
