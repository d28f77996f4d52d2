//! Benchmark scripts must run: each is smoke-run here on a tiny input, so that a broken one
//! cannot land. (So far: `bench/icount.sh`; the others are to follow, see issue 14.)

use std::process::Command;

use warpengine_tests::warpengine_binary;

#[test]
fn icount_counts_instructions_per_request() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("bash")
        .arg(format!("{root}/bench/icount.sh"))
        .arg(warpengine_binary())
        .args(["get", "300"])
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
        format!("{name} {}\n", n.trim().parse::<u64>().expect("count") * 8 / 10)
    })
    .collect();
    std::fs::write(&record, lowered).expect("write record");
    let (ok, text) = guard(&binary, Some(&record));
    let _ = std::fs::remove_file(&record);
    assert!(!ok, "the guard passed against a lowered record:\n{text}");
    assert!(text.contains("OVER"), "{text}");
}
