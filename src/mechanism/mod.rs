//! Mechanisms: the registry (source of C_GetMechanismList/Info and of dispatch) and the
//! local crypto on aws-lc-rs. Keys are prepared once into a [`LocalKey`] and shared.
//!
//! This layer knows nothing of sessions, handles or attributes: it takes a typed
//! [`Mechanism`] and key material, and returns typed results or spec return codes.

use crate::error::{Error, Result};
use cryptoki_sys::*;
use std::sync::Arc;
use zeroize::Zeroizing;

mod asym;
mod sym;

/// Typed mechanism parameters, parsed from `CK_MECHANISM.pParameter` by `ffi/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MechParam {
    /// No parameter (pParameter NULL / ulParameterLen 0).
    None,
    /// A raw byte string: the IV of CBC/CBC-PAD/ECB-less modes, the optional IV of
    /// AES-KW/KWP, or any parameter passed as plain bytes.
    Bytes(Vec<u8>),
    /// `CK_GCM_PARAMS`.
    Gcm {
        iv: GcmIv,
        aad: Vec<u8>,
        tag_bits: u64,
    },
    /// `CK_AES_CTR_PARAMS`.
    Ctr { counter_bits: u64, cb: [u8; 16] },
    /// `CK_RSA_PKCS_PSS_PARAMS`.
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: u64,
    },
    /// `CK_RSA_PKCS_OAEP_PARAMS` (label = source data when source is CKZ_DATA_SPECIFIED).
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        label: Vec<u8>,
    },
    /// A `CK_ULONG` parameter (e.g. `CK_MAC_GENERAL_PARAMS` output length).
    Ulong(u64),
}

/// A GCM IV: 96 bits inline (the usual length: no allocation per C_EncryptInit), any
/// other length on the heap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcmIv {
    Std([u8; 12]),
    Other(Vec<u8>),
}

impl From<&[u8]> for GcmIv {
    fn from(v: &[u8]) -> GcmIv {
        match <[u8; 12]>::try_from(v) {
            Ok(a) => GcmIv::Std(a),
            Err(_) => GcmIv::Other(v.to_vec()),
        }
    }
}

impl std::ops::Deref for GcmIv {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            GcmIv::Std(a) => a,
            GcmIv::Other(v) => v,
        }
    }
}

/// A growable buffer of secret bytes (an operation's buffered input, a result on its
/// way out), zeroized on drop like `Zeroizing<Vec<u8>>` — but only when it ever held
/// memory. `Zeroizing` of an empty `Vec` calls `memset(0x1, 0, 0)` on the dangling
/// pointer, and glibc's AVX-512 memset does that with a masked store at address 1: a
/// fault-suppression microcode assist of hundreds of cycles, 12–16 % of a 64-byte
/// C_EncryptInit + C_Encrypt (perf, issue 6). Every operation drops one.
#[derive(Default)]
pub struct SecretBuf(Vec<u8>);

impl SecretBuf {
    pub fn new() -> SecretBuf {
        SecretBuf(Vec::new())
    }
    pub fn with_capacity(n: usize) -> SecretBuf {
        SecretBuf(Vec::with_capacity(n))
    }
    /// The bytes, no longer zeroized on drop: they are the caller's now.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl From<Vec<u8>> for SecretBuf {
    fn from(v: Vec<u8>) -> SecretBuf {
        SecretBuf(v)
    }
}

impl std::ops::Deref for SecretBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for SecretBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Zeroize and clear `v`, skipping the memset when it has no memory (see [`SecretBuf`]).
pub fn wipe(v: &mut Vec<u8>) {
    if v.capacity() != 0 {
        zeroize::Zeroize::zeroize(v);
    }
}

/// A mechanism with its typed parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mechanism {
    pub mech: CK_MECHANISM_TYPE,
    pub param: MechParam,
}

/// Named curves the module supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
    /// secp256k1 (SEC 2, OID 1.3.132.0.10): KMS ECC_SECG_P256K1.
    K256,
}

