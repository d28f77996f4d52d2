//! LATENCY LATEST | HISTORY | RESET | GRAPH | DOCTOR | HELP: the latency monitor's events
//! (recorded by `crate::command_timing` for commands over `latency-monitor-threshold` milliseconds).

use bytes::Bytes;

use super::util::{help, lower, unknown_subcommand, wrong_arity};
use super::{commands, session, NO_KEYS, TABLE};
use crate::command_timing::histogram;
use crate::protocol::Reply;
use crate::server_state::unix_ms;
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "latency", -2, "", NO_KEYS, "server", "2.8.13", session(latency), "A container for latency diagnostics commands.";
}

pub fn latency(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = lower(&args[1]);
    let timing = &s.server.timing;
    let events = || timing.events.lock().expect("latency lock");
    match (sub.as_str(), args.len()) {
        ("help", 2) => help(
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        ),
        ("latest", 2) => Reply::Array(
            events()
                .iter()
                .filter_map(|(name, e)| {
                    let (time, ms) = *e.samples.back()?;
                    Some(Reply::Array(vec![
                        Reply::bulk_str(name),
                        Reply::Int(time as i64),
                        Reply::Int(ms as i64),
                        Reply::Int(e.max_ms as i64),
                    ]))
                })
                .collect(),
        ),
        ("history", 3) => {
            let name = String::from_utf8_lossy(&args[2]);
            let events = events();
            let samples = events.get(name.as_ref()).map(|e| &e.samples);
            Reply::Array(
                samples
                    .into_iter()
                    .flatten()
                    .map(|(t, ms)| {
                        Reply::Array(vec![Reply::Int(*t as i64), Reply::Int(*ms as i64)])
                    })
                    .collect(),
            )
        }
        ("reset", _) => {
            let mut events = events();
            if args.len() == 2 {
                let n = events.len();
                events.clear();
                return Reply::Int(n as i64);
            }
            let mut n = 0;
            for a in &args[2..] {
                if events.remove(String::from_utf8_lossy(a).as_ref()).is_some() {
                    n += 1;
                }
            }
            Reply::Int(n)
        }
        ("graph", 3) => {
            let name = String::from_utf8_lossy(&args[2]).into_owned();
            let events = events();
            match events.get(name.as_str()).filter(|e| !e.samples.is_empty()) {
                None => Reply::err(format!("ERR No samples available for event '{name}'")),
                Some(e) => Reply::Verbatim(Bytes::from(graph(&name, e))),
            }
        }
        ("doctor", 2) => {
            let enabled = s
                .server
                .config
                .read()
                .expect("config lock")
                .get_i64("latency-monitor-threshold")
                > 0;
            Reply::Verbatim(Bytes::from(doctor(enabled, &events())))
        }
        ("histogram", _) => histograms(s, &args[2..]),
        ("help" | "latest" | "history" | "graph" | "doctor", _) => {
            wrong_arity(&format!("latency|{sub}"))
        }
        _ => unknown_subcommand(&args[1], "LATENCY"),
    }
}

/// LATENCY HISTOGRAM [command ...]: per command that ran, its calls and the cumulative count
/// at each power-of-two bucket bound (in microseconds) where the count grows.
fn histograms(s: &Session, names: &[Bytes]) -> Reply {
    let wanted: Vec<usize> = if names.is_empty() {
        (0..TABLE.len()).collect()
    } else {
        let mut w = Vec::new();
        for name in names {
            let name = lower(name);
            for (i, spec) in TABLE.iter().enumerate() {
                let container = spec.name.split('|').next() == Some(name.as_str());
                if (spec.name == name || container) && !w.contains(&i) {
                    w.push(i);
                }
            }
        }
        w
    };
    let mut out = Vec::new();
    for index in wanted {
        let hist = histogram(s.server, index);
        let calls: u64 = hist.iter().sum();
        if calls == 0 {
            continue;
        }
        let mut cumulative = 0;
        let mut buckets = Vec::new();
        for (k, n) in hist.iter().enumerate() {
            if *n > 0 {
                cumulative += n;
                buckets.push((
                    Reply::Int((1024u64 << k) as i64 / 1000),
                    Reply::Int(cumulative as i64),
                ));
            }
        }
        out.push((
            Reply::bulk_str(TABLE[index].name),
            Reply::Map(vec![
                (Reply::bulk_str("calls"), Reply::Int(calls as i64)),
                (Reply::bulk_str("histogram_usec"), Reply::Map(buckets)),
            ]),
        ));
    }
    Reply::Map(out)
}

