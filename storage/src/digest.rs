//! DEBUG DIGEST and DIGEST-VALUE: a 160-bit hash of the dataset's content, equal for equal
//! contents whatever the encodings and insertion histories (test suites compare it before and
//! after a reload), as Redis's: unordered collections (sets, hashes) combine their elements'
//! hashes with XOR, ordered ones (strings, lists, sorted sets) hash in order, and an expiry adds
//! a marker but not its time (a TTL that counts down changes nothing). An empty dataset is all
//! zeros. The values differ from Redis's own (which uses SHA-1): only equality is meaningful.

use std::hash::Hasher;

use crate::stream::StreamId;
use crate::value::Value;
use crate::Entry;

/// 160 bits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Digest([u64; 3]);

impl Digest {
    /// Hashes `parts` in order (each length-prefixed, so boundaries count) with `self`.
    pub fn mix(&mut self, parts: &[&[u8]]) {
        for (lane, seed) in self.0.iter_mut().zip([0x9e37u64, 0x85eb, 0xc2b2]) {
            let mut h = std::hash::DefaultHasher::new();
            h.write_u64(seed);
            h.write_u64(*lane);
            for p in parts {
                h.write_usize(p.len());
                h.write(p);
            }
            *lane = h.finish();
        }
    }

    /// Combines an element's digest regardless of order.
    pub fn xor(&mut self, other: Digest) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a ^= b;
        }
    }

    fn of(parts: &[&[u8]]) -> Digest {
        let mut d = Digest::default();
        d.mix(parts);
        d
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 3]
    }

    /// 40 hexadecimal digits, as Redis shows a digest.
    pub fn hex(&self) -> String {
        let full = format!("{:016x}{:016x}{:016x}", self.0[0], self.0[1], self.0[2]);
        full[..40].to_string()
    }
}

/// The digest of a value's content (DEBUG DIGEST-VALUE).
pub fn value_digest(value: &Value) -> Digest {
    let mut d = Digest::default();
    match value {
        Value::Str(s) => d.mix(&[&s.as_slice()]),
        Value::List(l) => l.iter().for_each(|item| d.mix(&[item])),
        Value::Set(s) => s.iter().for_each(|m| d.xor(Digest::of(&[m]))),
        Value::Hash(h) => h.iter().for_each(|(f, v)| d.xor(Digest::of(&[f, v]))),
        Value::ZSet(z) => z
            .iter()
            .for_each(|(m, score)| d.mix(&[m, &score.to_bits().to_le_bytes()])),
        Value::Stream(s) => {
            s.walk(StreamId::MIN, StreamId::MAX, false, |id, pairs| {
                d.mix(&[&id.ms.to_be_bytes(), &id.seq.to_be_bytes()]);
                pairs.iter().for_each(|(f, v)| d.mix(&[f, v]));
                true
            });
            d.mix(&[&s.last_id.ms.to_be_bytes(), &s.last_id.seq.to_be_bytes()]);
            for (name, g) in &s.groups {
                d.mix(&[
                    name,
                    &g.last_id.ms.to_be_bytes(),
                    &g.last_id.seq.to_be_bytes(),
                ]);
                for (id, p) in &g.pending {
                    d.mix(&[&id.ms.to_be_bytes(), &id.seq.to_be_bytes(), &p.consumer]);
                }
            }
        }
        Value::Temporal(t) => t.replay_events().for_each(|(m, score, at)| {
            d.xor(Digest::of(&[
                m,
                &score.to_bits().to_le_bytes(),
                &at.to_le_bytes(),
            ]))
        }),
    }
    d
}

/// A key's contribution to its database's digest: its name, type, content and whether it
/// expires.
pub fn key_digest(key: &[u8], entry: &Entry, expires: bool) -> Digest {
    let content = value_digest(&entry.value);
    let mut d = Digest::default();
    let expiry: &[u8] = if expires { b"!!expire!!" } else { b"" };
    let content_bytes: Vec<u8> = content.0.iter().flat_map(|v| v.to_le_bytes()).collect();
    d.mix(&[
        key,
        entry.value.type_name().as_bytes(),
        &content_bytes,
        expiry,
    ]);
    d
}

/// Combines a key's digest into the dataset's, under its database's number.
pub fn add_key(dataset: &mut Digest, db: usize, key: Digest) {
    let bytes: Vec<u8> = key.0.iter().flat_map(|v| v.to_le_bytes()).collect();
    dataset.xor(Digest::of(&[&db.to_le_bytes(), &bytes]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_ignore_order_lists_do_not() {
        let mut a = crate::set::SetValue::default();
        let mut b = crate::set::SetValue::default();
        for m in [b"x".as_slice(), b"y", b"z"] {
            a.add(m, 512);
        }
        for m in [b"z".as_slice(), b"x", b"y"] {
            b.add(m, 512);
        }
        let (a, b) = (Value::Set(Box::new(a)), Value::Set(Box::new(b)));
        assert_eq!(value_digest(&a), value_digest(&b));
        assert_ne!(value_digest(&a), value_digest(&Value::string(b"xyz")));
        assert_eq!(Digest::default().hex(), "0".repeat(40));
    }
}
