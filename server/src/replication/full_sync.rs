//! Full syncs served in the background: replicas waiting for one, and the walk that serves
//! them.
//!
//! A replica that needs a full sync waits (INFO's `wait_bgsave`) until a walk starts for it:
//! at once with `repl-diskless-sync no` or for a replica without `capa eof`; with
//! `repl-diskless-sync yes` once the replica that
//! came first has waited `repl-diskless-sync-delay` seconds, or as soon as
//! `repl-diskless-sync-max-replicas` (when not 0) replicas wait, so that replicas arriving
//! together share one walk, as Redis's share one fork. A walk cannot start while another runs
//! (BGSAVE, BGREWRITEAOF, an earlier sync): the replicas wait for its end.
//!
//! One walk (`persist::background::start_replica_sync`) serves every replica waiting when it
//! starts. At its start, with every shard locked, each gets its place in the replication
//! stream opened at the same offset (`primary::start_stream`); then the walk's RDB comes in
//! pieces through one [`RdbFeed`] while service goes on. The walk does not run more than
//! [`FEED_LIMIT`] bytes ahead of the slowest replica (the pace of Redis's pipe to its
//! replicas' sockets), so memory stays bounded whatever the dataset. A replica that takes the
//! RDB diskless (`$EOF:<mark>`) gets each piece as it comes; one that needs its length first
//! (`$<len>`: no `capa eof`, or `repl-diskless-sync no`) keeps the pieces until the RDB is
//! whole (once in memory, shared by such replicas; Redis writes its file to disk instead).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use crate::persist::rdb_file::RdbSink;
use crate::server_state::Server;

/// How far (bytes) the walk may run ahead of the slowest replica reading its RDB.
pub const FEED_LIMIT: usize = 16 << 20;

/// The replicas waiting for the next walk.
#[derive(Debug, Default)]
pub struct FullSyncs {
    waiting: Mutex<Vec<Waiter>>,
}

#[derive(Debug)]
struct Waiter {
    client: u64,
    /// Not `redis-cli --rdb`: the replica follows the stream after the RDB.
    follows: bool,
    /// `REPLCONF capa eof`: it can take a diskless RDB, worth waiting for others to share.
    eof: bool,
    since: Instant,
    started: oneshot::Sender<Started>,
}

/// What a waiting replica gets when its walk starts.
#[derive(Debug)]
pub struct Started {
    /// The stream's id and the offset the RDB ends at (the `+FULLRESYNC` line's).
    pub replid: String,
    pub offset: u64,
    pub feed: Arc<RdbFeed>,
}

