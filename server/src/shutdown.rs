//! Stopping the server as Redis 7.0 does, for SHUTDOWN and for SIGTERM/SIGINT alike.
//!
//! A shutdown first lets lagging replicas catch up ([`request`]): unless NOW, with
//! `shutdown-timeout` above 0 and a replica whose acknowledged offset is behind the stream,
//! writes are held (as by CLIENT PAUSE WRITE), the replicas are asked for an ACK, and the
//! workers' cron ([`poll`]) finishes once every replica is in sync or the timeout has passed;
//! meanwhile INFO shows `shutdown_in_milliseconds` and SHUTDOWN ABORT ([`abort`]) cancels it.
//! A replica that saves waits the same way (a tick at least) for the end of the chunk of its
//! primary's stream it is applying, having stopped the link from starting another: its file
//! then records the offset its data is at, and a restart from it continues with a partial
//! resync.
//! Finishing ([`finish`]) logs the replicas that still lag, takes the final snapshot when asked
//! (SAVE, or `save` rules configured and no NOSAVE), refuses to stop when that fails unless
//! FORCE (the writes are let go then), and otherwise stops accepting connections and lets
//! `main` flush and fdatasync the log and exit 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::persist::snapshot;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::server_state::{unix_ms, Server};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Save {
    /// Save when `save` rules are configured.
    #[default]
    Default,
    Save,
    NoSave,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub save: Save,
    /// Stop even if the final snapshot fails.
    pub force: bool,
    /// Do not wait for lagging replicas.
    pub now: bool,
}

impl Options {
    /// What `shutdown-on-sigterm` / `shutdown-on-sigint` ask for: flags among save, nosave,
    /// now and force, or `default`.
    pub fn for_signal(setting: &str) -> Options {
        let has = |flag: &str| setting.split_whitespace().any(|w| w == flag);
        Options {
            save: if has("save") {
                Save::Save
            } else if has("nosave") {
                Save::NoSave
            } else {
                Save::Default
            },
            force: has("force"),
            now: has("now"),
        }
    }
}

const SYNTAX: &str = "ERR syntax error";

/// The error SHUTDOWN answers when the server keeps running (a failed final snapshot, or an
/// aborted wait), as Redis's.
pub const FAILED: &str = "ERR Errors trying to SHUTDOWN. Check logs.";

/// How a shutdown ended: Ok, the server stops; Err, it keeps running (why, for the log).
pub type Outcome = Result<(), String>;

/// A shutdown waiting for lagging replicas: at most one at a time.
#[derive(Default)]
pub struct Pending {
    /// Whether one is waiting (the cron's check is this load while none is).
    waiting: AtomicBool,
    state: Mutex<Option<Waiting>>,
}

