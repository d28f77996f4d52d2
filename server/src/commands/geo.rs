//! Geospatial commands: GEOADD, GEODIST, GEOHASH, GEOPOS, GEOSEARCH, GEOSEARCHSTORE,
//! GEORADIUS, GEORADIUSBYMEMBER and their `_RO` forms, as Redis 7.0's `geo.c` runs them.
//!
//! A GEO set is a plain sorted set whose scores are 52-bit geohashes (see [`geohash`]), so
//! every sorted-set command works on it and its data moves to and from Redis unchanged.
//! GEOADD is ZADD with computed scores; a search visits the nine geohash boxes around its
//! centre in Redis's order, reading each box's score range from the sorted set, so that
//! unsorted replies list the same members in the same order as Redis's.

pub mod geohash;
mod pqsort;

use std::cmp::Ordering;

use bytes::Bytes;
use warpengine_storage::ZSetValue;

use super::util::{eq_ignore_case, int_arg, SYNTAX};
use super::zsets::{self, limits, parse_score, read_zset, store_result};
use super::{commands, k, keyed, Keys, LogForm, Writes};
use crate::keyctx::KeyCtx;
use crate::protocol::Reply;
use geohash::{Search, Shape};

commands! {
    pub static COMMANDS;
    "geoadd", -5, "write denyoom", k(1, 1, 1), "geo", "3.2.0", keyed(geoadd), "Adds one or more members to a geospatial index. The key is created if it doesn't exist.", log(LogForm::Effects(geoadd_effects));
    "geodist", -4, "readonly", k(1, 1, 1), "geo", "3.2.0", keyed(geodist), "Returns the distance between two members of a geospatial index.";
    "geohash", -2, "readonly", k(1, 1, 1), "geo", "3.2.0", keyed(geohash_cmd), "Returns members from a geospatial index as geohash strings.";
    "geopos", -2, "readonly", k(1, 1, 1), "geo", "3.2.0", keyed(geopos), "Returns the longitude and latitude of members from a geospatial index.";
    "geosearch", -7, "readonly", k(1, 1, 1), "geo", "6.2.0", keyed(geosearch), "Queries a geospatial index for members inside an area of a box or a circle.";
    "geosearchstore", -8, "write denyoom", k(1, 2, 1), "geo", "6.2.0", keyed(geosearchstore), "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.", writes(Writes::First);
    "georadius", -6, "write denyoom movablekeys", Keys::Custom { legacy: (1, 1, 1), find: georadius_keys }, "geo", "3.2.0", keyed(georadius), "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.", log(LogForm::Rewritten(logged_if_storing)), writes(Writes::All);
    "georadius_ro", -6, "readonly", k(1, 1, 1), "geo", "3.2.10", keyed(georadius_ro), "Returns members from a geospatial index that are within a distance from a coordinate.";
    "georadiusbymember", -5, "write denyoom movablekeys", Keys::Custom { legacy: (1, 1, 1), find: georadiusbymember_keys }, "geo", "3.2.0", keyed(georadiusbymember), "Queries a geospatial index for members within a distance from a member, optionally stores the result.", log(LogForm::Rewritten(logged_if_storing)), writes(Writes::All);
    "georadiusbymember_ro", -5, "readonly", k(1, 1, 1), "geo", "3.2.10", keyed(georadiusbymember_ro), "Returns members from a geospatial index that are within a distance from a member.";
}

// ---------------------------------------------------------------------------------------------
// Keys and logging of the GEORADIUS forms.

/// The first option of GEORADIUS (after key, longitude, latitude, radius, unit).
const GEORADIUS_OPTIONS_AT: usize = 6;
/// The first option of GEORADIUSBYMEMBER (after key, member, radius, unit).
const GEORADIUSBYMEMBER_OPTIONS_AT: usize = 5;

