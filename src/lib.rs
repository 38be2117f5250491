//! p11kms: a PKCS#11 module over cloud KMS keys and an embedded local backend.
//! See DESIGN.md (shared) for the layers; data flows ffi -> api -> token/session ->
//! object/mechanism -> backend -> store.

#[macro_use]
pub mod log;
pub mod api;
pub mod backend;
pub mod config;
pub mod error;
pub mod ffi;
pub mod mechanism;
pub mod object;
#[cfg(kms)]
pub mod runtime;
pub mod session;
pub mod store;
pub mod token;
