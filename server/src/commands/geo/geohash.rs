//! The geohash arithmetic of Redis 7.0 (`geohash.c`, `geohash_helper.c`), ported step for step
//! so that scores, search boxes, distances and the order in which boxes are visited are the
//! ones Redis computes: a GEO set moves between Redis and WarpEngine unchanged and searches
//! return the same members in the same order.
//!
//! A position is stored as a sorted-set score: the longitude and latitude, each scaled to 26
//! bits over their range, interleaved (latitude bits in the even positions) into a 52-bit
//! integer. Redis's latitude range is that of Web Mercator (±85.05112878), not ±90.

/// Longitudes Redis accepts.
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// Latitudes Redis accepts (the Web Mercator limits: the poles cannot be indexed).
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// Bits per coordinate in a stored score (52 bits in all).
pub const STEP_MAX: u8 = 26;

/// The earth's quadratic mean radius (WGS-84), which Redis's haversine uses.
pub const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// A geohash of `step` bits per coordinate. Bits 0 and step 0 is Redis's "zero" hash, the
/// mark of a neighbour box that need not be searched.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// The box a hash stands for.
#[derive(Clone, Copy, Debug)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

/// Redis's coordinate ranges for stored positions.
pub const LONG_RANGE: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
pub const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// Interleaves the low 32 bits of `x` (even positions) and `y` (odd positions).
fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = xlo as u64;
    let mut y = ylo as u64;
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

/// The inverse of [`interleave64`]: even bits in the low half, odd bits in the high half.
fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// C's conversion of a double to `uint32_t` as x86-64 compilers emit it (through a 64-bit
/// signed conversion, keeping the low 32 bits); offsets here are never negative.
fn to_u32(v: f64) -> u32 {
    c_double_to_u64(v) as u32
}

/// C's `(uint64_t)double` as gcc compiles it on x86-64: values below 2^63 convert through a
/// signed conversion (so negative ones wrap), larger ones have 2^63 taken off first; an
/// out-of-range signed conversion gives `i64::MIN` (the CPU's "integer indefinite").
pub fn c_double_to_u64(v: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    let cvt = |v: f64| -> i64 {
        if (-TWO_63..TWO_63).contains(&v) {
            v as i64
        } else {
            i64::MIN
        }
    };
    if v < TWO_63 {
        cvt(v) as u64
    } else {
        (cvt(v - TWO_63) as u64) ^ (1 << 63)
    }
}

/// geohashEncode: None outside Redis's limits or the given ranges.
pub fn encode(
    long_range: Range,
    lat_range: Range,
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<HashBits> {
    if step > 32 || step == 0 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude) {
        return None;
    }
    if latitude < lat_range.min
        || latitude > lat_range.max
        || longitude < long_range.min
        || longitude > long_range.max
    {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (longitude - long_range.min) / (long_range.max - long_range.min) * scale;
    Some(HashBits {
        bits: interleave64(to_u32(lat_offset), to_u32(long_offset)),
        step,
    })
}

/// geohashEncodeWGS84.
pub fn encode_wgs84(longitude: f64, latitude: f64, step: u8) -> Option<HashBits> {
    encode(LONG_RANGE, LAT_RANGE, longitude, latitude, step)
}

/// geohashDecode over Redis's ranges: None for the zero hash.
pub fn decode(hash: HashBits) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let sep = deinterleave64(hash.bits);
    let lat_scale = LAT_RANGE.max - LAT_RANGE.min;
    let long_scale = LONG_RANGE.max - LONG_RANGE.min;
    let ilato = sep as u32 as f64;
    let ilono = (sep >> 32) as u32 as f64;
    let cells = (1u64 << hash.step) as f64;
    Some(Area {
        latitude: Range {
            min: LAT_RANGE.min + (ilato / cells) * lat_scale,
            max: LAT_RANGE.min + ((ilato + 1.0) / cells) * lat_scale,
        },
        longitude: Range {
            min: LONG_RANGE.min + (ilono / cells) * long_scale,
            max: LONG_RANGE.min + ((ilono + 1.0) / cells) * long_scale,
        },
    })
}

/// The centre of a hash's box, clamped to the limits (geohashDecodeToLongLatWGS84).
pub fn decode_to_long_lat(hash: HashBits) -> Option<(f64, f64)> {
    let area = decode(hash)?;
    let lon = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// decodeGeohash: the position a sorted-set score stands for. Any score decodes (one that no
/// GEOADD could have written lands somewhere, clamped to the limits), as in Redis.
pub fn decode_score(score: f64) -> Option<(f64, f64)> {
    decode_to_long_lat(HashBits {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    })
}

/// The 52-bit score of a position Redis accepts.
pub fn score_of(longitude: f64, latitude: f64) -> Option<u64> {
    encode_wgs84(longitude, latitude, STEP_MAX).map(align52)
}

/// geohashAlign52Bits: a hash's bits as the top of a 52-bit score.
pub fn align52(hash: HashBits) -> u64 {
    hash.bits << (52 - hash.step as u32 * 2)
}

/// GEOHASH's 11-character string: the position re-encoded over the standard ranges (±90
/// latitude), in base 32, the eleventh character always `0` (52 bits make ten and a bit).
pub fn standard_geohash(longitude: f64, latitude: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let standard_lat = Range {
        min: -90.0,
        max: 90.0,
    };
    // Redis leaves the hash uninitialised when this fails; decoded positions never fail.
    let bits =
        encode(LONG_RANGE, standard_lat, longitude, latitude, STEP_MAX).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        let idx = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[idx as usize];
    }
    out
}

