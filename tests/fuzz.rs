//! Robustness (issue 5, item 5): a property test over random call sequences on the raw
//! function list. A small seeded PRNG drives every C_* function a session-using
//! application calls, in a session-realistic order, with random, valid and stale handles,
//! random lengths, NULL pointers where the spec lets a module check for them, random
//! templates (types, lengths, values) and random mechanisms with random parameter bytes.
//!
//! Every call must return a code the PKCS#11 3.0 base spec lists for that function
//! ("Return values" of each function in §5), never CKR_GENERAL_ERROR (what the module's
//! catch_unwind makes of a panic), never crash, never hang (a watchdog aborts the process
//! if one call takes longer than a minute). Only pointers the module can check are
//! varied (NULL or a valid buffer with an honest length): a wild non-NULL pointer is the
//! caller's fault by the spec, so none is passed.
//!
//! `P11KMS_FUZZ_SECS` bounds the run (default 5; CI: 60), `P11KMS_FUZZ_SEED` replays one.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use cryptoki_sys::*;

/// xorshift64*: small, seedable, good enough to pick arguments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max as u64 + 1) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// The codes every function may return (PKCS#11 3.0 §5.1.1, "universal" and the
// session-related ones), plus each function's own list below.
const UNIVERSAL: &[CK_RV] = &[
    CKR_OK,
    CKR_HOST_MEMORY,
    CKR_FUNCTION_FAILED,
    CKR_CRYPTOKI_NOT_INITIALIZED,
    CKR_ARGUMENTS_BAD,
];
const SESSION: &[CK_RV] = &[
    CKR_SESSION_HANDLE_INVALID,
    CKR_SESSION_CLOSED,
    CKR_DEVICE_ERROR,
    CKR_DEVICE_MEMORY,
    CKR_DEVICE_REMOVED,
    CKR_TOKEN_NOT_PRESENT,
];
const OPERATION: &[CK_RV] = &[
    CKR_OPERATION_ACTIVE,
    CKR_OPERATION_NOT_INITIALIZED,
    CKR_FUNCTION_CANCELED,
    CKR_USER_NOT_LOGGED_IN,
    CKR_FUNCTION_NOT_SUPPORTED,
];
const INIT: &[CK_RV] = &[
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_TYPE_INCONSISTENT,
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
    CKR_PIN_EXPIRED,
    CKR_OPERATION_ACTIVE,
];
const DATA: &[CK_RV] = &[
    CKR_BUFFER_TOO_SMALL,
    CKR_DATA_INVALID,
    CKR_DATA_LEN_RANGE,
    CKR_ENCRYPTED_DATA_INVALID,
    CKR_ENCRYPTED_DATA_LEN_RANGE,
    CKR_SIGNATURE_INVALID,
    CKR_SIGNATURE_LEN_RANGE,
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_INDIGESTIBLE,
];
const TEMPLATE: &[CK_RV] = &[
    CKR_ATTRIBUTE_READ_ONLY,
    CKR_ATTRIBUTE_TYPE_INVALID,
    CKR_ATTRIBUTE_VALUE_INVALID,
    CKR_CURVE_NOT_SUPPORTED,
    CKR_DOMAIN_PARAMS_INVALID,
    CKR_TEMPLATE_INCOMPLETE,
    CKR_TEMPLATE_INCONSISTENT,
    CKR_SESSION_READ_ONLY,
    CKR_USER_NOT_LOGGED_IN,
    CKR_TOKEN_WRITE_PROTECTED,
    CKR_PIN_EXPIRED,
    CKR_OPERATION_ACTIVE,
];
const KEYGEN: &[CK_RV] = &[
    CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
    CKR_KEY_SIZE_RANGE,
    CKR_FUNCTION_CANCELED,
];
const WRAP: &[CK_RV] = &[
    CKR_BUFFER_TOO_SMALL,
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_NOT_WRAPPABLE,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_UNEXTRACTABLE,
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_WRAPPING_KEY_HANDLE_INVALID,
    CKR_WRAPPING_KEY_SIZE_RANGE,
    CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    CKR_UNWRAPPING_KEY_SIZE_RANGE,
    CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_WRAPPED_KEY_INVALID,
    CKR_WRAPPED_KEY_LEN_RANGE,
    CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
    CKR_FUNCTION_CANCELED,
];

