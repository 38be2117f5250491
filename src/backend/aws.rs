//! The AWS KMS backend: one `aws_sdk_kms::Client` per token (standard credential chain,
//! the SDK's standard retry with backoff), on the token's own tokio runtime.
//!
//! What it does for the token layer:
//! * data keys: GenerateDataKey / Encrypt / Decrypt / ReEncrypt under the token's KEK,
//!   each with an EncryptionContext naming token, object and attribute digest;
//! * remote keys: the listing (ListAliases under `alias_prefix` -> DescribeKey ->
//!   GetPublicKey -> ListResourceTags), cached in the store's meta table; Sign (digest)
//!   and Decrypt through [`AwsKey`], the [`RemoteKey`] of a KMS key; CreateKey +
//!   CreateAlias; ScheduleKeyDeletion + DeleteAlias.
//!
//! Every call is logged at debug level as `kms call: <Operation>` (tests count them);
//! failures are logged at info with the KMS error text (never request payloads).
//!
//! Error mapping (README has the table): transport, timeout, credentials, AccessDenied,
//! throttling after the SDK's retries and anything unexpected are `CKR_DEVICE_ERROR`; a
//! disabled or pending-deletion key (DisabledException, KMSInvalidStateException) is
//! `CKR_KEY_FUNCTION_NOT_PERMITTED`; a key gone (NotFoundException) is
//! `CKR_KEY_HANDLE_INVALID`; a ciphertext KMS refuses (InvalidCiphertextException) is
//! `CKR_ENCRYPTED_DATA_INVALID`.

use super::kms::{
    now_secs, KeyInfo, KmsBackend, Listing, ListingCache, NewKeyPair, PairKind, WrapContext,
};
use crate::config::TokenConfig;
use crate::error::{Error, Result};
use crate::mechanism::{Curve, RemoteDecrypt, RemoteKey, RemoteSign};
use crate::object::attrs::CKA_P11KMS_KEY_ARN;
use crate::object::Attr;
use crate::runtime::Runtime;
use crate::store::{hex, Store};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    EncryptionAlgorithmSpec, KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec,
    Tag,
};
use aws_sdk_kms::Client;
use cryptoki_sys::*;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// Meta row holding the cached key listing (TOML text of [`Listing`]).
const META_LISTING: &str = "aws.listing";
/// Tag names put on keys the module creates.
pub const TAG_TOKEN: &str = "p11kms:token";
pub const TAG_LABEL: &str = "p11kms:label";
pub const TAG_ID: &str = "p11kms:id";

/// First byte of a stored secret wrapped by AWS KMS (the CiphertextBlob follows).
const BLOB_TAG: u8 = 0xA1;

/// The AWS KMS backend of one token.
pub struct AwsBackend {
    region: String,
    endpoint: Option<String>,
    profile: Option<String>,
    kek: String,
    pub alias_prefix: String,
    deletion_window_days: u32,
    rt: Runtime,
    client: OnceLock<Client>,
    cache: ListingCache,
}

/// Map an SDK error to the module's error (see the module doc), logging it.
fn kms_error<E>(op: &str, e: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.code().map(str::to_string);
    // A service error is its code and message; for the rest the whole chain of causes
    // (connection refused, credentials provider errors...) is the useful part.
    let text = match (&e, &code) {
        (SdkError::ServiceError(_), Some(c)) => format!("{c}: {}", e.message().unwrap_or("")),
        _ => DisplayErrorContext(&e).to_string(),
    };
    let rv = match code.as_deref() {
        Some("DisabledException") | Some("KMSInvalidStateException") => {
            CKR_KEY_FUNCTION_NOT_PERMITTED
        }
        Some("NotFoundException") => CKR_KEY_HANDLE_INVALID,
        Some("InvalidCiphertextException") => CKR_ENCRYPTED_DATA_INVALID,
        _ => CKR_DEVICE_ERROR,
    };
    let what = match (&e, code.as_deref()) {
        (_, Some("DisabledException") | Some("KMSInvalidStateException")) => {
            "key disabled or pending deletion"
        }
        (SdkError::TimeoutError(_), _) => "timeout",
        (SdkError::DispatchFailure(d), _) if d.is_timeout() => "timeout",
        (_, Some(c)) if c.contains("AccessDenied") => "access denied",
        (_, Some(c)) if c.contains("Throttl") => "throttled (after retries)",
        (_, Some(c))
            if c.contains("Token") || c.contains("Signature") || c.contains("Security") =>
        {
            "credentials"
        }
        (SdkError::ServiceError(_), _) | (SdkError::ResponseError(_), _) => "error",
        // No credentials is a failure before dispatch (identity resolution).
        _ if text.to_ascii_lowercase().contains("credential") => "credentials",
        (SdkError::DispatchFailure(_), _) => "unreachable",
        _ => "error",
    };
    log_at!(Info, "kms {op} failed ({what}): {text}");
    Error::msg(rv, format!("KMS {op}: {what}: {text}"))
}

