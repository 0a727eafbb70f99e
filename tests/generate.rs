//! `shardcap generate`: the captures parse with an independent reader (pcap-file), every checksum
//! is valid, TCP sequence numbers follow the bytes sent, sessions cross file boundaries, sensors
//! overlap in time, and the output is a function of the seed.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::PcapReader;
use pcap_file::{DataLink, TsResolution};
use shardcap_gen::{generate, GenerateConfig};

fn args(out: &Path, seed: u64) -> GenerateConfig {
    GenerateConfig {
        out: out.to_path_buf(),
        sensors: 2,
        files_per_sensor: 4,
        size: 1 << 20,
        seed,
        nanos: false,
        gzip: false,
        zstd: false,
        duration: Duration::from_secs(30),
    }
}

/// One packet as read back: file index, timestamp (ns) and frame bytes.
struct Rec {
    file: usize,
    ts: u64,
    data: Vec<u8>,
}

fn read_all(path: &Path, nanos: bool) -> Vec<(u64, Vec<u8>)> {
    let mut raw = Vec::new();
    File::open(path).unwrap().read_to_end(&mut raw).unwrap();
    let name = path.to_string_lossy();
    if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        raw = out;
    } else if name.ends_with(".zst") {
        raw = zstd::decode_all(&raw[..]).unwrap();
    }
    let mut reader = PcapReader::new(&raw[..]).expect("pcap header");
    let h = reader.header();
    assert_eq!(h.datalink, DataLink::ETHERNET, "{name}");
    let want = if nanos {
        TsResolution::NanoSecond
    } else {
        TsResolution::MicroSecond
    };
    assert_eq!(h.ts_resolution, want, "{name}");
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet() {
        let p = p.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            p.orig_len as usize,
            p.data.len(),
            "{name}: whole frames are captured"
        );
        out.push((p.timestamp.as_nanos() as u64, p.data.into_owned()));
    }
    out
}

/// 16-bit ones' complement sum, the textbook way (RFC 1071).
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for part in parts {
        for pair in part.chunks(2) {
            let hi = pair[0] as u32;
            let lo = pair.get(1).copied().unwrap_or(0) as u32;
            sum += hi << 8 | lo;
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    sum as u16
}

/// Source address and port, destination address and port.
type Ends = (Vec<u8>, u16, Vec<u8>, u16);

/// What a frame decodes to, for the checks below.
#[derive(Default)]
struct Decoded {
    vlan: bool,
    v6: bool,
    fragment: bool,
    proto: u8,
    ends: Option<Ends>,
    tcp: Option<(u32, u32, u8, usize)>,
    icmp_type: Option<u8>,
}

/// Decodes a frame and asserts that every checksum in it is valid.
fn decode(frame: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if ethertype == 0x8100 {
        d.vlan = true;
        at += 4;
        ethertype = u16::from_be_bytes([frame[at], frame[at + 1]]);
    }
    let ip = &frame[at + 2..];
    let (src, dst, proto, l4, pseudo_len);
    match ethertype {
        0x0800 => {
            assert_eq!(ip[0], 0x45);
            assert_eq!(ones_sum(&[&ip[..20]]), 0xffff, "IPv4 header checksum");
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            assert_eq!(total, ip.len(), "IPv4 total length");
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            d.fragment = frag & 0x3fff != 0;
            (src, dst, proto) = (ip[12..16].to_vec(), ip[16..20].to_vec(), ip[9]);
            l4 = &ip[20..];
            pseudo_len = l4.len();
        }
        0x86dd => {
            d.v6 = true;
            let payload = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            assert_eq!(payload + 40, ip.len(), "IPv6 payload length");
            (src, dst, proto) = (ip[8..24].to_vec(), ip[24..40].to_vec(), ip[6]);
            l4 = &ip[40..];
            pseudo_len = l4.len();
        }
        other => panic!("unexpected ethertype {other:#x}"),
    }
    d.proto = proto;
    if d.fragment {
        return d;
    }
    let pseudo = [
        &src[..],
        &dst[..],
        &[0, proto],
        &(pseudo_len as u16).to_be_bytes(),
    ];
    match proto {
        6 | 17 => {
            let mut parts = pseudo.to_vec();
            parts.push(l4);
            assert_eq!(
                ones_sum(&parts),
                0xffff,
                "transport checksum, proto {proto}"
            );
            let sport = u16::from_be_bytes([l4[0], l4[1]]);
            let dport = u16::from_be_bytes([l4[2], l4[3]]);
            d.ends = Some((src, sport, dst, dport));
            if proto == 6 {
                let seq = u32::from_be_bytes(l4[4..8].try_into().unwrap());
                let ack = u32::from_be_bytes(l4[8..12].try_into().unwrap());
                let hlen = (l4[12] >> 4) as usize * 4;
                d.tcp = Some((seq, ack, l4[13], l4.len() - hlen));
            } else {
                assert_eq!(
                    u16::from_be_bytes([l4[4], l4[5]]) as usize,
                    l4.len(),
                    "UDP length"
                );
            }
        }
        1 => {
            assert_eq!(ones_sum(&[l4]), 0xffff, "ICMP checksum");
            d.icmp_type = Some(l4[0]);
            if l4[0] == 3 {
                // The quoted datagram is a valid IPv4 header followed by UDP.
                assert_eq!(
                    ones_sum(&[&l4[8..28]]),
                    0xffff,
                    "quoted IPv4 header checksum"
                );
                assert_eq!(l4[8 + 9], 17);
            }
        }
        other => panic!("unexpected protocol {other}"),
    }
    d
}

fn files_of(dir: &Path, sensor: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(sensor))
        .collect();
    // tcpdump -C order: NAME, NAME1, NAME2, ...
    files.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        let stem = n.trim_end_matches(".gz").trim_end_matches(".zst");
        stem.rsplit_once(".pcap")
            .unwrap()
            .1
            .parse::<u32>()
            .unwrap_or(0)
    });
    files
}