/// The spec's list for `f`, on top of UNIVERSAL.
fn allowed(f: &str) -> Vec<CK_RV> {
    let mut v: Vec<CK_RV> = UNIVERSAL.to_vec();
    let add = |v: &mut Vec<CK_RV>, s: &[CK_RV]| v.extend_from_slice(s);
    match f {
        "C_GetInfo" => {}
        "C_InitToken" => add(
            &mut v,
            &[
                CKR_SESSION_EXISTS,
                CKR_PIN_INCORRECT,
                CKR_PIN_LOCKED,
                CKR_SLOT_ID_INVALID,
                CKR_TOKEN_NOT_PRESENT,
                CKR_TOKEN_NOT_RECOGNIZED,
                CKR_TOKEN_WRITE_PROTECTED,
                CKR_DEVICE_ERROR,
            ],
        ),
        "C_InitPIN" | "C_SetPIN" => {
            add(&mut v, SESSION);
            add(
                &mut v,
                &[
                    CKR_PIN_INCORRECT,
                    CKR_PIN_INVALID,
                    CKR_PIN_LEN_RANGE,
                    CKR_PIN_LOCKED,
                    CKR_SESSION_READ_ONLY,
                    CKR_TOKEN_WRITE_PROTECTED,
                    CKR_USER_NOT_LOGGED_IN,
                ],
            );
        }
        "unsupported" | "C_LoginUser" | "C_Message*" => {
            add(&mut v, SESSION);
            add(
                &mut v,
                &[
                    CKR_FUNCTION_NOT_SUPPORTED,
                    CKR_FUNCTION_NOT_PARALLEL,
                    CKR_NO_EVENT,
                ],
            );
        }
        "C_SessionCancel" => add(&mut v, SESSION),
        "C_GetInterfaceList" => add(&mut v, &[CKR_BUFFER_TOO_SMALL]),
        "C_GetSlotList" => add(&mut v, &[CKR_BUFFER_TOO_SMALL]),
        "C_GetSlotInfo" => add(&mut v, &[CKR_SLOT_ID_INVALID, CKR_DEVICE_ERROR]),
        "C_GetTokenInfo" => add(
            &mut v,
            &[
                CKR_SLOT_ID_INVALID,
                CKR_TOKEN_NOT_PRESENT,
                CKR_TOKEN_NOT_RECOGNIZED,
                CKR_DEVICE_ERROR,
            ],
        ),
        "C_GetMechanismList" => add(
            &mut v,
            &[
                CKR_BUFFER_TOO_SMALL,
                CKR_SLOT_ID_INVALID,
                CKR_TOKEN_NOT_PRESENT,
                CKR_TOKEN_NOT_RECOGNIZED,
            ],
        ),
        "C_GetMechanismInfo" => add(
            &mut v,
            &[
                CKR_MECHANISM_INVALID,
                CKR_SLOT_ID_INVALID,
                CKR_TOKEN_NOT_PRESENT,
                CKR_TOKEN_NOT_RECOGNIZED,
            ],
        ),
        "C_OpenSession" => add(
            &mut v,
            &[
                CKR_SESSION_COUNT,
                CKR_SESSION_PARALLEL_NOT_SUPPORTED,
                CKR_SESSION_READ_WRITE_SO_EXISTS,
                CKR_SLOT_ID_INVALID,
                CKR_TOKEN_NOT_PRESENT,
                CKR_TOKEN_NOT_RECOGNIZED,
                CKR_TOKEN_WRITE_PROTECTED,
                CKR_DEVICE_ERROR,
            ],
        ),
        "C_CloseSession"
        | "C_GetSessionInfo"
        | "C_Logout"
        | "C_SeedRandom"
        | "C_GenerateRandom"
        | "C_GetOperationState" => {
            add(&mut v, SESSION);
            add(
                &mut v,
                &[
                    CKR_USER_NOT_LOGGED_IN,
                    CKR_RANDOM_SEED_NOT_SUPPORTED,
                    CKR_RANDOM_NO_RNG,
                    CKR_OPERATION_ACTIVE,
                    CKR_FUNCTION_NOT_SUPPORTED,
                    CKR_BUFFER_TOO_SMALL,
                    CKR_STATE_UNSAVEABLE,
                    CKR_OPERATION_NOT_INITIALIZED,
                ],
            );
        }
        "C_CloseAllSessions" => add(&mut v, &[CKR_SLOT_ID_INVALID, CKR_TOKEN_NOT_PRESENT]),
        "C_Login" => {
            add(&mut v, SESSION);
            add(
                &mut v,
                &[
                    CKR_OPERATION_NOT_INITIALIZED,
                    CKR_PIN_INCORRECT,
                    CKR_PIN_LOCKED,
                    CKR_PIN_LEN_RANGE,
                    CKR_SESSION_READ_ONLY_EXISTS,
                    CKR_USER_ALREADY_LOGGED_IN,
                    CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
                    CKR_USER_PIN_NOT_INITIALIZED,
                    CKR_USER_TOO_MANY_TYPES,
                    CKR_USER_TYPE_INVALID,
                ],
            );
        }
        "C_CreateObject"
        | "C_CopyObject"
        | "C_SetAttributeValue"
        | "C_GenerateKey"
        | "C_GenerateKeyPair"
        | "C_UnwrapKey" => {
            add(&mut v, SESSION);
            add(&mut v, TEMPLATE);
            add(&mut v, &[CKR_OBJECT_HANDLE_INVALID, CKR_ACTION_PROHIBITED]);
            if f.starts_with("C_Generate") || f == "C_UnwrapKey" {
                add(&mut v, KEYGEN);
            }
            if f == "C_UnwrapKey" {
                add(&mut v, WRAP);
            }
        }
        "C_DestroyObject" | "C_GetObjectSize" => {
            add(&mut v, SESSION);
            add(
                &mut v,
                &[
                    CKR_OBJECT_HANDLE_INVALID,
                    CKR_ACTION_PROHIBITED,
                    CKR_SESSION_READ_ONLY,
                    CKR_TOKEN_WRITE_PROTECTED,
                    CKR_PIN_EXPIRED,
                    CKR_INFORMATION_SENSITIVE,
                ],
            );
        }
        "C_GetAttributeValue" => {
            add(&mut v, SESSION);
            add(
                &mut v,
                &[
                    CKR_ATTRIBUTE_SENSITIVE,
                    CKR_ATTRIBUTE_TYPE_INVALID,
                    CKR_BUFFER_TOO_SMALL,
                    CKR_OBJECT_HANDLE_INVALID,
                ],
            );
        }
        "C_FindObjectsInit" | "C_FindObjects" | "C_FindObjectsFinal" => {
            add(&mut v, SESSION);
            add(
                &mut v,
                &[
                    CKR_ATTRIBUTE_TYPE_INVALID,
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    CKR_OPERATION_ACTIVE,
                    CKR_OPERATION_NOT_INITIALIZED,
                    CKR_PIN_EXPIRED,
                ],
            );
        }
        "C_WrapKey" => {
            add(&mut v, SESSION);
            add(&mut v, WRAP);
            add(&mut v, OPERATION);
            add(&mut v, &[CKR_PIN_EXPIRED]);
        }
        f if f.ends_with("Init") => {
            add(&mut v, SESSION);
            add(&mut v, INIT);
            add(&mut v, &[CKR_USER_NOT_LOGGED_IN]);
        }
        // The data calls of encrypt, decrypt, digest, sign, verify (and C_DigestKey).
        _ => {
            add(&mut v, SESSION);
            add(&mut v, OPERATION);
            add(&mut v, DATA);
        }
    }
    v
}

/// The module's PKCS#11 3.0 function list (C_GetInterface "PKCS 11", 3.0).
fn f30() -> &'static CK_FUNCTION_LIST_3_0 {
    static F: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let p = *F.get_or_init(|| unsafe {
        let gi: libloading::Symbol<
            unsafe extern "C" fn(
                *mut u8,
                *mut CK_VERSION,
                *mut *mut CK_INTERFACE,
                CK_FLAGS,
            ) -> CK_RV,
        > = raw().lib.get(b"C_GetInterface\0").unwrap();
        let mut name = *b"PKCS 11\0";
        let mut v = CK_VERSION { major: 3, minor: 0 };
        let mut i: *mut CK_INTERFACE = std::ptr::null_mut();
        assert_eq!(gi(name.as_mut_ptr(), &mut v, &mut i, 0), CKR_OK);
        (*i).pFunctionList as usize
    });
    unsafe { &*(p as *const CK_FUNCTION_LIST_3_0) }
}

/// What the fuzzer holds: handles it made, some since destroyed or closed.
struct Pools {
    slot: CK_SLOT_ID,
    sessions: Vec<CK_SESSION_HANDLE>,
    stale_sessions: Vec<CK_SESSION_HANDLE>,
    objects: Vec<CK_OBJECT_HANDLE>,
    stale_objects: Vec<CK_OBJECT_HANDLE>,
    mechs: Vec<CK_MECHANISM_TYPE>,
    /// Live keys by kind, so that operation inits often pair a key with a mechanism it
    /// takes (and the paths behind Init are reached).
    keys: Vec<(CK_OBJECT_HANDLE, &'static [CK_MECHANISM_TYPE])>,
}

const AES_MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_AES_ECB,
    CKM_AES_CBC,
    CKM_AES_CBC_PAD,
    CKM_AES_CTR,
    CKM_AES_GCM,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_PAD,
    CKM_AES_KEY_WRAP_KWP,
    CKM_AES_CMAC,
    CKM_AES_CMAC_GENERAL,
];
const HMAC_MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_SHA_1_HMAC,
    CKM_SHA256_HMAC,
    CKM_SHA512_HMAC,
    CKM_SHA256_HMAC_GENERAL,
    CKM_SHA384_HMAC_GENERAL,
];
const EC_MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA512,
];
const RSA_MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_RSA_PKCS_OAEP,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
];

/// A parameter the mechanism takes (so the data calls after Init get exercised).
fn good_param(t: CK_MECHANISM_TYPE) -> Mech {
    fn raw<T>(t: &T) -> Vec<u8> {
        unsafe {
            std::slice::from_raw_parts((t as *const T).cast::<u8>(), std::mem::size_of::<T>())
                .to_vec()
        }
    }
    let param: Vec<u8> = match t {
        CKM_AES_CBC | CKM_AES_CBC_PAD => vec![7; 16],
        CKM_AES_CTR => raw(&CK_AES_CTR_PARAMS {
            ulCounterBits: 128,
            cb: [1; 16],
        }),
        CKM_SHA256_HMAC_GENERAL | CKM_SHA384_HMAC_GENERAL | CKM_AES_CMAC_GENERAL => {
            16u64.to_ne_bytes().to_vec()
        }
        CKM_RSA_PKCS_PSS | CKM_SHA256_RSA_PKCS_PSS => raw(&CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            sLen: 32,
        }),
        CKM_SHA512_RSA_PKCS_PSS => raw(&CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA512,
            mgf: CKG_MGF1_SHA512,
            sLen: 64,
        }),
        _ => Vec::new(),
    };
    let mut m = Mech {
        _store: Vec::new(),
        _param: param,
        m: CK_MECHANISM {
            mechanism: t,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        },
    };
    if !m._param.is_empty() {
        m.m.pParameter = m._param.as_mut_ptr().cast();
        m.m.ulParameterLen = m._param.len() as CK_ULONG;
    }
    m
}

