//! `--filter`: a libpcap filter expression, compiled by libpcap's own compiler (through the pcap
//! crate) once for each input link type, and run by libpcap's BPF interpreter on the packet as
//! captured (its own link type, before any reframing).

use std::ffi::c_uint;

use pcap::{BpfInstruction, BpfProgram, Capture, Linktype};

use shardcap_capture::Packet;
use shardcap_flow::link::{LINKTYPE_ETHERNET, LINKTYPE_RAW};

#[link(name = "pcap")]
extern "C" {
    /// libpcap's BPF interpreter (pcap/bpf.h): runs `pc` over `buflen` captured bytes of a
    /// packet `wirelen` bytes long on the wire; non-zero when it matches.
    fn bpf_filter(
        pc: *const BpfInstruction,
        p: *const u8,
        wirelen: c_uint,
        buflen: c_uint,
    ) -> c_uint;
}

/// A filter expression and its programs, one a link type.
pub struct Filter {
    expr: String,
    /// Each link type met with its program (`None`: the expression does not compile for it, and
    /// its packets match nothing).
    programs: Vec<(u32, Option<BpfProgram>)>,
    /// Index in `programs` of the last link type looked up.
    last: usize,
}

impl Filter {
    /// Checks that `expr` compiles for Ethernet or raw IP (most link types filter as one of
    /// them), so a mistyped filter is refused before any input is read.
    pub fn new(expr: &str) -> Result<Self, String> {
        let mut f = Filter {
            expr: expr.to_string(),
            programs: Vec::new(),
            last: 0,
        };
        if let Err(e) = f.prepare(LINKTYPE_ETHERNET) {
            f.prepare(LINKTYPE_RAW).map_err(|_| e)?;
        }
        Ok(f)
    }

    /// Compiles the filter for `linktype` unless done already.
    pub fn prepare(&mut self, linktype: u32) -> Result<(), String> {
        match self.programs.iter().find(|(lt, _)| *lt == linktype) {
            Some((_, Some(_))) => Ok(()),
            Some((_, None)) => self.compile(linktype).map(drop),
            None => {
                let compiled = self.compile(linktype);
                let error = compiled.as_ref().err().cloned();
                self.programs.push((linktype, compiled.ok()));
                error.map_or(Ok(()), Err)
            }
        }
    }

    /// True when `pkt` matches.
    #[inline]
    pub fn matches(&mut self, pkt: &Packet) -> bool {
        let i = match self.programs.get(self.last) {
            Some((lt, _)) if *lt == pkt.linktype => self.last,
            _ => self.index(pkt.linktype),
        };
        self.last = i;
        let Some(program) = &self.programs[i].1 else {
            return false;
        };
        let insns = program.get_instructions();
        // SAFETY: `insns` is a program libpcap compiled (and validated) that lives as long as
        // `program`; the packet pointer and lengths describe `pkt.data` exactly, and the wire
        // length is at least the captured length as libpcap expects.
        let r = unsafe {
            bpf_filter(
                insns.as_ptr(),
                pkt.data.as_ptr(),
                pkt.len.max(pkt.data.len() as u32),
                pkt.data.len() as c_uint,
            )
        };
        r != 0
    }

    /// The index of `linktype`'s program, compiling it when first met.
    #[cold]
    fn index(&mut self, linktype: u32) -> usize {
        if let Some(i) = self.programs.iter().position(|(lt, _)| *lt == linktype) {
            return i;
        }
        let program = match self.compile(linktype) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!("{e}; packets of that link type match nothing");
                None
            }
        };
        self.programs.push((linktype, program));
        self.programs.len() - 1
    }

    fn compile(&self, linktype: u32) -> Result<BpfProgram, String> {
        let lt = i32::try_from(linktype & 0x0fff_ffff).unwrap_or(0);
        Capture::dead(Linktype(lt))
            .and_then(|c| c.compile(&self.expr, true))
            .map_err(|e| {
                format!(
                    "--filter {:?} does not compile for link type {linktype}: {e}",
                    self.expr
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_frame(dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend([0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend([10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend(1000u16.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend([0, 8, 0, 0]);
        f
    }

    #[test]
    fn matches_as_libpcap_compiles_it() {
        let mut f = Filter::new("udp port 53").unwrap();
        let pkt = |d: &'static [u8], len| Packet {
            ts_ns: 0,
            len,
            linktype: LINKTYPE_ETHERNET,
            data: d,
        };
        let dns: &'static [u8] = udp_frame(53).leak();
        let other: &'static [u8] = udp_frame(80).leak();
        assert!(f.matches(&pkt(dns, 42)));
        assert!(!f.matches(&pkt(other, 42)));
        // `greater` looks at the length on the wire, not the captured one.
        let mut big = Filter::new("greater 1000").unwrap();
        assert!(big.matches(&pkt(dns, 1500)));
        assert!(!big.matches(&pkt(dns, 42)));
    }

    #[test]
    fn an_expression_that_does_not_compile_is_named() {
        let e = Filter::new("port banana").err().unwrap();
        assert!(e.contains("\"port banana\""), "{e}");
        let mut f = Filter::new("vlan 100").unwrap();
        assert!(f.prepare(LINKTYPE_RAW).is_err());
    }
}
