//! `shardcap generate`: realistic multi-sensor traffic written as size-rotated captures, the way
//! `tcpdump -C` leaves them, for samples, tests and benchmarks. Deterministic for a seed.

pub mod content;
pub mod conversation;
pub mod datagram;
pub mod packet;
pub mod rng;
pub mod rotate;
pub mod tcp;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rotate::{Compress, RotatingWriter};
use traffic::Traffic;

/// Why captures could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The output directory could not be created.
    #[error("{}: cannot create directory: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A capture could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result with the generator's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Capture start of the first sensor: 2024-03-01 12:00:00 UTC.
const START_SECS: u64 = 1_709_294_400;
/// How much later each further sensor starts capturing.
const SENSOR_OFFSET_NS: u64 = 1_300_000_000;

/// What `shardcap generate` writes.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Directory to write the captures to (created if missing).
    pub out: PathBuf,
    /// Number of sensors (1 to 26); each sees its own LAN's traffic over overlapping time.
    pub sensors: u8,
    /// Files each sensor writes (rotated by size).
    pub files_per_sensor: u32,
    /// Size of each file before rotation, like `tcpdump -C`.
    pub size: u64,
    /// Seed of the traffic model: the same seed writes the same bytes.
    pub seed: u64,
    /// Nanosecond timestamps (pcap magic a1b23c4d) instead of microseconds.
    pub nanos: bool,
    /// Compress each file with gzip (NAME.gz).
    pub gzip: bool,
    /// Compress each file with zstd (NAME.zst).
    pub zstd: bool,
    /// Time the captures span.
    pub duration: Duration,
}

/// What one sensor wrote.
#[derive(Debug, Clone)]
pub struct SensorOutput {
    pub files: Vec<PathBuf>,
    pub packets: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Writes the captures of every sensor (one thread each); returns what each wrote.
pub fn generate(args: &GenerateConfig) -> Result<Vec<SensorOutput>> {
    std::fs::create_dir_all(&args.out).map_err(|source| Error::CreateDir {
        path: args.out.clone(),
        source,
    })?;
    let compress = match (args.gzip, args.zstd) {
        (true, _) => Compress::Gzip,
        (_, true) => Compress::Zstd,
        _ => Compress::None,
    };
    let per_sensor = args.size as f64 * args.files_per_sensor as f64;
    let rate = per_sensor / args.duration.as_secs_f64().max(0.001);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.sensors)
            .map(|k| scope.spawn(move || sensor(args, k, compress, rate)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("generator thread panicked"))
            .collect()
    })
}

fn sensor(args: &GenerateConfig, k: u8, compress: Compress, rate: f64) -> Result<SensorOutput> {
    let start = START_SECS * 1_000_000_000 + k as u64 * SENSOR_OFFSET_NS;
    let mut traffic = Traffic::new(args.seed, k, start, rate);
    let name = format!("sensor{}.pcap", (b'A' + k) as char);
    let mut writer = RotatingWriter::new(
        &args.out,
        &name,
        compress,
        args.nanos,
        args.size,
        args.files_per_sensor as usize,
    );
    let failed = |source| Error::Write {
        path: args.out.clone(),
        source,
    };
    let mut frame = Vec::with_capacity(2048);
    let (mut first, mut last) = (None, 0);
    loop {
        let t = traffic.next_frame(&mut frame);
        if !writer.write(t, &frame).map_err(failed)? {
            break;
        }
        first.get_or_insert(t);
        last = t;
    }
    let packets = writer.packets;
    Ok(SensorOutput {
        files: writer.finish().map_err(failed)?,
        packets,
        first_ns: first.unwrap_or(start),
        last_ns: last,
    })
}

/// Runs `shardcap generate` and prints one summary line per sensor.
pub fn run(args: GenerateConfig) -> Result<()> {
    let started = Instant::now();
    let outputs = generate(&args)?;
    let bytes: u64 = outputs
        .iter()
        .flat_map(|o| &o.files)
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    for o in &outputs {
        println!(
            "{}: {} files, {} packets, {:.1}s of traffic from {}",
            name_of(&o.files[0]),
            o.files.len(),
            o.packets,
            (o.last_ns - o.first_ns) as f64 / 1e9,
            o.first_ns / 1_000_000_000
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {:.1} MB to {} in {secs:.2}s ({:.0} MB/s)",
        bytes as f64 / 1e6,
        args.out.display(),
        bytes as f64 / 1e6 / secs
    );
    Ok(())
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}
