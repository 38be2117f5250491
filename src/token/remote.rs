//! KMS keys as objects: one listed key becomes a public-key and a private-key object
//! sharing CKA_ID, built through the ordinary `Object::create` path so they carry the
//! full standard attribute set.
//!
//! Choices: CKA_LABEL and CKA_ID come from the backend's listing (AWS: the alias
//! without the token's prefix and the `p11kms:id` tag or key UUID; Cloud KMS: the
//! CryptoKey id and the scheme in backend/gcp.rs); CKA_LOCAL (and ALWAYS_SENSITIVE /
//! NEVER_EXTRACTABLE) is true for keys generated inside KMS, false for imported key
//! material; the objects are not copyable, modifiable only where the backend can rename
//! a key (AWS: CKA_ID and CKA_LABEL, Token::set_remote_attributes), the private
//! one is destroyable (schedules the key's deletion), the public one not. Object uids
//! (CKA_UNIQUE_ID) derive from the key's resource name: the same in every process.

use crate::backend::kms::{KeyInfo, Kms};
use crate::error::{Error, Result};
use crate::mechanism::{self, KeyMaterial};
use crate::object::attrs::{bool_, ulong};
use crate::object::{Attr, Object, Origin};
use cryptoki_sys::*;

pub(super) fn unhex(s: &str) -> Result<Vec<u8>> {
    crate::store::unhex(s).ok_or_else(|| Error::device("KMS listing: bad hex"))
}

/// PKCS#11 mechanisms a KMS key's algorithms allow (hashing happens locally, so each
/// KMS digest algorithm allows its raw and its hashing mechanism; ECDSA adapts any
/// digest to the curve's algorithm, so every ECDSA mechanism works).
pub(super) fn allowed_mechanisms(algorithms: &[String]) -> Vec<CK_MECHANISM_TYPE> {
    let mut v: Vec<CK_MECHANISM_TYPE> = Vec::new();
    for a in algorithms {
        let add: &[CK_MECHANISM_TYPE] = match a.as_str() {
            "ECDSA_SHA_256" | "ECDSA_SHA_384" | "ECDSA_SHA_512" => &[
                CKM_ECDSA,
                CKM_ECDSA_SHA1,
                CKM_ECDSA_SHA224,
                CKM_ECDSA_SHA256,
                CKM_ECDSA_SHA384,
                CKM_ECDSA_SHA512,
            ],
            "RSASSA_PKCS1_V1_5_SHA_256" => &[CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS],
            "RSASSA_PKCS1_V1_5_SHA_384" => &[CKM_RSA_PKCS, CKM_SHA384_RSA_PKCS],
            "RSASSA_PKCS1_V1_5_SHA_512" => &[CKM_RSA_PKCS, CKM_SHA512_RSA_PKCS],
            "RSASSA_PSS_SHA_256" => &[CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS],
            "RSASSA_PSS_SHA_384" => &[CKM_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS],
            "RSASSA_PSS_SHA_512" => &[CKM_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS],
            "RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" => &[CKM_RSA_PKCS_OAEP],
            // Cloud KMS: one algorithm per key version.
            "EC_SIGN_P256_SHA256" | "EC_SIGN_P384_SHA384" | "EC_SIGN_SECP256K1_SHA256" => &[
                CKM_ECDSA,
                CKM_ECDSA_SHA1,
                CKM_ECDSA_SHA224,
                CKM_ECDSA_SHA256,
                CKM_ECDSA_SHA384,
                CKM_ECDSA_SHA512,
            ],
            "RSA_SIGN_PKCS1_2048_SHA256"
            | "RSA_SIGN_PKCS1_3072_SHA256"
            | "RSA_SIGN_PKCS1_4096_SHA256" => &[CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS],
            "RSA_SIGN_PKCS1_4096_SHA512" => &[CKM_RSA_PKCS, CKM_SHA512_RSA_PKCS],
            "RSA_SIGN_PSS_2048_SHA256"
            | "RSA_SIGN_PSS_3072_SHA256"
            | "RSA_SIGN_PSS_4096_SHA256" => &[CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS],
            "RSA_SIGN_PSS_4096_SHA512" => &[CKM_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS],
            "RSA_DECRYPT_OAEP_2048_SHA256"
            | "RSA_DECRYPT_OAEP_3072_SHA256"
            | "RSA_DECRYPT_OAEP_4096_SHA256"
            | "RSA_DECRYPT_OAEP_2048_SHA1"
            | "RSA_DECRYPT_OAEP_3072_SHA1"
            | "RSA_DECRYPT_OAEP_4096_SHA1" => &[CKM_RSA_PKCS_OAEP],
            _ => &[],
        };
        for m in add {
            if !v.contains(m) {
                v.push(*m);
            }
        }
    }
    v
}