impl FullSyncs {
    fn waiting(&self) -> MutexGuard<'_, Vec<Waiter>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Puts `client` in line for the next walk; the answer comes when it starts.
pub fn wait(server: &Server, client: u64, follows: bool, eof: bool) -> oneshot::Receiver<Started> {
    let (started, receiver) = oneshot::channel();
    server.replication.full_syncs.waiting().push(Waiter {
        client,
        follows,
        eof,
        since: Instant::now(),
        started,
    });
    receiver
}

/// Takes `client` out of line (its connection ended while it waited).
pub fn forget(server: &Server, client: u64) {
    server
        .replication
        .full_syncs
        .waiting()
        .retain(|w| w.client != client);
}

/// Starts a walk for every waiting replica when it is due (see the module's comment) and no
/// other walk runs. Called by the waiting replicas' links, often.
pub fn start_if_due(server: &Arc<Server>) {
    let mut waiting = server.replication.full_syncs.waiting();
    let Some(oldest) = waiting.iter().map(|w| w.since).min() else {
        return;
    };
    let (diskless, delay, enough) = {
        let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
        (
            cfg.get_bool("repl-diskless-sync"),
            Duration::from_secs(cfg.get_i64("repl-diskless-sync-delay").max(0) as u64),
            cfg.get_i64("repl-diskless-sync-max-replicas").max(0) as usize,
        )
    };
    // As Redis: a replica that cannot take a diskless RDB does not wait for others.
    let due = !diskless
        || waiting.iter().any(|w| !w.eof)
        || oldest.elapsed() >= delay
        || (enough > 0 && waiting.len() >= enough);
    if !due {
        return;
    }
    let feed = Arc::new(RdbFeed::default());
    let sink = Box::new(FeedWriter {
        feed: feed.clone(),
        complete: false,
    });
    let waiters = std::mem::take(&mut *waiting);
    let mut held = Some(waiters);
    let started = crate::persist::background::start_replica_sync(
        server,
        |guards| {
            let waiters = held.take().expect("at_lock runs once");
            let links: Vec<(u64, bool)> = waiters.iter().map(|w| (w.client, w.follows)).collect();
            let (replid, offset) = super::primary::start_stream(server, guards, &links);
            tracing::info!(
                replicas = waiters.len(),
                offset,
                "Starting BGSAVE for SYNC with target: {}",
                if diskless { "replicas sockets" } else { "disk" }
            );
            for w in waiters {
                feed.join(w.client);
                let started = Started {
                    replid: replid.clone(),
                    offset,
                    feed: feed.clone(),
                };
                if w.started.send(started).is_err() {
                    feed_leave(server, w.client, &feed);
                }
            }
        },
        sink,
    );
    if !started {
        // Another walk runs: they wait for its end. (Had the walk's thread failed to start after
        // `at_lock`, they would have been told, and their feed fails them.)
        if let Some(waiters) = held.take() {
            *waiting = waiters;
        }
    }
}

/// A replica whose link ended the moment its walk started: out of the feed, and its place in
/// the stream closed (its task, gone, cannot).
fn feed_leave(server: &Server, client: u64, feed: &RdbFeed) {
    feed.leave(client);
    server.replication.remove(client);
}

/// One walk's RDB on its way to the replicas it serves: the pieces not yet read by all of
/// them, in order.
#[derive(Debug, Default)]
pub struct RdbFeed {
    state: Mutex<FeedState>,
    /// The walk waits here for room.
    room: Condvar,
    /// Readers wait here for the next piece.
    more: Notify,
}

#[derive(Debug, Default)]
struct FeedState {
    pieces: VecDeque<Bytes>,
    /// The number of pieces before `pieces[0]` (read by everyone and let go).
    first: usize,
    buffered: usize,
    /// Each reading replica and the number of the next piece it reads.
    readers: Vec<(u64, usize)>,
    /// Some(true): the RDB is whole; Some(false): it never will be (the walk stopped).
    end: Option<bool>,
}

/// What a replica reads next from the feed.
#[derive(Debug)]
pub enum Piece {
    Bytes(Bytes),
    /// The RDB is whole.
    End,
    /// The walk stopped (a FLUSHALL, a failure): the RDB will not be whole.
    Failed,
}

impl RdbFeed {
    fn state(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn join(&self, client: u64) {
        let mut state = self.state();
        let at = state.first;
        state.readers.push((client, at));
    }

    /// `client` reads no more: the pieces only it had yet to read go.
    pub fn leave(&self, client: u64) {
        let mut state = self.state();
        state.readers.retain(|r| r.0 != client);
        state.let_go_of_read();
        drop(state);
        self.room.notify_all();
    }

    /// The next piece for `client`, waiting for the walk if need be.
    pub async fn next(&self, client: u64) -> Piece {
        loop {
            let notified = self.more.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                let Some(reader) = state.readers.iter().position(|r| r.0 == client) else {
                    return Piece::Failed;
                };
                let at = state.readers[reader].1;
                if let Some(piece) = state.pieces.get(at - state.first).cloned() {
                    state.readers[reader].1 += 1;
                    if at == state.first {
                        state.let_go_of_read();
                        self.room.notify_all();
                    }
                    return Piece::Bytes(piece);
                }
                match state.end {
                    Some(true) => return Piece::End,
                    Some(false) => return Piece::Failed,
                    None => {}
                }
            }
            notified.await;
        }
    }
}

impl FeedState {
    /// Drops the pieces every reader has read.
    fn let_go_of_read(&mut self) {
        let slowest = self
            .readers
            .iter()
            .map(|r| r.1)
            .min()
            .unwrap_or(self.first + self.pieces.len());
        while self.first < slowest {
            let Some(piece) = self.pieces.pop_front() else {
                break;
            };
            self.buffered -= piece.len();
            self.first += 1;
        }
    }
}

/// The walk's end of a feed.
struct FeedWriter {
    feed: Arc<RdbFeed>,
    complete: bool,
}

impl RdbSink for FeedWriter {
    fn send(&mut self, piece: Bytes) -> std::io::Result<()> {
        let mut state = self.feed.state();
        while state.buffered >= FEED_LIMIT && !state.readers.is_empty() {
            state = self
                .feed
                .room
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if state.readers.is_empty() {
            // Redis's words when its last diskless replica goes (its suite waits for them).
            tracing::warn!("Diskless rdb transfer, last replica dropped, killing fork child.");
            return Err(std::io::Error::other("no replica reads the RDB any more"));
        }
        state.buffered += piece.len();
        state.pieces.push_back(piece);
        drop(state);
        self.feed.more.notify_waiters();
        Ok(())
    }

    fn abandoned(&self) -> bool {
        self.feed.state().readers.is_empty()
    }

    fn complete(&mut self) {
        self.complete = true;
        let mut state = self.feed.state();
        state.end = Some(true);
        // Redis's words when its fork has written the whole RDB (test harnesses wait for it).
        tracing::warn!(
            "Diskless rdb transfer, done reading from pipe, {} replicas still up.",
            state.readers.len()
        );
        drop(state);
        self.feed.more.notify_waiters();
    }
}

impl Drop for FeedWriter {
    fn drop(&mut self) {
        if !self.complete {
            self.feed.state().end = Some(false);
            self.feed.more.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(n: u8) -> Bytes {
        Bytes::from(vec![n; 10])
    }

    #[tokio::test]
    async fn readers_get_every_piece_in_order_and_read_pieces_go() {
        let feed = Arc::new(RdbFeed::default());
        feed.join(1);
        feed.join(2);
        let mut writer = FeedWriter {
            feed: feed.clone(),
            complete: false,
        };
        writer.send(piece(1)).unwrap();
        writer.send(piece(2)).unwrap();
        assert!(matches!(feed.next(1).await, Piece::Bytes(b) if b == piece(1)));
        assert!(matches!(feed.next(1).await, Piece::Bytes(b) if b == piece(2)));
        // Reader 2 has read nothing: both pieces are kept for it.
        assert_eq!(feed.state().pieces.len(), 2);
        assert!(matches!(feed.next(2).await, Piece::Bytes(b) if b == piece(1)));
        assert_eq!(feed.state().pieces.len(), 1);
        writer.complete();
        assert!(matches!(feed.next(1).await, Piece::End));
        assert!(matches!(feed.next(2).await, Piece::Bytes(b) if b == piece(2)));
        assert!(matches!(feed.next(2).await, Piece::End));
        assert_eq!(feed.state().buffered, 0);
    }

    #[tokio::test]
    async fn a_walk_that_stops_fails_its_readers_and_the_last_reader_stops_the_walk() {
        let feed = Arc::new(RdbFeed::default());
        feed.join(1);
        let mut writer = FeedWriter {
            feed: feed.clone(),
            complete: false,
        };
        writer.send(piece(1)).unwrap();
        feed.leave(1);
        assert!(writer.send(piece(2)).is_err());
        assert_eq!(feed.state().buffered, 0);
        let feed2 = Arc::new(RdbFeed::default());
        feed2.join(7);
        drop(FeedWriter {
            feed: feed2.clone(),
            complete: false,
        });
        assert!(matches!(feed2.next(7).await, Piece::Failed));
    }
}
