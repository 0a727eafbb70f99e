//! The names of the Redis keys: pcapdj's by default, per dispatcher instance on request.

use super::RedisConfig;

/// Every key shardcap reads or writes, for one prefix and instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// List of files to process (importers RPUSH, dispatchers take from the head). Shared.
    pub in_queue: String,
    /// List of files streamed completely in pcapdj mode. Shared.
    pub processed: String,
    /// List of files streamed completely in reliable mode. Shared.
    pub done: String,
    /// List of JSON records `{file, reason, offset}` of files that could not be streamed. Shared.
    pub failed: String,
    /// List of files announced and waiting for authorization. Per instance.
    pub next: String,
    /// Authorizations: a set of file names (SADD) or one name as a string (SET). Per instance.
    pub auth: String,
    /// The dispatcher's state: RUNNING, WAITING, STOPPED or DONE. Per instance.
    pub state: String,
    /// Reliable mode: files taken and not yet done or failed. Per instance.
    pub processing: String,
    /// Set of files authorized and being streamed now. Per instance.
    pub active: String,
}

impl Keys {
    /// Keys named from `PREFIX` (shared lists) and `PREFIX_INSTANCE` (the dispatcher's own keys).
    pub fn new(args: &RedisConfig) -> Self {
        let shared = |k: &str| format!("{}_{k}", args.prefix);
        let own = |k: &str| match &args.instance {
            Some(i) => format!("{}_{i}_{k}", args.prefix),
            None => shared(k),
        };
        Keys {
            in_queue: args.queue.clone().unwrap_or_else(|| shared("IN_QUEUE")),
            processed: shared("PROCESSED"),
            done: shared("DONE"),
            failed: shared("FAILED"),
            next: own("NEXT"),
            auth: own("AUTH"),
            state: own("STATE"),
            processing: own("PROCESSING"),
            active: own("ACTIVE"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(instance: Option<&str>) -> RedisConfig {
        RedisConfig {
            url: String::new(),
            ca: None,
            prefix: "PCAPDJ".into(),
            instance: instance.map(String::from),
            queue: None,
        }
    }

    #[test]
    fn pcapdj_names_by_default_and_instance_keys_on_request() {
        let k = Keys::new(&args(None));
        assert_eq!(
            (k.in_queue.as_str(), k.next.as_str(), k.auth.as_str()),
            ("PCAPDJ_IN_QUEUE", "PCAPDJ_NEXT", "PCAPDJ_AUTH")
        );
        assert_eq!(
            (k.processed.as_str(), k.state.as_str()),
            ("PCAPDJ_PROCESSED", "PCAPDJ_STATE")
        );
        let k = Keys::new(&args(Some("s1")));
        assert_eq!(k.in_queue, "PCAPDJ_IN_QUEUE");
        assert_eq!(k.next, "PCAPDJ_s1_NEXT");
        assert_eq!(k.processing, "PCAPDJ_s1_PROCESSING");
        assert_eq!(k.failed, "PCAPDJ_FAILED");
        let k = Keys::new(&RedisConfig {
            queue: Some("CAPTURES".into()),
            ..args(None)
        });
        assert_eq!(
            (k.in_queue.as_str(), k.next.as_str()),
            ("CAPTURES", "PCAPDJ_NEXT")
        );
    }
}
