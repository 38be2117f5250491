//! What the cloud KMS backends (aws, gcp) share: the listing of remote keys cached in
//! the token store, the context bound into every wrapped data key, the key pair a
//! C_GenerateKeyPair template asks for, and [`KmsBackend`], the operations the token
//! layer needs from a KMS. [`Kms`] is the enum over the concrete backends.

use crate::error::{Error, Result};
use crate::mechanism::{Curve, RemoteKey};
use crate::object::Attr;
use crate::store::{hex, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// One remote asymmetric key as the token shows it (cached in the store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// What the backend addresses: the AWS key id, the Cloud KMS version's resource name.
    pub key_id: String,
    /// The full resource name shown in the vendor attribute (ARN, version name).
    #[serde(alias = "arn")]
    pub name: String,
    /// CKA_LABEL (AWS: the alias without the token's prefix; Cloud KMS: the CryptoKey id).
    pub label: String,
    /// The full alias name (AWS only).
    #[serde(default)]
    pub alias: String,
    /// The key's spec as the KMS names it ("RSA_2048", "EC_SIGN_P256_SHA256").
    pub spec: String,
    /// "SIGN_VERIFY" or "ENCRYPT_DECRYPT".
    pub usage: String,
    /// The signing or encryption algorithms, as the KMS names them.
    pub algorithms: Vec<String>,
    /// DER SubjectPublicKeyInfo, hex.
    pub spki: String,
    /// CKA_ID, hex.
    pub id: String,
    /// Generated inside the KMS (not imported): CKA_LOCAL true.
    pub generated: bool,
    /// Cloud KMS protection level ("HSM", "SOFTWARE"); empty for AWS.
    #[serde(default)]
    pub protection_level: String,
}

impl KeyInfo {
    /// A signing key (else a decryption key).
    pub fn is_sign(&self) -> bool {
        self.usage == "SIGN_VERIFY"
    }
}

/// The cached listing with the time it was fetched.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Listing {
    /// Seconds since the epoch.
    pub fetched_at: u64,
    #[serde(default)]
    pub keys: Vec<KeyInfo>,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A backend's listing in the store's meta table (TOML text of [`Listing`]).
pub struct ListingCache {
    store: Arc<Store>,
    meta: &'static str,
    pub refresh_secs: u64,
}

impl ListingCache {
    pub fn new(store: Arc<Store>, meta: &'static str, refresh_secs: u64) -> ListingCache {
        ListingCache {
            store,
            meta,
            refresh_secs,
        }
    }

    /// The cached listing (no KMS call); `None` if never fetched.
    pub fn get(&self) -> Result<Option<Listing>> {
        let Some(v) = self.store.get_meta(self.meta)? else {
            return Ok(None);
        };
        let text = String::from_utf8(v)
            .map_err(|_| Error::device(format!("token store: {} is not text", self.meta)))?;
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| Error::device(format!("token store: {}: {e}", self.meta)))
    }

    /// True when `l` is younger than `refresh_secs`.
    pub fn is_current(&self, l: &Listing) -> bool {
        now_secs().saturating_sub(l.fetched_at) < self.refresh_secs
    }

    pub fn save(&self, l: &Listing) -> Result<()> {
        let text =
            toml::to_string(l).map_err(|e| Error::general(format!("{} encode: {e}", self.meta)))?;
        self.store
            .transaction(|tx| tx.set_meta(self.meta, text.as_bytes()))
    }

    /// Put one key into the cached listing (after creation), or take one out.
    pub fn update(&self, add: Option<KeyInfo>, remove: Option<&str>) -> Result<Listing> {
        let mut l = self.get()?.unwrap_or_default();
        if let Some(r) = remove {
            l.keys.retain(|k| k.key_id != r);
        }
        if let Some(k) = add {
            l.keys.retain(|x| x.key_id != k.key_id);
            l.keys.push(k);
        }
        self.save(&l)?;
        Ok(l)
    }
}

/// What a wrapped data key is bound to: its token, its object and the digest of the
/// object's attributes (AWS: the EncryptionContext; Cloud KMS: the additional
/// authenticated data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapContext {
    /// Hex of the token uid.
    pub token: String,
    pub object: [u8; 16],
    pub attrs: [u8; 32],
}

impl WrapContext {
    /// The (name, value) pairs, in a fixed order.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            ("p11kms:token", self.token.clone()),
            ("p11kms:object", hex(&self.object)),
            ("p11kms:attrs", hex(&self.attrs)),
        ]
    }
}

/// A failure of a data-key call on the token's KEK (wrap, unwrap, rewrap): the key
/// handle the application passed is fine, the token's configuration (KEK missing,
/// disabled, pending deletion or destroyed) is not, so "key gone" and "key disabled"
/// codes become `CKR_DEVICE_ERROR`.
pub fn kek_error(e: Error) -> Error {
    match e.rv() {
        cryptoki_sys::CKR_KEY_HANDLE_INVALID | cryptoki_sys::CKR_KEY_FUNCTION_NOT_PERMITTED => {
            Error::device(format!("the token's KEK: {e}"))
        }
        _ => e,
    }
}