/// The source key, then every argument that follows a STORE or STOREDIST among the options.
/// The command writes the last one; locking every one of them keeps that one reachable
/// whatever the options say (COMMAND GETKEYS answers from Redis's key specs instead).
fn store_keys(args: &[Bytes], options_at: usize) -> Vec<usize> {
    let mut keys = vec![1];
    let options = args.iter().enumerate().skip(options_at);
    for (i, arg) in options.take(args.len().saturating_sub(options_at + 1)) {
        if eq_ignore_case(arg, "store") || eq_ignore_case(arg, "storedist") {
            keys.push(i + 1);
        }
    }
    keys
}

pub fn georadius_keys(args: &[Bytes]) -> Vec<usize> {
    store_keys(args, GEORADIUS_OPTIONS_AT)
}

pub fn georadiusbymember_keys(args: &[Bytes]) -> Vec<usize> {
    store_keys(args, GEORADIUSBYMEMBER_OPTIONS_AT)
}

/// GEORADIUS and GEORADIUSBYMEMBER are logged as sent when they may have stored (they are
/// deterministic), and not at all when they only read.
fn logged_if_storing(_ctx: &mut KeyCtx, args: &[Bytes]) -> Option<Vec<Bytes>> {
    let options_at = if eq_ignore_case(&args[0], "georadius") {
        GEORADIUS_OPTIONS_AT
    } else {
        GEORADIUSBYMEMBER_OPTIONS_AT
    };
    (store_keys(args, options_at).len() > 1).then(|| args.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Argument helpers.

const NOT_FLOAT: &str = "ERR value is not a valid float";
const NO_MEMBER: &str = "ERR could not decode requested zset member";

/// C's `%f`: six decimals, every integer digit.
fn c_fixed6(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    format!("{v:.6}")
}

/// extractLongLatOrReply: a longitude and a latitude Redis can index.
fn long_lat_arg(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Reply> {
    let lon = parse_score(lon).ok_or_else(|| Reply::err(NOT_FLOAT))?;
    let lat = parse_score(lat).ok_or_else(|| Reply::err(NOT_FLOAT))?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(Reply::err(format!(
            "ERR invalid longitude,latitude pair {},{}",
            c_fixed6(lon),
            c_fixed6(lat)
        )));
    }
    Ok((lon, lat))
}

/// extractUnitOrReply: metres per unit.
fn unit_arg(unit: &[u8]) -> Result<f64, Reply> {
    const UNITS: [(&str, f64); 4] = [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)];
    UNITS
        .iter()
        .find(|(name, _)| eq_ignore_case(unit, name))
        .map(|&(_, to_meters)| to_meters)
        .ok_or_else(|| Reply::err("ERR unsupported unit provided. please use M, KM, FT, MI"))
}

/// A non-negative number for a radius, a width or a height (`what` names it in errors).
fn length_arg(arg: &[u8], what: &str) -> Result<f64, Reply> {
    parse_score(arg).ok_or_else(|| Reply::err(format!("ERR need numeric {what}")))
}

/// extractDistanceOrReply: (radius, metres per unit).
fn radius_args(radius: &[u8], unit: &[u8]) -> Result<(f64, f64), Reply> {
    let radius = length_arg(radius, "radius")?;
    if radius < 0.0 {
        return Err(Reply::err("ERR radius cannot be negative"));
    }
    Ok((radius, unit_arg(unit)?))
}

/// extractBoxOrReply: (width, height, metres per unit).
fn box_args(width: &[u8], height: &[u8], unit: &[u8]) -> Result<(f64, f64, f64), Reply> {
    let width = length_arg(width, "width")?;
    let height = length_arg(height, "height")?;
    if height < 0.0 || width < 0.0 {
        return Err(Reply::err("ERR height or width cannot be negative"));
    }
    Ok((width, height, unit_arg(unit)?))
}

/// The position stored for `member` (longLatFromMember).
fn member_position(z: &ZSetValue, member: &[u8]) -> Option<(f64, f64)> {
    z.score(member).and_then(geohash::decode_score)
}

/// A distance as Redis replies it: four decimals, as a bulk string in both protocols.
fn distance_reply(d: f64) -> Reply {
    Reply::Bulk(Bytes::from(format!("{d:.4}")))
}

/// A coordinate as Redis's addReplyHumanLongDouble: `[lon, lat]`.
fn position_reply(lon: f64, lat: f64) -> Reply {
    Reply::Array(vec![Reply::HumanDouble(lon), Reply::HumanDouble(lat)])
}

// ---------------------------------------------------------------------------------------------
// GEOADD, GEODIST, GEOHASH, GEOPOS.

/// GEOADD key [NX|XX] [CH] longitude latitude member ...: ZADD with each position's score.
pub fn geoadd(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    match as_zadd(args) {
        Ok(zadd_args) => zsets::zadd(ctx, &zadd_args),
        Err(e) => e,
    }
}

/// GEOADD's arguments as the ZADD that does its work: `ZADD key [options] score member ...`,
/// every position checked before anything is added.
fn as_zadd(args: &[Bytes]) -> Result<Vec<Bytes>, Reply> {
    let mut first = 2;
    let (mut nx, mut xx) = (false, false);
    while first < args.len() {
        let a = &args[first];
        if eq_ignore_case(a, "nx") {
            nx = true;
        } else if eq_ignore_case(a, "xx") {
            xx = true;
        } else if !eq_ignore_case(a, "ch") {
            break;
        }
        first += 1;
    }
    if !(args.len() - first).is_multiple_of(3) || (nx && xx) {
        return Err(Reply::err(SYNTAX));
    }
    let mut zadd_args = Vec::with_capacity(first + (args.len() - first) / 3 * 2);
    zadd_args.push(Bytes::from_static(b"zadd"));
    zadd_args.extend_from_slice(&args[1..first]);
    for triple in args[first..].chunks(3) {
        let (lon, lat) = long_lat_arg(&triple[0], &triple[1])?;
        let score = geohash::score_of(lon, lat).expect("checked position encodes");
        zadd_args.push(Bytes::from(score.to_string()));
        zadd_args.push(triple[2].clone());
    }
    Ok(zadd_args)
}

/// GEOADD as Redis propagates it: the ZADD it ran, so that no replica computes a position's
/// score again.
fn geoadd_effects(_ctx: &mut KeyCtx, args: &[Bytes], _reply: &Reply) -> Vec<Vec<Bytes>> {
    as_zadd(args).map_or_else(|_| Vec::new(), |zadd| vec![zadd])
}

/// GEODIST key member1 member2 [unit].
pub fn geodist(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let to_meter = match args.len() {
        4 => 1.0,
        5 => match unit_arg(&args[4]) {
            Ok(u) => u,
            Err(e) => return e,
        },
        _ => return Reply::err(SYNTAX),
    };
    let z = match read_zset(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Nil,
        Ok(Some(z)) => z,
    };
    let (Some(a), Some(b)) = (z.score(&args[2]), z.score(&args[3])) else {
        return Reply::Nil;
    };
    match (geohash::decode_score(a), geohash::decode_score(b)) {
        (Some((lon1, lat1)), Some((lon2, lat2))) => {
            distance_reply(geohash::distance(lon1, lat1, lon2, lat2) / to_meter)
        }
        _ => Reply::Nil,
    }
}

/// GEOHASH key [member ...]: standard 11-character geohashes.
pub fn geohash_cmd(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let z = match read_zset(ctx, &args[1]) {
        Err(e) => return e,
        Ok(z) => z,
    };
    let hashes = args[2..]
        .iter()
        .map(|m| match z.as_ref().and_then(|z| member_position(z, m)) {
            Some((lon, lat)) => Reply::bulk(&geohash::standard_geohash(lon, lat)),
            None => Reply::Nil,
        });
    Reply::Array(hashes.collect())
}

/// GEOPOS key [member ...].
pub fn geopos(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    let z = match read_zset(ctx, &args[1]) {
        Err(e) => return e,
        Ok(z) => z,
    };
    let positions =
        args[2..]
            .iter()
            .map(|m| match z.as_ref().and_then(|z| member_position(z, m)) {
                Some((lon, lat)) => position_reply(lon, lat),
                None => Reply::NilArray,
            });
    Reply::Array(positions.collect())
}

// ---------------------------------------------------------------------------------------------
// The searches: georadiusGeneric.

/// Which search command runs, with Redis's flags.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// GEORADIUS[_RO] key longitude latitude radius unit ...
    AroundCoordinates { read_only: bool },
    /// GEORADIUSBYMEMBER[_RO] key member radius unit ...
    AroundMember { read_only: bool },
    /// GEOSEARCH key ...
    Search,
    /// GEOSEARCHSTORE destination source ...
    SearchStore,
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// One member found inside the search area.
struct Found {
    member: Bytes,
    score: f64,
    longitude: f64,
    latitude: f64,
    /// Metres from the centre until the reply, then in the search's unit.
    dist: f64,
}

/// What a search reply carries besides the members.
#[derive(Default)]
struct With {
    dist: bool,
    hash: bool,
    coord: bool,
}

/// Collects the members inside `search`, box by box in Redis's order, stopping once `limit`
/// (non-zero with ANY) were found (membersOfAllNeighbors).
fn members_in_area(z: &ZSetValue, search: &Search, limit: usize) -> Vec<Found> {
    let boxes = geohash::search_boxes(search);
    let mut found = Vec::new();
    let mut last_processed = 0;
    for (i, hash) in boxes.iter().enumerate() {
        if hash.is_zero() {
            continue;
        }
        // A huge radius makes adjacent neighbours the same box: skip a repeat of the box
        // searched last. (Redis never compares with the centre box, index 0: nor do we.)
        if last_processed != 0 && *hash == boxes[last_processed] {
            continue;
        }
        if limit != 0 && found.len() >= limit {
            break;
        }
        let (min, max) = geohash::score_range(*hash);
        let start = z.count_while(|s, _| s < min);
        for (member, score) in z.iter_from(start) {
            if score >= max {
                break;
            }
            let Some((lon, lat)) = geohash::decode_score(score) else {
                continue;
            };
            if let Some(dist) = search.distance_if_within(lon, lat) {
                found.push(Found {
                    member: Bytes::copy_from_slice(member),
                    score,
                    longitude: lon,
                    latitude: lat,
                    dist,
                });
                if limit != 0 && found.len() >= limit {
                    break;
                }
            }
        }
        last_processed = i;
    }
    found
}

/// Parses and runs one search; `source` and `options_at` locate the source key and the
/// first option of this form.
fn search_generic(ctx: &mut KeyCtx, args: &[Bytes], form: Form) -> Reply {
    let (source, options_at) = match form {
        Form::AroundCoordinates { .. } => (1, GEORADIUS_OPTIONS_AT),
        Form::AroundMember { .. } => (1, GEORADIUSBYMEMBER_OPTIONS_AT),
        Form::Search => (1, 2),
        Form::SearchStore => (2, 3),
    };
    match search_parsed(ctx, args, form, source, options_at) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn search_parsed(
    ctx: &mut KeyCtx,
    args: &[Bytes],
    form: Form,
    source: usize,
    options_at: usize,
) -> Result<Reply, Reply> {
    let lim = limits(ctx);
    // The source is looked up first: WRONGTYPE comes before any argument error.
    let z = read_zset(ctx, &args[source])?;
    let missing = z.is_none();
    let mut center: Option<(f64, f64)> = None;
    let mut shape: Option<(Shape, f64)> = None;
    match form {
        Form::AroundCoordinates { .. } => {
            center = Some(long_lat_arg(&args[2], &args[3])?);
            let (radius, conversion) = radius_args(&args[4], &args[5])?;
            shape = Some((Shape::Radius(radius), conversion));
        }
        // Without a source the member and radius are not checked, only the options.
        Form::AroundMember { .. } if !missing => {
            let z = z.as_deref().expect("source present");
            center = Some(member_position(z, &args[2]).ok_or_else(|| Reply::err(NO_MEMBER))?);
            let (radius, conversion) = radius_args(&args[3], &args[4])?;
            shape = Some((Shape::Radius(radius), conversion));
        }
        _ => {}
    }
    let is_search = matches!(form, Form::Search | Form::SearchStore);
    let no_store = matches!(
        form,
        Form::AroundCoordinates { read_only: true } | Form::AroundMember { read_only: true }
    );
    let mut store: Option<&Bytes> = (form == Form::SearchStore).then(|| &args[1]);
    let mut storedist = false;
    let mut with = With::default();
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let remaining = args.len().saturating_sub(options_at);
    let mut i = 0;
    while i < remaining {
        let at = options_at + i;
        let arg = &args[at];
        let next = |n: usize| &args[at + n];
        if eq_ignore_case(arg, "withdist") {
            with.dist = true;
        } else if eq_ignore_case(arg, "withhash") {
            with.hash = true;
        } else if eq_ignore_case(arg, "withcoord") {
            with.coord = true;
        } else if eq_ignore_case(arg, "any") {
            any = true;
        } else if eq_ignore_case(arg, "asc") {
            sort = Sort::Asc;
        } else if eq_ignore_case(arg, "desc") {
            sort = Sort::Desc;
        } else if eq_ignore_case(arg, "count") && i + 1 < remaining {
            count = int_arg(next(1))?;
            if count <= 0 {
                return Err(Reply::err("ERR COUNT must be > 0"));
            }
            i += 1;
        } else if (eq_ignore_case(arg, "store") || eq_ignore_case(arg, "storedist"))
            && i + 1 < remaining
            && !no_store
            && !is_search
        {
            store = Some(next(1));
            storedist = eq_ignore_case(arg, "storedist");
            i += 1;
        } else if eq_ignore_case(arg, "storedist") && form == Form::SearchStore {
            storedist = true;
        } else if eq_ignore_case(arg, "frommember") && i + 1 < remaining && is_search && !fromloc {
            if let Some(z) = z.as_deref() {
                center = Some(member_position(z, next(1)).ok_or_else(|| Reply::err(NO_MEMBER))?);
            }
            frommember = true;
            i += 1;
        } else if eq_ignore_case(arg, "fromlonlat") && i + 2 < remaining && is_search && !frommember
        {
            center = Some(long_lat_arg(next(1), next(2))?);
            fromloc = true;
            i += 2;
        } else if eq_ignore_case(arg, "byradius") && i + 2 < remaining && is_search && !bybox {
            let (radius, conversion) = radius_args(next(1), next(2))?;
            shape = Some((Shape::Radius(radius), conversion));
            byradius = true;
            i += 2;
        } else if eq_ignore_case(arg, "bybox") && i + 3 < remaining && is_search && !byradius {
            let (width, height, conversion) = box_args(next(1), next(2), next(3))?;
            shape = Some((Shape::Box { width, height }, conversion));
            bybox = true;
            i += 3;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        i += 1;
    }

    let command = if form == Form::SearchStore {
        "GEOSEARCHSTORE"
    } else {
        "GEOSEARCH"
    };
    if store.is_some() && (with.dist || with.hash || with.coord) {
        let what = if form == Form::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(Reply::err(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    if is_search && !(frommember || fromloc) {
        return Err(Reply::err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {command}"
        )));
    }
    if is_search && !(byradius || bybox) {
        return Err(Reply::err(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {command}"
        )));
    }
    if any && count == 0 {
        return Err(Reply::err("ERR the ANY argument requires COUNT argument"));
    }

    let Some(z) = z else {
        // No source: an empty answer, or an emptied destination.
        return Ok(match store {
            Some(dst) => store_result(ctx, dst, ZSetValue::new(true), lim, "georadiusstore"),
            None => Reply::Array(Vec::new()),
        });
    };
    let ((longitude, latitude), (shape, conversion)) = (
        center.expect("a present source gives a centre"),
        shape.expect("a present source gives a shape"),
    );
    let search = Search {
        longitude,
        latitude,
        shape,
        conversion,
    };
    // COUNT without ANY returns the nearest ones: sorted, ascending unless asked otherwise.
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let limit = if any { count as usize } else { 0 };
    let mut found = members_in_area(z, &search, limit);
    if found.is_empty() && store.is_none() {
        return Ok(Reply::Array(Vec::new()));
    }
    let returned = if count == 0 {
        found.len()
    } else {
        found.len().min(count as usize)
    };
    if sort != Sort::None {
        let by_distance = |a: &Found, b: &Found| {
            let asc = a.dist.partial_cmp(&b.dist).unwrap_or(Ordering::Equal);
            if sort == Sort::Desc {
                asc.reverse()
            } else {
                asc
            }
        };
        if returned == found.len() {
            // Redis calls qsort, glibc's merge sort: stable.
            found.sort_by(by_distance);
        } else if returned > 0 {
            pqsort::pqsort(&mut found, &by_distance, 0, returned - 1);
        }
    }
    found.truncate(returned);
    for f in &mut found {
        f.dist /= conversion;
    }

    let Some(dst) = store else {
        return Ok(Reply::Array(
            found.into_iter().map(|f| found_reply(f, &with)).collect(),
        ));
    };
    let entries = found
        .into_iter()
        .map(|f| (f.member, if storedist { f.dist } else { f.score }))
        .collect();
    let event = if is_search {
        "geosearchstore"
    } else {
        "georadiusstore"
    };
    Ok(store_result(
        ctx,
        dst,
        ZSetValue::from_entries(entries, false),
        lim,
        event,
    ))
}

/// One member of a search reply: its name alone, or with what was asked, in Redis's order
/// (distance, hash, coordinates).
fn found_reply(f: Found, with: &With) -> Reply {
    if !(with.dist || with.hash || with.coord) {
        return Reply::Bulk(f.member);
    }
    let mut item = vec![Reply::Bulk(f.member)];
    if with.dist {
        item.push(distance_reply(f.dist));
    }
    if with.hash {
        item.push(Reply::Int(f.score as i64));
    }
    if with.coord {
        item.push(position_reply(f.longitude, f.latitude));
    }
    Reply::Array(item)
}

pub fn geosearch(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    search_generic(ctx, args, Form::Search)
}

pub fn geosearchstore(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    search_generic(ctx, args, Form::SearchStore)
}

pub fn georadius(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    search_generic(ctx, args, Form::AroundCoordinates { read_only: false })
}

pub fn georadius_ro(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    search_generic(ctx, args, Form::AroundCoordinates { read_only: true })
}

pub fn georadiusbymember(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    search_generic(ctx, args, Form::AroundMember { read_only: false })
}

pub fn georadiusbymember_ro(ctx: &mut KeyCtx, args: &[Bytes]) -> Reply {
    search_generic(ctx, args, Form::AroundMember { read_only: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::from(w.to_string()))
            .collect()
    }

    #[test]
    fn store_destinations_are_keys() {
        assert_eq!(georadius_keys(&argv("georadius k 0 0 10 m")), vec![1]);
        assert_eq!(
            georadius_keys(&argv("georadius k 0 0 10 m STORE d STOREDIST e")),
            vec![1, 7, 9]
        );
        assert_eq!(georadius_keys(&argv("georadius k 0 0 10 m store")), vec![1]);
        assert_eq!(
            georadiusbymember_keys(&argv("georadiusbymember k store 10 m storedist d")),
            vec![1, 6]
        );
    }

    #[test]
    fn invalid_positions_are_echoed_as_c_prints_them() {
        let Err(Reply::Error(e)) = long_lat_arg(b"200", b"-0") else {
            panic!("out of range")
        };
        assert_eq!(
            e,
            "ERR invalid longitude,latitude pair 200.000000,-0.000000"
        );
        let Err(Reply::Error(e)) = long_lat_arg(b"inf", b"1") else {
            panic!("out of range")
        };
        assert_eq!(e, "ERR invalid longitude,latitude pair inf,1.000000");
    }
}
