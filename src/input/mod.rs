//! Inputs: discovery, the first-packet catalog, continuous-mode intake and retention. The readers
//! themselves are in `shardcap-capture`.

pub mod catalog;
pub mod discover;
pub mod intake;
pub mod retention;
pub mod survey;
pub mod watch;
