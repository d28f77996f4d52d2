//! Keys as stored in a keyspace: short keys (nearly all of them) live inline in the table's
//! entry, so a lookup compares bytes already in cache instead of following a pointer, and
//! storing one costs no allocation.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

const INLINE: usize = 22;

#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// `b` padded into an array of `N` bytes with its length, when it fits.
pub(crate) fn inline<const N: usize>(b: &[u8]) -> Option<(u8, [u8; N])> {
    if b.len() > N {
        return None;
    }
    let mut bytes = [0u8; N];
    bytes[..b.len()].copy_from_slice(b);
    Some((b.len() as u8, bytes))
}

impl Key {
    pub fn from_slice(b: &[u8]) -> Key {
        if let Some((len, bytes)) = inline(b) {
            Key::Inline { len, bytes }
        } else {
            Key::Heap(b.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Hashes exactly as `[u8]` does, so that look-ups by `&[u8]` find the key.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn inline_and_heap_keys_round_trip_and_hash_like_slices() {
        let short = Key::from_slice(b"user:42");
        let long = Key::from_slice(&[b'x'; 100]);
        assert!(matches!(short, Key::Inline { .. }));
        assert!(matches!(long, Key::Heap(_)));
        assert_eq!(short.as_bytes(), b"user:42");
        let mut m: HashMap<Key, u32> = HashMap::new();
        m.insert(short, 1);
        m.insert(long, 2);
        assert_eq!(m.get(&b"user:42"[..]), Some(&1));
        assert_eq!(m.get(&[b'x'; 100][..]), Some(&2));
        assert_eq!(Key::from_slice(b"").as_bytes(), b"");
        assert_eq!(Key::from_slice(&[7u8; 22]).as_bytes(), &[7u8; 22]);
    }
}
