//! The Google Cloud KMS backend: one key ring is one token. One
//! `google_cloud_kms_v1::client::KeyManagementService` per token (REST transport,
//! Application Default Credentials, a JSON key file, or anonymous for an emulator), on
//! the token's own tokio runtime; every call bounded by `timeout_secs`, UNAVAILABLE and
//! RESOURCE_EXHAUSTED (HTTP 503/429) retried with exponential backoff inside that bound.
//!
//! What it does for the token layer:
//! * remote keys: every ENABLED version of an ASYMMETRIC_SIGN or ASYMMETRIC_DECRYPT
//!   CryptoKey of the ring with a supported algorithm (and, unless `show_software =
//!   false`, of SOFTWARE protection too) is one key pair. The listing is ListCryptoKeys,
//!   one ListCryptoKeyVersions per asymmetric key and GetPublicKey for versions not
//!   already cached (a version's public key never changes), kept in the store's meta
//!   table. AsymmetricSign (a digest: hashing is local) and AsymmetricDecrypt through
//!   [`GcpKey`]; CreateCryptoKey (waiting with GetCryptoKeyVersion until version 1 is
//!   ENABLED); DestroyCryptoKeyVersion (scheduled, as Cloud KMS does).
//! * data keys: generated locally (OS RNG, or GenerateRandomBytes with `random = "hsm"`)
//!   and wrapped with Encrypt under the `kek` CryptoKey, the additional authenticated
//!   data naming token, object and attribute digest; Decrypt on first use; rewrap is
//!   Decrypt + Encrypt under the kek's primary version (Cloud KMS has no ReEncrypt).
//!
//! CKA_ID (at most 31 bytes, the same on every host) is kept per key version in a
//! label of its CryptoKey, as lowercase hex: `p11kms-id` for version 1 (where
//! C_GenerateKeyPair puts its template's CKA_ID, as it always has), `p11kms-id-v<N>` for
//! version N > 1 (an empty value is an empty CKA_ID). C_SetAttributeValue of CKA_ID
//! (NSS names its keys so) writes that label: GetCryptoKey, then UpdateCryptoKey (PATCH,
//! updateMask=labels) with every other label kept. A version with no such label — later
//! versions, keys made outside the module — gets the first 16 bytes of
//! SHA-256("p11kms-gcp-id\0" + version resource name). CKA_LABEL is the CryptoKey id,
//! which Cloud KMS cannot rename: a different CKA_LABEL is CKR_ATTRIBUTE_READ_ONLY.
//! (Two hosts renaming two versions of one CryptoKey at the same moment can lose one
//! of the two labels: a CryptoKey has no etag to make UpdateCryptoKey conditional.)
//!
//! Integrity: every request field with a `*_crc32c` companion gets it, and every
//! response's `verified_*` flag and `*_crc32c` value is checked (as is the resource
//! name it answers for); a mismatch or a missing checksum is `CKR_DEVICE_ERROR`, logged
//! at info as `kms <Op> failed (integrity): ...`, never a success.
//!
//! Error mapping (README has the table): transport, timeout, credentials,
//! PERMISSION_DENIED, UNAVAILABLE / RESOURCE_EXHAUSTED after retries and anything
//! unexpected are `CKR_DEVICE_ERROR`; FAILED_PRECONDITION (version disabled or
//! destroyed) is `CKR_KEY_FUNCTION_NOT_PERMITTED`; NOT_FOUND is
//! `CKR_KEY_HANDLE_INVALID`; INVALID_ARGUMENT on a decryption is
//! `CKR_ENCRYPTED_DATA_INVALID`; ALREADY_EXISTS on creation is
//! `CKR_TEMPLATE_INCONSISTENT`. Every call is logged at debug level as
//! `kms call: <Method>`, every failure at info with the Cloud KMS error text.

use super::kms::{
    now_secs, KeyInfo, KmsBackend, Listing, ListingCache, NewKeyPair, PairKind, WrapContext,
};
use crate::config::TokenConfig;
use crate::error::{Error, Result};
use crate::mechanism::{Curve, RemoteDecrypt, RemoteKey, RemoteSign};
use crate::object::attrs::{
    CKA_P11KMS_KEY_ALGORITHM, CKA_P11KMS_KEY_VERSION, CKA_P11KMS_PROTECTION_LEVEL,
};
use crate::object::Attr;
use crate::runtime::Runtime;
use crate::store::{hex, Store};
use cryptoki_sys::*;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::{RetryPolicy, RetryPolicyExt};
use google_cloud_gax::retry_result::RetryResult;
use google_cloud_gax::retry_state::RetryState;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose;
use google_cloud_kms_v1::model::crypto_key_version::{
    CryptoKeyVersionAlgorithm, CryptoKeyVersionState,
};
use google_cloud_kms_v1::model::{
    CryptoKey, CryptoKeyVersion, CryptoKeyVersionTemplate, Digest, ProtectionLevel,
};
use google_cloud_wkt::FieldMask;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// Meta row holding the cached key listing.
const META_LISTING: &str = "gcp.listing";
/// First byte of a stored secret wrapped by Cloud KMS (the Encrypt ciphertext follows).
const BLOB_TAG: u8 = 0xA2;
/// CryptoKey labels put on keys the module creates.
pub const LABEL_TOKEN: &str = "p11kms-token";
pub const LABEL_ID: &str = "p11kms-id";
/// The longest CKA_ID a label holds (63 hex digits of label value, rounded down).
pub const MAX_ID_LEN: usize = 31;
/// The most labels Cloud KMS keeps on one CryptoKey.
const MAX_LABELS: usize = 64;

