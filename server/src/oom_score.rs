//! `oom-score-adj`: how willingly the kernel's OOM killer picks this process
//! (`/proc/self/oom_score_adj`), set from `oom-score-adj-values` by the server's role, as
//! Redis's setOOMScoreAdj sets it. A primary takes the first value, a replica the second (the
//! third is for Redis's forked save child; WarpEngine saves on a thread, so it has none).
//! `yes`/`relative` add the value to the score the process had before the server first
//! changed it, `absolute` sets it as it is, and `no` puts that first score back.

use std::sync::Mutex;

use crate::config_store::ConfigStore;

const PATH: &str = "/proc/self/oom_score_adj";

/// The score before the server first changed it; None while the server has not changed it.
static BASE: Mutex<Option<i64>> = Mutex::new(None);

/// Sets the process's score as `cfg` says for a server of this role. Err (after a log line,
/// as Redis's "Unable to write oom_score_adj") when the file cannot be read or written.
pub fn apply(cfg: &ConfigStore, replica: bool) -> Result<(), String> {
    let mode = cfg.get("oom-score-adj");
    let mut base = BASE.lock().unwrap_or_else(|p| p.into_inner());
    let score = if mode != "no" {
        let first = match *base {
            Some(first) => first,
            None => {
                let first = read().inspect_err(|e| {
                    tracing::warn!("Unable to read oom_score_adj: {e}");
                })?;
                *base = Some(first);
                first
            }
        };
        let values: Vec<i64> = cfg
            .get("oom-score-adj-values")
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let value = values.get(usize::from(replica)).copied().unwrap_or(0);
        let score = if mode == "absolute" {
            value
        } else {
            value + first
        };
        score.clamp(-1000, 1000)
    } else if let Some(first) = base.take() {
        first
    } else {
        return Ok(());
    };
    std::fs::write(PATH, format!("{score}\n")).map_err(|e| {
        tracing::warn!("Unable to write oom_score_adj: {e}");
        e.to_string()
    })
}

fn read() -> Result<i64, String> {
    let text = std::fs::read_to_string(PATH).map_err(|e| e.to_string())?;
    text.trim()
        .parse()
        .map_err(|_| format!("unreadable {PATH}"))
}
