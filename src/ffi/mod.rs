//! The C ABI shell and the only place `unsafe` is allowed.

pub mod awslc;
