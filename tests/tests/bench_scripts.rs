//! Benchmark scripts must run: each is smoke-run here on a tiny input, so that a broken one
//! cannot land (issue 14: `bench/memory.py` had stopped at a SyntaxError while BENCHMARKS.md
//! quoted it). The figures of such runs mean nothing; that the scripts finish does. Most measure
//! the release build, which scripts/test.sh builds; without it they are skipped unless
//! WARP_REQUIRE_GUARD=1.

use std::process::Command;

use warpengine_tests::warpengine_binary;

#[test]
fn icount_counts_instructions_per_request() {
    icount_runs("get");
}

#[test]
fn icount_counts_instructions_per_script_call() {
    icount_runs("evalsha");
}

fn icount_runs(test: &str) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("bash")
        .arg(format!("{root}/bench/icount.sh"))
        .arg(warpengine_binary())
        .args([test, "300"])
        .output()
        .expect("run bench/icount.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "icount.sh failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let per_request: u64 = text
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"));
    assert!(per_request > 0, "{text}");
}

#[test]
fn icount_cmd_counts_instructions_of_a_command_on_loaded_data() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("bash")
        .arg(format!("{root}/bench/icount_cmd.sh"))
        .arg(warpengine_binary())
        .args([
            "-n 200 -r 100 ZADD z __rand_int__.5 m:__rand_int__",
            "ZSCORE z m:1",
            "200",
        ])
        .output()
        .expect("run bench/icount_cmd.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "icount_cmd.sh failed: {text}");
    let per_request: u64 = text
        .split(": ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"));
    assert!(per_request > 0, "{text}");
}

/// The release binary the instruction-count guard measures (scripts/test.sh builds it first).
fn release_binary() -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("release")
        .join("warpengine");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("WARP_REQUIRE_GUARD").as_deref() != Ok("1"),
        "no release binary at {}: the instruction-count guard needs it",
        path.display()
    );
    eprintln!(
        "instruction-count guard skipped: no release binary (cargo build --release -p warpengine; \
         scripts/test.sh builds it and requires the guard)"
    );
    None
}

