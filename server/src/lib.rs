//! WarpEngine: a Redis-compatible, thread-per-core, shared-nothing cache server.

pub mod blocked_clients;
pub mod client_pause;
pub mod clients;
pub mod command_table;
pub mod commands;
pub mod config_store;
pub mod connection_loop;
pub mod dispatch;
pub mod durability;
pub mod eviction;
pub mod fabric;
pub mod keyctx;
pub mod keyspace_events;
pub mod memory_accounting;
pub mod monitor;
pub mod persist;
pub mod protocol;
pub mod pubsub;
pub mod quantum_state;
pub mod server_state;
pub mod session;
pub mod slot;
pub mod temporal_settings;
pub mod transaction_state;
pub mod worker;
pub mod wormhole_state;