fn uid_of(kind: &str, what: &str, name: &str) -> [u8; 16] {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("p11kms-{kind}-{what}\0{name}").as_bytes(),
    );
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

/// CKA_LABEL and CKA_ID of a listed key, as its objects carry them.
pub(super) fn label_and_id(k: &KeyInfo) -> (Vec<u8>, Vec<u8>) {
    (
        k.label.as_bytes().to_vec(),
        unhex(&k.id).unwrap_or_default(),
    )
}

/// The (public, private) objects of one listed KMS key.
pub(super) fn key_objects(b: &Kms, k: &KeyInfo) -> Result<(Object, Object)> {
    let public = mechanism::public_from_spki(&unhex(&k.spki)?)?;
    let (kt, gen) = match &public {
        KeyMaterial::RsaPublic { .. } => (CKK_RSA, CKM_RSA_PKCS_KEY_PAIR_GEN),
        KeyMaterial::EcPublic { .. } => (CKK_EC, CKM_EC_KEY_PAIR_GEN),
        _ => return Err(Error::device("KMS public key of an unexpected type")),
    };
    let label = k.label.as_bytes().to_vec();
    let id = unhex(&k.id)?;
    let sign = k.is_sign();
    let mechs: Vec<u8> = allowed_mechanisms(&k.algorithms)
        .into_iter()
        .flat_map(ulong)
        .collect();
    let common: Vec<Attr> = vec![
        (CKA_TOKEN, bool_(true)),
        (CKA_LABEL, label),
        (CKA_ID, id),
        (CKA_ALLOWED_MECHANISMS, mechs),
        // AWS: CKA_ID and CKA_LABEL can change (the key's tag and alias), nothing else;
        // Cloud KMS: CKA_ID (a CryptoKey label), not CKA_LABEL (the CryptoKey's id).
        (CKA_MODIFIABLE, bool_(b.can_rename())),
        (CKA_COPYABLE, bool_(false)),
    ];
    let mut pub_t = common.clone();
    pub_t.extend([
        (CKA_PRIVATE, bool_(false)),
        (CKA_VERIFY, bool_(sign)),
        (CKA_ENCRYPT, bool_(!sign)),
        (CKA_WRAP, bool_(!sign)),
        (CKA_DESTROYABLE, bool_(false)),
    ]);
    let mut priv_t = common;
    priv_t.extend([
        (CKA_PRIVATE, bool_(true)),
        (CKA_SENSITIVE, bool_(true)),
        (CKA_EXTRACTABLE, bool_(false)),
        (CKA_SIGN, bool_(sign)),
        (CKA_DECRYPT, bool_(!sign)),
        (CKA_UNWRAP, bool_(!sign)),
        (CKA_DESTROYABLE, bool_(true)),
    ]);
    let origin = if k.generated {
        Origin::Generated(gen)
    } else {
        Origin::Imported
    };
    let remote = KeyMaterial::Remote {
        public: Box::new(public.clone()),
        key: b.remote_key(k),
    };
    let mut po = Object::create(&pub_t, Some(CKO_PUBLIC_KEY), Some(kt), Some(public), origin)?;
    let mut so = Object::create(
        &priv_t,
        Some(CKO_PRIVATE_KEY),
        Some(kt),
        Some(remote),
        origin,
    )?;
    po.set_uid(uid_of(b.kind(), "pub", &k.name));
    so.set_uid(uid_of(b.kind(), "priv", &k.name));
    for (ty, v) in b.vendor_attrs(k) {
        po.put_attr(ty, v.clone());
        so.put_attr(ty, v);
    }
    Ok((po, so))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_from_algorithms() {
        let m = allowed_mechanisms(&[
            "RSASSA_PSS_SHA_256".into(),
            "RSASSA_PKCS1_V1_5_SHA_256".into(),
        ]);
        assert_eq!(
            m,
            vec![
                CKM_RSA_PKCS_PSS,
                CKM_SHA256_RSA_PKCS_PSS,
                CKM_RSA_PKCS,
                CKM_SHA256_RSA_PKCS
            ]
        );
        assert!(allowed_mechanisms(&["SM2DSA".into()]).is_empty());
        assert_eq!(unhex("0aff").unwrap(), vec![0x0a, 0xff]);
    }
}
