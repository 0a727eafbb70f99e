//! Redis as a file queue and an authorization gate, compatible with pcapdj's keys and controllers.
//!
//! A dispatcher takes files from `PREFIX_IN_QUEUE`, announces each in `PREFIX_NEXT`, waits until a
//! controller authorizes it in `PREFIX_AUTH`, streams it and records the result; `shardcap ctl` is
//! the controller's side.

pub mod failed;
pub mod gate;
pub mod intake;
pub mod keys;
pub mod link;
pub mod queue;
pub mod roots;