fn read_sensor(dir: &Path, sensor: &str, nanos: bool) -> Vec<Rec> {
    let mut recs = Vec::new();
    for (file, path) in files_of(dir, sensor).iter().enumerate() {
        for (ts, data) in read_all(path, nanos) {
            recs.push(Rec { file, ts, data });
        }
    }
    recs
}

#[test]
fn captures_are_valid_realistic_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = generate(&args(dir.path(), 3)).unwrap();
    assert_eq!(outputs.len(), 2);
    let names: Vec<String> = files_of(dir.path(), "sensorA")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "sensorA.pcap",
            "sensorA.pcap1",
            "sensorA.pcap2",
            "sensorA.pcap3"
        ]
    );
    for path in files_of(dir.path(), "sensor") {
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(
            (1 << 20..(1 << 20) + 70_000).contains(&len),
            "{path:?}: {len} bytes"
        );
    }

    let mut ranges = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for sensor in ["sensorA", "sensorB"] {
        let recs = read_sensor(dir.path(), sensor, false);
        assert!(recs.len() > 1000, "{sensor}: {} packets", recs.len());
        assert!(
            recs.windows(2).all(|w| w[0].ts <= w[1].ts),
            "{sensor}: time order"
        );
        ranges.push((recs[0].ts, recs.last().unwrap().ts));

        // Per TCP direction: the next sequence number expected.
        let mut next_seq: HashMap<Ends, u32> = HashMap::new();
        // Per TCP connection (client side first): files it was seen in, and whether it was opened.
        let mut seen_in: HashMap<Ends, (HashSet<usize>, bool, bool)> = HashMap::new();
        for r in &recs {
            let d = decode(&r.data);
            *counts.entry("vlan").or_default() += d.vlan as usize;
            *counts.entry("ipv6").or_default() += d.v6 as usize;
            *counts.entry("fragment").or_default() += d.fragment as usize;
            if d.proto == 17 && !d.fragment {
                *counts
                    .entry(if d.v6 { "udp6" } else { "udp4" })
                    .or_default() += 1;
            }
            if let Some(t) = d.icmp_type {
                *counts
                    .entry(["reply", "", "", "unreach", "", "", "", "", "echo"][t as usize])
                    .or_default() += 1;
            }
            let (Some((seq, ack, flags, len)), Some(ends)) = (d.tcp, d.ends) else {
                continue;
            };
            let rst = flags & 0x04 != 0;
            let syn = flags & 0x02 != 0;
            let fin = flags & 0x01 != 0;
            *counts.entry("tcp6").or_default() += d.v6 as usize;
            *counts.entry("syn").or_default() += (syn && flags & 0x10 == 0) as usize;
            *counts.entry("fin").or_default() += fin as usize;
            *counts.entry("rst").or_default() += rst as usize;
            *counts.entry("http").or_default() +=
                (len > 0 && r.data.windows(9).any(|w| w == b"HTTP/1.1 ")) as usize;
            let reverse = (ends.2.clone(), ends.3, ends.0.clone(), ends.1);
            if !(rst && seq == 0) {
                if let Some(&want) = next_seq.get(&ends) {
                    assert_eq!(
                        seq, want,
                        "TCP sequence continues where it left off: flags {flags:#x} len {len} at {} {ends:?}",
                        r.ts
                    );
                }
                next_seq.insert(
                    ends.clone(),
                    seq.wrapping_add(len as u32 + syn as u32 + fin as u32),
                );
            }
            if flags & 0x10 != 0 {
                // An ACK never covers more than the peer sent, and lags it by less than a window.
                let peer_next = next_seq.get(&reverse).copied().unwrap_or(ack);
                let behind = peer_next.wrapping_sub(ack);
                assert!(
                    behind < 1 << 20,
                    "ack {ack} vs peer's next {peer_next}: flags {flags:#x} len {len} at {} {ends:?}",
                    r.ts
                );
            }
            let key = if ends.1 == 80 || ends.1 == 8080 {
                reverse
            } else {
                ends
            };
            let e = seen_in.entry(key).or_default();
            e.0.insert(r.file);
            e.1 |= syn && flags & 0x10 == 0;
            e.2 |= fin || rst;
        }
        let spanning = seen_in
            .values()
            .filter(|(files, opened, closed)| *opened && *closed && files.len() > 1)
            .count();
        assert!(
            spanning >= 3,
            "{sensor}: only {spanning} complete TCP sessions span files"
        );
    }
    for feature in [
        "vlan", "ipv6", "fragment", "udp4", "udp6", "tcp6", "reply", "echo", "unreach", "syn",
        "fin", "rst", "http",
    ] {
        assert!(
            counts.get(feature).copied().unwrap_or(0) > 0,
            "no {feature} packets: {counts:?}"
        );
    }
    // The sensors capture overlapping time ranges.
    let (a, b) = (ranges[0], ranges[1]);
    assert!(a.0 < b.1 && b.0 < a.1, "ranges {a:?} {b:?} overlap");
    let overlap = a.1.min(b.1) - a.0.max(b.0);
    assert!(overlap * 2 > (a.1 - a.0), "mostly overlapping: {a:?} {b:?}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let [one, two, other] = [0, 1, 2].map(|_| tempfile::tempdir().unwrap());
    generate(&args(one.path(), 5)).unwrap();
    generate(&args(two.path(), 5)).unwrap();
    generate(&args(other.path(), 6)).unwrap();
    for path in files_of(one.path(), "sensor") {
        let name = path.file_name().unwrap();
        let a = std::fs::read(&path).unwrap();
        assert_eq!(a, std::fs::read(two.path().join(name)).unwrap(), "{name:?}");
        assert_ne!(
            a,
            std::fs::read(other.path().join(name)).unwrap(),
            "{name:?}"
        );
    }
}

