//! The primary's side of a replica's link.
//!
//! Full resync: PSYNC answers `+FULLRESYNC <replid> <offset>` (SYNC, the pre-PSYNC form,
//! nothing), then the RDB: `$EOF:<40 random chars>\r\n<rdb><the same 40 chars>` for a
//! replica that sent `REPLCONF capa eof` while `repl-diskless-sync` is yes, as Redis's diskless
//! sync sends it, otherwise `$<len>\r\n<rdb>`. The RDB is made by a background walk that
//! serves every replica waiting when it starts (`full_sync`), with service going on; at the
//! walk's start, with every shard locked, the stream starts for those replicas at `<offset>`:
//! no write falls between the two. Until then the link sends a newline every second, as
//! Redis's keep-alive. (`REPLCONF rdb-filter-only functions` gets its small RDB of the
//! function libraries at once, in the PSYNC reply.)
//!
//! Partial resync: PSYNC with a replid and offset the backlog can continue answers
//! `+CONTINUE <replid>` (`+CONTINUE` to a replica without `capa psync2`) and the bytes after.
//!
//! The link then sends everything fed to the stream after its start, PINGs through the stream
//! every `repl-ping-replica-period` (they count in the offset, as Redis's), and reads the
//! replica's `REPLCONF ACK`s. `REPLCONF rdb-only 1` (redis-cli --rdb) ends it after the RDB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, warn};

use super::full_sync::{self, Piece, RdbFeed};
use super::{Handshake, LinkState, Outbox, ReplicaLink};
use crate::protocol::parse::{Limits, RequestParser};
use crate::protocol::Reply;
use crate::server_state::{Server, ShardGuard};

/// `REPLCONF rdb-filter-only functions`: the `+FULLRESYNC` line for PSYNC, then an RDB of the
/// function libraries alone, made at once (it holds no keys). Err: the RDB could not be
/// written (the caller answers an error and drops the link).
pub fn functions_rdb(server: &Server, psync: bool) -> std::io::Result<Vec<u8>> {
    let mut start = None;
    let (rdb, _) = crate::persist::rdb_file::to_bytes(server, false, |guards| {
        start = Some(start_stream(server, guards, &[]));
    })?;
    let (replid, offset) = start.expect("set under the lock");
    let mut out = Vec::with_capacity(rdb.len() + 160);
    if psync {
        out.extend_from_slice(format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("${}\r\n", rdb.len()).as_bytes());
    out.extend_from_slice(&rdb);
    Ok(out)
}

/// A full sync's RDB, from the replica's link: waits for the walk that serves it (see
/// `full_sync`), sending a newline every second meanwhile, then writes the `+FULLRESYNC` line
/// (with `psync`) and the RDB as the walk makes it. Answers the form it was sent in; None:
/// the link ends (the replica went away, its walk stopped, or it read nothing for
/// `repl-timeout`), and the replica is off the table.
pub async fn send_rdb<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Arc<Server>,
    stream: &mut S,
    client: u64,
    peer: std::net::IpAddr,
    handshake: &Handshake,
) -> Option<RdbForm> {
    let psync = handshake.psync;
    let mut syncing = Syncing {
        server,
        client,
        feed: None,
        done: false,
    };
    let mut started = full_sync::wait(server, client, !handshake.rdb_only, handshake.capa_eof);
    full_sync::start_if_due(server);
    let mut last_newline = Instant::now();
    let started = loop {
        let woken = tokio::select! {
            started = &mut started => Some(started),
            _ = hung_up(&mut *stream) => return None,
            _ = tokio::time::sleep(Duration::from_millis(100)) => None,
        };
        match woken {
            Some(Ok(started)) => break started,
            Some(Err(_)) => return None,
            None => {}
        }
        full_sync::start_if_due(server);
        if keep_alive_due(server, &mut last_newline)
            && (stream.write_all(b"\n").await.is_err() || stream.flush().await.is_err())
        {
            return None;
        }
    };
    let feed = started.feed.clone();
    syncing.feed = Some(feed.clone());
    server
        .replication
        .update(client, |link| link.state = LinkState::SendBulk);
    let diskless = handshake.capa_eof
        && server
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get_bool("repl-diskless-sync");
    let name = handshake.replica_name(peer);
    let mut out = Writer {
        stream,
        server,
        name,
    };
    let mut head = String::new();
    if psync {
        head = format!("+FULLRESYNC {} {}\r\n", started.replid, started.offset);
    }
    let sent = if diskless {
        let mark = crate::server_state::random_hex(40);
        head.push_str(&format!("$EOF:{mark}\r\n"));
        out.write(head.as_bytes()).await
            && send_pieces(&mut out, &feed, client).await
            && out.write(mark.as_bytes()).await
    } else {
        out.write(head.as_bytes()).await && send_whole(server, &mut out, &feed, client).await
    };
    syncing.done = sent;
    sent.then_some(if diskless {
        RdbForm::EofMark
    } else {
        RdbForm::Length
    })
}

