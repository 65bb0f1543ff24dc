//! The rdkafka client context shared by every client this crate creates:
//! it sends librdkafka's log lines and errors to `tracing`.
//!
//! While a broker is down (which chaos runs do on purpose) librdkafka
//! reports "connection refused" and "all brokers down" over and over; those
//! are logged at `debug`, so an outage does not flood the run's output. The
//! consumer, producer and relay count the failures they see themselves.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The longest librdkafka waits between attempts to reconnect to a broker
/// (`reconnect.backoff.max.ms`). Its default, 10 s, would leave clients idle
/// for up to 10 s after a broker or link comes back; fault injection makes
/// that common, so reconnect within a second.
pub(crate) const RECONNECT_BACKOFF_MAX_MS: &str = "1000";

/// Logs to `tracing`, quietly for transport errors.
#[derive(Clone, Debug, Default)]
pub(crate) struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report_error(error, reason);
    }
}

impl ConsumerContext for Quiet {}

pub(crate) fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => {
            tracing::debug!(target: "librdkafka", facility = fac, "{message}")
        }
        _ => tracing::trace!(target: "librdkafka", facility = fac, "{message}"),
    }
}

pub(crate) fn report_error(error: KafkaError, reason: &str) {
    let transport = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    );
    if transport {
        tracing::debug!(target: "librdkafka", %error, reason, "broker unreachable");
    } else {
        tracing::warn!(target: "librdkafka", %error, reason, "kafka client error");
    }
}
