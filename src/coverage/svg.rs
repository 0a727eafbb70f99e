//! The picture as SVG text: title, packet rate, one lane a source, time axis, legend.

use std::fmt::Write;

use super::axis;
use super::{count, esc, size, Cell, Picture, COLUMNS, GAP_MIN_NS};

/// Width of the image.
pub const WIDTH: usize = 1200;
/// Left of the plot (lane labels before it).
const LEFT: usize = 230;
const RATE_TOP: usize = 64;
const RATE_HEIGHT: usize = 100;
const LANES_TOP: usize = RATE_TOP + RATE_HEIGHT + 22;
const LANE: usize = 24;
const BAR: usize = 16;
const LEGEND_ROW: usize = 22;

/// Colours: one a meaning.
pub const BACKGROUND: &str = "#ffffff";
pub const COVERED: &str = "#4e79a7";
pub const COPY: &str = "#8cd17d";
pub const GAP: &str = "#f2a7a7";
pub const OVERLAP: &str = "#f28e2b";
pub const DAMAGED: &str = "#9c1fb5";
pub const RATE: &str = "#76b7b2";
const RATE_LINE: &str = "#3d8c86";
const GRID: &str = "#dddddd";
const STRIPE: &str = "#f3f5f8";
const TEXT: &str = "#222222";
const MUTED: &str = "#666666";

fn colour(c: Cell) -> &'static str {
    match c {
        Cell::Empty => BACKGROUND,
        Cell::Covered => COVERED,
        Cell::Copy => COPY,
        Cell::Gap => GAP,
        Cell::Overlap => OVERLAP,
        Cell::Damaged => DAMAGED,
    }
}

/// Draws `p` as an SVG document.
pub fn draw(p: &Picture) -> String {
    let lanes_end = LANES_TOP + p.lanes.len().max(1) * LANE;
    let axis_y = lanes_end + 4;
    let legend_y = axis_y + 44;
    let height = legend_y + 4 * LEGEND_ROW + 12;
    let mut s = String::with_capacity(64 << 10);
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="12" fill="{TEXT}">"#
    );
    let _ = write!(
        s,
        r#"<rect width="{WIDTH}" height="{height}" fill="{BACKGROUND}"/>"#
    );
    title(&mut s, p);
    grid(&mut s, p, lanes_end);
    rate(&mut s, p);
    for (i, lane) in p.lanes.iter().enumerate() {
        let y = LANES_TOP + i * LANE;
        lane_row(&mut s, lane, y, i);
    }
    legend(&mut s, p, legend_y);
    s.push_str("</svg>\n");
    s
}

fn title(s: &mut String, p: &Picture) {
    let t = &p.totals;
    let _ = write!(
        s,
        r#"<text x="20" y="26" font-size="17" font-weight="bold">Coverage of {} files from {} sources</text>"#,
        count(t.files as u64),
        count(t.sources as u64)
    );
    let range = if t.packets == 0 {
        "no packets".to_string()
    } else {
        format!(
            "{} – {} UTC ({})",
            axis::stamp(p.t0, "%Y-%m-%d %H:%M:%S"),
            axis::stamp(p.t1, "%Y-%m-%d %H:%M:%S"),
            axis::duration(p.t1 - p.t0)
        )
    };
    let _ = write!(
        s,
        r#"<text x="20" y="46" fill="{MUTED}">{}</text>"#,
        esc(&range)
    );
}

/// Vertical lines at the ticks across the rate and the lanes, and the axis labels below.
fn grid(s: &mut String, p: &Picture, lanes_end: usize) {
    let ticks = axis::ticks(p.t0, p.t1, 10);
    let mut d = String::new();
    for (t, _) in &ticks {
        let x = LEFT as f64 + p.x(*t);
        let _ = write!(d, "M{x:.1} {RATE_TOP}V{}", lanes_end + 6);
    }
    let _ = write!(
        s,
        r#"<path d="{d}" stroke="{GRID}" stroke-width="1" fill="none"/>"#
    );
    let _ = write!(
        s,
        r#"<path d="M{LEFT} {y}H{}" stroke="{MUTED}" stroke-width="1"/>"#,
        LEFT + COLUMNS,
        y = lanes_end + 4
    );
    for (t, label) in &ticks {
        let x = LEFT as f64 + p.x(*t);
        // A label at the right end ends there, inside the image.
        let anchor = if x > (LEFT + COLUMNS - 40) as f64 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="{anchor}" fill="{MUTED}">{}</text>"#,
            lanes_end + 22,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end" fill="{MUTED}">packet time (UTC)</text>"#,
        LEFT + COLUMNS,
        lanes_end + 38
    );
}

