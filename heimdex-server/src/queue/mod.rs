//! [`Queue`](heimdex_core::Queue) backends of the server crate.
//!
//! - [`local`]: the embedded default, persisted in the SQLite store's database
//!   ([`LocalQueue`]).
//! - [`redis`]: the server and scale-out queue on a shared Redis ([`RedisQueue`]).

#[cfg(feature = "embedded")]
pub mod local;
#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "redis")]
pub use self::redis::RedisQueue;
#[cfg(feature = "embedded")]
pub use local::LocalQueue;
