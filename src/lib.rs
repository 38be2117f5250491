//! p11kms: a PKCS#11 module over cloud KMS keys and an embedded local backend.
//! See DESIGN.md (shared) for the layers; data flows ffi -> api -> token/session ->
//! object/mechanism -> backend -> store.

pub mod error;
pub mod mechanism;
pub mod backend;
pub mod store;
pub mod config;
#[macro_use]
pub mod log;
pub mod object;
pub mod token;
pub mod api;
pub mod session;