/// Raw key material, as imported or generated. Secret parts are zeroized on drop.
#[derive(Clone)]
pub enum KeyMaterial {
    /// AES or generic secret key value (`key_type` is CKK_AES or CKK_GENERIC_SECRET).
    Secret {
        key_type: CK_KEY_TYPE,
        value: Zeroizing<Vec<u8>>,
    },
    /// RSA private key as PKCS#1 `RSAPrivateKey` DER.
    RsaPrivate { der: Zeroizing<Vec<u8>> },
    /// RSA public key: big-endian modulus and public exponent, no leading zeros.
    RsaPublic { n: Vec<u8>, e: Vec<u8> },
    /// EC private key: big-endian scalar (field width) and uncompressed public point.
    EcPrivate {
        curve: Curve,
        d: Zeroizing<Vec<u8>>,
        point: Vec<u8>,
    },
    /// EC public key: uncompressed point 04||X||Y.
    EcPublic { curve: Curve, point: Vec<u8> },
    /// A private key held by a KMS: `public` is its public half (RsaPublic or EcPublic),
    /// `key` signs digests and decrypts remotely.
    Remote {
        public: Box<KeyMaterial>,
        key: Arc<dyn RemoteKey>,
    },
}

/// The KMS signing algorithms a remote key is asked for (the input is a digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteSign {
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
}

/// The KMS decryption algorithms a remote key is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteDecrypt {
    OaepSha1,
    OaepSha256,
}

/// A private key whose operations run in a KMS (one remote call each).
pub trait RemoteKey: Send + Sync {
    /// Sign a digest (for ECDSA: already adapted to the algorithm's length). ECDSA
    /// signatures come back DER-encoded, as KMS returns them.
    fn sign_digest(&self, alg: RemoteSign, digest: &[u8]) -> Result<Vec<u8>>;
    /// Decrypt one ciphertext.
    fn decrypt(&self, alg: RemoteDecrypt, ct: &[u8]) -> Result<Vec<u8>>;
    /// At C_SignInit: can this key sign with `alg` at all? A key with one algorithm
    /// (a Cloud KMS version) refuses the others here, with the code `sign_digest` would
    /// answer, so that the caller learns it at init (PKCS#11 5.2) and no KMS call or
    /// buffered input is wasted. AWS KMS keys take every algorithm of their key spec.
    fn check_sign(&self, _alg: RemoteSign) -> Result<()> {
        Ok(())
    }
    /// At C_DecryptInit: the same for `decrypt`.
    fn check_decrypt(&self, _alg: RemoteDecrypt) -> Result<()> {
        Ok(())
    }
}

/// Plain RSA components (big-endian, no leading zeros). Private ones zeroize.
pub struct RsaComponents {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Zeroizing<Vec<u8>>,
    pub p: Zeroizing<Vec<u8>>,
    pub q: Zeroizing<Vec<u8>>,
    pub dp: Zeroizing<Vec<u8>>,
    pub dq: Zeroizing<Vec<u8>>,
    pub qinv: Zeroizing<Vec<u8>>,
}

/// A key prepared once for local crypto (aws-lc objects built at most once, then
/// shared by every operation and thread).
pub struct LocalKey {
    material: KeyMaterial,
    /// RSA/EC objects (asym.rs), built once here; `None` for secret keys.
    asym: Option<asym::AsymPrepared>,
    /// Secret-key objects (AES schedules, GCM/CMAC/HMAC keys), built lazily by sym.rs.
    sym: sym::SymCache,
}

impl LocalKey {
    /// Validate `material` and prepare it. Bad material is `CKR_ATTRIBUTE_VALUE_INVALID`
    /// (or `CKR_KEY_SIZE_RANGE` for a size the module does not support).
    pub fn new(material: KeyMaterial) -> Result<Arc<LocalKey>> {
        let asym = asym::prepare(&material)?;
        Ok(Arc::new(LocalKey {
            material,
            asym,
            sym: sym::SymCache::default(),
        }))
    }

