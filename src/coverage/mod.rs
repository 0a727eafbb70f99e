//! The coverage picture of a pile of captures (`scan --report coverage.svg|.html`): one lane per
//! source, each file a bar from its first to its last packet, gaps, overlaps and damaged files
//! marked, the packet rate over time, totals in a legend.
//!
//! Everything is aggregated per pixel column before it is drawn, and the number of lanes is
//! capped (the smallest sources share one last lane), so the picture's size is bounded whatever
//! the number of files.

mod axis;
mod html;
mod svg;

use std::collections::HashMap;
use std::path::Path;

/// Columns of the time axis: one a pixel of the plot.
pub const COLUMNS: usize = 940;
/// Most lanes drawn; more sources share the last one.
pub const MAX_LANES: usize = 24;
/// Uncovered time inside a source's span shorter than this is not a gap (rotation, quiet links).
pub const GAP_MIN_NS: u64 = 1_000_000_000;

/// One capture of the pile, as the picture needs it.
#[derive(Debug, Clone)]
pub struct FileSpan {
    /// Its path.
    pub path: String,
    /// The source (sensor) it comes from: files of one source share a lane.
    pub source: String,
    /// First and last packet times; `None` without packets (or not a capture).
    pub span: Option<(u64, u64)>,
    pub packets: u64,
    pub bytes: u64,
    /// Damaged or unreadable.
    pub damaged: bool,
    /// The same packets as another file of the pile, or the first packets of a longer one.
    pub copy: bool,
}

/// The output format, from the report file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An SVG image.
    Svg,
    /// A self-contained HTML page: the SVG inlined, a table of the sources.
    Html,
}

impl Format {
    /// `.svg` or `.html`/`.htm`; anything else is refused.
    pub fn of(path: &Path) -> Result<Format, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("svg") => Ok(Format::Svg),
            Some("html" | "htm") => Ok(Format::Html),
            _ => Err(format!(
                "{}: the report is written as .svg or .html (by its extension)",
                path.display()
            )),
        }
    }
}

/// What a column of a lane shows, by priority (the highest met in the column wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Empty,
    Covered,
    Copy,
    Gap,
    Overlap,
    Damaged,
}

/// One lane: a source (or the sources that share the last lane).
#[derive(Debug)]
struct Lane {
    label: String,
    files: usize,
    packets: u64,
    bytes: u64,
    span: Option<(u64, u64)>,
    gaps: usize,
    gap_ns: u64,
    overlaps: usize,
    damaged: usize,
    copies: usize,
    cells: Vec<Cell>,
    /// Columns where a file starts (drawn when the lane has few files).
    starts: Vec<usize>,
}

/// Totals of the pile, for the legend.
#[derive(Debug, Default)]
struct Totals {
    files: usize,
    sources: usize,
    empty: usize,
    packets: u64,
    bytes: u64,
    gaps: usize,
    gap_ns: u64,
    overlaps: usize,
    damaged: usize,
    copies: usize,
}

/// The picture, aggregated per column.
#[derive(Debug)]
struct Picture {
    t0: u64,
    t1: u64,
    lanes: Vec<Lane>,
    /// Packets per column, each file's spread evenly over its span.
    rate: Vec<f64>,
    totals: Totals,
}