fn need<T>(op: &str, v: Option<T>, field: &str) -> Result<T> {
    v.ok_or_else(|| Error::device(format!("KMS {op}: answer without {field}")))
}

/// The EncryptionContext binding a wrapped secret to its token, object and attributes.
fn context(ctx: &WrapContext) -> HashMap<String, String> {
    ctx.pairs()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

impl AwsBackend {
    /// The backend of a token with `backend = "aws"` (no KMS call yet).
    pub fn new(cfg: &TokenConfig, store: Arc<Store>) -> Result<AwsBackend> {
        let field = |v: &Option<String>, name: &str| {
            v.clone().ok_or_else(|| {
                Error::msg(
                    CKR_GENERAL_ERROR,
                    format!("token \"{}\": {name} is required", cfg.label),
                )
            })
        };
        Ok(AwsBackend {
            region: field(&cfg.region, "region")?,
            endpoint: cfg.endpoint.clone(),
            profile: cfg.profile.clone(),
            kek: field(&cfg.kek, "kek")?,
            alias_prefix: field(&cfg.alias_prefix, "alias_prefix")?,
            deletion_window_days: cfg.deletion_window_days(),
            rt: Runtime::new(Duration::from_secs(cfg.timeout_secs())),
            client: OnceLock::new(),
            cache: ListingCache::new(store, META_LISTING, cfg.refresh_secs()),
        })
    }

    /// The client, built once (aws-config's standard chain; endpoint from the config
    /// file, else AWS_ENDPOINT_URL as the SDK reads it).
    fn client(&self) -> Result<&Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let timeout = self.rt.timeout();
        let c = self.rt.block_on("KMS client setup", async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(self.region.clone()))
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .operation_timeout(timeout)
                        .connect_timeout(Duration::from_secs(3).min(timeout))
                        .build(),
                );
            if let Some(p) = &self.profile {
                loader = loader.profile_name(p);
            }
            if let Some(e) = &self.endpoint {
                loader = loader.endpoint_url(e);
            }
            let conf = loader.load().await;
            Ok(Client::new(&conf))
        })?;
        Ok(self.client.get_or_init(|| c))
    }

    fn run<T>(&self, op: &str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.rt.call(op, fut)
    }

    // ---- data keys -------------------------------------------------------------------

    /// GenerateDataKey under the KEK: (plaintext, CiphertextBlob).
    fn generate_data_key_ctx(
        &self,
        ctx: HashMap<String, String>,
        len: usize,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        let c = self.client()?;
        let out = self.run("GenerateDataKey", async {
            c.generate_data_key()
                .key_id(&self.kek)
                .number_of_bytes(len as i32)
                .set_encryption_context(Some(ctx))
                .send()
                .await
                .map_err(|e| kms_error("GenerateDataKey", e))
        })?;
        let plain =
            Zeroizing::new(need("GenerateDataKey", out.plaintext, "Plaintext")?.into_inner());
        let blob = need("GenerateDataKey", out.ciphertext_blob, "CiphertextBlob")?.into_inner();
        if plain.len() != len {
            // (LocalStack ignores NumberOfBytes and always returns 32 bytes.)
            return Err(Error::device(format!(
                "KMS GenerateDataKey: {} bytes returned, {len} asked for",
                plain.len()
            )));
        }
        Ok((plain, blob))
    }

    /// Encrypt `plain` under the KEK.
    fn encrypt_ctx(&self, ctx: HashMap<String, String>, plain: &[u8]) -> Result<Vec<u8>> {
        let c = self.client()?;
        let out = self.run("Encrypt", async {
            c.encrypt()
                .key_id(&self.kek)
                .plaintext(Blob::new(plain.to_vec()))
                .set_encryption_context(Some(ctx))
                .send()
                .await
                .map_err(|e| kms_error("Encrypt", e))
        })?;
        Ok(need("Encrypt", out.ciphertext_blob, "CiphertextBlob")?.into_inner())
    }

    /// Decrypt a blob made by `generate_data_key` or `encrypt` (the context must match).
    fn decrypt_ctx(&self, ctx: HashMap<String, String>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let c = self.client()?;
        let out = self.run("Decrypt", async {
            c.decrypt()
                .key_id(&self.kek)
                .ciphertext_blob(Blob::new(blob.to_vec()))
                .set_encryption_context(Some(ctx))
                .send()
                .await
                .map_err(|e| kms_error("Decrypt", e))
        })?;
        Ok(Zeroizing::new(
            need("Decrypt", out.plaintext, "Plaintext")?.into_inner(),
        ))
    }

    /// ReEncrypt a blob under the KEK's current key material (no plaintext leaves KMS).
    fn reencrypt_ctx(&self, ctx: HashMap<String, String>, blob: &[u8]) -> Result<Vec<u8>> {
        let c = self.client()?;
        let out = self.run("ReEncrypt", async {
            c.re_encrypt()
                .source_key_id(&self.kek)
                .destination_key_id(&self.kek)
                .ciphertext_blob(Blob::new(blob.to_vec()))
                .set_source_encryption_context(Some(ctx.clone()))
                .set_destination_encryption_context(Some(ctx))
                .send()
                .await
                .map_err(|e| kms_error("ReEncrypt", e))
        })?;
        Ok(need("ReEncrypt", out.ciphertext_blob, "CiphertextBlob")?.into_inner())
    }

    // ---- the key listing -------------------------------------------------------------

    /// Fetch the listing from KMS and store it.
    fn fetch_listing_now(&self) -> Result<Listing> {
        let c = self.client()?;
        let mut aliases: Vec<(String, String)> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self.run("ListAliases", async {
                c.list_aliases()
                    .set_marker(marker.clone())
                    .send()
                    .await
                    .map_err(|e| kms_error("ListAliases", e))
            })?;
            for a in out.aliases() {
                if let (Some(name), Some(target)) = (a.alias_name(), a.target_key_id()) {
                    if name.starts_with(&self.alias_prefix) && name.len() > self.alias_prefix.len()
                    {
                        aliases.push((name.to_string(), target.to_string()));
                    }
                }
            }
            match (out.truncated, out.next_marker) {
                (true, Some(m)) => marker = Some(m),
                _ => break,
            }
        }
        aliases.sort();
        let mut keys: Vec<KeyInfo> = Vec::new();
        for (alias, key_id) in aliases {
            // One pair per key: the first alias (sorted) names it.
            if keys.iter().any(|k| k.key_id == key_id) {
                continue;
            }
            if let Some(k) = self.describe(&alias, &key_id)? {
                keys.push(k);
            }
        }
        let l = Listing {
            fetched_at: now_secs(),
            keys,
        };
        self.cache.save(&l)?;
        Ok(l)
    }

    /// DescribeKey + GetPublicKey + ListResourceTags of one key; `None` when the key is
    /// not an enabled asymmetric sign or decrypt key of a supported spec.
    fn describe(&self, alias: &str, key_id: &str) -> Result<Option<KeyInfo>> {
        let c = self.client()?;
        let md = self.run("DescribeKey", async {
            c.describe_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| kms_error("DescribeKey", e))
        })?;
        let Some(md) = md.key_metadata else {
            return Ok(None);
        };
        let spec = md
            .key_spec()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let usage = md
            .key_usage()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let supported = matches!(
            spec.as_str(),
            "RSA_2048"
                | "RSA_3072"
                | "RSA_4096"
                | "ECC_NIST_P256"
                | "ECC_NIST_P384"
                | "ECC_NIST_P521"
                | "ECC_SECG_P256K1"
        ) && matches!(usage.as_str(), "SIGN_VERIFY" | "ENCRYPT_DECRYPT");
        if !md.enabled() || md.key_state() != Some(&KeyState::Enabled) || !supported {
            return Ok(None);
        }
        let algorithms: Vec<String> = if usage == "SIGN_VERIFY" {
            md.signing_algorithms()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect()
        } else {
            md.encryption_algorithms()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect()
        };
        let arn = md.arn().unwrap_or(key_id).to_string();
        let generated = md.origin().map(|o| o.as_str()) == Some("AWS_KMS");
        let real_id = md.key_id().to_string();
        let spki = self.public_key(&real_id)?;
        let tags = self.run("ListResourceTags", async {
            c.list_resource_tags()
                .key_id(&real_id)
                .send()
                .await
                .map_err(|e| kms_error("ListResourceTags", e))
        })?;
        let tagged_id = tags
            .tags()
            .iter()
            .find(|t| t.tag_key() == TAG_ID)
            .map(|t| t.tag_value().to_ascii_lowercase())
            .filter(|v| v.len() % 2 == 0 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        Ok(Some(KeyInfo {
            id: tagged_id.unwrap_or_else(|| hex(&default_id(&real_id))),
            label: self.label_of(alias, &real_id),
            key_id: real_id,
            name: arn,
            alias: alias.to_string(),
            spec,
            usage,
            algorithms,
            spki: hex(&spki),
            generated,
            protection_level: String::new(),
        }))
    }

    /// GetPublicKey: the DER SubjectPublicKeyInfo.
    fn public_key(&self, key_id: &str) -> Result<Vec<u8>> {
        let c = self.client()?;
        let out = self.run("GetPublicKey", async {
            c.get_public_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| kms_error("GetPublicKey", e))
        })?;
        Ok(need("GetPublicKey", out.public_key, "PublicKey")?.into_inner())
    }

    /// CKA_LABEL of a key: its alias without the token's prefix; empty for a key named
    /// by its own key id (generated with no label and no ID), as on a local token.
    fn label_of(&self, alias: &str, key_id: &str) -> String {
        match alias.strip_prefix(&self.alias_prefix).unwrap_or(alias) {
            name if name == key_id => String::new(),
            name => name.to_string(),
        }
    }

    /// CreateKey + CreateAlias (+ GetPublicKey): the new key, already in the listing.
    fn create_key_now(&self, k: NewKeyPair) -> Result<KeyInfo> {
        let (spec, usage) = match k.kind {
            PairKind::Rsa { bits, decrypt, .. } => (
                match bits {
                    2048 => KeySpec::Rsa2048,
                    3072 => KeySpec::Rsa3072,
                    4096 => KeySpec::Rsa4096,
                    _ => return Err(CKR_KEY_SIZE_RANGE.into()),
                },
                if decrypt {
                    KeyUsageType::EncryptDecrypt
                } else {
                    KeyUsageType::SignVerify
                },
            ),
            PairKind::Ec(c) => (
                match c {
                    Curve::P256 => KeySpec::EccNistP256,
                    Curve::P384 => KeySpec::EccNistP384,
                    Curve::P521 => KeySpec::EccNistP521,
                    Curve::K256 => KeySpec::EccSecgP256K1,
                },
                KeyUsageType::SignVerify,
            ),
        };
        let c = self.client()?;
        // The alias names the key: the label, else the hex CKA_ID, else (a template
        // with neither, as NSS and SunPKCS11 send before they set CKA_ID) the key id.
        let name = match &k.label {
            Some(l) if !l.is_empty() => sanitize(l),
            _ => hex(k.id.as_deref().unwrap_or(&[])),
        };
        let mut tags = vec![(TAG_TOKEN, k.token.clone())];
        if let Some(l) = &k.label {
            tags.push((TAG_LABEL, l.clone()));
        }
        if let Some(id) = &k.id {
            tags.push((TAG_ID, hex(id)));
        }
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|(key, v)| Tag::builder().tag_key(key).tag_value(v).build())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::general(format!("KMS tag: {e}")))?;
        let md = self.run("CreateKey", async {
            c.create_key()
                .key_spec(spec.clone())
                .key_usage(usage.clone())
                .description(format!("p11kms token {}", k.token))
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| kms_error("CreateKey", e))
        })?;
        let md = need("CreateKey", md.key_metadata, "KeyMetadata")?;
        let key_id = md.key_id().to_string();
        let alias = self.alias_for(if name.is_empty() { &key_id } else { &name });
        let aliased = self.run("CreateAlias", async {
            c.create_alias()
                .alias_name(&alias)
                .target_key_id(&key_id)
                .send()
                .await
                .map_err(|e| kms_error("CreateAlias", e))
        });
        if let Err(e) = aliased {
            // No alias, no object: do not leave an orphan key behind.
            let _ = self.schedule_deletion(&key_id, None, 7);
            if e.message().is_some_and(|m| m.contains("AlreadyExists")) {
                return Err(Error::msg(
                    CKR_TEMPLATE_INCONSISTENT,
                    format!("KMS alias {alias} already exists: choose another CKA_LABEL"),
                ));
            }
            return Err(e);
        }
        let spki = self.public_key(&key_id)?;
        let usage = md
            .key_usage()
            .map(|u| u.as_str().to_string())
            .unwrap_or_default();
        let algorithms: Vec<String> = if usage == "SIGN_VERIFY" {
            md.signing_algorithms()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect()
        } else {
            md.encryption_algorithms()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect()
        };
        let info = KeyInfo {
            id: hex(&k.id.unwrap_or_else(|| default_id(&key_id).to_vec())),
            name: md.arn().unwrap_or(&key_id).to_string(),
            label: self.label_of(&alias, &key_id),
            key_id,
            alias,
            spec: spec.as_str().to_string(),
            usage,
            algorithms,
            spki: hex(&spki),
            generated: true,
            protection_level: String::new(),
        };
        self.cache.update(Some(info.clone()), None)?;
        Ok(info)
    }

    fn alias_for(&self, name: &str) -> String {
        format!("{}{}", self.alias_prefix, name)
    }

    /// The alias a CKA_LABEL gives a key (the key id for an empty label).
    pub fn alias_of_label(&self, key: &KeyInfo, label: &str) -> String {
        match sanitize(label) {
            n if n.is_empty() => self.alias_for(&key.key_id),
            n => self.alias_for(&n),
        }
    }

    /// C_SetAttributeValue of CKA_ID and/or CKA_LABEL on a KMS key's objects: the ID is
    /// the `p11kms:id` tag (TagResource), the label the alias (CreateAlias of the new
    /// name, then DeleteAlias of the old), so every host sees the change. Makes only
    /// the calls a change needs: none when both are already what is asked. Returns the
    /// listing with the key updated.
    fn rename_kms_key(
        &self,
        key: &KeyInfo,
        id: Option<&[u8]>,
        label: Option<&str>,
    ) -> Result<Listing> {
        let mut next = key.clone();
        let mut tags: Vec<(&str, String)> = Vec::new();
        if let Some(id) = id.map(hex).filter(|h| *h != key.id) {
            tags.push((TAG_ID, id.clone()));
            next.id = id;
        }
        let new_alias = label
            .map(|l| (l, self.alias_of_label(key, l)))
            .filter(|(_, a)| *a != key.alias);
        if tags.is_empty() && new_alias.is_none() {
            return Ok(self.cache.get()?.unwrap_or_default());
        }
        let c = self.client()?;
        if let Some((l, alias)) = &new_alias {
            self.run("CreateAlias", async {
                c.create_alias()
                    .alias_name(alias)
                    .target_key_id(&key.key_id)
                    .send()
                    .await
                    .map_err(|e| kms_error("CreateAlias", e))
            })
            .map_err(|e| {
                if e.message().is_some_and(|m| m.contains("AlreadyExists")) {
                    Error::msg(
                        CKR_ATTRIBUTE_VALUE_INVALID,
                        format!("KMS alias {alias} already exists: choose another CKA_LABEL"),
                    )
                } else {
                    e
                }
            })?;
            tags.push((TAG_LABEL, l.to_string()));
        }
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::general(format!("KMS tag: {e}")))?;
        let tagged = self.run("TagResource", async {
            c.tag_resource()
                .key_id(&key.key_id)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| kms_error("TagResource", e))
        });
        if let Some((_, alias)) = &new_alias {
            // The old name goes only once the new one is complete; on a failed tag,
            // take the new alias back so the key keeps exactly one name.
            let drop = if tagged.is_ok() { &key.alias } else { alias };
            self.run("DeleteAlias", async {
                c.delete_alias()
                    .alias_name(drop)
                    .send()
                    .await
                    .map_err(|e| kms_error("DeleteAlias", e))
            })?;
            next.alias = alias.clone();
        }
        tagged?;
        next.label = self.label_of(&next.alias, &next.key_id);
        self.cache.update(Some(next), None)
    }

    /// DeleteAlias, then ScheduleKeyDeletion. An alias or key removed outside the
    /// module already (alias not found; key pending deletion or not found, confirmed by
    /// DescribeKey) is what C_DestroyObject asks for, not an error: the objects go.
    fn schedule_deletion(&self, key_id: &str, alias: Option<&str>, days: u32) -> Result<()> {
        let c = self.client()?;
        if let Some(a) = alias {
            match self.run("DeleteAlias", async {
                c.delete_alias()
                    .alias_name(a)
                    .send()
                    .await
                    .map_err(|e| kms_error("DeleteAlias", e))
            }) {
                Err(e) if e.rv() == CKR_KEY_HANDLE_INVALID => {
                    log_at!(Info, "alias {a} was deleted already");
                }
                r => {
                    r?;
                }
            }
        }
        match self.run("ScheduleKeyDeletion", async {
            c.schedule_key_deletion()
                .key_id(key_id)
                .pending_window_in_days(days as i32)
                .send()
                .await
                .map_err(|e| kms_error("ScheduleKeyDeletion", e))
        }) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.rv(),
                    CKR_KEY_FUNCTION_NOT_PERMITTED | CKR_KEY_HANDLE_INVALID
                ) && self.key_is_gone(key_id)? =>
            {
                log_at!(Info, "KMS key {key_id} was scheduled for deletion already");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether key `key_id` is pending deletion (or not there at all).
    fn key_is_gone(&self, key_id: &str) -> Result<bool> {
        let c = self.client()?;
        match self.run("DescribeKey", async {
            c.describe_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| kms_error("DescribeKey", e))
        }) {
            Ok(d) => Ok(d.key_metadata.is_some_and(|m| {
                matches!(
                    m.key_state(),
                    Some(KeyState::PendingDeletion | KeyState::PendingReplicaDeletion)
                )
            })),
            Err(e) if e.rv() == CKR_KEY_HANDLE_INVALID => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The remote half of a listed key.
    pub fn remote_key(self: &Arc<Self>, key: &KeyInfo) -> Arc<dyn RemoteKey> {
        Arc::new(AwsKey {
            backend: self.clone(),
            key_id: key.key_id.clone(),
        })
    }

    /// Sign a digest with a KMS key (MessageType DIGEST).
    pub fn sign(&self, key_id: &str, alg: RemoteSign, digest: &[u8]) -> Result<Vec<u8>> {
        let c = self.client()?;
        let alg = match alg {
            RemoteSign::EcdsaSha256 => SigningAlgorithmSpec::EcdsaSha256,
            RemoteSign::EcdsaSha384 => SigningAlgorithmSpec::EcdsaSha384,
            RemoteSign::EcdsaSha512 => SigningAlgorithmSpec::EcdsaSha512,
            RemoteSign::RsaPkcs1Sha256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
            RemoteSign::RsaPkcs1Sha384 => SigningAlgorithmSpec::RsassaPkcs1V15Sha384,
            RemoteSign::RsaPkcs1Sha512 => SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
            RemoteSign::RsaPssSha256 => SigningAlgorithmSpec::RsassaPssSha256,
            RemoteSign::RsaPssSha384 => SigningAlgorithmSpec::RsassaPssSha384,
            RemoteSign::RsaPssSha512 => SigningAlgorithmSpec::RsassaPssSha512,
        };
        let out = self.run("Sign", async {
            c.sign()
                .key_id(key_id)
                .message(Blob::new(digest.to_vec()))
                .message_type(MessageType::Digest)
                .signing_algorithm(alg)
                .send()
                .await
                .map_err(|e| kms_error("Sign", e))
        })?;
        Ok(need("Sign", out.signature, "Signature")?.into_inner())
    }

    /// Decrypt with a KMS RSA key.
    pub fn decrypt_with(&self, key_id: &str, alg: RemoteDecrypt, ct: &[u8]) -> Result<Vec<u8>> {
        let c = self.client()?;
        let alg = match alg {
            RemoteDecrypt::OaepSha1 => EncryptionAlgorithmSpec::RsaesOaepSha1,
            RemoteDecrypt::OaepSha256 => EncryptionAlgorithmSpec::RsaesOaepSha256,
        };
        let out = self.run("Decrypt", async {
            c.decrypt()
                .key_id(key_id)
                .ciphertext_blob(Blob::new(ct.to_vec()))
                .encryption_algorithm(alg)
                .send()
                .await
                .map_err(|e| kms_error("Decrypt", e))
        })?;
        Ok(need("Decrypt", out.plaintext, "Plaintext")?.into_inner())
    }
}

/// CKA_ID of a key without a `p11kms:id` tag: the 16 bytes of its key id's UUID (the
/// same on every host), else (multi-Region "mrk-" ids) SHA-256 of the id, truncated.
pub fn default_id(key_id: &str) -> [u8; 16] {
    let h: String = key_id.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    if h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
    } else {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_id.as_bytes());
        out.copy_from_slice(&d.as_ref()[..16]);
    }
    out
}

