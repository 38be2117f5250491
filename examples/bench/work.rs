//! The timed workloads: the same operation on a PKCS#11 module (through its function
//! list) and on aws-lc-rs directly, each as a closure a timed loop calls.

use crate::p11::{gcm_params, mech, mech_with, Tpl, P11, R};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::cipher::{
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey, AES_256,
};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use aws_lc_rs::{hmac, rsa::KeySize};
use cryptoki_sys::*;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// One timed operation: the init call and the single-part call that does the work.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    GcmEnc,
    GcmDec,
    CbcPadEnc,
    CbcPadDec,
    HmacSign,
    HmacVerify,
    EcSign,
    EcVerify,
    RsaSign,
    RsaVerify,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::GcmEnc => "AES-256-GCM encrypt",
            Op::GcmDec => "AES-256-GCM decrypt",
            Op::CbcPadEnc => "AES-256-CBC-PAD encrypt",
            Op::CbcPadDec => "AES-256-CBC-PAD decrypt",
            Op::HmacSign => "HMAC-SHA256 sign",
            Op::HmacVerify => "HMAC-SHA256 verify",
            Op::EcSign => "ECDSA P-256 sign",
            Op::EcVerify => "ECDSA P-256 verify",
            Op::RsaSign => "RSA-2048 PKCS#1 SHA-256 sign",
            Op::RsaVerify => "RSA-2048 PKCS#1 SHA-256 verify",
        }
    }

    /// Short machine name for the JSON.
    pub fn id(self) -> &'static str {
        match self {
            Op::GcmEnc => "aes_gcm_encrypt",
            Op::GcmDec => "aes_gcm_decrypt",
            Op::CbcPadEnc => "aes_cbc_pad_encrypt",
            Op::CbcPadDec => "aes_cbc_pad_decrypt",
            Op::HmacSign => "hmac_sha256_sign",
            Op::HmacVerify => "hmac_sha256_verify",
            Op::EcSign => "ecdsa_p256_sign",
            Op::EcVerify => "ecdsa_p256_verify",
            Op::RsaSign => "rsa2048_sign",
            Op::RsaVerify => "rsa2048_verify",
        }
    }
}

/// A closure doing one operation per call.
pub type Worker<'a> = Box<dyn FnMut() + Send + 'a>;

/// Something that runs the workloads: a module or the raw library.
pub trait Target: Sync {
    fn name(&self) -> &'static str;
    /// A worker for thread `t` (each thread of a module gets its own session).
    /// `None` if this target does not run `op`.
    fn worker(&self, t: usize, op: Op, size: usize) -> Option<Worker<'_>>;
}

