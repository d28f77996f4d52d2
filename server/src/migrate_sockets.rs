//! MIGRATE's cached connections, as Redis's migrateGetSocket keeps them: one per target
//! `host:port`, reused by the next MIGRATE to the same target (redis-cli --cluster moves a
//! slot's keys in many MIGRATEs), closed once idle for 10 seconds (the once-a-second cron) or
//! when a MIGRATE on it fails; at most 64. INFO's `migrate_cached_sockets` counts them.
//!
//! A connection is taken out of the cache while a MIGRATE uses it, so two MIGRATEs never share
//! one; the second opens its own, which is kept afterwards only if the target has none cached.

use std::collections::HashMap;
use std::io::BufReader;
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_CACHED: usize = 64;
const IDLE: Duration = Duration::from_secs(10);

/// A connection to a MIGRATE target.
pub struct Connection {
    pub stream: BufReader<TcpStream>,
    /// The database it last SELECTed (None: none yet): the next MIGRATE to the same database
    /// sends no SELECT, as Redis's.
    pub db: Option<usize>,
    last_use: Instant,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Connection {
        Connection {
            stream: BufReader::new(stream),
            db: None,
            last_use: Instant::now(),
        }
    }
}

#[derive(Default)]
pub struct MigrateSockets {
    cached: Mutex<HashMap<String, Connection>>,
}

impl MigrateSockets {
    /// The cached connection to `target` (`host:port`), taken out for the caller's use.
    pub fn take(&self, target: &str) -> Option<Connection> {
        self.lock().remove(target)
    }

    /// A connection used without error goes (back) into the cache, unless the target has one
    /// there already or the cache is full.
    pub fn give_back(&self, target: &str, mut conn: Connection) {
        conn.last_use = Instant::now();
        let mut cached = self.lock();
        if cached.len() < MAX_CACHED && !cached.contains_key(target) {
            cached.insert(target.to_string(), conn);
        }
    }

    /// The cron: closes connections idle for 10 seconds.
    pub fn close_idle(&self) {
        self.lock().retain(|_, c| c.last_use.elapsed() < IDLE);
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}
