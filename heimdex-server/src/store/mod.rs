//! [`Store`](heimdex_core::Store) backends of the server crate.
//!
//! - [`sqlite`]: the embedded default, one SQLite file ([`SqliteStore`]).

#[cfg(feature = "embedded")]
pub mod sqlite;

#[cfg(feature = "embedded")]
pub use sqlite::SqliteStore;
