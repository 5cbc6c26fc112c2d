//! [`Queue`](heimdex_core::Queue) backends of the server crate.
//!
//! - [`local`]: the embedded default, persisted in the SQLite store's database
//!   ([`LocalQueue`]).

pub mod local;

pub use local::LocalQueue;
