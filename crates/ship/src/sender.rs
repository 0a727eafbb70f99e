//! Delivering batches: a bounded pool of sender threads, each taking a batch to a final answer for
//! every item. Whole-request failures (connection refused, 429, 5xx) and per-item 429/5xx are retried
//! with backoff; a request refused as a whole (400, 413) is split until the offending item stands
//! alone; 401/403 stop everything. Results go back in completion order; the shipper puts them back
//! in batch order.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::backoff::{Backoff, RetryPolicy};
use crate::batch::Batch;
use crate::client::{EsClient, Failure, ItemReply};

/// Somewhere bulk bodies go.
pub trait Transport: Send + Sync {
    /// Sends one NDJSON bulk body; returns each item's answer, in order.
    fn bulk(&self, body: &[u8]) -> Result<Vec<ItemReply>, Failure>;
}

impl Transport for EsClient {
    fn bulk(&self, body: &[u8]) -> Result<Vec<ItemReply>, Failure> {
        EsClient::bulk(self, body)
    }
}

/// The final answer for one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Indexed now (201).
    Created,
    /// Already there from an earlier attempt (409 on `create`).
    Existed,
    /// Refused for good: status and the server's error object (JSON text).
    Rejected { status: u16, error: String },
}

/// Why a batch has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// Stopped while waiting to retry.
    Aborted,
    /// 401/403: the credentials do not allow this.
    Auth(String),
    /// Cannot be sent at all.
    Fatal(String),
}

/// A batch back from a sender.
pub struct Delivered {
    pub batch: Batch,
    pub result: Result<Vec<Outcome>, Interrupted>,
}

/// Counters the senders keep, read by stats.
#[derive(Debug, Default)]
pub struct SendCounters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    /// Senders currently waiting to retry.
    pub backing_off: AtomicUsize,
}

