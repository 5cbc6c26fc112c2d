//! Conformance suite for the `Store` trait (being written).