/// One measurement: operations per wall-clock second (threads added up), and per CPU
/// second of the threads doing them (each thread's ops over its own CPU time, added up:
/// what the threads would do with a core each). The second is not disturbed by other
/// processes taking the CPU, so it shows contention between the threads themselves
/// (locks, shared cache lines) even on a loaded machine.
#[derive(Clone, Copy)]
pub struct Rate {
    pub wall: f64,
    pub cpu: f64,
}

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the calling thread's CPU clock into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// [`Rate`] of `workers` run together for `budget` (one thread each).
pub fn rate(mut workers: Vec<Worker<'_>>, budget: Duration) -> Rate {
    fn run(w: &mut Worker<'_>, budget: Duration) -> Rate {
        w(); // warm-up: first-use key preparation, caches
        let start = Instant::now();
        let cpu0 = thread_cpu_secs();
        let mut n = 0u64;
        let mut batch = 1u64;
        loop {
            for _ in 0..batch {
                w();
            }
            n += batch;
            let el = start.elapsed();
            if el >= budget {
                let cpu = (thread_cpu_secs() - cpu0).max(1e-9);
                return Rate {
                    wall: n as f64 / el.as_secs_f64(),
                    cpu: n as f64 / cpu,
                };
            }
            if el < budget / 32 && batch < 1 << 20 {
                batch *= 2;
            }
        }
    }
    if workers.len() == 1 {
        return run(&mut workers[0], budget);
    }
    let barrier = Barrier::new(workers.len());
    std::thread::scope(|sc| {
        let hs: Vec<_> = workers
            .iter_mut()
            .map(|w| {
                let barrier = &barrier;
                sc.spawn(move || {
                    barrier.wait();
                    run(w, budget)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).fold(
            Rate {
                wall: 0.0,
                cpu: 0.0,
            },
            |a, r| Rate {
                wall: a.wall + r.wall,
                cpu: a.cpu + r.cpu,
            },
        )
    })
}

pub const SO_PIN: &str = "87654321";
pub const USER_PIN: &str = "123456";
const MSG: [u8; 64] = [0x42; 64];
/// What CKM_ECDSA signs (SoftHSM 2.6 has no CKM_ECDSA_SHA256): a SHA-256 digest's length.
const DIGEST: [u8; 32] = [0x43; 32];

/// A PKCS#11 module with a logged-in token, two sessions and one key of each kind
/// (session objects, CKA_TOKEN false, generated in the module).
pub struct P11Target {
    pub m: P11,
    sessions: Vec<CK_SESSION_HANDLE>,
    aes: CK_OBJECT_HANDLE,
    hmac: CK_OBJECT_HANDLE,
    ec: (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE),
    rsa: (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE),
}

impl P11Target {
    pub fn setup(m: P11, threads: usize) -> R<P11Target> {
        let slot = m.fresh_token("bench", SO_PIN, USER_PIN)?;
        let sessions = (0..threads).map(|_| m.open(slot)).collect::<R<Vec<_>>>()?;
        let s = sessions[0];
        m.login(s, CKU_USER, USER_PIN)?;
        let secret = |class_bits: Tpl| {
            class_bits
                .bool(CKA_TOKEN, false)
                .bool(CKA_PRIVATE, true)
                .bool(CKA_SENSITIVE, true)
                .ulong(CKA_VALUE_LEN, 32)
        };
        let aes = m.generate_key(
            s,
            CKM_AES_KEY_GEN,
            secret(Tpl::new())
                .ulong(CKA_CLASS, CKO_SECRET_KEY)
                .ulong(CKA_KEY_TYPE, CKK_AES)
                .bool(CKA_ENCRYPT, true)
                .bool(CKA_DECRYPT, true),
        )?;
        let hmac = m.generate_key(
            s,
            CKM_GENERIC_SECRET_KEY_GEN,
            secret(Tpl::new())
                .ulong(CKA_CLASS, CKO_SECRET_KEY)
                .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
                .bool(CKA_SIGN, true)
                .bool(CKA_VERIFY, true),
        )?;
        let pair = |mm, pubt: Tpl| {
            m.generate_pair(
                s,
                mm,
                pubt.bool(CKA_TOKEN, false).bool(CKA_VERIFY, true),
                Tpl::new()
                    .bool(CKA_TOKEN, false)
                    .bool(CKA_PRIVATE, true)
                    .bool(CKA_SENSITIVE, true)
                    .bool(CKA_SIGN, true),
            )
        };
        let ec = pair(
            CKM_EC_KEY_PAIR_GEN,
            Tpl::new().bytes(CKA_EC_PARAMS, &[6, 8, 42, 134, 72, 206, 61, 3, 1, 7]),
        )?;
        let rsa = pair(
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            Tpl::new()
                .ulong(CKA_MODULUS_BITS, 2048)
                .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]),
        )?;
        Ok(P11Target {
            m,
            sessions,
            aes,
            hmac,
            ec,
            rsa,
        })
    }
}

impl Target for P11Target {
    fn name(&self) -> &'static str {
        self.m.name
    }

    fn worker(&self, t: usize, op: Op, size: usize) -> Option<Worker<'_>> {
        let m = &self.m;
        let s = self.sessions[t];
        let data = vec![0x5au8; size];
        let mut out = vec![0u8; size + 512];
        let (aes, hmac) = (self.aes, self.hmac);
        let mut cbc_iv = [0x11u8; 16];
        let fixed_iv = [0x22u8; 12];
        // One ciphertext or signature made by the module itself, for the decrypt and
        // verify loops.
        let made = |op: Op| -> Vec<u8> {
            let mut out = vec![0u8; size + 64 + 512];
            let n = match op {
                Op::GcmDec => {
                    let mut iv = fixed_iv;
                    let mut p = gcm_params(&mut iv);
                    m.encrypt(s, &mut mech_with(CKM_AES_GCM, &mut p), aes, &data, &mut out)
                }
                Op::CbcPadDec => {
                    let mut iv = cbc_iv;
                    m.encrypt(
                        s,
                        &mut mech_with(CKM_AES_CBC_PAD, &mut iv),
                        aes,
                        &data,
                        &mut out,
                    )
                }
                Op::HmacVerify => m.sign(s, &mut mech(CKM_SHA256_HMAC), hmac, &data, &mut out),
                Op::EcVerify => m.sign(s, &mut mech(CKM_ECDSA), self.ec.1, &DIGEST, &mut out),
                Op::RsaVerify => m.sign(
                    s,
                    &mut mech(CKM_SHA256_RSA_PKCS),
                    self.rsa.1,
                    &MSG,
                    &mut out,
                ),
                _ => 0,
            };
            out.truncate(n);
            out
        };
        let input = made(op);
        Some(match op {
            Op::GcmEnc => {
                let mut ctr = (t as u64) << 56;
                Box::new(move || {
                    ctr += 1;
                    let mut iv = [0u8; 12];
                    iv[..8].copy_from_slice(&ctr.to_be_bytes());
                    let mut p = gcm_params(&mut iv);
                    let mut mm = mech_with(CKM_AES_GCM, &mut p);
                    black_box(m.encrypt(s, &mut mm, aes, &data, &mut out));
                })
            }
            Op::GcmDec => Box::new(move || {
                let mut iv = fixed_iv;
                let mut p = gcm_params(&mut iv);
                let mut mm = mech_with(CKM_AES_GCM, &mut p);
                let n = m.decrypt(s, &mut mm, aes, &input, &mut out);
                assert_eq!(n, size);
            }),
            Op::CbcPadEnc => Box::new(move || {
                let mut mm = mech_with(CKM_AES_CBC_PAD, &mut cbc_iv);
                black_box(m.encrypt(s, &mut mm, aes, &data, &mut out));
            }),
            Op::CbcPadDec => Box::new(move || {
                let mut mm = mech_with(CKM_AES_CBC_PAD, &mut cbc_iv);
                let n = m.decrypt(s, &mut mm, aes, &input, &mut out);
                assert_eq!(n, size);
            }),
            Op::HmacSign => Box::new(move || {
                black_box(m.sign(s, &mut mech(CKM_SHA256_HMAC), hmac, &data, &mut out));
            }),
            Op::HmacVerify => Box::new(move || {
                m.verify(s, &mut mech(CKM_SHA256_HMAC), hmac, &data, &input);
            }),
            Op::EcSign => {
                let k = self.ec.1;
                Box::new(move || {
                    black_box(m.sign(s, &mut mech(CKM_ECDSA), k, &DIGEST, &mut out));
                })
            }
            Op::EcVerify => {
                let k = self.ec.0;
                Box::new(move || m.verify(s, &mut mech(CKM_ECDSA), k, &DIGEST, &input))
            }
            Op::RsaSign => {
                let k = self.rsa.1;
                Box::new(move || {
                    black_box(m.sign(s, &mut mech(CKM_SHA256_RSA_PKCS), k, &MSG, &mut out));
                })
            }
            Op::RsaVerify => {
                let k = self.rsa.0;
                Box::new(move || m.verify(s, &mut mech(CKM_SHA256_RSA_PKCS), k, &MSG, &input))
            }
        })
    }
}

