//! Keyspace notifications: the events commands and the database raise (`notify-keyspace-events`,
//! see `warpengine_storage::notify`) published on `__keyspace@<db>__:<key>` (the event as the
//! message) and `__keyevent@<db>__:<event>` (the key as the message), in that order, as Redis
//! publishes them. The same hook after each command hands client tracking (`tracking.rs`) the
//! keys expiry and eviction removed, and lets it send its BCAST invalidations.

use bytes::Bytes;
use warpengine_storage::notify;

use crate::server_state::Server;

/// Turns on the classes `notify-keyspace-events` names (at start-up once the data is
/// recovered, so that replay raises nothing; then at each CONFIG SET).
pub fn apply(cfg: &crate::config_store::ConfigStore) {
    let flags = notify::parse_flags(cfg.get("notify-keyspace-events")).unwrap_or(0);
    notify::set_enabled(flags);
}

/// After a command, an expiry round or an eviction: publishes the events raised on this thread,
/// tells tracking clients of expired and evicted keys, and sends BCAST tracking clients the
/// keys the command changed. While notifications and tracking are both off this is one relaxed
/// load.
#[inline]
pub fn publish_raised(server: &Server) {
    if notify::active() {
        publish_pending(server);
    }
}

#[inline(never)]
fn publish_pending(server: &Server) {
    if notify::pending() {
        publish_events(server);
    }
    if server.tracking.active() {
        server.tracking.flush_bcast(server);
    }
}

fn publish_events(server: &Server) {
    let channels = notify::channels();
    for ev in notify::take() {
        if ev.removal && server.tracking.active() {
            server.tracking.key_changed(server, ev.key.as_bytes(), 0);
        }
        if !ev.publish {
            continue;
        }
        let key = Bytes::copy_from_slice(ev.key.as_bytes());
        if channels & notify::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{}__:", ev.db).into_bytes();
            channel.extend_from_slice(&key);
            server.pubsub.publish(
                false,
                &Bytes::from(channel),
                &Bytes::from_static(ev.event.as_bytes()),
                server.client_memory(),
            );
        }
        if channels & notify::KEYEVENT != 0 {
            let channel = format!("__keyevent@{}__:{}", ev.db, ev.event);
            server
                .pubsub
                .publish(false, &Bytes::from(channel), &key, server.client_memory());
        }
    }
}