fn guard(binary: &std::path::Path, record: Option<&std::path::Path>) -> (bool, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{root}/bench/icount_guard.sh")).arg(binary);
    if let Some(record) = record {
        cmd.env("ICOUNT_RECORD", record);
    }
    let out = cmd.output().expect("run bench/icount_guard.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Issue 14's guard: no hot command may cost more than 10% over the instructions per request
/// recorded in bench/icount_baseline.txt (updating the record is a commit that says why).
#[test]
fn hot_commands_cost_no_more_than_their_recorded_instructions() {
    let Some(binary) = release_binary() else {
        return;
    };
    let (ok, text) = guard(&binary, None);
    eprintln!("{text}");
    assert!(ok, "the request path grew:\n{text}");
    // The guard can fail: against a record 20% lower than today's figures it must.
    let record = std::env::temp_dir().join(format!("icount-record-{}.txt", std::process::id()));
    let lowered: String = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bench/icount_baseline.txt"
    ))
    .expect("the record")
    .lines()
    .filter(|l| !l.starts_with('#'))
    .map(|l| {
        let (name, n) = l.split_once(' ').expect("name count");
        format!(
            "{name} {}\n",
            n.trim().parse::<u64>().expect("count") * 8 / 10
        )
    })
    .collect();
    std::fs::write(&record, lowered).expect("write record");
    let (ok, text) = guard(&binary, Some(&record));
    let _ = std::fs::remove_file(&record);
    assert!(!ok, "the guard passed against a lowered record:\n{text}");
    assert!(text.contains("OVER"), "{text}");
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Runs a command from the repository root; its output, or a panic with it if it failed.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(program)
        .current_dir(ROOT)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

/// Runs a Python benchmark with tiny inputs; it must finish and print figures.
fn python_bench(args: &[&str]) {
    if release_binary().is_none() {
        return;
    }
    let text = run("python3", args, &[]);
    let figures = text
        .lines()
        .filter(|l| l.chars().any(|c| c.is_ascii_digit()))
        .count();
    assert!(figures >= 2, "no figures from {args:?}:\n{text}");
}

#[test]
fn every_script_compiles() {
    for entry in std::fs::read_dir(format!("{ROOT}/bench")).expect("bench/") {
        let path = entry.expect("entry").path();
        let path_text = path.to_string_lossy().into_owned();
        match path.extension().and_then(|e| e.to_str()) {
            Some("py") => {
                run("python3", &["-m", "py_compile", &path_text], &[]);
            }
            Some("sh") => {
                run("bash", &["-n", &path_text], &[]);
            }
            _ => {}
        }
    }
    run("bash", &["-n", "scripts/fuzz.sh"], &[]);
    run("bash", &["-n", "scripts/fuzz_smoke.sh"], &[]);
    run("bash", &["-n", "scripts/cluster-local.sh"], &[]);
    for suite in ["redis_suite", "redis_rs_suite", "redis_py_suite"] {
        run("bash", &["-n", &format!("scripts/{suite}.sh")], &[]);
    }
}

#[test]
fn memory_py_runs() {
    python_bench(&[
        "bench/memory.py",
        "--keys",
        "2000",
        "--shape",
        "strings,hash10,stream3",
    ]);
    python_bench(&[
        "bench/memory.py",
        "--accounting",
        "--keys",
        "2000",
        "--shape",
        "strings",
        "--sizes",
        "2000,4000",
    ]);
}

#[test]
fn compare_py_runs() {
    python_bench(&[
        "bench/compare.py",
        "--quick",
        "--rounds",
        "1",
        "--tests",
        "get",
        "--configs",
        "0",
    ]);
}

#[test]
fn durability_py_runs() {
    for what in ["recovery", "snapshot"] {
        python_bench(&[
            "bench/durability.py",
            what,
            "--keys",
            "2000",
            "--requests",
            "2000",
            "--rounds",
            "1",
        ]);
    }
}

#[test]
fn evict_throughput_py_runs() {
    python_bench(&[
        "bench/evict_throughput.py",
        "--keys",
        "100000",
        "--rounds",
        "1",
    ]);
}

#[test]
fn hitratio_py_runs() {
    let png = std::env::temp_dir().join(format!("hitratio-smoke-{}.png", std::process::id()));
    let png_text = png.to_string_lossy().into_owned();
    let small = ["--keys", "2000", "--requests", "6000", "--shares", "0.1"];
    let run_hitratio = |more: &[&str]| {
        let args: Vec<&str> = ["bench/hitratio.py"]
            .iter()
            .chain(&small)
            .chain(more)
            .copied()
            .collect();
        python_bench(&args);
    };
    run_hitratio(&["--png", &png_text]);
    let _ = std::fs::remove_file(&png);
    // Issue 22's workload matrix, on realistic values (HORIZON's compressed tier at work).
    run_hitratio(&[
        "--workloads",
        "matrix",
        "--values",
        "docs",
        "--only",
        "horizon",
    ]);
    python_bench(&[
        "bench/compress.py",
        "--keys",
        "3000",
        "--requests",
        "9000",
        "--get-rounds",
        "1",
    ]);
    python_bench(&[
        "bench/horizon_sim.py",
        "--keys",
        "2000",
        "--requests",
        "6000",
        "--sizes",
        "100,300",
        "--workloads",
        "shifting,one-hit 25%",
    ]);
    python_bench(&[
        "bench/hitratio_bound.py",
        "--keys",
        "20000",
        "--requests",
        "60000",
        "--shares",
        "0.1",
    ]);
}

#[test]
fn temporal_py_runs() {
    python_bench(&["bench/temporal.py", "--updates", "2000", "--runs", "1"]);
}

/// Whether the load tool the physics, transactions and pubsub scripts drive is built (it must
/// be when scripts/test.sh runs the suite).
fn physics_load_built() -> bool {
    let load = format!("{ROOT}/target/release/physics-load");
    let built = std::path::Path::new(&load).exists();
    assert!(
        built || std::env::var("WARP_REQUIRE_GUARD").as_deref() != Ok("1"),
        "no {load}: scripts/test.sh builds it"
    );
    built
}

#[test]
fn physics_py_runs() {
    if !physics_load_built() {
        return;
    }
    for family in ["quantum", "wormhole", "durability"] {
        python_bench(&[
            "bench/physics.py",
            family,
            "--rounds",
            "1",
            "--seconds",
            "1",
            "--clients",
            "2",
        ]);
    }
}

#[test]
fn transactions_py_runs() {
    if !physics_load_built() {
        return;
    }
    python_bench(&[
        "bench/transactions.py",
        "--rounds",
        "1",
        "--seconds",
        "1",
        "--clients",
        "2",
    ]);
}

#[test]
fn moveslot_pause_py_runs() {
    python_bench(&["bench/moveslot_pause.py", "--keys", "5000", "--moves", "3"]);
}

#[test]
fn deep_pipeline_py_runs() {
    python_bench(&[
        "bench/deep_pipeline.py",
        "--requests",
        "20000",
        "--rounds",
        "1",
    ]);
}

#[test]
fn fsync_prealloc_py_runs() {
    python_bench(&["bench/fsync_prealloc.py", "--syncs", "20"]);
}

#[test]
fn pubsub_py_runs() {
    if !physics_load_built() {
        return;
    }
    python_bench(&[
        "bench/pubsub.py",
        "--rounds",
        "1",
        "--seconds",
        "1",
        "--subscribers",
        "5",
    ]);
}

#[test]
fn stream_pel_memory_sh_runs() {
    let server = warpengine_tests::start_warpengine(&[]);
    let port = server.port.to_string();
    let text = run(
        "bash",
        &["bench/stream_pel_memory.sh", &port],
        &[("N", "2000")],
    );
    assert!(text.contains("bytes per pending entry"), "{text}");
}

#[test]
fn keyspace_events_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/keyspace_events.sh", &binary, "1"],
        &[("N", "20000")],
    );
    assert!(
        text.contains("warp | set") && text.contains("CPU s/M"),
        "{text}"
    );
}

