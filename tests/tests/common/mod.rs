//! What several end-to-end tests share (each test file includes it with `mod common;`).
#![allow(dead_code)]

pub mod checks;
pub mod webhook;