/// How a full sync's RDB was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdbForm {
    /// `$<len>`.
    Length,
    /// `$EOF:<mark>` ... `<mark>`: the replica finds the RDB's end by the mark, which must
    /// be the last bytes it reads (Redis's replica looks for it there only), so the stream
    /// waits for the replica's first ACK, sent once the RDB is loaded, as Redis's waits.
    EofMark,
}

/// The diskless form: each piece as it comes.
async fn send_pieces<S: AsyncRead + AsyncWrite + Unpin>(
    out: &mut Writer<'_, S>,
    feed: &RdbFeed,
    client: u64,
) -> bool {
    loop {
        match out.next_piece(feed, client, Duration::from_secs(1)).await {
            Next::Piece(Piece::Bytes(piece)) => {
                if !out.write(&piece).await {
                    return false;
                }
            }
            Next::Piece(Piece::End) => return true,
            Next::Piece(Piece::Failed) | Next::Gone => return false,
            Next::Idle => {}
        }
    }
}

/// The `$<len>` form: the pieces kept until the RDB is whole (a newline every second
/// meanwhile, as Redis sends while its file is written), then its length and the pieces.
async fn send_whole<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    out: &mut Writer<'_, S>,
    feed: &RdbFeed,
    client: u64,
) -> bool {
    let mut pieces = Vec::new();
    let mut len = 0;
    let mut last_newline = Instant::now();
    loop {
        match out.next_piece(feed, client, Duration::from_secs(1)).await {
            Next::Piece(Piece::Bytes(piece)) => {
                len += piece.len();
                pieces.push(piece);
            }
            Next::Piece(Piece::End) => break,
            Next::Piece(Piece::Failed) | Next::Gone => return false,
            Next::Idle => {}
        }
        if keep_alive_due(server, &mut last_newline) && !out.write(b"\n").await {
            return false;
        }
    }
    // The pieces are all here: the feed may let go of them.
    feed.leave(client);
    if !out.write(format!("${len}\r\n").as_bytes()).await {
        return false;
    }
    for piece in pieces {
        if !out.write(&piece).await {
            return false;
        }
    }
    true
}

/// Whether a newline keep-alive is due to a replica waiting for its RDB: one a second, as
/// Redis's cron sends them, but none while the whole server is held (DEBUG SLEEP holds every
/// shard, as Redis sleeps in its one thread): a replica then times out as from Redis.
fn keep_alive_due(server: &Server, last: &mut Instant) -> bool {
    if last.elapsed() < Duration::from_secs(1) || server.try_lock_shard(0).is_none() {
        return false;
    }
    *last = Instant::now();
    true
}

/// A replica's socket during its RDB: a write that does not finish within `repl-timeout`
/// drops the replica, as Redis drops one that stops reading its streamed RDB (the setting as
/// it is while the write waits: Redis's cron reads it every second).
struct Writer<'a, S> {
    stream: &'a mut S,
    server: &'a Server,
    name: String,
}

/// What a replica's link met while waiting for its RDB's next piece.
enum Next {
    Piece(Piece),
    /// The replica hung up.
    Gone,
    /// Nothing within the wait.
    Idle,
}

/// Ends when the replica hangs up (its socket's read side ends); what it sends meanwhile is
/// dropped (a replica sends nothing before its RDB is loaded).
async fn hung_up<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut scratch = [0u8; 512];
    while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {}
}

