//! Conformance suite for the `Index` trait (being written).