/// An alias name from a CKA_LABEL: KMS allows [A-Za-z0-9/_-]; anything else becomes '_'.
pub fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect()
}

/// A KMS key as a [`RemoteKey`].
struct AwsKey {
    backend: Arc<AwsBackend>,
    key_id: String,
}

impl RemoteKey for AwsKey {
    fn sign_digest(&self, alg: RemoteSign, digest: &[u8]) -> Result<Vec<u8>> {
        self.backend.sign(&self.key_id, alg, digest)
    }

    fn decrypt(&self, alg: RemoteDecrypt, ct: &[u8]) -> Result<Vec<u8>> {
        self.backend.decrypt_with(&self.key_id, alg, ct)
    }
}

impl KmsBackend for AwsBackend {
    fn kind(&self) -> &'static str {
        "aws"
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

    fn can_rename(&self) -> bool {
        true
    }

    fn rename_key(&self, k: &KeyInfo, id: Option<&[u8]>, label: Option<&str>) -> Result<Listing> {
        self.rename_kms_key(k, id, label)
    }

    fn generate_data_key(
        &self,
        ctx: &WrapContext,
        len: usize,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        self.generate_data_key_ctx(context(ctx), len)
    }

    fn encrypt(&self, ctx: &WrapContext, plain: &[u8]) -> Result<Vec<u8>> {
        self.encrypt_ctx(context(ctx), plain)
    }

