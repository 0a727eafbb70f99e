//! File outputs written past the page cache (`--file-io direct`, the default) leave it alone: the
//! outputs are on disk, not in memory, while `--file-io buffered` fills the cache with them. Both
//! write the same bytes (tests/zero_copy.rs; tests/partition.rs resumes direct outputs cut at a
//! checkpoint inside a block).

mod common;

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use common::{pile, shardcap};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::statfs::{statfs, TMPFS_MAGIC};

/// Bytes of `file` in the page cache, from util-linux's `fincore`.
fn resident(file: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(file)
        .output()
        .expect("fincore (util-linux) is needed to see what a file has in the page cache");
    assert!(out.status.success(), "fincore {}", file.display());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Fails, saying why, unless files in `dir` can be written past the page cache.
fn require_direct_io(dir: &Path) {
    let fs_type = statfs(dir).unwrap().filesystem_type();
    assert!(
        fs_type != TMPFS_MAGIC,
        "{} is on tmpfs, which keeps every file in memory: build in a target directory on a disk \
         filesystem (CARGO_TARGET_DIR) to run this test",
        dir.display()
    );
    let probe = File::create(dir.join("probe")).unwrap();
    let flags = OFlag::from_bits_truncate(fcntl(probe.as_raw_fd(), FcntlArg::F_GETFL).unwrap());
    assert!(
        fcntl(
            probe.as_raw_fd(),
            FcntlArg::F_SETFL(flags | OFlag::O_DIRECT)
        )
        .is_ok(),
        "the filesystem of {} refuses O_DIRECT: build in a target directory on one that takes it \
         (CARGO_TARGET_DIR)",
        dir.display()
    );
}

#[test]
fn direct_outputs_stay_out_of_the_page_cache_and_buffered_ones_do_not() {
    // In the target directory: on the disk with the checkout, where /tmp may be tmpfs.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    require_direct_io(tmp.path());
    let inputs = pile(&tmp.path().join("pile"), 4 << 20, 3);
    for io in ["direct", "buffered"] {
        let out = tmp.path().join(io);
        fs::create_dir_all(&out).unwrap();
        let pattern = format!("file:{}/s-{{shard}}.pcap", out.display());
        let mut args = vec!["run", "-q", "-n", "3", "--file-io", io, "-o", &pattern];
        args.extend(inputs.iter().map(String::as_str));
        let r = shardcap(&args);
        assert_eq!(r.code, 0, "{io}: {}", r.stderr);
        for k in 0..3 {
            let file = out.join(format!("s-{k}.pcap"));
            let (size, cached) = (fs::metadata(&file).unwrap().len(), resident(&file));
            assert!(size > 1 << 20, "{io}: shard {k} holds {size} bytes");
            if io == "direct" {
                // At most the last, partial block went through the cache.
                assert!(cached <= 8192, "{io}: {cached} of {size} bytes cached");
            } else {
                assert!(cached > size / 2, "{io}: {cached} of {size} bytes cached");
            }
        }
    }
}
