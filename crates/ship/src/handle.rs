//! A shipper running on its own thread, as `shardcap run --ship` starts it: its figures and
//! watermark while it runs, and the two ways to end it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::shipper::ShipSummary;
use crate::stats::ShipSnapshot;

/// A shipper on its own thread (see `Shipper::spawn`).
pub struct ShipHandle {
    pub(crate) finish: Arc<AtomicBool>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) latest: Arc<Mutex<ShipSnapshot>>,
    pub(crate) watermark: Arc<AtomicU64>,
    /// Set when the shipper's loop has returned.
    pub(crate) ended: Arc<AtomicBool>,
    pub(crate) thread: Option<JoinHandle<Result<ShipSummary>>>,
}

/// Stops a shipper from elsewhere than its handle, and waits until it has (see
/// [`ShipHandle::halter`]).
#[derive(Clone)]
pub struct Halter {
    stop: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
}

impl Halter {
    /// Stops the shipper without shipping the rest and returns once it no longer reads or sends
    /// (what was acknowledged stays checkpointed; requests in flight end with their timeouts).
    pub fn halt(&self) {
        self.stop.store(true, Ordering::SeqCst);
        while !self.ended.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl ShipHandle {
    /// The shipper's latest figures, refreshed on each turn of its loop.
    pub fn latest(&self) -> Arc<Mutex<ShipSnapshot>> {
        self.latest.clone()
    }

    /// The acknowledged-log watermark: every shard's logs are indexed up to this record time (ns
    /// since the epoch; 0 until each shard has an acknowledged record).
    pub fn watermark(&self) -> Arc<AtomicU64> {
        self.watermark.clone()
    }

    /// A way to stop the shipper before the logs it follows get records it must not ship; the
    /// handle still ends it afterwards (`finish` then returns at once).
    pub fn halter(&self) -> Halter {
        Halter {
            stop: self.stop.clone(),
            ended: self.ended.clone(),
        }
    }

    /// Ships everything written so far (after a last walk of the directories), then ends.
    pub fn finish(mut self) -> Result<ShipSummary> {
        self.finish.store(true, Ordering::SeqCst);
        self.join()
    }

    /// Ends without shipping the rest; what was acknowledged stays checkpointed.
    pub fn stop(mut self) -> Result<ShipSummary> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    fn join(&mut self) -> Result<ShipSummary> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::runtime("the shipper thread panicked"))?,
            None => Err(Error::runtime("the shipper was already ended")),
        }
    }
}

impl Drop for ShipHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = self.join();
        }
    }
}
