//! Randomized differential test of the GEO commands: seeded sequences of GEOADD (with NX, XX,
//! CH) of random points (clustered around a few centres, spread over the map, on the
//! antimeridian, near the poles, sometimes out of range or at one spot), and random searches
//! (GEORADIUS, GEORADIUSBYMEMBER, GEOSEARCH, the STORE forms, their _RO forms; radii from a
//! metre to beyond the earth's size, boxes, every unit, ASC/DESC, COUNT [ANY], WITH*) go to a
//! real redis-server and to WarpEngine; every reply must be the same, byte for byte, unsorted
//! replies in the same order (the order of the geohash boxes searched). Sets cross
//! zset-max-listpack-entries, so both encodings are searched.

use warpengine_tests::{fuzz_against_redis, SeededRandom};

const KEYS: &[&str] = &["{g}a", "{g}b"];
const DESTINATIONS: &[&str] = &["{g}d", "{g}a"];

/// A number in [lo, hi) with up to six decimals.
fn number(r: &mut SeededRandom, lo: f64, hi: f64) -> String {
    let steps = ((hi - lo) * 1e6) as u64;
    format!("{:.6}", lo + r.below(steps.max(1)) as f64 / 1e6)
}

/// A longitude and latitude: mostly valid, in a few regions Redis treats specially.
fn position(r: &mut SeededRandom) -> (String, String) {
    match r.below(10) {
        // A cluster around Sicily, where most searches look.
        0..=3 => (number(r, 12.0, 16.0), number(r, 36.5, 39.0)),
        // Anywhere.
        4 | 5 => (number(r, -180.0, 180.0), number(r, -85.05, 85.05)),
        // Near the antimeridian.
        6 => (
            r.pick(&["179.9", "-179.9", "180", "-180", "179.99999", "-179.5"])
                .to_string(),
            number(r, -10.0, 10.0),
        ),
        // Near the poles' limits.
        7 => (
            number(r, -180.0, 180.0),
            r.pick(&[
                "85.05112878",
                "-85.05112878",
                "84.9",
                "-84.9",
                "80.5",
                "-66.5",
            ])
            .to_string(),
        ),
        // The same spot, for ties.
        8 => ("13.5".into(), "37.5".into()),
        // Out of range or not a number.
        _ => (
            r.pick(&["180.1", "0", "abc", "-200", "nan"]).to_string(),
            r.pick(&["86", "0", "-85.06", "1e3", "x"]).to_string(),
        ),
    }
}

/// Up to 300 members, so that sets pass zset-max-listpack-entries (128) and searches run on
/// both encodings.
fn member(r: &mut SeededRandom) -> String {
    format!("m{:03}", r.below(300))
}

fn unit(r: &mut SeededRandom) -> &'static str {
    r.pick(&["m", "km", "mi", "ft", "KM", "furlong"])
}

fn radius(r: &mut SeededRandom) -> String {
    r.pick(&[
        "0", "1", "50", "100", "250", "1000", "5000", "20000", "50000", "0.5", "-1", "x",
    ])
    .to_string()
}

/// Optional trailing options of a search: sorting, COUNT [ANY], WITH* (or a stray word).
fn options(r: &mut SeededRandom, with: bool) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..r.below(4) {
        match r.below(8) {
            0 => out.push(r.pick(&["ASC", "DESC"]).into()),
            1 | 2 => {
                out.push("COUNT".into());
                out.push(r.pick(&["1", "3", "10", "50", "0"]).into());
                if r.below(2) == 0 {
                    out.push("ANY".into());
                }
            }
            3..=6 if with => out.push(r.pick(&["WITHDIST", "WITHCOORD", "WITHHASH"]).into()),
            _ => out.push(r.pick(&["ANY", "BOGUS", "ASC"]).into()),
        }
    }
    out
}

fn command(r: &mut SeededRandom) -> (Vec<String>, bool) {
    let key = r.pick(KEYS).to_string();
    let dst = r.pick(DESTINATIONS).to_string();
    let mut words: Vec<String> = match r.below(14) {
        0..=3 => {
            let mut w = vec!["GEOADD".to_string(), key];
            if r.below(4) == 0 {
                w.push(r.pick(&["NX", "XX", "CH", "NX", "XX"]).into());
            }
            for _ in 0..1 + r.below(24) {
                let (lon, lat) = position(r);
                w.extend([lon, lat, member(r)]);
            }
            w
        }
        4 | 5 => {
            let (lon, lat) = position(r);
            let mut w = vec![
                "GEORADIUS".to_string(),
                key,
                lon,
                lat,
                radius(r),
                unit(r).into(),
            ];
            w.extend(options(r, true));
            w
        }
        6 => {
            let mut w = vec![
                r.pick(&["GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER_RO"])
                    .to_string(),
                key,
                member(r),
                radius(r),
                unit(r).into(),
            ];
            w.extend(options(r, true));
            w
        }
        7..=9 => {
            let mut w = vec!["GEOSEARCH".to_string(), key];
            if r.below(2) == 0 {
                let (lon, lat) = position(r);
                w.extend(["FROMLONLAT".to_string(), lon, lat]);
            } else {
                w.extend(["FROMMEMBER".to_string(), member(r)]);
            }
            if r.below(2) == 0 {
                w.extend(["BYRADIUS".to_string(), radius(r), unit(r).into()]);
            } else {
                w.extend(["BYBOX".to_string(), radius(r), radius(r), unit(r).into()]);
            }
            w.extend(options(r, true));
            w
        }
        10 => {
            let (lon, lat) = position(r);
            let mut w = vec![
                r.pick(&["GEORADIUS", "GEORADIUS_RO"]).to_string(),
                key,
                lon,
                lat,
                radius(r),
                unit(r).into(),
                r.pick(&["STORE", "STOREDIST"]).into(),
                dst.clone(),
            ];
            w.extend(options(r, false));
            w
        }
        11 => {
            let mut w = vec![
                "GEOSEARCHSTORE".to_string(),
                dst.clone(),
                key,
                "FROMMEMBER".into(),
                member(r),
                "BYBOX".into(),
                radius(r),
                radius(r),
                unit(r).into(),
            ];
            if r.below(2) == 0 {
                w.push("STOREDIST".into());
            }
            w.extend(options(r, false));
            w
        }
        12 => vec![
            r.pick(&["GEOPOS", "GEOHASH"]).to_string(),
            key,
            member(r),
            member(r),
        ],
        _ => {
            let mut w = vec!["GEODIST".to_string(), key, member(r), member(r)];
            if r.below(2) == 0 {
                w.push(unit(r).into());
            }
            w
        }
    };
    // Now and then, what a store left behind.
    if r.below(20) == 0 {
        words = vec![
            "ZRANGE".into(),
            dst,
            "0".into(),
            "-1".into(),
            "WITHSCORES".into(),
        ];
    }
    (words, false)
}

#[test]
fn random_geo_commands_answer_as_redis_does() {
    fuzz_against_redis(3000, command);
}
