//! GEO commands from clients: the `redis` crate (typed replies: positions as floats, distances,
//! nested WITH* replies, errors) and redis-cli (its printing of nested replies).

use warpengine_tests::{redis_cli, start_warpengine};

/// GEOADD's arguments after the key for Palermo and Catania (Redis's documentation example).
const SICILY: [&str; 6] = [
    "13.361389",
    "38.115556",
    "Palermo",
    "15.087269",
    "37.502669",
    "Catania",
];

#[test]
fn the_redis_crate_reads_geo_replies() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut c = redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("connection");
    let added: i64 = redis::cmd("GEOADD")
        .arg("rs:geo")
        .arg(&SICILY)
        .query(&mut c)
        .expect("GEOADD");
    assert_eq!(added, 2);
    let positions: Vec<Option<(f64, f64)>> = redis::cmd("GEOPOS")
        .arg(&["rs:geo", "Palermo", "nosuch"])
        .query(&mut c)
        .expect("GEOPOS");
    assert_eq!(
        positions,
        vec![Some((13.361389338970184, 38.1155563954963)), None]
    );
    let dist: Option<f64> = redis::cmd("GEODIST")
        .arg(&["rs:geo", "Palermo", "Catania", "mi"])
        .query(&mut c)
        .expect("GEODIST");
    assert_eq!(dist, Some(103.3182));
    let near: Vec<(String, f64, i64, (f64, f64))> = redis::cmd("GEOSEARCH")
        .arg(&["rs:geo", "FROMMEMBER", "Catania", "BYRADIUS", "200", "km"])
        .arg(&["DESC", "WITHDIST", "WITHHASH", "WITHCOORD"])
        .query(&mut c)
        .expect("GEOSEARCH");
    let names: Vec<&str> = near.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["Palermo", "Catania"]);
    assert_eq!((near[0].1, near[0].2), (166.2742, 3479099956230698));
    let stored: i64 = redis::cmd("GEORADIUS")
        .arg(&[
            "rs:geo",
            "15",
            "37",
            "200",
            "km",
            "STOREDIST",
            "rs:geo-dist",
        ])
        .query(&mut c)
        .expect("GEORADIUS STOREDIST");
    assert_eq!(stored, 2);
    let err = redis::cmd("GEOADD")
        .arg(&["rs:geo", "181", "0", "bad"])
        .query::<i64>(&mut c)
        .expect_err("invalid position");
    assert!(
        err.to_string()
            .contains("invalid longitude,latitude pair 181.000000,0.000000"),
        "{err}"
    );
}

#[test]
fn redis_cli_prints_geo_replies() {
    let server = start_warpengine(&["--threads", "2"]);
    let cli = |args: &[&str]| redis_cli(server.port, args);
    let sicily: Vec<&str> = ["GEOADD", "cli:geo"].into_iter().chain(SICILY).collect();
    assert_eq!(cli(&sicily), "2\n");
    // (Not a terminal: redis-cli prints bare values, nested replies flattened.)
    assert_eq!(
        cli(&["GEOPOS", "cli:geo", "Palermo", "nosuch"]),
        "13.36138933897018433\n38.11555639549629859\n\n"
    );
    assert_eq!(
        cli(&["GEOHASH", "cli:geo", "Palermo", "Catania"]),
        "sqc8b49rny0\nsqdtr74hyu0\n"
    );
    assert_eq!(
        cli(&[
            "GEORADIUS",
            "cli:geo",
            "15",
            "37",
            "200",
            "km",
            "WITHDIST",
            "ASC"
        ]),
        "Catania\n56.4413\nPalermo\n190.4424\n"
    );
    assert_eq!(
        cli(&[
            "GEOSEARCHSTORE",
            "cli:dst",
            "cli:geo",
            "FROMLONLAT",
            "15",
            "37",
            "BYBOX",
            "400",
            "400",
            "km"
        ]),
        "2\n"
    );
    assert_eq!(
        cli(&["GEODIST", "cli:geo", "Palermo", "Catania", "furlong"]),
        "ERR unsupported unit provided. please use M, KM, FT, MI\n\n"
    );
}
