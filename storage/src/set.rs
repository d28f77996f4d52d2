//! Set values (SADD and friends). Insertion-indexed for O(1) SRANDMEMBER/SPOP and a
//! deletion-safe SSCAN cursor.

use ahash::RandomState;
use indexmap::IndexSet;

use crate::key::Key;

#[derive(Clone, Debug, Default)]
pub struct SetValue {
    pub members: IndexSet<Key, RandomState>,
    /// Whether Redis would still hold this set as an intset (all members integers, at most
    /// set-max-intset-entries of them; once converted it never goes back).
    pub intset: bool,
}

impl SetValue {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn encoding(&self) -> &'static str {
        if self.intset {
            "intset"
        } else {
            "hashtable"
        }
    }
}
