//! The embedded local backend: an HSM-like partition in the token store.
//!
//! Key hierarchy: a random 256-bit master key (the local KEK) is stored only wrapped
//! (AES-256-GCM) under keys derived with Argon2id from the SO PIN and from the user PIN.
//! PIN verification is memory-hard as well. Every wrapped blob binds the token identity
//! and the object identity as associated data.
//!
//! Store layout (meta rows, all binary, big-endian integers, each starting with a
//! version byte):
//!
//! * `local.token`: `01 | token uid (16) | key check value (32) | label len (u16) | label`.
//!   The check value is HMAC-SHA256(master, "p11kms-kcv-v1" || token uid): it lets a
//!   process tell that a master key it holds is still the token's (another process may
//!   have re-initialized the token) without revealing anything about the key.
//! * `local.pin.so`, `local.pin.user`: `01 | kdf id 01 (Argon2id v1.3) | m KiB (u32) |
//!   t (u32) | p (u32) | salt (16) | SHA-256(verifier half) (32) | failures (u32) |
//!   wrapped len (u16) | nonce (12) || AES-256-GCM(master) || tag (16)`, with associated
//!   data "p11kms-pin-v1" || token uid || "so"/"user" || record version.
//!
//! Object blobs: `01 | nonce (12) | ciphertext | tag (16)`, associated data
//! "p11kms-obj-v1" || token uid || object uid.
//!
//! PIN checks and failure counters: the Argon2 run happens before the store's write lock
//! is taken (so logins in several processes do not queue behind each other's Argon2),
//! but the verdict is only reached inside one IMMEDIATE transaction that re-reads the
//! record, refuses a locked role, compares, and writes the counter before commit. A
//! guess computed in parallel therefore counts exactly once and reveals nothing once the
//! role is locked: no process gets extra guesses.

use crate::error::{Error, Result};
use crate::store::{hex, Store, Tx};
use aws_lc_rs::{aead, constant_time, digest, hmac, rand};
use cryptoki_sys::*;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The unwrapped token master key, present in memory only while someone is logged in.
pub struct MasterKey(pub(crate) Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Failed logins (per role) after which the role is locked.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// PIN length bounds in bytes (CK_TOKEN_INFO ulMinPinLen / ulMaxPinLen).
pub const MIN_PIN_LEN: usize = 4;
/// See [`MIN_PIN_LEN`].
pub const MAX_PIN_LEN: usize = 64;

const META_TOKEN: &str = "local.token";
const TOKEN_RECORD_V1: u8 = 1;
const PIN_RECORD_V1: u8 = 1;
const KDF_ARGON2ID_V13: u8 = 1;
const OBJ_BLOB_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Argon2id cost parameters. Stored in every PIN record, so the defaults can change
/// without invalidating existing PINs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        KdfParams {
            m_kib: 19456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Bounds on what a stored record may ask for, so a damaged store cannot make a
    /// login allocate gigabytes or spin for minutes.
    fn sane(&self) -> bool {
        (8..=1 << 18).contains(&self.m_kib)
            && (1..=16).contains(&self.t_cost)
            && (1..=16).contains(&self.p_cost)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    So,
    User,
}

impl Role {
    /// CKU_CONTEXT_SPECIFIC re-authenticates the user (PKCS#11 3.0 §5.6 C_Login).
    fn from_user_type(user: CK_USER_TYPE) -> Result<Role> {
        match user {
            CKU_SO => Ok(Role::So),
            CKU_USER | CKU_CONTEXT_SPECIFIC => Ok(Role::User),
            _ => Err(CKR_USER_TYPE_INVALID.into()),
        }
    }

    fn meta_key(self) -> &'static str {
        match self {
            Role::So => "local.pin.so",
            Role::User => "local.pin.user",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::So => "so",
            Role::User => "user",
        }
    }
}

fn check_pin_len(pin: &[u8]) -> Result<()> {
    if (MIN_PIN_LEN..=MAX_PIN_LEN).contains(&pin.len()) {
        Ok(())
    } else {
        Err(CKR_PIN_LEN_RANGE.into())
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    rand::fill(&mut b).map_err(|_| Error::device("local token: random generator failed"))?;
    Ok(b)
}

fn corrupt(what: &str) -> Error {
    Error::device(format!("local token: corrupt {what} record"))
}

// ---- binary records ------------------------------------------------------------------

struct Reader<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(corrupt(self.what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn bytes16(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn finish(self) -> Result<()> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(corrupt(self.what))
        }
    }
}

fn put16(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// `local.token`: who this token is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TokenRecord {
    uid: [u8; 16],
    kcv: [u8; 32],
    label: String,
}

impl TokenRecord {
    fn encode(&self) -> Vec<u8> {
        let mut v = vec![TOKEN_RECORD_V1];
        v.extend_from_slice(&self.uid);
        v.extend_from_slice(&self.kcv);
        put16(&mut v, self.label.as_bytes());
        v
    }

    fn decode(b: &[u8]) -> Result<TokenRecord> {
        let mut r = Reader { b, what: "token" };
        let version = r.u8()?;
        if version != TOKEN_RECORD_V1 {
            return Err(Error::msg(
                CKR_TOKEN_NOT_RECOGNIZED,
                format!("local token: token record version {version} not supported"),
            ));
        }
        let uid = r.arr()?;
        let kcv = r.arr()?;
        let label = std::str::from_utf8(r.bytes16()?)
            .map_err(|_| corrupt("token"))?
            .to_string();
        r.finish()?;
        Ok(TokenRecord { uid, kcv, label })
    }
}

/// `local.pin.{so,user}`: one role's PIN verifier and its wrapping of the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PinRecord {
    kdf: KdfParams,
    salt: [u8; 16],
    verifier: [u8; 32],
    failures: u32,
    wrapped: Vec<u8>,
}

