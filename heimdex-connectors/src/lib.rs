//! # heimdex-connectors
//!
//! [`Connector`](heimdex_core::Connector) implementations, one module and one Cargo feature per
//! backend, plus [`RangeReader`]: a blocking `Read + Seek` view of any object through the
//! connector's ranged reads, which is how the pipeline (FFmpeg's AVIO callbacks) reads media in
//! place without copying the file.
//!
//! | feature | backend |
//! |---|---|
//! | `local` (default) | [`local::LocalConnector`]: a folder (or one file) on a local disk |

#[cfg(feature = "local")]
pub mod local;
pub mod range_reader;

#[cfg(feature = "local")]
pub use local::LocalConnector;
pub use range_reader::{RangeReader, ReadStats};