impl<S: AsyncRead + AsyncWrite + Unpin> Writer<'_, S> {
    /// The feed's next piece for `client`, watching for the replica hanging up meanwhile (so
    /// that a walk it alone reads stops at once, not at its next piece).
    async fn next_piece(&mut self, feed: &RdbFeed, client: u64, wait: Duration) -> Next {
        tokio::select! {
            piece = feed.next(client) => Next::Piece(piece),
            _ = hung_up(&mut *self.stream) => Next::Gone,
            _ = tokio::time::sleep(wait) => Next::Idle,
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        let started = Instant::now();
        let mut write = std::pin::pin!(write);
        loop {
            let timeout = Duration::from_secs(
                self.server
                    .config
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_i64("repl-timeout")
                    .max(1) as u64,
            );
            let Some(left) = timeout.checked_sub(started.elapsed()) else {
                warn!("Disconnecting timedout replica (full sync): {}", self.name);
                return false;
            };
            match tokio::time::timeout(left.min(Duration::from_secs(1)), &mut write).await {
                Ok(result) => return result.is_ok(),
                Err(_) => continue,
            }
        }
    }
}

/// A replica's place while it waits for its RDB and while the RDB goes out: out of line, out
/// of its feed, and (unless the RDB went out whole) off the table when the link's task leaves.
struct Syncing<'a> {
    server: &'a Arc<Server>,
    client: u64,
    feed: Option<Arc<RdbFeed>>,
    done: bool,
}

impl Drop for Syncing<'_> {
    fn drop(&mut self) {
        full_sync::forget(self.server, self.client);
        if let Some(feed) = &self.feed {
            feed.leave(self.client);
        }
        if !self.done {
            drop(Unregister {
                server: self.server,
                client: self.client,
            });
        }
    }
}