impl Picture {
    fn new(files: &[FileSpan]) -> Picture {
        let spans = files.iter().filter_map(|f| f.span);
        let t0 = spans.clone().map(|s| s.0).min().unwrap_or(0);
        let t1 = spans.map(|s| s.1).max().unwrap_or(0).max(t0 + 1);
        let mut by_source: HashMap<&str, Vec<&FileSpan>> = HashMap::new();
        for f in files {
            by_source.entry(&f.source).or_default().push(f);
        }
        // Lanes are labelled without the directories every source shares.
        let common = common_dir(by_source.keys().copied());
        let mut groups: Vec<(String, Vec<&FileSpan>)> = by_source
            .into_iter()
            .map(|(s, f)| (s[common..].to_string(), f))
            .collect();
        let sources = groups.len();
        if groups.len() > MAX_LANES {
            // The largest sources keep their lane; the others share the last one.
            groups.sort_by_key(|(s, f)| (std::cmp::Reverse(f.len()), s.clone()));
            let rest: Vec<&FileSpan> = groups.drain(MAX_LANES - 1..).flat_map(|(_, f)| f).collect();
            groups.sort_by(|a, b| a.0.cmp(&b.0));
            groups.push((format!("{} other sources", sources - MAX_LANES + 1), rest));
        } else {
            groups.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut p = Picture {
            t0,
            t1,
            lanes: Vec::new(),
            rate: vec![0.0; COLUMNS],
            totals: Totals {
                sources,
                ..Totals::default()
            },
        };
        for (label, files) in groups {
            let lane = p.lane(label, &files);
            let t = &mut p.totals;
            t.files += lane.files;
            t.packets += lane.packets;
            t.bytes += lane.bytes;
            t.gaps += lane.gaps;
            t.gap_ns += lane.gap_ns;
            t.overlaps += lane.overlaps;
            t.damaged += lane.damaged;
            t.copies += lane.copies;
            t.empty += files.iter().filter(|f| f.span.is_none()).count();
            p.lanes.push(lane);
        }
        p
    }

    /// The column of time `ts`, fractional.
    fn x(&self, ts: u64) -> f64 {
        (ts.saturating_sub(self.t0)) as f64 / (self.t1 - self.t0) as f64 * COLUMNS as f64
    }

    /// The columns `[a, b]` covers (at least one).
    fn cols(&self, a: u64, b: u64) -> std::ops::RangeInclusive<usize> {
        let c = |ts| (self.x(ts) as usize).min(COLUMNS - 1);
        c(a)..=c(b).max(c(a))
    }

    /// Aggregates one lane's files; adds their packets to the rate.
    fn lane(&mut self, label: String, files: &[&FileSpan]) -> Lane {
        let mut lane = Lane {
            label,
            files: files.len(),
            packets: files.iter().map(|f| f.packets).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            span: None,
            gaps: 0,
            gap_ns: 0,
            overlaps: 0,
            damaged: files.iter().filter(|f| f.damaged).count(),
            copies: files.iter().filter(|f| f.copy).count(),
            cells: vec![Cell::Empty; COLUMNS],
            starts: Vec::new(),
        };
        let mut spans: Vec<(u64, u64, &FileSpan)> = files
            .iter()
            .filter_map(|f| f.span.map(|(a, b)| (a, b.max(a), *f)))
            .collect();
        spans.sort_by_key(|s| (s.0, s.1));
        // Marks other than plain coverage are at least three columns wide, so they show.
        let mark = |cells: &mut [Cell], cols: std::ops::RangeInclusive<usize>, c: Cell| {
            let (mut a, mut b) = cols.into_inner();
            if c != Cell::Covered && b - a < 2 {
                (a, b) = (a.saturating_sub(1), (b + 1).min(COLUMNS - 1));
            }
            for cell in &mut cells[a..=b] {
                *cell = (*cell).max(c);
            }
        };
        let mut reach: Option<u64> = None;
        for &(a, b, f) in &spans {
            let kind = match (f.damaged, f.copy) {
                (true, _) => Cell::Damaged,
                (false, true) => Cell::Copy,
                _ => Cell::Covered,
            };
            mark(&mut lane.cells, self.cols(a, b), kind);
            if let Some(r) = reach {
                if a < r {
                    lane.overlaps += 1;
                    mark(&mut lane.cells, self.cols(a, b.min(r)), Cell::Overlap);
                } else if a - r >= GAP_MIN_NS {
                    lane.gaps += 1;
                    lane.gap_ns += a - r;
                    mark(&mut lane.cells, self.cols(r, a), Cell::Gap);
                }
            }
            reach = Some(reach.map_or(b, |r| r.max(b)));
            self.spread(a, b, f.packets);
        }
        if spans.len() <= COLUMNS / 8 {
            lane.starts = spans.iter().map(|s| *self.cols(s.0, s.0).start()).collect();
        }
        lane.span = spans
            .first()
            .zip(reach)
            .map(|(first, reach)| (first.0, reach));
        lane
    }

    /// Adds `packets` spread evenly over `[a, b]` to the rate.
    fn spread(&mut self, a: u64, b: u64, packets: u64) {
        let (xa, xb) = (self.x(a), self.x(b).min(COLUMNS as f64));
        if xb - xa < 1.0 {
            self.rate[(xa as usize).min(COLUMNS - 1)] += packets as f64;
            return;
        }
        let density = packets as f64 / (xb - xa);
        let mut x = xa;
        while x < xb {
            let col = x as usize;
            let next = ((col + 1) as f64).min(xb);
            self.rate[col.min(COLUMNS - 1)] += density * (next - x);
            x = next;
        }
    }

    /// Nanoseconds one column stands for.
    fn column_ns(&self) -> f64 {
        (self.t1 - self.t0) as f64 / COLUMNS as f64
    }
}

/// Renders the picture of `files`.
pub fn render(files: &[FileSpan], format: Format) -> String {
    let picture = Picture::new(files);
    let image = svg::draw(&picture);
    match format {
        Format::Svg => image,
        Format::Html => html::page(&picture, &image),
    }
}

/// Writes the picture of `files` to `path`, as its extension says.
pub fn write(path: &Path, files: &[FileSpan]) -> Result<(), String> {
    let format = Format::of(path)?;
    std::fs::write(path, render(files, format))
        .map_err(|e| format!("{}: cannot write the report: {e}", path.display()))
}

/// The length of the directory prefix (up to and with a `/`) all `names` share.
fn common_dir<'a>(mut names: impl Iterator<Item = &'a str>) -> usize {
    let Some(first) = names.next() else { return 0 };
    let mut len = first.rfind('/').map_or(0, |i| i + 1);
    for n in names {
        while !n.is_char_boundary(len) || n.get(..len) != first.get(..len) {
            len = first[..len.saturating_sub(1)]
                .rfind('/')
                .map_or(0, |i| i + 1);
        }
    }
    len
}

