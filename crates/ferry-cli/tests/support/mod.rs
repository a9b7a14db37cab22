//! Helpers shared by the `ferry` binary's end-to-end tests.

pub mod serve;
