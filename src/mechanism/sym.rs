//! Secret-key mechanisms on aws-lc-rs: AES (GCM, CBC, CBC-PAD, CTR, ECB, KW, KWP, CMAC),
//! HMAC, digests, and the RNG.
//!
//! Every aws-lc key object (AES schedules per mode, the GCM key and its GHASH key, the
//! CMAC and HMAC keys) is built at most once per [`LocalKey`], on first use, and then
//! shared by every operation and thread through [`SymCache`].

use super::{
    Cipher, Digester, KeyMaterial, LocalKey, MechInfo, MechParam, Mechanism, SecretBuf, Signer,
    Verifier,
};
use crate::error::{Error, Result};
use aws_lc_rs::cipher::{
    Algorithm as CipherAlg, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext,
    UnboundCipherKey,
};
use aws_lc_rs::{aead, cipher, cmac, constant_time, digest, hmac, rand};
use cryptoki_sys::*;
use ghash::universal_hash::{KeyInit, UniversalHash};
use ghash::GHash;
use std::sync::{Arc, OnceLock};
use zeroize::{Zeroize, Zeroizing};

const BLOCK: usize = 16;
/// Generic secret / HMAC key sizes in bytes.
const SECRET_MIN: u64 = 1;
const SECRET_MAX: u64 = 512;
/// SP 800-38D: plaintext at most 2^39 - 256 bits.
const GCM_MAX_DATA: u64 = (1 << 36) - 32;
/// GCM IV lengths accepted, in bytes.
const GCM_IV_MAX: usize = 256;
/// GCM tag lengths accepted (SP 800-38D §5.2.1.2), in bits.
const GCM_TAG_BITS: [u64; 7] = [32, 64, 96, 104, 112, 120, 128];
/// RFC 3394 §2.2.3.1 default IV and RFC 5649 §3 alternative IV prefix.
const KW_IV: [u8; 8] = [0xA6; 8];
const KWP_IV: [u8; 4] = [0xA6, 0x59, 0x59, 0xA6];

const ED: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP;
const SV: CK_FLAGS = CKF_SIGN | CKF_VERIFY;

const fn row(mech: CK_MECHANISM_TYPE, min_key: u64, max_key: u64, flags: CK_FLAGS) -> MechInfo {
    MechInfo {
        mech,
        min_key,
        max_key,
        flags,
    }
}

/// Registry rows for the mechanisms of this file (key sizes in bytes).
pub(super) const MECHANISMS: &[MechInfo] = &[
    row(CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE),
    row(CKM_AES_ECB, 16, 32, ED),
    row(CKM_AES_CBC, 16, 32, ED),
    row(CKM_AES_CBC_PAD, 16, 32, ED),
    row(CKM_AES_CTR, 16, 32, ED),
    row(CKM_AES_GCM, 16, 32, ED),
    row(CKM_AES_KEY_WRAP, 16, 32, ED),
    row(CKM_AES_KEY_WRAP_PAD, 16, 32, ED),
    row(CKM_AES_KEY_WRAP_KWP, 16, 32, ED),
    row(CKM_AES_CMAC, 16, 32, SV),
    row(CKM_AES_CMAC_GENERAL, 16, 32, SV),
    row(
        CKM_GENERIC_SECRET_KEY_GEN,
        SECRET_MIN,
        SECRET_MAX,
        CKF_GENERATE,
    ),
    row(CKM_SHA_1_HMAC, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA_1_HMAC_GENERAL, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA224_HMAC, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA224_HMAC_GENERAL, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA256_HMAC, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA256_HMAC_GENERAL, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA384_HMAC, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA384_HMAC_GENERAL, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA512_HMAC, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA512_HMAC_GENERAL, SECRET_MIN, SECRET_MAX, SV),
    row(CKM_SHA_1, 0, 0, CKF_DIGEST),
    row(CKM_SHA224, 0, 0, CKF_DIGEST),
    row(CKM_SHA256, 0, 0, CKF_DIGEST),
    row(CKM_SHA384, 0, 0, CKF_DIGEST),
    row(CKM_SHA512, 0, 0, CKF_DIGEST),
];

// ---------------------------------------------------------------------------------------
// Prepared keys
// ---------------------------------------------------------------------------------------

/// The AES-GCM key: aws-lc's AEAD key (96-bit IV, full tag) and the GHASH key H for the
/// general path (other IV lengths, truncated tags on decrypt).
struct GcmKey {
    aead: aead::LessSafeKey,
    ghash: GHash,
}

/// Secret-key objects prepared on first use and then shared (a field of [`LocalKey`]).
#[derive(Default)]
pub(super) struct SymCache {
    ecb_enc: OnceLock<EncryptingKey>,
    ecb_dec: OnceLock<DecryptingKey>,
    cbc_enc: OnceLock<EncryptingKey>,
    cbc_dec: OnceLock<DecryptingKey>,
    ctr: OnceLock<EncryptingKey>,
    gcm: OnceLock<GcmKey>,
    cmac: OnceLock<cmac::Key>,
    /// One per hash, indexed like [`HMACS`].
    hmac: [OnceLock<hmac::Key>; 5],
}

/// `OnceLock::get_or_try_init` on stable: a lost race only builds a duplicate.
fn cached<T>(cell: &OnceLock<T>, make: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(v) = cell.get() {
        return Ok(v);
    }
    let v = make()?;
    Ok(cell.get_or_init(|| v))
}

/// aws-lc failures on inputs already validated are internal errors.
fn lc<E>(_: E) -> Error {
    Error::general("aws-lc operation failed")
}

/// The AES key value of `key`: `CKR_KEY_TYPE_INCONSISTENT` if not an AES key,
/// `CKR_KEY_SIZE_RANGE` if not 16, 24 or 32 bytes.
fn aes_value(key: &LocalKey) -> Result<&[u8]> {
    match key.material() {
        KeyMaterial::Secret { key_type, value } if *key_type == CKK_AES => match value.len() {
            16 | 24 | 32 => Ok(value),
            _ => Err(CKR_KEY_SIZE_RANGE.into()),
        },
        _ => Err(CKR_KEY_TYPE_INCONSISTENT.into()),
    }
}

fn unbound(key: &LocalKey) -> Result<UnboundCipherKey> {
    let v = aes_value(key)?;
    let alg: &'static CipherAlg = match v.len() {
        16 => &cipher::AES_128,
        24 => &cipher::AES_192,
        _ => &cipher::AES_256,
    };
    UnboundCipherKey::new(alg, v).map_err(lc)
}

fn ecb_enc(key: &LocalKey) -> Result<&EncryptingKey> {
    cached(&key.sym.ecb_enc, || {
        EncryptingKey::ecb(unbound(key)?).map_err(lc)
    })
}

fn ecb_dec(key: &LocalKey) -> Result<&DecryptingKey> {
    cached(&key.sym.ecb_dec, || {
        DecryptingKey::ecb(unbound(key)?).map_err(lc)
    })
}

fn cbc_enc(key: &LocalKey) -> Result<&EncryptingKey> {
    cached(&key.sym.cbc_enc, || {
        EncryptingKey::cbc(unbound(key)?).map_err(lc)
    })
}

fn cbc_dec(key: &LocalKey) -> Result<&DecryptingKey> {
    cached(&key.sym.cbc_dec, || {
        DecryptingKey::cbc(unbound(key)?).map_err(lc)
    })
}

fn ctr_key(key: &LocalKey) -> Result<&EncryptingKey> {
    cached(&key.sym.ctr, || {
        EncryptingKey::ctr(unbound(key)?).map_err(lc)
    })
}

fn gcm_key(key: &LocalKey) -> Result<&GcmKey> {
    cached(&key.sym.gcm, || {
        let v = aes_value(key)?;
        let alg = match v.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            _ => &aead::AES_256_GCM,
        };
        let aead = aead::LessSafeKey::new(aead::UnboundKey::new(alg, v).map_err(lc)?);
        let mut h = Zeroizing::new([0u8; BLOCK]);
        ecb_block(ecb_enc(key)?, &mut h[..])?;
        let ghash = GHash::new(ghash::Key::from_slice(&h[..]));
        Ok(GcmKey { aead, ghash })
    })
}

fn cmac_key(key: &LocalKey) -> Result<&cmac::Key> {
    cached(&key.sym.cmac, || {
        let v = aes_value(key)?;
        let alg = match v.len() {
            16 => cmac::AES_128,
            24 => cmac::AES_192,
            _ => cmac::AES_256,
        };
        cmac::Key::new(alg, v).map_err(lc)
    })
}

/// AES-ECB over whole blocks (the raw block cipher for KW, KWP and the GCM general path).
fn ecb_block(k: &EncryptingKey, data: &mut [u8]) -> Result<()> {
    k.less_safe_encrypt(data, EncryptionContext::None)
        .map(|_| ())
        .map_err(lc)
}

fn ecb_block_inv(k: &DecryptingKey, data: &mut [u8]) -> Result<()> {
    k.decrypt(data, DecryptionContext::None)
        .map(|_| ())
        .map_err(lc)
}

// ---------------------------------------------------------------------------------------
// Parameters and dispatch helpers
// ---------------------------------------------------------------------------------------

/// An error for a mechanism this file does not implement for the function `flag`: if the
/// registry has it for that function (an asymmetric mechanism given a secret key), the
/// key is the problem; otherwise the mechanism is.
fn not_here(mech: CK_MECHANISM_TYPE, flag: CK_FLAGS) -> Error {
    match super::info(mech) {
        Ok(i) if i.flags & flag != 0 && !MECHANISMS.iter().any(|r| r.mech == mech) => {
            Error::new(CKR_KEY_TYPE_INCONSISTENT)
        }
        _ => Error::new(CKR_MECHANISM_INVALID),
    }
}

fn no_param(p: &MechParam) -> Result<()> {
    match p {
        MechParam::None => Ok(()),
        MechParam::Bytes(b) if b.is_empty() => Ok(()),
        _ => Err(CKR_MECHANISM_PARAM_INVALID.into()),
    }
}

fn iv16(p: &MechParam) -> Result<[u8; BLOCK]> {
    match p {
        MechParam::Bytes(b) => b
            .as_slice()
            .try_into()
            .map_err(|_| CKR_MECHANISM_PARAM_INVALID.into()),
        _ => Err(CKR_MECHANISM_PARAM_INVALID.into()),
    }
}

/// The state error for a call after the operation ended.
fn ended() -> Error {
    Error::new(CKR_OPERATION_NOT_INITIALIZED)
}

/// `buf` followed by `input`, in a zeroizing buffer; `buf` is wiped.
fn joined(buf: &mut Vec<u8>, input: &[u8]) -> SecretBuf {
    let mut data = SecretBuf::with_capacity(buf.len() + input.len());
    data.extend_from_slice(buf);
    data.extend_from_slice(input);
    super::wipe(buf);
    data
}