/// aws-lc-rs called directly: the machine's limit for the same operations.
pub struct Raw {
    /// Separate input and output buffers, as C_Encrypt has (AES-GCM only); else in
    /// place, the upper bound.
    out_of_place: bool,
    gcm: LessSafeKey,
    cbc_e: PaddedBlockEncryptingKey,
    cbc_d: PaddedBlockDecryptingKey,
    hmac: hmac::Key,
    ec: EcdsaKeyPair,
    rsa: RsaKeyPair,
    rng: SystemRandom,
}

impl Raw {
    pub fn new(out_of_place: bool) -> R<Raw> {
        let e = |_| "aws-lc-rs key".to_string();
        let k = [7u8; 32];
        Ok(Raw {
            out_of_place,
            gcm: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).map_err(e)?),
            cbc_e: PaddedBlockEncryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(&AES_256, &k).map_err(e)?,
            )
            .map_err(e)?,
            cbc_d: PaddedBlockDecryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(&AES_256, &k).map_err(e)?,
            )
            .map_err(e)?,
            hmac: hmac::Key::new(hmac::HMAC_SHA256, &k),
            ec: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(e)?,
            rsa: RsaKeyPair::generate(KeySize::Rsa2048).map_err(e)?,
            rng: SystemRandom::new(),
        })
    }
}

