//! [`Queue`](heimdex_core::Queue) backends of the server crate.
//!
//! - [`local`]: the embedded default, persisted in the SQLite store's database
//!   ([`LocalQueue`]).

#[cfg(feature = "embedded")]
pub mod local;

#[cfg(feature = "embedded")]
pub use local::LocalQueue;
