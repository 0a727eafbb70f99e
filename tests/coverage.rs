//! `scan` over a pile from several sensors: duplicates and partial copies reported (JSON and
//! text), and the coverage picture (`--report`, SVG and HTML) rendered by headless Chromium to a
//! PNG that shows the lanes, the packet rate and the damaged file in their colours.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{read_capture, wait_until, write_pcap, ChildGuard};

/// Colours of the picture (src/coverage/svg.rs).
const COVERED: [u8; 3] = [0x4e, 0x79, 0xa7];
const DAMAGED: [u8; 3] = [0x9c, 0x1f, 0xb5];
const GAP: [u8; 3] = [0xf2, 0xa7, 0xa7];
const COPY: [u8; 3] = [0x8c, 0xd1, 0x7d];
const RATE: [u8; 3] = [0x76, 0xb7, 0xb2];

/// Three generated sensors over ten minutes; sensor 1 lost a file (a gap), one of sensor 2's
/// files is cut in the middle of a record (damaged); `spare/` holds a byte copy of a file and
/// a partial copy (its first 40 packets). Returns the pile, the copied file and the copies.
fn pile(root: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = root.join("pile");
    let run = common::shardcap([
        "generate",
        "--out",
        dir.to_str().unwrap(),
        "--sensors",
        "3",
        "--files-per-sensor",
        "8",
        "--size",
        "64K",
        "--duration",
        "10m",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let of = |sensor: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = names
            .iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(sensor))
            .cloned()
            .collect();
        // Rotation order: NAME, NAME1, NAME2, ...
        v.sort_by_key(|p| (p.to_string_lossy().len(), p.clone()));
        v
    };
    let sensors: Vec<String> = {
        let mut s: Vec<String> = names
            .iter()
            .map(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.trim_end_matches(|c: char| c.is_ascii_digit()).to_string()
            })
            .collect();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(sensors.len(), 3, "{names:?}");
    let (s0, s1, s2) = (of(&sensors[0]), of(&sensors[1]), of(&sensors[2]));
    fs::remove_file(&s1[4]).unwrap();
    let cut = &s2[3];
    let len = fs::metadata(cut).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(cut).unwrap();
    f.set_len(len / 2 + 7).unwrap();
    fs::create_dir_all(dir.join("spare")).unwrap();
    let copied = s0[2].clone();
    let dup = dir.join("spare/collected-a.pcap");
    fs::copy(&copied, &dup).unwrap();
    let cap = read_capture(&copied);
    let prefix = dir.join("spare/partial-b.pcap");
    write_pcap(&prefix, 1, false, &cap.recs()[..40]);
    (dir, copied, dup, prefix)
}

/// Renders `page` (HTML or SVG) with headless Chromium to a PNG of `width` × `height`.
fn screenshot(page: &Path, png: &Path, width: u32, height: u32) {
    let chromium = std::env::var("SHARDCAP_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(&chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--screenshot={}", png.display()))
    .arg(format!("--window-size={width},{height}"))
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => ChildGuard(Some(c)),
        Err(e) => panic!(
            "{chromium} is missing ({e}): install Debian's chromium package (scripts/ci/install-deps \
             does) or set SHARDCAP_TEST_CHROMIUM"
        ),
    };
    wait_until("chromium to write its screenshot", || !child.running());
    assert!(
        child.wait().success(),
        "{chromium} failed on {}",
        page.display()
    );
}

/// How many pixels of each colour the PNG at `path` has, and its size.
fn colours(path: &Path) -> (HashMap<[u8; 3], usize>, usize) {
    let decoder = png::Decoder::new(fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let mut counts = HashMap::new();
    for px in buf[..info.buffer_size()].chunks(channels) {
        *counts.entry([px[0], px[1], px[2]]).or_insert(0) += 1;
    }
    (counts, (info.width * info.height) as usize)
}

#[test]
fn scan_reports_copies_and_draws_a_coverage_picture_chromium_renders() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, copied, dup, prefix) = pile(tmp.path());
    let html = tmp.path().join("coverage.html");
    let svg = tmp.path().join("coverage.svg");
    let mut texts = Vec::new();
    for report in [&html, &svg] {
        let run = common::shardcap([
            "scan",
            "--report",
            report.to_str().unwrap(),
            dir.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 3, "a damaged file: exit 3; {}", run.stderr);
        let lines: Vec<serde_json::Value> = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of = |p: &Path| {
            lines
                .iter()
                .find(|l| l["path"] == p.to_str().unwrap())
                .unwrap_or_else(|| panic!("{} not scanned", p.display()))
        };
        assert_eq!(of(&dup)["duplicate_of"], copied.to_str().unwrap());
        assert_eq!(of(&prefix)["prefix_of"], copied.to_str().unwrap());
        assert!(
            of(&copied).get("prefix_of").is_none() && of(&copied).get("duplicate_of").is_none()
        );
        let related = lines
            .iter()
            .filter(|l| l.get("prefix_of").is_some() || l.get("duplicate_of").is_some())
            .count();
        assert_eq!(related, 2, "only the two copies are related");
        let partial = format!(
            "{}: its 40 packets are the first 40 of the {} packets of {} (a partial copy",
            prefix.display(),
            read_capture(&copied).packets.len(),
            copied.display()
        );
        assert!(
            run.stderr.contains(&partial),
            "no {partial:?} in {}",
            run.stderr
        );
        texts.push(fs::read_to_string(report).unwrap());
    }
    let (page, image) = (&texts[0], &texts[1]);
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains(image.trim_end()));
    assert!(image.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    for text in &texts {
        for external in [
            "http:", "https:", "src=", "href=", "url(", "@import", "<script",
        ] {
            let found = text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            assert!(
                !found.contains(external),
                "the report refers out: {external}"
            );
        }
    }

    for (page, height) in [(&html, 900), (&svg, 520)] {
        let png = page.with_extension("png");
        screenshot(page, &png, 1200, height);
        let (counts, total) = colours(&png);
        let of = |c: [u8; 3]| counts.get(&c).copied().unwrap_or(0);
        let background = of([0xff, 0xff, 0xff]);
        // Beyond its 14 × 14 legend swatch, each colour must be in the plot.
        for (what, c, least) in [
            ("covered", COVERED, 20_000),
            ("damaged", DAMAGED, 40),
            ("gap", GAP, 1_000),
            ("copy", COPY, 80),
            ("rate", RATE, 20),
        ] {
            assert!(
                of(c) >= 14 * 14 + least,
                "{}: {} pixels of the {what} colour {c:02x?}, want {least} beyond the legend's",
                png.display(),
                of(c)
            );
        }
        assert!(
            total - background > total / 10,
            "{}: only {} of {total} pixels are not background",
            png.display(),
            total - background
        );
        assert!(
            counts.len() > 20,
            "{}: {} colours",
            png.display(),
            counts.len()
        );
    }
}