#[test]
fn ab_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/ab.sh", &binary, &binary, "1"],
        &[("N", "20000")],
    );
    assert!(text.contains("ops/s"), "{text}");
    // With a redis-server replica of each server.
    let text = run(
        "bash",
        &["bench/ab.sh", &binary, &binary, "1"],
        &[("N", "20000"), ("REPLICA", "1"), ("TESTS", "set")],
    );
    assert!(text.contains("ops/s"), "{text}");
}

#[test]
fn replica_reads_py_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    python_bench(&[
        "bench/replica_reads.py",
        "--binary",
        &binary,
        "--rounds",
        "1",
        "--writes",
        "20",
    ]);
}

#[test]
fn gravity_cost_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/gravity_cost.sh", &binary, "1"],
        &[("N", "20000"), ("R", "1000")],
    );
    assert!(
        text.contains("median gravity-sketch yes | get")
            && text.contains("median gravity-sketch no | get")
            && text.contains("on/off | ops/s"),
        "{text}"
    );
}

/// bench/skew.sh with the variants that need no command beyond main's (Redis, plain
/// WarpEngine): a tiny keyspace, one second, no warm-up.
fn skew(env: &[(&str, &str)]) -> Option<std::process::Output> {
    let binary = release_binary()?;
    if !physics_load_built() {
        return None;
    }
    let mut tiny = vec![
        ("KEYS", "1000"),
        ("SECONDS", "1"),
        ("WARMUP", "0"),
        ("CLIENTS", "2"),
    ];
    tiny.extend_from_slice(env);
    Some(
        Command::new("bash")
            .current_dir(ROOT)
            .args(["bench/skew.sh", &binary.to_string_lossy(), "1"])
            .envs(tiny)
            .output()
            .expect("run bench/skew.sh"),
    )
}

#[test]
fn skew_sh_runs() {
    let Some(out) = skew(&[("VARIANTS", "redis warp warp+replicate")]) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("round 1 redis |")
            && text.contains("cores main ")
            && text.contains("cores warp-worker-0 ")
            && text.contains("entropy busiest/mean ")
            && text.contains("median warp |")
            && text.contains("warp/redis | ops/s")
            && text.contains("warp+replicate/warp | ops/s"),
        "{text}"
    );
    // --slots: every key in one of 3 slots (all on the first worker's half of the slots), the
    // requests' shares over them printed.
    let Some(out) = skew(&[
        ("VARIANTS", "warp"),
        ("SLOTS", "3"),
        ("SLOTS_BELOW", "8192"),
    ]) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("requests' shares "),
        "{text}"
    );
}

/// A variant whose command the server refuses stops the script: it is not measured as plain
/// WarpEngine under its name.
#[test]
fn skew_sh_fails_on_a_missing_command() {
    let Some(out) = skew(&[("VARIANTS", "warp+on"), ("ON_CMD", "NO-SUCH-COMMAND AUTO")]) else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("'NO-SUCH-COMMAND AUTO' failed"),
        "{err}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("median"));
}

#[test]
fn operability_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/operability.sh", &binary, "1"],
        &[("N", "20000")],
    );
    assert!(
        text.contains("round 1 scraped | set") && text.contains("CPU s/M"),
        "{text}"
    );
}

#[test]
fn scripting_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/scripting.sh", &binary, "1"],
        &[("N", "2000")],
    );
    assert!(
        text.contains("round 1 ratio warp/redis | evalsha P=1") && text.contains("CPU s/M"),
        "{text}"
    );
}

