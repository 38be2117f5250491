//! Public-key mechanisms on aws-lc-rs: RSA (PKCS#1 v1.5, PSS, OAEP) and ECDSA, key
//! generation, and the DER encodings the attributes need.

use super::{
    Cipher, Curve, KeyMaterial, LocalKey, MechInfo, Mechanism, RsaComponents, Signer, Verifier,
};
use crate::error::Result;
use cryptoki_sys::*;
use std::sync::Arc;
use zeroize::Zeroizing;

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

/// Generate an RSA key pair; returns `KeyMaterial::RsaPrivate`. `bits` 2048..=4096
/// (multiple of 8; else `CKR_KEY_SIZE_RANGE`), `public_exponent` big-endian (65537;
/// others `CKR_TEMPLATE_INCONSISTENT`).
pub fn generate_rsa(_bits: u64, _public_exponent: &[u8]) -> Result<KeyMaterial> {
    Err(CKR_MECHANISM_INVALID.into())
}

/// Generate an EC key pair; returns `KeyMaterial::EcPrivate`.
pub fn generate_ec(_curve: Curve) -> Result<KeyMaterial> {
    Err(CKR_MECHANISM_INVALID.into())
}

/// Build PKCS#1 RSAPrivateKey DER from components (C_CreateObject import). Components
/// that do not form a consistent key are `CKR_ATTRIBUTE_VALUE_INVALID`.
pub fn rsa_private_from_components(_c: &RsaComponents) -> Result<Zeroizing<Vec<u8>>> {
    Err(CKR_ATTRIBUTE_VALUE_INVALID.into())
}

/// Parse PKCS#1 RSAPrivateKey DER into components.
pub fn rsa_components(_der: &[u8]) -> Result<RsaComponents> {
    Err(CKR_ATTRIBUTE_VALUE_INVALID.into())
}

/// Compute the public point of an EC private scalar (import without CKA_EC_POINT).
pub fn ec_public_point(_curve: Curve, _d: &[u8]) -> Result<Vec<u8>> {
    Err(CKR_ATTRIBUTE_VALUE_INVALID.into())
}

/// DER `SubjectPublicKeyInfo` for a public or private RSA/EC key (CKA_PUBLIC_KEY_INFO).
pub fn public_key_info(_m: &KeyMaterial) -> Result<Vec<u8>> {
    Err(CKR_ATTRIBUTE_VALUE_INVALID.into())
}

/// Curve from DER `CKA_EC_PARAMS` (named-curve OID, or the PrintableString curve name
/// form some clients send); `CKR_CURVE_NOT_SUPPORTED` for others.
pub fn curve_from_params(_der: &[u8]) -> Result<Curve> {
    Err(CKR_CURVE_NOT_SUPPORTED.into())
}

/// DER `CKA_EC_PARAMS` (OID) of a curve.
pub fn curve_params(_c: Curve) -> &'static [u8] {
    &[]
}
