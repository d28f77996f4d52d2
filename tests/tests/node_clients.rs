//! Node's Redis clients against the real binary: ioredis and node-redis, each through its own
//! API for strings, pipelines, errors, MULTI/EXEC, WATCH and Pub/Sub
//! (`tests/clients/node/smoke.mjs`; scripts/test.sh installs the packages with npm).

use std::path::Path;
use std::process::Command;

use warpengine_tests::start_warpengine;

#[test]
fn ioredis_and_node_redis_work() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/node");
    if !Path::new(dir).join("node_modules").exists() {
        // scripts/test.sh installs them and requires this test to run.
        assert!(
            std::env::var("WARP_REQUIRE_GUARD").as_deref() != Ok("1"),
            "no {dir}/node_modules: run `npm ci` there (scripts/test.sh does)"
        );
        eprintln!("skipped: no {dir}/node_modules");
        return;
    }
    let server = start_warpengine(&["--threads", "2"]);
    let out = Command::new("node")
        .arg(format!("{dir}/smoke.mjs"))
        .arg(server.port.to_string())
        .output()
        .expect("node");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(" passed, 0 failed") && !text.contains("node: 0 passed"),
        "{text}"
    );
}
