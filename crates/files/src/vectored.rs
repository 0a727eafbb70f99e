//! Writing several buffers with one system call each time, to the end.

use std::io::{self, IoSlice, Write};

/// Writes every byte of `parts`, in order, with as few vectored writes as the kernel allows
/// (`parts` is consumed: its slices are advanced past what was written).
pub fn write_all_vectored(w: &mut impl Write, mut parts: &mut [IoSlice]) -> io::Result<()> {
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match w.write_vectored(parts) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most 5 bytes a call, so that every slice boundary is crossed mid-way.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(5);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_resume_where_they_stopped() {
        let (a, b, c) = (
            b"abcdefg".as_slice(),
            b"".as_slice(),
            b"hijklmnopq".as_slice(),
        );
        let mut parts = [IoSlice::new(a), IoSlice::new(b), IoSlice::new(c)];
        let mut out = Trickle(Vec::new());
        write_all_vectored(&mut out, &mut parts).unwrap();
        assert_eq!(out.0, b"abcdefghijklmnopq");
    }
}