/// Makes live keys on session `h` (a session AES and HMAC key and an EC pair) and
/// records them in the pools; the module's answers are not checked here.
fn replenish(p: &mut Pools, h: CK_SESSION_HANDLE) {
    let f = raw().f;
    let (tru, fal) = (1u8, 0u8);
    let b = |t, v: &u8| CK_ATTRIBUTE {
        type_: t,
        pValue: (v as *const u8) as *mut _,
        ulValueLen: 1,
    };
    let len32 = 32u64;
    for (mech, kt, mechs) in [
        (CKM_AES_KEY_GEN, CKK_AES, AES_MECHS),
        (CKM_GENERIC_SECRET_KEY_GEN, CKK_GENERIC_SECRET, HMAC_MECHS),
    ] {
        let _ = kt;
        let mut t = [
            CK_ATTRIBUTE {
                type_: CKA_VALUE_LEN,
                pValue: (&len32 as *const u64) as *mut _,
                ulValueLen: 8,
            },
            b(CKA_TOKEN, &fal),
            b(CKA_PRIVATE, &fal),
            b(CKA_ENCRYPT, &tru),
            b(CKA_DECRYPT, &tru),
            b(CKA_SIGN, &tru),
            b(CKA_VERIFY, &tru),
            b(CKA_WRAP, &tru),
            b(CKA_UNWRAP, &tru),
            b(CKA_EXTRACTABLE, &tru),
        ];
        let mut m = CK_MECHANISM {
            mechanism: mech,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut k = 0;
        if unsafe {
            (f.C_GenerateKey.unwrap())(h, &mut m, t.as_mut_ptr(), t.len() as CK_ULONG, &mut k)
        } == CKR_OK
        {
            p.objects.push(k);
            p.keys.push((k, mechs));
        }
    }
    let mut ec = CK_MECHANISM {
        mechanism: CKM_EC_KEY_PAIR_GEN,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut pt = [
        CK_ATTRIBUTE {
            type_: CKA_EC_PARAMS,
            pValue: P256_PARAMS.as_ptr() as *mut _,
            ulValueLen: P256_PARAMS.len() as CK_ULONG,
        },
        b(CKA_TOKEN, &fal),
    ];
    let mut qt = [b(CKA_TOKEN, &fal), b(CKA_SIGN, &tru), b(CKA_PRIVATE, &fal)];
    let (mut a, mut c) = (0, 0);
    if unsafe {
        (f.C_GenerateKeyPair.unwrap())(
            h,
            &mut ec,
            pt.as_mut_ptr(),
            2,
            qt.as_mut_ptr(),
            3,
            &mut a,
            &mut c,
        )
    } == CKR_OK
    {
        p.objects.extend([a, c]);
        p.keys.push((a, EC_MECHS));
        p.keys.push((c, EC_MECHS));
    }
    if p.keys.len() > 64 {
        p.keys.drain(..16);
    }
}

const ATTRS: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_KEY_TYPE,
    CKA_SUBJECT,
    CKA_ID,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_DERIVE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_VALUE_LEN,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_ALLOWED_MECHANISMS,
    CKA_WRAP_TEMPLATE,
    CKA_UNIQUE_ID,
    CKA_CHECK_VALUE,
    CKA_PUBLIC_KEY_INFO,
    CKA_START_DATE,
];

/// An owned template: random types (mostly known ones), values of a fitting shape or
/// random bytes, sometimes a NULL pValue (with any length).
struct Tmpl {
    _bufs: Vec<Vec<u8>>,
    a: Vec<CK_ATTRIBUTE>,
    /// Pass a NULL pTemplate (with the count of `a`).
    null: bool,
}

impl Tmpl {
    fn ptr(&mut self) -> *mut CK_ATTRIBUTE {
        if self.null || self.a.is_empty() {
            std::ptr::null_mut()
        } else {
            self.a.as_mut_ptr()
        }
    }
}

fn template(r: &mut Rng, for_read: bool) -> Tmpl {
    let n = r.below(7) as usize;
    let mut bufs = Vec::new();
    let mut types = Vec::new();
    let mut nulls = Vec::new();
    for _ in 0..n {
        let t = if r.chance(85) {
            r.pick(ATTRS)
        } else {
            r.next() & 0xffff_ffff
        };
        let v: Vec<u8> = match (t, r.below(3)) {
            (CKA_CLASS, 0) => r
                .pick(&[
                    CKO_DATA,
                    CKO_SECRET_KEY,
                    CKO_PUBLIC_KEY,
                    CKO_PRIVATE_KEY,
                    CKO_CERTIFICATE,
                ])
                .to_ne_bytes()
                .to_vec(),
            (CKA_KEY_TYPE, 0) => r
                .pick(&[CKK_AES, CKK_GENERIC_SECRET, CKK_EC, CKK_RSA])
                .to_ne_bytes()
                .to_vec(),
            (CKA_VALUE_LEN | CKA_MODULUS_BITS, 0) => r
                .pick(&[0u64, 16, 32, 33, 2048, u64::MAX])
                .to_ne_bytes()
                .to_vec(),
            (CKA_EC_PARAMS, 0) => P256_PARAMS.to_vec(),
            (CKA_TOKEN, _) => vec![0],
            (
                CKA_PRIVATE | CKA_SENSITIVE | CKA_ENCRYPT | CKA_DECRYPT | CKA_SIGN | CKA_VERIFY
                | CKA_WRAP | CKA_UNWRAP | CKA_EXTRACTABLE,
                0 | 1,
            ) => vec![r.below(2) as u8],
            _ => {
                if for_read {
                    vec![0; r.below(80) as usize]
                } else {
                    r.bytes(48)
                }
            }
        };
        types.push(t);
        nulls.push(r.chance(10));
        bufs.push(v);
    }
    let a = bufs
        .iter_mut()
        .zip(types)
        .zip(nulls)
        .map(|((b, t), null)| CK_ATTRIBUTE {
            type_: t,
            pValue: if null || b.is_empty() {
                std::ptr::null_mut()
            } else {
                b.as_mut_ptr().cast()
            },
            // With a NULL pValue any length is checkable; with a buffer, never more than it.
            ulValueLen: if null {
                r.below(64)
            } else {
                b.len() as CK_ULONG
            },
        })
        .collect();
    Tmpl {
        _bufs: bufs,
        a,
        null: r.chance(3),
    }
}

/// An owned mechanism: a type (mostly offered ones), and a parameter that is NULL with any
/// length, random bytes, or for the mechanisms whose parameter holds pointers (GCM, OAEP)
/// a struct whose pointers are valid and whose lengths are random but honest.
struct Mech {
    _store: Vec<Vec<u8>>,
    _param: Vec<u8>,
    m: CK_MECHANISM,
}

fn mechanism(r: &mut Rng, p: &Pools) -> Mech {
    let t = if r.chance(90) && !p.mechs.is_empty() {
        r.pick(&p.mechs)
    } else {
        r.next() & 0xffff_ffff
    };
    let mut store = Vec::new();
    let mut param: Vec<u8>;
    let mut len_override = None;
    let mut null = false;
    fn raw<T>(t: &T) -> Vec<u8> {
        unsafe {
            std::slice::from_raw_parts((t as *const T).cast::<u8>(), std::mem::size_of::<T>())
                .to_vec()
        }
    }
    match t {
        CKM_AES_GCM => {
            let mut iv = r.bytes(20);
            let mut aad = r.bytes(20);
            let g = CK_GCM_PARAMS {
                pIv: if iv.is_empty() {
                    std::ptr::null_mut()
                } else {
                    iv.as_mut_ptr()
                },
                ulIvLen: iv.len() as CK_ULONG,
                ulIvBits: r.pick(&[0, 96, 128, iv.len() as u64 * 8, u64::MAX]),
                pAAD: if aad.is_empty() {
                    std::ptr::null_mut()
                } else {
                    aad.as_mut_ptr()
                },
                ulAADLen: aad.len() as CK_ULONG,
                ulTagBits: r.pick(&[0, 32, 96, 128, 129, u64::MAX]),
            };
            param = raw(&g);
            store.push(iv);
            store.push(aad);
            if r.chance(10) {
                len_override = Some(r.below(64));
                null = true;
            }
        }
        CKM_RSA_PKCS_OAEP => {
            let mut label = r.bytes(16);
            let o = CK_RSA_PKCS_OAEP_PARAMS {
                hashAlg: {
                    let x = r.next();
                    r.pick(&[CKM_SHA_1, CKM_SHA256, CKM_SHA512, x])
                },
                mgf: {
                    let x = r.next();
                    r.pick(&[CKG_MGF1_SHA1, CKG_MGF1_SHA256, CKG_MGF1_SHA512, x])
                },
                source: {
                    let x = r.next();
                    r.pick(&[0, CKZ_DATA_SPECIFIED, x])
                },
                pSourceData: if label.is_empty() {
                    std::ptr::null_mut()
                } else {
                    label.as_mut_ptr().cast()
                },
                ulSourceDataLen: label.len() as CK_ULONG,
            };
            param = raw(&o);
            store.push(label);
            if r.chance(10) {
                len_override = Some(r.below(64));
                null = true;
            }
        }
        _ => {
            param = match r.below(4) {
                0 => Vec::new(),
                1 => r.bytes(64),
                2 => r
                    .pick(&[0u64, 8, 16, 20, 32, 64, u64::MAX])
                    .to_ne_bytes()
                    .to_vec(),
                _ => {
                    let s = CK_RSA_PKCS_PSS_PARAMS {
                        hashAlg: {
                            let x = r.next();
                            r.pick(&[CKM_SHA256, CKM_SHA384, x])
                        },
                        mgf: {
                            let x = r.next();
                            r.pick(&[CKG_MGF1_SHA256, CKG_MGF1_SHA384, x])
                        },
                        sLen: r.pick(&[0, 20, 32, 48, 1000, u64::MAX]),
                    };
                    raw(&s)
                }
            };
            if r.chance(10) {
                null = true;
                len_override = Some(r.below(64));
            }
        }
    }
    if param.is_empty() {
        null = true;
    }
    let mut m = Mech {
        _store: store,
        _param: std::mem::take(&mut param),
        m: CK_MECHANISM {
            mechanism: t,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        },
    };
    if null {
        m.m.ulParameterLen = len_override.unwrap_or(0);
    } else {
        m.m.pParameter = m._param.as_mut_ptr().cast();
        m.m.ulParameterLen = m._param.len() as CK_ULONG;
    }
    m
}

fn session(r: &mut Rng, p: &Pools) -> CK_SESSION_HANDLE {
    match r.below(20) {
        0 => r.next(),
        1 => 0,
        2 if !p.stale_sessions.is_empty() => r.pick(&p.stale_sessions),
        3..=9 if !p.sessions.is_empty() => *p.sessions.last().unwrap(),
        _ if !p.sessions.is_empty() => r.pick(&p.sessions),
        _ => r.below(8),
    }
}

fn object(r: &mut Rng, p: &Pools) -> CK_OBJECT_HANDLE {
    match r.below(20) {
        0 => r.next(),
        1 => 0,
        2 | 3 if !p.stale_objects.is_empty() => r.pick(&p.stale_objects),
        _ if !p.objects.is_empty() => r.pick(&p.objects),
        _ => r.below(64),
    }
}

/// An output buffer: NULL or a buffer with an honest (possibly short) length.
struct Out {
    buf: Vec<u8>,
    len: CK_ULONG,
    null: bool,
    /// Pass a NULL length pointer (the module must check it: CKR_ARGUMENTS_BAD).
    null_len: bool,
    /// Whether the call was given the length pointer at all.
    used: bool,
}

impl Out {
    fn new(r: &mut Rng) -> Out {
        let null = r.chance(25);
        let size = r.pick(&[0usize, 1, 15, 16, 31, 32, 64, 200, 512, 1024]);
        Out {
            buf: vec![0; size.max(1)],
            len: if null {
                r.below(4096)
            } else {
                size as CK_ULONG
            },
            null,
            null_len: r.chance(3),
            used: false,
        }
    }
    fn lenp(&mut self) -> *mut CK_ULONG {
        self.used = true;
        if self.null_len {
            std::ptr::null_mut()
        } else {
            &mut self.len
        }
    }
    fn ptr(&mut self) -> *mut u8 {
        if self.null {
            std::ptr::null_mut()
        } else {
            self.buf.as_mut_ptr()
        }
    }
    /// A module may write at most the buffer's length.
    fn check(&self, rv: CK_RV) -> Result<(), String> {
        if !self.used {
            return Ok(());
        }
        if self.null_len && rv == CKR_OK {
            return Err("CKR_OK with a NULL length pointer".into());
        }
        if rv == CKR_OK
            && !self.null
            && self.len as usize > self.buf.len().max(1)
            && !self.buf.is_empty()
        {
            return Err(format!(
                "returned length {} exceeds the {}-byte buffer",
                self.len,
                self.buf.len()
            ));
        }
        Ok(())
    }
}

/// Random input data: NULL with length 0, or bytes.
fn data(r: &mut Rng) -> Vec<u8> {
    let n = r.pick(&[0usize, 1, 15, 16, 17, 20, 32, 48, 64, 100, 256, 300]);
    (0..n).map(|_| r.next() as u8).collect()
}

fn ptr_or_null(v: &mut [u8]) -> *mut u8 {
    if v.is_empty() {
        std::ptr::null_mut()
    } else {
        v.as_mut_ptr()
    }
}

/// One random call; returns the function's name and its code (or a failed property).
fn step(r: &mut Rng, p: &mut Pools) -> (&'static str, CK_RV, Result<(), String>) {
    let f = raw().f;
    macro_rules! c {
        ($name:ident $(, $arg:expr)*) => {
            unsafe { (f.$name.unwrap())($($arg),*) }
        };
    }
    let which = r.below(48);
    let mut ok = Ok(());
    let (name, rv): (&'static str, CK_RV) = match which {
        0 => {
            let mut i: CK_INFO = unsafe { std::mem::zeroed() };
            ("C_GetInfo", c!(C_GetInfo, &mut i))
        }
        1 => {
            let mut o = Out::new(r);
            let mut n: CK_ULONG = o.len / 8;
            let mut list = vec![0 as CK_SLOT_ID; (o.buf.len() / 8).max(1)];
            let lp = if o.null {
                std::ptr::null_mut()
            } else {
                list.as_mut_ptr()
            };
            if !o.null {
                n = n.min(list.len() as CK_ULONG);
            }
            let rv = c!(C_GetSlotList, r.below(2) as CK_BBOOL, lp, &mut n);
            o.len = 0;
            ("C_GetSlotList", rv)
        }
        2 => {
            let mut i: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
            let s = if r.chance(70) { p.slot } else { r.next() };
            ("C_GetSlotInfo", c!(C_GetSlotInfo, s, &mut i))
        }
        3 => {
            let mut i: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            let s = if r.chance(70) { p.slot } else { r.next() };
            ("C_GetTokenInfo", c!(C_GetTokenInfo, s, &mut i))
        }
        4 => {
            let s = if r.chance(80) { p.slot } else { r.next() };
            let null = r.chance(40);
            let mut list = vec![0 as CK_MECHANISM_TYPE; r.below(80) as usize + 1];
            let mut n = if null {
                r.below(100)
            } else {
                r.below(list.len() as u64 + 1)
            };
            let lp = if null {
                std::ptr::null_mut()
            } else {
                list.as_mut_ptr()
            };
            ("C_GetMechanismList", c!(C_GetMechanismList, s, lp, &mut n))
        }
        5 => {
            let mut i: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
            let m = mechanism(r, p).m.mechanism;
            (
                "C_GetMechanismInfo",
                c!(C_GetMechanismInfo, p.slot, m, &mut i),
            )
        }
        6 | 7 => {
            let flags = match r.below(6) {
                0 => CKF_SERIAL_SESSION,
                1 => r.next(),
                2 => CKF_RW_SESSION,
                _ => CKF_SERIAL_SESSION | CKF_RW_SESSION,
            };
            let mut h = 0;
            let s = if r.chance(95) { p.slot } else { r.next() };
            let hp: *mut CK_SESSION_HANDLE = if r.chance(3) {
                std::ptr::null_mut()
            } else {
                &mut h
            };
            let rv = c!(C_OpenSession, s, flags, std::ptr::null_mut(), None, hp);
            if rv == CKR_OK {
                p.sessions.push(h);
            }
            ("C_OpenSession", rv)
        }
        8 => {
            let s = session(r, p);
            let rv = c!(C_CloseSession, s);
            if rv == CKR_OK {
                p.sessions.retain(|x| *x != s);
                p.stale_sessions.push(s);
            }
            ("C_CloseSession", rv)
        }
        9 => {
            let mut i: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
            (
                "C_GetSessionInfo",
                c!(C_GetSessionInfo, session(r, p), &mut i),
            )
        }
        10 => {
            // The right PIN mostly (a locked PIN would end the interesting part early).
            let mut pin = if r.chance(90) {
                USER_PIN.as_bytes().to_vec()
            } else {
                r.bytes(70)
            };
            let user = {
                let x = r.next();
                r.pick(&[CKU_USER, CKU_USER, CKU_USER, CKU_CONTEXT_SPECIFIC, x])
            };
            let pp = ptr_or_null(&mut pin);
            (
                "C_Login",
                c!(C_Login, session(r, p), user, pp, pin.len() as CK_ULONG),
            )
        }
        11 if r.chance(30) => ("C_Logout", c!(C_Logout, session(r, p))),
        11 => {
            let mut i: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
            (
                "C_GetSessionInfo",
                c!(C_GetSessionInfo, session(r, p), &mut i),
            )
        }
        12 | 13 => {
            let mut t = template(r, false);
            let mut h = 0;
            let rv = c!(
                C_CreateObject,
                session(r, p),
                t.ptr(),
                t.a.len() as CK_ULONG,
                if r.chance(3) {
                    std::ptr::null_mut()
                } else {
                    &mut h
                }
            );
            if rv == CKR_OK {
                p.objects.push(h);
            }
            ("C_CreateObject", rv)
        }
        14 => {
            let mut t = template(r, false);
            let mut h = 0;
            let rv = c!(
                C_CopyObject,
                session(r, p),
                object(r, p),
                t.ptr(),
                t.a.len() as CK_ULONG,
                &mut h
            );
            if rv == CKR_OK {
                p.objects.push(h);
            }
            ("C_CopyObject", rv)
        }
        15 => {
            let o = object(r, p);
            let rv = c!(C_DestroyObject, session(r, p), o);
            if rv == CKR_OK {
                p.objects.retain(|x| *x != o);
                p.stale_objects.push(o);
            }
            ("C_DestroyObject", rv)
        }
        16 => {
            let mut n = 0;
            (
                "C_GetObjectSize",
                c!(C_GetObjectSize, session(r, p), object(r, p), &mut n),
            )
        }
        17..=19 => {
            let mut t = template(r, true);
            let rv = c!(
                C_GetAttributeValue,
                session(r, p),
                object(r, p),
                t.ptr(),
                t.a.len() as CK_ULONG
            );
            for (a, b) in t.a.iter().zip(&t._bufs) {
                if !a.pValue.is_null()
                    && a.ulValueLen != CK_UNAVAILABLE_INFORMATION
                    && a.ulValueLen as usize > b.len()
                {
                    ok = Err(format!(
                        "attribute {:#x}: length {} beyond its {}-byte buffer",
                        a.type_,
                        a.ulValueLen,
                        b.len()
                    ));
                }
            }
            ("C_GetAttributeValue", rv)
        }
        20 => {
            let mut t = template(r, false);
            (
                "C_SetAttributeValue",
                c!(
                    C_SetAttributeValue,
                    session(r, p),
                    object(r, p),
                    t.ptr(),
                    t.a.len() as CK_ULONG
                ),
            )
        }
        21 => {
            let mut t = template(r, false);
            let tp = t.ptr();
            (
                "C_FindObjectsInit",
                c!(C_FindObjectsInit, session(r, p), tp, t.a.len() as CK_ULONG),
            )
        }
        22 => {
            let max = r.below(20);
            let mut hs = vec![0; max as usize + 1];
            let mut n = 0;
            let np: *mut CK_ULONG = if r.chance(3) {
                std::ptr::null_mut()
            } else {
                &mut n
            };
            let rv = c!(C_FindObjects, session(r, p), hs.as_mut_ptr(), max, np);
            if rv == CKR_OK && n > max {
                ok = Err(format!("C_FindObjects returned {n} > max {max}"));
            }
            if rv == CKR_OK {
                p.objects.extend_from_slice(&hs[..n.min(max) as usize]);
                p.objects.sort();
                p.objects.dedup();
            }
            ("C_FindObjects", rv)
        }
        23 => ("C_FindObjectsFinal", c!(C_FindObjectsFinal, session(r, p))),
        24..=28 => {
            let mut m = mechanism(r, p);
            let s = session(r, p);
            let mut k = object(r, p);
            if r.chance(60) && !p.keys.is_empty() {
                let (h, mechs) = r.pick(&p.keys);
                k = h;
                let mt = r.pick(mechs);
                if mt != CKM_AES_GCM && mt != CKM_RSA_PKCS_OAEP {
                    m.m.mechanism = mt;
                    if r.chance(70) {
                        m = good_param(mt);
                    }
                }
            }
            let mp = if r.chance(3) {
                std::ptr::null_mut()
            } else {
                &m.m as *const _ as *mut _
            };
            match which {
                24 => ("C_EncryptInit", c!(C_EncryptInit, s, mp, k)),
                25 => ("C_DecryptInit", c!(C_DecryptInit, s, mp, k)),
                26 => ("C_SignInit", c!(C_SignInit, s, mp, k)),
                27 => ("C_VerifyInit", c!(C_VerifyInit, s, mp, k)),
                _ => ("C_DigestInit", c!(C_DigestInit, s, mp)),
            }
        }
        29..=38 => {
            let s = session(r, p);
            let mut d = data(r);
            let (dp, dl) = (ptr_or_null(&mut d), d.len() as CK_ULONG);
            let mut o = Out::new(r);
            let op = o.ptr();
            let rv;
            let name = match which {
                29 => {
                    rv = c!(C_Encrypt, s, dp, dl, op, o.lenp());
                    "C_Encrypt"
                }
                30 => {
                    rv = c!(C_EncryptUpdate, s, dp, dl, op, o.lenp());
                    "C_EncryptUpdate"
                }
                31 => {
                    rv = c!(C_EncryptFinal, s, op, o.lenp());
                    "C_EncryptFinal"
                }
                32 => {
                    rv = c!(C_Decrypt, s, dp, dl, op, o.lenp());
                    "C_Decrypt"
                }
                33 => {
                    rv = c!(C_DecryptUpdate, s, dp, dl, op, o.lenp());
                    "C_DecryptUpdate"
                }
                34 => {
                    rv = c!(C_DecryptFinal, s, op, o.lenp());
                    "C_DecryptFinal"
                }
                35 => {
                    rv = match r.below(3) {
                        0 => c!(C_Sign, s, dp, dl, op, o.lenp()),
                        1 => c!(C_SignUpdate, s, dp, dl),
                        _ => c!(C_SignFinal, s, op, o.lenp()),
                    };
                    "C_Sign*"
                }
                36 => {
                    let mut sig = data(r);
                    let sp = ptr_or_null(&mut sig);
                    rv = match r.below(3) {
                        0 => c!(C_Verify, s, dp, dl, sp, sig.len() as CK_ULONG),
                        1 => c!(C_VerifyUpdate, s, dp, dl),
                        _ => c!(C_VerifyFinal, s, sp, sig.len() as CK_ULONG),
                    };
                    "C_Verify*"
                }
                37 => {
                    rv = match r.below(4) {
                        0 => c!(C_Digest, s, dp, dl, op, o.lenp()),
                        1 => c!(C_DigestUpdate, s, dp, dl),
                        2 => c!(C_DigestKey, s, object(r, p)),
                        _ => c!(C_DigestFinal, s, op, o.lenp()),
                    };
                    "C_Digest*"
                }
                _ => {
                    rv = if r.chance(50) {
                        c!(
                            C_GenerateRandom,
                            s,
                            op,
                            o.len.min(o.buf.len() as CK_ULONG) * (!o.null) as CK_ULONG
                        )
                    } else {
                        c!(C_SeedRandom, s, dp, dl)
                    };
                    "C_GenerateRandom"
                }
            };
            ok = o.check(rv);
            (name, rv)
        }
        39 => {
            let m = mechanism(r, p);
            let mut t = template(r, false);
            let mut h = 0;
            let rv = c!(
                C_GenerateKey,
                session(r, p),
                &m.m as *const _ as *mut _,
                t.ptr(),
                t.a.len() as CK_ULONG,
                &mut h
            );
            if rv == CKR_OK {
                p.objects.push(h);
            }
            ("C_GenerateKey", rv)
        }
        40 => {
            // EC pairs only mostly: RSA generation would spend the time budget.
            let mut m = mechanism(r, p);
            if m.m.mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN && r.chance(95) {
                m.m.mechanism = CKM_EC_KEY_PAIR_GEN;
            }
            let mut pubt = template(r, false);
            let mut privt = template(r, false);
            let (mut a, mut b) = (0, 0);
            let rv = c!(
                C_GenerateKeyPair,
                session(r, p),
                &m.m as *const _ as *mut _,
                pubt.ptr(),
                pubt.a.len() as CK_ULONG,
                privt.ptr(),
                privt.a.len() as CK_ULONG,
                &mut a,
                &mut b
            );
            if rv == CKR_OK {
                p.objects.push(a);
                p.objects.push(b);
            }
            ("C_GenerateKeyPair", rv)
        }
        41 => {
            let m = mechanism(r, p);
            let mut o = Out::new(r);
            let op = o.ptr();
            let rv = c!(
                C_WrapKey,
                session(r, p),
                &m.m as *const _ as *mut _,
                object(r, p),
                object(r, p),
                op,
                o.lenp()
            );
            ok = o.check(rv);
            ("C_WrapKey", rv)
        }
        42 => {
            let m = mechanism(r, p);
            let mut w = data(r);
            let wp = ptr_or_null(&mut w);
            let mut t = template(r, false);
            let mut h = 0;
            let rv = c!(
                C_UnwrapKey,
                session(r, p),
                &m.m as *const _ as *mut _,
                object(r, p),
                wp,
                w.len() as CK_ULONG,
                t.ptr(),
                t.a.len() as CK_ULONG,
                &mut h
            );
            if rv == CKR_OK {
                p.objects.push(h);
            }
            ("C_UnwrapKey", rv)
        }
        44 => {
            // Never the real SO PIN: a re-initialized token would end the run's meaning.
            let mut pin = r.bytes(70);
            let pp = ptr_or_null(&mut pin);
            let pl = pin.len() as CK_ULONG;
            match r.below(3) {
                0 => {
                    let mut label = [b' '; 32];
                    let slot = if r.chance(80) { p.slot } else { r.next() };
                    (
                        "C_InitToken",
                        c!(C_InitToken, slot, pp, pl, label.as_mut_ptr()),
                    )
                }
                1 => ("C_InitPIN", c!(C_InitPIN, session(r, p), pp, pl)),
                _ => {
                    let mut new = r.bytes(70);
                    let np = ptr_or_null(&mut new);
                    let nl = new.len() as CK_ULONG;
                    ("C_SetPIN", c!(C_SetPIN, session(r, p), pp, pl, np, nl))
                }
            }
        }
        45 => {
            // Functions the module does not offer (README "PKCS#11 functions").
            let s = session(r, p);
            let m = mechanism(r, p);
            let mp = &m.m as *const _ as *mut _;
            let mut d = data(r);
            let (dp, dl) = (ptr_or_null(&mut d), d.len() as CK_ULONG);
            let mut o = Out::new(r);
            let op = o.ptr();
            let rv = match r.below(9) {
                0 => {
                    let mut slot = 0;
                    c!(
                        C_WaitForSlotEvent,
                        CKF_DONT_BLOCK,
                        &mut slot,
                        std::ptr::null_mut()
                    )
                }
                1 => c!(C_GetFunctionStatus, s),
                2 => c!(C_CancelFunction, s),
                3 => c!(C_SetOperationState, s, dp, dl, object(r, p), object(r, p)),
                4 => c!(C_SignRecoverInit, s, mp, object(r, p)),
                5 => c!(C_VerifyRecoverInit, s, mp, object(r, p)),
                6 => {
                    let mut t = template(r, false);
                    let mut h = 0;
                    c!(
                        C_DeriveKey,
                        s,
                        mp,
                        object(r, p),
                        t.ptr(),
                        t.a.len() as CK_ULONG,
                        &mut h
                    )
                }
                7 => c!(C_DigestEncryptUpdate, s, dp, dl, op, o.lenp()),
                _ => c!(C_DecryptVerifyUpdate, s, dp, dl, op, o.lenp()),
            };
            ok = o.check(rv);
            ("unsupported", rv)
        }
        46 | 47 => {
            let g = f30();
            let s = session(r, p);
            match r.below(5) {
                0 | 1 => {
                    let flags = if r.chance(70) {
                        r.pick(&[
                            CKF_ENCRYPT,
                            CKF_DECRYPT,
                            CKF_SIGN,
                            CKF_VERIFY,
                            CKF_DIGEST,
                            CKF_FIND_OBJECTS,
                        ])
                    } else {
                        r.next()
                    };
                    ("C_SessionCancel", unsafe {
                        (g.C_SessionCancel.unwrap())(s, flags)
                    })
                }
                2 => {
                    let mut pin = r.bytes(20);
                    let mut user = r.bytes(20);
                    let (pp, pl) = (ptr_or_null(&mut pin), pin.len() as CK_ULONG);
                    let (up, ul) = (ptr_or_null(&mut user), user.len() as CK_ULONG);
                    ("C_LoginUser", unsafe {
                        (g.C_LoginUser.unwrap())(s, CKU_USER, pp, pl, up, ul)
                    })
                }
                3 => {
                    let m = mechanism(r, p);
                    let mp = &m.m as *const _ as *mut _;
                    ("C_Message*", unsafe {
                        (g.C_MessageEncryptInit.unwrap())(s, mp, object(r, p))
                    })
                }
                _ => {
                    let mut list: [CK_INTERFACE; 4] = unsafe { std::mem::zeroed() };
                    let null = r.chance(30);
                    let mut n: CK_ULONG = if null { 0 } else { r.below(5) };
                    let lp = if null {
                        std::ptr::null_mut()
                    } else {
                        list.as_mut_ptr()
                    };
                    let rv = unsafe { (g.C_GetInterfaceList.unwrap())(lp, &mut n) };
                    if rv == CKR_OK && !null && n > 4 {
                        ok = Err(format!("C_GetInterfaceList wrote {n} entries into 4"));
                    }
                    ("C_GetInterfaceList", rv)
                }
            }
        }
        _ => {
            if r.chance(5) {
                let rv = c!(C_CloseAllSessions, p.slot);
                if rv == CKR_OK {
                    p.stale_sessions.append(&mut p.sessions);
                }
                ("C_CloseAllSessions", rv)
            } else {
                let mut n = 0;
                (
                    "C_GetOperationState",
                    c!(
                        C_GetOperationState,
                        session(r, p),
                        std::ptr::null_mut(),
                        &mut n
                    ),
                )
            }
        }
    };
    (name, rv, ok)
}

/// One fuzzing thread: its own pools, keys and PRNG (seeded `seed`), for `secs`.
#[allow(clippy::too_many_arguments)]
fn worker(
    env: &'static Env,
    slot: cryptoki::slot::Slot,
    mechs: Vec<CK_MECHANISM_TYPE>,
    t: usize,
    seed: u64,
    secs: u64,
    start: Instant,
    last: &AtomicU64,
    current: &Mutex<String>,
    ready: &std::sync::Barrier,
) -> (u64, std::collections::BTreeMap<String, u64>, Vec<String>) {
    let mut p = Pools {
        slot: slot.id(),
        sessions: Vec::new(),
        stale_sessions: Vec::new(),
        objects: Vec::new(),
        stale_objects: Vec::new(),
        mechs,
        keys: Vec::new(),
    };
    // A few real keys for the operations to find.
    {
        let s = env.user_session(slot);
        let h = s.handle();
        p.sessions.push(h);
        let mut k: CK_OBJECT_HANDLE = 0;
        let mut t = [
            CK_ATTRIBUTE {
                type_: CKA_VALUE_LEN,
                pValue: (&32u64 as *const u64) as *mut _,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE {
                type_: CKA_TOKEN,
                pValue: (&0u8 as *const u8) as *mut _,
                ulValueLen: 1,
            },
        ];
        let mut m = CK_MECHANISM {
            mechanism: CKM_AES_KEY_GEN,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(
            call!(C_GenerateKey, h, &mut m, t.as_mut_ptr(), 2, &mut k),
            CKR_OK
        );
        p.objects.push(k);
        let mut ec = CK_MECHANISM {
            mechanism: CKM_EC_KEY_PAIR_GEN,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut pt = [CK_ATTRIBUTE {
            type_: CKA_EC_PARAMS,
            pValue: P256_PARAMS.as_ptr() as *mut _,
            ulValueLen: P256_PARAMS.len() as CK_ULONG,
        }];
        let (mut a, mut b) = (0, 0);
        assert_eq!(
            call!(
                C_GenerateKeyPair,
                h,
                &mut ec,
                pt.as_mut_ptr(),
                1,
                std::ptr::null_mut(),
                0,
                &mut a,
                &mut b
            ),
            CKR_OK
        );
        p.objects.extend([a, b]);
        replenish(&mut p, h);
        let mut rsa = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_KEY_PAIR_GEN,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        let bits = 2048u64;
        let e = [1u8, 0, 1];
        let tru = 1u8;
        let mut pt = [
            CK_ATTRIBUTE {
                type_: CKA_MODULUS_BITS,
                pValue: (&bits as *const u64) as *mut _,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE {
                type_: CKA_PUBLIC_EXPONENT,
                pValue: e.as_ptr() as *mut _,
                ulValueLen: 3,
            },
            CK_ATTRIBUTE {
                type_: CKA_TOKEN,
                pValue: (&tru as *const u8) as *mut _,
                ulValueLen: 1,
            },
        ];
        let mut qt = [CK_ATTRIBUTE {
            type_: CKA_TOKEN,
            pValue: (&tru as *const u8) as *mut _,
            ulValueLen: 1,
        }];
        let (mut ra, mut rb) = (0, 0);
        assert_eq!(
            call!(
                C_GenerateKeyPair,
                h,
                &mut rsa,
                pt.as_mut_ptr(),
                3,
                qt.as_mut_ptr(),
                1,
                &mut ra,
                &mut rb
            ),
            CKR_OK
        );
        p.objects.extend([ra, rb]);
        p.keys.push((ra, RSA_MECHS));
        p.keys.push((rb, RSA_MECHS));
        std::mem::forget(s); // the fuzzer owns the handle now (it may close it)
    }

    // Every thread has its keys before any starts (a logout would fail the others' setup).
    ready.wait();
    last.store(start.elapsed().as_secs(), Ordering::Relaxed);
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    let mut calls = 0u64;
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    while start.elapsed() < Duration::from_secs(secs) && failures.len() < 20 {
        last.store(start.elapsed().as_secs(), Ordering::Relaxed);
        *current.lock().unwrap() = format!("thread {t} call #{calls}");
        let (name, rv, prop) = step(&mut rng, &mut p);
        calls += 1;
        *counts.entry(format!("{name} {}", rv_name(rv))).or_default() += 1;
        let list = allowed(name);
        if rv == CKR_GENERAL_ERROR {
            failures.push(format!(
                "call #{calls} {name}: CKR_GENERAL_ERROR (a panic? see the log)"
            ));
        } else if !list.contains(&rv) {
            failures.push(format!(
                "call #{calls} {name}: {} is not in the spec's list",
                rv_name(rv)
            ));
        }
        if let Err(e) = prop {
            failures.push(format!("thread {t} call #{calls} {name}: {e}"));
        }
        // Keep a session, a login and live keys around so the deeper paths stay reachable.
        // (Raw calls: another thread's C_CloseAllSessions may close it at any point.)
        if p.sessions.is_empty() || rng.chance(1) {
            let mut h = 0;
            let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
            if call!(
                C_OpenSession,
                p.slot,
                flags,
                std::ptr::null_mut(),
                None,
                &mut h
            ) == CKR_OK
            {
                let mut pin = USER_PIN.as_bytes().to_vec();
                call!(
                    C_Login,
                    h,
                    CKU_USER,
                    pin.as_mut_ptr(),
                    pin.len() as CK_ULONG
                );
                p.sessions.push(h);
                replenish(&mut p, h);
            }
        }
    }
    last.store(u64::MAX, Ordering::Relaxed);
    (calls, counts, failures)
}

#[test]
fn random_call_sequences() {
    let secs: u64 = std::env::var("P11KMS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("P11KMS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("fuzz: seed {seed} (replay with P11KMS_FUZZ_SEED={seed}), {secs} s");

    // The fuzzer tries wrong PINs often (about 3 in 4 C_Login calls fail): with the
    // default 10 attempts the user PIN locks within seconds and most of the run would
    // only see CKR_PIN_LOCKED. 1000 consecutive failures do not happen.
    let env = env(&[TokenSpec {
        label: "fuzz",
        max_pin_attempts: Some(1000),
    }]);
    let slot = env.user_token("fuzz");
    let p_slot = slot.id();
    // Sentinels the fuzzer cannot destroy, change or copy (CKA_DESTROYABLE, CKA_MODIFIABLE
    // and CKA_COPYABLE false): after the run they must read back from the store intact.
    {
        let s = env.user_session(slot);
        for (i, private) in [(0u8, false), (1, true), (2, true)] {
            s.create_object(&[
                cryptoki::object::Attribute::Class(cryptoki::object::ObjectClass::DATA),
                cryptoki::object::Attribute::Token(true),
                cryptoki::object::Attribute::Private(private),
                cryptoki::object::Attribute::Destroyable(false),
                cryptoki::object::Attribute::Modifiable(false),
                // Not copyable either: a copy would carry the same label and value.
                cryptoki::object::Attribute::Copyable(false),
                cryptoki::object::Attribute::Label(b"fuzz-sentinel".to_vec()),
                cryptoki::object::Attribute::Value(vec![i; 40]),
            ])
            .expect("sentinel");
        }
    }
    let mut mechs: Vec<CK_MECHANISM_TYPE> = env
        .ctx
        .get_mechanism_list(slot)
        .unwrap()
        .iter()
        .map(|m| CK_MECHANISM_TYPE::from(*m))
        .collect();
    // RSA key generation takes seconds: keep it rare (see step 40).
    mechs.retain(|m| *m != CKM_RSA_PKCS_KEY_PAIR_GEN);
    // Watchdog: one call outliving a minute is a hang.
    let threads: usize = std::env::var("P11KMS_FUZZ_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
        .max(1);
    let lasts: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let currents: Arc<Vec<Mutex<String>>> =
        Arc::new((0..threads).map(|_| Mutex::new(String::new())).collect());
    let start = Instant::now();
    {
        let (lasts, currents) = (lasts.clone(), currents.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            let now = start.elapsed().as_secs();
            let mut running = false;
            for (l, c) in lasts.iter().zip(currents.iter()) {
                let l = l.load(Ordering::Relaxed);
                if l == u64::MAX {
                    continue;
                }
                running = true;
                if now > l + 60 {
                    eprintln!(
                        "fuzz: a call has not returned for {} s (seed {seed}): {}",
                        now - l,
                        c.lock().unwrap()
                    );
                    std::process::abort();
                }
            }
            if !running && now > 1 {
                return;
            }
        });
    }

    // Each thread replays from `seed` its own call sequence; the interleaving of the
    // threads is not replayable (P11KMS_FUZZ_THREADS=1 replays a run exactly).
    let ready = std::sync::Barrier::new(threads);
    let results: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (lasts, currents, mechs, ready) = (&lasts, &currents, mechs.clone(), &ready);
                let tseed = seed.wrapping_add((t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
                sc.spawn(move || {
                    worker(
                        env,
                        slot,
                        mechs,
                        t,
                        tseed,
                        secs,
                        start,
                        &lasts[t],
                        &currents[t],
                        ready,
                    )
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("fuzz thread"))
            .collect()
    });
    let mut calls = 0;
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    let mut failures = Vec::new();
    for (c, n, f) in results {
        calls += c;
        for (k, v) in n {
            *counts.entry(k).or_default() += v;
        }
        failures.extend(f);
    }
    println!(
        "fuzz: {calls} calls in {:.1} s on {threads} thread(s)",
        start.elapsed().as_secs_f64()
    );
    for (k, n) in &counts {
        println!("  {n:6} {k}");
    }

    // The token survived: a fresh session logs in, and the store still lists.
    let s = env.user_session(slot);
    let found = s
        .find_objects(&[])
        .expect("C_FindObjects after the fuzz run");
    println!("fuzz: {} objects visible after the run", found.len());
    let mut rand = [0u8; 16];
    s.generate_random_slice(&mut rand)
        .expect("C_GenerateRandom after the fuzz run");
    std::mem::forget(s);

    // And its store is intact: after C_Finalize and a new C_Initialize (so every token
    // object is read back from the store), the user logs in and every object answers.
    assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    let mut args: CK_C_INITIALIZE_ARGS = unsafe { std::mem::zeroed() };
    args.flags = CKF_OS_LOCKING_OK;
    assert_eq!(
        call!(
            C_Initialize,
            (&mut args as *mut CK_C_INITIALIZE_ARGS).cast()
        ),
        CKR_OK
    );
    let mut h = 0;
    assert_eq!(
        call!(
            C_OpenSession,
            p_slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            std::ptr::null_mut(),
            None,
            &mut h
        ),
        CKR_OK
    );
    let mut pin = USER_PIN.as_bytes().to_vec();
    assert_eq!(
        call!(
            C_Login,
            h,
            CKU_USER,
            pin.as_mut_ptr(),
            pin.len() as CK_ULONG
        ),
        CKR_OK,
        "the user PIN after the fuzz run"
    );
    assert_eq!(call!(C_FindObjectsInit, h, std::ptr::null_mut(), 0), CKR_OK);
    let mut objs = vec![0 as CK_OBJECT_HANDLE; 4096];
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(C_FindObjects, h, objs.as_mut_ptr(), 4096, &mut n),
        CKR_OK
    );
    assert_eq!(call!(C_FindObjectsFinal, h), CKR_OK);
    for o in &objs[..n as usize] {
        let class = get_attr(h, *o, CKA_CLASS);
        assert!(
            matches!(&class, Ok(v) if v.len() == 8),
            "token object {o} after re-initialization: CKA_CLASS {class:?}"
        );
    }
    println!("fuzz: {n} token objects read back from the store");
    let mut label = b"fuzz-sentinel".to_vec();
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: label.as_mut_ptr().cast(),
        ulValueLen: label.len() as CK_ULONG,
    }];
    assert_eq!(call!(C_FindObjectsInit, h, t.as_mut_ptr(), 1), CKR_OK);
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(C_FindObjects, h, objs.as_mut_ptr(), 16, &mut n),
        CKR_OK
    );
    assert_eq!(call!(C_FindObjectsFinal, h), CKR_OK);
    let mut values: Vec<Vec<u8>> = objs[..n as usize]
        .iter()
        .map(|o| get_attr(h, *o, CKA_VALUE).expect("sentinel CKA_VALUE"))
        .collect();
    values.sort();
    assert_eq!(
        values,
        vec![vec![0u8; 40], vec![1u8; 40], vec![2u8; 40]],
        "the sentinel objects after the run"
    );

    assert!(
        failures.is_empty(),
        "seed {seed}: {} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