/// Append to a zeroizing buffer, growing it so that no unwiped copy is left behind.
fn append(buf: &mut SecretBuf, input: &[u8]) {
    if buf.capacity() - buf.len() < input.len() {
        let cap = (buf.len() + input.len()).max(buf.capacity().saturating_mul(2));
        let mut grown = SecretBuf::with_capacity(cap);
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(input);
}

/// Move the bytes out of a zeroizing buffer (the caller owns them now).
fn take(v: SecretBuf) -> Vec<u8> {
    v.into_vec()
}

pub(super) fn encrypt_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Cipher>> {
    cipher_init(m, Arc::clone(key), true)
}

pub(super) fn decrypt_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Cipher>> {
    cipher_init(m, Arc::clone(key), false)
}

pub(super) fn cipher_init(
    m: &Mechanism,
    key: Arc<LocalKey>,
    encrypt: bool,
) -> Result<Box<dyn Cipher>> {
    match m.mech {
        CKM_AES_ECB | CKM_AES_CBC | CKM_AES_CBC_PAD => {
            let mode = match m.mech {
                CKM_AES_ECB => BlockMode::Ecb,
                CKM_AES_CBC => BlockMode::Cbc,
                _ => BlockMode::CbcPad,
            };
            aes_value(&key)?;
            let iv = if mode == BlockMode::Ecb {
                no_param(&m.param)?;
                [0u8; BLOCK]
            } else {
                iv16(&m.param)?
            };
            match (mode, encrypt) {
                (BlockMode::Ecb, true) => ecb_enc(&key).map(drop)?,
                (BlockMode::Ecb, false) => ecb_dec(&key).map(drop)?,
                (_, true) => cbc_enc(&key).map(drop)?,
                (_, false) => cbc_dec(&key).map(drop)?,
            }
            Ok(Box::new(BlockOp {
                key,
                mode,
                encrypt,
                iv,
                buf: SecretBuf::new(),
                done: false,
            }))
        }
        CKM_AES_CTR => {
            aes_value(&key)?;
            let MechParam::Ctr { counter_bits, cb } = &m.param else {
                return Err(CKR_MECHANISM_PARAM_INVALID.into());
            };
            if !(1..=128).contains(counter_bits) {
                return Err(CKR_MECHANISM_PARAM_INVALID.into());
            }
            ctr_key(&key)?;
            // Blocks until the counter field would wrap: (2^bits - value), saturated.
            let value = u128::from_be_bytes(*cb);
            let blocks_left = if *counter_bits == 128 {
                u128::MAX - value
            } else {
                let field = (1u128 << counter_bits) - 1;
                field - (value & field)
            }
            .saturating_add(1);
            Ok(Box::new(CtrOp {
                key,
                counter: *cb,
                blocks_left,
                ks: Zeroizing::new([0u8; BLOCK]),
                ks_used: BLOCK,
                done: false,
            }))
        }
        CKM_AES_GCM => {
            aes_value(&key)?;
            let MechParam::Gcm { iv, aad, tag_bits } = &m.param else {
                return Err(CKR_MECHANISM_PARAM_INVALID.into());
            };
            if iv.is_empty() || iv.len() > GCM_IV_MAX || !GCM_TAG_BITS.contains(tag_bits) {
                return Err(CKR_MECHANISM_PARAM_INVALID.into());
            }
            gcm_key(&key)?;
            Ok(Box::new(GcmOp {
                key,
                encrypt,
                iv: iv.clone(),
                aad: aad.clone(),
                tag_len: (*tag_bits / 8) as usize,
                buf: SecretBuf::new(),
                done: false,
            }))
        }
        CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD | CKM_AES_KEY_WRAP_KWP => {
            aes_value(&key)?;
            let mode = match m.mech {
                CKM_AES_KEY_WRAP => KwMode::Kw,
                CKM_AES_KEY_WRAP_PAD => KwMode::Pkcs7,
                _ => KwMode::Kwp,
            };
            let padded = mode == KwMode::Kwp;
            let ok = match &m.param {
                MechParam::None => true,
                MechParam::Bytes(b) => {
                    b.is_empty() || (padded && b[..] == KWP_IV) || (!padded && b[..] == KW_IV)
                }
                _ => false,
            };
            if !ok {
                return Err(CKR_MECHANISM_PARAM_INVALID.into());
            }
            if encrypt {
                ecb_enc(&key)?;
            } else {
                ecb_dec(&key)?;
            }
            Ok(Box::new(KwOp {
                key,
                encrypt,
                mode,
                buf: SecretBuf::new(),
                done: false,
            }))
        }
        _ => Err(not_here(
            m.mech,
            if encrypt { CKF_ENCRYPT } else { CKF_DECRYPT },
        )),
    }
}

// ---------------------------------------------------------------------------------------
// ECB, CBC, CBC-PAD
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockMode {
    Ecb,
    Cbc,
    CbcPad,
}

/// AES-ECB / AES-CBC / AES-CBC-PAD (PKCS#11 3.0 mechanisms §2.15.3-2.15.5), buffering
/// partial blocks; CBC-PAD decrypt holds back the last block until final.
struct BlockOp {
    key: Arc<LocalKey>,
    mode: BlockMode,
    encrypt: bool,
    /// The chaining value: the IV, then the last ciphertext block.
    iv: [u8; BLOCK],
    buf: SecretBuf,
    done: bool,
}

impl BlockOp {
    /// Encrypt or decrypt whole blocks in place, advancing the chaining value.
    fn process(&mut self, data: &mut [u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let last = data.len() - BLOCK;
        match (self.mode, self.encrypt) {
            (BlockMode::Ecb, true) => ecb_block(ecb_enc(&self.key)?, data),
            (BlockMode::Ecb, false) => ecb_block_inv(ecb_dec(&self.key)?, data),
            (_, true) => {
                let ctx = EncryptionContext::Iv128(self.iv.into());
                cbc_enc(&self.key)?
                    .less_safe_encrypt(data, ctx)
                    .map_err(lc)?;
                self.iv.copy_from_slice(&data[last..]);
                Ok(())
            }
            (_, false) => {
                let mut next = [0u8; BLOCK];
                next.copy_from_slice(&data[last..]);
                let ctx = DecryptionContext::Iv128(self.iv.into());
                cbc_dec(&self.key)?.decrypt(data, ctx).map_err(lc)?;
                self.iv = next;
                Ok(())
            }
        }
    }
}

/// PKCS#7 unpadding of the final block, without branching on the padding bytes.
fn pkcs7_len(block: &[u8]) -> Option<usize> {
    let p = *block.last()?;
    let mut bad = u8::from(p == 0) | u8::from(usize::from(p) > BLOCK);
    for (i, &b) in block.iter().enumerate() {
        let in_pad = u8::from(BLOCK - i <= usize::from(p));
        bad |= in_pad & u8::from(b != p);
    }
    (bad == 0).then(|| BLOCK - usize::from(p))
}

impl Cipher for BlockOp {
    fn max_output(&self, input_len: usize, finish: bool) -> Option<usize> {
        let total = self.buf.len().checked_add(input_len)?;
        Some(match (finish, self.mode, self.encrypt) {
            (false, _, _) => total - total % BLOCK,
            (true, BlockMode::CbcPad, true) => (total / BLOCK + 1) * BLOCK,
            (true, _, _) => total,
        })
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        if self.done {
            return Err(ended());
        }
        let mut data = joined(&mut self.buf, input);
        let mut n = data.len() - data.len() % BLOCK;
        if self.mode == BlockMode::CbcPad && !self.encrypt && n == data.len() && n > 0 {
            n -= BLOCK;
        }
        *self.buf = data.split_off(n);
        self.process(&mut data)?;
        Ok(take(data))
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.done {
            return Err(ended());
        }
        self.done = true;
        let mut rest = SecretBuf::from(std::mem::take(&mut *self.buf));
        match (self.mode, self.encrypt) {
            (BlockMode::CbcPad, true) => {
                let pad = BLOCK - rest.len();
                rest.resize(BLOCK, pad as u8);
                self.process(&mut rest)?;
                Ok(take(rest))
            }
            (BlockMode::CbcPad, false) => {
                if rest.len() != BLOCK {
                    return Err(CKR_ENCRYPTED_DATA_LEN_RANGE.into());
                }
                self.process(&mut rest)?;
                let n = pkcs7_len(&rest).ok_or(Error::new(CKR_ENCRYPTED_DATA_INVALID))?;
                rest.truncate(n);
                Ok(take(rest))
            }
            (_, true) if !rest.is_empty() => Err(CKR_DATA_LEN_RANGE.into()),
            (_, false) if !rest.is_empty() => Err(CKR_ENCRYPTED_DATA_LEN_RANGE.into()),
            _ => Ok(Vec::new()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// CTR
// ---------------------------------------------------------------------------------------

/// AES-CTR (PKCS#11 3.0 mechanisms §2.15.7): a stream, so every update returns all its
/// bytes. The counter is the low `counter_bits` of the block and must not wrap
/// (`CKR_DATA_LEN_RANGE`); below that, aws-lc's 128-bit increment is the same thing.
struct CtrOp {
    key: Arc<LocalKey>,
    /// The next counter block.
    counter: [u8; BLOCK],
    /// Counter blocks still available before the counter field wraps.
    blocks_left: u128,
    /// Keystream of the last partially used block.
    ks: Zeroizing<[u8; BLOCK]>,
    ks_used: usize,
    done: bool,
}

impl CtrOp {
    fn run(&mut self, data: &mut [u8]) -> Result<()> {
        let ctx = EncryptionContext::Iv128(self.counter.into());
        ctr_key(&self.key)?
            .less_safe_encrypt(data, ctx)
            .map_err(lc)?;
        let blocks = data.len().div_ceil(BLOCK) as u128;
        let next = u128::from_be_bytes(self.counter).wrapping_add(blocks);
        self.counter = next.to_be_bytes();
        Ok(())
    }
}

impl Cipher for CtrOp {
    fn max_output(&self, input_len: usize, _finish: bool) -> Option<usize> {
        Some(input_len)
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        if self.done {
            return Err(ended());
        }
        let mut out = input.to_vec();
        let carry = (BLOCK - self.ks_used).min(out.len());
        let need = (out.len() - carry).div_ceil(BLOCK) as u128;
        if need > self.blocks_left {
            return Err(CKR_DATA_LEN_RANGE.into());
        }
        self.blocks_left -= need;
        for b in &mut out[..carry] {
            *b ^= self.ks[self.ks_used];
            self.ks_used += 1;
        }
        let full = (out.len() - carry) / BLOCK * BLOCK;
        if full > 0 {
            self.run(&mut out[carry..carry + full])?;
        }
        let tail = &mut out[carry + full..];
        if !tail.is_empty() {
            let mut ks = Zeroizing::new([0u8; BLOCK]);
            self.run(&mut ks[..])?;
            for (b, k) in tail.iter_mut().zip(ks.iter()) {
                *b ^= k;
            }
            self.ks_used = tail.len();
            self.ks = ks;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.done {
            return Err(ended());
        }
        self.done = true;
        Ok(Vec::new())
    }
}

// ---------------------------------------------------------------------------------------
// GCM
// ---------------------------------------------------------------------------------------

/// AES-GCM (PKCS#11 3.0 mechanisms §2.15.11). Both directions buffer until final, so
/// decryption never releases unauthenticated plaintext. A 96-bit IV with a full tag runs
/// on aws-lc's AEAD; anything else on the general SP 800-38D construction below.
struct GcmOp {
    key: Arc<LocalKey>,
    encrypt: bool,
    iv: super::GcmIv,
    aad: Vec<u8>,
    tag_len: usize,
    buf: SecretBuf,
    done: bool,
}

impl Cipher for GcmOp {
    fn max_output(&self, input_len: usize, finish: bool) -> Option<usize> {
        let total = self.buf.len().checked_add(input_len)?;
        Some(match (finish, self.encrypt) {
            (false, _) => 0,
            (true, true) => total.checked_add(self.tag_len)?,
            (true, false) => total.saturating_sub(self.tag_len),
        })
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        if self.done {
            return Err(ended());
        }
        let max = GCM_MAX_DATA + if self.encrypt { 0 } else { self.tag_len as u64 };
        if (self.buf.len() as u64).saturating_add(input.len() as u64) > max {
            return Err(if self.encrypt {
                CKR_DATA_LEN_RANGE
            } else {
                CKR_ENCRYPTED_DATA_LEN_RANGE
            }
            .into());
        }
        if self.buf.is_empty() {
            // Room for the tag too, so finishing never reallocates (and copies) the data.
            *self.buf = Vec::with_capacity(input.len() + BLOCK);
        }
        append(&mut self.buf, input);
        Ok(Vec::new())
    }

    fn into_key(self: Box<Self>) -> Option<Arc<LocalKey>> {
        Some(self.key)
    }

    /// The single-part fast path for a 96-bit IV (and, decrypting, a full tag): aws-lc
    /// reads the caller's input and writes the caller's buffer, nothing in between.
    fn oneshot_into(&mut self, input: &[u8], out: &mut [u8]) -> Option<Result<usize>> {
        if self.done || !self.buf.is_empty() || self.iv.len() != 12 {
            return None;
        }
        if !self.encrypt && self.tag_len != BLOCK {
            return None;
        }
        self.done = true;
        Some(self.seal_or_open(input, out))
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.done {
            return Err(ended());
        }
        self.done = true;
        let mut data = SecretBuf::from(std::mem::take(&mut *self.buf));
        let gk = gcm_key(&self.key)?;
        if self.encrypt {
            let tag = if self.iv.len() == 12 {
                let nonce = aead::Nonce::try_assume_unique_for_key(&self.iv[..]).map_err(lc)?;
                let aad = aead::Aad::from(&self.aad[..]);
                let t = gk
                    .aead
                    .seal_in_place_separate_tag(nonce, aad, &mut data)
                    .map_err(lc)?;
                let mut tag = [0u8; BLOCK];
                tag.copy_from_slice(t.as_ref());
                tag
            } else {
                let j0 = gcm_j0(gk, &self.iv);
                gcm_ctr(&self.key, &j0, &mut data)?;
                gcm_tag(&self.key, gk, &j0, &self.aad, &data)?
            };
            data.extend_from_slice(&tag[..self.tag_len]);
            return Ok(take(data));
        }
        let Some(ct_len) = data.len().checked_sub(self.tag_len) else {
            return Err(CKR_ENCRYPTED_DATA_LEN_RANGE.into());
        };
        if self.iv.len() == 12 && self.tag_len == BLOCK {
            let nonce = aead::Nonce::try_assume_unique_for_key(&self.iv[..]).map_err(lc)?;
            let aad = aead::Aad::from(&self.aad[..]);
            gk.aead
                .open_in_place(nonce, aad, &mut data)
                .map_err(|_| Error::new(CKR_ENCRYPTED_DATA_INVALID))?;
        } else {
            let j0 = gcm_j0(gk, &self.iv);
            let (ct, tag) = data.split_at(ct_len);
            let want = gcm_tag(&self.key, gk, &j0, &self.aad, ct)?;
            constant_time::verify_slices_are_equal(&want[..self.tag_len], tag)
                .map_err(|_| Error::new(CKR_ENCRYPTED_DATA_INVALID))?;
            gcm_ctr(&self.key, &j0, &mut data[..ct_len])?;
        }
        data.truncate(ct_len);
        Ok(take(data))
    }
}

impl GcmOp {
    /// Out of place, 96-bit IV: encrypt `input` into `out` (ciphertext then tag), or
    /// open `input` (ciphertext then a 16-byte tag) into `out`. `out` is large enough.
    fn seal_or_open(&self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        let max = GCM_MAX_DATA + if self.encrypt { 0 } else { BLOCK as u64 };
        if input.len() as u64 > max {
            return Err(if self.encrypt {
                CKR_DATA_LEN_RANGE
            } else {
                CKR_ENCRYPTED_DATA_LEN_RANGE
            }
            .into());
        }
        let gk = gcm_key(&self.key)?;
        let nonce = aead::Nonce::try_assume_unique_for_key(&self.iv[..]).map_err(lc)?;
        let aad = aead::Aad::from(&self.aad[..]);
        let n = input.len();
        if self.encrypt {
            let (ct, rest) = out.split_at_mut(n);
            let mut tag = [0u8; BLOCK];
            gk.aead
                .seal_out_of_place_scatter(nonce, aad, input, ct, &[], &mut tag)
                .map_err(lc)?;
            rest[..self.tag_len].copy_from_slice(&tag[..self.tag_len]);
            return Ok(n + self.tag_len);
        }
        let ct_len = n
            .checked_sub(BLOCK)
            .ok_or(Error::new(CKR_ENCRYPTED_DATA_LEN_RANGE))?;
        let (ct, tag) = input.split_at(ct_len);
        let pt = &mut out[..ct_len];
        if gk
            .aead
            .open_separate_gather(nonce, aad, ct, tag, pt)
            .is_err()
        {
            // aws-lc clears it already; say so here rather than rely on it.
            pt.zeroize();
            return Err(CKR_ENCRYPTED_DATA_INVALID.into());
        }
        Ok(ct_len)
    }
}

/// GHASH of `a` and `c` (each zero-padded) and their bit lengths (SP 800-38D §6.4).
fn ghash(gk: &GcmKey, a: &[u8], c: &[u8]) -> [u8; BLOCK] {
    let mut g = gk.ghash.clone();
    g.update_padded(a);
    g.update_padded(c);
    let mut lens = [0u8; BLOCK];
    lens[..8].copy_from_slice(&((a.len() as u64) * 8).to_be_bytes());
    lens[8..].copy_from_slice(&((c.len() as u64) * 8).to_be_bytes());
    g.update(&[*ghash::Block::from_slice(&lens)]);
    let mut out = [0u8; BLOCK];
    out.copy_from_slice(g.finalize().as_slice());
    out
}

/// The pre-counter block J0 (SP 800-38D §7.1 step 2).
fn gcm_j0(gk: &GcmKey, iv: &[u8]) -> [u8; BLOCK] {
    if iv.len() == 12 {
        let mut j0 = [0u8; BLOCK];
        j0[..12].copy_from_slice(iv);
        j0[15] = 1;
        j0
    } else {
        ghash(gk, &[], iv)
    }
}

/// GCTR from inc32(J0): aws-lc CTR increments all 128 bits, so run it in spans that end
/// where the low 32 bits wrap.
fn gcm_ctr(key: &LocalKey, j0: &[u8; BLOCK], data: &mut [u8]) -> Result<()> {
    let k = ctr_key(key)?;
    let mut ctr = *j0;
    let mut low = u32::from_be_bytes([ctr[12], ctr[13], ctr[14], ctr[15]]).wrapping_add(1);
    let mut rest = data;
    while !rest.is_empty() {
        ctr[12..].copy_from_slice(&low.to_be_bytes());
        let span_blocks = (1u64 << 32) - u64::from(low);
        let span = usize::try_from(span_blocks.saturating_mul(BLOCK as u64))
            .unwrap_or(usize::MAX)
            .min(rest.len());
        let (now, later) = std::mem::take(&mut rest).split_at_mut(span);
        k.less_safe_encrypt(now, EncryptionContext::Iv128(ctr.into()))
            .map_err(lc)?;
        low = low.wrapping_add(span.div_ceil(BLOCK) as u32);
        rest = later;
    }
    Ok(())
}

/// The full 128-bit tag E(K, J0) xor GHASH(A, C).
fn gcm_tag(
    key: &LocalKey,
    gk: &GcmKey,
    j0: &[u8; BLOCK],
    aad: &[u8],
    ct: &[u8],
) -> Result<[u8; BLOCK]> {
    let s = ghash(gk, aad, ct);
    let mut t = *j0;
    ecb_block(ecb_enc(key)?, &mut t)?;
    for (t, s) in t.iter_mut().zip(s.iter()) {
        *t ^= s;
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// AES key wrap (RFC 3394) and key wrap with padding (RFC 5649)
// ---------------------------------------------------------------------------------------

/// Which key wrap: RFC 3394, RFC 3394 over PKCS#7-padded input (CKM_AES_KEY_WRAP_PAD,
/// PKCS#11 3.0 §2.14), or RFC 5649 (CKM_AES_KEY_WRAP_KWP).
#[derive(Clone, Copy, PartialEq, Eq)]
enum KwMode {
    Kw,
    Pkcs7,
    Kwp,
}

/// CKM_AES_KEY_WRAP / _PAD / _KWP: single-part; update buffers.
struct KwOp {
    key: Arc<LocalKey>,
    encrypt: bool,
    mode: KwMode,
    buf: SecretBuf,
    done: bool,
}

impl Cipher for KwOp {
    fn max_output(&self, input_len: usize, finish: bool) -> Option<usize> {
        let total = self.buf.len().checked_add(input_len)?;
        Some(match (finish, self.encrypt, self.mode) {
            (false, _, _) => 0,
            (true, true, KwMode::Kw) => total + 8,
            (true, true, KwMode::Pkcs7) => (total / 8 + 1) * 8 + 8,
            (true, true, KwMode::Kwp) => total.div_ceil(8).max(1) * 8 + 8,
            (true, false, _) => total.saturating_sub(8),
        })
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        if self.done {
            return Err(ended());
        }
        append(&mut self.buf, input);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.done {
            return Err(ended());
        }
        self.done = true;
        let data = SecretBuf::from(std::mem::take(&mut *self.buf));
        match (self.mode, self.encrypt) {
            (KwMode::Kw, true) => kw_wrap(&self.key, &data),
            (KwMode::Kw, false) => kw_unwrap(&self.key, &data).map(take),
            (KwMode::Pkcs7, true) => {
                let pad = 8 - data.len() % 8;
                let mut padded = SecretBuf::from(data.to_vec());
                padded.extend(std::iter::repeat_n(pad as u8, pad));
                kw_wrap(&self.key, &padded)
            }
            (KwMode::Pkcs7, false) => {
                let mut plain = kw_unwrap(&self.key, &data)?;
                let pad = *plain.last().ok_or(CKR_ENCRYPTED_DATA_INVALID)? as usize;
                let n = plain.len();
                if !(1..=8).contains(&pad) || plain[n - pad..].iter().any(|b| *b as usize != pad) {
                    return Err(CKR_ENCRYPTED_DATA_INVALID.into());
                }
                plain.truncate(n - pad);
                Ok(take(plain))
            }
            (KwMode::Kwp, true) => kwp_wrap(&self.key, &data),
            (KwMode::Kwp, false) => kwp_unwrap(&self.key, &data).map(take),
        }
    }
}

/// The wrapping function W (RFC 3394 §2.2.1, index-based form) over `r` in place.
fn kw_w(k: &EncryptingKey, mut a: [u8; 8], r: &mut [u8]) -> Result<[u8; 8]> {
    let n = r.len() / 8;
    let mut b = Zeroizing::new([0u8; BLOCK]);
    for j in 0..6 {
        for (i, ri) in r.chunks_exact_mut(8).enumerate() {
            b[..8].copy_from_slice(&a);
            b[8..].copy_from_slice(ri);
            ecb_block(k, &mut b[..])?;
            let t = ((n * j + i + 1) as u64).to_be_bytes();
            for ((a, b), t) in a.iter_mut().zip(&b[..8]).zip(t) {
                *a = b ^ t;
            }
            ri.copy_from_slice(&b[8..]);
        }
    }
    Ok(a)
}

/// The unwrapping function W^-1 (RFC 3394 §2.2.2) over `r` in place; returns A.
fn kw_w_inv(k: &DecryptingKey, mut a: [u8; 8], r: &mut [u8]) -> Result<[u8; 8]> {
    let n = r.len() / 8;
    let mut b = Zeroizing::new([0u8; BLOCK]);
    for j in (0..6).rev() {
        for (i, ri) in r.chunks_exact_mut(8).enumerate().rev() {
            let t = ((n * j + i + 1) as u64).to_be_bytes();
            for ((b, a), t) in b[..8].iter_mut().zip(a).zip(t) {
                *b = a ^ t;
            }
            b[8..].copy_from_slice(ri);
            ecb_block_inv(k, &mut b[..])?;
            a.copy_from_slice(&b[..8]);
            ri.copy_from_slice(&b[8..]);
        }
    }
    Ok(a)
}

fn kw_wrap(key: &LocalKey, p: &[u8]) -> Result<Vec<u8>> {
    if p.len() % 8 != 0 || p.len() < 16 {
        return Err(CKR_DATA_LEN_RANGE.into());
    }
    let mut out = vec![0u8; 8 + p.len()];
    out[8..].copy_from_slice(p);
    let a = kw_w(ecb_enc(key)?, KW_IV, &mut out[8..])?;
    out[..8].copy_from_slice(&a);
    Ok(out)
}

fn kw_unwrap(key: &LocalKey, c: &[u8]) -> Result<SecretBuf> {
    if c.len() % 8 != 0 || c.len() < 24 {
        return Err(CKR_ENCRYPTED_DATA_LEN_RANGE.into());
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    let mut r = SecretBuf::from(c[8..].to_vec());
    let a = kw_w_inv(ecb_dec(key)?, a, &mut r)?;
    constant_time::verify_slices_are_equal(&a, &KW_IV)
        .map_err(|_| Error::new(CKR_ENCRYPTED_DATA_INVALID))?;
    Ok(r)
}

fn kwp_wrap(key: &LocalKey, p: &[u8]) -> Result<Vec<u8>> {
    let mli = u32::try_from(p.len()).map_err(|_| Error::new(CKR_DATA_LEN_RANGE))?;
    if mli == 0 {
        return Err(CKR_DATA_LEN_RANGE.into());
    }
    let mut aiv = [0u8; 8];
    aiv[..4].copy_from_slice(&KWP_IV);
    aiv[4..].copy_from_slice(&mli.to_be_bytes());
    let padded = p.len().div_ceil(8) * 8;
    let mut out = vec![0u8; 8 + padded];
    out[8..8 + p.len()].copy_from_slice(p);
    let k = ecb_enc(key)?;
    if padded == 8 {
        // RFC 5649 §4.1: a single block is one AES encryption of AIV | P.
        out[..8].copy_from_slice(&aiv);
        ecb_block(k, &mut out)?;
    } else {
        let a = kw_w(k, aiv, &mut out[8..])?;
        out[..8].copy_from_slice(&a);
    }
    Ok(out)
}

fn kwp_unwrap(key: &LocalKey, c: &[u8]) -> Result<SecretBuf> {
    if c.len() % 8 != 0 || c.len() < 16 {
        return Err(CKR_ENCRYPTED_DATA_LEN_RANGE.into());
    }
    let k = ecb_dec(key)?;
    let mut a = [0u8; 8];
    let mut p = SecretBuf::from(c[8..].to_vec());
    if c.len() == 16 {
        let mut b = Zeroizing::new([0u8; BLOCK]);
        b.copy_from_slice(c);
        ecb_block_inv(k, &mut b[..])?;
        a.copy_from_slice(&b[..8]);
        p.copy_from_slice(&b[8..]);
    } else {
        a.copy_from_slice(&c[..8]);
        a = kw_w_inv(k, a, &mut p)?;
    }
    // RFC 5649 §3 integrity check: prefix, 8(n-1) < MLI <= 8n, zero padding.
    let mli = u32::from_be_bytes([a[4], a[5], a[6], a[7]]) as usize;
    let n8 = p.len();
    let mut ok = constant_time::verify_slices_are_equal(&a[..4], &KWP_IV).is_ok();
    ok &= mli > n8 - 8 && mli <= n8;
    let pad_start = mli.min(n8);
    ok &= p[pad_start..].iter().fold(0u8, |acc, b| acc | b) == 0;
    if !ok {
        return Err(CKR_ENCRYPTED_DATA_INVALID.into());
    }
    p.truncate(mli);
    Ok(p)
}

// ---------------------------------------------------------------------------------------
// MACs: CMAC and HMAC
// ---------------------------------------------------------------------------------------

/// (mechanism, general variant, aws-lc algorithm, dedicated key type), indexed as
/// `SymCache::hmac`.
const HMACS: [(
    CK_MECHANISM_TYPE,
    CK_MECHANISM_TYPE,
    hmac::Algorithm,
    CK_KEY_TYPE,
); 5] = [
    (
        CKM_SHA_1_HMAC,
        CKM_SHA_1_HMAC_GENERAL,
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        CKK_SHA_1_HMAC,
    ),
    (
        CKM_SHA224_HMAC,
        CKM_SHA224_HMAC_GENERAL,
        hmac::HMAC_SHA224,
        CKK_SHA224_HMAC,
    ),
    (
        CKM_SHA256_HMAC,
        CKM_SHA256_HMAC_GENERAL,
        hmac::HMAC_SHA256,
        CKK_SHA256_HMAC,
    ),
    (
        CKM_SHA384_HMAC,
        CKM_SHA384_HMAC_GENERAL,
        hmac::HMAC_SHA384,
        CKK_SHA384_HMAC,
    ),
    (
        CKM_SHA512_HMAC,
        CKM_SHA512_HMAC_GENERAL,
        hmac::HMAC_SHA512,
        CKK_SHA512_HMAC,
    ),
];

enum MacCtx {
    // Boxed: an HMAC context is ~1.2 KiB, a CMAC one a pointer.
    Hmac(Box<hmac::Context>),
    Cmac(cmac::Context),
}

/// A MAC in progress: sign and verify share it.
struct MacOp {
    ctx: Option<MacCtx>,
    len: usize,
}

/// The output length: the full length, or the `CK_MAC_GENERAL_PARAMS` one (1..=full).
fn mac_len(general: bool, p: &MechParam, full: usize) -> Result<usize> {
    if !general {
        no_param(p)?;
        return Ok(full);
    }
    match p {
        MechParam::Ulong(l) if (1..=full as u64).contains(l) => Ok(*l as usize),
        _ => Err(CKR_MECHANISM_PARAM_INVALID.into()),
    }
}

/// `None` if `m` is not a MAC of this file.
fn mac_init(m: &Mechanism, key: &LocalKey) -> Option<Result<MacOp>> {
    if m.mech == CKM_AES_CMAC || m.mech == CKM_AES_CMAC_GENERAL {
        return Some((|| {
            let k = cmac_key(key)?;
            let len = mac_len(m.mech == CKM_AES_CMAC_GENERAL, &m.param, BLOCK)?;
            let ctx = MacCtx::Cmac(cmac::Context::with_key(k));
            Ok(MacOp {
                ctx: Some(ctx),
                len,
            })
        })());
    }
    let idx = HMACS.iter().position(|h| h.0 == m.mech || h.1 == m.mech)?;
    let (mech, _, alg, kt) = HMACS[idx];
    Some((|| {
        let value = match key.material() {
            KeyMaterial::Secret { key_type, value }
                if *key_type == CKK_GENERIC_SECRET || *key_type == kt =>
            {
                value
            }
            _ => return Err(CKR_KEY_TYPE_INCONSISTENT.into()),
        };
        if !(SECRET_MIN..=SECRET_MAX).contains(&(value.len() as u64)) {
            return Err(CKR_KEY_SIZE_RANGE.into());
        }
        let full = alg.digest_algorithm().output_len();
        let len = mac_len(m.mech != mech, &m.param, full)?;
        let k = cached(&key.sym.hmac[idx], || Ok(hmac::Key::new(alg, value)))?;
        Ok(MacOp {
            ctx: Some(MacCtx::Hmac(Box::new(hmac::Context::with_key(k)))),
            len,
        })
    })())
}

impl MacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match self.ctx.as_mut().ok_or_else(ended)? {
            MacCtx::Hmac(c) => c.update(data),
            MacCtx::Cmac(c) => c.update(data).map_err(lc)?,
        }
        Ok(())
    }

    /// The (truncated) MAC; ends the operation.
    fn tag(&mut self) -> Result<SecretBuf> {
        let mut t = match self.ctx.take().ok_or_else(ended)? {
            MacCtx::Hmac(c) => SecretBuf::from(c.sign().as_ref().to_vec()),
            MacCtx::Cmac(c) => SecretBuf::from(c.sign().map_err(lc)?.as_ref().to_vec()),
        };
        t.truncate(self.len);
        Ok(t)
    }
}

impl Signer for MacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        MacOp::update(self, data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        self.tag().map(take)
    }

    fn sig_len(&self) -> usize {
        self.len
    }
}

impl Verifier for MacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        MacOp::update(self, data)
    }

    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != self.len {
            self.ctx = None;
            return Err(CKR_SIGNATURE_LEN_RANGE.into());
        }
        let t = self.tag()?;
        constant_time::verify_slices_are_equal(&t, signature)
            .map_err(|_| Error::new(CKR_SIGNATURE_INVALID))
    }
}

pub(super) fn sign_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Signer>> {
    match mac_init(m, key) {
        Some(op) => Ok(Box::new(op?)),
        None => Err(not_here(m.mech, CKF_SIGN)),
    }
}

pub(super) fn verify_init(m: &Mechanism, key: &Arc<LocalKey>) -> Result<Box<dyn Verifier>> {
    match mac_init(m, key) {
        Some(op) => Ok(Box::new(op?)),
        None => Err(not_here(m.mech, CKF_VERIFY)),
    }
}

// ---------------------------------------------------------------------------------------
// Digests and RNG
// ---------------------------------------------------------------------------------------

/// CKM_SHA_1 / CKM_SHA224 / CKM_SHA256 / CKM_SHA384 / CKM_SHA512.
struct DigestOp {
    ctx: Option<digest::Context>,
    len: usize,
}

impl Digester for DigestOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.ctx.as_mut().ok_or_else(ended)?.update(data);
        Ok(())
    }

    fn update_key(&mut self, key: &LocalKey) -> Result<()> {
        match key.material() {
            KeyMaterial::Secret { value, .. } => self.update(value),
            _ => Err(CKR_KEY_INDIGESTIBLE.into()),
        }
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(self
            .ctx
            .take()
            .ok_or_else(ended)?
            .finish()
            .as_ref()
            .to_vec())
    }

    fn output_len(&self) -> usize {
        self.len
    }
}

pub(super) fn digest_init(m: &Mechanism) -> Result<Box<dyn Digester>> {
    let alg: &'static digest::Algorithm = match m.mech {
        CKM_SHA_1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        CKM_SHA224 => &digest::SHA224,
        CKM_SHA256 => &digest::SHA256,
        CKM_SHA384 => &digest::SHA384,
        CKM_SHA512 => &digest::SHA512,
        _ => return Err(CKR_MECHANISM_INVALID.into()),
    };
    no_param(&m.param)?;
    Ok(Box::new(DigestOp {
        ctx: Some(digest::Context::new(alg)),
        len: alg.output_len(),
    }))
}

pub(super) fn random(buf: &mut [u8]) -> Result<()> {
    rand::fill(buf).map_err(|_| Error::msg(CKR_FUNCTION_FAILED, "system RNG failed"))
}

#[cfg(test)]
mod tests {
    //! Known-answer tests from the standards named on each test; expected values are
    //! the published ones, never computed here.

    use super::super::{
        decrypt_init, digest_init, encrypt_init, info, registry, sign_init, verify_init, Curve,
    };
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn key(key_type: CK_KEY_TYPE, value: &[u8]) -> Arc<LocalKey> {
        LocalKey::new(KeyMaterial::Secret {
            key_type,
            value: Zeroizing::new(value.to_vec()),
        })
        .expect("key")
    }

    fn aes(hex: &str) -> Arc<LocalKey> {
        key(CKK_AES, &h(hex))
    }

    fn mech(mech: CK_MECHANISM_TYPE, param: MechParam) -> Mechanism {
        Mechanism { mech, param }
    }

    fn rv<T>(r: Result<T>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    fn enc(m: &Mechanism, k: &Arc<LocalKey>, data: &[u8]) -> Result<Vec<u8>> {
        encrypt_init(m, k)?.oneshot(data)
    }

    fn dec(m: &Mechanism, k: &Arc<LocalKey>, data: &[u8]) -> Result<Vec<u8>> {
        decrypt_init(m, k)?.oneshot(data)
    }

    /// Multi-part run feeding `data` in pieces of `chunk` bytes; checks that every
    /// update returned what it had to (`expect_update(total_in) -> total_out`).
    fn chunked(c: &mut dyn Cipher, data: &[u8], chunk: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for piece in data.chunks(chunk) {
            out.extend(c.update(piece)?);
        }
        out.extend(c.finish()?);
        Ok(out)
    }

    fn chunked_enc(m: &Mechanism, k: &Arc<LocalKey>, data: &[u8], chunk: usize) -> Vec<u8> {
        chunked(&mut *encrypt_init(m, k).expect("init"), data, chunk).expect("encrypt")
    }

    fn chunked_dec(m: &Mechanism, k: &Arc<LocalKey>, data: &[u8], chunk: usize) -> Vec<u8> {
        chunked(&mut *decrypt_init(m, k).expect("init"), data, chunk).expect("decrypt")
    }

    // SP 800-38A Appendix F: the common plaintext, keys, IV and counter.
    const PT: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                      30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
    const K128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const K192: &str = "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b";
    const K256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const IV: &str = "000102030405060708090a0b0c0d0e0f";
    const CTR0: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

    /// Encrypt/decrypt one vector single-part and in 1/15/17-byte pieces.
    fn check_cipher(m: &Mechanism, k: &Arc<LocalKey>, pt: &[u8], ct: &[u8]) {
        assert_eq!(enc(m, k, pt).expect("encrypt"), ct);
        assert_eq!(dec(m, k, ct).expect("decrypt"), pt);
        for chunk in [1, 15, 16, 17] {
            assert_eq!(chunked_enc(m, k, pt, chunk), ct, "encrypt chunk {chunk}");
            assert_eq!(chunked_dec(m, k, ct, chunk), pt, "decrypt chunk {chunk}");
        }
    }

    #[test]
    fn sp800_38a_ecb() {
        let m = mech(CKM_AES_ECB, MechParam::None);
        for (k, ct) in [
            (
                K128,
                "3ad77bb40d7a3660a89ecaf32466ef97 f5d3d58503b9699de785895a96fdbaaf
                    43b1cd7f598ece23881b00e3ed030688 7b0c785e27e8ad3f8223207104725dd4",
            ),
            (
                K192,
                "bd334f1d6e45f25ff712a214571fa5cc 974104846d0ad3ad7734ecb3ecee4eef
                    ef7afd2270e2e60adce0ba2face6444e 9a4b41ba738d6c72fb16691603c18e0e",
            ),
            (
                K256,
                "f3eed1bdb5d2a03c064b5a7e3db181f8 591ccb10d410ed26dc5ba74a31362870
                    b6ed21b99ca6f4f9f153e7b1beafed1d 23304b7a39f9f3ff067d8d8f9e24ecc7",
            ),
        ] {
            check_cipher(&m, &aes(k), &h(PT), &h(ct));
        }
    }

    #[test]
    fn sp800_38a_cbc() {
        let m = mech(CKM_AES_CBC, MechParam::Bytes(h(IV)));
        for (k, ct) in [
            (
                K128,
                "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
                    73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7",
            ),
            (
                K192,
                "4f021db243bc633d7178183a9fa071e8 b4d9ada9ad7dedf4e5e738763f69145a
                    571b242012fb7ae07fa9baac3df102e0 08b0e27988598881d920a9e64f5615cd",
            ),
            (
                K256,
                "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
                    39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b",
            ),
        ] {
            check_cipher(&m, &aes(k), &h(PT), &h(ct));
        }
    }

    #[test]
    fn sp800_38a_ctr() {
        let cb: [u8; 16] = h(CTR0).try_into().expect("16");
        let m = mech(
            CKM_AES_CTR,
            MechParam::Ctr {
                counter_bits: 128,
                cb,
            },
        );
        for (k, ct) in [
            (
                K128,
                "874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff
                    5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee",
            ),
            (
                K192,
                "1abc932417521ca24f2b0459fe7e6e0b 090339ec0aa6faefd5ccc2c6f4ce8e94
                    1e36b26bd1ebc670d1bd1d665620abf7 4f78a7f6d29809585a97daec58c6b050",
            ),
            (
                K256,
                "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5
                    2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6",
            ),
        ] {
            let k = aes(k);
            check_cipher(&m, &k, &h(PT), &h(ct));
            // A stream: each update returns exactly its input length, also mid-block.
            let mut c = encrypt_init(&m, &k).expect("init");
            let pt = h(PT);
            let mut out = Vec::new();
            for piece in pt[..37].chunks(5) {
                let o = c.update(piece).expect("update");
                assert_eq!(o.len(), piece.len());
                out.extend(o);
            }
            assert_eq!(out, h(ct)[..37]);
            // A trailing partial block alone.
            assert_eq!(enc(&m, &k, &pt[..7]).expect("short"), h(ct)[..7]);
        }
    }

    #[test]
    fn ctr_counter_field_must_not_wrap() {
        let k = aes(K128);
        let cb: [u8; 16] = h(CTR0).try_into().expect("16");
        // Low byte 0xff: an 8-bit counter field has room for exactly one block.
        let m8 = mech(
            CKM_AES_CTR,
            MechParam::Ctr {
                counter_bits: 8,
                cb,
            },
        );
        let ct = h("874d6191b620e3261bef6864990db6ce");
        assert_eq!(enc(&m8, &k, &h(PT)[..16]).expect("one block"), ct);
        assert_eq!(rv(enc(&m8, &k, &h(PT)[..17])), CKR_DATA_LEN_RANGE);
        let mut c = encrypt_init(&m8, &k).expect("init");
        assert_eq!(c.update(&h(PT)[..10]).expect("part"), ct[..10]);
        assert_eq!(c.update(&h(PT)[10..16]).expect("rest of block"), ct[10..16]);
        assert_eq!(rv(c.update(&[0])), CKR_DATA_LEN_RANGE);
        // With 128 bits the counter carries across byte and 32-bit boundaries.
        let m128 = mech(
            CKM_AES_CTR,
            MechParam::Ctr {
                counter_bits: 128,
                cb,
            },
        );
        assert_eq!(enc(&m128, &k, &h(PT)).expect("4 blocks").len(), 64);
        for bits in [0, 129] {
            let m = mech(
                CKM_AES_CTR,
                MechParam::Ctr {
                    counter_bits: bits,
                    cb,
                },
            );
            assert_eq!(rv(encrypt_init(&m, &k)), CKR_MECHANISM_PARAM_INVALID);
        }
        let m = mech(CKM_AES_CTR, MechParam::Bytes(cb.to_vec()));
        assert_eq!(rv(encrypt_init(&m, &k)), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn ctr_crosses_32_bit_boundary_like_ecb_counter_blocks() {
        // Keystream = AES-ECB of successive counter blocks (SP 800-38A §6.5), with ECB
        // itself checked against F.1 above.
        let k = aes(K128);
        let mut cb = [0u8; 16];
        cb[8..].copy_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe]);
        let mut blocks = Vec::new();
        for i in 0..4u128 {
            blocks.extend((u128::from_be_bytes(cb) + i).to_be_bytes());
        }
        let ks = enc(&mech(CKM_AES_ECB, MechParam::None), &k, &blocks).expect("ecb");
        let m = mech(
            CKM_AES_CTR,
            MechParam::Ctr {
                counter_bits: 64,
                cb,
            },
        );
        assert_eq!(enc(&m, &k, &[0u8; 64]).expect("ctr"), ks);
        assert_eq!(chunked_enc(&m, &k, &[0u8; 64], 7), ks);
    }

    #[test]
    fn cbc_exact_update_lengths_and_bad_lengths() {
        let k = aes(K128);
        let m = mech(CKM_AES_CBC, MechParam::Bytes(h(IV)));
        let mut c = encrypt_init(&m, &k).expect("init");
        assert_eq!(c.update(&[0u8; 20]).expect("20").len(), 16);
        assert_eq!(c.update(&[0u8; 11]).expect("11").len(), 0);
        assert_eq!(c.update(&[0u8; 1]).expect("1").len(), 16);
        assert_eq!(c.finish().expect("final").len(), 0);
        for mm in [CKM_AES_CBC, CKM_AES_ECB] {
            let p = if mm == CKM_AES_ECB {
                MechParam::None
            } else {
                MechParam::Bytes(h(IV))
            };
            let m = mech(mm, p);
            assert_eq!(rv(enc(&m, &k, &[0u8; 20])), CKR_DATA_LEN_RANGE);
            assert_eq!(rv(dec(&m, &k, &[0u8; 20])), CKR_ENCRYPTED_DATA_LEN_RANGE);
            assert_eq!(enc(&m, &k, &[]).expect("empty"), Vec::<u8>::new());
        }
        for bad in [
            MechParam::None,
            MechParam::Bytes(vec![0; 15]),
            MechParam::Bytes(vec![0; 17]),
        ] {
            for mm in [CKM_AES_CBC, CKM_AES_CBC_PAD] {
                assert_eq!(
                    rv(encrypt_init(&mech(mm, bad.clone()), &k)),
                    CKR_MECHANISM_PARAM_INVALID
                );
            }
        }
        let m = mech(CKM_AES_ECB, MechParam::Bytes(h(IV)));
        assert_eq!(rv(encrypt_init(&m, &k)), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn cbc_pad() {
        let k = aes(K128);
        let m = mech(CKM_AES_CBC_PAD, MechParam::Bytes(h(IV)));
        // Whole-block input: the F.2.1 ciphertext followed by one block of padding.
        let ct = enc(&m, &k, &h(PT)).expect("encrypt");
        assert_eq!(ct.len(), 80);
        assert_eq!(
            ct[..64],
            h(
                "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
                                73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7"
            )[..]
        );
        // The padding block is 16 x 0x10 chained on the last ciphertext block.
        let last = h("3ff1caa1681fac09120eca307586e1a7");
        let pad_in: Vec<u8> = last.iter().map(|b| b ^ 0x10).collect();
        assert_eq!(
            ct[64..],
            enc(&mech(CKM_AES_ECB, MechParam::None), &k, &pad_in).expect("ecb")[..]
        );
        let pt = h(PT);
        for n in 0..=33 {
            let ct = enc(&m, &k, &pt[..n]).expect("encrypt");
            assert_eq!(ct.len(), (n / 16 + 1) * 16);
            assert_eq!(dec(&m, &k, &ct).expect("decrypt"), pt[..n]);
            for chunk in [1, 15, 16, 17] {
                assert_eq!(chunked_enc(&m, &k, &pt[..n], chunk), ct);
                assert_eq!(chunked_dec(&m, &k, &ct, chunk), pt[..n]);
            }
        }
        // Decrypt holds back the last block: 32 bytes in, 16 out until final.
        let ct = enc(&m, &k, &pt[..20]).expect("encrypt");
        let mut d = decrypt_init(&m, &k).expect("init");
        assert_eq!(d.update(&ct).expect("update").len(), 16);
        assert_eq!(d.finish().expect("final"), pt[16..20]);
        // Bad padding: blocks whose last byte is 0, 17, or inconsistent pad bytes.
        let cbc = mech(CKM_AES_CBC, MechParam::Bytes(h(IV)));
        for block in [[0u8; 16], [17u8; 16], {
            let mut b = [3u8; 16];
            b[13] = 2;
            b
        }] {
            let ct = enc(&cbc, &k, &block).expect("raw");
            assert_eq!(rv(dec(&m, &k, &ct)), CKR_ENCRYPTED_DATA_INVALID);
        }
        assert_eq!(rv(dec(&m, &k, &[])), CKR_ENCRYPTED_DATA_LEN_RANGE);
        assert_eq!(rv(dec(&m, &k, &[0u8; 31])), CKR_ENCRYPTED_DATA_LEN_RANGE);
    }

    /// (key, plaintext, aad, iv, ciphertext, tag): "The Galois/Counter Mode of Operation
    /// (GCM)", McGrew & Viega, Appendix B, test cases 1-18.
    const GCM: [(&str, &str, &str, &str, &str, &str); 18] = {
        const K0: &str = "00000000000000000000000000000000";
        const K1: &str = "feffe9928665731c6d6a8f9467308308";
        const K2: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c";
        const K3: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
        const P64: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                           1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
        const P60: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                           1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
        const A: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
        const IV12: &str = "cafebabefacedbaddecaf888";
        const IV8: &str = "cafebabefacedbad";
        const IV60: &str = "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728\
                            c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b";
        const Z12: &str = "000000000000000000000000";
        [
            (K0, "", "", Z12, "", "58e2fccefa7e3061367f1d57a4e7455a"),
            (
                K0,
                K0,
                "",
                Z12,
                "0388dace60b6a392f328c2b971b2fe78",
                "ab6e47d42cec13bdf53a67b21257bddf",
            ),
            (
                K1,
                P64,
                "",
                IV12,
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
              21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
                "4d5c2af327cd64a62cf35abd2ba6fab4",
            ),
            (
                K1,
                P60,
                A,
                IV12,
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
              21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
                "5bc94fbc3221a5db94fae95ae7121a47",
            ),
            (
                K1,
                P60,
                A,
                IV8,
                "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423\
              73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
                "3612d2e79e3b0785561be14aaca2fccb",
            ),
            (
                K1,
                P60,
                A,
                IV60,
                "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7\
              01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
                "619cc5aefffe0bfa462af43c1699d050",
            ),
            (
                "000000000000000000000000000000000000000000000000",
                "",
                "",
                Z12,
                "",
                "cd33b28ac773f74ba00ed1f312572435",
            ),
            (
                "000000000000000000000000000000000000000000000000",
                K0,
                "",
                Z12,
                "98e7247c07f0fe411c267e4384b0f600",
                "2ff58d80033927ab8ef4d4587514f0fb",
            ),
            (
                K2,
                P64,
                "",
                IV12,
                "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c\
              7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256",
                "9924a7c8587336bfb118024db8674a14",
            ),
            (
                K2,
                P60,
                A,
                IV12,
                "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c\
              7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
                "2519498e80f1478f37ba55bd6d27618c",
            ),
            (
                K2,
                P60,
                A,
                IV8,
                "0f10f599ae14a154ed24b36e25324db8c566632ef2bbb34f8347280fc4507057\
              fddc29df9a471f75c66541d4d4dad1c9e93a19a58e8b473fa0f062f7",
                "65dcc57fcf623a24094fcca40d3533f8",
            ),
            (
                K2,
                P60,
                A,
                IV60,
                "d27e88681ce3243c4830165a8fdcf9ff1de9a1d8e6b447ef6ef7b79828666e45\
              81e79012af34ddd9e2f037589b292db3e67c036745fa22e7e9b7373b",
                "dcf566ff291c25bbb8568fc3d376a6d9",
            ),
            (
                "0000000000000000000000000000000000000000000000000000000000000000",
                "",
                "",
                Z12,
                "",
                "530f8afbc74536b9a963b4f1c4cb738b",
            ),
            (
                "0000000000000000000000000000000000000000000000000000000000000000",
                K0,
                "",
                Z12,
                "cea7403d4d606b6e074ec5d3baf39d18",
                "d0d1c8a799996bf0265b98b5d48ab919",
            ),
            (
                K3,
                P64,
                "",
                IV12,
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
              8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
                "b094dac5d93471bdec1a502270e3cc6c",
            ),
            (
                K3,
                P60,
                A,
                IV12,
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
              8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
            (
                K3,
                P60,
                A,
                IV8,
                "c3762df1ca787d32ae47c13bf19844cbaf1ae14d0b976afac52ff7d79bba9de0\
              feb582d33934a4f0954cc2363bc73f7862ac430e64abe499f47c9b1f",
                "3a337dbf46a792c45e454913fe2ea8f2",
            ),
            (
                K3,
                P60,
                A,
                IV60,
                "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf4\
              0fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f",
                "a44a8266ee1c8eb0c8b5d4cf5ae9f19a",
            ),
        ]
    };

    fn gcm(iv: &[u8], aad: &[u8], tag_bits: u64) -> Mechanism {
        mech(
            CKM_AES_GCM,
            MechParam::Gcm {
                iv: iv.into(),
                aad: aad.to_vec(),
                tag_bits,
            },
        )
    }

    #[test]
    fn gcm_spec_test_cases_1_to_18() {
        for (i, (k, p, a, iv, c, t)) in GCM.iter().enumerate() {
            let k = aes(k);
            let (p, a, iv) = (h(p), h(a), h(iv));
            let mut ct = h(c);
            ct.extend(h(t));
            let m = gcm(&iv, &a, 128);
            assert_eq!(enc(&m, &k, &p).expect("seal"), ct, "test case {}", i + 1);
            assert_eq!(dec(&m, &k, &ct).expect("open"), p, "test case {}", i + 1);
            for chunk in [1, 15, 17] {
                assert_eq!(chunked_enc(&m, &k, &p, chunk), ct);
                assert_eq!(chunked_dec(&m, &k, &ct, chunk), p);
            }
            // Truncated tags are the leading bytes of the full tag (SP 800-38D §7.1).
            for bits in [32u64, 64, 96, 104, 112, 120] {
                let n = p.len() + (bits / 8) as usize;
                let m = gcm(&iv, &a, bits);
                assert_eq!(
                    enc(&m, &k, &p).expect("seal"),
                    ct[..n],
                    "tc {} {bits}",
                    i + 1
                );
                assert_eq!(
                    dec(&m, &k, &ct[..n]).expect("open"),
                    p,
                    "tc {} {bits}",
                    i + 1
                );
                let mut bad = ct[..n].to_vec();
                bad[n - 1] ^= 1;
                assert_eq!(rv(dec(&m, &k, &bad)), CKR_ENCRYPTED_DATA_INVALID);
            }
            // Any flipped bit (ciphertext or tag) fails, and nothing is released early.
            for pos in [0, ct.len() - 1] {
                let mut bad = ct.clone();
                bad[pos] ^= 0x80;
                assert_eq!(rv(dec(&m, &k, &bad)), CKR_ENCRYPTED_DATA_INVALID);
                let mut d = decrypt_init(&m, &k).expect("init");
                assert!(d.update(&bad).expect("update").is_empty());
                assert_eq!(rv(d.finish()), CKR_ENCRYPTED_DATA_INVALID);
            }
            if !a.is_empty() {
                assert_eq!(
                    rv(dec(&gcm(&iv, &a[1..], 128), &k, &ct)),
                    CKR_ENCRYPTED_DATA_INVALID
                );
            }
        }
    }

    #[test]
    fn gcm_general_path_counter_is_inc32() {
        // GCTR increments only the low 32 bits (SP 800-38D §6.2, §6.5): the keystream
        // must be AES-ECB of inc32 counter blocks, wrapping 0xffffffff -> 0 without carry.
        let k = aes(K128);
        let mut j0 = [0x11u8; 16];
        j0[12..].copy_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
        let mut blocks = Vec::new();
        for low in [0xffff_ffffu32, 0, 1, 2, 3] {
            blocks.extend_from_slice(&j0[..12]);
            blocks.extend_from_slice(&low.to_be_bytes());
        }
        let ks = enc(&mech(CKM_AES_ECB, MechParam::None), &k, &blocks).expect("ecb");
        let mut data = vec![0u8; 69];
        gcm_ctr(&k, &j0, &mut data).expect("gctr");
        assert_eq!(data, ks[..69]);
    }

    #[test]
    fn gcm_parameters_and_lengths() {
        let k = aes(K128);
        let iv = [0u8; 12];
        for bits in [0u64, 8, 24, 40, 100, 136] {
            assert_eq!(
                rv(encrypt_init(&gcm(&iv, &[], bits), &k)),
                CKR_MECHANISM_PARAM_INVALID
            );
        }
        assert_eq!(
            rv(encrypt_init(&gcm(&[], &[], 128), &k)),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            rv(encrypt_init(&gcm(&[0; 257], &[], 128), &k)),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(rv(encrypt_init(&gcm(&[0; 256], &[], 128), &k)), CKR_OK);
        assert_eq!(rv(encrypt_init(&gcm(&[0; 1], &[], 128), &k)), CKR_OK);
        let m = mech(CKM_AES_GCM, MechParam::Bytes(iv.to_vec()));
        assert_eq!(rv(encrypt_init(&m, &k)), CKR_MECHANISM_PARAM_INVALID);
        // Shorter than the tag.
        assert_eq!(
            rv(dec(&gcm(&iv, &[], 128), &k, &[0u8; 15])),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
        assert_eq!(
            rv(dec(&gcm(&iv, &[], 32), &k, &[0u8; 3])),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
        // Encrypt output is ciphertext || tag; updates return nothing.
        let mut c = encrypt_init(&gcm(&iv, b"aad", 96), &k).expect("init");
        assert!(c.update(&[1u8; 20]).expect("update").is_empty());
        assert_eq!(c.finish().expect("final").len(), 32);
        assert_eq!(rv(c.finish()), CKR_OPERATION_NOT_INITIALIZED);
    }

    /// RFC 3394 §4.1-4.6.
    #[test]
    fn rfc3394_key_wrap() {
        const KEK: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
        const KD: &str = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F";
        for (kek_len, kd_len, c) in [
            (16, 16, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"),
            (24, 16, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"),
            (32, 16, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"),
            (24, 24, "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"),
            (32, 24, "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"),
            (32, 32, "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"),
        ] {
            let k = key(CKK_AES, &h(KEK)[..kek_len]);
            let kd = &h(KD)[..kd_len];
            let c = h(c);
            for p in [MechParam::None, MechParam::Bytes(KW_IV.to_vec())] {
                let m = mech(CKM_AES_KEY_WRAP, p);
                assert_eq!(enc(&m, &k, kd).expect("wrap"), c, "kek {kek_len} kd {kd_len}");
                assert_eq!(dec(&m, &k, &c).expect("unwrap"), kd);
                assert_eq!(chunked_dec(&m, &k, &c, 5), kd);
            }
            let m = mech(CKM_AES_KEY_WRAP, MechParam::None);
            for pos in [0, 8, c.len() - 1] {
                let mut bad = c.clone();
                bad[pos] ^= 1;
                assert_eq!(rv(dec(&m, &k, &bad)), CKR_ENCRYPTED_DATA_INVALID);
            }
        }
        let k = aes(K128);
        let m = mech(CKM_AES_KEY_WRAP, MechParam::None);
        for n in [0, 8, 15, 17] {
            assert_eq!(
                rv(enc(&m, &k, &vec![0u8; n])),
                CKR_DATA_LEN_RANGE,
                "wrap {n}"
            );
        }
        for n in [0, 16, 23, 25] {
            assert_eq!(
                rv(dec(&m, &k, &vec![0u8; n])),
                CKR_ENCRYPTED_DATA_LEN_RANGE,
                "unwrap {n}"
            );
        }
        for p in [
            MechParam::Bytes(vec![0xA6; 7]),
            MechParam::Bytes(vec![0; 8]),
            MechParam::Ulong(8),
        ] {
            let m = mech(CKM_AES_KEY_WRAP, p);
            assert_eq!(rv(encrypt_init(&m, &k)), CKR_MECHANISM_PARAM_INVALID);
        }
    }

    /// CKM_AES_KEY_WRAP_PAD is RFC 3394 over PKCS#7-padded input (PKCS#11 3.0 §2.14):
    /// checked against the RFC 3394 §4.1 vector, whose 16-byte key data padded with a
    /// full block of 0x08 is wrapped by the plain mechanism.
    #[test]
    fn key_wrap_pad_is_kw_over_pkcs7() {
        let k = aes("000102030405060708090a0b0c0d0e0f");
        let data = h("00112233445566778899aabbccddeeff");
        let pad = mech(CKM_AES_KEY_WRAP_PAD, MechParam::None);
        let kw = mech(CKM_AES_KEY_WRAP, MechParam::None);
        let mut padded = data.clone();
        padded.extend([8u8; 8]);
        let c = enc(&pad, &k, &data).expect("wrap");
        assert_eq!(c, enc(&kw, &k, &padded).expect("kw"));
        assert_eq!(dec(&pad, &k, &c).expect("unwrap"), data);
        // Padded input under 16 bytes is too short for RFC 3394 (n >= 2 semiblocks).
        assert_eq!(rv(enc(&pad, &k, &[1u8; 7])), CKR_DATA_LEN_RANGE);
        for n in [8usize, 9, 15, 31] {
            let d = vec![0x42u8; n];
            let c = enc(&pad, &k, &d).expect("wrap");
            assert_eq!(c.len(), (n / 8 + 1) * 8 + 8);
            assert_eq!(dec(&pad, &k, &c).expect("unwrap"), d);
        }
        // Unpadded plaintext under KW is not valid PKCS#7 once unwrapped.
        let c = enc(&kw, &k, &h("00112233445566778899aabbccddee00")).expect("kw");
        assert_eq!(rv(dec(&pad, &k, &c)), CKR_ENCRYPTED_DATA_INVALID);
    }

    /// RFC 5649 §6.
    #[test]
    fn rfc5649_key_wrap_with_padding() {
        let k = aes("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
        let m = mech(CKM_AES_KEY_WRAP_KWP, MechParam::None);
        for (p, c) in [
            (
                "c37b7e6492584340bed12207808941155068f738",
                "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
            ),
            ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
        ] {
            let (p, c) = (h(p), h(c));
            assert_eq!(enc(&m, &k, &p).expect("wrap"), c);
            assert_eq!(dec(&m, &k, &c).expect("unwrap"), p);
            let mi = mech(CKM_AES_KEY_WRAP_KWP, MechParam::Bytes(KWP_IV.to_vec()));
            assert_eq!(enc(&mi, &k, &p).expect("wrap"), c);
            for pos in [0, 4, c.len() - 1] {
                let mut bad = c.clone();
                bad[pos] ^= 1;
                assert_eq!(rv(dec(&m, &k, &bad)), CKR_ENCRYPTED_DATA_INVALID);
            }
        }
        // The padded RFC 3394 path accepts whole-semiblock input too.
        for n in [1usize, 8, 9, 16, 31, 64] {
            let p: Vec<u8> = (0..n as u8).collect();
            let c = enc(&m, &k, &p).expect("wrap");
            assert_eq!(c.len(), 8 + n.div_ceil(8) * 8);
            assert_eq!(dec(&m, &k, &c).expect("unwrap"), p);
        }
        // A plain RFC 3394 wrap is not a valid KWP wrap (wrong AIV).
        let kw = enc(&mech(CKM_AES_KEY_WRAP, MechParam::None), &k, &[7u8; 16]).expect("kw");
        assert_eq!(rv(dec(&m, &k, &kw)), CKR_ENCRYPTED_DATA_INVALID);
        assert_eq!(rv(enc(&m, &k, &[])), CKR_DATA_LEN_RANGE);
        for n in [0, 8, 15, 17] {
            assert_eq!(rv(dec(&m, &k, &vec![0u8; n])), CKR_ENCRYPTED_DATA_LEN_RANGE);
        }
        let bad = mech(CKM_AES_KEY_WRAP_KWP, MechParam::Bytes(KW_IV.to_vec()));
        assert_eq!(rv(encrypt_init(&bad, &k)), CKR_MECHANISM_PARAM_INVALID);
    }

    fn sign(m: &Mechanism, k: &Arc<LocalKey>, data: &[u8]) -> Result<Vec<u8>> {
        sign_init(m, k)?.oneshot(data)
    }

    fn verify(m: &Mechanism, k: &Arc<LocalKey>, data: &[u8], sig: &[u8]) -> Result<()> {
        verify_init(m, k)?.oneshot(data, sig)
    }

    /// Sign single-part and in pieces, verify, and reject a flipped or short MAC.
    fn check_mac(m: &Mechanism, k: &Arc<LocalKey>, data: &[u8], want: &[u8]) {
        assert_eq!(sign(m, k, data).expect("sign"), want);
        assert_eq!(sign_init(m, k).expect("init").sig_len(), want.len());
        for chunk in [1, 15, 17] {
            let mut s = sign_init(m, k).expect("init");
            let mut v = verify_init(m, k).expect("init");
            for piece in data.chunks(chunk) {
                s.update(piece).expect("update");
                v.update(piece).expect("update");
            }
            assert_eq!(s.finish().expect("final"), want);
            v.finish(want).expect("verify");
        }
        verify(m, k, data, want).expect("verify");
        let mut bad = want.to_vec();
        bad[0] ^= 1;
        assert_eq!(rv(verify(m, k, data, &bad)), CKR_SIGNATURE_INVALID);
        assert_eq!(rv(verify(m, k, data, &want[1..])), CKR_SIGNATURE_LEN_RANGE);
        let mut long = want.to_vec();
        long.push(0);
        assert_eq!(rv(verify(m, k, data, &long)), CKR_SIGNATURE_LEN_RANGE);
    }

    /// RFC 4493 §4 (AES-128) and SP 800-38B Appendix D.2/D.3 (AES-192, AES-256).
    #[test]
    fn cmac_rfc4493_and_sp800_38b() {
        let msg = h(PT);
        let m = mech(CKM_AES_CMAC, MechParam::None);
        for (k, tags) in [
            (
                K128,
                [
                    "bb1d6929e95937287fa37d129b756746",
                    "070a16b46b4d4144f79bdd9dd04a287c",
                    "dfa66747de9ae63030ca32611497c827",
                    "51f0bebf7e3b9d92fc49741779363cfe",
                ],
            ),
            (
                K192,
                [
                    "d17ddf46adaacde531cac483de7a9367",
                    "9e99a7bf31e710900662f65e617c5184",
                    "8a1de5be2eb31aad089a82e6ee908b0e",
                    "a1d5df0eed790f794d77589659f39a11",
                ],
            ),
            (
                K256,
                [
                    "028962f61b7bf89efc6b551f4667d983",
                    "28a7023f452e8f82bd4bf28d8c37c35c",
                    "aaf3d8f1de5640c232f5b169b9c911e6",
                    "e1992190549f6ed5696a2c056c315410",
                ],
            ),
        ] {
            let k = aes(k);
            for (len, t) in [0, 16, 40, 64].into_iter().zip(tags) {
                check_mac(&m, &k, &msg[..len], &h(t));
                let g = mech(CKM_AES_CMAC_GENERAL, MechParam::Ulong(4));
                check_mac(&g, &k, &msg[..len], &h(t)[..4]);
            }
        }
        let k = aes(K128);
        for p in [MechParam::Ulong(0), MechParam::Ulong(17), MechParam::None] {
            let g = mech(CKM_AES_CMAC_GENERAL, p);
            assert_eq!(rv(sign_init(&g, &k)), CKR_MECHANISM_PARAM_INVALID);
        }
        let m = mech(CKM_AES_CMAC, MechParam::Ulong(16));
        assert_eq!(rv(sign_init(&m, &k)), CKR_MECHANISM_PARAM_INVALID);
        let g = key(CKK_GENERIC_SECRET, &h(K128));
        assert_eq!(
            rv(sign_init(&mech(CKM_AES_CMAC, MechParam::None), &g)),
            CKR_KEY_TYPE_INCONSISTENT
        );
    }

    /// RFC 4231 §4.2-4.8, HMAC-SHA-224/256/384/512; test case 5 is truncated to 128 bits.
    #[test]
    fn hmac_rfc4231() {
        let aa131 = vec![0xaa; 131];
        let key4: Vec<u8> = (1..=25).collect();
        let cases: [(Vec<u8>, Vec<u8>, [&str; 4]); 7] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                [
                    "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                [
                    "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                [
                    "7fb3cb3588c6c1f6ffa9694d7d6ad2649365b0c1f65d69d1ec8333ea",
                    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                    "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b\
                 2a5ab39dc13814b94e3ab6e101a34f27",
                    "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39\
                 bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
                ],
            ),
            (
                key4,
                vec![0xcd; 50],
                [
                    "6c11506874013cac6a2abc1bb382627cec6a90d86efc012de7afec5a",
                    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                    "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e\
                 6801dd23c4a7d679ccf8a386c674cffb",
                    "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db\
                 a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
                ],
            ),
            (
                vec![0x0c; 20],
                b"Test With Truncation".to_vec(),
                [
                    "0e2aea68a90c8d37c988bcdb9fca6fa8",
                    "a3b6167473100ee06e0c796c2955552b",
                    "3abf34c3503b2a23a46efc619baef897",
                    "415fad6271580a531d4179bc891d87a6",
                ],
            ),
            (
                aa131.clone(),
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                [
                    "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                 0c2ef6ab4030fe8296248df163f44952",
                    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                 6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
                ],
            ),
            (
                aa131,
                b"This is a test using a larger than block-size key and a larger than \
                      block-size data. The key needs to be hashed before being used by the \
                      HMAC algorithm."
                    .to_vec(),
                [
                    "3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1",
                    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
                    "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5\
                 a678cc31e799176d3860e6110c46523e",
                    "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944\
                 b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
                ],
            ),
        ];
        let mechs = [
            (CKM_SHA224_HMAC, CKM_SHA224_HMAC_GENERAL, CKK_SHA224_HMAC),
            (CKM_SHA256_HMAC, CKM_SHA256_HMAC_GENERAL, CKK_SHA256_HMAC),
            (CKM_SHA384_HMAC, CKM_SHA384_HMAC_GENERAL, CKK_SHA384_HMAC),
            (CKM_SHA512_HMAC, CKM_SHA512_HMAC_GENERAL, CKK_SHA512_HMAC),
        ];
        for (tc, (kv, data, macs)) in cases.iter().enumerate() {
            for ((full, general, kt), want) in mechs.iter().zip(macs) {
                let want = h(want);
                for k in [key(CKK_GENERIC_SECRET, kv), key(*kt, kv)] {
                    if tc == 4 {
                        let g = mech(*general, MechParam::Ulong(16));
                        check_mac(&g, &k, data, &want);
                    } else {
                        check_mac(&mech(*full, MechParam::None), &k, data, &want);
                        let g = mech(*general, MechParam::Ulong(want.len() as u64));
                        check_mac(&g, &k, data, &want);
                        let g = mech(*general, MechParam::Ulong(10));
                        check_mac(&g, &k, data, &want[..10]);
                    }
                }
            }
        }
    }

    /// RFC 2202 §3 test cases 1 and 2 (HMAC-SHA-1).
    #[test]
    fn hmac_sha1_rfc2202() {
        let m = mech(CKM_SHA_1_HMAC, MechParam::None);
        let k = key(CKK_GENERIC_SECRET, &[0x0b; 20]);
        check_mac(
            &m,
            &k,
            b"Hi There",
            &h("b617318655057264e28bc0b6fb378c8ef146be00"),
        );
        let k = key(CKK_SHA_1_HMAC, b"Jefe");
        check_mac(
            &m,
            &k,
            b"what do ya want for nothing?",
            &h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        );
    }

    #[test]
    fn hmac_key_and_parameter_checks() {
        let k = key(CKK_GENERIC_SECRET, &[1; 32]);
        let m = mech(CKM_SHA256_HMAC, MechParam::None);
        assert_eq!(rv(sign_init(&m, &aes(K256))), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(
            rv(sign_init(&m, &key(CKK_SHA384_HMAC, &[1; 32]))),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(rv(verify_init(&m, &aes(K256))), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(
            rv(sign_init(&m, &key(CKK_GENERIC_SECRET, &[]))),
            CKR_KEY_SIZE_RANGE
        );
        assert_eq!(
            rv(sign_init(&m, &key(CKK_GENERIC_SECRET, &[1; 513]))),
            CKR_KEY_SIZE_RANGE
        );
        assert_eq!(
            rv(sign_init(&mech(CKM_SHA256_HMAC, MechParam::Ulong(32)), &k)),
            CKR_MECHANISM_PARAM_INVALID
        );
        for l in [0, 33] {
            let g = mech(CKM_SHA256_HMAC_GENERAL, MechParam::Ulong(l));
            assert_eq!(rv(sign_init(&g, &k)), CKR_MECHANISM_PARAM_INVALID);
        }
        let g = mech(CKM_SHA256_HMAC_GENERAL, MechParam::None);
        assert_eq!(rv(sign_init(&g, &k)), CKR_MECHANISM_PARAM_INVALID);
        // Finishing twice is a state error, not a panic.
        let mut s = sign_init(&m, &k).expect("init");
        s.finish().expect("final");
        assert_eq!(rv(s.finish()), CKR_OPERATION_NOT_INITIALIZED);
    }

    /// FIPS 180-4 examples ("abc", and the two-block message for SHA-256).
    #[test]
    fn digests_fips180() {
        for (m, want) in [
            (CKM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                CKM_SHA224,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                CKM_SHA256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                CKM_SHA384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                          8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                CKM_SHA512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                          2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ] {
            let want = h(want);
            let mut d = digest_init(&mech(m, MechParam::None)).expect("init");
            assert_eq!(d.output_len(), want.len());
            d.update(b"a").expect("a");
            d.update(b"bc").expect("bc");
            assert_eq!(d.finish().expect("final"), want);
            assert_eq!(rv(d.finish()), CKR_OPERATION_NOT_INITIALIZED);
            // C_DigestKey digests the key value.
            let mut d = digest_init(&mech(m, MechParam::None)).expect("init");
            d.update(b"a").expect("a");
            d.update_key(&key(CKK_GENERIC_SECRET, b"bc")).expect("key");
            assert_eq!(d.finish().expect("final"), want);
        }
        let mut d = digest_init(&mech(CKM_SHA256, MechParam::None)).expect("init");
        for chunk in b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".chunks(17) {
            d.update(chunk).expect("update");
        }
        assert_eq!(
            d.finish().expect("final"),
            h("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        );
        let ec = LocalKey::new(super::super::generate_ec(Curve::P256).expect("gen")).expect("ec");
        let mut d = digest_init(&mech(CKM_SHA256, MechParam::None)).expect("init");
        assert_eq!(rv(d.update_key(&ec)), CKR_KEY_INDIGESTIBLE);
        assert_eq!(
            rv(digest_init(&mech(CKM_SHA256, MechParam::Ulong(1)))),
            CKR_MECHANISM_PARAM_INVALID
        );
    }

    #[test]
    fn wrong_function_key_type_and_size() {
        let k = aes(K128);
        let none = MechParam::None;
        assert_eq!(
            rv(sign_init(&mech(CKM_SHA256, none.clone()), &k)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(sign_init(&gcm(&[0; 12], &[], 128), &k)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(verify_init(&mech(CKM_AES_ECB, none.clone()), &k)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(encrypt_init(&mech(CKM_AES_CMAC, none.clone()), &k)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(decrypt_init(&mech(CKM_SHA256_HMAC, none.clone()), &k)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(encrypt_init(&mech(CKM_AES_KEY_GEN, none.clone()), &k)),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(digest_init(&mech(CKM_AES_GCM, none.clone()))),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            rv(encrypt_init(&mech(0x8000_1234, none.clone()), &k)),
            CKR_MECHANISM_INVALID
        );
        let g = key(CKK_GENERIC_SECRET, &h(K128));
        for m in [
            gcm(&[0; 12], &[], 128),
            mech(CKM_AES_ECB, none.clone()),
            mech(CKM_AES_CBC, MechParam::Bytes(h(IV))),
            mech(CKM_AES_KEY_WRAP, none.clone()),
        ] {
            assert_eq!(rv(encrypt_init(&m, &g)), CKR_KEY_TYPE_INCONSISTENT);
            assert_eq!(rv(decrypt_init(&m, &g)), CKR_KEY_TYPE_INCONSISTENT);
            for len in [0, 8, 15, 20, 33] {
                assert_eq!(
                    rv(encrypt_init(&m, &key(CKK_AES, &vec![0; len]))),
                    CKR_KEY_SIZE_RANGE
                );
            }
        }
        assert_eq!(
            rv(sign_init(
                &mech(CKM_AES_CMAC, none),
                &key(CKK_AES, &[0; 20])
            )),
            CKR_KEY_SIZE_RANGE
        );
    }

    #[test]
    fn registry_rows() {
        let rows = MECHANISMS;
        for (i, r) in rows.iter().enumerate() {
            assert!(
                rows[i + 1..].iter().all(|o| o.mech != r.mech),
                "duplicate {:#x}",
                r.mech
            );
            assert_eq!(info(r.mech).expect("in registry").flags, r.flags);
            assert!(r.min_key <= r.max_key);
        }
        assert!(registry().len() >= rows.len());
        assert_eq!(info(CKM_AES_GCM).expect("gcm").flags, ED);
        assert_eq!(info(CKM_AES_KEY_GEN).expect("gen").flags, CKF_GENERATE);
        assert_eq!(
            info(CKM_GENERIC_SECRET_KEY_GEN).expect("gen").flags,
            CKF_GENERATE
        );
    }

    #[test]
    fn keys_are_prepared_once_and_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LocalKey>();
        let k = aes(K256);
        let m = gcm(&[9; 12], b"x", 128);
        let want = enc(&m, &k, b"payload").expect("seal");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        assert_eq!(enc(&m, &k, b"payload").expect("seal"), want);
                        assert_eq!(dec(&m, &k, &want).expect("open"), b"payload");
                    }
                });
            }
        });
        let a: *const GcmKey = gcm_key(&k).expect("gcm");
        let b: *const GcmKey = gcm_key(&k).expect("gcm");
        assert_eq!(a, b);
    }

    #[test]
    fn random_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        super::super::random(&mut a).expect("rng");
        super::super::random(&mut b).expect("rng");
        assert_ne!(a, b);
        assert_eq!(super::super::generate_secret(24).expect("secret").len(), 24);
    }
}