/// The asymmetric key a C_GenerateKeyPair template asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairKind {
    /// RSA with e = 65537; `decrypt`: an OAEP decryption key (else signing), `pss`: a
    /// PSS signing key (the template's CKA_ALLOWED_MECHANISMS name PSS only).
    Rsa {
        bits: u32,
        decrypt: bool,
        pss: bool,
    },
    Ec(Curve),
}

/// A key pair to create in the KMS.
pub struct NewKeyPair {
    pub kind: PairKind,
    pub label: Option<String>,
    /// CKA_ID given by the template, if any (kept in the KMS so every host sees it).
    pub id: Option<Vec<u8>>,
    /// The token's identity (hex of its uid).
    pub token: String,
}

/// What the token layer asks of a cloud KMS.
pub trait KmsBackend: Send + Sync {
    /// "aws", "gcp": names the backend in object uids and messages.
    fn kind(&self) -> &'static str;
    /// First byte of a stored secret this backend wrapped.
    fn blob_tag(&self) -> u8;
    /// The cached listing of remote keys.
    fn listing(&self) -> &ListingCache;
    /// Fetch the listing from the KMS and store it.
    fn fetch_listing(&self) -> Result<Listing>;
    /// A fresh data key of `len` bytes and its wrapped form.
    fn generate_data_key(
        &self,
        ctx: &WrapContext,
        len: usize,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)>;
    /// Wrap `plain` under the KEK.
    fn encrypt(&self, ctx: &WrapContext, plain: &[u8]) -> Result<Vec<u8>>;
    /// Unwrap a blob made by `encrypt` or `generate_data_key` (the context must match).
    fn decrypt(&self, ctx: &WrapContext, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// Rewrap a blob under the KEK's current key material.
    fn rewrap(&self, ctx: &WrapContext, blob: &[u8]) -> Result<Vec<u8>>;
    /// Create a key pair; the new key is already in the cached listing.
    fn create_key(&self, k: NewKeyPair) -> Result<KeyInfo>;
    /// C_DestroyObject of a remote private key; the key leaves the listing.
    fn delete_key(&self, k: &KeyInfo) -> Result<Listing>;
    /// The vendor attributes of both objects of a listed key.
    fn vendor_attrs(&self, k: &KeyInfo) -> Vec<Attr>;
    /// Whether [`KmsBackend::rename_key`] can change a key's names (CKA_MODIFIABLE).
    fn can_rename(&self) -> bool {
        false
    }
    /// C_SetAttributeValue of CKA_ID and/or CKA_LABEL on a listed key's objects: the
    /// listing with the key renamed. By default a key's names cannot change (asking for
    /// the names it already has is no change).
    fn rename_key(&self, k: &KeyInfo, id: Option<&[u8]>, label: Option<&str>) -> Result<Listing> {
        if id.is_some_and(|i| hex(i) != k.id) || label.is_some_and(|l| l != k.label) {
            return Err(Error::msg(
                cryptoki_sys::CKR_ATTRIBUTE_READ_ONLY,
                format!("the {} key {} cannot be renamed", self.kind(), k.name),
            ));
        }
        Ok(self.listing().get()?.unwrap_or_default())
    }
}

/// The token's KMS, one of the concrete backends.
#[derive(Clone)]
pub enum Kms {
    #[cfg(feature = "aws")]
    Aws(Arc<super::aws::AwsBackend>),
    #[cfg(feature = "gcp")]
    Gcp(Arc<super::gcp::GcpBackend>),
}

impl Kms {
    pub fn backend(&self) -> &(dyn KmsBackend + 'static) {
        match self {
            #[cfg(feature = "aws")]
            Kms::Aws(b) => b.as_ref(),
            #[cfg(feature = "gcp")]
            Kms::Gcp(b) => b.as_ref(),
        }
    }

    /// The remote half of a listed key (signs and decrypts in the KMS).
    pub fn remote_key(&self, k: &KeyInfo) -> Arc<dyn RemoteKey> {
        match self {
            #[cfg(feature = "aws")]
            Kms::Aws(b) => b.remote_key(k),
            #[cfg(feature = "gcp")]
            Kms::Gcp(b) => b.remote_key(k),
        }
    }
}

impl std::ops::Deref for Kms {
    type Target = dyn KmsBackend;
    fn deref(&self) -> &Self::Target {
        self.backend()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_round_trip() {
        let l = Listing {
            fetched_at: 5,
            keys: vec![KeyInfo {
                key_id: "k".into(),
                name: "a".into(),
                label: "y".into(),
                alias: "alias/x/y".into(),
                spec: "RSA_2048".into(),
                usage: "SIGN_VERIFY".into(),
                algorithms: vec!["RSASSA_PSS_SHA_256".into()],
                spki: "3000".into(),
                id: "01".into(),
                generated: true,
                protection_level: String::new(),
            }],
        };
        let t = toml::to_string(&l).unwrap();
        let back: Listing = toml::from_str(&t).unwrap();
        assert_eq!(back.keys, l.keys);
        assert_eq!(back.fetched_at, 5);
    }
}
