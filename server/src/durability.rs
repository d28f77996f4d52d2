//! Per-write durability: `SET ... DURABILITY always|everysec|no` overrides `appendfsync` for
//! that write's reply: `always` waits for its record's fdatasync, `everysec` and `no` only for
//! its write (the log is then synced by the everysec timer or by the OS). A read's replies
//! wait for the strongest durability any of its writes to a shard asked for.

use std::time::Duration;

use bytes::Bytes;
use warpengine_storage::value::parse_strict_i64;

use crate::persist::{Durable, Fsync};
use crate::protocol::reply::NOT_INTEGER;
use crate::protocol::Reply;
use crate::server_state::Server;

pub fn parse(word: &[u8]) -> Option<Fsync> {
    ["always", "everysec", "no"]
        .iter()
        .find(|w| word.eq_ignore_ascii_case(w.as_bytes()))
        .map(|w| Fsync::parse(w))
}

/// The DURABILITY a SET asks for, scanning its options as SET's parser does.
pub fn requested(args: &[Bytes]) -> Option<Fsync> {
    let mut j = 3;
    while j + 1 < args.len() {
        let opt = &args[j];
        if opt.eq_ignore_ascii_case(b"durability") {
            return parse(&args[j + 1]);
        }
        let takes_value = ["ex", "px", "exat", "pxat"]
            .iter()
            .any(|o| opt.eq_ignore_ascii_case(o.as_bytes()));
        j += if takes_value { 2 } else { 1 };
    }
    None
}

/// What a write's reply waits for: its own DURABILITY, or appendfsync's.
pub fn of_write(default: Fsync, asked: Option<Fsync>) -> Durable {
    asked.unwrap_or(default).durable()
}

/// The refusal for a DURABILITY the server cannot honour (no log to make the write durable).
pub fn refusal(asked: Fsync, log_on: bool) -> Option<&'static str> {
    (asked != Fsync::No && !log_on)
        .then_some("ERR DURABILITY always|everysec needs the write-ahead log (appendonly yes)")
}

// --- WAITAOF numlocal numreplicas timeout (Redis 7.2): waits until the writes acknowledged
// before it are fdatasync'd to the local log, and answers [local acks, replica acks]. There
// are no replicas: numreplicas > 0 waits out the timeout (0 = for ever), as Redis does when
// too few replicas answer.

/// A checked WAITAOF request.
pub struct WaitAof {
    numlocal: i64,
    numreplicas: i64,
    timeout: Option<Duration>,
}

/// Checks the arguments in Redis's order, with its errors.
pub fn parse_waitaof(server: &Server, args: &[Bytes]) -> Result<WaitAof, Reply> {
    let int = |a: &[u8]| parse_strict_i64(a).ok_or_else(|| Reply::err(NOT_INTEGER));
    let numlocal = int(&args[1])?;
    if !(0..=1).contains(&numlocal) {
        return Err(Reply::err(
            "ERR value is out of range, value must between 0 and 1",
        ));
    }
    let numreplicas = int(&args[2])?;
    if numreplicas < 0 {
        return Err(Reply::err("ERR value is out of range, must be positive"));
    }
    let timeout = parse_strict_i64(&args[3])
        .ok_or_else(|| Reply::err("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    if numlocal > 0 && !server.wal.is_on() {
        return Err(Reply::err(
            "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.",
        ));
    }
    Ok(WaitAof {
        numlocal,
        numreplicas,
        timeout: (timeout > 0).then(|| Duration::from_millis(timeout as u64)),
    })
}

/// Runs the wait on worker `me`.
pub async fn waitaof(server: &Server, me: usize, plan: WaitAof) -> Reply {
    let answer = |local: bool| Reply::Array(vec![Reply::Int(local as i64), Reply::Int(0)]);
    let on = server.wal.is_on();
    if plan.numlocal == 0 && plan.numreplicas == 0 {
        return answer(on && server.wal.all_synced());
    }
    let wait = async {
        let synced = if on {
            server.wal.sync_all(me).await.is_ok()
        } else {
            false
        };
        if plan.numreplicas > 0 {
            // No replica will ever answer: only the timeout ends this.
            std::future::pending::<()>().await;
        }
        synced
    };
    match plan.timeout {
        None => answer(wait.await),
        Some(t) => match tokio::time::timeout(t, wait).await {
            Ok(local) => answer(local),
            Err(_) => answer(on && server.wal.all_synced()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn finds_the_option_after_others() {
        assert_eq!(
            requested(&argv(&[
                "SET",
                "k",
                "v",
                "EX",
                "10",
                "DURABILITY",
                "always"
            ])),
            Some(Fsync::Always)
        );
        assert_eq!(
            requested(&argv(&["SET", "k", "v", "GET", "durability", "NO"])),
            Some(Fsync::No)
        );
        // A key or value that reads "durability" is not the option.
        assert_eq!(requested(&argv(&["SET", "durability", "always"])), None);
        assert_eq!(
            requested(&argv(&["SET", "k", "v", "EX", "durability", "always"])),
            None
        );
        assert_eq!(
            requested(&argv(&["SET", "k", "v", "DURABILITY", "sometimes"])),
            None
        );
    }
}
