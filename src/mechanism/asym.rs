//! Public-key mechanisms on aws-lc-rs: RSA (PKCS#1 v1.5, PSS, OAEP) and ECDSA, key
//! generation, and the DER encodings the attributes need.
//!
//! aws-lc-rs covers key parsing and validation, RSA encryption (PKCS#1 v1.5, OAEP with
//! label) and ECDSA over a digest. What it lacks (PKCS#1 v1.5 over caller-built data,
//! PSS with any salt length, SHA-224 DigestInfo, key sizes other than 2048/3072/4096) goes
//! through the small safe wrapper in `ffi/awslc.rs`, on the same libcrypto.
//!
//! Digest-input mechanisms (CKM_ECDSA, CKM_RSA_PKCS_PSS, CKM_RSA_PKCS over a DigestInfo)
//! and their hashing variants share one code path: the hashing variants hash
//! incrementally, then sign the digest exactly as the raw mechanism would.

use super::{
    Cipher, Curve, KeyMaterial, LocalKey, MechInfo, MechParam, Mechanism, RemoteDecrypt, RemoteKey,
    RemoteSign, RsaComponents, Signer, Verifier,
};
use crate::error::{Error, Result};
use crate::ffi::awslc;
use aws_lc_rs::agreement;
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
};
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair,
    ParsedPublicKey,
};
use cryptoki_sys::*;
use std::sync::Arc;
use zeroize::Zeroizing;

/// RSA sizes (bits) offered for generation and in the registry.
const RSA_MIN_BITS: u64 = 2048;
const RSA_MAX_BITS: u64 = 4096;
/// RSA sizes (bits) accepted on import: what aws-lc-rs accepts for its own keys.
const RSA_IMPORT_MIN_BITS: usize = 2048;
const RSA_IMPORT_MAX_BITS: usize = 8192;
/// Largest input buffered by a raw (digest-input) mechanism; real inputs are <= 1 KiB.
const MAX_RAW_INPUT: usize = 16 * 1024;

const RSA_SIGN: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
const ECDSA_SIGN: CK_FLAGS = CKF_SIGN | CKF_VERIFY | EC_FLAGS;

const fn rsa_row(mech: CK_MECHANISM_TYPE, flags: CK_FLAGS) -> MechInfo {
    MechInfo {
        mech,
        min_key: RSA_MIN_BITS,
        max_key: RSA_MAX_BITS,
        flags,
    }
}

const fn ec_row(mech: CK_MECHANISM_TYPE, flags: CK_FLAGS) -> MechInfo {
    MechInfo {
        mech,
        min_key: 256,
        max_key: 521,
        flags,
    }
}

/// Registry rows for the mechanisms of this file.
pub(super) const MECHANISMS: &[MechInfo] = &[
    rsa_row(CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR),
    rsa_row(
        CKM_RSA_PKCS,
        CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY | CKF_WRAP | CKF_UNWRAP,
    ),
    rsa_row(CKM_SHA1_RSA_PKCS, RSA_SIGN),
    rsa_row(CKM_SHA224_RSA_PKCS, RSA_SIGN),
    rsa_row(CKM_SHA256_RSA_PKCS, RSA_SIGN),
    rsa_row(CKM_SHA384_RSA_PKCS, RSA_SIGN),
    rsa_row(CKM_SHA512_RSA_PKCS, RSA_SIGN),
    rsa_row(CKM_RSA_PKCS_PSS, RSA_SIGN),
    rsa_row(CKM_SHA1_RSA_PKCS_PSS, RSA_SIGN),
    rsa_row(CKM_SHA224_RSA_PKCS_PSS, RSA_SIGN),
    rsa_row(CKM_SHA256_RSA_PKCS_PSS, RSA_SIGN),
    rsa_row(CKM_SHA384_RSA_PKCS_PSS, RSA_SIGN),
    rsa_row(CKM_SHA512_RSA_PKCS_PSS, RSA_SIGN),
    rsa_row(
        CKM_RSA_PKCS_OAEP,
        CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
    ),
    ec_row(CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR | EC_FLAGS),
    ec_row(CKM_ECDSA, ECDSA_SIGN),
    ec_row(CKM_ECDSA_SHA1, ECDSA_SIGN),
    ec_row(CKM_ECDSA_SHA224, ECDSA_SIGN),
    ec_row(CKM_ECDSA_SHA256, ECDSA_SIGN),
    ec_row(CKM_ECDSA_SHA384, ECDSA_SIGN),
    ec_row(CKM_ECDSA_SHA512, ECDSA_SIGN),
];

// ---------------------------------------------------------------------------------------
// Hashes and mechanism kinds

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_ckm(m: CK_MECHANISM_TYPE) -> Option<Hash> {
        Some(match m {
            CKM_SHA_1 => Hash::Sha1,
            CKM_SHA224 => Hash::Sha224,
            CKM_SHA256 => Hash::Sha256,
            CKM_SHA384 => Hash::Sha384,
            CKM_SHA512 => Hash::Sha512,
            _ => return None,
        })
    }

    fn mgf(self) -> CK_RSA_PKCS_MGF_TYPE {
        match self {
            Hash::Sha1 => CKG_MGF1_SHA1,
            Hash::Sha224 => CKG_MGF1_SHA224,
            Hash::Sha256 => CKG_MGF1_SHA256,
            Hash::Sha384 => CKG_MGF1_SHA384,
            Hash::Sha512 => CKG_MGF1_SHA512,
        }
    }

    fn len(self) -> usize {
        self.alg().output_len()
    }

    fn alg(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha224 => &digest::SHA224,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    fn md(self) -> awslc::Md {
        match self {
            Hash::Sha1 => awslc::Md::Sha1,
            Hash::Sha224 => awslc::Md::Sha224,
            Hash::Sha256 => awslc::Md::Sha256,
            Hash::Sha384 => awslc::Md::Sha384,
            Hash::Sha512 => awslc::Md::Sha512,
        }
    }

    /// DER DigestInfo up to (and including) the OCTET STRING header (RFC 8017 §9.2).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            Hash::Sha224 => &[
                0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x04, 0x05, 0x00, 0x04, 0x1c,
            ],
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// What a mechanism of this file is. `None` hash = the raw (digest-input) form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    RsaPkcs1(Option<Hash>),
    RsaPss(Option<Hash>),
    RsaOaep,
    Ecdsa(Option<Hash>),
    KeyGen,
}

fn kind(mech: CK_MECHANISM_TYPE) -> Option<Kind> {
    use Hash::*;
    Some(match mech {
        CKM_RSA_PKCS => Kind::RsaPkcs1(None),
        CKM_SHA1_RSA_PKCS => Kind::RsaPkcs1(Some(Sha1)),
        CKM_SHA224_RSA_PKCS => Kind::RsaPkcs1(Some(Sha224)),
        CKM_SHA256_RSA_PKCS => Kind::RsaPkcs1(Some(Sha256)),
        CKM_SHA384_RSA_PKCS => Kind::RsaPkcs1(Some(Sha384)),
        CKM_SHA512_RSA_PKCS => Kind::RsaPkcs1(Some(Sha512)),
        CKM_RSA_PKCS_PSS => Kind::RsaPss(None),
        CKM_SHA1_RSA_PKCS_PSS => Kind::RsaPss(Some(Sha1)),
        CKM_SHA224_RSA_PKCS_PSS => Kind::RsaPss(Some(Sha224)),
        CKM_SHA256_RSA_PKCS_PSS => Kind::RsaPss(Some(Sha256)),
        CKM_SHA384_RSA_PKCS_PSS => Kind::RsaPss(Some(Sha384)),
        CKM_SHA512_RSA_PKCS_PSS => Kind::RsaPss(Some(Sha512)),
        CKM_RSA_PKCS_OAEP => Kind::RsaOaep,
        CKM_ECDSA => Kind::Ecdsa(None),
        CKM_ECDSA_SHA1 => Kind::Ecdsa(Some(Sha1)),
        CKM_ECDSA_SHA224 => Kind::Ecdsa(Some(Sha224)),
        CKM_ECDSA_SHA256 => Kind::Ecdsa(Some(Sha256)),
        CKM_ECDSA_SHA384 => Kind::Ecdsa(Some(Sha384)),
        CKM_ECDSA_SHA512 => Kind::Ecdsa(Some(Sha512)),
        CKM_RSA_PKCS_KEY_PAIR_GEN | CKM_EC_KEY_PAIR_GEN => Kind::KeyGen,
        _ => return None,
    })
}

/// A mechanism that is not ours is a secret-key mechanism used with an asymmetric key.
fn kind_or_key_type(mech: CK_MECHANISM_TYPE) -> Result<Kind> {
    kind(mech).ok_or(Error::new(CKR_KEY_TYPE_INCONSISTENT))
}

fn err(rv: CK_RV) -> Error {
    Error::new(rv)
}

fn failed(what: &str) -> Error {
    Error::msg(CKR_FUNCTION_FAILED, what)
}

/// Mechanisms without a parameter: tolerate an empty byte string as well as NULL.
fn no_param(p: &MechParam) -> Result<()> {
    match p {
        MechParam::None => Ok(()),
        MechParam::Bytes(b) if b.is_empty() => Ok(()),
        _ => Err(err(CKR_MECHANISM_PARAM_INVALID)),
    }
}

// ---------------------------------------------------------------------------------------
// Prepared keys (built once in LocalKey::new, shared by every operation)

/// aws-lc objects prepared once per key.
pub(super) enum AsymPrepared {
    Rsa(RsaPrepared),
    Ec(EcPrepared),
}

pub(super) struct RsaPrepared {
    raw: awslc::Rsa,
    public: PublicEncryptingKey,
    private: Option<PrivateDecryptingKey>,
    /// Modulus length in bytes.
    k: usize,
    bits: usize,
}

pub(super) struct EcPrepared {
    curve: Curve,
    public: ParsedPublicKey,
    private: Option<EcdsaKeyPair>,
}

fn signing_alg(c: Curve) -> &'static EcdsaSigningAlgorithm {
    match c {
        Curve::P256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
        Curve::K256 => &sig::ECDSA_P256K1_SHA256_FIXED_SIGNING,
    }
}

fn verification_alg(c: Curve) -> &'static EcdsaVerificationAlgorithm {
    match c {
        Curve::P256 => &sig::ECDSA_P256_SHA256_FIXED,
        Curve::P384 => &sig::ECDSA_P384_SHA384_FIXED,
        Curve::P521 => &sig::ECDSA_P521_SHA512_FIXED,
        Curve::K256 => &sig::ECDSA_P256K1_SHA256_FIXED,
    }
}

/// aws-lc-rs has no ECDH on secp256k1: `None` there.
fn ecdh_alg(c: Curve) -> Option<&'static agreement::Algorithm> {
    match c {
        Curve::P256 => Some(&agreement::ECDH_P256),
        Curve::P384 => Some(&agreement::ECDH_P384),
        Curve::P521 => Some(&agreement::ECDH_P521),
        Curve::K256 => None,
    }
}

fn field_len(c: Curve) -> usize {
    super::curve_field_len(c)
}