    /// The material this key was built from.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }
}

/// A multi-part encrypt or decrypt operation. Outputs are whole: `update` returns the
/// bytes that are final so far, `finish` the rest.
pub trait Cipher: Send {
    /// C_EncryptUpdate / C_DecryptUpdate.
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>>;
    /// C_EncryptFinal / C_DecryptFinal.
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// An upper bound of the output of `update` with `input_len` more bytes, followed by
    /// `finish` when `finish` is true (so a single-part call is `(n, true)` and a final
    /// call `(0, true)`), if known without computing. Lets a length query (NULL buffer)
    /// answer without doing the work twice.
    fn max_output(&self, _input_len: usize, _finish: bool) -> Option<usize> {
        None
    }

    /// C_Encrypt / C_Decrypt straight into the caller's buffer `out`, which holds at
    /// least `max_output(input.len(), true)` bytes: the number of bytes written.
    /// `None` when this operation has no such path (the caller then uses `oneshot`).
    /// On an error `out` holds nothing usable (a failed decryption leaves zeros).
    fn oneshot_into(&mut self, _input: &[u8], _out: &mut [u8]) -> Option<Result<usize>> {
        None
    }

    /// The prepared key this operation holds, handed back when it has ended, so the
    /// session can give it to its next operation without touching the key's shared
    /// reference count (two threads using one key would both write that cache line).
    fn into_key(self: Box<Self>) -> Option<Arc<LocalKey>> {
        None
    }

    /// C_Encrypt / C_Decrypt: the whole input at once.
    fn oneshot(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = self.update(input)?;
        out.extend(self.finish()?);
        Ok(out)
    }
}

/// A sign (or MAC) operation.
pub trait Signer: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// Single-part C_Sign. Single-part-only mechanisms (CKM_RSA_PKCS, CKM_ECDSA,
    /// CKM_RSA_PKCS_PSS, CKM_RSA_PKCS_OAEP) have no MULTI flag in the registry; the api
    /// layer refuses their Update calls, so their `update` may simply buffer.
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.update(data)?;
        self.finish()
    }
    /// The signature length this operation will produce.
    fn sig_len(&self) -> usize;
}

/// A verify (or MAC check) operation.
pub trait Verifier: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// `CKR_SIGNATURE_INVALID` or `CKR_SIGNATURE_LEN_RANGE` on failure.
    fn finish(&mut self, signature: &[u8]) -> Result<()>;
    fn oneshot(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        self.update(data)?;
        self.finish(signature)
    }
}

/// A digest operation.
pub trait Digester: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Digest the value of a secret key (C_DigestKey).
    fn update_key(&mut self, key: &LocalKey) -> Result<()>;
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// The digest length in bytes.
    fn output_len(&self) -> usize;
}

/// One row of the registry.
#[derive(Clone, Copy, Debug)]
pub struct MechInfo {
    pub mech: CK_MECHANISM_TYPE,
    /// Sizes in the spec's units for this mechanism (bytes for AES/HMAC, bits for RSA/EC).
    pub min_key: u64,
    pub max_key: u64,
    pub flags: CK_FLAGS,
}

/// Every mechanism the module offers, in C_GetMechanismList order.
pub fn registry() -> &'static [MechInfo] {
    use std::sync::LazyLock;
    static ALL: LazyLock<Vec<MechInfo>> = LazyLock::new(|| {
        let mut v = sym::MECHANISMS.to_vec();
        v.extend_from_slice(asym::MECHANISMS);
        v
    });
    &ALL
}

