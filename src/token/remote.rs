//! KMS keys as objects: one listed key becomes a public-key and a private-key object
//! sharing CKA_ID, built through the ordinary `Object::create` path so they carry the
//! full standard attribute set.
//!
//! Choices: CKA_LABEL is the alias without the token's prefix; CKA_ID the `p11kms:id`
//! tag, else the key id's UUID bytes; CKA_LOCAL (and ALWAYS_SENSITIVE /
//! NEVER_EXTRACTABLE) is true for keys generated inside KMS (Origin AWS_KMS), false for
//! imported key material; the objects are not copyable and only CKA_ID and CKA_LABEL
//! change (the key's `p11kms:id` tag and its alias, Token::set_remote_attributes),
//! the private one is destroyable (schedules the key's deletion), the public one not.
//! Object uids (CKA_UNIQUE_ID) derive from the ARN: the same in every process.

use crate::backend::aws::{AwsBackend, KeyInfo};
use crate::error::{Error, Result};
use crate::mechanism::{self, KeyMaterial};
use crate::object::attrs::{bool_, ulong, CKA_P11KMS_KEY_ARN};
use crate::object::{Attr, Object, Origin};
use cryptoki_sys::*;
use std::sync::Arc;

pub(super) fn unhex(s: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        return Err(Error::device("aws.listing: odd hex"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| Error::device("aws.listing: bad hex"))
        })
        .collect()
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

fn uid_of(what: &str, arn: &str) -> [u8; 16] {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("p11kms-aws-{what}\0{arn}").as_bytes(),
    );
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

/// CKA_LABEL (the alias without the token's prefix) and CKA_ID of a listed key. A key
/// named by its own key id (generated with no label and no ID) has an empty label, as
/// it would on a local token.
pub(super) fn label_and_id(b: &AwsBackend, k: &KeyInfo) -> (Vec<u8>, Vec<u8>) {
    let name = k.alias.strip_prefix(&b.alias_prefix).unwrap_or(&k.alias);
    let label = if name == k.key_id { "" } else { name };
    (label.as_bytes().to_vec(), unhex(&k.id).unwrap_or_default())
}

/// The (public, private) objects of one listed KMS key.
pub(super) fn key_objects(b: &Arc<AwsBackend>, k: &KeyInfo) -> Result<(Object, Object)> {
    let public = mechanism::public_from_spki(&unhex(&k.spki)?)?;
    let (kt, gen) = match &public {
        KeyMaterial::RsaPublic { .. } => (CKK_RSA, CKM_RSA_PKCS_KEY_PAIR_GEN),
        KeyMaterial::EcPublic { .. } => (CKK_EC, CKM_EC_KEY_PAIR_GEN),
        _ => return Err(Error::device("KMS public key of an unexpected type")),
    };
    let (label, _) = label_and_id(b, k);
    let id = unhex(&k.id)?;
    let sign = k.usage == "SIGN_VERIFY";
    let mechs: Vec<u8> = allowed_mechanisms(&k.algorithms)
        .into_iter()
        .flat_map(ulong)
        .collect();
    let common: Vec<Attr> = vec![
        (CKA_TOKEN, bool_(true)),
        (CKA_LABEL, label),
        (CKA_ID, id),
        (CKA_ALLOWED_MECHANISMS, mechs),
        // CKA_ID and CKA_LABEL can change (the key's tag and alias); nothing else.
        (CKA_MODIFIABLE, bool_(true)),
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
    po.set_uid(uid_of("pub", &k.arn));
    so.set_uid(uid_of("priv", &k.arn));
    po.put_attr(CKA_P11KMS_KEY_ARN, k.arn.as_bytes().to_vec());
    so.put_attr(CKA_P11KMS_KEY_ARN, k.arn.as_bytes().to_vec());
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