/// Moves a hash one box along one axis (geohash_move_x / geohash_move_y): `axis` masks the
/// bits of that coordinate (odd bits: longitude, even bits: latitude), `d` is the direction.
/// The other coordinate's bits stay; the moved one wraps around at the edge of the map.
fn move_along(hash: &mut HashBits, axis: u64, d: i8) {
    if d == 0 {
        return;
    }
    let other = !axis;
    let mut moving = hash.bits & axis;
    let kept = hash.bits & other;
    let shift = 64 - hash.step as u32 * 2;
    // The other coordinate's bits, set in the moving one's gaps, carry a +1 across them.
    let zz = other >> shift;
    if d > 0 {
        moving = moving.wrapping_add(zz + 1);
    } else {
        moving |= zz;
        moving = moving.wrapping_sub(zz + 1);
    }
    moving &= axis >> shift;
    hash.bits = moving | kept;
}

const LONGITUDE_BITS: u64 = 0xaaaaaaaaaaaaaaaa;
const LATITUDE_BITS: u64 = 0x5555555555555555;

// The places of the boxes in a search, in the order Redis visits them.
const CENTER: usize = 0;
const NORTH: usize = 1;
const SOUTH: usize = 2;
const EAST: usize = 3;
const WEST: usize = 4;
const NORTH_EAST: usize = 5;
const NORTH_WEST: usize = 6;
const SOUTH_EAST: usize = 7;
const SOUTH_WEST: usize = 8;

/// A hash and its eight neighbours (wrapping around at the edges, as Redis's bit moves do),
/// at the places above.
fn with_neighbors(hash: HashBits) -> [HashBits; 9] {
    let moved = |dx: i8, dy: i8| {
        let mut h = hash;
        move_along(&mut h, LONGITUDE_BITS, dx);
        move_along(&mut h, LATITUDE_BITS, dy);
        h
    };
    let mut boxes = [hash; 9];
    boxes[NORTH] = moved(0, 1);
    boxes[SOUTH] = moved(0, -1);
    boxes[EAST] = moved(1, 0);
    boxes[WEST] = moved(-1, 0);
    boxes[NORTH_EAST] = moved(1, 1);
    boxes[NORTH_WEST] = moved(-1, 1);
    boxes[SOUTH_EAST] = moved(1, -1);
    boxes[SOUTH_WEST] = moved(-1, -1);
    boxes
}

/// What a search covers: a circle of `radius` or an axis-aligned box of `width` by `height`,
/// in the user's unit, times `conversion` to get metres.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search: its centre, its shape, and the factor from its unit to metres.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub longitude: f64,
    pub latitude: f64,
    pub shape: Shape,
    pub conversion: f64,
}

/// The search boxes of geohashCalculateAreasByShapeWGS84, in the order Redis visits them:
/// the centre, then north, south, east, west, north-east, north-west, south-east, south-west;
/// a zero hash is a box left out.
pub fn search_boxes(search: &Search) -> [HashBits; 9] {
    let (min_lon, min_lat, max_lon, max_lat) = bounding_box(search);
    let radius_meters = match search.shape {
        Shape::Radius(r) => r,
        Shape::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    } * search.conversion;
    let (lon, lat) = (search.longitude, search.latitude);
    let mut steps = estimate_steps_by_radius(radius_meters, lat);
    // Callers pass a centre Redis accepts; were it not, nothing would be searched.
    let Some(center) = encode_wgs84(lon, lat, steps) else {
        return [HashBits::default(); 9];
    };
    let mut boxes = with_neighbors(center);

    // Near an edge of the centre box the estimated step may be too coarse for one of the
    // direct neighbours to reach the whole search area: one step coarser then.
    let area = |i: usize| decode(boxes[i]);
    let decrease_step = area(NORTH).is_some_and(|a| a.latitude.max < max_lat)
        || area(SOUTH).is_some_and(|a| a.latitude.min > min_lat)
        || area(EAST).is_some_and(|a| a.longitude.max < max_lon)
        || area(WEST).is_some_and(|a| a.longitude.min > min_lon);
    if steps > 1 && decrease_step {
        steps -= 1;
        if let Some(center) = encode_wgs84(lon, lat, steps) {
            boxes = with_neighbors(center);
        }
    }

    // Leave out the boxes the search area does not reach.
    if let Some(area) = decode(boxes[CENTER]).filter(|_| steps >= 2) {
        let mut leave_out =
            |which: [usize; 3]| which.iter().for_each(|&i| boxes[i] = HashBits::default());
        if area.latitude.min < min_lat {
            leave_out([SOUTH, SOUTH_WEST, SOUTH_EAST]);
        }
        if area.latitude.max > max_lat {
            leave_out([NORTH, NORTH_EAST, NORTH_WEST]);
        }
        if area.longitude.min < min_lon {
            leave_out([WEST, SOUTH_WEST, NORTH_WEST]);
        }
        if area.longitude.max > max_lon {
            leave_out([EAST, SOUTH_EAST, NORTH_EAST]);
        }
    }
    boxes
}

