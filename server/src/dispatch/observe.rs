//! The one point where features that watch traffic see a keyed command, after admission and
//! routing, before it is queued: QUANTUM learns partners from single-key reads close together on
//! one connection, WORMHOLE counts multi-key commands by whether one shard serves them (and AUTO
//! pins pairs that keep crossing shards), GRAVITY samples keys for its hot-key sketch (one
//! thread-local countdown per command, see `gravity_state`). Keyspace notifications, client
//! tracking and per-key statistics are to attach here too.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::locked::count_multi_key;
use crate::command_table::{CommandSpec, Flags, Keys};
use crate::server_state::{unix_ms, Server};
use crate::session::ConnState;

/// Where a keyed command's keys live.
pub(super) struct Routed<'a> {
    /// The key positions, when the command may have more than one key.
    pub positions: Option<&'a [usize]>,
    /// The shard that owns every key, when one does.
    pub owner: Option<usize>,
}

/// Shows a routed keyed command to every observer. Inline: for nearly every request every
/// observer declines at its first check (an out-of-line call here cost 35 instructions per
/// SET when the compiler stopped inlining it).
#[inline]
pub(super) fn keyed(
    server: &Server,
    conn: &mut ConnState,
    spec: &CommandSpec,
    args: &[Bytes],
    routed: &Routed,
) {
    if let Some(positions) = routed.positions.filter(|p| p.len() > 1) {
        count_multi_key(server, routed.owner.is_some(), positions, args);
    }
    crate::gravity_state::observe(server, conn.db, args, routed.positions);
    if routed.owner.is_some()
        && server.quantum.limits.learn.load(Ordering::Relaxed)
        && matches!(spec.keys, Keys::Range(1, 1, _))
        && spec.flags.contains(Flags::READONLY)
    {
        server
            .quantum
            .observe(&server.slots, &mut conn.recent_reads, &args[1], unix_ms());
    }
}