impl PinRecord {
    fn encode(&self) -> Vec<u8> {
        let mut v = vec![PIN_RECORD_V1, KDF_ARGON2ID_V13];
        for x in [self.kdf.m_kib, self.kdf.t_cost, self.kdf.p_cost] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(&self.salt);
        v.extend_from_slice(&self.verifier);
        v.extend_from_slice(&self.failures.to_be_bytes());
        put16(&mut v, &self.wrapped);
        v
    }

    fn decode(b: &[u8]) -> Result<PinRecord> {
        let mut r = Reader { b, what: "PIN" };
        let version = r.u8()?;
        let kdf_id = r.u8()?;
        if version != PIN_RECORD_V1 || kdf_id != KDF_ARGON2ID_V13 {
            return Err(Error::msg(
                CKR_TOKEN_NOT_RECOGNIZED,
                format!("local token: PIN record version {version}/kdf {kdf_id} not supported"),
            ));
        }
        let kdf = KdfParams {
            m_kib: r.u32()?,
            t_cost: r.u32()?,
            p_cost: r.u32()?,
        };
        if !kdf.sane() {
            return Err(corrupt("PIN"));
        }
        let rec = PinRecord {
            kdf,
            salt: r.arr()?,
            verifier: r.arr()?,
            failures: r.u32()?,
            wrapped: r.bytes16()?.to_vec(),
        };
        r.finish()?;
        Ok(rec)
    }
}

/// Meta reads through either a plain store handle or an open transaction.
trait MetaRead {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;

    fn token(&self) -> Result<Option<TokenRecord>> {
        self.meta(META_TOKEN)?
            .map(|b| TokenRecord::decode(&b))
            .transpose()
    }

    fn pin(&self, role: Role) -> Result<Option<PinRecord>> {
        self.meta(role.meta_key())?
            .map(|b| PinRecord::decode(&b))
            .transpose()
    }
}

impl MetaRead for Store {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_meta(key)
    }
}

impl MetaRead for Tx<'_> {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_meta(key)
    }
}

// ---- crypto --------------------------------------------------------------------------

/// What one Argon2id run over a PIN yields.
struct Derived {
    /// SHA-256 of the first 32 output bytes: compared with the record's verifier.
    verifier: [u8; 32],
    /// The last 32 output bytes: wraps the master key.
    key: Zeroizing<[u8; 32]>,
}

fn derive(pin: &[u8], salt: &[u8; 16], kdf: KdfParams) -> Result<Derived> {
    let params = argon2::Params::new(kdf.m_kib, kdf.t_cost, kdf.p_cost, Some(64))
        .map_err(|e| Error::device(format!("local token: Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 64]);
    argon
        .hash_password_into(pin, salt, &mut out[..])
        .map_err(|e| Error::device(format!("local token: Argon2: {e}")))?;
    let mut verifier = [0u8; 32];
    verifier.copy_from_slice(digest::digest(&digest::SHA256, &out[..32]).as_ref());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&out[32..]);
    Ok(Derived { verifier, key })
}

fn aead_key(
    key: &[u8; 32],
) -> std::result::Result<aead::LessSafeKey, aws_lc_rs::error::Unspecified> {
    Ok(aead::LessSafeKey::new(aead::UnboundKey::new(
        &aead::AES_256_GCM,
        key,
    )?))
}

/// AES-256-GCM with a random nonce: `nonce || ciphertext || tag`, after `prefix`.
fn seal(
    key: &[u8; 32],
    aad: &[u8],
    prefix: &[u8],
    plain: &[u8],
) -> std::result::Result<Vec<u8>, ()> {
    let k = aead_key(key).map_err(|_| ())?;
    let nonce: [u8; NONCE_LEN] = random().map_err(|_| ())?;
    let head = prefix.len() + NONCE_LEN;
    // Sized up front so the plaintext is never left behind in a reallocated buffer.
    let mut buf = Zeroizing::new(Vec::with_capacity(head + plain.len() + TAG_LEN));
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plain);
    let tag = k
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut buf[head..],
        )
        .map_err(|_| ())?;
    buf.extend_from_slice(tag.as_ref());
    Ok(std::mem::take(&mut *buf))
}

/// Inverse of [`seal`] on `nonce || ciphertext || tag` (prefix already removed).
fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, ()> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(());
    }
    let k = aead_key(key).map_err(|_| ())?;
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| ())?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let n = k
        .open_in_place(nonce, aead::Aad::from(aad), &mut buf[..])
        .map_err(|_| ())?
        .len();
    buf.truncate(n);
    Ok(buf)
}

fn pin_aad(token_uid: &[u8; 16], role: Role) -> Vec<u8> {
    let mut a = b"p11kms-pin-v1".to_vec();
    a.extend_from_slice(token_uid);
    a.extend_from_slice(role.name().as_bytes());
    a.push(PIN_RECORD_V1);
    a
}

fn object_aad(token_uid: &[u8; 16], object_uid: &[u8; 16]) -> Vec<u8> {
    let mut a = b"p11kms-obj-v1".to_vec();
    a.extend_from_slice(token_uid);
    a.extend_from_slice(object_uid);
    a
}

fn key_check_value(master: &MasterKey, token_uid: &[u8; 16]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, &master.0[..]);
    let mut msg = b"p11kms-kcv-v1".to_vec();
    msg.extend_from_slice(token_uid);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&k, &msg).as_ref());
    out
}