/// bench/sockets.sh: the io_uring-against-epoll spike serves redis-benchmark in both modes.
#[test]
fn sockets_sh_runs() {
    let spike = std::path::Path::new(ROOT).join("target/release/socket-spike");
    if release_binary().is_none() {
        return;
    }
    if !spike.exists() {
        assert!(
            std::env::var("WARP_REQUIRE_GUARD").as_deref() != Ok("1"),
            "no {}: scripts/test.sh builds it",
            spike.display()
        );
        return;
    }
    let spike = spike.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/sockets.sh", "1"],
        &[("N", "2000"), ("SPIKE", &spike)],
    );
    assert!(
        text.contains("P=1 get | epoll") && text.contains("uring/epoll CPU"),
        "{text}"
    );
}

#[test]
fn families_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/families.sh", &binary, "1"],
        &[("N", "2000")],
    );
    assert!(
        text.contains("round 1 ratio warp/redis P=16 | xadd")
            && text.contains("geosearch")
            && text.contains("CPU s/M"),
        "{text}"
    );
}

#[test]
fn rdb_load_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/rdb_load.sh", &binary, "1"],
        &[("K", "2000")],
    );
    assert!(
        text.contains("file: 2000 keys") && text.contains("round 1 | warp"),
        "{text}"
    );
}

#[test]
fn security_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/security.sh", &binary, "1"],
        &[("N", "2000")],
    );
    assert!(
        text.contains("round 1 acl ratio restricted/default P=16 | warp set")
            && text.contains("round 1 tls ratio warp/redis | P=1 set")
            && text.contains("CPU s/M"),
        "{text}"
    );
}

#[test]
fn replication_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/replication.sh", &binary, "1"],
        &[("N", "2000")],
    );
    assert!(
        text.contains("round 1 warp>redis | set P=16")
            && text.contains("replica")
            && text.contains("round 1 ratio with/without a replica | warp>redis"),
        "{text}"
    );
}

#[test]
fn replication_lag_py_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    python_bench(&[
        "bench/replication_lag.py",
        "--binary",
        &binary,
        "--rounds",
        "1",
        "--probes",
        "5",
    ]);
}

#[test]
fn replication_fullsync_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/replication_fullsync.sh", &binary, "1"],
        &[("K", "2000")],
    );
    assert!(
        text.contains("round 1 | warp>redis 2000 keys") && text.contains("redis>redis 2000 keys"),
        "{text}"
    );
}

#[test]
fn full_sync_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/full_sync.sh", &binary, "1"],
        &[("K", "2000")],
    );
    assert!(
        text.contains("primary: 2000 keys") && text.contains("round 1 | warp"),
        "{text}"
    );
}

/// bench/cluster.sh with redis-server on both sides: the script itself is proven without
/// WarpEngine, whose nodes cannot form a cluster before the cluster bus lands.
#[test]
fn cluster_sh_runs() {
    if !warpengine_tests::redis_available() {
        return;
    }
    let text = run(
        "bash",
        &["bench/cluster.sh", "unused", "1"],
        &[
            ("CLUSTER_SERVER_A", "redis-server"),
            ("N", "20000"),
            ("K", "2000"),
            ("S", "100"),
            ("D", "1"),
        ],
    );
    assert!(
        text.contains("round 1 a=redis-server | set P=16")
            && text.contains("round 1 b=redis-server | reshard of 100 slots (2000 keys)")
            && text.contains("round 1 ratio a/b | set P=16")
            && text.contains("CPU s/M"),
        "{text}"
    );
}

#[test]
fn cluster_sh_runs_against_warpengine() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/cluster.sh", &binary, "1"],
        &[("N", "20000"), ("K", "2000"), ("S", "100"), ("D", "1")],
    );
    assert!(
        text.contains("round 1 a=warpengine | set P=16")
            && text.contains("round 1 a=warpengine | reshard of 100 slots (2000 keys)")
            && text.contains("round 1 ratio a/b | set P=16"),
        "{text}"
    );
}

#[test]
fn cluster_calls_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    if !warpengine_tests::redis_available() {
        return;
    }
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/cluster_calls.sh", &binary, "1"],
        &[("CALLS", "5")],
    );
    assert!(
        text.contains("round 1 warpengine | setslot pair")
            && text.contains("round 1 redis-server | new owner known everywhere in"),
        "{text}"
    );
}

#[test]
fn cluster_slots_sh_runs() {
    let Some(binary) = release_binary() else {
        return;
    };
    let binary = binary.to_string_lossy().into_owned();
    let text = run(
        "bash",
        &["bench/cluster_slots.sh", &binary, "1"],
        &[("KEYS", "5000"), ("CALLS", "5"), ("N", "20000")],
    );
    assert!(
        text.contains("warp | 5000 keys | countkeysinslot")
            && text.contains("redis | 5000 keys | countkeysinslot")
            && text.contains("set, cluster on"),
        "{text}"
    );
}
