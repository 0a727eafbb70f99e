//! An output that is opened only when its first record comes: a shard that never gets a packet
//! never opens its destination, so no consumer is started for it and none is handed a stream
//! without packets.

use std::io::{self, IoSlice};

use super::output::Output;
use shardcap_capture::format::StreamHeader;

/// Opens the real output (on the shard's writer thread, when its first record comes).
pub type Opener = Box<dyn FnOnce() -> io::Result<Box<dyn Output>> + Send>;

/// See the module documentation.
pub struct DeferredOutput {
    name: String,
    opener: Option<Opener>,
    inner: Option<Box<dyn Output>>,
    /// The stream header, written once the output is open.
    header: Option<StreamHeader>,
}

impl DeferredOutput {
    /// An output named `name` (for messages) that `opener` opens at the first record.
    pub fn new(name: String, opener: Opener) -> Self {
        DeferredOutput {
            name,
            opener: Some(opener),
            inner: None,
            header: None,
        }
    }

    /// The real output, opened now if it was not yet.
    fn open(&mut self) -> io::Result<&mut Box<dyn Output>> {
        if self.inner.is_none() {
            let opener = self
                .opener
                .take()
                .ok_or_else(|| io::Error::other(format!("{}: could not be opened", self.name)))?;
            let mut out = opener()?;
            if let Some(h) = self.header.take() {
                out.write_header(&h)?;
            }
            self.inner = Some(out);
        }
        Ok(self.inner.as_mut().expect("opened"))
    }
}

impl Output for DeferredOutput {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.open()?.write_all(buf)
    }

    fn write_parts(&mut self, parts: &mut [IoSlice]) -> io::Result<()> {
        self.open()?.write_parts(parts)
    }

    /// As the real output, once open (the first records open it, gathered into one buffer).
    fn vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|o| o.vectored())
    }

    fn write_header(&mut self, header: &StreamHeader) -> io::Result<()> {
        match &mut self.inner {
            Some(out) => out.write_header(header),
            None => {
                self.header = Some(*header);
                Ok(())
            }
        }
    }

    fn tick(&mut self) -> io::Result<()> {
        self.inner.as_mut().map_or(Ok(()), |o| o.tick())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.inner.as_mut().map_or(Ok(()), |o| o.sync())
    }

    /// Finishes the real output; one that was never opened stays unopened.
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.inner.map_or(Ok(()), |o| o.finish())
    }

    fn describe(&self) -> String {
        self.inner
            .as_ref()
            .map_or_else(|| self.name.clone(), |o| o.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::output::testing::Recorder;
    use std::sync::{Arc, Mutex};

    type Shared<T> = Arc<Mutex<T>>;

    /// A deferred [`Recorder`], what it received, and how often it was opened.
    fn deferred() -> (DeferredOutput, Shared<Vec<u8>>, Shared<u32>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let opened = Arc::new(Mutex::new(0));
        let (s, o) = (seen.clone(), opened.clone());
        let out = DeferredOutput::new(
            "shard 0".into(),
            Box::new(move || {
                *o.lock().unwrap() += 1;
                Ok(Box::new(Recorder(s)) as Box<dyn Output>)
            }),
        );
        (out, seen, opened)
    }

    const HEADER: StreamHeader = StreamHeader {
        linktype: 1,
        nanos: false,
        snaplen: 65535,
    };

    #[test]
    fn a_stream_without_records_never_opens() {
        let (mut out, seen, opened) = deferred();
        out.write_header(&HEADER).unwrap();
        out.sync().unwrap();
        out.tick().unwrap();
        out.write_all(&[]).unwrap();
        assert_eq!(out.describe(), "shard 0");
        Box::new(out).finish().unwrap();
        assert_eq!(*opened.lock().unwrap(), 0);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn the_first_record_opens_it_once_behind_the_header() {
        let (mut out, seen, opened) = deferred();
        out.write_header(&HEADER).unwrap();
        out.write_all(b"records").unwrap();
        out.write_all(b" more").unwrap();
        assert_eq!(out.describe(), "recorder");
        Box::new(out).finish().unwrap();
        assert_eq!(*opened.lock().unwrap(), 1);
        let want = [HEADER.encode().to_vec(), b"records more".to_vec()].concat();
        assert_eq!(*seen.lock().unwrap(), want);
    }
}
