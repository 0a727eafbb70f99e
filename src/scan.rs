//! `shardcap scan`: one JSON object a line per input.

use crate::cli::ScanArgs;
use crate::error::{Result, EXIT_OK, EXIT_SKIPPED};
use crate::input::discover;
use crate::input::survey::scan_file;

/// Runs `scan`: exit 3 when any input had problems.
pub fn run(args: ScanArgs) -> Result<i32> {
    let mut problems = false;
    for cand in discover::expand(&args.inputs)? {
        let report = scan_file(&cand.path);
        if report.format.is_none() && !cand.explicit {
            continue;
        }
        problems |= !report.problems.is_empty();
        println!("{}", serde_json::to_string(&report).expect("serialisable"));
    }
    Ok(if problems { EXIT_SKIPPED } else { EXIT_OK })
}
