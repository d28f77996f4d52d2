//! List values (LPUSH and friends).

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Clone, Debug, Default)]
pub struct ListValue {
    pub items: VecDeque<Bytes>,
}

impl ListValue {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Redis 7.0 reports every list as a quicklist.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }
}
