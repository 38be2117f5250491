//! Secret-key mechanisms on aws-lc-rs: AES (GCM, CBC, CBC-PAD, CTR, ECB, KW, KWP, CMAC),
//! HMAC, digests, and the RNG.

use super::{Cipher, Digester, LocalKey, MechInfo, Mechanism, Signer, Verifier};
use crate::error::Result;
use cryptoki_sys::*;
use std::sync::Arc;

/// Registry rows for the mechanisms of this file.
pub(super) const MECHANISMS: &[MechInfo] = &[];

pub(super) fn encrypt_init(_m: &Mechanism, _key: &Arc<LocalKey>) -> Result<Box<dyn Cipher>> {
    Err(CKR_MECHANISM_INVALID.into())
}

pub(super) fn decrypt_init(_m: &Mechanism, _key: &Arc<LocalKey>) -> Result<Box<dyn Cipher>> {
    Err(CKR_MECHANISM_INVALID.into())
}

pub(super) fn sign_init(_m: &Mechanism, _key: &Arc<LocalKey>) -> Result<Box<dyn Signer>> {
    Err(CKR_MECHANISM_INVALID.into())
}

pub(super) fn verify_init(_m: &Mechanism, _key: &Arc<LocalKey>) -> Result<Box<dyn Verifier>> {
    Err(CKR_MECHANISM_INVALID.into())
}

pub(super) fn digest_init(_m: &Mechanism) -> Result<Box<dyn Digester>> {
    Err(CKR_MECHANISM_INVALID.into())
}

pub(super) fn random(_buf: &mut [u8]) -> Result<()> {
    Err(CKR_RANDOM_NO_RNG.into())
}
