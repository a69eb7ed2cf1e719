//! Decoders for the emoncms input forms: `input/post` (fulljson, legacy json/data, csv),
//! `input/bulk` (plain, `c=1` hex zlib, `cb=1` zlib body) and MQTT topics and payloads. They
//! follow emoncms 11's code, quirks included (see `shared/spec/emoncms.md` §2 and §6), except
//! that a JSON `null` (or the text `null`) is a missing value rather than 0 (DESIGN.md §4).

mod bulk;
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
}