/// With every shard locked: turns the stream on (first replica: the backlog, and the tap on
/// the log's records, with expired keys noted for their DELs), and opens an outbox at the
/// stream's present offset for each of `links` (client, whether it follows the stream after
/// its RDB). Answers the stream's id and offset.
pub(super) fn start_stream(
    server: &Server,
    guards: &mut [ShardGuard<'_>],
    links: &[(u64, bool)],
) -> (String, u64) {
    let replication = &server.replication;
    let follows = links.iter().any(|l| l.1);
    if follows && !replication.is_replica() {
        tap_locked(server, guards);
    }
    if follows {
        replication.reselect();
    }
    let mut history = replication.history();
    if follows && !history.backlog_active() {
        history.enable_backlog(replication.backlog_size());
    }
    for &(client, follows) in links {
        if follows {
            replication.open_outbox(&history, client, Vec::new());
        }
    }
    (history.replid().to_string(), history.offset())
}

/// A primary started from an RDB file that recorded its stream up to `offset` under
/// `replid`: the stream goes on from there (see `History::continue_saved`) with its backlog on
/// and this server's writes fed into it, the keys the load found expired deleted first.
pub fn resume_saved_history(
    server: &Server,
    replid: String,
    offset: u64,
    expired: &[(usize, Vec<u8>)],
) {
    {
        let mut history = server.replication.history();
        history.continue_saved(replid, offset);
        history.enable_backlog(server.replication.backlog_size());
    }
    tap_local_writes(server);
    for (db, key) in expired {
        server.replication.feed_command_in(*db, &[b"DEL", key]);
    }
}

/// Starts streaming this server's own writes (the first replica's full sync; a promoted
/// replica that has replicas of its own). Takes every shard's lock.
pub fn tap_local_writes(server: &Server) {
    let mut guards = server.lock_all();
    tap_locked(server, &mut guards);
}

/// With every shard locked, so the switch falls between two records of every shard: records
/// go to the stream from now on, expired keys' deletions included.
fn tap_locked(server: &Server, guards: &mut [ShardGuard<'_>]) {
    if server.wal.is_tapped() {
        return;
    }
    for g in guards.iter_mut() {
        for db in &mut g.dbs {
            db.expired_unlogged.get_or_insert_with(Vec::new);
        }
    }
    server.wal.set_tapped(true);
}

/// PSYNC replid offset: when the backlog continues that history from that offset, opens the
/// link's outbox with the bytes after it and answers the `+CONTINUE` line; None: a full
/// resync is needed.
pub fn partial_resync(
    server: &Server,
    client: u64,
    handshake: &Handshake,
    replid: &[u8],
    offset: u64,
) -> Option<Reply> {
    let replication = &server.replication;
    let history = replication.history();
    let replid = std::str::from_utf8(replid).ok()?;
    let missing = history.continue_from(replid, offset)?;
    let line = if handshake.capa_psync2 {
        format!("+CONTINUE {}\r\n", history.replid())
    } else {
        "+CONTINUE\r\n".to_string()
    };
    info!(
        client,
        offset,
        bytes = missing.len(),
        "Sending {} bytes of backlog starting from offset {offset}.",
        missing.len()
    );
    replication.open_outbox(&history, client, missing);
    Some(Reply::Raw(Bytes::from(line)))
}

/// Registers the connection as a replica, waiting for its RDB (its SYNC or PSYNC was just
/// accepted); `hold_link` then runs the link and unregisters it.
/// While a busy script holds `worker`, the tasks of its replicas' links cannot run: a replica
/// that hung up meanwhile is taken off the table here (INFO's connected_slaves, which such a
/// script may wait on, and min-replicas-to-write), as Redis's event loop notices it between a
/// busy script's hook calls. Called by the script's hook; the link's task ends it after.
pub fn forget_hung_up(server: &Server, worker: usize) {
    for (client, fd) in server.clients.replica_links(worker) {
        let mut probe = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one pollfd of a registered client's open socket; no waiting.
        let ready = unsafe { libc::poll(&mut probe, 1, 0) };
        if ready > 0 && probe.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            server.replication.remove(client);
        }
    }
}

pub fn register(server: &Server, client: u64, handshake: &Handshake, peer: std::net::IpAddr) {
    server.replication.add(ReplicaLink {
        client,
        ip: super::announced_ip(handshake, peer),
        port: handshake.listening_port,
        ack_offset: 0,
        last_ack: Instant::now(),
        state: LinkState::WaitBgsave,
    });
}

/// Runs a replica's link once its RDB (or `+CONTINUE`) is written: the stream out, ACKs in,
/// until the replica goes away (or is killed, or passes its output limit), or at once for an
/// rdb-only replica.
/// `plain_fd`: the socket's descriptor when it is plain TCP or Unix (not TLS), through which
/// another worker sends the stream before its clients' replies (see
/// `Replication::send_before_reply`).
pub async fn hold_link<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Arc<Server>,
    stream: &mut S,
    client: u64,
    rdb_only: bool,
    rdb_form: Option<RdbForm>,
    plain_fd: Option<std::os::fd::RawFd>,
) {
    let unregister = Unregister { server, client };
    let outbox = server.replication.outbox(client);
    let Some(outbox) = outbox.filter(|_| !rdb_only) else {
        let _ = stream.shutdown().await;
        return;
    };
    server.replication.update(client, |link| {
        link.state = LinkState::Online;
        link.last_ack = Instant::now();
    });
    let (reader, writer) = tokio::io::split(stream);
    let acked = tokio::sync::Notify::new();
    let send = async {
        if rdb_form == Some(RdbForm::EofMark) {
            acked.notified().await;
        }
        send_stream(server, writer, &outbox, plain_fd).await
    };
    tokio::select! {
        _ = read_acks(server, reader, client, &acked) => {}
        _ = send => {}
        _ = outbox.closed.notified() => note_dropped(server, client),
    }
    debug!(client, "replica link closed");
    drop(unregister);
}

/// `repl-backlog-ttl` seconds after the last replica left (0: never), the stream stops: the
/// backlog is freed and writes stop computing records for it. A replica that comes back then
/// needs a full resync, as with Redis.
async fn release_backlog_later(server: Arc<Server>) {
    let ttl = {
        let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
        Duration::from_secs(cfg.get_i64("repl-backlog-ttl").max(0) as u64)
    };
    if ttl.is_zero() {
        return;
    }
    tokio::time::sleep(ttl).await;
    let mut guards = server.lock_all();
    let replication = &server.replication;
    if replication.alone_for().is_none_or(|alone| alone < ttl) {
        return;
    }
    if server.wal.is_tapped() {
        server.wal.set_tapped(false);
        if !server.wal.records() {
            for g in guards.iter_mut() {
                for db in &mut g.dbs {
                    db.expired_unlogged = None;
                }
            }
        }
    }
    replication.history().disable_backlog();
    info!(
        "Replication backlog freed after {} seconds without connected replicas.",
        ttl.as_secs()
    );
}

