//! Record framing: `[crc32c u32][len u32][lsn u64][payload]`, little-endian. The CRC covers
//! everything after itself (length, LSN and payload), so a flipped bit anywhere in a record,
//! its length included, is caught.

pub const HEADER: usize = 16;

/// Payloads larger than this are treated as damage, not as a record to read.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// Appends one framed record to `buf`. The payload is written by `fill` straight into the
/// buffer, so encoding a record costs no intermediate allocation.
pub fn append(buf: &mut Vec<u8>, lsn: u64, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER]);
    fill(buf);
    let len = buf.len() - start - HEADER;
    buf[start + 4..start + 8].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 8..start + 16].copy_from_slice(&lsn.to_le_bytes());
    let crc = crc32c::crc32c(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// A record that checks out at the start of `data`: (lsn, payload range within `data`, total
/// size), or None.
fn parse_at(data: &[u8]) -> Option<(u64, std::ops::Range<usize>, usize)> {
    parse_checked(data, true)
}

fn parse_checked(data: &[u8], verify: bool) -> Option<(u64, std::ops::Range<usize>, usize)> {
    if data.len() < HEADER {
        return None;
    }
    let crc = u32::from_le_bytes(data[0..4].try_into().ok()?);
    let len = u32::from_le_bytes(data[4..8].try_into().ok()?) as usize;
    if len > MAX_PAYLOAD || data.len() < HEADER + len {
        return None;
    }
    if verify && crc32c::crc32c(&data[4..HEADER + len]) != crc {
        return None;
    }
    let lsn = u64::from_le_bytes(data[8..16].try_into().ok()?);
    Some((lsn, HEADER..HEADER + len, HEADER + len))
}

/// What reading a log found where its valid records stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The file ends in the middle of a record (or in bytes that never became one): what a
    /// crash during a write leaves. Everything before `offset` is good.
    TornTail { offset: u64 },
    /// A bad record with valid records after it: the file was damaged, not cut short.
    Corrupt { offset: u64, next_valid: u64 },
}

/// One record read from a log.
pub struct Record<'a> {
    pub lsn: u64,
    pub offset: u64,
    pub payload: &'a [u8],
}

/// Reads the records of a whole log file held in memory.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    damage: Option<Damage>,
    verify: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader {
            data,
            pos: 0,
            damage: None,
            verify: true,
        }
    }

    /// A reader for bytes a `new` reader has already checked up to their end: no CRCs again.
    pub fn checked_before(data: &'a [u8]) -> Reader<'a> {
        Reader {
            verify: false,
            ..Reader::new(data)
        }
    }

    /// Where reading stopped early, once `next` has returned None.
    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// Bytes of valid records read so far.
    pub fn valid_len(&self) -> u64 {
        self.pos as u64
    }

    pub fn next_record(&mut self) -> Option<Record<'a>> {
        if self.damage.is_some() || self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        match parse_checked(rest, self.verify) {
            Some((lsn, range, size)) => {
                let rec = Record {
                    lsn,
                    offset: self.pos as u64,
                    payload: &rest[range],
                };
                self.pos += size;
                Some(rec)
            }
            None if rest.iter().all(|&b| b == 0) => {
                // Zeros the writer laid down ahead of its records: the log ends here.
                self.data = &self.data[..self.pos];
                None
            }
            None => {
                // A crash leaves a prefix of the last write: nothing valid follows it. A
                // valid record further on means the damage is in the middle.
                let offset = self.pos as u64;
                self.damage = Some(
                    match (1..rest.len()).find(|&p| parse_at(&rest[p..]).is_some()) {
                        Some(p) => Damage::Corrupt {
                            offset,
                            next_valid: offset + p as u64,
                        },
                        None => Damage::TornTail { offset },
                    },
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            append(&mut buf, i as u64 + 1, |b| b.extend_from_slice(p));
        }
        buf
    }

    fn read_all(data: &[u8]) -> (Vec<(u64, Vec<u8>)>, Option<Damage>) {
        let mut r = Reader::new(data);
        let mut out = Vec::new();
        while let Some(rec) = r.next_record() {
            out.push((rec.lsn, rec.payload.to_vec()));
        }
        (out, r.damage().cloned())
    }

    #[test]
    fn round_trip() {
        let data = log_of(&[b"one", b"", b"three"]);
        let (recs, damage) = read_all(&data);
        assert_eq!(damage, None);
        assert_eq!(
            recs,
            vec![(1, b"one".to_vec()), (2, vec![]), (3, b"three".to_vec())]
        );
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail() {
        let data = log_of(&[b"first record", b"second record"]);
        let first_len = HEADER + 12;
        for cut in first_len + 1..data.len() {
            let (recs, damage) = read_all(&data[..cut]);
            assert_eq!(recs.len(), 1, "cut at {cut}");
            assert_eq!(
                damage,
                Some(Damage::TornTail {
                    offset: first_len as u64
                })
            );
        }
    }

    #[test]
    fn a_zeroed_tail_is_the_end_of_the_log() {
        let mut data = log_of(&[b"a", b"b"]);
        let good = data.len();
        data.extend_from_slice(&[0u8; 100]);
        let mut r = Reader::new(&data);
        let mut n = 0;
        while r.next_record().is_some() {
            n += 1;
        }
        assert_eq!(n, 2);
        assert_eq!(r.damage(), None);
        assert_eq!(r.valid_len(), good as u64);
    }

    #[test]
    fn a_record_cut_short_in_zeroed_room_is_a_torn_tail() {
        let full = log_of(&[b"a", b"bravo"]);
        let good = log_of(&[b"a"]).len();
        // The second record's first bytes reached the disk, the rest of the room is zeros.
        let mut data = full[..good + 10].to_vec();
        data.extend_from_slice(&[0u8; 100]);
        let (recs, damage) = read_all(&data);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            damage,
            Some(Damage::TornTail {
                offset: good as u64
            })
        );
    }

    #[test]
    fn any_flipped_bit_in_a_middle_record_is_corruption() {
        let data = log_of(&[b"alpha", b"bravo", b"charlie"]);
        let second = HEADER + 5;
        let third = second + HEADER + 5;
        for byte in second..third {
            for bit in 0..8 {
                let mut bad = data.clone();
                bad[byte] ^= 1 << bit;
                let (recs, damage) = read_all(&bad);
                assert_eq!(recs.len(), 1);
                assert_eq!(
                    damage,
                    Some(Damage::Corrupt {
                        offset: second as u64,
                        next_valid: third as u64
                    }),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }
}