/// Wrap an object secret: `01 | nonce | ct | tag`, bound to token and object.
fn seal_object(
    master: &MasterKey,
    token_uid: &[u8; 16],
    object_uid: &[u8; 16],
    plain: &[u8],
) -> Result<Vec<u8>> {
    seal(
        &master.0,
        &object_aad(token_uid, object_uid),
        &[OBJ_BLOB_V1],
        plain,
    )
    .map_err(|()| {
        Error::device(format!(
            "local token: wrapping object {} failed",
            hex(object_uid)
        ))
    })
}

fn open_object(
    master: &MasterKey,
    token_uid: &[u8; 16],
    object_uid: &[u8; 16],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let fail = || {
        Error::device(format!(
            "local token: unwrapping object {} failed (other token or object, or damaged)",
            hex(object_uid)
        ))
    };
    match blob.split_first() {
        Some((&OBJ_BLOB_V1, sealed)) => {
            open(&master.0, &object_aad(token_uid, object_uid), sealed).map_err(|()| fail())
        }
        _ => Err(fail()),
    }
}

/// A fresh PIN record for `role` wrapping `master` (one Argon2 run).
fn new_pin_record(
    token_uid: &[u8; 16],
    role: Role,
    pin: &[u8],
    master: &MasterKey,
    kdf: KdfParams,
) -> Result<PinRecord> {
    let salt = random()?;
    let d = derive(pin, &salt, kdf)?;
    let wrapped = seal(&d.key, &pin_aad(token_uid, role), &[], &master.0[..])
        .map_err(|()| Error::device("local token: wrapping the master key failed"))?;
    Ok(PinRecord {
        kdf,
        salt,
        verifier: d.verifier,
        failures: 0,
        wrapped,
    })
}

/// The outcome of a counted PIN check.
enum Verdict {
    Ok(MasterKey),
    Incorrect,
    Locked,
}

impl Verdict {
    fn into_result(self) -> Result<MasterKey> {
        match self {
            Verdict::Ok(m) => Ok(m),
            Verdict::Incorrect => Err(CKR_PIN_INCORRECT.into()),
            Verdict::Locked => Err(CKR_PIN_LOCKED.into()),
        }
    }
}

/// An Argon2 run done before taking the write lock, valid only for the record
/// (salt and parameters) it was computed against.
struct Attempt {
    salt: [u8; 16],
    kdf: KdfParams,
    derived: Derived,
}

// ---- the backend ---------------------------------------------------------------------

/// The local backend of one token.
pub struct LocalBackend {
    store: Arc<Store>,
    max_attempts: u32,
    kdf: KdfParams,
}

impl LocalBackend {
    /// A backend with [`DEFAULT_MAX_ATTEMPTS`] and default Argon2 parameters.
    pub fn new(store: Arc<Store>) -> LocalBackend {
        Self::with_max_attempts(store, DEFAULT_MAX_ATTEMPTS)
    }

    /// A backend locking a role after `max_attempts` consecutive failed PIN checks
    /// (at least 1).
    pub fn with_max_attempts(store: Arc<Store>, max_attempts: u32) -> LocalBackend {
        LocalBackend {
            store,
            max_attempts: max_attempts.max(1),
            kdf: KdfParams::default(),
        }
    }

    /// Cheap Argon2 parameters for unit tests elsewhere in the crate; never in the module.
    #[cfg(test)]
    pub(crate) fn with_test_kdf(store: Arc<Store>, max_attempts: u32) -> LocalBackend {
        LocalBackend {
            store,
            max_attempts: max_attempts.max(1),
            kdf: KdfParams {
                m_kib: 64,
                t_cost: 1,
                p_cost: 1,
            },
        }
    }

    /// The store this backend lives in.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Consecutive failures after which a role is locked.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// True once C_InitToken has run.
    pub fn is_initialized(&self) -> Result<bool> {
        Ok(self.store.meta(META_TOKEN)?.is_some())
    }

    /// The token label set by C_InitToken (already trimmed), if initialized.
    pub fn label(&self) -> Result<Option<String>> {
        Ok(self.store.token()?.map(|t| t.label))
    }

    /// The random token identity, renewed by every C_InitToken.
    pub fn token_uid(&self) -> Result<Option<[u8; 16]>> {
        Ok(self.store.token()?.map(|t| t.uid))
    }

    /// CK_TOKEN_INFO serialNumber: 16 uppercase hex digits of the token uid, if
    /// initialized. Changes with every C_InitToken.
    pub fn serial_number(&self) -> Result<Option<String>> {
        Ok(self.token_uid()?.map(|u| hex(&u[..8]).to_ascii_uppercase()))
    }

    /// CKF_TOKEN_INITIALIZED, CKF_USER_PIN_INITIALIZED and the PIN counter flags
    /// (CKF_{USER,SO}_PIN_{COUNT_LOW,FINAL_TRY,LOCKED}).
    pub fn token_flags(&self) -> Result<CK_FLAGS> {
        if self.store.token()?.is_none() {
            return Ok(0);
        }
        let mut flags = CKF_TOKEN_INITIALIZED;
        if let Some(so) = self.store.pin(Role::So)? {
            flags |= self.counter_flags(
                so.failures,
                [
                    CKF_SO_PIN_COUNT_LOW,
                    CKF_SO_PIN_FINAL_TRY,
                    CKF_SO_PIN_LOCKED,
                ],
            );
        }
        if let Some(user) = self.store.pin(Role::User)? {
            flags |= CKF_USER_PIN_INITIALIZED
                | self.counter_flags(
                    user.failures,
                    [
                        CKF_USER_PIN_COUNT_LOW,
                        CKF_USER_PIN_FINAL_TRY,
                        CKF_USER_PIN_LOCKED,
                    ],
                );
        }
        Ok(flags)
    }

