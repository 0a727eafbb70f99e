//! The picture as a self-contained HTML page: the SVG inlined and a table of the sources (no
//! script, no external resource).

use std::fmt::Write;

use super::axis;
use super::{count, esc, size, Picture};

/// The page around `svg`.
pub fn page(p: &Picture, svg: &str) -> String {
    let mut s = String::with_capacity(svg.len() + (16 << 10));
    s.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>shardcap coverage</title><style>",
        "body{margin:0 0 16px 0;font:13px 'DejaVu Sans','Liberation Sans',Arial,sans-serif;color:#222;background:#fff}",
        "table{border-collapse:collapse;margin:12px 20px}",
        "th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}",
        "th{background:#f3f5f8}td:first-child,th:first-child{text-align:left}",
        ".bad{color:#9c1fb5;font-weight:bold}",
        "</style></head><body>\n"
    ));
    s.push_str(svg);
    s.push_str(concat!(
        "<table><thead><tr><th>source</th><th>files</th><th>packets</th><th>bytes</th>",
        "<th>first packet (UTC)</th><th>last packet (UTC)</th><th>gaps</th><th>overlaps</th>",
        "<th>damaged</th><th>copies</th></tr></thead><tbody>\n"
    ));
    let when =
        |ts: Option<u64>| ts.map_or(String::new(), |t| axis::stamp(t, "%Y-%m-%d %H:%M:%S%.3f"));
    for lane in &p.lanes {
        let bad = |n: usize| {
            if n > 0 {
                format!("<td class=\"bad\">{n}</td>")
            } else {
                "<td>0</td>".to_string()
            }
        };
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td>{}<td>{}</td></tr>",
            esc(&lane.label),
            count(lane.files as u64),
            count(lane.packets),
            size(lane.bytes),
            when(lane.span.map(|s| s.0)),
            when(lane.span.map(|s| s.1)),
            lane.gaps,
            axis::duration(lane.gap_ns),
            lane.overlaps,
            bad(lane.damaged),
            lane.copies
        );
    }
    s.push_str("</tbody></table>\n</body></html>\n");
    s
}
