//! Hash values (HSET and friends). Insertion-indexed so HRANDFIELD picks in O(1) and HSCAN can use
//! the same deletion-safe descending cursor as SCAN.

use ahash::RandomState;
use bytes::Bytes;
use indexmap::IndexMap;

use crate::key::Key;

#[derive(Clone, Debug, Default)]
pub struct HashValue {
    pub fields: IndexMap<Key, Bytes, RandomState>,
    /// Whether Redis would still hold this hash as a listpack (it converts to a hashtable once
    /// hash-max-listpack-entries/-value is exceeded, and never back).
    pub listpack: bool,
}

impl HashValue {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        if self.listpack {
            "listpack"
        } else {
            "hashtable"
        }
    }
}