/// Writes the stream's bytes as they come.
async fn send_stream<W: AsyncWrite + Unpin>(
    server: &Server,
    mut writer: W,
    outbox: &Outbox,
    plain_fd: Option<std::os::fd::RawFd>,
) {
    /// Stops the direct writes when the task ends however it ends (dropped with the link's
    /// select, too): before `writer`, a parameter, is dropped and the socket may close.
    struct Direct<'a>(&'a Outbox);
    impl Drop for Direct<'_> {
        fn drop(&mut self) {
            self.0.write_directly_to(None);
        }
    }
    outbox.write_directly_to(plain_fd);
    let _direct = Direct(outbox);
    let mut spare = Vec::new();
    loop {
        if outbox.is_dropped() {
            note_dropped(server, outbox.client);
            return;
        }
        let bytes = outbox.take(spare);
        if bytes.is_empty() {
            spare = bytes;
            // Woken behind the requests this worker was already running, which feed theirs
            // first; a client that wrote yields to this task before its replies go (see
            // `Replication::send_before_reply`): one write carries them all, ahead of their
            // replies.
            outbox.ready.notified().await;
            continue;
        }
        // (flush: a TLS stream may hold the record; a TCP stream's is a no-op.)
        let ok = writer.write_all(&bytes).await.is_ok() && writer.flush().await.is_ok();
        outbox.sent(bytes.len());
        if !ok {
            return;
        }
        // A burst's buffer is not kept for the next one (it counts in used_memory until the
        // next take hands it back).
        spare = if bytes.capacity() > KEPT_STREAM_BUFFER {
            Vec::new()
        } else {
            bytes
        };
    }
}

/// The largest buffer a link keeps for the stream's next bytes.
const KEPT_STREAM_BUFFER: usize = 1024 * 1024;

/// Logs a replica dropped at its output limit, with Redis's line.
fn note_dropped(server: &Server, client: u64) {
    let link = server
        .replication
        .replicas()
        .into_iter()
        .find(|r| r.client == client);
    let addr = link.map_or_else(String::new, |l| format!(" addr={}:{}", l.ip, l.port));
    warn!("Client id={client}{addr} flags=S scheduled to be closed ASAP for overcoming of output buffer limits.");
}

/// Reads what the replica sends: REPLCONF ACKs.
async fn read_acks<R: AsyncRead + Unpin>(
    server: &Server,
    mut reader: R,
    client: u64,
    acked: &tokio::sync::Notify,
) {
    let mut input = BytesMut::with_capacity(4096);
    let mut parser = RequestParser::default();
    let limits = Limits::default();
    loop {
        if !matches!(reader.read_buf(&mut input).await, Ok(n) if n > 0) {
            return;
        }
        loop {
            match parser.parse(&mut input, &limits, true) {
                Ok(Some(args)) => {
                    if note_request(server, client, &args) {
                        acked.notify_one();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(
                        client,
                        "replica sent a malformed request ({}); dropping its link",
                        String::from_utf8_lossy(&e.0)
                    );
                    return;
                }
            }
        }
        if input.len() > 1 << 20 {
            warn!(
                client,
                "replica sent an oversized request; dropping its link"
            );
            return;
        }
    }
}

/// A replica sends only REPLCONF ACK <offset> (and PINGs nothing back): the ACK is noted (and
/// WAIT's waiters woken), the rest ignored, as a primary takes no commands from a replica's
/// link here. True for an ACK.
fn note_request(server: &Server, client: u64, args: &[Bytes]) -> bool {
    let is = |i: usize, word: &str| {
        args.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    };
    if is(0, "replconf") && is(1, "ack") {
        let offset = args
            .get(2)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|a| a.parse::<u64>().ok());
        if let Some(offset) = offset {
            server.replication.update(client, |link| {
                link.ack_offset = offset;
                link.last_ack = Instant::now();
            });
            server.replication.acked.notify_waiters();
            return true;
        }
    }
    false
}