    fn counter_flags(&self, failures: u32, [low, final_try, locked]: [CK_FLAGS; 3]) -> CK_FLAGS {
        let left = self.max_attempts.saturating_sub(failures);
        let mut f = 0;
        if failures > 0 {
            f |= low;
        }
        if left == 1 {
            f |= final_try;
        }
        if left == 0 {
            f |= locked;
        }
        f
    }

    /// C_InitToken: on a fresh token set the SO PIN; on an initialized one the SO PIN must
    /// match (failures count toward lockout). Creates a new master key, destroys every
    /// object and the user PIN.
    ///
    /// The token uid is renewed too, so blobs wrapped before cannot be replayed into the
    /// new token. Meta rows other than the local backend's are left alone.
    pub fn init_token(&self, so_pin: &[u8], label: &str) -> Result<()> {
        // C_InitToken has no CKR_PIN_LEN_RANGE in its list (PKCS#11 2.40/3.0 §5.5): an SO
        // PIN of impossible length is CKR_PIN_INCORRECT, as in SoftHSM (and not counted).
        check_pin_len(so_pin).map_err(|_| Error::from(CKR_PIN_INCORRECT))?;
        let label = label.trim_end_matches([' ', '\0']).to_string();
        // The new identity, key and SO record are prepared before taking the lock.
        let uid: [u8; 16] = random()?;
        let master = MasterKey(Zeroizing::new(random()?));
        let so_rec = new_pin_record(&uid, Role::So, so_pin, &master, self.kdf)?;
        let token = TokenRecord {
            uid,
            kcv: key_check_value(&master, &uid),
            label,
        };
        let pre = self.precompute(Role::So, so_pin)?;
        self.store
            .transaction(|tx| {
                if tx.token()?.is_some() {
                    if let Err(e) = self.check_in_tx(tx, Role::So, so_pin, pre)?.1.into_result() {
                        // Commit the counter update, then report.
                        return Ok(Err(e));
                    }
                }
                tx.clear_objects()?;
                tx.delete_meta(Role::User.meta_key())?;
                tx.set_meta(META_TOKEN, &token.encode())?;
                tx.set_meta(Role::So.meta_key(), &so_rec.encode())?;
                Ok(Ok(()))
            })
            .and_then(|r| r)
    }

    /// C_Login: verify the PIN (CKR_PIN_INCORRECT, CKR_PIN_LOCKED,
    /// CKR_USER_PIN_NOT_INITIALIZED) and return the unwrapped master key.
    ///
    /// CKU_CONTEXT_SPECIFIC is checked as the user. On a token never initialized the
    /// user gets CKR_USER_PIN_NOT_INITIALIZED and the SO CKR_PIN_INCORRECT (there is no SO
    /// PIN a guess could match). The attempt that reaches the limit answers
    /// CKR_PIN_INCORRECT; every later one CKR_PIN_LOCKED, even with the right PIN.
    pub fn login(&self, user: CK_USER_TYPE, pin: &[u8]) -> Result<MasterKey> {
        let role = Role::from_user_type(user)?;
        // C_Login has no CKR_PIN_LEN_RANGE (§5.6): a PIN no record can match is simply
        // incorrect, and not counted, since it cannot be a guess.
        check_pin_len(pin).map_err(|_| Error::from(CKR_PIN_INCORRECT))?;
        Ok(self.authenticate(role, pin)?.1)
    }

    /// C_InitPIN (SO logged in, holding `master`): set or reset the user PIN, unlocking it.
    pub fn init_pin(&self, master: &MasterKey, pin: &[u8]) -> Result<()> {
        check_pin_len(pin)?;
        let token = self.current_token(&*self.store, master)?;
        let rec = new_pin_record(&token.uid, Role::User, pin, master, self.kdf)?;
        self.store.transaction(|tx| {
            let now = self.current_token(tx, master)?;
            if now.uid != token.uid {
                return Err(stale_master());
            }
            tx.set_meta(Role::User.meta_key(), &rec.encode())
        })
    }

    /// C_SetPIN for `user` (CKU_USER or CKU_SO): old PIN verified (counts failures).
    pub fn set_pin(&self, user: CK_USER_TYPE, old: &[u8], new: &[u8]) -> Result<()> {
        let role = Role::from_user_type(user)?;
        check_pin_len(old)?;
        check_pin_len(new)?;
        let (token, master) = self.authenticate(role, old)?;
        let rec = new_pin_record(&token.uid, role, new, &master, self.kdf)?;
        self.store.transaction(|tx| {
            // Re-initialized in between: `master` is no longer the token's.
            let now = self.current_token(tx, &master)?;
            if now.uid != token.uid {
                return Err(stale_master());
            }
            tx.set_meta(role.meta_key(), &rec.encode())
        })
    }

    /// Wrap an object's secret under the master key, bound to token and `object_uid`.
    ///
    /// The AES-GCM key is set up per call: wrap and unwrap run about once per object per
    /// process, so caching buys nothing worth keeping another copy of the key for.
    pub fn wrap(&self, master: &MasterKey, object_uid: &[u8; 16], plain: &[u8]) -> Result<Vec<u8>> {
        let token = self
            .current_token(&*self.store, master)
            .map_err(|e| object_error(e, object_uid))?;
        seal_object(master, &token.uid, object_uid, plain)
    }