/// Left-pad (or strip leading zeros of) a private scalar to the field width.
fn scalar_fixed(c: Curve, d: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let n = field_len(c);
    let first = d.iter().position(|&b| b != 0).unwrap_or(d.len());
    let d = &d[first..];
    if d.is_empty() || d.len() > n {
        return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    let mut out = Zeroizing::new(vec![0u8; n]);
    out[n - d.len()..].copy_from_slice(d);
    Ok(out)
}

fn check_point(c: Curve, point: &[u8]) -> Result<()> {
    if point.len() != 1 + 2 * field_len(c) || point[0] != 0x04 {
        return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    Ok(())
}

fn check_rsa_bits(bits: usize) -> Result<()> {
    if (RSA_IMPORT_MIN_BITS..=RSA_IMPORT_MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(err(CKR_KEY_SIZE_RANGE))
    }
}

/// Validate asymmetric material and build its aws-lc objects; `None` for secret keys.
pub(super) fn prepare(m: &KeyMaterial) -> Result<Option<AsymPrepared>> {
    let invalid = |_| err(CKR_ATTRIBUTE_VALUE_INVALID);
    Ok(Some(match m {
        KeyMaterial::Secret { .. } => return Ok(None),
        // The local objects of a remote key are its public half's (verify, sizes).
        KeyMaterial::Remote { public, .. } => match public.as_ref() {
            KeyMaterial::RsaPublic { .. } | KeyMaterial::EcPublic { .. } => return prepare(public),
            _ => return Err(err(CKR_ATTRIBUTE_VALUE_INVALID)),
        },
        KeyMaterial::RsaPrivate { der } => {
            let raw = awslc::Rsa::from_pkcs1_private_der(der).map_err(invalid)?;
            let bits = raw.bits();
            check_rsa_bits(bits)?;
            let pkcs8 = der::pkcs8_rsa(der);
            let private = PrivateDecryptingKey::from_pkcs8(&pkcs8)
                .map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
            let public = private.public_key();
            AsymPrepared::Rsa(RsaPrepared {
                k: raw.size(),
                bits,
                raw,
                public,
                private: Some(private),
            })
        }
        KeyMaterial::RsaPublic { n, e } => {
            let pkcs1 = der::uint_seq(&[n, e]);
            let raw = awslc::Rsa::from_pkcs1_public_der(&pkcs1).map_err(invalid)?;
            let bits = raw.bits();
            check_rsa_bits(bits)?;
            let public = PublicEncryptingKey::from_der(&rsa_spki(n, e))
                .map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
            AsymPrepared::Rsa(RsaPrepared {
                k: raw.size(),
                bits,
                raw,
                public,
                private: None,
            })
        }
        KeyMaterial::EcPrivate { curve, d, point } => {
            check_point(*curve, point)?;
            let d = scalar_fixed(*curve, d)?;
            let kp = EcdsaKeyPair::from_private_key_and_public_key(signing_alg(*curve), &d, point)
                .map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
            let public = ParsedPublicKey::new(verification_alg(*curve), point)
                .map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
            AsymPrepared::Ec(EcPrepared {
                curve: *curve,
                public,
                private: Some(kp),
            })
        }
        KeyMaterial::EcPublic { curve, point } => {
            check_point(*curve, point)?;
            let public = ParsedPublicKey::new(verification_alg(*curve), point)
                .map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
            AsymPrepared::Ec(EcPrepared {
                curve: *curve,
                public,
                private: None,
            })
        }
    }))
}

fn rsa_of(key: &LocalKey) -> Result<&RsaPrepared> {
    match key.asym.as_ref() {
        Some(AsymPrepared::Rsa(r)) => Ok(r),
        _ => Err(err(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

fn ec_of(key: &LocalKey) -> Result<&EcPrepared> {
    match key.asym.as_ref() {
        Some(AsymPrepared::Ec(e)) => Ok(e),
        _ => Err(err(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

// ---------------------------------------------------------------------------------------
// Encrypt / decrypt

#[derive(Clone)]
enum EncScheme {
    Pkcs1,
    Oaep {
        alg: &'static OaepAlgorithm,
        hash: Hash,
        label: Vec<u8>,
    },
}

fn enc_scheme(m: &Mechanism) -> Result<EncScheme> {
    match kind_or_key_type(m.mech)? {
        Kind::RsaPkcs1(None) => {
            no_param(&m.param)?;
            Ok(EncScheme::Pkcs1)
        }
        Kind::RsaOaep => {
            let MechParam::Oaep { hash, mgf, label } = &m.param else {
                return Err(err(CKR_MECHANISM_PARAM_INVALID));
            };
            let h = Hash::from_ckm(*hash).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
            if *mgf != h.mgf() {
                return Err(err(CKR_MECHANISM_PARAM_INVALID));
            }
            let alg = match h {
                Hash::Sha1 => &OAEP_SHA1_MGF1SHA1,
                Hash::Sha256 => &OAEP_SHA256_MGF1SHA256,
                Hash::Sha384 => &OAEP_SHA384_MGF1SHA384,
                Hash::Sha512 => &OAEP_SHA512_MGF1SHA512,
                Hash::Sha224 => return Err(err(CKR_MECHANISM_PARAM_INVALID)),
            };
            Ok(EncScheme::Oaep {
                alg,
                hash: h,
                label: label.clone(),
            })
        }
        _ => Err(err(CKR_MECHANISM_INVALID)),
    }
}

/// Single-part RSA encryption or decryption; `update` only buffers.
struct RsaCipher {
    key: Arc<LocalKey>,
    scheme: EncScheme,
    decrypt: bool,
    buf: Option<Vec<u8>>,
}

impl RsaCipher {
    fn limit(&self, rsa: &RsaPrepared) -> usize {
        if self.decrypt {
            return rsa.k;
        }
        match &self.scheme {
            EncScheme::Pkcs1 => rsa.k.saturating_sub(11),
            EncScheme::Oaep { hash, .. } => rsa.k.saturating_sub(2 * hash.len() + 2),
        }
    }

    fn too_long(&self) -> Error {
        err(if self.decrypt {
            CKR_ENCRYPTED_DATA_LEN_RANGE
        } else {
            CKR_DATA_LEN_RANGE
        })
    }

    fn encrypt(&self, rsa: &RsaPrepared, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; rsa.k];
        let n = match &self.scheme {
            EncScheme::Pkcs1 => Pkcs1PublicEncryptingKey::new(rsa.public.clone())
                .and_then(|k| k.encrypt(input, &mut out).map(|o| o.len())),
            EncScheme::Oaep { alg, label, .. } => {
                let label = (!label.is_empty()).then_some(label.as_slice());
                OaepPublicEncryptingKey::new(rsa.public.clone())
                    .and_then(|k| k.encrypt(alg, input, &mut out, label).map(|o| o.len()))
            }
        }
        .map_err(|_| failed("RSA encryption failed"))?;
        out.truncate(n);
        Ok(out)
    }

    fn decrypt(&self, rsa: &RsaPrepared, input: &[u8]) -> Result<Vec<u8>> {
        let private = rsa.private.as_ref().ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
        if input.len() != rsa.k {
            return Err(err(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        let mut out = Zeroizing::new(vec![0u8; rsa.k]);
        let res = match &self.scheme {
            EncScheme::Pkcs1 => Pkcs1PrivateDecryptingKey::new(private.clone())
                .and_then(|k| k.decrypt(input, &mut out).map(|o| o.to_vec())),
            EncScheme::Oaep { alg, label, .. } => {
                let label = (!label.is_empty()).then_some(label.as_slice());
                OaepPrivateDecryptingKey::new(private.clone())
                    .and_then(|k| k.decrypt(alg, input, &mut out, label).map(|o| o.to_vec()))
            }
        };
        res.map_err(|_| err(CKR_ENCRYPTED_DATA_INVALID))
    }
}

impl Cipher for RsaCipher {
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let rsa = rsa_of(&self.key)?;
        let limit = self.limit(rsa);
        let too_long = self.too_long();
        let buf = self
            .buf
            .as_mut()
            .ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        if buf.len() + input.len() > limit {
            return Err(too_long);
        }
        buf.extend_from_slice(input);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let input = self.buf.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        let input = Zeroizing::new(input);
        let rsa = rsa_of(&self.key)?;
        if self.decrypt {
            self.decrypt(rsa, &input)
        } else {
            self.encrypt(rsa, &input)
        }
    }
}

fn cipher_init(m: &Mechanism, key: &Arc<LocalKey>, decrypt: bool) -> Result<Box<dyn Cipher>> {
    let scheme = enc_scheme(m)?;
    let rsa = rsa_of(key)?;
    if let (true, KeyMaterial::Remote { key: remote, .. }) = (decrypt, key.material()) {
        return remote_decrypt_init(scheme, rsa.k, remote.clone());
    }
    if decrypt && rsa.private.is_none() {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    let cipher = RsaCipher {
        key: key.clone(),
        scheme,
        decrypt,
        buf: Some(Vec::new()),
    };
    Ok(Box::new(cipher))
}

pub(super) fn encrypt_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Cipher>> {
    cipher_init(m, key, false)
}

pub(super) fn decrypt_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Cipher>> {
    cipher_init(m, key, true)
}

// ---------------------------------------------------------------------------------------
// Sign / verify

#[derive(Clone, Copy, Debug)]
enum SigScheme {
    /// PKCS#1 v1.5; with a hash, the input is hashed and wrapped in a DigestInfo.
    Pkcs1(Option<Hash>),
    Pss {
        hash: Hash,
        salt: usize,
    },
    Ecdsa(Curve),
}

/// The data being signed: buffered as-is (raw mechanisms) or hashed as it arrives.
enum Input {
    Raw(Vec<u8>),
    Hash(digest::Context),
    Done,
}

impl Input {
    fn new(hash: Option<Hash>) -> Input {
        match hash {
            Some(h) => Input::Hash(digest::Context::new(h.alg())),
            None => Input::Raw(Vec::new()),
        }
    }

    fn update(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Input::Raw(buf) => {
                if buf.len() + data.len() > MAX_RAW_INPUT {
                    return Err(err(CKR_DATA_LEN_RANGE));
                }
                buf.extend_from_slice(data);
            }
            Input::Hash(ctx) => ctx.update(data),
            Input::Done => return Err(err(CKR_OPERATION_NOT_INITIALIZED)),
        }
        Ok(())
    }

    /// The raw input, or the digest of what was hashed.
    fn finish(&mut self) -> Result<Vec<u8>> {
        match std::mem::replace(self, Input::Done) {
            Input::Raw(buf) => Ok(buf),
            Input::Hash(ctx) => Ok(ctx.finish().as_ref().to_vec()),
            Input::Done => Err(err(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }
}

/// Check the mechanism against the key and its parameters; returns the scheme and the
/// hash applied to the input (if any).
fn sig_scheme(m: &Mechanism, key: &LocalKey) -> Result<(SigScheme, Option<Hash>)> {
    match kind_or_key_type(m.mech)? {
        Kind::RsaPkcs1(h) => {
            rsa_of(key)?;
            no_param(&m.param)?;
            Ok((SigScheme::Pkcs1(h), h))
        }
        Kind::RsaPss(h) => {
            let rsa = rsa_of(key)?;
            let MechParam::Pss {
                hash,
                mgf,
                salt_len,
            } = &m.param
            else {
                return Err(err(CKR_MECHANISM_PARAM_INVALID));
            };
            let hash = Hash::from_ckm(*hash).ok_or(err(CKR_MECHANISM_PARAM_INVALID))?;
            if h.is_some_and(|h| h != hash) || *mgf != hash.mgf() {
                return Err(err(CKR_MECHANISM_PARAM_INVALID));
            }
            // RFC 8017 §9.1.1: emLen = ceil((modBits - 1) / 8) >= hLen + sLen + 2.
            let em_len = rsa.bits.saturating_sub(1).div_ceil(8);
            let salt = usize::try_from(*salt_len).map_err(|_| err(CKR_MECHANISM_PARAM_INVALID))?;
            if salt > em_len.saturating_sub(hash.len() + 2) || salt > i32::MAX as usize {
                return Err(err(CKR_MECHANISM_PARAM_INVALID));
            }
            Ok((SigScheme::Pss { hash, salt }, h))
        }
        Kind::Ecdsa(h) => {
            let ec = ec_of(key)?;
            no_param(&m.param)?;
            Ok((SigScheme::Ecdsa(ec.curve), h))
        }
        Kind::RsaOaep | Kind::KeyGen => Err(err(CKR_MECHANISM_INVALID)),
    }
}

fn sig_len_of(scheme: SigScheme, key: &LocalKey) -> usize {
    match scheme {
        SigScheme::Ecdsa(c) => 2 * field_len(c),
        _ => rsa_of(key).map(|r| r.k).unwrap_or(0),
    }
}

/// The value an ECDSA signature covers for a digest of any length, as a digest of the
/// length the key's aws-lc-rs algorithm expects. ECDSA (FIPS 186-4 §6.4) uses the
/// leftmost order-bit-length bits of the input, so a long input is truncated and a
/// short one left-padded with zeros (same integer). P-521's order is 521 bits; inputs
/// up to 64 bytes are never truncated there, longer ones are refused.
fn ecdsa_digest(c: Curve, input: &[u8]) -> Result<digest::Digest> {
    let (alg, n) = match c {
        Curve::P256 => (&digest::SHA256, 32),
        Curve::P384 => (&digest::SHA384, 48),
        Curve::P521 => (&digest::SHA512, 64),
        Curve::K256 => (&digest::SHA256, 32),
    };
    if input.is_empty() || (c == Curve::P521 && input.len() > n) {
        return Err(err(CKR_DATA_LEN_RANGE));
    }
    let mut buf = [0u8; 64];
    if input.len() >= n {
        buf[..n].copy_from_slice(&input[..n]);
    } else {
        buf[n - input.len()..n].copy_from_slice(input);
    }
    digest::Digest::import_less_safe(&buf[..n], alg).map_err(|_| failed("digest import"))
}

/// PKCS#1 v1.5 "T" for a hashed mechanism, or the raw input for CKM_RSA_PKCS.
fn pkcs1_block(h: Option<Hash>, tbs: Vec<u8>, k: usize) -> Result<Vec<u8>> {
    let t = match h {
        Some(h) => [h.digest_info_prefix(), &tbs].concat(),
        None => tbs,
    };
    if t.len() + 11 > k {
        return Err(err(CKR_DATA_LEN_RANGE));
    }
    Ok(t)
}

struct AsymSigner {
    key: Arc<LocalKey>,
    scheme: SigScheme,
    input: Input,
    sig_len: usize,
}

impl Signer for AsymSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let tbs = self.input.finish()?;
        match self.scheme {
            SigScheme::Pkcs1(h) => {
                let rsa = rsa_of(&self.key)?;
                let t = pkcs1_block(h, tbs, rsa.k)?;
                rsa.raw
                    .sign_pkcs1_raw(&t)
                    .map_err(|_| failed("RSA PKCS#1 signing failed"))
            }
            SigScheme::Pss { hash, salt } => {
                let rsa = rsa_of(&self.key)?;
                if tbs.len() != hash.len() {
                    return Err(err(CKR_DATA_LEN_RANGE));
                }
                rsa.raw
                    .sign_pss(&tbs, hash.md(), hash.md(), salt)
                    .map_err(|_| failed("RSA PSS signing failed"))
            }
            SigScheme::Ecdsa(c) => {
                let ec = ec_of(&self.key)?;
                let kp = ec.private.as_ref().ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
                let d = ecdsa_digest(c, &tbs)?;
                let s = kp
                    .sign_digest(&d)
                    .map_err(|_| failed("ECDSA signing failed"))?;
                if s.as_ref().len() != self.sig_len {
                    return Err(failed("ECDSA signature length"));
                }
                Ok(s.as_ref().to_vec())
            }
        }
    }

    fn sig_len(&self) -> usize {
        self.sig_len
    }
}

struct AsymVerifier {
    key: Arc<LocalKey>,
    scheme: SigScheme,
    input: Input,
    sig_len: usize,
}

impl Verifier for AsymVerifier {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let tbs = self.input.finish()?;
        if signature.len() != self.sig_len {
            return Err(err(CKR_SIGNATURE_LEN_RANGE));
        }
        let bad = |_| err(CKR_SIGNATURE_INVALID);
        match self.scheme {
            SigScheme::Pkcs1(h) => {
                let rsa = rsa_of(&self.key)?;
                let t = pkcs1_block(h, tbs, rsa.k)?;
                let recovered = rsa.raw.verify_pkcs1_raw(signature).map_err(bad)?;
                if recovered != t {
                    return Err(err(CKR_SIGNATURE_INVALID));
                }
                Ok(())
            }
            SigScheme::Pss { hash, salt } => {
                let rsa = rsa_of(&self.key)?;
                if tbs.len() != hash.len() {
                    return Err(err(CKR_DATA_LEN_RANGE));
                }
                rsa.raw
                    .verify_pss(&tbs, hash.md(), hash.md(), salt, signature)
                    .map_err(bad)
            }
            SigScheme::Ecdsa(c) => {
                let ec = ec_of(&self.key)?;
                let d = ecdsa_digest(c, &tbs)?;
                ec.public
                    .verify_digest_sig(&d, signature)
                    .map_err(|_| err(CKR_SIGNATURE_INVALID))
            }
        }
    }
}

pub(super) fn sign_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Signer>> {
    let (scheme, hash) = sig_scheme(m, key)?;
    if let KeyMaterial::Remote { key: remote, .. } = key.material() {
        return remote_sign_init(scheme, hash, key, remote.clone());
    }
    let has_private = match key.asym.as_ref() {
        Some(AsymPrepared::Rsa(r)) => r.private.is_some(),
        Some(AsymPrepared::Ec(e)) => e.private.is_some(),
        None => false,
    };
    if !has_private {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    let sig_len = sig_len_of(scheme, key);
    Ok(Box::new(AsymSigner {
        key: key.clone(),
        scheme,
        input: Input::new(hash),
        sig_len,
    }))
}

pub(super) fn verify_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Verifier>> {
    let (scheme, hash) = sig_scheme(m, key)?;
    let sig_len = sig_len_of(scheme, key);
    Ok(Box::new(AsymVerifier {
        key: key.clone(),
        scheme,
        input: Input::new(hash),
        sig_len,
    }))
}

// ---------------------------------------------------------------------------------------
// Remote keys: hash (and adapt) locally, then one KMS call at the end

/// What a remote signature needs besides the input.
#[derive(Clone, Copy, Debug)]
enum RemotePlan {
    /// ECDSA on this curve: the digest is adapted to the curve's KMS algorithm.
    Ecdsa(Curve),
    /// The input (raw, or what the mechanism hashed) is a digest of this hash.
    Digest(RemoteSign, Hash),
    /// CKM_RSA_PKCS: the input is a DigestInfo naming the hash.
    DigestInfo,
}

fn remote_pkcs1(h: Hash) -> Option<RemoteSign> {
    match h {
        Hash::Sha256 => Some(RemoteSign::RsaPkcs1Sha256),
        Hash::Sha384 => Some(RemoteSign::RsaPkcs1Sha384),
        Hash::Sha512 => Some(RemoteSign::RsaPkcs1Sha512),
        _ => None,
    }
}

fn remote_pss(h: Hash) -> Option<RemoteSign> {
    match h {
        Hash::Sha256 => Some(RemoteSign::RsaPssSha256),
        Hash::Sha384 => Some(RemoteSign::RsaPssSha384),
        Hash::Sha512 => Some(RemoteSign::RsaPssSha512),
        _ => None,
    }
}

/// The KMS ECDSA algorithm of a curve (KMS pairs each curve with one hash length).
fn remote_ecdsa(c: Curve) -> RemoteSign {
    match c {
        Curve::P256 => RemoteSign::EcdsaSha256,
        Curve::P384 => RemoteSign::EcdsaSha384,
        Curve::P521 => RemoteSign::EcdsaSha512,
        Curve::K256 => RemoteSign::EcdsaSha256,
    }
}

fn remote_sign_init(
    scheme: SigScheme,
    hash: Option<Hash>,
    key: &LocalKey,
    remote: Arc<dyn RemoteKey>,
) -> Result<Box<dyn Signer>> {
    let plan = match scheme {
        SigScheme::Ecdsa(c) => RemotePlan::Ecdsa(c),
        SigScheme::Pkcs1(None) => RemotePlan::DigestInfo,
        // KMS signs PKCS#1 v1.5 over SHA-256/384/512 only.
        SigScheme::Pkcs1(Some(h)) => {
            RemotePlan::Digest(remote_pkcs1(h).ok_or(err(CKR_MECHANISM_INVALID))?, h)
        }
        // KMS's PSS is MGF1 with the message hash and a salt of the hash length.
        SigScheme::Pss { hash: h, salt } => match remote_pss(h) {
            Some(alg) if salt == h.len() => RemotePlan::Digest(alg, h),
            _ => return Err(Error::msg(
                CKR_MECHANISM_PARAM_INVALID,
                "KMS PSS needs SHA-256/384/512 with MGF1 of the same hash and salt = hash length",
            )),
        },
    };
    // What the key's algorithm(s) cannot do is refused here, not at C_Sign. (A
    // CKM_RSA_PKCS DigestInfo names its hash only in the data: checked at signing.)
    match plan {
        RemotePlan::Ecdsa(c) => remote.check_sign(remote_ecdsa(c))?,
        RemotePlan::Digest(alg, _) => remote.check_sign(alg)?,
        RemotePlan::DigestInfo => {}
    }
    Ok(Box::new(RemoteSigner {
        remote,
        plan,
        input: Input::new(hash),
        sig_len: sig_len_of(scheme, key),
    }))
}

struct RemoteSigner {
    remote: Arc<dyn RemoteKey>,
    plan: RemotePlan,
    input: Input,
    sig_len: usize,
}

impl RemoteSigner {
    /// The KMS algorithm and the digest to send.
    fn request(&self, tbs: Vec<u8>) -> Result<(RemoteSign, Vec<u8>)> {
        match self.plan {
            RemotePlan::Ecdsa(c) => Ok((remote_ecdsa(c), ecdsa_digest(c, &tbs)?.as_ref().to_vec())),
            RemotePlan::Digest(alg, h) => {
                if tbs.len() != h.len() {
                    return Err(err(CKR_DATA_LEN_RANGE));
                }
                Ok((alg, tbs))
            }
            RemotePlan::DigestInfo => {
                for h in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
                    let p = h.digest_info_prefix();
                    if tbs.len() == p.len() + h.len() && tbs.starts_with(p) {
                        let alg = remote_pkcs1(h).ok_or(err(CKR_GENERAL_ERROR))?;
                        return Ok((alg, tbs[p.len()..].to_vec()));
                    }
                }
                Err(Error::msg(
                    CKR_DATA_INVALID,
                    "CKM_RSA_PKCS on a KMS key signs a SHA-256/384/512 DigestInfo only",
                ))
            }
        }
    }
}

impl Signer for RemoteSigner {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let tbs = self.input.finish()?;
        let (alg, digest) = self.request(tbs)?;
        let sig = self.remote.sign_digest(alg, &digest)?;
        let sig = match self.plan {
            RemotePlan::Ecdsa(c) => ecdsa_der_to_fixed(&sig, field_len(c))?,
            _ => sig,
        };
        if sig.len() != self.sig_len {
            return Err(Error::device(format!(
                "KMS signature of {} bytes, expected {}",
                sig.len(),
                self.sig_len
            )));
        }
        Ok(sig)
    }

    fn sig_len(&self) -> usize {
        self.sig_len
    }
}

/// DER ECDSA-Sig-Value (as KMS returns it) to fixed-width r||s (as PKCS#11 wants it).
fn ecdsa_der_to_fixed(sig: &[u8], width: usize) -> Result<Vec<u8>> {
    let bad = || Error::device("KMS returned a malformed ECDSA signature");
    let mut outer = der::Reader::new(sig);
    let mut seq = der::Reader::new(outer.expect(der::SEQUENCE).ok_or_else(bad)?);
    let r = seq.uint().ok_or_else(bad)?;
    let s = seq.uint().ok_or_else(bad)?;
    if !seq.is_empty() || !outer.is_empty() || r.len() > width || s.len() > width {
        return Err(bad());
    }
    let mut out = vec![0u8; 2 * width];
    out[width - r.len()..width].copy_from_slice(r);
    out[2 * width - s.len()..].copy_from_slice(s);
    Ok(out)
}

fn remote_decrypt_init(
    scheme: EncScheme,
    k: usize,
    remote: Arc<dyn RemoteKey>,
) -> Result<Box<dyn Cipher>> {
    let alg = match scheme {
        EncScheme::Oaep { hash, label, .. } => {
            if !label.is_empty() {
                return Err(Error::msg(
                    CKR_MECHANISM_PARAM_INVALID,
                    "KMS RSA-OAEP takes no label",
                ));
            }
            match hash {
                Hash::Sha1 => RemoteDecrypt::OaepSha1,
                Hash::Sha256 => RemoteDecrypt::OaepSha256,
                _ => {
                    return Err(Error::msg(
                        CKR_MECHANISM_PARAM_INVALID,
                        "KMS RSA-OAEP uses SHA-1 or SHA-256",
                    ))
                }
            }
        }
        // KMS has no PKCS#1 v1.5 decryption.
        EncScheme::Pkcs1 => return Err(err(CKR_MECHANISM_INVALID)),
    };
    remote.check_decrypt(alg)?;
    Ok(Box::new(RemoteCipher {
        remote,
        alg,
        k,
        buf: Some(Vec::new()),
    }))
}

/// Single-part remote RSA-OAEP decryption; `update` only buffers.
struct RemoteCipher {
    remote: Arc<dyn RemoteKey>,
    alg: RemoteDecrypt,
    k: usize,
    buf: Option<Vec<u8>>,
}

impl Cipher for RemoteCipher {
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let buf = self
            .buf
            .as_mut()
            .ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        if buf.len() + input.len() > self.k {
            return Err(err(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        buf.extend_from_slice(input);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let input = self.buf.take().ok_or(err(CKR_OPERATION_NOT_INITIALIZED))?;
        if input.len() != self.k {
            return Err(err(CKR_ENCRYPTED_DATA_LEN_RANGE));
        }
        self.remote.decrypt(self.alg, &input)
    }
}

// ---------------------------------------------------------------------------------------
// Key generation and encodings

/// Generate an RSA key pair; returns `KeyMaterial::RsaPrivate`. `bits` 2048..=4096 and a
/// multiple of 128 (AWS-LC generates only those; else `CKR_KEY_SIZE_RANGE`),
/// `public_exponent` big-endian (65537, or empty for the default; others
/// `CKR_TEMPLATE_INCONSISTENT`).
pub fn generate_rsa(bits: u64, public_exponent: &[u8]) -> Result<KeyMaterial> {
    // The caller passes the template's value (65537 when it has none): a zero or empty
    // exponent is as wrong as any other value.
    let e = der::strip_zeros(public_exponent);
    if e != [0x01, 0x00, 0x01] {
        return Err(err(CKR_TEMPLATE_INCONSISTENT));
    }
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) || bits % 128 != 0 {
        return Err(err(CKR_KEY_SIZE_RANGE));
    }
    let rsa = awslc::Rsa::generate(bits as u32).map_err(|_| failed("RSA key generation"))?;
    if rsa.bits() as u64 != bits {
        return Err(failed("RSA key generation size"));
    }
    let der = rsa
        .to_pkcs1_private_der()
        .map_err(|_| failed("RSA key encoding"))?;
    Ok(KeyMaterial::RsaPrivate { der })
}

/// Generate an EC key pair; returns `KeyMaterial::EcPrivate`.
pub fn generate_ec(curve: Curve) -> Result<KeyMaterial> {
    let kp = EcdsaKeyPair::generate(signing_alg(curve)).map_err(|_| failed("EC keygen"))?;
    let d = kp
        .private_key()
        .as_be_bytes()
        .map_err(|_| failed("EC key encoding"))?;
    let d = scalar_fixed(curve, d.as_ref()).map_err(|_| failed("EC key encoding"))?;
    let point = kp.public_key().as_ref().to_vec();
    check_point(curve, &point).map_err(|_| failed("EC public point"))?;
    Ok(KeyMaterial::EcPrivate { curve, d, point })
}

/// Build PKCS#1 RSAPrivateKey DER from components (C_CreateObject import). Components
/// that do not form a consistent key are `CKR_ATTRIBUTE_VALUE_INVALID`.
pub fn rsa_private_from_components(c: &RsaComponents) -> Result<Zeroizing<Vec<u8>>> {
    let der = der::uint_seq(&[&[], &c.n, &c.e, &c.d, &c.p, &c.q, &c.dp, &c.dq, &c.qinv]);
    awslc::Rsa::from_pkcs1_private_der(&der).map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
    Ok(der)
}

/// Parse PKCS#1 RSAPrivateKey DER into components.
pub fn rsa_components(der: &[u8]) -> Result<RsaComponents> {
    let bad = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    let mut outer = der::Reader::new(der);
    let mut seq = der::Reader::new(outer.expect(der::SEQUENCE).ok_or_else(bad)?);
    if !outer.is_empty() {
        return Err(bad());
    }
    // Version 0: two-prime keys only (multi-prime is version 1).
    if !seq.uint().ok_or_else(bad)?.is_empty() {
        return Err(bad());
    }
    let mut next = || seq.uint().map(|v| v.to_vec()).ok_or_else(bad);
    let (n, e) = (next()?, next()?);
    let d = Zeroizing::new(next()?);
    let p = Zeroizing::new(next()?);
    let q = Zeroizing::new(next()?);
    let dp = Zeroizing::new(next()?);
    let dq = Zeroizing::new(next()?);
    let qinv = Zeroizing::new(next()?);
    if !seq.is_empty() {
        return Err(bad());
    }
    Ok(RsaComponents {
        n,
        e,
        d,
        p,
        q,
        dp,
        dq,
        qinv,
    })
}

/// Compute the public point of an EC private scalar (import without CKA_EC_POINT).
pub fn ec_public_point(curve: Curve, d: &[u8]) -> Result<Vec<u8>> {
    let d = scalar_fixed(curve, d)?;
    let Some(alg) = ecdh_alg(curve) else {
        // RFC 5915 ECPrivateKey without its public key: aws-lc computes the point.
        let der = Zeroizing::new(der::tlv(
            der::SEQUENCE,
            &[
                &[0x02, 0x01, 0x01][..],
                &der::tlv(0x04, &d),
                &der::tlv(0xa0, curve_params(curve)),
            ]
            .concat(),
        ));
        let kp = EcdsaKeyPair::from_private_key_der(signing_alg(curve), &der)
            .map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
        return Ok(kp.public_key().as_ref().to_vec());
    };
    let key = agreement::PrivateKey::from_private_key(alg, &d)
        .map_err(|_| err(CKR_ATTRIBUTE_VALUE_INVALID))?;
    let public = key
        .compute_public_key()
        .map_err(|_| failed("EC public point"))?;
    Ok(public.as_ref().to_vec())
}

const RSA_ALG_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const K256_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let key = der::uint_seq(&[n, e]);
    der::tlv(
        der::SEQUENCE,
        &[RSA_ALG_ID, &der::bit_string(&key)].concat(),
    )
}

fn ec_spki(c: Curve, point: &[u8]) -> Vec<u8> {
    let alg = der::tlv(
        der::SEQUENCE,
        &[EC_PUBLIC_KEY_OID, curve_params(c)].concat(),
    );
    der::tlv(der::SEQUENCE, &[alg, der::bit_string(point)].concat())
}

/// DER `SubjectPublicKeyInfo` for a public or private RSA/EC key (CKA_PUBLIC_KEY_INFO).
pub fn public_key_info(m: &KeyMaterial) -> Result<Vec<u8>> {
    match m {
        KeyMaterial::RsaPublic { n, e } => Ok(rsa_spki(n, e)),
        KeyMaterial::RsaPrivate { der } => {
            let c = rsa_components(der)?;
            Ok(rsa_spki(&c.n, &c.e))
        }
        KeyMaterial::EcPrivate { curve, point, .. } | KeyMaterial::EcPublic { curve, point } => {
            Ok(ec_spki(*curve, point))
        }
        KeyMaterial::Remote { public, .. } => public_key_info(public),
        KeyMaterial::Secret { .. } => Err(err(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// The public key of a DER `SubjectPublicKeyInfo` (RSA, or EC on a supported named
/// curve), as KMS GetPublicKey returns it. Anything else is
/// `CKR_ATTRIBUTE_VALUE_INVALID` (`CKR_CURVE_NOT_SUPPORTED` for other curves).
pub fn public_from_spki(spki: &[u8]) -> Result<KeyMaterial> {
    let bad = || err(CKR_ATTRIBUTE_VALUE_INVALID);
    let mut outer = der::Reader::new(spki);
    let mut seq = der::Reader::new(outer.expect(der::SEQUENCE).ok_or_else(bad)?);
    if !outer.is_empty() {
        return Err(bad());
    }
    let alg = seq.expect(der::SEQUENCE).ok_or_else(bad)?;
    let bits = seq.expect(der::BIT_STRING).ok_or_else(bad)?;
    if !seq.is_empty() {
        return Err(bad());
    }
    let (&unused, key) = bits.split_first().ok_or_else(bad)?;
    if unused != 0 {
        return Err(bad());
    }
    let mut a = der::Reader::new(alg);
    let oid = a.expect(der::OID).ok_or_else(bad)?;
    let m = if oid == &RSA_ALG_ID[4..13] {
        let mut k = der::Reader::new(key);
        let mut ints = der::Reader::new(k.expect(der::SEQUENCE).ok_or_else(bad)?);
        let n = ints.uint().ok_or_else(bad)?.to_vec();
        let e = ints.uint().ok_or_else(bad)?.to_vec();
        if !ints.is_empty() || !k.is_empty() {
            return Err(bad());
        }
        KeyMaterial::RsaPublic { n, e }
    } else if oid == &EC_PUBLIC_KEY_OID[2..] {
        let (tag, params) = a.read_tlv().ok_or_else(bad)?;
        let curve = curve_from_params(&der::tlv(tag, params))?;
        KeyMaterial::EcPublic {
            curve,
            point: key.to_vec(),
        }
    } else {
        return Err(bad());
    };
    // Same checks as any imported public key.
    prepare(&m)?;
    Ok(m)
}

/// Curve from DER `CKA_EC_PARAMS` (named-curve OID, or the PrintableString curve name
/// form some clients send); `CKR_CURVE_NOT_SUPPORTED` for others, including explicit
/// parameters; `CKR_DOMAIN_PARAMS_INVALID` for bytes that are not one DER value.
pub fn curve_from_params(params: &[u8]) -> Result<Curve> {
    let mut r = der::Reader::new(params);
    let (tag, value) = r.read_tlv().ok_or(err(CKR_DOMAIN_PARAMS_INVALID))?;
    if !r.is_empty() {
        return Err(err(CKR_DOMAIN_PARAMS_INVALID));
    }
    match tag {
        // An OID's last subidentifier octet never has the continuation bit.
        der::OID if value.last().is_none_or(|b| b & 0x80 != 0) => {
            Err(err(CKR_DOMAIN_PARAMS_INVALID))
        }
        der::OID => [
            (Curve::P256, P256_OID),
            (Curve::P384, P384_OID),
            (Curve::P521, P521_OID),
            (Curve::K256, K256_OID),
        ]
        .into_iter()
        .find(|(_, oid)| oid[2..] == *value)
        .map(|(c, _)| c)
        .ok_or(err(CKR_CURVE_NOT_SUPPORTED)),
        der::PRINTABLE_STRING => match value {
            b"prime256v1" | b"secp256r1" | b"P-256" => Ok(Curve::P256),
            b"secp384r1" | b"P-384" => Ok(Curve::P384),
            b"secp521r1" | b"P-521" => Ok(Curve::P521),
            b"secp256k1" => Ok(Curve::K256),
            _ => Err(err(CKR_CURVE_NOT_SUPPORTED)),
        },
        _ => Err(err(CKR_CURVE_NOT_SUPPORTED)),
    }
}

/// DER `CKA_EC_PARAMS` (OID) of a curve.
pub fn curve_params(c: Curve) -> &'static [u8] {
    match c {
        Curve::P256 => P256_OID,
        Curve::P384 => P384_OID,
        Curve::P521 => P521_OID,
        Curve::K256 => K256_OID,
    }
}

/// Just enough DER (X.690) for PKCS#1, PKCS#8, SPKI and EC parameters: single-byte
/// tags, definite minimal lengths, non-negative INTEGERs.
mod der {
    use zeroize::Zeroizing;

    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const SEQUENCE: u8 = 0x30;

    pub struct Reader<'a> {
        data: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub fn new(data: &'a [u8]) -> Self {
            Reader { data }
        }

        pub fn is_empty(&self) -> bool {
            self.data.is_empty()
        }

        /// One tag-length-value; `None` if malformed or truncated.
        pub fn read_tlv(&mut self) -> Option<(u8, &'a [u8])> {
            let (&tag, rest) = self.data.split_first()?;
            if tag & 0x1f == 0x1f {
                return None; // multi-byte tags: never needed here
            }
            let (&first, mut rest) = rest.split_first()?;
            let len = if first < 0x80 {
                first as usize
            } else {
                let n = (first & 0x7f) as usize;
                if n == 0 || n > 4 || rest.len() < n || rest[0] == 0 {
                    return None;
                }
                let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
                if len < 0x80 {
                    return None; // non-minimal
                }
                rest = &rest[n..];
                len
            };
            if rest.len() < len {
                return None;
            }
            let (value, rest) = rest.split_at(len);
            self.data = rest;
            Some((tag, value))
        }

        pub fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
            match self.read_tlv()? {
                (t, v) if t == tag => Some(v),
                _ => None,
            }
        }

        /// A non-negative INTEGER's magnitude, without leading zeros (empty for 0).
        pub fn uint(&mut self) -> Option<&'a [u8]> {
            let v = self.expect(INTEGER)?;
            match v {
                [] => None,
                [b, ..] if b & 0x80 != 0 => None,
                [0, b, ..] if b & 0x80 == 0 => None, // non-minimal
                [0, rest @ ..] => Some(rest),
                _ => Some(v),
            }
        }
    }

    pub fn strip_zeros(v: &[u8]) -> &[u8] {
        let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
        &v[first..]
    }

    fn header_len(len: usize) -> usize {
        match len {
            0..0x80 => 2,
            0x80..0x100 => 3,
            0x100..0x1_0000 => 4,
            0x1_0000..0x100_0000 => 5,
            _ => 6,
        }
    }

    fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
        out.push(tag);
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = (len as u32).to_be_bytes();
            let skip = bytes.iter().position(|&b| b != 0).unwrap_or(3);
            out.push(0x80 | (4 - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }

    /// Content length of a non-negative INTEGER with this magnitude.
    fn uint_len(mag: &[u8]) -> usize {
        let m = strip_zeros(mag);
        match m.first() {
            None => 1,
            Some(b) if b & 0x80 != 0 => m.len() + 1,
            Some(_) => m.len(),
        }
    }

    fn push_uint(out: &mut Vec<u8>, mag: &[u8]) {
        let m = strip_zeros(mag);
        push_header(out, INTEGER, uint_len(m));
        if m.first().is_none_or(|b| b & 0x80 != 0) {
            out.push(0);
        }
        out.extend_from_slice(m);
    }

    /// SEQUENCE of non-negative INTEGERs, in a buffer sized once so secret values are
    /// never left behind by a reallocation.
    pub fn uint_seq(ints: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        let body: usize = ints
            .iter()
            .map(|i| {
                let l = uint_len(i);
                header_len(l) + l
            })
            .sum();
        let mut out = Zeroizing::new(Vec::with_capacity(header_len(body) + body));
        push_header(&mut out, SEQUENCE, body);
        for i in ints {
            push_uint(&mut out, i);
        }
        out
    }

    pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(header_len(value.len()) + value.len());
        push_header(&mut out, tag, value.len());
        out.extend_from_slice(value);
        out
    }

    /// BIT STRING with no unused bits.
    pub fn bit_string(value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(header_len(value.len() + 1) + value.len() + 1);
        push_header(&mut out, BIT_STRING, value.len() + 1);
        out.push(0);
        out.extend_from_slice(value);
        out
    }

    /// PKCS#8 PrivateKeyInfo around a PKCS#1 RSAPrivateKey (RFC 5208), sized once.
    pub fn pkcs8_rsa(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
        const VERSION: &[u8] = &[INTEGER, 0x01, 0x00];
        let body = VERSION.len() + super::RSA_ALG_ID.len() + header_len(pkcs1.len()) + pkcs1.len();
        let mut out = Zeroizing::new(Vec::with_capacity(header_len(body) + body));
        push_header(&mut out, SEQUENCE, body);
        out.extend_from_slice(VERSION);
        out.extend_from_slice(super::RSA_ALG_ID);
        push_header(&mut out, OCTET_STRING, pkcs1.len());
        out.extend_from_slice(pkcs1);
        out
    }
}

#[cfg(test)]
mod tests {
    //! Signatures made here are checked by an independent implementation: the `openssl`
    //! command line (OpenSSL 3) and, where it has the algorithm, aws-lc-rs's high-level
    //! message API. Ciphertexts are exchanged with openssl in both directions.

    use super::*;
    use crate::mechanism;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;

    const ALL_HASHES: [Hash; 5] = [
        Hash::Sha1,
        Hash::Sha224,
        Hash::Sha256,
        Hash::Sha384,
        Hash::Sha512,
    ];
    const CURVES: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

    fn rv<T>(r: Result<T>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    fn mech(mech: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism {
            mech,
            param: MechParam::None,
        }
    }

    fn pss(mech: CK_MECHANISM_TYPE, h: Hash, salt: u64) -> Mechanism {
        let param = MechParam::Pss {
            hash: h.ckm(),
            mgf: h.mgf(),
            salt_len: salt,
        };
        Mechanism { mech, param }
    }

    fn oaep(h: Hash, label: &[u8]) -> Mechanism {
        let param = MechParam::Oaep {
            hash: h.ckm(),
            mgf: h.mgf(),
            label: label.to_vec(),
        };
        Mechanism {
            mech: CKM_RSA_PKCS_OAEP,
            param,
        }
    }

    impl Hash {
        fn ckm(self) -> CK_MECHANISM_TYPE {
            match self {
                Hash::Sha1 => CKM_SHA_1,
                Hash::Sha224 => CKM_SHA224,
                Hash::Sha256 => CKM_SHA256,
                Hash::Sha384 => CKM_SHA384,
                Hash::Sha512 => CKM_SHA512,
            }
        }
        fn name(self) -> &'static str {
            match self {
                Hash::Sha1 => "sha1",
                Hash::Sha224 => "sha224",
                Hash::Sha256 => "sha256",
                Hash::Sha384 => "sha384",
                Hash::Sha512 => "sha512",
            }
        }
        fn rsa_pkcs(self) -> CK_MECHANISM_TYPE {
            match self {
                Hash::Sha1 => CKM_SHA1_RSA_PKCS,
                Hash::Sha224 => CKM_SHA224_RSA_PKCS,
                Hash::Sha256 => CKM_SHA256_RSA_PKCS,
                Hash::Sha384 => CKM_SHA384_RSA_PKCS,
                Hash::Sha512 => CKM_SHA512_RSA_PKCS,
            }
        }
        fn rsa_pss(self) -> CK_MECHANISM_TYPE {
            match self {
                Hash::Sha1 => CKM_SHA1_RSA_PKCS_PSS,
                Hash::Sha224 => CKM_SHA224_RSA_PKCS_PSS,
                Hash::Sha256 => CKM_SHA256_RSA_PKCS_PSS,
                Hash::Sha384 => CKM_SHA384_RSA_PKCS_PSS,
                Hash::Sha512 => CKM_SHA512_RSA_PKCS_PSS,
            }
        }
        fn ecdsa(self) -> CK_MECHANISM_TYPE {
            match self {
                Hash::Sha1 => CKM_ECDSA_SHA1,
                Hash::Sha224 => CKM_ECDSA_SHA224,
                Hash::Sha256 => CKM_ECDSA_SHA256,
                Hash::Sha384 => CKM_ECDSA_SHA384,
                Hash::Sha512 => CKM_ECDSA_SHA512,
            }
        }
        fn hash(self, data: &[u8]) -> Vec<u8> {
            digest::digest(self.alg(), data).as_ref().to_vec()
        }
    }

    /// One 2048-bit key for the whole test binary (key generation is the slow part).
    fn rsa_material() -> &'static KeyMaterial {
        static K: OnceLock<KeyMaterial> = OnceLock::new();
        K.get_or_init(|| generate_rsa(2048, &[1, 0, 1]).unwrap())
    }

    fn rsa_private() -> Arc<LocalKey> {
        LocalKey::new(rsa_material().clone()).unwrap()
    }

    fn public_of(m: &KeyMaterial) -> KeyMaterial {
        match m {
            KeyMaterial::RsaPrivate { der } => {
                let c = rsa_components(der).unwrap();
                KeyMaterial::RsaPublic { n: c.n, e: c.e }
            }
            KeyMaterial::EcPrivate { curve, point, .. } => KeyMaterial::EcPublic {
                curve: *curve,
                point: point.clone(),
            },
            _ => panic!("not asymmetric"),
        }
    }

    fn rsa_public() -> Arc<LocalKey> {
        LocalKey::new(public_of(rsa_material())).unwrap()
    }

    fn rsa_k() -> usize {
        rsa_of(&rsa_private()).unwrap().k
    }

    fn random(n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        aws_lc_rs::rand::fill(&mut v).unwrap();
        v
    }

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn openssl(args: &[&str]) -> std::process::Output {
        Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs")
    }

    /// Run openssl, assert success, return stdout.
    fn openssl_ok(args: &[&str]) -> Vec<u8> {
        let out = openssl(args);
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    /// Our SubjectPublicKeyInfo, re-encoded as PEM by openssl (which must parse it).
    fn public_pem(dir: &Path, m: &KeyMaterial) -> PathBuf {
        let der = write(dir, "pub.der", &public_key_info(m).unwrap());
        let pem = dir.join("pub.pem");
        openssl_ok(&[
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            s(&der),
            "-out",
            s(&pem),
        ]);
        pem
    }

    /// The private key as a file openssl can use (PKCS#1 for RSA, PKCS#8 for EC).
    fn private_der(dir: &Path, m: &KeyMaterial) -> PathBuf {
        let bytes = match m {
            KeyMaterial::RsaPrivate { der } => der.to_vec(),
            KeyMaterial::EcPrivate { curve, d, point } => {
                EcdsaKeyPair::from_private_key_and_public_key(signing_alg(*curve), d, point)
                    .unwrap()
                    .to_pkcs8v1()
                    .unwrap()
                    .as_ref()
                    .to_vec()
            }
            _ => panic!("not a private key"),
        };
        write(dir, "key.der", &bytes)
    }

    fn sign(m: &Mechanism, key: &Arc<LocalKey>, parts: &[&[u8]]) -> Vec<u8> {
        let mut signer = sign_init(m, key).unwrap();
        let len = signer.sig_len();
        for p in parts {
            signer.update(p).unwrap();
        }
        let sig = signer.finish().unwrap();
        assert_eq!(sig.len(), len, "sig_len for {m:?}");
        sig
    }

    fn verify(m: &Mechanism, key: &Arc<LocalKey>, data: &[u8], sig: &[u8]) -> CK_RV {
        rv(verify_init(m, key).and_then(|mut v| v.oneshot(data, sig)))
    }

    /// r||s -> DER ECDSA-Sig-Value, and back.
    fn sig_to_der(rs: &[u8]) -> Vec<u8> {
        let (r, s) = rs.split_at(rs.len() / 2);
        der::uint_seq(&[r, s]).to_vec()
    }

    fn sig_from_der(sig: &[u8], width: usize) -> Vec<u8> {
        let mut outer = der::Reader::new(sig);
        let mut seq = der::Reader::new(outer.expect(der::SEQUENCE).unwrap());
        let mut out = vec![0u8; 2 * width];
        for i in 0..2 {
            let v = seq.uint().unwrap();
            out[(i + 1) * width - v.len()..(i + 1) * width].copy_from_slice(v);
        }
        out
    }

    /// secp256k1 on the local backend: keygen, ECDSA sign (r||s), local verify, the
    /// same signature accepted by aws-lc-rs's own verifier, SPKI as aws-lc encodes it,
    /// the public point recomputed from the scalar.
    #[test]
    fn secp256k1_local_sign_verify() {
        let (m, key) = ec_key(Curve::K256);
        let KeyMaterial::EcPrivate { d, point, .. } = &m else {
            unreachable!()
        };
        assert_eq!(point.len(), 65);
        assert_eq!(&ec_public_point(Curve::K256, d).unwrap(), point);
        let public = LocalKey::new(public_of(&m)).unwrap();
        let data = b"secp256k1 message";
        let s = sign(&mech(CKM_ECDSA_SHA256), &key, &[data]);
        assert_eq!(s.len(), 64);
        assert_eq!(verify(&mech(CKM_ECDSA_SHA256), &public, data, &s), CKR_OK);
        sig::UnparsedPublicKey::new(&sig::ECDSA_P256K1_SHA256_FIXED, point)
            .verify(data, &s)
            .unwrap();
        // Raw CKM_ECDSA over a SHA-512 digest: truncated to 32 bytes like ECDSA does.
        let h = digest::digest(&digest::SHA512, data);
        let s = sign(&mech(CKM_ECDSA), &key, &[h.as_ref()]);
        assert_eq!(verify(&mech(CKM_ECDSA), &public, h.as_ref(), &s), CKR_OK);
        let mut bad = s.clone();
        bad[5] ^= 1;
        assert_ne!(verify(&mech(CKM_ECDSA), &public, h.as_ref(), &bad), CKR_OK);
        let spki = public_key_info(&m).unwrap();
        let kp = EcdsaKeyPair::from_private_key_and_public_key(signing_alg(Curve::K256), d, point)
            .unwrap();
        use aws_lc_rs::encoding::AsDer;
        assert_eq!(kp.public_key().as_der().unwrap().as_ref(), spki.as_slice());
        let back = public_from_spki(&spki).unwrap();
        assert_eq!(public_key_info(&back).unwrap(), spki);
    }

    fn ec_key(c: Curve) -> (KeyMaterial, Arc<LocalKey>) {
        let m = generate_ec(c).unwrap();
        let k = LocalKey::new(m.clone()).unwrap();
        (m, k)
    }

    #[test]
    fn registry_rows_are_consistent() {
        for row in MECHANISMS {
            let k = kind(row.mech).expect("every row has a kind");
            let ec = matches!(k, Kind::Ecdsa(_)) || row.mech == CKM_EC_KEY_PAIR_GEN;
            if ec {
                assert_eq!((row.min_key, row.max_key), (256, 521));
                assert_eq!(row.flags & EC_FLAGS, EC_FLAGS);
            } else {
                assert_eq!((row.min_key, row.max_key), (2048, 4096));
            }
            let signs = row.flags & CKF_SIGN != 0;
            assert_eq!(
                signs,
                matches!(k, Kind::RsaPkcs1(_) | Kind::RsaPss(_) | Kind::Ecdsa(_))
            );
        }
        assert_eq!(MECHANISMS.len(), 21);
        assert!(mechanism::info(CKM_ECDSA_SHA512).is_ok());
    }

    #[test]
    fn rsa_pkcs1_hashed_signatures_verify_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let key = rsa_private();
        let pem = public_pem(dir.path(), rsa_material());
        let data = b"The quick brown fox jumps over the lazy dog, in two parts.";
        let datafile = write(dir.path(), "data", data);
        for h in ALL_HASHES {
            let sig = sign(&mech(h.rsa_pkcs()), &key, &[&data[..10], &data[10..]]);
            let sigfile = write(dir.path(), "sig", &sig);
            openssl_ok(&[
                "dgst",
                &format!("-{}", h.name()),
                "-verify",
                s(&pem),
                "-signature",
                s(&sigfile),
                s(&datafile),
            ]);
            // Our verifier, with the private and the public key.
            assert_eq!(verify(&mech(h.rsa_pkcs()), &key, data, &sig), CKR_OK);
            assert_eq!(
                verify(&mech(h.rsa_pkcs()), &rsa_public(), data, &sig),
                CKR_OK
            );
        }
        // aws-lc-rs's message API is a second independent check.
        let sig = sign(&mech(CKM_SHA256_RSA_PKCS), &key, &[data]);
        let spki = public_key_info(rsa_material()).unwrap();
        PublicEncryptingKey::from_der(&spki).unwrap();
        let KeyMaterial::RsaPublic { n, e } = public_of(rsa_material()) else {
            unreachable!()
        };
        let pkcs1 = der::uint_seq(&[&n, &e]);
        sig::UnparsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, pkcs1.as_slice())
            .verify(data, &sig)
            .unwrap();
    }

    #[test]
    fn rsa_pkcs_raw_signs_digest_info_and_arbitrary_data() {
        let dir = tempfile::tempdir().unwrap();
        let key = rsa_private();
        let pem = public_pem(dir.path(), rsa_material());
        let data = b"message for a DigestInfo";
        let datafile = write(dir.path(), "data", data);
        let di = [Hash::Sha256.digest_info_prefix(), &Hash::Sha256.hash(data)].concat();
        let sig = sign(&mech(CKM_RSA_PKCS), &key, &[&di]);
        let sigfile = write(dir.path(), "sig", &sig);
        openssl_ok(&[
            "dgst",
            "-sha256",
            "-verify",
            s(&pem),
            "-signature",
            s(&sigfile),
            s(&datafile),
        ]);
        assert_eq!(verify(&mech(CKM_SHA256_RSA_PKCS), &key, data, &sig), CKR_OK);

        // Arbitrary data up to k - 11 bytes (TLS 1.1 style MD5||SHA1 is 36 bytes).
        let k = rsa_k();
        for len in [1usize, 36, k - 11] {
            let raw = random(len);
            let sig = sign(&mech(CKM_RSA_PKCS), &key, &[&raw]);
            let sigfile = write(dir.path(), "sig", &sig);
            let recovered = openssl_ok(&[
                "pkeyutl",
                "-verifyrecover",
                "-pubin",
                "-inkey",
                s(&pem),
                "-in",
                s(&sigfile),
            ]);
            assert_eq!(recovered, raw);
            assert_eq!(
                verify(&mech(CKM_RSA_PKCS), &rsa_public(), &raw, &sig),
                CKR_OK
            );
            assert_eq!(
                verify(&mech(CKM_RSA_PKCS), &rsa_public(), &raw[1..], &sig),
                CKR_SIGNATURE_INVALID
            );
        }
        let too_long = random(k - 10);
        let r = sign_init(&mech(CKM_RSA_PKCS), &key).and_then(|mut s| s.oneshot(&too_long));
        assert_eq!(rv(r), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn rsa_pss_verifies_with_openssl_for_salt_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let key = rsa_private();
        let pem = public_pem(dir.path(), rsa_material());
        let data = b"PSS message";
        let datafile = write(dir.path(), "data", data);
        let mut cases: Vec<(Hash, u64)> = ALL_HASHES.iter().map(|&h| (h, h.len() as u64)).collect();
        cases.extend([(Hash::Sha256, 0), (Hash::Sha256, 20), (Hash::Sha256, 222)]);
        for (h, salt) in cases {
            // Hashing variant, multi-part.
            let m = pss(h.rsa_pss(), h, salt);
            let sig = sign(&m, &key, &[&data[..3], &data[3..]]);
            let sigfile = write(dir.path(), "sig", &sig);
            openssl_ok(&[
                "dgst",
                &format!("-{}", h.name()),
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                &format!("rsa_pss_saltlen:{salt}"),
                "-sigopt",
                &format!("rsa_mgf1_md:{}", h.name()),
                "-verify",
                s(&pem),
                "-signature",
                s(&sigfile),
                s(&datafile),
            ]);
            assert_eq!(verify(&m, &rsa_public(), data, &sig), CKR_OK);

            // Raw-digest form over the same digest.
            let digest = h.hash(data);
            let raw = pss(CKM_RSA_PKCS_PSS, h, salt);
            let sig = sign(&raw, &key, &[&digest]);
            let sigfile = write(dir.path(), "sig", &sig);
            let dfile = write(dir.path(), "digest", &digest);
            openssl_ok(&[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                s(&pem),
                "-in",
                s(&dfile),
                "-sigfile",
                s(&sigfile),
                "-pkeyopt",
                &format!("digest:{}", h.name()),
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                &format!("rsa_pss_saltlen:{salt}"),
            ]);
            assert_eq!(verify(&m, &rsa_public(), data, &sig), CKR_OK);
            assert_eq!(verify(&raw, &rsa_public(), &digest, &sig), CKR_OK);
            let other_salt = if salt == 0 { 1 } else { salt - 1 };
            let other = pss(CKM_RSA_PKCS_PSS, h, other_salt);
            assert_eq!(
                verify(&other, &rsa_public(), &digest, &sig),
                CKR_SIGNATURE_INVALID
            );
        }
        // aws-lc-rs message API: PSS-SHA256 with salt = hash length.
        let sig = sign(
            &pss(CKM_SHA256_RSA_PKCS_PSS, Hash::Sha256, 32),
            &key,
            &[data],
        );
        let KeyMaterial::RsaPublic { n, e } = public_of(rsa_material()) else {
            unreachable!()
        };
        let pkcs1 = der::uint_seq(&[&n, &e]);
        sig::UnparsedPublicKey::new(&sig::RSA_PSS_2048_8192_SHA256, pkcs1.as_slice())
            .verify(data, &sig)
            .unwrap();
    }

    #[test]
    fn rsa_pss_parameter_errors() {
        let key = rsa_private();
        let bad_mgf = Mechanism {
            mech: CKM_SHA256_RSA_PKCS_PSS,
            param: MechParam::Pss {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA1,
                salt_len: 32,
            },
        };
        let cases = [
            (bad_mgf, CKR_MECHANISM_PARAM_INVALID),
            (
                pss(CKM_SHA256_RSA_PKCS_PSS, Hash::Sha384, 32),
                CKR_MECHANISM_PARAM_INVALID,
            ),
            (
                pss(CKM_SHA256_RSA_PKCS_PSS, Hash::Sha256, 223),
                CKR_MECHANISM_PARAM_INVALID,
            ),
            (
                pss(CKM_SHA256_RSA_PKCS_PSS, Hash::Sha256, u64::MAX),
                CKR_MECHANISM_PARAM_INVALID,
            ),
            (mech(CKM_SHA256_RSA_PKCS_PSS), CKR_MECHANISM_PARAM_INVALID),
            (mech(CKM_RSA_PKCS_PSS), CKR_MECHANISM_PARAM_INVALID),
            (
                Mechanism {
                    mech: CKM_RSA_PKCS_PSS,
                    param: MechParam::Pss {
                        hash: CKM_MD5,
                        mgf: CKG_MGF1_SHA1,
                        salt_len: 0,
                    },
                },
                CKR_MECHANISM_PARAM_INVALID,
            ),
        ];
        for (m, want) in cases {
            assert_eq!(rv(sign_init(&m, &key)), want, "{m:?}");
            assert_eq!(rv(verify_init(&m, &key)), want, "{m:?}");
        }
        // Raw PSS input must be exactly one digest.
        let m = pss(CKM_RSA_PKCS_PSS, Hash::Sha256, 32);
        let r = sign_init(&m, &key).and_then(|mut s| s.oneshot(&[0u8; 31]));
        assert_eq!(rv(r), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn rsa_verifies_openssl_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let keyfile = private_der(dir.path(), rsa_material());
        let public = rsa_public();
        let data = b"signed by openssl";
        let datafile = write(dir.path(), "data", data);
        let sigfile = dir.path().join("sig");
        for h in ALL_HASHES {
            openssl_ok(&[
                "dgst",
                &format!("-{}", h.name()),
                "-sign",
                s(&keyfile),
                "-keyform",
                "DER",
                "-out",
                s(&sigfile),
                s(&datafile),
            ]);
            let sig = std::fs::read(&sigfile).unwrap();
            assert_eq!(verify(&mech(h.rsa_pkcs()), &public, data, &sig), CKR_OK);
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert_eq!(
                verify(&mech(h.rsa_pkcs()), &public, data, &bad),
                CKR_SIGNATURE_INVALID
            );
            assert_eq!(
                verify(&mech(h.rsa_pkcs()), &public, data, &sig[1..]),
                CKR_SIGNATURE_LEN_RANGE
            );
            assert_eq!(
                verify(&mech(h.rsa_pkcs()), &public, b"other", &sig),
                CKR_SIGNATURE_INVALID
            );

            openssl_ok(&[
                "dgst",
                &format!("-{}", h.name()),
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
                "-sign",
                s(&keyfile),
                "-keyform",
                "DER",
                "-out",
                s(&sigfile),
                s(&datafile),
            ]);
            let sig = std::fs::read(&sigfile).unwrap();
            let m = pss(h.rsa_pss(), h, h.len() as u64);
            assert_eq!(verify(&m, &public, data, &sig), CKR_OK);
            assert_eq!(verify(&m, &public, b"other", &sig), CKR_SIGNATURE_INVALID);
        }
    }

    #[test]
    fn oaep_decrypts_openssl_ciphertext_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = rsa_private();
        let pem = public_pem(dir.path(), rsa_material());
        let keyfile = private_der(dir.path(), rsa_material());
        let msg = random(32);
        let msgfile = write(dir.path(), "msg", &msg);
        let ctfile = dir.path().join("ct");
        for h in [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            for label in [&b""[..], &[0x01, 0x02, 0xfe][..]] {
                let mut opts = vec![
                    "-pkeyopt".to_string(),
                    "rsa_padding_mode:oaep".into(),
                    "-pkeyopt".into(),
                    format!("rsa_oaep_md:{}", h.name()),
                    "-pkeyopt".into(),
                    format!("rsa_mgf1_md:{}", h.name()),
                ];
                if !label.is_empty() {
                    let hex: String = label.iter().map(|b| format!("{b:02x}")).collect();
                    opts.extend(["-pkeyopt".to_string(), format!("rsa_oaep_label:{hex}")]);
                }
                let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
                let mut args = vec![
                    "pkeyutl",
                    "-encrypt",
                    "-pubin",
                    "-inkey",
                    s(&pem),
                    "-in",
                    s(&msgfile),
                    "-out",
                    s(&ctfile),
                ];
                args.extend(&opts);
                openssl_ok(&args);
                let ct = std::fs::read(&ctfile).unwrap();
                let m = oaep(h, label);
                let pt = decrypt_init(&m, &key).unwrap().oneshot(&ct).unwrap();
                assert_eq!(pt, msg, "{h:?} label {label:?}");

                // Wrong label, tampered and truncated ciphertext.
                let wrong = oaep(h, b"x");
                assert_eq!(
                    rv(decrypt_init(&wrong, &key).unwrap().oneshot(&ct)),
                    CKR_ENCRYPTED_DATA_INVALID
                );
                let mut bad = ct.clone();
                bad[5] ^= 0x40;
                assert_eq!(
                    rv(decrypt_init(&m, &key).unwrap().oneshot(&bad)),
                    CKR_ENCRYPTED_DATA_INVALID
                );
                assert_eq!(
                    rv(decrypt_init(&m, &key).unwrap().oneshot(&ct[1..])),
                    CKR_ENCRYPTED_DATA_LEN_RANGE
                );

                // Our ciphertext (public key only), decrypted by openssl.
                let ct = encrypt_init(&m, &rsa_public())
                    .unwrap()
                    .oneshot(&msg)
                    .unwrap();
                let ctf = write(dir.path(), "ours", &ct);
                let mut args = vec![
                    "pkeyutl",
                    "-decrypt",
                    "-inkey",
                    s(&keyfile),
                    "-keyform",
                    "DER",
                    "-in",
                    s(&ctf),
                ];
                args.extend(&opts);
                assert_eq!(openssl_ok(&args), msg);
            }
        }
        // Size limit: k - 2*hLen - 2.
        let m = oaep(Hash::Sha256, b"");
        let k = rsa_k();
        assert!(encrypt_init(&m, &key)
            .unwrap()
            .oneshot(&random(k - 66))
            .is_ok());
        assert_eq!(
            rv(encrypt_init(&m, &key).unwrap().oneshot(&random(k - 65))),
            CKR_DATA_LEN_RANGE
        );
        // Parameter checks.
        let bad_mgf = Mechanism {
            mech: CKM_RSA_PKCS_OAEP,
            param: MechParam::Oaep {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA1,
                label: vec![],
            },
        };
        for m in [bad_mgf, oaep(Hash::Sha224, b""), mech(CKM_RSA_PKCS_OAEP)] {
            assert_eq!(rv(encrypt_init(&m, &key)), CKR_MECHANISM_PARAM_INVALID);
            assert_eq!(rv(decrypt_init(&m, &key)), CKR_MECHANISM_PARAM_INVALID);
        }
    }

    #[test]
    fn rsa_pkcs1_encryption_interoperates_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let key = rsa_private();
        let pem = public_pem(dir.path(), rsa_material());
        let keyfile = private_der(dir.path(), rsa_material());
        let msg = random(48);
        let msgfile = write(dir.path(), "msg", &msg);
        let ctfile = dir.path().join("ct");
        openssl_ok(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            s(&pem),
            "-in",
            s(&msgfile),
            "-out",
            s(&ctfile),
        ]);
        let ct = std::fs::read(&ctfile).unwrap();
        let mut d = decrypt_init(&mech(CKM_RSA_PKCS), &key).unwrap();
        assert!(d.update(&ct).unwrap().is_empty());
        assert_eq!(d.finish().unwrap(), msg);

        let ct = encrypt_init(&mech(CKM_RSA_PKCS), &rsa_public())
            .unwrap()
            .oneshot(&msg)
            .unwrap();
        assert_eq!(ct.len(), rsa_k());
        let ctf = write(dir.path(), "ours", &ct);
        assert_eq!(
            openssl_ok(&[
                "pkeyutl",
                "-decrypt",
                "-inkey",
                s(&keyfile),
                "-keyform",
                "DER",
                "-in",
                s(&ctf)
            ]),
            msg
        );

        let k = rsa_k();
        let r = encrypt_init(&mech(CKM_RSA_PKCS), &key)
            .unwrap()
            .oneshot(&random(k - 10));
        assert_eq!(rv(r), CKR_DATA_LEN_RANGE);
        let r = decrypt_init(&mech(CKM_RSA_PKCS), &key)
            .unwrap()
            .oneshot(&ct[..k - 1]);
        assert_eq!(rv(r), CKR_ENCRYPTED_DATA_LEN_RANGE);
        let mut zero = vec![0u8; k];
        zero[k - 1] = 2;
        let r = decrypt_init(&mech(CKM_RSA_PKCS), &key)
            .unwrap()
            .oneshot(&zero);
        assert_eq!(rv(r), CKR_ENCRYPTED_DATA_INVALID);
    }

    #[test]
    fn ecdsa_raw_digests_of_any_length_verify_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        for c in CURVES {
            let (m, key) = ec_key(c);
            let pem = public_pem(dir.path(), &m);
            let public = LocalKey::new(public_of(&m)).unwrap();
            for len in [20usize, 28, 32, 48, 64] {
                let digest = random(len);
                let sig = sign(&mech(CKM_ECDSA), &key, &[&digest]);
                assert_eq!(sig.len(), 2 * field_len(c));
                let dfile = write(dir.path(), "digest", &digest);
                let sfile = write(dir.path(), "sig", &sig_to_der(&sig));
                // openssl applies the same ECDSA truncation to a raw input.
                openssl_ok(&[
                    "pkeyutl",
                    "-verify",
                    "-pubin",
                    "-inkey",
                    s(&pem),
                    "-in",
                    s(&dfile),
                    "-sigfile",
                    s(&sfile),
                ]);
                assert_eq!(verify(&mech(CKM_ECDSA), &public, &digest, &sig), CKR_OK);
                let mut other = digest.clone();
                other[0] ^= 0x80;
                assert_eq!(
                    verify(&mech(CKM_ECDSA), &public, &other, &sig),
                    CKR_SIGNATURE_INVALID
                );
                assert_eq!(
                    verify(&mech(CKM_ECDSA), &public, &digest, &sig[1..]),
                    CKR_SIGNATURE_LEN_RANGE
                );
                // r = s = 0, and r = s = 0xff..ff (>= the order): invalid, not a crash.
                for b in [0x00, 0xff] {
                    let junk = vec![b; sig.len()];
                    let got = verify(&mech(CKM_ECDSA), &public, &digest, &junk);
                    assert_eq!(got, CKR_SIGNATURE_INVALID);
                }

                // And a signature made by openssl over the same raw input.
                let kfile = private_der(dir.path(), &m);
                let theirs = openssl_ok(&[
                    "pkeyutl",
                    "-sign",
                    "-inkey",
                    s(&kfile),
                    "-keyform",
                    "DER",
                    "-in",
                    s(&dfile),
                ]);
                let theirs = sig_from_der(&theirs, field_len(c));
                assert_eq!(verify(&mech(CKM_ECDSA), &public, &digest, &theirs), CKR_OK);
            }
            let r = sign_init(&mech(CKM_ECDSA), &key).and_then(|mut s| s.oneshot(&[]));
            assert_eq!(rv(r), CKR_DATA_LEN_RANGE);
        }
        // P-521 inputs longer than 64 bytes would need sub-byte truncation: refused.
        let (_, key) = ec_key(Curve::P521);
        let r = sign_init(&mech(CKM_ECDSA), &key).and_then(|mut s| s.oneshot(&[1u8; 66]));
        assert_eq!(rv(r), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn ecdsa_hashed_signatures_verify_with_openssl_and_aws_lc_rs() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"ECDSA over a message, hashed incrementally";
        let datafile = write(dir.path(), "data", data);
        for c in CURVES {
            let (m, key) = ec_key(c);
            let pem = public_pem(dir.path(), &m);
            let kfile = private_der(dir.path(), &m);
            let public = LocalKey::new(public_of(&m)).unwrap();
            for h in ALL_HASHES {
                let sig = sign(&mech(h.ecdsa()), &key, &[&data[..7], &data[7..]]);
                let sfile = write(dir.path(), "sig", &sig_to_der(&sig));
                openssl_ok(&[
                    "dgst",
                    &format!("-{}", h.name()),
                    "-verify",
                    s(&pem),
                    "-signature",
                    s(&sfile),
                    s(&datafile),
                ]);
                assert_eq!(verify(&mech(h.ecdsa()), &public, data, &sig), CKR_OK);
                assert_eq!(
                    verify(&mech(h.ecdsa()), &public, b"other", &sig),
                    CKR_SIGNATURE_INVALID
                );

                let theirs = dir.path().join("theirs");
                openssl_ok(&[
                    "dgst",
                    &format!("-{}", h.name()),
                    "-sign",
                    s(&kfile),
                    "-keyform",
                    "DER",
                    "-out",
                    s(&theirs),
                    s(&datafile),
                ]);
                let theirs = sig_from_der(&std::fs::read(&theirs).unwrap(), field_len(c));
                assert_eq!(verify(&mech(h.ecdsa()), &public, data, &theirs), CKR_OK);
            }
            // aws-lc-rs message API with the curve's natural hash.
            let (h, alg) = match c {
                Curve::P256 => (Hash::Sha256, &sig::ECDSA_P256_SHA256_FIXED),
                Curve::P384 => (Hash::Sha384, &sig::ECDSA_P384_SHA384_FIXED),
                Curve::P521 => (Hash::Sha512, &sig::ECDSA_P521_SHA512_FIXED),
                Curve::K256 => (Hash::Sha256, &sig::ECDSA_P256K1_SHA256_FIXED),
            };
            let sig = sign(&mech(h.ecdsa()), &key, &[data]);
            let KeyMaterial::EcPrivate { point, .. } = &m else {
                unreachable!()
            };
            sig::UnparsedPublicKey::new(alg, point)
                .verify(data, &sig)
                .unwrap();
        }
    }

    #[test]
    fn rsa_components_round_trip_and_openssl_keys() {
        let dir = tempfile::tempdir().unwrap();
        let KeyMaterial::RsaPrivate { der } = rsa_material() else {
            unreachable!()
        };
        let keyfile = write(dir.path(), "key.der", der);
        let out = openssl_ok(&[
            "rsa",
            "-inform",
            "DER",
            "-in",
            s(&keyfile),
            "-check",
            "-noout",
        ]);
        assert!(String::from_utf8_lossy(&out).contains("RSA key ok"));
        let c = rsa_components(der).unwrap();
        assert_eq!(c.n.len(), 256);
        assert_eq!(c.e, [1, 0, 1]);
        assert_eq!(*rsa_private_from_components(&c).unwrap(), **der);

        // A key made by openssl: import, re-encode byte-identically, sign, openssl verifies.
        let pem = dir.path().join("o.pem");
        let odir = dir.path().join("o.der");
        openssl_ok(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            s(&pem),
        ]);
        openssl_ok(&[
            "rsa",
            "-in",
            s(&pem),
            "-traditional",
            "-outform",
            "DER",
            "-out",
            s(&odir),
        ]);
        let theirs = std::fs::read(&odir).unwrap();
        let c = rsa_components(&theirs).unwrap();
        assert_eq!(*rsa_private_from_components(&c).unwrap(), theirs);
        let key = LocalKey::new(KeyMaterial::RsaPrivate {
            der: Zeroizing::new(theirs),
        })
        .unwrap();
        let sig = sign(&mech(CKM_SHA384_RSA_PKCS), &key, &[b"x"]);
        let sigfile = write(dir.path(), "sig", &sig);
        let datafile = write(dir.path(), "data", b"x");
        openssl_ok(&[
            "dgst",
            "-sha384",
            "-prverify",
            s(&pem),
            "-signature",
            s(&sigfile),
            s(&datafile),
        ]);

        // Inconsistent components.
        let mut bad = rsa_components(der).unwrap();
        bad.q[10] ^= 1;
        assert_eq!(
            rv(rsa_private_from_components(&bad)),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        let mut bad = rsa_components(der).unwrap();
        bad.d[0] ^= 1;
        assert_eq!(
            rv(rsa_private_from_components(&bad)),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        // Malformed DER.
        for junk in [
            &[][..],
            &[0x30, 0x03, 0x02, 0x01, 0x00],
            &der[..der.len() - 1],
            &[der.as_slice(), &[0]].concat(),
        ] {
            assert_eq!(rv(rsa_components(junk)), CKR_ATTRIBUTE_VALUE_INVALID);
            assert_eq!(
                rv(LocalKey::new(KeyMaterial::RsaPrivate {
                    der: Zeroizing::new(junk.to_vec())
                })),
                CKR_ATTRIBUTE_VALUE_INVALID
            );
        }
    }

    #[test]
    fn public_key_info_is_parsed_by_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let KeyMaterial::RsaPublic { n, .. } = public_of(rsa_material()) else {
            unreachable!()
        };
        for m in [rsa_material().clone(), public_of(rsa_material())] {
            let der = write(dir.path(), "spki", &public_key_info(&m).unwrap());
            let text = openssl_ok(&[
                "pkey",
                "-pubin",
                "-inform",
                "DER",
                "-in",
                s(&der),
                "-text_pub",
                "-noout",
            ]);
            let text = String::from_utf8_lossy(&text).replace([' ', '\n', ':'], "");
            assert!(text.contains("Public-Key(2048bit)"), "{text}");
            assert!(text.contains("Exponent65537(0x10001)"), "{text}");
            let hex: String = n.iter().map(|b| format!("{b:02x}")).collect();
            assert!(text.contains(&hex));
        }
        for (c, name) in [
            (Curve::P256, "P-256"),
            (Curve::P384, "P-384"),
            (Curve::P521, "P-521"),
        ] {
            let m = generate_ec(c).unwrap();
            let spki = public_key_info(&m).unwrap();
            assert_eq!(spki, public_key_info(&public_of(&m)).unwrap());
            // Same bytes as aws-lc-rs's own encoder.
            let KeyMaterial::EcPrivate { d, point, .. } = &m else {
                unreachable!()
            };
            let kp =
                EcdsaKeyPair::from_private_key_and_public_key(signing_alg(c), d, point).unwrap();
            use aws_lc_rs::encoding::AsDer;
            assert_eq!(kp.public_key().as_der().unwrap().as_ref(), spki.as_slice());
            let der = write(dir.path(), "spki", &spki);
            let text = openssl_ok(&[
                "pkey",
                "-pubin",
                "-inform",
                "DER",
                "-in",
                s(&der),
                "-text_pub",
                "-noout",
            ]);
            assert!(String::from_utf8_lossy(&text).contains(&format!("NIST CURVE: {name}")));
        }
        assert_eq!(
            rv(public_key_info(&KeyMaterial::Secret {
                key_type: CKK_AES,
                value: Zeroizing::new(vec![0; 16])
            })),
            CKR_KEY_TYPE_INCONSISTENT
        );
    }

    #[test]
    fn curve_params_parse_and_reject() {
        for c in CURVES {
            assert_eq!(curve_from_params(curve_params(c)).unwrap(), c);
        }
        let printable = |s: &str| [&[0x13, s.len() as u8][..], s.as_bytes()].concat();
        assert_eq!(
            curve_from_params(&printable("prime256v1")).unwrap(),
            Curve::P256
        );
        assert_eq!(
            curve_from_params(&printable("secp384r1")).unwrap(),
            Curve::P384
        );
        assert_eq!(
            curve_from_params(&printable("secp521r1")).unwrap(),
            Curve::P521
        );
        assert_eq!(
            curve_from_params(&printable("secp256k1")).unwrap(),
            Curve::K256
        );
        let not_supported: [&[u8]; 4] = [
            &[
                0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07,
            ], // brainpoolP256r1
            &printable("brainpoolP256r1"),
            &[0x30, 0x03, 0x02, 0x01, 0x01], // explicit parameters
            &[0x05, 0x00],                   // implicitlyCA
        ];
        for p in not_supported {
            assert_eq!(
                rv(curve_from_params(p)),
                CKR_CURVE_NOT_SUPPORTED,
                "{p:02x?}"
            );
        }
        let p256 = curve_params(Curve::P256);
        let malformed: [&[u8]; 8] = [
            &[],
            &[0x06],
            &p256[..5],                // truncated
            &[p256, &[0x00]].concat(), // trailing byte
            &[
                0x06, 0x81, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ], // non-minimal length
            &[0x1f, 0x81, 0x00],       // multi-byte tag
            &[0x06, 0x00],             // empty OID
            &[0x06, 0x02, 0x2a, 0x86], // OID cut inside a subidentifier
        ];
        for p in malformed {
            assert_eq!(
                rv(curve_from_params(p)),
                CKR_DOMAIN_PARAMS_INVALID,
                "{p:02x?}"
            );
        }
    }

    #[test]
    fn ec_public_point_and_key_validation() {
        for c in CURVES {
            let m = generate_ec(c).unwrap();
            let KeyMaterial::EcPrivate { d, point, .. } = &m else {
                unreachable!()
            };
            assert_eq!(d.len(), field_len(c));
            assert_eq!(ec_public_point(c, d).unwrap(), *point);
            // Leading zeros may be absent or extra.
            let mut long = vec![0u8; 3];
            long.extend_from_slice(d);
            assert_eq!(ec_public_point(c, &long).unwrap(), *point);
            assert_eq!(
                rv(ec_public_point(c, &[0u8; 8])),
                CKR_ATTRIBUTE_VALUE_INVALID
            );
            assert_eq!(
                rv(ec_public_point(c, &vec![0xffu8; field_len(c)])),
                CKR_ATTRIBUTE_VALUE_INVALID
            );
            assert_eq!(
                rv(ec_public_point(c, &vec![1u8; field_len(c) + 1])),
                CKR_ATTRIBUTE_VALUE_INVALID
            );

            // Point off the curve, wrong length, compressed, or not matching d.
            let mut off = point.clone();
            let last = off.len() - 1;
            off[last] ^= 1;
            let other = match generate_ec(c).unwrap() {
                KeyMaterial::EcPrivate { point, .. } => point,
                _ => unreachable!(),
            };
            for p in [
                off,
                point[..point.len() - 1].to_vec(),
                vec![0x02; 1 + field_len(c)],
            ] {
                let r = LocalKey::new(KeyMaterial::EcPublic { curve: c, point: p });
                assert_eq!(rv(r), CKR_ATTRIBUTE_VALUE_INVALID);
            }
            let r = LocalKey::new(KeyMaterial::EcPrivate {
                curve: c,
                d: d.clone(),
                point: other,
            });
            assert_eq!(rv(r), CKR_ATTRIBUTE_VALUE_INVALID);
        }
        // A P-256 point declared as P-384.
        let KeyMaterial::EcPrivate { point, .. } = generate_ec(Curve::P256).unwrap() else {
            unreachable!()
        };
        assert_eq!(
            rv(LocalKey::new(KeyMaterial::EcPublic {
                curve: Curve::P384,
                point
            })),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
    }

    #[test]
    fn rsa_key_validation_and_generation_errors() {
        // 1024-bit public key: valid, but outside the supported range.
        let mut n = vec![0xc3u8; 128];
        n[127] |= 1;
        assert_eq!(
            rv(LocalKey::new(KeyMaterial::RsaPublic {
                n,
                e: vec![1, 0, 1]
            })),
            CKR_KEY_SIZE_RANGE
        );
        let KeyMaterial::RsaPublic { n, .. } = public_of(rsa_material()) else {
            unreachable!()
        };
        assert_eq!(
            rv(LocalKey::new(KeyMaterial::RsaPublic {
                n: n.clone(),
                e: vec![]
            })),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        assert_eq!(
            rv(LocalKey::new(KeyMaterial::RsaPublic {
                n: vec![],
                e: vec![1, 0, 1]
            })),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        // Leading zeros on n and e are tolerated.
        let padded = [&[0u8, 0][..], &n].concat();
        assert!(LocalKey::new(KeyMaterial::RsaPublic {
            n: padded,
            e: vec![0, 1, 0, 1]
        })
        .is_ok());

        assert_eq!(rv(generate_rsa(2048, &[3])), CKR_TEMPLATE_INCONSISTENT);
        assert_eq!(
            rv(generate_rsa(2048, &[1, 0, 0, 1])),
            CKR_TEMPLATE_INCONSISTENT
        );
        for bits in [0, 1024, 2047, 2056, 4097, 8192, u64::MAX] {
            assert_eq!(
                rv(generate_rsa(bits, &[1, 0, 1])),
                CKR_KEY_SIZE_RANGE,
                "{bits}"
            );
        }
        let KeyMaterial::RsaPrivate { der } = rsa_material() else {
            unreachable!()
        };
        assert_eq!(rsa_components(der).unwrap().n.len() * 8, 2048);
    }

    #[test]
    fn init_checks_key_type_and_function() {
        let rsa = rsa_private();
        let rsa_pub = rsa_public();
        let (_, ec) = ec_key(Curve::P256);
        let ec_pub = LocalKey::new(public_of(&ec_key(Curve::P256).0)).unwrap();
        let secret = LocalKey::new(KeyMaterial::Secret {
            key_type: CKK_AES,
            value: Zeroizing::new(vec![0; 16]),
        })
        .unwrap();

        assert_eq!(
            rv(sign_init(&mech(CKM_SHA256_RSA_PKCS), &rsa_pub)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(sign_init(&mech(CKM_ECDSA), &ec_pub)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(sign_init(&mech(CKM_ECDSA), &rsa)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(verify_init(&mech(CKM_SHA256_RSA_PKCS), &ec)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(sign_init(&mech(CKM_RSA_PKCS), &secret)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(encrypt_init(&mech(CKM_RSA_PKCS), &ec)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(decrypt_init(&mech(CKM_RSA_PKCS), &rsa_pub)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(sign_init(&mech(CKM_AES_GCM), &rsa)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        // Ours, but not for this function.
        assert_eq!(
            rv(sign_init(&oaep(Hash::Sha256, b""), &rsa)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(encrypt_init(&mech(CKM_SHA256_RSA_PKCS), &rsa)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(encrypt_init(&mech(CKM_ECDSA), &ec)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(sign_init(&mech(CKM_RSA_PKCS_KEY_PAIR_GEN), &rsa)),
            CKR_MECHANISM_INVALID
        );
        // Parameter where none belongs.
        let with_param = Mechanism {
            mech: CKM_RSA_PKCS,
            param: MechParam::Bytes(vec![1]),
        };
        assert_eq!(
            rv(sign_init(&with_param, &rsa)),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            rv(encrypt_init(&with_param, &rsa)),
            CKR_MECHANISM_PARAM_INVALID
        );
        let empty = Mechanism {
            mech: CKM_ECDSA,
            param: MechParam::Bytes(vec![]),
        };
        assert!(sign_init(&empty, &ec).is_ok());
        // Through the dispatcher too.
        assert_eq!(
            rv(mechanism::sign_init(&mech(CKM_SHA256_RSA_PKCS), &rsa_pub)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert!(mechanism::sign_init(&mech(CKM_ECDSA_SHA256), &ec).is_ok());
        // sig_len: modulus bytes / 2 x field.
        assert_eq!(sign_init(&mech(CKM_RSA_PKCS), &rsa).unwrap().sig_len(), 256);
        for c in CURVES {
            let (_, k) = ec_key(c);
            assert_eq!(
                sign_init(&mech(CKM_ECDSA_SHA1), &k).unwrap().sig_len(),
                2 * field_len(c)
            );
        }
        // An operation does not outlive its finish.
        let mut s = sign_init(&mech(CKM_ECDSA_SHA256), &ec).unwrap();
        s.finish().unwrap();
        assert_eq!(rv(s.finish()), CKR_OPERATION_NOT_INITIALIZED);
    }

    #[test]
    fn prepared_keys_are_shared_across_threads() {
        let rsa = rsa_private();
        let (_, ec) = ec_key(Curve::P384);
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (rsa, ec) = (rsa.clone(), ec.clone());
                std::thread::spawn(move || {
                    let data = [i as u8; 100];
                    for _ in 0..5 {
                        let sig = sign(&mech(CKM_SHA256_RSA_PKCS), &rsa, &[&data]);
                        assert_eq!(
                            verify(&mech(CKM_SHA256_RSA_PKCS), &rsa, &data, &sig),
                            CKR_OK
                        );
                        let sig = sign(&mech(CKM_ECDSA_SHA384), &ec, &[&data]);
                        assert_eq!(verify(&mech(CKM_ECDSA_SHA384), &ec, &data, &sig), CKR_OK);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
