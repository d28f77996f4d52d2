//! LOLWUT: a piece of computer art, then the version, as Redis answers it.

use bytes::Bytes;

use super::util::lower;
use super::{commands, session, NO_KEYS};
use crate::protocol::Reply;
use crate::server_state::{unix_ms, REDIS_VERSION};
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "lolwut", -1, "readonly fast", NO_KEYS, "server", "5.0.0", session(lolwut), "Displays computer art and the Redis version";
}

/// LOLWUT [VERSION v]: a piece of computer art, then the version. WarpEngine draws Georg
/// Nees's "Schotter" (Redis's version 5) in Braille characters for every version.
pub fn lolwut(_s: &mut Session, args: &[Bytes]) -> Reply {
    let mut rest = &args[1..];
    if rest.len() >= 2 && lower(&rest[0]) == "version" {
        if std::str::from_utf8(&rest[1])
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .is_none()
        {
            return Reply::err("ERR value is not an integer or out of range");
        }
        rest = &rest[2..];
    }
    let num = |i: usize, default: i64| -> Result<i64, Reply> {
        match rest.get(i) {
            None => Ok(default),
            Some(a) => std::str::from_utf8(a)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| Reply::err("ERR value is not an integer or out of range")),
        }
    };
    let (cols, squares_per_row, squares_per_col) = match (num(0, 66), num(1, 8), num(2, 12)) {
        (Ok(a), Ok(b), Ok(c)) => (a.clamp(1, 1000), b.clamp(1, 200), c.clamp(1, 200)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let mut out = schotter(
        cols as usize * 2,
        squares_per_row as usize,
        squares_per_col as usize,
    );
    out.push_str(&format!(
        "\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. {REDIS_VERSION}\n"
    ));
    Reply::Verbatim(Bytes::from(out))
}

/// "Schotter": rows of squares, each row rotated and displaced a little more at random, drawn
/// on a pixel canvas shown as Braille characters (2x4 pixels each), as Redis's LOLWUT 5.
fn schotter(width: usize, squares_per_row: usize, squares_per_col: usize) -> String {
    let side = (width / squares_per_row).max(1);
    // At most 16 M pixels (Redis would draw 800 MB for LOLWUT 1000 1 200): fewer rows past it.
    let squares_per_col = squares_per_col.min(((1 << 24) / (width * side)).max(1));
    let height = side * squares_per_col;
    let padding = if width > 4 { 2 } else { 0 };
    let side_px = side.saturating_sub(padding).max(1) as f64;
    let mut canvas = vec![vec![false; width]; height];
    let mut seed = unix_ms() | 1;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1_000_000) as f64 / 1_000_000.0
    };
    for y in 0..squares_per_col {
        for x in 0..squares_per_row {
            let cx = (x * side + side / 2) as f64;
            let cy = (y * side + side / 2) as f64;
            let disorder = y as f64 / squares_per_col as f64;
            let angle = (random() - 0.5) * std::f64::consts::PI / 2.0 * disorder;
            let dx = (random() - 0.5) * side as f64 * disorder;
            let dy = (random() - 0.5) * side as f64 * disorder;
            draw_square(&mut canvas, cx + dx, cy + dy, side_px / 2.0, angle);
        }
    }
    braille(&canvas)
}

fn draw_square(canvas: &mut [Vec<bool>], cx: f64, cy: f64, half: f64, angle: f64) {
    let corner = |k: f64| {
        let a = angle + std::f64::consts::FRAC_PI_4 + k * std::f64::consts::FRAC_PI_2;
        let r = half * std::f64::consts::SQRT_2;
        (cx + r * a.cos(), cy + r * a.sin())
    };
    for k in 0..4 {
        let (x0, y0) = corner(k as f64);
        let (x1, y1) = corner((k + 1) as f64);
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            if x >= 0.0 && y >= 0.0 {
                if let Some(px) = canvas
                    .get_mut(y as usize)
                    .and_then(|row| row.get_mut(x as usize))
                {
                    *px = true;
                }
            }
        }
    }
}

/// The canvas as lines of Braille characters, each 2 pixels wide and 4 high.
fn braille(canvas: &[Vec<bool>]) -> String {
    const DOT: [[u32; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];
    let width = canvas.first().map_or(0, Vec::len);
    let mut out = String::new();
    for y in (0..canvas.len()).step_by(4) {
        for x in (0..width).step_by(2) {
            let mut bits = 0;
            for (dy, row) in DOT.iter().enumerate() {
                for (dx, bit) in row.iter().enumerate() {
                    if canvas
                        .get(y + dy)
                        .and_then(|r| r.get(x + dx))
                        .copied()
                        .unwrap_or(false)
                    {
                        bits |= bit;
                    }
                }
            }
            out.push(char::from_u32(0x2800 + bits).unwrap_or(' '));
        }
        out.push('\n');
    }
    out
}