struct Waiting {
    /// When it stops waiting (Unix ms).
    deadline_ms: u64,
    options: Options,
    /// The SHUTDOWN commands and signals waiting for the outcome.
    waiters: Vec<oneshot::Sender<Outcome>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Waiting>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What [`request`] did.
pub enum Requested {
    /// Finished at once.
    Done(Outcome),
    /// Waiting for lagging replicas: the outcome comes when the wait ends.
    Waiting(oneshot::Receiver<Outcome>),
}

/// Starts a shutdown with `options`: finished now, or waiting for lagging replicas (see the
/// module's docs). A shutdown asked for while one waits waits for the same outcome (its own
/// options are not used, as in Redis). Finishing takes the final snapshot: call it off the
/// async workers' critical path when that matters (it blocks).
pub fn request(server: &Server, options: Options) -> Requested {
    let mut pending = server.shutdown_wait.lock();
    if let Some(waiting) = pending.as_mut() {
        let (tx, rx) = oneshot::channel();
        waiting.waiters.push(tx);
        return Requested::Waiting(rx);
    }
    tracing::warn!("User requested shutdown...");
    let timeout_secs = server
        .config
        .read()
        .expect("config lock")
        .get_i64("shutdown-timeout")
        .max(0) as u64;
    let lagging = !replicas_in_sync(server);
    // A replica that saves stops applying its primary's stream and waits (one tick at least,
    // so that the hold is settled) for the end of the chunk being applied: the file then
    // records the offset its data is at, and a restart continues from there.
    let replica_saves = saves(server, options) && server.replication.upstream.link_up();
    if replica_saves {
        server.replication.upstream.hold_applying(true);
    }
    if !options.now && timeout_secs > 0 && (lagging || replica_saves) {
        let (tx, rx) = oneshot::channel();
        *pending = Some(Waiting {
            deadline_ms: unix_ms() + timeout_secs * 1000,
            options,
            waiters: vec![tx],
        });
        server.shutdown_wait.waiting.store(true, Ordering::Release);
        drop(pending);
        if !lagging {
            return Requested::Waiting(rx);
        }
        if !server.pause.in_force() {
            // (Sent before writes are held: the ACKs then report the stream's end.)
            server
                .replication
                .feed_command(&[b"REPLCONF", b"GETACK", b"*"]);
        }
        server.pause.hold_writes_for_shutdown(true);
        tracing::info!("Waiting for replicas before shutting down.");
        return Requested::Waiting(rx);
    }
    drop(pending);
    let outcome = finish(server, options);
    if outcome.is_err() {
        server.replication.upstream.hold_applying(false);
    }
    Requested::Done(outcome)
}

/// The cron's check (once a tick, on one worker): a waiting shutdown finishes once every
/// replica is in sync or its timeout has passed.
pub fn poll(server: &Server) {
    if !server.shutdown_wait.waiting.load(Ordering::Acquire) {
        return;
    }
    let mut pending = server.shutdown_wait.lock();
    let due = pending.as_ref().is_some_and(|w| {
        unix_ms() >= w.deadline_ms
            || (replicas_in_sync(server) && !server.replication.upstream.mid_chunk())
    });
    if !due {
        return;
    }
    let waiting = pending.take().expect("checked above");
    server.shutdown_wait.waiting.store(false, Ordering::Release);
    drop(pending);
    let outcome = finish(server, waiting.options);
    if outcome.is_err() {
        server.pause.hold_writes_for_shutdown(false);
        server.replication.upstream.hold_applying(false);
    }
    for waiter in waiting.waiters {
        let _ = waiter.send(outcome.clone());
    }
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stops the server, after lagging replicas
/// caught up unless NOW (see the module's docs); the client waits meanwhile (counted in
/// blocked_clients). ABORT cancels a waiting shutdown.
pub async fn run_command(
    server: &crate::server_state::Server,
    conn: &mut crate::session::ConnState,
    args: &[bytes::Bytes],
) -> Reply {
    let mut options = Options::default();
    let (mut aborting, mut others) = (false, false);
    for opt in &args[1..] {
        match opt.to_ascii_lowercase().as_slice() {
            b"nosave" | b"save" if options.save != Save::Default => return Reply::err(SYNTAX),
            b"nosave" => options.save = Save::NoSave,
            b"save" => options.save = Save::Save,
            b"now" => options.now = true,
            b"force" => options.force = true,
            b"abort" => aborting = true,
            _ => return Reply::err(SYNTAX),
        }
        others |= !opt.eq_ignore_ascii_case(b"abort");
    }
    if aborting {
        return if others {
            Reply::err(SYNTAX)
        } else if abort(server) {
            OK
        } else {
            Reply::err("ERR No shutdown in progress.")
        };
    }
    let busy = &server.scripts.busy;
    if busy.any() {
        // A script past busy-reply-threshold holds shards a save would need: only SHUTDOWN
        // NOSAVE, which stops the script first, as Redis.
        if options.save != Save::NoSave {
            return busy.refusal();
        }
        busy.stop_all();
    }
    let outcome = match request(server, options) {
        Requested::Done(outcome) => outcome,
        Requested::Waiting(outcome) => {
            let blocked = &server.blocking.blocked_clients;
            blocked.fetch_add(1, Ordering::Relaxed);
            let outcome = outcome.await;
            blocked.fetch_sub(1, Ordering::Relaxed);
            outcome.unwrap_or_else(|_| Err("the shutdown was dropped".to_string()))
        }
    };
    if outcome.is_err() {
        return Reply::err(FAILED);
    }
    conn.close_after_reply = true;
    // Like Redis, a successful SHUTDOWN closes the connection without a reply.
    Reply::Raw(bytes::Bytes::new())
}

/// SHUTDOWN ABORT: cancels a waiting shutdown (its SHUTDOWN commands answer an error, writes
/// go on). False when none waits.
pub fn abort(server: &Server) -> bool {
    let Some(waiting) = server.shutdown_wait.lock().take() else {
        return false;
    };
    server.shutdown_wait.waiting.store(false, Ordering::Release);
    tracing::info!("Shutdown manually aborted.");
    server.pause.hold_writes_for_shutdown(false);
    server.replication.upstream.hold_applying(false);
    for waiter in waiting.waiters {
        let _ = waiter.send(Err("aborted".to_string()));
    }
    true
}

/// INFO's `shutdown_in_milliseconds`: how long a waiting shutdown still waits at most.
pub fn remaining_ms(server: &Server) -> Option<u64> {
    if !server.shutdown_wait.waiting.load(Ordering::Acquire) {
        return None;
    }
    let pending = server.shutdown_wait.lock();
    pending
        .as_ref()
        .map(|w| w.deadline_ms.saturating_sub(unix_ms()))
}

/// Whether every replica has acknowledged the whole stream (Redis's isReadyToShutdown).
fn replicas_in_sync(server: &Server) -> bool {
    let end = server.replication.history().offset();
    server
        .replication
        .replicas()
        .iter()
        .all(|r| r.ack_offset == end)
}

/// Whether the shutdown takes a final snapshot: as `options` say, else when save rules are set;
/// never over the file half-loaded data comes from (as Redis).
fn saves(server: &Server, options: Options) -> bool {
    let save = match options.save {
        Save::Save => true,
        Save::NoSave => false,
        Save::Default => !server
            .config
            .read()
            .expect("config lock")
            .get("save")
            .is_empty(),
    };
    save && !server.loading.active()
}

/// Logs the replicas still lagging, takes the final snapshot if `options` ask for one, then
/// marks the server as stopping. Err: the snapshot failed and FORCE was not given; the server
/// keeps running.
pub fn finish(server: &Server, options: Options) -> Outcome {
    let replicas = server.replication.replicas();
    if !replicas.is_empty() {
        let end = server.replication.history().offset();
        let mut lagging = 0;
        for r in replicas.iter().filter(|r| r.ack_offset != end) {
            lagging += 1;
            let lag = match r.state {
                crate::replication::LinkState::Online => r.last_ack.elapsed().as_secs(),
                _ => 0,
            };
            tracing::warn!(
                "Lagging replica {}:{} reported offset {} behind master, lag={lag}, state={}.",
                r.ip,
                r.port,
                end.saturating_sub(r.ack_offset),
                r.state.name()
            );
        }
        tracing::info!(
            "{} of {} replicas are in sync when shutting down.",
            replicas.len() - lagging,
            replicas.len()
        );
    }
    if saves(server, options) {
        // Redis's wording, here and in `snapshot::save`: test harnesses wait for these lines.
        tracing::info!("Saving the final RDB snapshot before exiting.");
        if let Err(e) = snapshot::save(server) {
            tracing::error!("Error trying to save the DB, can't exit. ({e})");
            if !options.force {
                tracing::warn!(
                    "Errors trying to shut down the server. Check the logs for more information."
                );
                return Err(e.to_string());
            }
        }
    }
    server.request_shutdown();
    Ok(())
}
