//! The embedded driver passes the conformance suite. All tests share one data directory
//! (isolated by unique queue names), which also exercises concurrent use of one file.

mod common;

ferry_testkit::conformance_suite!(async { common::shared() });