/// Algorithms shown as objects (the module's mechanisms can drive them).
const SUPPORTED: &[&str] = &[
    "EC_SIGN_P256_SHA256",
    "EC_SIGN_P384_SHA384",
    "EC_SIGN_SECP256K1_SHA256",
    "RSA_SIGN_PSS_2048_SHA256",
    "RSA_SIGN_PSS_3072_SHA256",
    "RSA_SIGN_PSS_4096_SHA256",
    "RSA_SIGN_PSS_4096_SHA512",
    "RSA_SIGN_PKCS1_2048_SHA256",
    "RSA_SIGN_PKCS1_3072_SHA256",
    "RSA_SIGN_PKCS1_4096_SHA256",
    "RSA_SIGN_PKCS1_4096_SHA512",
    "RSA_DECRYPT_OAEP_2048_SHA256",
    "RSA_DECRYPT_OAEP_3072_SHA256",
    "RSA_DECRYPT_OAEP_4096_SHA256",
    "RSA_DECRYPT_OAEP_2048_SHA1",
    "RSA_DECRYPT_OAEP_3072_SHA1",
    "RSA_DECRYPT_OAEP_4096_SHA1",
];

/// How the client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Credentials {
    /// Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, the gcloud ADC
    /// file, the metadata server).
    Adc,
    /// No credentials (an emulator on `endpoint`).
    Anonymous,
    /// A service-account or authorized-user JSON file.
    File(PathBuf),
}

