//! RESP on the wire: requests in (`parse`), replies out (`reply`).

pub mod parse;
pub mod reply;

pub use parse::{parse_request, Limits, ProtocolError};
pub use reply::Reply;
