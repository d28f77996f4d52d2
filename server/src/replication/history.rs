//! The replication stream's identity and recent history, as PSYNC2 defines them:
//! - `replid` names the history this server's stream belongs to, and `offset` (INFO's
//!   `master_repl_offset`) counts every byte ever fed into it;
//! - after a promotion the old id becomes `replid2`, valid up to `second_offset`, so replicas
//!   of the old primary can continue with a partial resync;
//! - the backlog keeps the last `repl-backlog-size` bytes: a replica that asks to continue
//!   from an offset still inside it gets `+CONTINUE` and the bytes after it.
//!
//! A primary feeds the effects of its writes; a replica feeds its primary's stream verbatim,
//! so that its offsets stay equal to its primary's and it can serve partial resyncs after a
//! failover.

/// The id Redis shows when there is no second history.
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// The backlog's smallest size, as Redis (`repl-backlog-size` is raised to it).
const MIN_BACKLOG: usize = 16 * 1024;

#[derive(Debug)]
pub struct History {
    replid: String,
    replid2: String,
    /// The last offset+1 that can be continued under `replid2` (-1: none). INFO's
    /// `second_repl_offset`.
    second_offset: i64,
    /// Bytes fed since the history began: INFO's `master_repl_offset`.
    offset: u64,
    backlog: Backlog,
}

impl History {
    pub fn new(replid: String) -> History {
        History {
            replid,
            replid2: NO_REPLID.to_string(),
            second_offset: -1,
            offset: 0,
            backlog: Backlog::default(),
        }
    }

    pub fn replid(&self) -> &str {
        &self.replid
    }

    pub fn replid2(&self) -> &str {
        &self.replid2
    }

    pub fn second_offset(&self) -> i64 {
        self.second_offset
    }

    /// INFO's `master_repl_offset`.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends bytes of the stream (the backlog keeps them while it is on).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        self.backlog.push(bytes);
    }

    /// Keeps the last `size` bytes from now on (the first replica turns it on; CONFIG SET
    /// repl-backlog-size resizes it, keeping what fits).
    pub fn enable_backlog(&mut self, size: usize) {
        self.backlog.resize(size.max(MIN_BACKLOG));
    }

    /// Drops the backlog (`repl-backlog-ttl` passed with no replica).
    pub fn disable_backlog(&mut self) {
        self.backlog = Backlog::default();
    }

    pub fn backlog_active(&self) -> bool {
        self.backlog.capacity > 0
    }

    pub fn backlog_size(&self) -> usize {
        self.backlog.capacity
    }

    /// Bytes held (INFO's `repl_backlog_histlen`).
    pub fn backlog_histlen(&self) -> u64 {
        self.backlog.data.len() as u64
    }

    /// The offset of the backlog's first byte (INFO's `repl_backlog_first_byte_offset`):
    /// offsets count from 1, as Redis's do.
    pub fn backlog_first_byte_offset(&self) -> u64 {
        if self.backlog_active() {
            self.offset + 1 - self.backlog_histlen()
        } else {
            0
        }
    }

    /// PSYNC `replid offset`: the bytes from `offset` (the replica's offset + 1) to now, when
    /// the history `replid` names is this one (or the one before a promotion, up to where it
    /// ended) and the backlog still holds them; None means a full resync.
    pub fn continue_from(&self, replid: &str, offset: u64) -> Option<Vec<u8>> {
        let same = replid == self.replid;
        let previous = replid == self.replid2
            && self.second_offset >= 0
            && offset <= self.second_offset as u64;
        if !(same || previous) || !self.backlog_active() {
            return None;
        }
        let first = self.backlog_first_byte_offset();
        if offset < first || offset > self.offset + 1 {
            return None;
        }
        let skip = (offset - first) as usize;
        Some(self.backlog.data.iter().skip(skip).copied().collect())
    }

    /// A promotion (REPLICAOF NO ONE, FAILOVER): the history so far becomes the second one,
    /// continuable up to here, and a new id starts.
    pub fn shift_replid(&mut self, new_replid: String) {
        self.replid2 = std::mem::replace(&mut self.replid, new_replid);
        self.second_offset = self.offset as i64 + 1;
    }

    /// A primary restarted from an RDB file that saved its history `replid` up to `offset`
    /// (its `repl-id`/`repl-offset` fields): that history becomes the second one, continuable
    /// from `offset` + 1, and this server's new id goes on from there, so replicas continue
    /// with a partial resync (as Redis's loadDataFromDisk).
    pub fn continue_saved(&mut self, replid: String, offset: u64) {
        self.replid2 = replid;
        self.second_offset = offset as i64 + 1;
        self.offset = offset;
        self.backlog.data.clear();
    }

    /// A new id with no second history (DEBUG CHANGE-REPL-ID, a new primary's full resync of
    /// this replica).
    pub fn reset(&mut self, replid: String, offset: u64) {
        self.replid = replid;
        self.replid2 = NO_REPLID.to_string();
        self.second_offset = -1;
        self.offset = offset;
        self.backlog.data.clear();
    }
}

/// The last `capacity` bytes of the stream (none while `capacity` is 0).
#[derive(Debug, Default)]
struct Backlog {
    data: std::collections::VecDeque<u8>,
    capacity: usize,
}

impl Backlog {
    fn push(&mut self, bytes: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let over = (self.data.len() + bytes.len()).saturating_sub(self.capacity);
        self.data.drain(..over);
        self.data.extend(bytes);
    }

    fn resize(&mut self, capacity: usize) {
        let over = self.data.len().saturating_sub(capacity);
        self.data.drain(..over);
        self.capacity = capacity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_only_inside_the_backlog() {
        let mut h = History::new("a".repeat(40));
        h.feed(b"before");
        h.enable_backlog(16 * 1024);
        h.feed(b"hello");
        assert_eq!(h.offset(), 11);
        assert_eq!(h.backlog_first_byte_offset(), 7);
        assert_eq!(h.continue_from(&"a".repeat(40), 7).unwrap(), b"hello");
        assert_eq!(h.continue_from(&"a".repeat(40), 11).unwrap(), b"o");
        assert_eq!(h.continue_from(&"a".repeat(40), 12).unwrap(), b"");
        assert!(h.continue_from(&"a".repeat(40), 6).is_none());
        assert!(h.continue_from(&"a".repeat(40), 13).is_none());
        assert!(h.continue_from(&"b".repeat(40), 7).is_none());
    }

    #[test]
    fn the_backlog_keeps_the_last_bytes() {
        let mut h = History::new("a".repeat(40));
        h.enable_backlog(0);
        assert_eq!(h.backlog_size(), MIN_BACKLOG);
        let chunk = vec![b'x'; 10_000];
        h.feed(&chunk);
        h.feed(&chunk);
        assert_eq!(h.backlog_histlen(), MIN_BACKLOG as u64);
        assert_eq!(h.backlog_first_byte_offset(), 20_001 - MIN_BACKLOG as u64);
    }

    #[test]
    fn a_promotion_keeps_the_old_history_continuable() {
        let mut h = History::new("a".repeat(40));
        h.enable_backlog(16 * 1024);
        h.feed(b"12345");
        h.shift_replid("b".repeat(40));
        h.feed(b"678");
        assert_eq!(h.second_offset(), 6);
        // A replica of the old primary, at offset 5, continues with what came after.
        assert_eq!(h.continue_from(&"a".repeat(40), 6).unwrap(), b"678");
        // Past where the old history ended, it cannot.
        assert!(h.continue_from(&"a".repeat(40), 7).is_none());
        assert_eq!(h.continue_from(&"b".repeat(40), 7).unwrap(), b"78");
    }
}
