//! WAITAOF numlocal numreplicas timeout (Redis 7.2): waits until the writes acknowledged
//! before it are fdatasync'd to the local log, and answers [local acks, replica acks]. There
//! are no replicas: numreplicas > 0 waits out the timeout (0 = for ever), as Redis does when
//! too few replicas answer.

use std::time::Duration;

use bytes::Bytes;
use warpengine_storage::value::parse_strict_i64;

use super::util::NOT_INTEGER;
use crate::protocol::Reply;
use crate::server::Server;

pub struct Plan {
    numlocal: i64,
    numreplicas: i64,
    timeout: Option<Duration>,
}

/// Checks the arguments in Redis's order, with its errors.
pub fn parse(server: &Server, args: &[Bytes]) -> Result<Plan, Reply> {
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
    Ok(Plan {
        numlocal,
        numreplicas,
        timeout: (timeout > 0).then(|| Duration::from_millis(timeout as u64)),
    })
}

/// Runs the wait on worker `me`.
pub async fn run(server: &Server, me: usize, plan: Plan) -> Reply {
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