#[test]
fn compressed_and_nanosecond_variants() {
    for (gzip, zstd, suffix) in [(true, false, ".gz"), (false, true, ".zst")] {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path(), 9);
        a.sensors = 1;
        a.files_per_sensor = 2;
        a.nanos = true;
        a.gzip = gzip;
        a.zstd = zstd;
        generate(&a).unwrap();
        let files = files_of(dir.path(), "sensorA");
        assert_eq!(files.len(), 2);
        assert!(files.iter().all(|f| f.to_string_lossy().ends_with(suffix)));
        let recs = read_sensor(dir.path(), "sensorA", true);
        assert!(recs.len() > 300);
        assert!(
            recs.iter().any(|r| r.ts % 1000 != 0),
            "nanosecond timestamps"
        );
        for r in &recs {
            decode(&r.data);
        }
    }
}

/// samples/ is exactly what the command in samples/README.md writes (regenerate both together).
#[test]
fn samples_are_what_their_readme_command_writes() {
    let readme = std::fs::read_to_string("samples/README.md").unwrap();
    let command = readme
        .lines()
        .find(|l| l.starts_with("shardcap generate "))
        .expect("the command in samples/README.md");
    let dir = tempfile::tempdir().unwrap();
    let args = command.replace("--out samples", &format!("--out {}", dir.path().display()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_shardcap"))
        .args(args.split_whitespace().skip(1))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let written = files_of(dir.path(), "sensor");
    assert_eq!(
        written.len(),
        files_of(Path::new("samples"), "sensor").len()
    );
    for path in written {
        let name = path.file_name().unwrap();
        assert!(
            std::fs::read(&path).unwrap()
                == std::fs::read(Path::new("samples").join(name)).unwrap(),
            "samples/{name:?} differs from what the README command writes"
        );
    }
}