/// geohashEstimateStepsByRadius: the precision of the nine search boxes.
fn estimate_steps_by_radius(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2; // Make sure the range is included in most of the base cases.
               // Wider range towards the poles.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// geohashBoundingBox: (min longitude, min latitude, max longitude, max latitude).
fn bounding_box(search: &Search) -> (f64, f64, f64, f64) {
    let (lon, lat) = (search.longitude, search.latitude);
    let (height, width) = match search.shape {
        Shape::Radius(r) => (r, r),
        Shape::Box { width, height } => (height / 2.0, width / 2.0),
    };
    let height = height * search.conversion;
    let width = width * search.conversion;
    let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
    let long_delta_top = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
    let long_delta_bottom =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
    // The box is widest on the side nearer the equator.
    let long_delta = if lat < 0.0 {
        long_delta_bottom
    } else {
        long_delta_top
    };
    (
        lon - long_delta,
        lat - lat_delta,
        lon + long_delta,
        lat + lat_delta,
    )
}

/// The scores [min, max) of the members inside a box (scoresOfGeoHashBox).
pub fn score_range(hash: HashBits) -> (f64, f64) {
    let min = align52(hash);
    let max = align52(HashBits {
        bits: hash.bits + 1,
        step: hash.step,
    });
    (min as f64, max as f64)
}

/// The haversine distance in metres (Redis 7.0's geohashGetDistance).
pub fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lat1r = deg_rad(lat1d);
    let lon1r = deg_rad(lon1d);
    let lat2r = deg_rad(lat2d);
    let lon2r = deg_rad(lon2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let v = ((lon2r - lon1r) / 2.0).sin();
    2.0 * EARTH_RADIUS_IN_METERS * (u * u + lat1r.cos() * lat2r.cos() * v * v).sqrt().asin()
}

impl Search {
    /// geoWithinShape: the distance from the centre to a point inside the shape, None outside.
    pub fn distance_if_within(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.longitude, self.latitude, lon, lat);
                (d <= r * self.conversion).then_some(d)
            }
            Shape::Box { width, height } => {
                let (width_m, height_m) = (width * self.conversion, height * self.conversion);
                let lon_distance = distance(lon, lat, self.longitude, lat);
                let lat_distance = distance(lon, lat, lon, self.latitude);
                if lon_distance > width_m / 2.0 || lat_distance > height_m / 2.0 {
                    return None;
                }
                Some(distance(self.longitude, self.latitude, lon, lat))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for (x, y) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x3ffffff, 0x1234567),
            (u32::MAX, 7),
        ] {
            let v = interleave64(x, y);
            let back = deinterleave64(v);
            assert_eq!((back as u32, (back >> 32) as u32), (x, y));
        }
    }

    #[test]
    fn scores_match_redis() {
        // GEOADD k 13.361389 38.115556 Palermo 15.087269 37.502669 Catania on Redis 7.0.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909));
        assert_eq!(score_of(180.0000001, 0.0), None);
        let (lon, lat) = decode_score(3479099956230698.0).unwrap();
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        assert_eq!(&standard_geohash(lon, lat), b"sqc8b49rny0");
        let (lon2, lat2) = decode_score(3479447370796909.0).unwrap();
        let d = distance(lon, lat, lon2, lat2);
        assert_eq!(format!("{:.4}", d / 1000.0), "166.2742");
    }

    #[test]
    fn search_boxes_cover_the_area_in_redis_order() {
        let search = |longitude, latitude, shape| Search {
            longitude,
            latitude,
            shape,
            conversion: 1000.0,
        };
        // A small radius: the centre box at a fine step; neighbours the area does not reach
        // are left out.
        let boxes = search_boxes(&search(15.0, 37.0, Shape::Radius(1.0)));
        assert!(boxes[CENTER].step > 10 && !boxes[CENTER].is_zero());
        assert!(boxes
            .iter()
            .all(|b| b.is_zero() || b.step == boxes[CENTER].step));
        // A radius around the world: the coarsest step, where neighbours repeat.
        let boxes = search_boxes(&search(0.0, 0.0, Shape::Radius(20000.0)));
        assert_eq!(boxes[CENTER].step, 1);
        // An invalid centre searches nothing rather than failing.
        let nothing = search_boxes(&search(
            200.0,
            0.0,
            Shape::Box {
                width: 1.0,
                height: 1.0,
            },
        ));
        assert!(nothing.iter().all(HashBits::is_zero));
    }

    #[test]
    fn out_of_range_scores_convert_as_c_does() {
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(9e15), 9_000_000_000_000_000);
        assert_eq!(c_double_to_u64(1e300), 0);
        // A negative score decodes to the clamped corner, as Redis answers GEOPOS.
        assert_eq!(decode_score(-1.0), Some((180.0, LAT_MAX)));
    }
}
