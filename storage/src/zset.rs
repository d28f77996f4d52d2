//! Sorted-set values (ZADD and friends).

use ahash::RandomState;
use indexmap::IndexMap;

use crate::key::Key;

#[derive(Clone, Debug, Default)]
pub struct ZSetValue {
    pub scores: IndexMap<Key, f64, RandomState>,
    /// Whether Redis would still hold this sorted set as a listpack (until
    /// zset-max-listpack-entries/-value is exceeded; it never converts back).
    pub listpack: bool,
}

impl ZSetValue {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        if self.listpack {
            "listpack"
        } else {
            "skiplist"
        }
    }
}