impl Target for Raw {
    fn name(&self) -> &'static str {
        if self.out_of_place {
            "aws-lc-rs out of place"
        } else {
            "aws-lc-rs"
        }
    }

    fn worker(&self, t: usize, op: Op, size: usize) -> Option<Worker<'_>> {
        let data = vec![0x5au8; size];
        let mut buf = data.clone();
        let mut out = vec![0u8; size + 16];
        let iv16 = [0x11u8; 16];
        if self.out_of_place && op != Op::GcmEnc {
            return None;
        }
        Some(match op {
            Op::GcmEnc if self.out_of_place => {
                let mut ctr = (t as u64) << 56;
                Box::new(move || {
                    ctr += 1;
                    let mut iv = [0u8; 12];
                    iv[..8].copy_from_slice(&ctr.to_be_bytes());
                    let n = Nonce::assume_unique_for_key(iv);
                    let (ct, tag) = out.split_at_mut(size);
                    self.gcm
                        .seal_out_of_place_scatter(n, Aad::empty(), &data, ct, &[], tag)
                        .unwrap();
                })
            }
            // In place, no copy at all: the upper bound.
            Op::GcmEnc => {
                let mut ctr = (t as u64) << 56;
                Box::new(move || {
                    ctr += 1;
                    let mut iv = [0u8; 12];
                    iv[..8].copy_from_slice(&ctr.to_be_bytes());
                    let n = Nonce::assume_unique_for_key(iv);
                    let tag = self
                        .gcm
                        .seal_in_place_separate_tag(n, Aad::empty(), &mut buf)
                        .unwrap();
                    let _ = black_box(tag);
                })
            }
            // Out of place (ciphertext stays intact for the next call).
            Op::GcmDec => {
                let iv = [0x22u8; 12];
                let tag = self
                    .gcm
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::empty(),
                        &mut buf,
                    )
                    .unwrap();
                let tag = tag.as_ref().to_vec();
                let ct = buf;
                let mut pt = data;
                Box::new(move || {
                    self.gcm
                        .open_separate_gather(
                            Nonce::assume_unique_for_key(iv),
                            Aad::empty(),
                            &ct,
                            &tag,
                            &mut pt,
                        )
                        .unwrap();
                })
            }
            // aws-lc-rs pads in a Vec: one copy of the input per call.
            Op::CbcPadEnc => {
                let mut v = Vec::with_capacity(size + 16);
                Box::new(move || {
                    v.clear();
                    v.extend_from_slice(&data);
                    self.cbc_e
                        .less_safe_encrypt(&mut v, EncryptionContext::Iv128(iv16.into()))
                        .unwrap();
                })
            }
            Op::CbcPadDec => {
                let mut v = data.clone();
                self.cbc_e
                    .less_safe_encrypt(&mut v, EncryptionContext::Iv128(iv16.into()))
                    .unwrap();
                let ct = v;
                Box::new(move || {
                    out[..ct.len()].copy_from_slice(&ct);
                    let pt = self
                        .cbc_d
                        .decrypt(&mut out[..ct.len()], DecryptionContext::Iv128(iv16.into()))
                        .unwrap();
                    assert_eq!(pt.len(), size);
                })
            }
            Op::HmacSign => Box::new(move || {
                black_box(hmac::sign(&self.hmac, &data));
            }),
            Op::HmacVerify => {
                let tag = hmac::sign(&self.hmac, &data).as_ref().to_vec();
                Box::new(move || hmac::verify(&self.hmac, &data, &tag).unwrap())
            }
            Op::EcSign => Box::new(move || {
                black_box(self.ec.sign(&self.rng, &MSG).unwrap());
            }),
            Op::EcVerify => {
                let sig = self.ec.sign(&self.rng, &MSG).unwrap().as_ref().to_vec();
                let pk = UnparsedPublicKey::new(
                    &ECDSA_P256_SHA256_FIXED,
                    self.ec.public_key().as_ref().to_vec(),
                );
                Box::new(move || pk.verify(&MSG, &sig).unwrap())
            }
            Op::RsaSign => {
                let mut sig = vec![0u8; self.rsa.public_modulus_len()];
                Box::new(move || {
                    self.rsa
                        .sign(&RSA_PKCS1_SHA256, &self.rng, &MSG, &mut sig)
                        .unwrap();
                })
            }
            Op::RsaVerify => {
                let mut sig = vec![0u8; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(&RSA_PKCS1_SHA256, &self.rng, &MSG, &mut sig)
                    .unwrap();
                let pk = UnparsedPublicKey::new(
                    &RSA_PKCS1_2048_8192_SHA256,
                    self.rsa.public_key().as_ref().to_vec(),
                );
                Box::new(move || pk.verify(&MSG, &sig).unwrap())
            }
        })
    }
}
