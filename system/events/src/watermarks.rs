//! High watermarks that are right on any broker.
//!
//! tansu 0.6 (in-memory storage), unpatched, answers a ListOffsets "latest"
//! request, which librdkafka's `query_watermark_offsets` (rdkafka's
//! `fetch_watermarks`) sends, with the base offset of the newest record
//! batch plus one, not the offset past its last record: when producers
//! send batches of several records the answer falls short. The embedded
//! broker carries a fix for it (`vendor/README.md`); a broker elsewhere may
//! not. Fetch responses carry the true high watermark, and librdkafka keeps
//! the latest one per partition (`rd_kafka_get_watermark_offsets`, which
//! rdkafka does not wrap). So:
//!
//! - consumer lag uses the larger of the two: exact while the consumer
//!   fetches, and at worst a lower bound while it is paused;
//! - whole-topic inspection fetches from the queried offset, a valid one at
//!   or below the end, and reads the true end off the Fetch response.
//!
//! Where the broker answers right, both numbers agree, and this costs
//! nothing.

use std::ffi::CString;

use rdkafka::bindings::{rd_kafka_get_watermark_offsets, rd_kafka_resp_err_t};
use rdkafka::client::{Client, ClientContext};

/// (low, high) watermarks of `topic`/`partition` from the latest Fetch
/// response `client` received; `None` before the first one.
pub(crate) fn from_last_fetch<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: `client` keeps its native handle alive for the whole call;
    // `topic` is a NUL-terminated string and `low`/`high` are valid for
    // writes, all outliving the call, which only reads cached values.
    let err = unsafe {
        rd_kafka_get_watermark_offsets(
            client.native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some((low, high))
}
