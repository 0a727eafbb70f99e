//! `shardcap state show`: what a journal holds, as text or JSON.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use super::journal::{Contents, Outcome};
use crate::error::{Error, Result, EXIT_OK};

/// Totals over the finished files.
#[derive(Debug, Serialize)]
struct Counts {
    files: usize,
    complete: usize,
    damaged: usize,
    skipped: usize,
    packets: u64,
}

/// The JSON form: the journal's committed contents and the totals.
#[derive(Serialize)]
struct Report<'a> {
    status: &'static str,
    counts: Counts,
    #[serde(flatten)]
    contents: &'a Contents,
}

/// Prints the journal in `--state DIR`.
pub fn run(state: &Path, json: bool) -> Result<i32> {
    if !state.join(super::journal::JOURNAL_FILE).exists() {
        return Err(Error::usage(format!(
            "--state {}: no journal there (give the directory used with `run --state`)",
            state.display()
        )));
    }
    let c = Contents::load(state)?;
    let count = |o: Outcome| c.files.iter().filter(|f| f.outcome == o).count();
    let counts = Counts {
        files: c.files.len(),
        complete: count(Outcome::Complete),
        damaged: count(Outcome::Damaged),
        skipped: count(Outcome::Skipped),
        packets: c.files.iter().map(|f| f.packets).sum(),
    };
    let status = match (&c.done, &c.checkpoint) {
        (Some(_), _) => "complete",
        (None, Some(_)) => "resumable",
        (None, None) => "no checkpoint",
    };
    let mut out = io::stdout().lock();
    if json {
        let report = Report {
            status,
            counts,
            contents: &c,
        };
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(|e| Error::runtime(e.to_string()))?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    writeln!(out, "state {}: {status}", state.display())?;
    if let Some(r) = &c.run {
        writeln!(
            out,
            "run: -o {} -n {} --hash {} --tunnel {}; created {}, last started {}, restarts {}",
            r.key.output,
            r.key.shards,
            r.key.hash,
            r.key.tunnel,
            time(r.created),
            time(r.started),
            r.restarts
        )?;
    }
    writeln!(
        out,
        "finished files: {} ({} complete, {} damaged, {} skipped), {} packets",
        counts.files, counts.complete, counts.damaged, counts.skipped, counts.packets
    )?;
    for f in &c.files {
        let detail = f
            .detail
            .as_deref()
            .map_or(String::new(), |d| format!(" ({d})"));
        writeln!(
            out,
            "  {:?} {} bytes head {} packets {} {:?}{detail}",
            f.id.path, f.id.size, f.id.head, f.packets, f.outcome
        )?;
    }
    match &c.checkpoint {
        Some(cp) => {
            writeln!(
                out,
                "checkpoint {} at {} ({:?}): {} files in flight",
                cp.seq,
                time(cp.time),
                cp.reason,
                cp.open.len()
            )?;
            for f in &cp.open {
                writeln!(
                    out,
                    "  {:?} at byte {} of {}, {} packets streamed",
                    f.id.path, f.offset, f.id.size, f.packets
                )?;
            }
            writeln!(out, "outputs:")?;
            for o in &cp.outputs {
                writeln!(out, "  shard {} {} {} bytes", o.shard, o.name, o.bytes)?;
            }
        }
        None => writeln!(out, "no checkpoint yet")?,
    }
    if let Some(d) = &c.done {
        writeln!(
            out,
            "done at {}: {} files, {} packets",
            time(d.time),
            d.files,
            d.packets
        )?;
    }
    if c.uncommitted > 0 || c.torn {
        writeln!(
            out,
            "after the checkpoint: {} uncommitted file records{} (a restart streams them again)",
            c.uncommitted,
            if c.torn { " and a torn last line" } else { "" }
        )?;
    }
    Ok(EXIT_OK)
}

/// Seconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn time(epoch: u64) -> String {
    let t = shardcap_ship::timestamp::utc_civil(i64::try_from(epoch).unwrap_or(i64::MAX));
    format!("{} UTC", t.strftime("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::time(1_709_251_199), "2024-02-29 23:59:59 UTC");
    }
}