/// The Cloud KMS backend of one token.
pub struct GcpBackend {
    key_ring: String,
    /// `projects/P/locations/L` (GenerateRandomBytes).
    location: String,
    /// The kek CryptoKey's full name.
    kek: String,
    endpoint: Option<String>,
    credentials: Credentials,
    show_software: bool,
    hsm_random: bool,
    /// Protection level of created keys.
    new_protection: ProtectionLevel,
    rt: Runtime,
    client: OnceLock<KeyManagementService>,
    cache: ListingCache,
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as Cloud KMS checksums data.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, b| {
        t[((c ^ *b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

fn crc(data: &[u8]) -> i64 {
    crc32c(data) as i64
}

/// An integrity failure of a call: logged, `CKR_DEVICE_ERROR`.
fn integrity(op: &str, what: &str) -> Error {
    log_at!(Info, "kms {op} failed (integrity): {what}");
    Error::device(format!("Cloud KMS {op}: integrity check failed: {what}"))
}

/// Check a response's checksum of `data` (a missing one fails too).
fn check_crc(op: &str, field: &str, data: &[u8], got: Option<i64>) -> Result<()> {
    match got {
        Some(c) if c == crc(data) => Ok(()),
        Some(c) => Err(integrity(
            op,
            &format!("{field} is {c}, the data's CRC32C is {}", crc(data)),
        )),
        None => Err(integrity(op, &format!("the response has no {field}"))),
    }
}

/// Check a response's `verified_*` flag: the service saw our request checksum.
fn check_verified(op: &str, field: &str, verified: bool) -> Result<()> {
    if verified {
        Ok(())
    } else {
        Err(integrity(
            op,
            &format!("{field} is false: the request's checksum was not verified"),
        ))
    }
}

/// Retry what Cloud KMS documents as retryable: UNAVAILABLE and RESOURCE_EXHAUSTED
/// (HTTP 503 and 429), and failures before the request left (connect errors). Every
/// method is retried: sign, decrypt and encrypt have no side effect, and a create
/// that failed with one of these codes created nothing.
#[derive(Debug)]
struct Transient;

impl RetryPolicy for Transient {
    fn on_error(&self, _state: &RetryState, error: google_cloud_gax::error::Error) -> RetryResult {
        let code = error.status().map(|s| s.code);
        let http = error.http_status_code();
        if error.is_transient_and_before_rpc()
            || matches!(code, Some(Code::Unavailable | Code::ResourceExhausted))
            || matches!(http, Some(429 | 503))
        {
            RetryResult::Continue(error)
        } else {
            RetryResult::Permanent(error)
        }
    }
}

/// The whole chain of an error's causes, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Map a client error to the module's error (see the module doc), logging it.
fn gcp_error(op: &str, e: google_cloud_gax::error::Error) -> Error {
    let code = e.status().map(|s| s.code);
    let http = e.http_status_code();
    let text = match e.status() {
        Some(s) => format!("{}: {}", s.code.name(), s.message),
        None => chain(&e),
    };
    let decrypting = matches!(op, "AsymmetricDecrypt" | "Decrypt");
    let (rv, what) = match code {
        Some(Code::FailedPrecondition) => (
            CKR_KEY_FUNCTION_NOT_PERMITTED,
            "key version disabled or destroyed",
        ),
        // What these miss is the key ring (or its location): the token's configuration,
        // not a key handle of the application's.
        Some(Code::NotFound)
            if matches!(
                op,
                "CreateCryptoKey" | "ListCryptoKeys" | "GenerateRandomBytes"
            ) =>
        {
            (CKR_DEVICE_ERROR, "key ring not found (check key_ring)")
        }
        Some(Code::NotFound) => (CKR_KEY_HANDLE_INVALID, "not found"),
        Some(Code::InvalidArgument) if decrypting => {
            (CKR_ENCRYPTED_DATA_INVALID, "ciphertext refused")
        }
        Some(Code::AlreadyExists) => (CKR_TEMPLATE_INCONSISTENT, "already exists"),
        Some(Code::PermissionDenied) => (CKR_DEVICE_ERROR, "access denied"),
        Some(Code::Unauthenticated) => (CKR_DEVICE_ERROR, "credentials"),
        Some(Code::ResourceExhausted) => (CKR_DEVICE_ERROR, "throttled (after retries)"),
        Some(Code::Unavailable) => (CKR_DEVICE_ERROR, "unavailable (after retries)"),
        Some(Code::DeadlineExceeded) => (CKR_DEVICE_ERROR, "timeout"),
        _ if e.is_timeout() => (CKR_DEVICE_ERROR, "timeout"),
        _ if e.is_authentication() => (CKR_DEVICE_ERROR, "credentials"),
        _ if http == Some(429) => (CKR_DEVICE_ERROR, "throttled (after retries)"),
        _ if http == Some(503) => (CKR_DEVICE_ERROR, "unavailable (after retries)"),
        _ if http == Some(401) => (CKR_DEVICE_ERROR, "credentials"),
        _ if http == Some(403) => (CKR_DEVICE_ERROR, "access denied"),
        _ if e.is_connect() || e.is_io() => (CKR_DEVICE_ERROR, "unreachable"),
        _ => (CKR_DEVICE_ERROR, "error"),
    };
    log_at!(Info, "kms {op} failed ({what}): {text}");
    Error::msg(rv, format!("Cloud KMS {op}: {what}: {text}"))
}

/// The last segment of a resource name.
fn leaf(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// CKA_ID of a version without one kept in its CryptoKey's labels.
pub fn default_id(version_name: &str) -> [u8; 16] {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("p11kms-gcp-id\0{version_name}").as_bytes(),
    );
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

/// The CryptoKey label holding a version's CKA_ID (module doc): `p11kms-id` for
/// version 1, `p11kms-id-v<N>` for version N.
pub fn id_label(version_name: &str) -> String {
    match leaf(version_name) {
        "1" => LABEL_ID.to_string(),
        n => format!("{LABEL_ID}-v{n}"),
    }
}

/// CKA_ID of a version: its label's hex (module doc), else [`default_id`]. A label
/// that is not lowercase hex of at most [`MAX_ID_LEN`] bytes is not the module's.
fn version_id(labels: &HashMap<String, String>, version_name: &str) -> Vec<u8> {
    let labelled = labels
        .get(&id_label(version_name))
        .filter(|v| v.len() % 2 == 0 && v.len() <= 2 * MAX_ID_LEN && is_hex(v))
        .and_then(|v| crate::store::unhex(v));
    labelled.unwrap_or_else(|| default_id(version_name).to_vec())
}

/// The CryptoKey of a version resource name.
fn key_of_version(version_name: &str) -> &str {
    version_name
        .rsplit_once("/cryptoKeyVersions/")
        .map_or(version_name, |(k, _)| k)
}

/// Lowercase hex digits (what a label value can hold, and what the module writes).
fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A CryptoKey id from a CKA_LABEL: [a-zA-Z0-9_-], at most 63; anything else is '_'.
pub fn crypto_key_id(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

/// DER SubjectPublicKeyInfo from GetPublicKey's PEM.
fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    let bad = || Error::device("Cloud KMS GetPublicKey: not a PEM public key");
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|r| r.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or_else(bad)?;
    let b64: String = body.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())
}

fn purpose_usage(p: &CryptoKeyPurpose) -> Option<&'static str> {
    match p {
        CryptoKeyPurpose::AsymmetricSign => Some("SIGN_VERIFY"),
        CryptoKeyPurpose::AsymmetricDecrypt => Some("ENCRYPT_DECRYPT"),
        _ => None,
    }
}

impl GcpBackend {
    /// The backend of a token with `backend = "gcp"` (no Cloud KMS call yet).
    pub fn new(cfg: &TokenConfig, store: Arc<Store>) -> Result<GcpBackend> {
        let field = |v: &Option<String>, name: &str| {
            v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                Error::msg(
                    CKR_GENERAL_ERROR,
                    format!("token \"{}\": {name} is required", cfg.label),
                )
            })
        };
        let key_ring = field(&cfg.key_ring, "key_ring")?;
        let kek = field(&cfg.kek, "kek")?;
        let kek = if kek.contains('/') {
            kek
        } else {
            format!("{key_ring}/cryptoKeys/{kek}")
        };
        let location = key_ring
            .rsplit_once("/keyRings/")
            .map(|(l, _)| l.to_string())
            .unwrap_or_default();
        let credentials = match cfg.credentials.as_deref() {
            None | Some("adc") => Credentials::Adc,
            Some("anonymous") => Credentials::Anonymous,
            Some(p) => Credentials::File(PathBuf::from(p)),
        };
        Ok(GcpBackend {
            key_ring,
            location,
            kek,
            endpoint: cfg.endpoint.clone(),
            credentials,
            show_software: cfg.show_software.unwrap_or(true),
            hsm_random: cfg.random.as_deref() == Some("hsm"),
            new_protection: match cfg.protection_level.as_deref() {
                Some("software") => ProtectionLevel::Software,
                _ => ProtectionLevel::Hsm,
            },
            rt: Runtime::new(Duration::from_secs(cfg.timeout_secs())),
            client: OnceLock::new(),
            cache: ListingCache::new(store, META_LISTING, cfg.refresh_secs()),
        })
    }

    fn credentials(&self) -> Result<google_cloud_auth::credentials::Credentials> {
        use google_cloud_auth::credentials as c;
        let fail = |e: &dyn std::fmt::Display| {
            let m = format!("Cloud KMS credentials: {e}");
            log_at!(Info, "kms client setup failed (credentials): {m}");
            Error::device(m)
        };
        match &self.credentials {
            Credentials::Anonymous => Ok(c::anonymous::Builder::new().build()),
            Credentials::Adc => c::Builder::default().build().map_err(|e| fail(&e)),
            Credentials::File(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| fail(&format!("cannot read {}: {e}", p.display())))?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| fail(&format!("{}: not JSON: {e}", p.display())))?;
                match v.get("type").and_then(|t| t.as_str()) {
                    Some("service_account") => c::service_account::Builder::new(v)
                        .build()
                        .map_err(|e| fail(&e)),
                    Some("authorized_user") => c::user_account::Builder::new(v)
                        .build()
                        .map_err(|e| fail(&e)),
                    other => Err(fail(&format!(
                        "{}: type {other:?} is neither service_account nor authorized_user",
                        p.display()
                    ))),
                }
            }
        }
    }