/// LATENCY GRAPH: a header, then Redis's four-row sparkline of the samples, each labelled with
/// how long ago it was (written downwards).
fn graph(name: &str, e: &crate::command_timing::Event) -> String {
    let now = unix_ms() / 1000;
    let values: Vec<u64> = e.samples.iter().map(|(_, ms)| *ms).collect();
    let labels: Vec<String> = e
        .samples
        .iter()
        .map(|(t, _)| {
            let ago = now.saturating_sub(*t);
            match ago {
                0..60 => format!("{ago}s"),
                60..3600 => format!("{}m", ago / 60),
                3600..86400 => format!("{}h", ago / 3600),
                _ => format!("{}d", ago / 86400),
            }
        })
        .collect();
    let (min, max) = (
        values.iter().copied().min().unwrap_or(0),
        values.iter().copied().max().unwrap_or(0),
    );
    let mut out = format!(
        "{name} - high {max} ms, low {min} ms (all time high {} ms)\n{}\n",
        e.max_ms,
        "-".repeat(80)
    );
    for start in (0..values.len()).step_by(80) {
        let end = (start + 80).min(values.len());
        sparkline(&mut out, &values[start..end], &labels[start..end], min, max);
    }
    out
}

/// Redis's sparkline with its `fill` style: four rows of `_o#` steps over `|` columns, then
/// the labels written downwards below one blank row.
fn sparkline(out: &mut String, values: &[u64], labels: &[String], min: u64, max: u64) {
    const ROWS: usize = 4;
    const FILL: &[u8] = b"_o#";
    let steps = FILL.len() * ROWS;
    let relmax = (max - min).max(1) as f64;
    let step_of = |v: u64| (((v - min) as f64 * steps as f64 / relmax) as usize).min(steps - 1);
    for row in 0..ROWS {
        let line: String = values
            .iter()
            .map(|&v| {
                let idx = step_of(v) as isize - ((ROWS - row - 1) * FILL.len()) as isize;
                match idx {
                    i if i >= 0 && (i as usize) < FILL.len() => FILL[i as usize] as char,
                    i if i >= FILL.len() as isize => '|',
                    _ => ' ',
                }
            })
            .collect();
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&" ".repeat(values.len()));
    out.push('\n');
    let longest = labels.iter().map(String::len).max().unwrap_or(0);
    for i in 0..longest {
        let line: String = labels
            .iter()
            .map(|l| l.as_bytes().get(i).map_or(' ', |&c| c as char))
            .collect();
        out.push_str(&line);
        out.push('\n');
    }
}

/// LATENCY DOCTOR: Redis's report, with the statistics of each event.
fn doctor(
    enabled: bool,
    events: &std::collections::HashMap<&'static str, crate::command_timing::Event>,
) -> String {
    if !enabled && events.is_empty() {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    if events.values().all(|e| e.samples.is_empty()) {
        return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n".into();
    }
    let mut out = String::from(
        "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
    );
    let mut names: Vec<_> = events.keys().collect();
    names.sort();
    for (n, name) in names.iter().enumerate() {
        let e = &events[*name];
        let count = e.samples.len().max(1) as u64;
        let avg = e.samples.iter().map(|(_, ms)| ms).sum::<u64>() / count;
        let mad = e
            .samples
            .iter()
            .map(|(_, ms)| ms.abs_diff(avg))
            .sum::<u64>()
            / count;
        let period = match (e.samples.front(), e.samples.back()) {
            (Some((first, _)), Some((last, _))) => (last - first) as f64 / count as f64,
            _ => 0.0,
        };
        out.push_str(&format!(
            "{}. {name}: {} latency spikes (average {avg}ms, mean deviation {mad}ms, period {period:.2} sec). Worst all time event {}ms.\n",
            n + 1,
            e.samples.len(),
            e.max_ms
        ));
    }
    out.push_str("\nI have a few advices for you:\n\n");
    out.push_str("- Check your Redis slow log to see which commands took long: SLOWLOG GET. Commands that are O(N) on big values (KEYS, SORT, LRANGE of whole lists, SMEMBERS of big sets, ...) block the core that owns their keys for as long as they run.\n");
    out
}