/// Look one mechanism up; `CKR_MECHANISM_INVALID` if absent. Every operation init
/// asks, so this is a binary search, not a scan of the registry.
pub fn info(mech: CK_MECHANISM_TYPE) -> Result<&'static MechInfo> {
    use std::sync::LazyLock;
    static SORTED: LazyLock<Vec<&'static MechInfo>> = LazyLock::new(|| {
        let mut v: Vec<&'static MechInfo> = registry().iter().collect();
        v.sort_by_key(|m| m.mech);
        v
    });
    SORTED
        .binary_search_by_key(&mech, |m| m.mech)
        .map(|i| SORTED[i])
        .map_err(|_| Error::new(CKR_MECHANISM_INVALID))
}

fn is_secret(key: &LocalKey) -> bool {
    matches!(key.material(), KeyMaterial::Secret { .. })
}

/// Start an encryption (also used by C_WrapKey). Checks mechanism vs key type
/// (`CKR_KEY_TYPE_INCONSISTENT`) and parameters (`CKR_MECHANISM_PARAM_INVALID`).
pub fn encrypt_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Cipher>> {
    info(m.mech)?;
    if is_secret(key) {
        sym::encrypt_init(m, key)
    } else {
        asym::encrypt_init(m, key)
    }
}

/// [`encrypt_init`] or [`decrypt_init`] with a key reference the operation keeps
/// (no reference count change for a secret key).
pub fn cipher_init(m: &Mechanism, key: Arc<LocalKey>, encrypt: bool) -> Result<Box<dyn Cipher>> {
    info(m.mech)?;
    match (is_secret(&key), encrypt) {
        (true, _) => sym::cipher_init(m, key, encrypt),
        (false, true) => asym::encrypt_init(m, &key),
        (false, false) => asym::decrypt_init(m, &key),
    }
}

/// Start a decryption (also used by C_UnwrapKey).
pub fn decrypt_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Cipher>> {
    info(m.mech)?;
    if is_secret(key) {
        sym::decrypt_init(m, key)
    } else {
        asym::decrypt_init(m, key)
    }
}

/// Start a signature or MAC.
pub fn sign_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Signer>> {
    info(m.mech)?;
    if is_secret(key) {
        sym::sign_init(m, key)
    } else {
        asym::sign_init(m, key)
    }
}

/// Start a verification.
pub fn verify_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Verifier>> {
    info(m.mech)?;
    if is_secret(key) {
        sym::verify_init(m, key)
    } else {
        asym::verify_init(m, key)
    }
}

/// Start a digest.
pub fn digest_init(m: &Mechanism) -> Result<Box<dyn Digester>> {
    info(m.mech)?;
    sym::digest_init(m)
}

/// Fill `buf` from the system RNG.
pub fn random(buf: &mut [u8]) -> Result<()> {
    sym::random(buf)
}

/// Generate a fresh secret of `len` bytes.
pub fn generate_secret(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut v = Zeroizing::new(vec![0u8; len]);
    random(&mut v)?;
    Ok(v)
}

pub use asym::{
    curve_from_params, curve_params, ec_public_point, generate_ec, generate_rsa, public_from_spki,
    public_key_info, rsa_components, rsa_private_from_components,
};

/// Field size in bytes of a curve (32, 48, 66).
pub fn curve_field_len(c: Curve) -> usize {
    match c {
        Curve::P256 => 32,
        Curve::P384 => 48,
        Curve::P521 => 66,
        Curve::K256 => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary search answers exactly the registry's rows, each mechanism once.
    #[test]
    fn info_finds_every_row_and_nothing_else() {
        for r in registry() {
            assert_eq!(
                registry().iter().filter(|o| o.mech == r.mech).count(),
                1,
                "duplicate {:#x}",
                r.mech
            );
            assert!(std::ptr::eq(info(r.mech).expect("in registry"), r));
        }
        for absent in [0, 0xdead_beef, CKM_VENDOR_DEFINED, CK_MECHANISM_TYPE::MAX] {
            if registry().iter().all(|r| r.mech != absent) {
                assert_eq!(
                    info(absent).err().map(|e| e.rv()),
                    Some(CKR_MECHANISM_INVALID)
                );
            }
        }
    }
}
