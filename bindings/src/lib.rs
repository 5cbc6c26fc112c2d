//! Python bindings (PyO3) arrive with the bindings issue; this crate reserves the place in the workspace.