/// Text for an XML attribute or element.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// A count with thousands separated by thin spaces.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// Bytes in B, kB, MB, GB or TB.
fn size(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn file(source: &str, a: u64, b: u64) -> FileSpan {
        FileSpan {
            path: format!("{source}/{a}.pcap"),
            source: source.into(),
            span: Some((a * S, b * S)),
            packets: (b - a + 1) * 10,
            bytes: (b - a + 1) * 10_000,
            damaged: false,
            copy: false,
        }
    }

    #[test]
    fn gaps_overlaps_and_damage_are_found_per_source() {
        let mut files = vec![
            file("a", 0, 99),
            file("a", 99, 199),
            file("a", 250, 400),
            file("b", 0, 300),
            file("b", 200, 400),
        ];
        files[1].damaged = true;
        let p = Picture::new(&files);
        let (a, b) = (&p.lanes[0], &p.lanes[1]);
        assert_eq!((a.label.as_str(), b.label.as_str()), ("a", "b"));
        assert_eq!(common_dir(["/p/x/a", "/p/xy/b"].into_iter()), 3);
        assert_eq!(common_dir(["/p/x/a", "/p/x/b"].into_iter()), 5);
        assert_eq!((a.gaps, a.overlaps, a.damaged), (1, 0, 1));
        assert_eq!(a.gap_ns, 51 * S);
        assert_eq!((b.gaps, b.overlaps), (0, 1));
        assert!(a.cells.contains(&Cell::Damaged) && a.cells.contains(&Cell::Gap));
        assert!(b.cells.contains(&Cell::Overlap));
        let total: f64 = p.rate.iter().sum();
        let want: u64 = files.iter().map(|f| f.packets).sum();
        assert!(
            (total - want as f64).abs() < 1e-6 * want as f64,
            "{total} vs {want}"
        );
    }

    #[test]
    fn the_picture_stays_bounded_whatever_the_file_count() {
        // 40,000 one-minute files of 100 sources with short gaps, some damaged; then ten times
        // as many sources.
        let pile = |sources: u64| -> Vec<FileSpan> {
            (0..40_000u64)
                .map(|i| {
                    let t = (i / sources) * 61;
                    let mut f = file(&format!("/spool/s{:03}/cap", i % sources), t, t + 59);
                    f.damaged = i % 997 == 0;
                    f
                })
                .collect()
        };
        let small = render(&pile(100)[..400], Format::Html).len();
        for sources in [100, 1000] {
            let files = pile(sources);
            for format in [Format::Svg, Format::Html] {
                let out = render(&files, format);
                assert!(
                    out.len() < 400_000,
                    "{format:?} {sources}: {} bytes",
                    out.len()
                );
                assert!(
                    out.len() < 4 * small,
                    "{format:?} {sources}: {} bytes",
                    out.len()
                );
            }
            let p = Picture::new(&files);
            assert_eq!(p.lanes.len(), MAX_LANES.min(sources as usize));
            assert_eq!(p.totals.files, 40_000);
            assert_eq!(p.totals.sources, sources as usize);
        }
    }
}