    fn decrypt(&self, ctx: &WrapContext, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.decrypt_ctx(context(ctx), blob)
    }

    /// ReEncrypt (no plaintext leaves KMS).
    fn rewrap(&self, ctx: &WrapContext, blob: &[u8]) -> Result<Vec<u8>> {
        self.reencrypt_ctx(context(ctx), blob)
    }

    fn create_key(&self, k: NewKeyPair) -> Result<KeyInfo> {
        self.create_key_now(k)
    }

    /// DeleteAlias + ScheduleKeyDeletion with the configured window.
    fn delete_key(&self, key: &KeyInfo) -> Result<Listing> {
        self.schedule_deletion(&key.key_id, Some(&key.alias), self.deletion_window_days)?;
        self.cache.update(None, Some(&key.key_id))
    }

    fn vendor_attrs(&self, k: &KeyInfo) -> Vec<Attr> {
        vec![(CKA_P11KMS_KEY_ARN, k.name.as_bytes().to_vec())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_id_is_the_uuid() {
        assert_eq!(
            default_id("1234abcd-12ab-34cd-56ef-1234567890ab"),
            [
                0x12, 0x34, 0xab, 0xcd, 0x12, 0xab, 0x34, 0xcd, 0x56, 0xef, 0x12, 0x34, 0x56, 0x78,
                0x90, 0xab
            ]
        );
        assert_ne!(default_id("mrk-1"), default_id("mrk-2"));
    }

    #[test]
    fn sanitized_alias() {
        assert_eq!(sanitize("my key/1.a"), "my_key/1_a");
    }
}
