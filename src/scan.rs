//! `shardcap scan`: one JSON object a line per input.

use crate::cli::ScanArgs;
use crate::error::{Error, Result, EXIT_OK, EXIT_SKIPPED};
use crate::input::discover;
use crate::input::span::SpanCache;
use crate::input::survey::scan_file;

/// Runs `scan`: exit 3 when any input had problems. With `--since`/`--until`, only the files
/// with packets in the range are described.
pub fn run(args: ScanArgs) -> Result<i32> {
    let range = args.range.range()?;
    let mut spans = match range.is_all() {
        true => None,
        false => Some(open_cache(&args)?),
    };
    let mut problems = false;
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
        problems |= !report.problems.is_empty();
        println!("{}", serde_json::to_string(&report).expect("serialisable"));
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
