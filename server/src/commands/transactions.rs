//! Transactions: MULTI queues a connection's commands, EXEC runs them as one step that no other
//! client sees half done (whichever shards their keys live on), DISCARD drops them; WATCH makes
//! EXEC fail when a watched key changed before it ran. The rows only name the step: running it
//! needs the connection's pipeline (what was queued before EXEC runs first) and the shard locks,
//! so the dispatcher does it (`dispatch::transaction`).

use super::{commands, k, Run, TxStep, NO_KEYS};

commands! {
    pub static COMMANDS;
    "multi", 1, "noscript loading stale fast allow_busy", NO_KEYS, "transactions", "1.2.0", Run::Transaction(TxStep::Multi), "Starts a transaction.";
    "exec", 1, "noscript loading stale skip_slowlog", NO_KEYS, "transactions", "1.2.0", Run::Transaction(TxStep::Exec), "Executes all commands in a transaction.";
    "discard", 1, "noscript loading stale fast allow_busy", NO_KEYS, "transactions", "2.0.0", Run::Transaction(TxStep::Discard), "Discards a transaction.";
    "watch", -2, "noscript loading stale fast allow_busy", k(1, -1, 1), "transactions", "2.2.0", Run::Transaction(TxStep::Watch), "Monitors changes to keys to determine the execution of a transaction.";
    "unwatch", 1, "noscript loading stale fast allow_busy", NO_KEYS, "transactions", "2.2.0", Run::Transaction(TxStep::Unwatch), "Forgets about watched keys of a transaction.";
}