/// The packet rate as an area over the lanes.
fn rate(s: &mut String, p: &Picture) {
    let column_s = p.column_ns() / 1e9;
    let max = p.rate.iter().copied().fold(0.0, f64::max);
    let base = (RATE_TOP + RATE_HEIGHT) as f64;
    let mut d = format!("M{LEFT} {base}");
    for (i, r) in p.rate.iter().enumerate() {
        // Any packet lifts the line by a pixel at least, so quiet periods are told from silence.
        let y = if *r > 0.0 {
            base - (r / max * RATE_HEIGHT as f64).max(1.5)
        } else {
            base
        };
        let _ = write!(d, "L{} {y:.1}H{}", LEFT + i, LEFT + i + 1);
    }
    let _ = write!(d, "L{} {base}Z", LEFT + COLUMNS);
    let _ = write!(
        s,
        r#"<path d="{d}" fill="{RATE}" stroke="{RATE_LINE}" stroke-width="0.8" stroke-linejoin="round"/>"#
    );
    let _ = write!(
        s,
        r#"<path d="M{LEFT} {base}H{}" stroke="{MUTED}" stroke-width="1"/>"#,
        LEFT + COLUMNS
    );
    let peak = if column_s > 0.0 { max / column_s } else { 0.0 };
    let _ = write!(
        s,
        r#"<text x="{x}" y="{}" text-anchor="end" font-weight="bold">packets/s</text><text x="{x}" y="{}" text-anchor="end" fill="{MUTED}">peak {}</text><text x="{x}" y="{base}" text-anchor="end" fill="{MUTED}">0</text>"#,
        RATE_TOP + 12,
        RATE_TOP + 28,
        count(peak.round() as u64),
        x = LEFT - 8
    );
}

fn lane_row(s: &mut String, lane: &super::Lane, y: usize, i: usize) {
    if i % 2 == 1 {
        let _ = write!(
            s,
            r#"<rect x="0" y="{y}" width="{WIDTH}" height="{LANE}" fill="{STRIPE}"/>"#
        );
    }
    let label = short(&lane.label, 34);
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end"><title>{} — {} files, {} packets, {}</title>{}</text>"#,
        LEFT - 8,
        y + LANE / 2 + 4,
        esc(&lane.label),
        count(lane.files as u64),
        count(lane.packets),
        size(lane.bytes),
        esc(&label)
    );
    let top = y + (LANE - BAR) / 2;
    runs(s, lane, Cell::Covered, top);
    if !lane.starts.is_empty() {
        let mut d = String::new();
        for &c in &lane.starts {
            let _ = write!(d, "M{}.5 {top}v{BAR}", LEFT + c);
        }
        let _ = write!(
            s,
            r#"<path d="{d}" stroke="{BACKGROUND}" stroke-width="1" shape-rendering="crispEdges"/>"#
        );
    }
    for kind in [Cell::Copy, Cell::Gap, Cell::Overlap, Cell::Damaged] {
        runs(s, lane, kind, top);
    }
}

/// The lane's runs of columns showing `kind`, as one path.
fn runs(s: &mut String, lane: &super::Lane, kind: Cell, top: usize) {
    let mut d = String::new();
    let mut col = 0;
    while col < COLUMNS {
        if lane.cells[col] != kind {
            col += 1;
            continue;
        }
        let start = col;
        while col < COLUMNS && lane.cells[col] == kind {
            col += 1;
        }
        let w = col - start;
        let _ = write!(d, "M{} {top}h{w}v{BAR}h-{w}z", LEFT + start);
    }
    if !d.is_empty() {
        let _ = write!(
            s,
            r#"<path d="{d}" fill="{}" shape-rendering="crispEdges"/>"#,
            colour(kind)
        );
    }
}

fn legend(s: &mut String, p: &Picture, y: usize) {
    let t = &p.totals;
    let items = [
        (
            COVERED,
            format!(
                "captured: {} files, {} packets, {}",
                count(t.files as u64),
                count(t.packets),
                size(t.bytes)
            ),
        ),
        (
            GAP,
            format!(
                "gap of {} or more in a source: {} ({} in all)",
                axis::duration(GAP_MIN_NS),
                count(t.gaps as u64),
                axis::duration(t.gap_ns)
            ),
        ),
        (
            OVERLAP,
            format!(
                "overlap of files of one source: {}",
                count(t.overlaps as u64)
            ),
        ),
        (
            DAMAGED,
            format!("damaged file: {}", count(t.damaged as u64)),
        ),
        (
            COPY,
            format!(
                "duplicate or partial copy of another file: {}",
                count(t.copies as u64)
            ),
        ),
        (
            RATE,
            "packet rate (each file's packets spread over its span)".to_string(),
        ),
    ];
    for (i, (c, text)) in items.iter().enumerate() {
        let x = 20 + (i % 2) * 560;
        let row = y + (i / 2) * LEGEND_ROW;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="14" height="14" fill="{c}"/><text x="{}" y="{}">{}</text>"#,
            row - 11,
            x + 22,
            row,
            esc(text)
        );
    }
    let mut note = format!(
        "one lane per source ({} lanes{})",
        p.lanes.len(),
        if t.sources > p.lanes.len() {
            ", the smallest sources share the last"
        } else {
            ""
        }
    );
    if t.empty > 0 {
        let _ = write!(note, "; {} files without packets", count(t.empty as u64));
    }
    let _ = write!(
        s,
        r#"<text x="20" y="{}" fill="{MUTED}">{}</text>"#,
        y + 3 * LEGEND_ROW,
        esc(&note)
    );
}

/// `s` cut to its last `max` characters, with an ellipsis.
fn short(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}
