//! p11kms: a PKCS#11 module over cloud KMS keys and an embedded local backend.
//! See DESIGN.md (shared) for the layers; data flows ffi -> api -> token/session ->
//! object/mechanism -> backend -> store.

pub mod error;
pub mod ffi;
pub mod mechanism;
pub mod backend;
pub mod store;