/// WAIT's arguments: the replicas wanted, and the timeout (0: none), as Redis checks them
/// (after refusing WAIT on a replica, as Redis does).
pub fn parse_wait(server: &Server, args: &[Bytes]) -> Result<(usize, Option<Duration>), Reply> {
    if server.replication.upstream.target().is_some() {
        return Err(Reply::err("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated."));
    }
    let number = |a: &Bytes| std::str::from_utf8(a).ok()?.parse::<i64>().ok();
    let Some(wanted) = number(&args[1]) else {
        return Err(Reply::err("ERR value is not an integer or out of range"));
    };
    let Some(timeout) = number(&args[2]) else {
        return Err(Reply::err("ERR timeout is not an integer or out of range"));
    };
    if timeout < 0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    let timeout = (timeout > 0).then(|| Duration::from_millis(timeout as u64));
    Ok((wanted.max(0) as usize, timeout))
}

/// How many replicas acknowledged the stream up to `woff`, the client's last write (WAIT
/// without waiting, in a transaction).
pub fn acked_now(server: &Server, woff: u64) -> Reply {
    Reply::Int(acked_up_to(server, woff) as i64)
}

fn acked_up_to(server: &Server, target: u64) -> usize {
    server
        .replication
        .replicas()
        .iter()
        .filter(|r| r.online() && r.ack_offset >= target)
        .count()
}

/// WAIT numreplicas timeout: how many replicas acknowledged the stream up to `woff`, where
/// this client's last write ended in it (Redis's `c->woff`; 0 for a client that wrote
/// nothing: every online replica counts at once), waiting at most `timeout` (None: for ever)
/// for `wanted` of them; replicas are asked for fresh ACKs with `REPLCONF GETACK *`.
pub async fn wait(server: &Server, woff: u64, wanted: usize, timeout: Option<Duration>) -> Reply {
    let replication = &server.replication;
    let acked = || acked_up_to(server, woff);
    if acked() >= wanted {
        return Reply::Int(acked() as i64);
    }
    // (Without a replica the stream stays as it is, as Redis's offset does.)
    if replication.replicas().iter().any(|r| r.online()) {
        replication.feed_command(&[b"REPLCONF", b"GETACK", b"*"]);
    }
    let enough = async {
        loop {
            let notified = replication.acked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if acked() >= wanted {
                return;
            }
            notified.await;
        }
    };
    match timeout {
        Some(t) => {
            let _ = tokio::time::timeout(t, enough).await;
        }
        None => enough.await,
    }
    Reply::Int(acked() as i64)
}

/// A primary's PING into the stream every `repl-ping-replica-period`, whatever the traffic, as
/// Redis's replicationCron sends it: called by worker 0's cron. (Timed instead from each
/// link's last bytes, a PING came one period after every burst of writes, in step with clients
/// that act once a period: in Redis's psync2 test a replica promoted just then had missed the
/// PING the others had, and they could not continue from it.) A replica relays its primary's
/// PINGs: its own would move its offset away from its primary's; nor is one sent while
/// FAILOVER holds writes, whose target must reach the stream's end (as Redis's).
pub fn ping_replicas(server: &Server) {
    let replication = &server.replication;
    if replication.is_replica() || !replication.has_links() || server.pause.held_for_failover() {
        return;
    }
    if replication.ping_due(ping_period(server)) {
        replication.feed_command(&[b"PING"]);
    }
}

fn ping_period(server: &Server) -> Duration {
    let cfg = server.config.read().unwrap_or_else(|p| p.into_inner());
    let secs = cfg
        .get("repl-ping-replica-period")
        .parse::<u64>()
        .unwrap_or(10);
    Duration::from_secs(secs.max(1))
}

/// Takes the replica off the table when its link ends, however it ends; the last one gone,
/// the backlog is freed after its TTL.
struct Unregister<'a> {
    server: &'a Arc<Server>,
    client: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.server.replication.remove(self.client);
        if self.server.replication.alone_for().is_some() {
            tokio::spawn(release_backlog_later(self.server.clone()));
        }
    }
}
