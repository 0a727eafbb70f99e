//! `shardcap scan`: one JSON object a line per input, the duplicates and partial copies among
//! them, and optionally their coverage picture.

use crate::cli::ScanArgs;
use crate::coverage::{self, FileSpan};
use crate::error::{Error, Result, EXIT_OK, EXIT_SKIPPED};
use crate::input::discover;
use crate::input::duplicates::{self, Relation, Scanned};
use crate::input::span::SpanCache;
use crate::input::survey::{scan_file, ScanReport};
use crate::input::watch::source_of;

/// Runs `scan`: exit 3 when any input had problems. With `--since`/`--until`, only the files
/// with packets in the range are described.
pub fn run(args: ScanArgs) -> Result<i32> {
    let range = args.range.range()?;
    let mut spans = match range.is_all() {
        true => None,
        false => Some(open_cache(&args)?),
    };
    let mut reports = Vec::new();
    for cand in discover::expand(&args.inputs)? {
        if let Some(spans) = &mut spans {
            if spans.candidate_outside(&range, &cand) {
                continue;
            }
        }
        let report = scan_file(&cand.path);
        if report.format.is_none() && !cand.explicit {
            continue;
        }
        reports.push(report);
    }
    relate(&mut reports);
    let mut problems = false;
    for report in &reports {
        problems |= !report.problems.is_empty();
        println!("{}", serde_json::to_string(report).expect("serialisable"));
    }
    if let Some(path) = &args.report {
        let files: Vec<FileSpan> = reports.iter().map(span).collect();
        coverage::write(path, &files).map_err(Error::runtime)?;
        log::info!("{}: coverage picture written", path.display());
    }
    if let Some(spans) = &mut spans {
        spans.save_or_warn();
    }
    Ok(if problems { EXIT_SKIPPED } else { EXIT_OK })
}

/// The `--catalog-cache` file's cache (in memory only without it).
fn open_cache(args: &ScanArgs) -> Result<SpanCache> {
    let file = args.range.catalog_cache.as_deref();
    SpanCache::open(file).map_err(|e| {
        Error::usage(format!(
            "--catalog-cache {}: {e}",
            file.unwrap_or(std::path::Path::new("")).display()
        ))
    })
}

/// Finds the files that hold another's packets, or its first packets, and says so.
fn relate(reports: &mut [ScanReport]) {
    let scanned: Vec<Scanned> = reports
        .iter()
        .map(|r| Scanned {
            path: std::path::Path::new(&r.path),
            first_ts: r.first_ts,
            packets: r.packets,
            intact: r.format.is_some(),
        })
        .collect();
    let relations = duplicates::relations(&scanned);
    for (i, rel) in relations.into_iter().enumerate() {
        let Some(rel) = rel else { continue };
        let j = match rel {
            Relation::DuplicateOf(j) | Relation::PrefixOf(j) => j,
        };
        let (other, other_packets) = (reports[j].path.clone(), reports[j].packets);
        let r = &mut reports[i];
        match rel {
            Relation::DuplicateOf(_) => {
                log::warn!(
                    "{}: the same packets as {other} (a duplicate: `run` reads it once)",
                    r.path
                );
                r.duplicate_of = Some(other);
            }
            Relation::PrefixOf(_) => {
                log::warn!(
                    "{}: its {} packets are the first {} of the {other_packets} packets of \
                     {other} (a partial copy: `run` reads both)",
                    r.path,
                    r.packets,
                    r.packets
                );
                r.prefix_of = Some(other);
            }
        }
    }
}

/// What the coverage picture needs of a report.
fn span(r: &ScanReport) -> FileSpan {
    FileSpan {
        path: r.path.clone(),
        source: source_of(std::path::Path::new(&r.path)),
        span: r.first_ts.zip(r.last_ts),
        packets: r.packets,
        bytes: r.bytes,
        damaged: !r.problems.is_empty(),
        copy: r.duplicate_of.is_some() || r.prefix_of.is_some(),
    }
}
