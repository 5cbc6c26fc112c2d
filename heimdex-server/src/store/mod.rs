//! [`Store`](heimdex_core::Store) backends of the server crate.
//!
//! - [`sqlite`]: the embedded default, one SQLite file ([`SqliteStore`]).

pub mod sqlite;

pub use sqlite::SqliteStore;
