//! The primary's side of a replica's link, full resync only: PSYNC answers `+FULLRESYNC
//! <replid> <offset>` (SYNC, the pre-PSYNC form, answers nothing before it), then the RDB as
//! a `$<len>` bulk without its trailing CRLF, as Redis sends a disk-based RDB. After it the
//! link stays open and carries only PINGs, every `repl-ping-replica-period` seconds, while the
//! replica's `REPLCONF ACK`s are read; `REPLCONF rdb-only 1` (redis-cli --rdb) ends the link
//! after the RDB, as Redis does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, warn};

use super::{Handshake, ReplicaLink};
use crate::protocol::parse::{Limits, RequestParser};
use crate::server_state::Server;

/// The replication stream's keep-alive, as Redis writes it to its replicas.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// The full resync's bytes: the `+FULLRESYNC` line for PSYNC, then the RDB bulk (of the
/// function libraries alone with `functions_only`). Err: the
/// RDB could not be written (the caller answers an error and drops the link).
pub fn full_resync(server: &Server, psync: bool, functions_only: bool) -> std::io::Result<Vec<u8>> {
    let (rdb, saved) = crate::persist::rdb_file::to_bytes(server, !functions_only)?;
    let mut out = Vec::with_capacity(rdb.len() + 96);
    if psync {
        let history = server.replication.history();
        let (replid, offset) = (history.replid(), history.offset());
        out.extend_from_slice(format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("${}\r\n", rdb.len()).as_bytes());
    out.extend_from_slice(&rdb);
    info!(
        keys = saved.keys,
        bytes = rdb.len(),
        "full resync: RDB sent to a replica"
    );
    Ok(out)
}

/// Registers the connection as a replica, waiting for its RDB (its SYNC or PSYNC was just
/// accepted); `hold_link` then runs the link and unregisters it.
pub fn register(server: &Server, client: u64, handshake: &Handshake, peer: std::net::IpAddr) {
    server.replication.add(ReplicaLink {
        client,
        ip: super::announced_ip(handshake, peer),
        port: handshake.listening_port,
        ack_offset: 0,
        last_ack: Instant::now(),
        online: false,
    });
}

/// Runs a replica's link once its RDB is written: PINGs out, ACKs in, until the replica goes
/// away (or is killed), or at once for an rdb-only replica.
pub async fn hold_link<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Arc<Server>,
    stream: &mut S,
    client: u64,
    rdb_only: bool,
) {
    let _unregister = Unregister { server, client };
    if rdb_only {
        let _ = stream.shutdown().await;
        return;
    }
    server.replication.update(client, |link| {
        link.online = true;
        link.last_ack = Instant::now();
    });
    let mut input = BytesMut::with_capacity(4096);
    let mut parser = RequestParser::default();
    let limits = Limits::default();
    loop {
        let period = ping_period(server);
        tokio::select! {
            _ = tokio::time::sleep(period) => {
                // (flush: a TLS stream may hold the record; a TCP stream's is a no-op.)
                if stream.write_all(PING).await.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
            read = stream.read_buf(&mut input) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
                loop {
                    match parser.parse(&mut input, &limits, true) {
                        Ok(Some(args)) => note_request(server, client, &args),
                        Ok(None) => break,
                        Err(e) => {
                            warn!(client, "replica sent a malformed request ({}); dropping its link", String::from_utf8_lossy(&e.0));
                            return;
                        }
                    }
                }
                if input.len() > 1 << 20 {
                    warn!(client, "replica sent an oversized request; dropping its link");
                    return;
                }
            }
        }
    }
    debug!(client, "replica link closed");
}

/// A replica sends only REPLCONF ACK <offset> (and PINGs nothing back): the ACK is noted, the
/// rest ignored, as a primary takes no commands from a replica's link here.
fn note_request(server: &Server, client: u64, args: &[Bytes]) {
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
        }
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

/// Takes the replica off the table when its link ends, however it ends.
struct Unregister<'a> {
    server: &'a Server,
    client: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.server.replication.remove(self.client);
    }
}
