//! RESP on the wire: requests in (`parse`), replies out (`reply`).

pub mod parse;
pub mod parse_properties;
pub mod reply;
pub mod resp_reader;

pub use parse::{parse_request, Limits, ProtocolError, RequestParser};
pub use reply::Reply;