    /// Unwrap what `wrap` produced; any mismatch (other token, other object, tampering)
    /// is `CKR_DEVICE_ERROR` with a log line naming the object, never the bytes.
    pub fn unwrap(
        &self,
        master: &MasterKey,
        object_uid: &[u8; 16],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let token = self
            .current_token(&*self.store, master)
            .map_err(|e| object_error(e, object_uid))?;
        open_object(master, &token.uid, object_uid, blob)
    }

    /// The token record, provided `master` is still the token's master key.
    fn current_token(&self, r: &impl MetaRead, master: &MasterKey) -> Result<TokenRecord> {
        let token = r.token()?.ok_or_else(stale_master)?;
        let kcv = key_check_value(master, &token.uid);
        constant_time::verify_slices_are_equal(&kcv, &token.kcv).map_err(|_| stale_master())?;
        Ok(token)
    }

    /// The Argon2 run for `pin` against the role's current record, outside the lock.
    /// `None` when there is no record (the transaction reports why). A locked role is
    /// refused here already, without spending an Argon2 run.
    fn precompute(&self, role: Role, pin: &[u8]) -> Result<Option<Attempt>> {
        if self.store.token()?.is_none() {
            return Ok(None);
        }
        let Some(rec) = self.store.pin(role)? else {
            return Ok(None);
        };
        if rec.failures >= self.max_attempts {
            return Err(CKR_PIN_LOCKED.into());
        }
        Ok(Some(Attempt {
            salt: rec.salt,
            kdf: rec.kdf,
            derived: derive(pin, &rec.salt, rec.kdf)?,
        }))
    }

    /// The authoritative, counted PIN check, inside the caller's write transaction.
    /// A wrong PIN writes the incremented counter (the caller must commit); a right one
    /// resets it.
    fn check_in_tx(
        &self,
        tx: &Tx,
        role: Role,
        pin: &[u8],
        pre: Option<Attempt>,
    ) -> Result<(TokenRecord, Verdict)> {
        let not_initialized = || -> Error {
            match role {
                Role::User => CKR_USER_PIN_NOT_INITIALIZED.into(),
                Role::So => CKR_PIN_INCORRECT.into(),
            }
        };
        let token = tx.token()?.ok_or_else(not_initialized)?;
        let mut rec = match (tx.pin(role)?, role) {
            (Some(r), _) => r,
            (None, Role::User) => return Err(CKR_USER_PIN_NOT_INITIALIZED.into()),
            (None, Role::So) => return Err(corrupt("SO PIN (missing)")),
        };
        if rec.failures >= self.max_attempts {
            return Ok((token, Verdict::Locked));
        }
        let derived = match pre {
            Some(a) if a.salt == rec.salt && a.kdf == rec.kdf => a.derived,
            // The record changed since (PIN set elsewhere): derive again, under the lock.
            _ => derive(pin, &rec.salt, rec.kdf)?,
        };
        if constant_time::verify_slices_are_equal(&derived.verifier, &rec.verifier).is_err() {
            rec.failures = rec.failures.saturating_add(1);
            tx.set_meta(role.meta_key(), &rec.encode())?;
            return Ok((token, Verdict::Incorrect));
        }
        let plain = open(&derived.key, &pin_aad(&token.uid, role), &rec.wrapped)
            .map_err(|()| corrupt(&format!("{} PIN (master key does not unwrap)", role.name())))?;
        let key: [u8; 32] = plain[..]
            .try_into()
            .map_err(|_| corrupt(&format!("{} PIN (master key length)", role.name())))?;
        let master = MasterKey(Zeroizing::new(key));
        if rec.failures != 0 {
            rec.failures = 0;
            tx.set_meta(role.meta_key(), &rec.encode())?;
        }
        Ok((token, Verdict::Ok(master)))
    }

    /// Counted PIN check for `role`: one Argon2 run outside the lock, verdict and counter
    /// inside one transaction.
    fn authenticate(&self, role: Role, pin: &[u8]) -> Result<(TokenRecord, MasterKey)> {
        let pre = self.precompute(role, pin)?;
        let (token, verdict) = self
            .store
            .transaction(|tx| self.check_in_tx(tx, role, pin, pre))?;
        Ok((token, verdict.into_result()?))
    }
}

/// The master key a caller holds is not the token's any more: another process ran
/// C_InitToken since this login. The login is void.
fn stale_master() -> Error {
    Error::msg(
        CKR_USER_NOT_LOGGED_IN,
        "local token: re-initialized since login",
    )
}

