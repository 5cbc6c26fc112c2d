//! Conformance suite for the `Queue` trait (being written).
