//! Size-rotated capture files as `tcpdump -C SIZE -w NAME` writes them: `NAME`, `NAME1`, `NAME2`,
//! ..., each a complete little-endian pcap file, optionally gzip- or zstd-compressed after the fact
//! like `tcpdump -z` (`NAME1.gz`). Records are gathered in a large buffer and written in big chunks.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use shardcap_capture::format::{StreamHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN};

/// Bytes gathered before a write.
const CHUNK: usize = 4 << 20;

/// Compression applied to each finished file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    None,
    Gzip,
    Zstd,
}

enum Sink {
    Plain(File),
    Gzip(flate2::write::GzEncoder<File>),
    Zstd(zstd::stream::write::Encoder<'static, File>),
}

impl Sink {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(f) => f.write_all(buf),
            Sink::Gzip(g) => g.write_all(buf),
            Sink::Zstd(z) => z.write_all(buf),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Plain(_) => Ok(()),
            Sink::Gzip(g) => g.finish().map(drop),
            Sink::Zstd(z) => z.finish().map(drop),
        }
    }
}

/// Writes one sensor's packets into size-rotated pcap files.
pub struct RotatingWriter {
    dir: PathBuf,
    name: String,
    compress: Compress,
    header: StreamHeader,
    limit: u64,
    max_files: usize,
    sink: Option<Sink>,
    /// Uncompressed bytes in the current file.
    size: u64,
    buf: Vec<u8>,
    /// Files written so far (the current one last).
    pub files: Vec<PathBuf>,
    /// Packets written.
    pub packets: u64,
}

impl RotatingWriter {
    /// Writes `dir/name`, `dir/name1`, ... of about `limit` bytes each (a file is closed at the first
    /// packet that finds it at or over the limit), at most `max_files` of them.
    pub fn new(
        dir: &Path,
        name: &str,
        compress: Compress,
        nanos: bool,
        limit: u64,
        max_files: usize,
    ) -> Self {
        RotatingWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            compress,
            header: StreamHeader {
                linktype: 1,
                nanos,
                snaplen: 262_144,
            },
            limit,
            max_files,
            sink: None,
            size: 0,
            buf: Vec::with_capacity(CHUNK + 65_536),
            files: Vec::new(),
            packets: 0,
        }
    }

    /// Appends one packet; returns false (writing nothing) once the last file is full.
    #[inline]
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<bool> {
        if self.sink.is_none() || self.size >= self.limit {
            if self.files.len() == self.max_files {
                return Ok(false);
            }
            self.rotate()?;
        }
        self.header.append_record(
            &mut self.buf,
            &shardcap_capture::Packet {
                ts_ns,
                len: frame.len() as u32,
                linktype: self.header.linktype,
                data: frame,
            },
        );
        self.size += (RECORD_HEADER_LEN + frame.len()) as u64;
        self.packets += 1;
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(sink) = &mut self.sink {
            sink.write_all(&self.buf)?;
        }
        self.buf.clear();
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.close()?;
        let mut name = self.name.clone();
        if !self.files.is_empty() {
            name.push_str(&self.files.len().to_string());
        }
        name.push_str(match self.compress {
            Compress::None => "",
            Compress::Gzip => ".gz",
            Compress::Zstd => ".zst",
        });
        let path = self.dir.join(name);
        let file = File::create(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        self.sink = Some(match self.compress {
            Compress::None => Sink::Plain(file),
            Compress::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            Compress::Zstd => Sink::Zstd(zstd::stream::write::Encoder::new(file, 3)?),
        });
        self.files.push(path);
        self.buf.extend_from_slice(&self.header.encode());
        self.size = FILE_HEADER_LEN as u64;
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some(sink) = self.sink.take() {
            sink.finish()?;
        }
        Ok(())
    }

    /// Writes what is buffered and closes the last file; returns the files written.
    pub fn finish(mut self) -> io::Result<Vec<PathBuf>> {
        self.close()?;
        Ok(self.files)
    }
}