/// wrap/unwrap report every failure as CKR_DEVICE_ERROR naming the object.
fn object_error(e: Error, object_uid: &[u8; 16]) -> Error {
    Error::device(format!(
        "local token: object {}: {}",
        hex(object_uid),
        e.message().unwrap_or("failed")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredObject;

    const SO: &[u8] = b"so-secret-pin";
    const USER: &[u8] = b"user-pin-1234";

    fn backend(max: u32) -> (tempfile::TempDir, LocalBackend) {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(&d.path().join("tok.sqlite")).unwrap());
        (d, LocalBackend::with_test_kdf(s, max))
    }

    /// Initialized token with a user PIN; returns the master key.
    fn ready(b: &LocalBackend) -> MasterKey {
        b.init_token(SO, "test token      ").unwrap();
        let so = b.login(CKU_SO, SO).unwrap();
        b.init_pin(&so, USER).unwrap();
        so
    }

    fn rv<T>(r: Result<T>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    const USER_COUNTERS: CK_FLAGS =
        CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED;
    const SO_COUNTERS: CK_FLAGS = CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY | CKF_SO_PIN_LOCKED;

    #[test]
    fn uninitialized_token() {
        let (_d, b) = backend(10);
        assert!(!b.is_initialized().unwrap());
        assert_eq!(b.label().unwrap(), None);
        assert_eq!(b.serial_number().unwrap(), None);
        assert_eq!(b.token_flags().unwrap(), 0);
        assert_eq!(rv(b.login(CKU_USER, USER)), CKR_USER_PIN_NOT_INITIALIZED);
        assert_eq!(rv(b.login(CKU_SO, SO)), CKR_PIN_INCORRECT);
        assert_eq!(rv(b.login(7, SO)), CKR_USER_TYPE_INVALID);
        assert_eq!(
            rv(b.set_pin(CKU_USER, USER, SO)),
            CKR_USER_PIN_NOT_INITIALIZED
        );
    }

    #[test]
    fn init_and_login() {
        let (_d, b) = backend(10);
        b.init_token(SO, "test token      ").unwrap();
        assert!(b.is_initialized().unwrap());
        assert_eq!(b.label().unwrap().as_deref(), Some("test token"));
        let serial = b.serial_number().unwrap().unwrap();
        assert_eq!(serial.len(), 16);
        assert!(serial
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_eq!(b.token_flags().unwrap(), CKF_TOKEN_INITIALIZED);
        assert_eq!(rv(b.login(CKU_USER, USER)), CKR_USER_PIN_NOT_INITIALIZED);
        let so = b.login(CKU_SO, SO).unwrap();
        b.init_pin(&so, USER).unwrap();
        assert_eq!(
            b.token_flags().unwrap(),
            CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED
        );
        let user = b.login(CKU_USER, USER).unwrap();
        assert_eq!(*user.0, *so.0, "one master key under both PINs");
        let ctx = b.login(CKU_CONTEXT_SPECIFIC, USER).unwrap();
        assert_eq!(*ctx.0, *so.0);
        assert_eq!(rv(b.login(CKU_SO, USER)), CKR_PIN_INCORRECT);
        assert_eq!(format!("{user:?}"), "MasterKey(..)");
    }

    #[test]
    fn user_lockout_flags_sequence() {
        let (_d, b) = backend(3);
        ready(&b);
        let uflags = || b.token_flags().unwrap() & USER_COUNTERS;
        assert_eq!(uflags(), 0);
        // A success resets the counter.
        assert_eq!(rv(b.login(CKU_USER, b"wrong-pin")), CKR_PIN_INCORRECT);
        assert_eq!(uflags(), CKF_USER_PIN_COUNT_LOW);
        b.login(CKU_USER, USER).unwrap();
        assert_eq!(uflags(), 0);

        assert_eq!(rv(b.login(CKU_USER, b"wrong-pin")), CKR_PIN_INCORRECT);
        assert_eq!(uflags(), CKF_USER_PIN_COUNT_LOW);
        assert_eq!(rv(b.login(CKU_USER, b"wrong-pin")), CKR_PIN_INCORRECT);
        assert_eq!(uflags(), CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
        assert_eq!(rv(b.login(CKU_USER, b"wrong-pin")), CKR_PIN_INCORRECT);
        assert_eq!(uflags(), CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED);
        assert_eq!(
            rv(b.login(CKU_USER, USER)),
            CKR_PIN_LOCKED,
            "right PIN refused"
        );
        assert_eq!(rv(b.login(CKU_USER, b"wrong-pin")), CKR_PIN_LOCKED);
        assert_eq!(rv(b.set_pin(CKU_USER, USER, b"other-pin")), CKR_PIN_LOCKED);
        // The SO is unaffected.
        assert_eq!(b.token_flags().unwrap() & SO_COUNTERS, 0);

        // C_InitPIN by the SO unlocks.
        let so = b.login(CKU_SO, SO).unwrap();
        b.init_pin(&so, b"fresh-pin").unwrap();
        assert_eq!(uflags(), 0);
        assert_eq!(rv(b.login(CKU_USER, USER)), CKR_PIN_INCORRECT);
        b.login(CKU_USER, b"fresh-pin").unwrap();
        assert_eq!(uflags(), 0);
    }

    #[test]
    fn so_lockout() {
        let (_d, b) = backend(2);
        ready(&b);
        assert_eq!(rv(b.login(CKU_SO, b"bad-so-pin")), CKR_PIN_INCORRECT);
        assert_eq!(
            b.token_flags().unwrap() & SO_COUNTERS,
            CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY
        );
        // Failures of C_InitToken count too.
        assert_eq!(rv(b.init_token(b"bad-so-pin", "x")), CKR_PIN_INCORRECT);
        assert_eq!(
            b.token_flags().unwrap() & SO_COUNTERS,
            CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_LOCKED
        );
        assert_eq!(rv(b.login(CKU_SO, SO)), CKR_PIN_LOCKED);
        assert_eq!(rv(b.init_token(SO, "x")), CKR_PIN_LOCKED);
        assert_eq!(
            b.label().unwrap().as_deref(),
            Some("test token"),
            "nothing re-initialized"
        );
        // The user still works.
        b.login(CKU_USER, USER).unwrap();
    }

    #[test]
    fn set_pin_old_new() {
        let (_d, b) = backend(10);
        let master = ready(&b);
        assert_eq!(
            rv(b.set_pin(CKU_USER, b"not-the-pin", b"new-user-pin")),
            CKR_PIN_INCORRECT
        );
        assert_eq!(
            b.token_flags().unwrap() & USER_COUNTERS,
            CKF_USER_PIN_COUNT_LOW
        );
        b.set_pin(CKU_USER, USER, b"new-user-pin").unwrap();
        assert_eq!(b.token_flags().unwrap() & USER_COUNTERS, 0);
        assert_eq!(rv(b.login(CKU_USER, USER)), CKR_PIN_INCORRECT);
        assert_eq!(*b.login(CKU_USER, b"new-user-pin").unwrap().0, *master.0);

        b.set_pin(CKU_SO, SO, b"new-so-pin").unwrap();
        assert_eq!(rv(b.login(CKU_SO, SO)), CKR_PIN_INCORRECT);
        assert_eq!(*b.login(CKU_SO, b"new-so-pin").unwrap().0, *master.0);
        assert_eq!(rv(b.set_pin(9, SO, SO)), CKR_USER_TYPE_INVALID);
    }

    #[test]
    fn pin_length_range() {
        let (_d, b) = backend(10);
        let short = b"123";
        let long = [b'x'; 65];
        assert_eq!(rv(b.init_token(short, "t")), CKR_PIN_INCORRECT);
        assert_eq!(rv(b.init_token(&long, "t")), CKR_PIN_INCORRECT);
        assert!(!b.is_initialized().unwrap());
        b.init_token(b"1234", "t").unwrap();
        let so = b.login(CKU_SO, b"1234").unwrap();
        b.init_pin(&so, &[b'y'; 64]).unwrap();
        for pin in [&short[..], &long[..]] {
            assert_eq!(rv(b.login(CKU_USER, pin)), CKR_PIN_INCORRECT);
            assert_eq!(rv(b.login(CKU_SO, pin)), CKR_PIN_INCORRECT);
            assert_eq!(rv(b.init_pin(&so, pin)), CKR_PIN_LEN_RANGE);
            assert_eq!(rv(b.set_pin(CKU_USER, pin, b"12345")), CKR_PIN_LEN_RANGE);
            assert_eq!(rv(b.set_pin(CKU_USER, &[b'y'; 64], pin)), CKR_PIN_LEN_RANGE);
        }
        // Length errors are not counted as failures.
        assert_eq!(b.token_flags().unwrap() & (USER_COUNTERS | SO_COUNTERS), 0);
        b.login(CKU_USER, &[b'y'; 64]).unwrap();
    }

    #[test]
    fn wrap_unwrap_and_binding() {
        let (_d, b) = backend(10);
        let m = ready(&b);
        let a = [1u8; 16];
        let secret = b"0123456789abcdef0123456789abcdef";
        let blob = b.wrap(&m, &a, secret).unwrap();
        assert_eq!(blob.len(), 1 + NONCE_LEN + secret.len() + TAG_LEN);
        assert_eq!(blob[0], OBJ_BLOB_V1);
        assert_eq!(&b.unwrap(&m, &a, &blob).unwrap()[..], secret);
        assert_ne!(
            b.wrap(&m, &a, secret).unwrap(),
            blob,
            "fresh nonce each time"
        );
        assert!(b
            .unwrap(&m, &a, &b.wrap(&m, &a, b"").unwrap())
            .unwrap()
            .is_empty());

        // Moved to another object.
        let e = b.unwrap(&m, &[2u8; 16], &blob).unwrap_err();
        assert_eq!(e.rv(), CKR_DEVICE_ERROR);
        let msg = e.message().unwrap();
        assert!(msg.contains(&hex(&[2u8; 16])), "{msg}");
        assert!(!msg.contains("0123456789abcdef"), "{msg}");
        // Tampered, truncated, wrong version.
        for i in [0, 1, 20, blob.len() - 1] {
            let mut t = blob.clone();
            t[i] ^= 1;
            assert_eq!(rv(b.unwrap(&m, &a, &t)), CKR_DEVICE_ERROR);
        }
        assert_eq!(rv(b.unwrap(&m, &a, &blob[..20])), CKR_DEVICE_ERROR);
        assert_eq!(rv(b.unwrap(&m, &a, &[])), CKR_DEVICE_ERROR);

        // Same key, another token uid: the token binding alone refuses it.
        let uid = b.token_uid().unwrap().unwrap();
        let mut other = uid;
        other[0] ^= 0x80;
        let moved = seal_object(&m, &other, &a, secret).unwrap();
        assert_eq!(&open_object(&m, &other, &a, &moved).unwrap()[..], secret);
        assert_eq!(rv(open_object(&m, &uid, &a, &moved)), CKR_DEVICE_ERROR);

        // Another token altogether.
        let (_d2, b2) = backend(10);
        let m2 = ready(&b2);
        assert_eq!(rv(b2.unwrap(&m2, &a, &blob)), CKR_DEVICE_ERROR);
        // A master key from another token is refused before any crypto.
        assert_eq!(rv(b2.wrap(&m, &a, secret)), CKR_DEVICE_ERROR);
    }

    #[test]
    fn reinit_wipes_and_invalidates() {
        let (_d, b) = backend(10);
        let old = ready(&b);
        let uid = [7u8; 16];
        let blob = b.wrap(&old, &uid, b"secret-key-bytes").unwrap();
        b.store()
            .transaction(|tx| {
                tx.insert_object(&StoredObject {
                    uid,
                    attrs: vec![1],
                    secret: Some(blob.clone()),
                })
            })
            .unwrap();
        let old_serial = b.serial_number().unwrap();

        assert_eq!(rv(b.init_token(b"wrong-so-pin", "new")), CKR_PIN_INCORRECT);
        assert_eq!(
            b.store().objects().unwrap().len(),
            1,
            "wrong PIN changes nothing"
        );
        b.init_token(SO, "new label").unwrap();

        assert!(b.store().objects().unwrap().is_empty());
        assert_eq!(b.label().unwrap().as_deref(), Some("new label"));
        assert_ne!(b.serial_number().unwrap(), old_serial);
        assert_eq!(
            b.token_flags().unwrap(),
            CKF_TOKEN_INITIALIZED,
            "user PIN gone, counters reset"
        );
        assert_eq!(rv(b.login(CKU_USER, USER)), CKR_USER_PIN_NOT_INITIALIZED);
        let new = b.login(CKU_SO, SO).unwrap();
        assert_ne!(*new.0, *old.0);
        assert_eq!(rv(b.unwrap(&new, &uid, &blob)), CKR_DEVICE_ERROR);
        // The old login is void.
        assert_eq!(rv(b.unwrap(&old, &uid, &blob)), CKR_DEVICE_ERROR);
        assert_eq!(rv(b.wrap(&old, &uid, b"x")), CKR_DEVICE_ERROR);
        assert_eq!(rv(b.init_pin(&old, USER)), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(b.token_flags().unwrap() & CKF_USER_PIN_INITIALIZED, 0);
    }

    #[test]
    fn stolen_store_holds_no_secrets() {
        let (d, b) = backend(10);
        let m = ready(&b);
        let plain = b"PLAINTEXT-DEK-MATERIAL-0123456789";
        let uid = [3u8; 16];
        let blob = b.wrap(&m, &uid, plain).unwrap();
        b.store()
            .transaction(|tx| {
                tx.insert_object(&StoredObject {
                    uid,
                    attrs: vec![],
                    secret: Some(blob),
                })
            })
            .unwrap();
        b.set_pin(CKU_USER, USER, b"second-user-pin").unwrap();
        let mut bytes = Vec::new();
        for e in std::fs::read_dir(d.path()).unwrap() {
            bytes.extend(std::fs::read(e.unwrap().path()).unwrap());
        }
        assert!(bytes.len() > 4096);
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"test token"), "sanity: the label is there in clear");
        assert!(!has(&m.0[..]), "master key");
        assert!(!has(&m.0[..8]), "master key prefix");
        assert!(!has(plain), "wrapped plaintext");
        assert!(!has(SO) && !has(USER) && !has(b"second-user-pin"), "PINs");
    }

    #[test]
    fn two_processes_share_one_counter() {
        // Parallel guesses through two stores on one file (two processes): exactly
        // `max` of them get a verdict, every other one sees the lock.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tok.sqlite");
        let b1 = Arc::new(LocalBackend::with_test_kdf(
            Arc::new(Store::open(&p).unwrap()),
            5,
        ));
        ready(&b1);
        let b2 = Arc::new(LocalBackend::with_test_kdf(
            Arc::new(Store::open(&p).unwrap()),
            5,
        ));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let b = if i % 2 == 0 { b1.clone() } else { b2.clone() };
                std::thread::spawn(move || {
                    (0..3)
                        .map(|_| rv(b.login(CKU_USER, b"guess-pin")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<CK_RV> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(all.iter().filter(|&&r| r == CKR_PIN_INCORRECT).count(), 5);
        assert_eq!(
            all.iter().filter(|&&r| r == CKR_PIN_LOCKED).count(),
            all.len() - 5
        );
        assert_ne!(b2.token_flags().unwrap() & CKF_USER_PIN_LOCKED, 0);
        assert_eq!(rv(b1.login(CKU_USER, USER)), CKR_PIN_LOCKED);
    }

    #[test]
    fn pin_changed_elsewhere_between_derive_and_check() {
        // The precomputed Argon2 run is for an older record: the check derives again.
        let (_d, b) = backend(10);
        ready(&b);
        let pre = b.precompute(Role::User, USER).unwrap();
        b.set_pin(CKU_USER, USER, b"changed-pin").unwrap();
        let (_, v) = b
            .store()
            .transaction(|tx| b.check_in_tx(tx, Role::User, b"changed-pin", pre))
            .unwrap();
        assert!(matches!(v, Verdict::Ok(_)));
    }

    #[test]
    fn records_round_trip_and_reject_damage() {
        let t = TokenRecord {
            uid: [1; 16],
            kcv: [2; 32],
            label: "lbl".into(),
        };
        assert_eq!(TokenRecord::decode(&t.encode()).unwrap(), t);
        let p = PinRecord {
            kdf: KdfParams::default(),
            salt: [3; 16],
            verifier: [4; 32],
            failures: 2,
            wrapped: vec![5; 60],
        };
        let enc = p.encode();
        assert_eq!(PinRecord::decode(&enc).unwrap(), p);
        assert_eq!(
            rv(PinRecord::decode(&enc[..enc.len() - 1])),
            CKR_DEVICE_ERROR
        );
        let mut longer = enc.clone();
        longer.push(0);
        assert_eq!(rv(PinRecord::decode(&longer)), CKR_DEVICE_ERROR);
        let mut v2 = enc.clone();
        v2[0] = 2;
        assert_eq!(rv(PinRecord::decode(&v2)), CKR_TOKEN_NOT_RECOGNIZED);
        let mut huge = enc;
        huge[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(rv(PinRecord::decode(&huge)), CKR_DEVICE_ERROR);
    }

    #[test]
    fn default_params_login_time() {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(&d.path().join("tok.sqlite")).unwrap());
        let b = LocalBackend::new(s);
        assert_eq!(b.max_attempts(), DEFAULT_MAX_ATTEMPTS);
        b.init_token(SO, "t").unwrap();
        let rec = b.store().pin(Role::So).unwrap().unwrap();
        assert_eq!(
            rec.kdf,
            KdfParams {
                m_kib: 19456,
                t_cost: 2,
                p_cost: 1
            }
        );
        let t0 = std::time::Instant::now();
        b.login(CKU_SO, SO).unwrap();
        eprintln!("login with default Argon2id parameters: {:?}", t0.elapsed());
    }
}
