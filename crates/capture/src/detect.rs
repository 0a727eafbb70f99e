//! Recognises compression and capture formats by their leading bytes, never by file name.

/// Compression wrapped around a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects gzip (1f 8b) and zstd (28 b5 2f fd) frames.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// Short name used in `scan` output.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }
}

/// Variant of a classic pcap file, from its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapVariant {
    pub big_endian: bool,
    pub nanos: bool,
    /// Kuznetzov's modified pcap (magic a1b2cd34): 24-byte record headers.
    pub modified: bool,
}

/// A capture format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap(PcapVariant),
    PcapNg,
}

impl Format {
    /// Detects the format from the first four bytes of the (decompressed) stream.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        let magic: [u8; 4] = head.get(..4)?.try_into().ok()?;
        let v = |big_endian, nanos, modified| {
            Some(Format::Pcap(PcapVariant {
                big_endian,
                nanos,
                modified,
            }))
        };
        match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => v(false, false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => v(true, false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => v(false, true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => v(true, true, false),
            [0x34, 0xcd, 0xb2, 0xa1] => v(false, false, true),
            [0xa1, 0xb2, 0xcd, 0x34] => v(true, false, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => Some(Format::PcapNg),
            _ => None,
        }
    }

    /// Human-readable name used in `scan` output and messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap(PcapVariant { modified: true, .. }) => "pcap-modified",
            Format::Pcap(_) => "pcap",
            Format::PcapNg => "pcapng",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_all_pcap_magics_and_pcapng() {
        assert_eq!(
            Format::sniff(&[0xd4, 0xc3, 0xb2, 0xa1]),
            Some(Format::Pcap(PcapVariant {
                big_endian: false,
                nanos: false,
                modified: false
            }))
        );
        assert_eq!(
            Format::sniff(&[0xa1, 0xb2, 0x3c, 0x4d]),
            Some(Format::Pcap(PcapVariant {
                big_endian: true,
                nanos: true,
                modified: false
            }))
        );
        assert_eq!(
            Format::sniff(&[0x0a, 0x0d, 0x0d, 0x0a]),
            Some(Format::PcapNg)
        );
        assert_eq!(Format::sniff(b"GIF8"), None);
        assert_eq!(Format::sniff(&[0xd4]), None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
    }
}
