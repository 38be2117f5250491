//! The KMS seam: an enum over concrete backends. Only `local` exists so far.

pub mod local;
