//! WarpEngine: a Redis-compatible, thread-per-core, shared-nothing cache server.

pub mod blocking;
pub mod clients;
pub mod command_table;
pub mod commands;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod durability;
pub mod eviction;
pub mod fabric;
pub mod keyctx;
pub mod memory;
pub mod persist;
pub mod protocol;
pub mod quantum;
pub mod server;
pub mod session;
pub mod slot;
pub mod temporal_settings;
pub mod worker;
pub mod wormhole;
