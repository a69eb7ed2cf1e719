//! Decoders for the emoncms input forms: `input/post` (fulljson, legacy json/data, csv),
//! `input/bulk` (plain, `c=1` hex zlib, `cb=1` zlib body) and MQTT topics and payloads. They
//! follow emoncms 11's code, quirks included (see `shared/spec/emoncms.md` §2 and §6), except
//! that a JSON `null` (or the text `null`) is a missing value rather than 0 (DESIGN.md §4), and
//! that a value that is not finite (`1e999`, which PHP reads as `INF`) is missing as well (see
//! [`crate::batch::Value`]).
//!
//! Every decoder refuses a request with more than [`MAX_VALUES_PER_REQUEST`] values before it
//! builds them (JSON is parsed with a budget, text is counted before it is split).

mod bulk;
#[cfg(test)]
mod fuzz;
mod json;
mod mqtt;
mod names;
pub mod numbers;
mod post;
mod time;

pub use bulk::{BulkParams, BulkResult, decode_bulk};
pub use mqtt::decode_mqtt;
pub use names::{filter_name, filter_node};
pub use post::{PostParams, decode_post};
pub use time::parse_time_param;

pub use crate::batch::MAX_VALUES_PER_REQUEST;

/// Largest `input/bulk` JSON text accepted after decompression. The request body is limited by
/// the web server, but zlib expands a megabyte into a gigabyte; 50,000 values of emonhub's bulk
/// JSON take about 1.5 MB, so 16 MiB only stops what no device sends.
pub const MAX_INFLATED_BYTES: usize = 16 << 20;

/// Why input could not be decoded. `Display` is emoncms's message, typos included, because
/// clients match on these strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Request contains no data via csv, json or data tag")]
    NoData,
    #[error("Input in not a valid JSON object")]
    InvalidFullJson,
    #[error("Format error, json value is not numeric")]
    JsonValueNotNumeric,
    #[error("Format error, json key missing or invalid character")]
    JsonKeyMissing,
    #[error("Format error: csv value is not numeric")]
    CsvValueNotNumeric,
    #[error("Format error, json string supplied is not valid")]
    BulkInvalidJson,
    #[error("Format error, compressed hex not valid")]
    BulkInvalidHex,
    #[error("Format error, last item in bulk data does not contain any data")]
    BulkLastItemEmpty,
    #[error("Format error, node must not be an object")]
    BulkNodeObject,
    /// In the style of emoncms's node limit; the whole request is refused.
    #[error(
        "Error: Reached the maximal allowed number of values in one request, limit is {limit}. Nothing was stored."
    )]
    TooManyValues { limit: usize },
    #[error(
        "Error: Compressed data expands to more than the allowed {limit} bytes. Nothing was stored."
    )]
    InflatedTooLarge { limit: usize },
}