/// Sorts one item's answer: `None` means retry it.
fn outcome(reply: ItemReply) -> Result<Option<Outcome>, Interrupted> {
    let error = || {
        reply
            .error
            .as_ref()
            .map_or_else(|| "null".to_string(), |e| e.to_string())
    };
    let kind = reply
        .error
        .as_ref()
        .and_then(|e| e.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("");
    Ok(match reply.status {
        200..=299 => Some(Outcome::Created),
        409 => Some(Outcome::Existed),
        429 | 500..=599 => None,
        401 | 403 if kind == "security_exception" => {
            return Err(Interrupted::Auth(format!(
                "HTTP {}: {}",
                reply.status,
                error()
            )))
        }
        status => Some(Outcome::Rejected {
            status,
            error: error(),
        }),
    })
}

/// Takes one batch to an outcome for every item, retrying as long as needed unless `abort` is set.
pub fn deliver(
    transport: &dyn Transport,
    batch: &Batch,
    backoff: &mut Backoff,
    abort: &AtomicBool,
    counters: &SendCounters,
) -> Result<Vec<Outcome>, Interrupted> {
    let n = batch.items.len();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut work: Vec<Vec<usize>> = vec![(0..n).collect()];
    let wait = |why: &str, backoff: &mut Backoff| {
        counters.retries.fetch_add(1, Ordering::Relaxed);
        log::warn!("bulk request of batch {}: {why}; retrying", batch.seq);
        counters.backing_off.fetch_add(1, Ordering::Relaxed);
        let go_on = backoff.sleep(abort);
        counters.backing_off.fetch_sub(1, Ordering::Relaxed);
        if go_on {
            Ok(())
        } else {
            Err(Interrupted::Aborted)
        }
    };
    while let Some(group) = work.pop() {
        let body: Cow<[u8]> = if group.len() == n {
            Cow::Borrowed(&batch.body)
        } else {
            Cow::Owned(batch.sub_body(&group))
        };
        counters.requests.fetch_add(1, Ordering::Relaxed);
        match transport.bulk(&body) {
            Ok(replies) if replies.len() == group.len() => {
                let mut again = Vec::new();
                for (&i, reply) in group.iter().zip(replies) {
                    match outcome(reply)? {
                        Some(o) => outcomes[i] = Some(o),
                        None => again.push(i),
                    }
                }
                if again.is_empty() {
                    backoff.reset();
                } else {
                    wait(
                        &format!("{} items refused for now (429/5xx)", again.len()),
                        backoff,
                    )?;
                    work.push(again);
                }
            }
            Ok(replies) => {
                let why = format!("{} answers for {} items", replies.len(), group.len());
                wait(&why, backoff)?;
                work.push(group);
            }
            Err(Failure::Retry(why)) => {
                wait(&why, backoff)?;
                work.push(group);
            }
            Err(Failure::Rejected { status, reason }) if group.len() > 1 => {
                log::info!(
                    "bulk request of {} items refused as a whole (HTTP {status}: {reason}); splitting it",
                    group.len()
                );
                let (a, b) = group.split_at(group.len() / 2);
                work.push(b.to_vec());
                work.push(a.to_vec());
            }
            Err(Failure::Rejected { status, reason }) => {
                let error = serde_json::json!({ "type": "request_rejected", "reason": reason });
                outcomes[group[0]] = Some(Outcome::Rejected {
                    status,
                    error: error.to_string(),
                });
            }
            Err(Failure::Auth(why)) => return Err(Interrupted::Auth(why)),
            Err(Failure::Fatal(why)) => return Err(Interrupted::Fatal(why)),
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every item has an outcome"))
        .collect())
}

/// The pool of sender threads.
pub struct Senders {
    jobs: Option<SyncSender<Batch>>,
    results: Receiver<Delivered>,
    workers: Vec<JoinHandle<()>>,
    /// Set to stop retrying (a stop signal or a fatal error).
    pub abort: Arc<AtomicBool>,
    pub counters: Arc<SendCounters>,
}

impl Senders {
    /// Starts `n` senders over `transport`.
    pub fn start(transport: Arc<dyn Transport>, n: usize, policy: RetryPolicy) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<Batch>(n);
        let queue = Arc::new(Mutex::new(queue));
        let (done, results) = mpsc::channel();
        let abort = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SendCounters::default());
        let workers = (0..n)
            .map(|k| {
                let (queue, done, abort, counters, transport) = (
                    queue.clone(),
                    done.clone(),
                    abort.clone(),
                    counters.clone(),
                    transport.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("ship-send-{k}"))
                    .spawn(move || {
                        let mut backoff = Backoff::new(policy, k as u64);
                        loop {
                            let next = queue.lock().map(|q| q.recv());
                            let Ok(Ok(batch)) = next else { return };
                            let result =
                                deliver(&*transport, &batch, &mut backoff, &abort, &counters);
                            if done.send(Delivered { batch, result }).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawn a sender thread")
            })
            .collect();
        Senders {
            jobs: Some(jobs),
            results,
            workers,
            abort,
            counters,
        }
    }

    /// Hands a batch to a free sender (blocks while all are busy and the queue is full).
    pub fn submit(&self, batch: Batch) {
        if let Some(jobs) = &self.jobs {
            // The senders outlive the queue; a send fails only if they all panicked.
            jobs.send(batch).expect("sender threads are running");
        }
    }

    /// The next delivered batch, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Delivered> {
        self.results.recv_timeout(timeout).ok()
    }

    /// Stops the senders once their queue is empty and waits for them.
    pub fn shutdown(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Senders {
    fn drop(&mut self) {
        self.abort.store(true, Ordering::SeqCst);
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers from a script, one entry per request.
    struct Scripted(Mutex<Vec<Result<Vec<u16>, Failure>>>, Mutex<Vec<usize>>);

    impl Transport for Scripted {
        fn bulk(&self, body: &[u8]) -> Result<Vec<ItemReply>, Failure> {
            let items = body.iter().filter(|&&b| b == b'\n').count() / 2;
            self.1.lock().unwrap().push(items);
            let next = self.0.lock().unwrap().remove(0)?;
            assert_eq!(next.len(), items, "script matches the request");
            Ok(next
                .into_iter()
                .map(|status| ItemReply {
                    status,
                    error: (status >= 300).then(|| serde_json::json!({"type": "t", "reason": "r"})),
                })
                .collect())
        }
    }

    fn batch(n: usize) -> Batch {
        let mut b = Batch::new(7);
        for k in 0..n {
            let start = b.body.len();
            b.body.extend_from_slice(b"{\"create\":{}}\n");
            let doc = b.body.len();
            b.body
                .extend_from_slice(format!("{{\"k\":{k}}}\n").as_bytes());
            b.push(0, 0, k as u64, start, doc);
        }
        b
    }

    fn run(
        script: Vec<Result<Vec<u16>, Failure>>,
        n: usize,
    ) -> (Result<Vec<Outcome>, Interrupted>, Vec<usize>) {
        let t = Scripted(Mutex::new(script), Mutex::new(Vec::new()));
        let policy = RetryPolicy {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        };
        let mut backoff = Backoff::new(policy, 0);
        let r = deliver(
            &t,
            &batch(n),
            &mut backoff,
            &AtomicBool::new(false),
            &SendCounters::default(),
        );
        let sizes = t.1.into_inner().unwrap();
        (r, sizes)
    }

    #[test]
    fn retries_only_what_was_refused_for_now() {
        let (r, sizes) = run(
            vec![
                Err(Failure::Retry("connection refused".into())),
                Ok(vec![201, 429, 409, 400]),
                Ok(vec![503]),
                Ok(vec![201]),
            ],
            4,
        );
        let r = r.unwrap();
        assert_eq!(sizes, vec![4, 4, 1, 1]);
        assert_eq!(r[0], Outcome::Created);
        assert_eq!(r[1], Outcome::Created);
        assert_eq!(r[2], Outcome::Existed);
        assert!(matches!(r[3], Outcome::Rejected { status: 400, .. }));
    }

    #[test]
    fn whole_request_rejections_split_down_to_the_culprit() {
        let rejected = || {
            Err(Failure::Rejected {
                status: 413,
                reason: "too large".into(),
            })
        };
        let script = vec![
            rejected(),
            Ok(vec![201]),
            rejected(),
            rejected(),
            Ok(vec![201]),
        ];
        let (r, sizes) = run(script, 3);
        assert_eq!(sizes, vec![3, 1, 2, 1, 1]);
        let r = r.unwrap();
        assert_eq!(r[0], Outcome::Created);
        assert!(matches!(r[1], Outcome::Rejected { status: 413, .. }));
        assert_eq!(r[2], Outcome::Created);
    }

    #[test]
    fn auth_failures_stop() {
        let (r, _) = run(vec![Err(Failure::Auth("HTTP 401".into()))], 2);
        assert_eq!(r, Err(Interrupted::Auth("HTTP 401".into())));
    }
}