    /// The client, built once.
    fn client(&self) -> Result<&KeyManagementService> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let timeout = self.rt.timeout();
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(Duration::from_millis(100))
            .with_maximum_delay(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::general(format!("Cloud KMS backoff: {e}")))?;
        // Retries stop before the call's own deadline so the last error is reported.
        let retry = Transient
            .with_time_limit(timeout.mul_f32(0.75))
            .with_attempt_limit(5);
        let c = self.rt.block_on("Cloud KMS client setup", async {
            // Inside the runtime: the credential builders spawn their token refresh
            // task on it (outside one they panic).
            let creds = self.credentials()?;
            let mut b = KeyManagementService::builder()
                .with_credentials(creds)
                .with_retry_policy(retry)
                .with_backoff_policy(backoff);
            if let Some(e) = &self.endpoint {
                b = b.with_endpoint(e);
            }
            b.build().await.map_err(|e| {
                let m = format!("Cloud KMS client: {}", chain(&e));
                log_at!(Info, "kms client setup failed (error): {m}");
                Error::device(m)
            })
        })?;
        Ok(self.client.get_or_init(|| c))
    }

    fn run<T>(&self, op: &str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.rt.call(op, fut)
    }

    // ---- data keys -------------------------------------------------------------------

    /// The additional authenticated data binding a wrapped secret.
    fn aad(ctx: &WrapContext) -> Vec<u8> {
        ctx.pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
            .into_bytes()
    }

    /// Encrypt under the kek's primary version.
    fn encrypt_aad(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        const OP: &str = "Encrypt";
        let c = self.client()?;
        let r = self.run(OP, async {
            c.encrypt()
                .set_name(&self.kek)
                .set_plaintext(plain.to_vec())
                .set_plaintext_crc32c(crc(plain))
                .set_additional_authenticated_data(aad.to_vec())
                .set_additional_authenticated_data_crc32c(crc(aad))
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        })?;
        check_verified(OP, "verified_plaintext_crc32c", r.verified_plaintext_crc32c)?;
        check_verified(
            OP,
            "verified_additional_authenticated_data_crc32c",
            r.verified_additional_authenticated_data_crc32c,
        )?;
        check_crc(OP, "ciphertext_crc32c", &r.ciphertext, r.ciphertext_crc32c)?;
        if !r
            .name
            .starts_with(&format!("{}/cryptoKeyVersions/", self.kek))
        {
            return Err(integrity(
                OP,
                &format!("answered for {:?}, not a version of {}", r.name, self.kek),
            ));
        }
        Ok(r.ciphertext.to_vec())
    }

    fn decrypt_aad(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        const OP: &str = "Decrypt";
        let c = self.client()?;
        let mut r = self.run(OP, async {
            c.decrypt()
                .set_name(&self.kek)
                .set_ciphertext(blob.to_vec())
                .set_ciphertext_crc32c(crc(blob))
                .set_additional_authenticated_data(aad.to_vec())
                .set_additional_authenticated_data_crc32c(crc(aad))
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        })?;
        let plain = take_secret(&mut r.plaintext);
        check_crc(OP, "plaintext_crc32c", &plain, r.plaintext_crc32c)?;
        Ok(plain)
    }

    /// `len` random bytes from the Cloud HSM (GenerateRandomBytes).
    fn hsm_random_bytes(&self, len: usize) -> Result<Zeroizing<Vec<u8>>> {
        const OP: &str = "GenerateRandomBytes";
        let c = self.client()?;
        // Cloud KMS serves 8 to 1024 bytes: shorter keys take a prefix.
        let ask = len.max(8);
        let r = self.run(OP, async {
            c.generate_random_bytes()
                .set_location(&self.location)
                .set_length_bytes(ask as i32)
                .set_protection_level(ProtectionLevel::Hsm)
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        })?;
        let mut data = Zeroizing::new(r.data.to_vec());
        check_crc(OP, "data_crc32c", &data, r.data_crc32c)?;
        if data.len() != ask {
            return Err(Error::device(format!(
                "Cloud KMS {OP}: {} bytes returned, {ask} asked for",
                data.len()
            )));
        }
        data.truncate(len);
        Ok(data)
    }

    // ---- the key listing -------------------------------------------------------------

    fn list_versions(&self, key: &str) -> Result<Vec<CryptoKeyVersion>> {
        const OP: &str = "ListCryptoKeyVersions";
        let c = self.client()?;
        let mut out = Vec::new();
        let mut page = String::new();
        loop {
            let r = self.run(OP, async {
                let mut req = c.list_crypto_key_versions().set_parent(key);
                if !page.is_empty() {
                    req = req.set_page_token(page.clone());
                }
                req.send().await.map_err(|e| gcp_error(OP, e))
            })?;
            out.extend(r.crypto_key_versions);
            if r.next_page_token.is_empty() {
                return Ok(out);
            }
            page = r.next_page_token;
        }
    }

    fn list_keys(&self) -> Result<Vec<CryptoKey>> {
        const OP: &str = "ListCryptoKeys";
        let c = self.client()?;
        let mut out = Vec::new();
        let mut page = String::new();
        loop {
            let r = self.run(OP, async {
                let mut req = c.list_crypto_keys().set_parent(&self.key_ring);
                if !page.is_empty() {
                    req = req.set_page_token(page.clone());
                }
                req.send().await.map_err(|e| gcp_error(OP, e))
            })?;
            out.extend(r.crypto_keys);
            if r.next_page_token.is_empty() {
                return Ok(out);
            }
            page = r.next_page_token;
        }
    }

    /// True when a version is shown as objects.
    fn shown(&self, v: &CryptoKeyVersion) -> bool {
        v.state == CryptoKeyVersionState::Enabled
            && v.algorithm.name().is_some_and(|a| SUPPORTED.contains(&a))
            && (self.show_software || v.protection_level != ProtectionLevel::Software)
    }

    /// GetPublicKey: the DER SubjectPublicKeyInfo of a version.
    fn public_key(&self, version: &str) -> Result<Vec<u8>> {
        const OP: &str = "GetPublicKey";
        let c = self.client()?;
        let r = self.run(OP, async {
            c.get_public_key()
                .set_name(version)
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        })?;
        check_crc(OP, "pem_crc32c", r.pem.as_bytes(), r.pem_crc32c)?;
        if r.name != version {
            return Err(integrity(OP, &format!("answered for {:?}", r.name)));
        }
        pem_to_der(&r.pem)
    }

    fn key_info(&self, k: &CryptoKey, v: &CryptoKeyVersion, spki: &str) -> Result<KeyInfo> {
        let usage = purpose_usage(&k.purpose)
            .ok_or_else(|| Error::device(format!("{}: not an asymmetric key", k.name)))?;
        Ok(KeyInfo {
            key_id: v.name.clone(),
            name: v.name.clone(),
            label: leaf(&k.name).to_string(),
            alias: String::new(),
            spec: v.algorithm.name().unwrap_or("").to_string(),
            usage: usage.to_string(),
            algorithms: vec![v.algorithm.name().unwrap_or("").to_string()],
            spki: spki.to_string(),
            id: hex(&version_id(&k.labels, &v.name)),
            generated: v.import_job.is_empty(),
            protection_level: v.protection_level.name().unwrap_or("").to_string(),
        })
    }

    fn fetch_listing_now(&self) -> Result<Listing> {
        // Public keys of versions already cached are not fetched again.
        let known: HashMap<String, String> = self
            .cache
            .get()
            .ok()
            .flatten()
            .map(|l| l.keys.into_iter().map(|k| (k.key_id, k.spki)).collect())
            .unwrap_or_default();
        let mut keys = Vec::new();
        for k in self.list_keys()? {
            if purpose_usage(&k.purpose).is_none() {
                continue;
            }
            for v in self.list_versions(&k.name)? {
                if !self.shown(&v) {
                    continue;
                }
                let spki = match known.get(&v.name) {
                    Some(s) => s.clone(),
                    None => match self.public_key(&v.name) {
                        Ok(der) => hex(&der),
                        // Destroyed or disabled since it was listed: not shown.
                        Err(e)
                            if matches!(
                                e.rv(),
                                CKR_KEY_HANDLE_INVALID | CKR_KEY_FUNCTION_NOT_PERMITTED
                            ) =>
                        {
                            continue
                        }
                        Err(e) => return Err(e),
                    },
                };
                keys.push(self.key_info(&k, &v, &spki)?);
            }
        }
        let l = Listing {
            fetched_at: now_secs(),
            keys,
        };
        self.cache.save(&l)?;
        Ok(l)
    }

    // ---- key pairs -------------------------------------------------------------------

    fn create_key_now(&self, k: NewKeyPair) -> Result<KeyInfo> {
        let (alg, purpose) = match k.kind {
            PairKind::Rsa {
                bits,
                decrypt: true,
                ..
            } => (
                format!("RSA_DECRYPT_OAEP_{bits}_SHA256"),
                CryptoKeyPurpose::AsymmetricDecrypt,
            ),
            PairKind::Rsa {
                bits, pss: true, ..
            } => (
                format!("RSA_SIGN_PSS_{bits}_SHA256"),
                CryptoKeyPurpose::AsymmetricSign,
            ),
            PairKind::Rsa { bits, .. } => (
                format!("RSA_SIGN_PKCS1_{bits}_SHA256"),
                CryptoKeyPurpose::AsymmetricSign,
            ),
            PairKind::Ec(c) => (
                match c {
                    Curve::P256 => "EC_SIGN_P256_SHA256".to_string(),
                    Curve::P384 => "EC_SIGN_P384_SHA384".to_string(),
                    Curve::K256 => "EC_SIGN_SECP256K1_SHA256".to_string(),
                    Curve::P521 => {
                        return Err(Error::msg(
                            CKR_CURVE_NOT_SUPPORTED,
                            "Cloud KMS has no P-521 keys",
                        ))
                    }
                },
                CryptoKeyPurpose::AsymmetricSign,
            ),
        };
        if !SUPPORTED.contains(&alg.as_str()) {
            return Err(CKR_KEY_SIZE_RANGE.into());
        }
        if k.id.as_ref().is_some_and(|id| id.len() > MAX_ID_LEN) {
            return Err(Error::msg(
                CKR_ATTRIBUTE_VALUE_INVALID,
                format!("a Cloud KMS key's CKA_ID is at most {MAX_ID_LEN} bytes"),
            ));
        }
        let id = match (&k.label, &k.id) {
            (Some(l), _) if !l.is_empty() => crypto_key_id(l),
            (_, Some(id)) if !id.is_empty() => format!("p11kms-{}", hex(id)),
            _ => {
                let mut r = [0u8; 8];
                aws_lc_rs::rand::fill(&mut r).map_err(|_| Error::general("random CryptoKey id"))?;
                format!("p11kms-{}", hex(&r))
            }
        };
        let mut labels = vec![(LABEL_TOKEN, k.token.to_ascii_lowercase())];
        if let Some(i) = k.id.as_ref().filter(|i| !i.is_empty()) {
            labels.push((LABEL_ID, hex(i)));
        }
        let key = CryptoKey::new()
            .set_purpose(purpose)
            .set_version_template(
                CryptoKeyVersionTemplate::new()
                    .set_algorithm(CryptoKeyVersionAlgorithm::from(alg.as_str()))
                    .set_protection_level(self.new_protection.clone()),
            )
            .set_labels(labels);
        const OP: &str = "CreateCryptoKey";
        let c = self.client()?;
        let created = self
            .run(OP, async {
                c.create_crypto_key()
                    .set_parent(&self.key_ring)
                    .set_crypto_key_id(&id)
                    .set_crypto_key(key)
                    .send()
                    .await
                    .map_err(|e| gcp_error(OP, e))
            })
            .map_err(|e| match e.rv() {
                CKR_TEMPLATE_INCONSISTENT => Error::msg(
                    CKR_TEMPLATE_INCONSISTENT,
                    format!(
                        "CryptoKey {id} already exists in the key ring: choose another CKA_LABEL"
                    ),
                ),
                _ => e,
            })?;
        let version = self.wait_enabled(&format!("{}/cryptoKeyVersions/1", created.name))?;
        let spki = hex(&self.public_key(&version.name)?);
        let info = self.key_info(&created, &version, &spki)?;
        self.cache.update(Some(info.clone()), None)?;
        Ok(info)
    }

    /// GetCryptoKeyVersion until the version leaves PENDING_GENERATION (bounded by
    /// `timeout_secs`); it must then be ENABLED.
    fn wait_enabled(&self, name: &str) -> Result<CryptoKeyVersion> {
        const OP: &str = "GetCryptoKeyVersion";
        let c = self.client()?;
        let v = self.rt.block_on(OP, async {
            let mut pause = Duration::from_millis(50);
            loop {
                log_at!(Debug, "kms call: {OP}");
                let v = c
                    .get_crypto_key_version()
                    .set_name(name)
                    .send()
                    .await
                    .map_err(|e| gcp_error(OP, e))?;
                if v.state != CryptoKeyVersionState::PendingGeneration {
                    return Ok(v);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        })?;
        if v.state != CryptoKeyVersionState::Enabled {
            return Err(Error::device(format!(
                "Cloud KMS {name}: state {} after generation",
                v.state.name().unwrap_or("?")
            )));
        }
        Ok(v)
    }

    fn destroy_version(&self, name: &str) -> Result<()> {
        const OP: &str = "DestroyCryptoKeyVersion";
        let c = self.client()?;
        let v = match self.run(OP, async {
            c.destroy_crypto_key_version()
                .set_name(name)
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        }) {
            Ok(v) => v,
            // FAILED_PRECONDITION or NOT_FOUND: destroyed already, outside the module?
            // Then what C_DestroyObject asks for holds, and its objects go.
            Err(e)
                if matches!(
                    e.rv(),
                    CKR_KEY_FUNCTION_NOT_PERMITTED | CKR_KEY_HANDLE_INVALID
                ) && self.version_is_gone(name)? =>
            {
                log_at!(
                    Info,
                    "Cloud KMS {name} was destroyed already: its objects go"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if !matches!(
            v.state,
            CryptoKeyVersionState::DestroyScheduled | CryptoKeyVersionState::Destroyed
        ) {
            return Err(Error::device(format!(
                "Cloud KMS {OP} {name}: state {}",
                v.state.name().unwrap_or("?")
            )));
        }
        Ok(())
    }

    /// Whether version `name` is destroyed, scheduled for destruction or not there.
    fn version_is_gone(&self, name: &str) -> Result<bool> {
        const OP: &str = "GetCryptoKeyVersion";
        let c = self.client()?;
        match self.run(OP, async {
            c.get_crypto_key_version()
                .set_name(name)
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        }) {
            Ok(v) => Ok(matches!(
                v.state,
                CryptoKeyVersionState::DestroyScheduled | CryptoKeyVersionState::Destroyed
            )),
            Err(e) if e.rv() == CKR_KEY_HANDLE_INVALID => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// C_SetAttributeValue of CKA_ID / CKA_LABEL on a listed version's objects (module
    /// doc): the id goes into the version's label of its CryptoKey (GetCryptoKey, then
    /// UpdateCryptoKey of `labels` with the others kept, checked in the answer); the
    /// label is the CryptoKey id and cannot change. No call when nothing changes; a bad
    /// value is refused before any call. Returns the listing with the key updated.
    fn rename_version(
        &self,
        k: &KeyInfo,
        id: Option<&[u8]>,
        label: Option<&str>,
    ) -> Result<Listing> {
        if label.is_some_and(|l| l != k.label) {
            return Err(Error::msg(
                CKR_ATTRIBUTE_READ_ONLY,
                format!(
                    "CKA_LABEL of {} is its CryptoKey id, which Cloud KMS cannot rename",
                    k.name
                ),
            ));
        }
        let Some(id) = id.filter(|i| hex(i) != k.id) else {
            return Ok(self.cache.get()?.unwrap_or_default());
        };
        if id.len() > MAX_ID_LEN {
            return Err(Error::msg(
                CKR_ATTRIBUTE_VALUE_INVALID,
                format!(
                    "a Cloud KMS key's CKA_ID is at most {MAX_ID_LEN} bytes (a label value \
                     holds 63 hex digits), {} given",
                    id.len()
                ),
            ));
        }
        let (name, field, value) = (key_of_version(&k.key_id), id_label(&k.key_id), hex(id));
        let c = self.client()?;
        const GET: &str = "GetCryptoKey";
        let key = self.run(GET, async {
            c.get_crypto_key()
                .set_name(name)
                .send()
                .await
                .map_err(|e| gcp_error(GET, e))
        })?;
        if key.name != name {
            return Err(integrity(GET, &format!("answered for {:?}", key.name)));
        }
        let mut labels = key.labels;
        labels.insert(field.clone(), value.clone());
        if labels.len() > MAX_LABELS {
            return Err(Error::device(format!(
                "CryptoKey {name} has {MAX_LABELS} labels already: no room for {field}"
            )));
        }
        const OP: &str = "UpdateCryptoKey";
        let updated = self.run(OP, async {
            c.update_crypto_key()
                .set_crypto_key(CryptoKey::new().set_name(name).set_labels(labels.clone()))
                .set_update_mask(FieldMask::default().set_paths(["labels"]))
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        })?;
        if updated.name != name || updated.labels.get(&field) != Some(&value) {
            return Err(integrity(
                OP,
                &format!(
                    "the answer for {:?} does not hold {field}={value}",
                    updated.name
                ),
            ));
        }
        let mut next = k.clone();
        next.id = value;
        self.cache.update(Some(next), None)
    }

    /// The remote half of a listed version.
    pub fn remote_key(self: &Arc<Self>, key: &KeyInfo) -> Arc<dyn RemoteKey> {
        Arc::new(GcpKey {
            backend: self.clone(),
            version: key.key_id.clone(),
            algorithm: key.spec.clone(),
        })
    }

    /// AsymmetricSign of a digest with a version of algorithm `algorithm`.
    pub fn sign(
        &self,
        version: &str,
        algorithm: &str,
        alg: RemoteSign,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        const OP: &str = "AsymmetricSign";
        let hash = check_sign_alg(version, algorithm, alg)?;
        let d = match hash {
            "_SHA256" => Digest::new().set_sha256(digest.to_vec()),
            "_SHA384" => Digest::new().set_sha384(digest.to_vec()),
            _ => Digest::new().set_sha512(digest.to_vec()),
        };
        let c = self.client()?;
        let r = self.run(OP, async {
            c.asymmetric_sign()
                .set_name(version)
                .set_digest(d)
                .set_digest_crc32c(crc(digest))
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        })?;
        check_verified(OP, "verified_digest_crc32c", r.verified_digest_crc32c)?;
        check_crc(OP, "signature_crc32c", &r.signature, r.signature_crc32c)?;
        if r.name != version {
            return Err(integrity(OP, &format!("answered for {:?}", r.name)));
        }
        Ok(r.signature.to_vec())
    }

    /// AsymmetricDecrypt (RSA-OAEP) with a version of algorithm `algorithm`.
    pub fn decrypt_with(
        &self,
        version: &str,
        algorithm: &str,
        alg: RemoteDecrypt,
        ct: &[u8],
    ) -> Result<Vec<u8>> {
        const OP: &str = "AsymmetricDecrypt";
        check_decrypt_alg(version, algorithm, alg)?;
        let c = self.client()?;
        let r = self.run(OP, async {
            c.asymmetric_decrypt()
                .set_name(version)
                .set_ciphertext(ct.to_vec())
                .set_ciphertext_crc32c(crc(ct))
                .send()
                .await
                .map_err(|e| gcp_error(OP, e))
        })?;
        check_verified(
            OP,
            "verified_ciphertext_crc32c",
            r.verified_ciphertext_crc32c,
        )?;
        let plain = Zeroizing::new(r.plaintext.to_vec());
        check_crc(OP, "plaintext_crc32c", &plain, r.plaintext_crc32c)?;
        Ok(plain.to_vec())
    }
}

/// A data key out of a Decrypt answer, into a zeroizing buffer; the answer's own
/// buffer is wiped too when nothing else shares it (the client decodes each field into
/// a buffer of its own). Copies in the HTTP layer (the base64 body) stay out of reach.
fn take_secret(b: &mut bytes::Bytes) -> Zeroizing<Vec<u8>> {
    let src = std::mem::take(b);
    let out = Zeroizing::new(src.to_vec());
    if let Ok(mut m) = src.try_into_mut() {
        zeroize::Zeroize::zeroize(&mut m[..]);
    }
    out
}

impl KmsBackend for GcpBackend {
    fn kind(&self) -> &'static str {
        "gcp"
    }

    fn blob_tag(&self) -> u8 {
        BLOB_TAG
    }

    fn listing(&self) -> &ListingCache {
        &self.cache
    }

    fn fetch_listing(&self) -> Result<Listing> {
        self.fetch_listing_now()
    }

    /// Local (or HSM) random bytes, then Encrypt.
    fn generate_data_key(
        &self,
        ctx: &WrapContext,
        len: usize,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        let plain = if self.hsm_random {
            self.hsm_random_bytes(len)?
        } else {
            let mut v = Zeroizing::new(vec![0u8; len]);
            aws_lc_rs::rand::fill(&mut v).map_err(|_| Error::general("OS random"))?;
            v
        };
        let blob = self.encrypt_aad(&Self::aad(ctx), &plain)?;
        Ok((plain, blob))
    }

    fn encrypt(&self, ctx: &WrapContext, plain: &[u8]) -> Result<Vec<u8>> {
        self.encrypt_aad(&Self::aad(ctx), plain)
    }

    fn decrypt(&self, ctx: &WrapContext, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.decrypt_aad(&Self::aad(ctx), blob)
    }

    /// Decrypt + Encrypt under the primary version (the plaintext stays in a
    /// zeroizing buffer of this process).
    fn rewrap(&self, ctx: &WrapContext, blob: &[u8]) -> Result<Vec<u8>> {
        let aad = Self::aad(ctx);
        let plain = self.decrypt_aad(&aad, blob)?;
        self.encrypt_aad(&aad, &plain)
    }

    fn create_key(&self, k: NewKeyPair) -> Result<KeyInfo> {
        self.create_key_now(k)
    }

    /// DestroyCryptoKeyVersion (DESTROY_SCHEDULED, as Cloud KMS does).
    fn delete_key(&self, k: &KeyInfo) -> Result<Listing> {
        self.destroy_version(&k.key_id)?;
        self.cache.update(None, Some(&k.key_id))
    }

    /// CKA_ID can change (a CryptoKey label); CKA_LABEL only to what it is.
    fn can_rename(&self) -> bool {
        true
    }

    fn rename_key(&self, k: &KeyInfo, id: Option<&[u8]>, label: Option<&str>) -> Result<Listing> {
        self.rename_version(k, id, label)
    }

    fn vendor_attrs(&self, k: &KeyInfo) -> Vec<Attr> {
        vec![
            (CKA_P11KMS_KEY_VERSION, k.name.as_bytes().to_vec()),
            (CKA_P11KMS_KEY_ALGORITHM, k.spec.as_bytes().to_vec()),
            (
                CKA_P11KMS_PROTECTION_LEVEL,
                k.protection_level.as_bytes().to_vec(),
            ),
        ]
    }
}

/// Does a version of `algorithm` sign with `alg`? (A Cloud KMS version has one
/// algorithm: one padding, one hash.) Its hash suffix, or `CKR_MECHANISM_INVALID`.
fn check_sign_alg(version: &str, algorithm: &str, alg: RemoteSign) -> Result<&'static str> {
    use RemoteSign::*;
    let (family, hash) = match alg {
        EcdsaSha256 => ("EC_SIGN_", "_SHA256"),
        EcdsaSha384 => ("EC_SIGN_", "_SHA384"),
        EcdsaSha512 => ("EC_SIGN_", "_SHA512"),
        RsaPkcs1Sha256 => ("RSA_SIGN_PKCS1_", "_SHA256"),
        RsaPkcs1Sha384 => ("RSA_SIGN_PKCS1_", "_SHA384"),
        RsaPkcs1Sha512 => ("RSA_SIGN_PKCS1_", "_SHA512"),
        RsaPssSha256 => ("RSA_SIGN_PSS_", "_SHA256"),
        RsaPssSha384 => ("RSA_SIGN_PSS_", "_SHA384"),
        RsaPssSha512 => ("RSA_SIGN_PSS_", "_SHA512"),
    };
    if !(algorithm.starts_with(family) && algorithm.ends_with(hash)) {
        return Err(Error::msg(
            CKR_MECHANISM_INVALID,
            format!("Cloud KMS version {version} signs with {algorithm} only"),
        ));
    }
    Ok(hash)
}

/// Does a version of `algorithm` decrypt with `alg`? Else `CKR_MECHANISM_PARAM_INVALID`
/// (the OAEP hash of the parameters is not the version's).
fn check_decrypt_alg(version: &str, algorithm: &str, alg: RemoteDecrypt) -> Result<()> {
    let hash = match alg {
        RemoteDecrypt::OaepSha1 => "_SHA1",
        RemoteDecrypt::OaepSha256 => "_SHA256",
    };
    if !(algorithm.starts_with("RSA_DECRYPT_OAEP_") && algorithm.ends_with(hash)) {
        return Err(Error::msg(
            CKR_MECHANISM_PARAM_INVALID,
            format!("Cloud KMS version {version} decrypts with {algorithm} only"),
        ));
    }
    Ok(())
}

/// A Cloud KMS key version as a [`RemoteKey`].
struct GcpKey {
    backend: Arc<GcpBackend>,
    version: String,
    algorithm: String,
}

impl RemoteKey for GcpKey {
    fn sign_digest(&self, alg: RemoteSign, digest: &[u8]) -> Result<Vec<u8>> {
        self.backend
            .sign(&self.version, &self.algorithm, alg, digest)
    }

    fn decrypt(&self, alg: RemoteDecrypt, ct: &[u8]) -> Result<Vec<u8>> {
        self.backend
            .decrypt_with(&self.version, &self.algorithm, alg, ct)
    }
    fn check_sign(&self, alg: RemoteSign) -> Result<()> {
        check_sign_alg(&self.version, &self.algorithm, alg).map(|_| ())
    }

    fn check_decrypt(&self, alg: RemoteDecrypt) -> Result<()> {
        check_decrypt_alg(&self.version, &self.algorithm, alg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_vectors() {
        // RFC 3720 B.4 and the classic check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn ids() {
        let v1 = "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1";
        let v2 = "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/2";
        let labels = HashMap::from([(LABEL_ID.to_string(), "01ab".to_string())]);
        assert_eq!(version_id(&labels, v1), vec![0x01, 0xab]);
        assert_eq!(version_id(&labels, v2), default_id(v2).to_vec());
        assert_ne!(default_id(v1), default_id(v2));
        let odd = HashMap::from([(LABEL_ID.to_string(), "abc".to_string())]);
        assert_eq!(version_id(&odd, v1), default_id(v1).to_vec());
        // Version N > 1 has a label of its own; an empty value is an empty CKA_ID.
        assert_eq!(id_label(v1), "p11kms-id");
        assert_eq!(id_label(v2), "p11kms-id-v2");
        let both = HashMap::from([
            (LABEL_ID.to_string(), "01ab".to_string()),
            ("p11kms-id-v2".to_string(), "ff".to_string()),
        ]);
        assert_eq!(version_id(&both, v1), vec![0x01, 0xab]);
        assert_eq!(version_id(&both, v2), vec![0xff]);
        let empty = HashMap::from([("p11kms-id-v2".to_string(), String::new())]);
        assert_eq!(version_id(&empty, v2), Vec::<u8>::new());
        let long = HashMap::from([(LABEL_ID.to_string(), "ab".repeat(MAX_ID_LEN + 1))]);
        assert_eq!(version_id(&long, v1), default_id(v1).to_vec());
        assert_eq!(
            key_of_version(v2),
            "projects/p/locations/l/keyRings/r/cryptoKeys/k"
        );
        assert_eq!(crypto_key_id("my key.1"), "my_key_1");
        assert_eq!(crypto_key_id(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn pem() {
        let der = pem_to_der("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n");
        assert_eq!(der.unwrap(), vec![0x30, 0x00]);
        assert!(
            pem_to_der("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----").is_err()
        );
    }
}
