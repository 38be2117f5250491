//! Adversarial tests: bad pointers, bad templates, wrong states, stale handles, bad PINs,
//! attribute rules, secrets in logs and corrupted stores. DESIGN: "every bad input gets a
//! clear PKCS#11 error and loses nothing: no panic, no crash, no corrupted store, no secret
//! in a log". Tests that found a bug are kept, marked `#[ignore = "BUG: …"]`.

mod common;

use std::ffi::c_void;
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki_sys::*;

const TOKENS: &[TokenSpec] = &[tok("attack"), tok("pins"), tok("label"), tok("logout")];

fn env() -> &'static Env {
    common::env(TOKENS)
}

struct Keys {
    slot: Slot,
    rsa_pub: CK_OBJECT_HANDLE,
    rsa_priv: CK_OBJECT_HANDLE,
}

static KEYS: OnceLock<Keys> = OnceLock::new();

fn keys() -> &'static Keys {
    KEYS.get_or_init(|| {
        let e = env();
        let slot = e.user_token("attack");
        let s = e.ctx.open_rw_session_no_drop(slot).unwrap();
        s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
        let (p, q) = s
            .generate_key_pair(
                &cryptoki::mechanism::Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(false),
                    Attribute::Verify(true),
                    Attribute::Encrypt(true),
                    Attribute::Wrap(true),
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                ],
                &[
                    Attribute::Token(false),
                    Attribute::Private(true),
                    Attribute::Sign(true),
                    Attribute::Decrypt(true),
                    Attribute::Unwrap(true),
                ],
            )
            .unwrap();
        Keys {
            slot,
            rsa_pub: p.handle(),
            rsa_priv: q.handle(),
        }
    })
}

fn session() -> Session {
    env().user_session(keys().slot)
}

/// A session-object AES key with every usage allowed (extractable, not sensitive).
fn aes(s: &Session, value: &[u8]) -> CK_OBJECT_HANDLE {
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Value(value.to_vec()),
    ])
    .unwrap()
    .handle()
}

/// A session-object generic secret (HMAC) key with sign/verify allowed.
fn generic(s: &Session, value: &[u8]) -> CK_OBJECT_HANDLE {
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Value(value.to_vec()),
    ])
    .unwrap()
    .handle()
}

fn aes_with(s: &Session, value: &[u8], extra: &[Attribute]) -> ObjectHandle {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Value(value.to_vec()),
    ];
    t.extend_from_slice(extra);
    s.create_object(&t).unwrap()
}

fn mech(t: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: t,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    }
}

fn mech_p<T>(t: CK_MECHANISM_TYPE, p: &mut T) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: t,
        pParameter: (p as *mut T).cast(),
        ulParameterLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

fn a_ulong(t: CK_ATTRIBUTE_TYPE, v: &mut CK_ULONG) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: (v as *mut CK_ULONG).cast(),
        ulValueLen: 8,
    }
}

fn a_bool(t: CK_ATTRIBUTE_TYPE, v: &mut CK_BBOOL) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: (v as *mut CK_BBOOL).cast(),
        ulValueLen: 1,
    }
}

fn a_bytes(t: CK_ATTRIBUTE_TYPE, v: &mut [u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: if v.is_empty() {
            std::ptr::null_mut()
        } else {
            v.as_mut_ptr().cast()
        },
        ulValueLen: v.len() as CK_ULONG,
    }
}

fn create(h: CK_SESSION_HANDLE, t: &mut [CK_ATTRIBUTE]) -> (CK_RV, CK_OBJECT_HANDLE) {
    let mut o: CK_OBJECT_HANDLE = 0;
    let rv = call!(
        C_CreateObject,
        h,
        t.as_mut_ptr(),
        t.len() as CK_ULONG,
        &mut o
    );
    (rv, o)
}

#[track_caller]
fn assert_rv(got: CK_RV, allowed: &[CK_RV], what: &str) {
    assert!(
        allowed.contains(&got),
        "{what}: got {}, expected one of {:?}",
        rv_name(got),
        allowed.iter().map(|r| rv_name(*r)).collect::<Vec<_>>()
    );
}

fn encrypt_once(
    h: CK_SESSION_HANDLE,
    m: &mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    data: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let rv = call!(C_EncryptInit, h, m, key);
    if rv != CKR_OK {
        return Err(rv);
    }
    let mut d = data.to_vec();
    let mut out = vec![0u8; data.len() + 512];
    let mut n = out.len() as CK_ULONG;
    let rv = call!(
        C_Encrypt,
        h,
        d.as_mut_ptr(),
        d.len() as CK_ULONG,
        out.as_mut_ptr(),
        &mut n
    );
    if rv != CKR_OK {
        return Err(rv);
    }
    out.truncate(n as usize);
    Ok(out)
}

fn decrypt_once(
    h: CK_SESSION_HANDLE,
    m: &mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    data: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let rv = call!(C_DecryptInit, h, m, key);
    if rv != CKR_OK {
        return Err(rv);
    }
    let mut d = data.to_vec();
    let mut out = vec![0u8; data.len() + 512];
    let mut n = out.len() as CK_ULONG;
    let rv = call!(
        C_Decrypt,
        h,
        if d.is_empty() {
            std::ptr::null_mut()
        } else {
            d.as_mut_ptr()
        },
        d.len() as CK_ULONG,
        out.as_mut_ptr(),
        &mut n
    );
    if rv != CKR_OK {
        return Err(rv);
    }
    out.truncate(n as usize);
    Ok(out)
}

fn session_cancel(h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    unsafe {
        let f: libloading::Symbol<unsafe extern "C" fn(CK_SESSION_HANDLE, CK_FLAGS) -> CK_RV> =
            raw().lib.get(b"C_SessionCancel\0").unwrap();
        f(h, flags)
    }
}

fn gcm_params(iv: &mut [u8], tag_bits: CK_ULONG) -> CK_GCM_PARAMS {
    CK_GCM_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: iv.len() as CK_ULONG,
        ulIvBits: (iv.len() * 8) as CK_ULONG,
        pAAD: std::ptr::null_mut(),
        ulAADLen: 0,
        ulTagBits: tag_bits,
    }
}

// ---------------------------------------------------------------------------------------
// Class 1: NULL pointers and mechanism parameters.

#[test]
fn c1_null_out_pointers() {
    let s = session();
    let h = s.handle();
    let slot = keys().slot.id();
    let null_ul: *mut CK_ULONG = std::ptr::null_mut();
    assert_rv(
        call!(C_GetInfo, std::ptr::null_mut()),
        &[CKR_ARGUMENTS_BAD],
        "C_GetInfo",
    );
    assert_rv(
        call!(C_GetSlotList, CK_FALSE, std::ptr::null_mut(), null_ul),
        &[CKR_ARGUMENTS_BAD],
        "C_GetSlotList pulCount",
    );
    let mut slots = [0 as CK_SLOT_ID; 8];
    assert_rv(
        call!(C_GetSlotList, CK_TRUE, slots.as_mut_ptr(), null_ul),
        &[CKR_ARGUMENTS_BAD],
        "C_GetSlotList pulCount with list",
    );
    assert_rv(
        call!(C_GetSlotInfo, slot, std::ptr::null_mut()),
        &[CKR_ARGUMENTS_BAD],
        "C_GetSlotInfo",
    );
    assert_rv(
        call!(C_GetTokenInfo, slot, std::ptr::null_mut()),
        &[CKR_ARGUMENTS_BAD],
        "C_GetTokenInfo",
    );
    assert_rv(
        call!(C_GetMechanismList, slot, std::ptr::null_mut(), null_ul),
        &[CKR_ARGUMENTS_BAD],
        "C_GetMechanismList",
    );
    assert_rv(
        call!(C_GetMechanismInfo, slot, CKM_AES_GCM, std::ptr::null_mut()),
        &[CKR_ARGUMENTS_BAD],
        "C_GetMechanismInfo",
    );
    assert_rv(
        call!(
            C_OpenSession,
            slot,
            CKF_SERIAL_SESSION,
            std::ptr::null_mut(),
            None,
            std::ptr::null_mut()
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_OpenSession phSession",
    );
    assert_rv(
        call!(C_GetSessionInfo, h, std::ptr::null_mut()),
        &[CKR_ARGUMENTS_BAD],
        "C_GetSessionInfo",
    );
    assert_rv(
        call!(C_GetFunctionList, std::ptr::null_mut()),
        &[CKR_ARGUMENTS_BAD],
        "C_GetFunctionList",
    );
    // 3.0 entry points through the symbols.
    unsafe {
        let lib = &raw().lib;
        let gil: libloading::Symbol<unsafe extern "C" fn(CK_INTERFACE_PTR, CK_ULONG_PTR) -> CK_RV> =
            lib.get(b"C_GetInterfaceList\0").unwrap();
        assert_rv(
            gil(std::ptr::null_mut(), std::ptr::null_mut()),
            &[CKR_ARGUMENTS_BAD],
            "C_GetInterfaceList pulCount",
        );
        let gi: libloading::Symbol<
            unsafe extern "C" fn(
                CK_UTF8CHAR_PTR,
                CK_VERSION_PTR,
                CK_INTERFACE_PTR_PTR,
                CK_FLAGS,
            ) -> CK_RV,
        > = lib.get(b"C_GetInterface\0").unwrap();
        assert_rv(
            gi(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            ),
            &[CKR_ARGUMENTS_BAD],
            "C_GetInterface ppInterface",
        );
    }
    // Objects.
    let (mut class, mut vt) = (CKO_DATA, CK_FALSE);
    let mut t = [a_ulong(CKA_CLASS, &mut class), a_bool(CKA_TOKEN, &mut vt)];
    assert_rv(
        call!(C_CreateObject, h, t.as_mut_ptr(), 2, std::ptr::null_mut()),
        &[CKR_ARGUMENTS_BAD],
        "C_CreateObject phObject",
    );
    let mut o: CK_OBJECT_HANDLE = 0;
    assert_rv(
        call!(C_CreateObject, h, std::ptr::null_mut(), 2, &mut o),
        &[CKR_ARGUMENTS_BAD],
        "C_CreateObject NULL template count 2",
    );
    let (rv, data) = create(h, &mut t);
    assert_eq!(rv, CKR_OK);
    assert_rv(
        call!(C_CopyObject, h, data, std::ptr::null_mut(), 1, &mut o),
        &[CKR_ARGUMENTS_BAD],
        "C_CopyObject NULL template",
    );
    assert_rv(
        call!(
            C_CopyObject,
            h,
            data,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut()
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_CopyObject phNewObject",
    );
    assert_rv(
        call!(C_GetObjectSize, h, data, std::ptr::null_mut()),
        &[CKR_ARGUMENTS_BAD],
        "C_GetObjectSize",
    );
    assert_rv(
        call!(C_GetAttributeValue, h, data, std::ptr::null_mut(), 3),
        &[CKR_ARGUMENTS_BAD],
        "C_GetAttributeValue NULL template",
    );
    assert_rv(
        call!(C_SetAttributeValue, h, data, std::ptr::null_mut(), 3),
        &[CKR_ARGUMENTS_BAD],
        "C_SetAttributeValue NULL template",
    );
    assert_rv(
        call!(C_FindObjectsInit, h, std::ptr::null_mut(), 2),
        &[CKR_ARGUMENTS_BAD],
        "C_FindObjectsInit NULL template",
    );
    assert_eq!(call!(C_FindObjectsInit, h, std::ptr::null_mut(), 0), CKR_OK);
    let mut objs = [0 as CK_OBJECT_HANDLE; 4];
    assert_rv(
        call!(C_FindObjects, h, objs.as_mut_ptr(), 4, null_ul),
        &[CKR_ARGUMENTS_BAD],
        "C_FindObjects pulObjectCount",
    );
    let mut n: CK_ULONG = 0;
    assert_rv(
        call!(C_FindObjects, h, std::ptr::null_mut(), 4, &mut n),
        &[CKR_ARGUMENTS_BAD],
        "C_FindObjects phObject",
    );
    assert_eq!(call!(C_FindObjectsFinal, h), CKR_OK);
    // Crypto out pointers.
    let key = aes(&s, &[1u8; 16]);
    let mut ecb = mech(CKM_AES_ECB);
    let mut data16 = [0u8; 16];
    let mut out = [0u8; 64];
    for (name, init, one) in [
        (
            "encrypt",
            raw().f.C_EncryptInit.unwrap(),
            raw().f.C_Encrypt.unwrap(),
        ),
        (
            "decrypt",
            raw().f.C_DecryptInit.unwrap(),
            raw().f.C_Decrypt.unwrap(),
        ),
    ] {
        let s2 = session();
        let h2 = s2.handle();
        assert_eq!(unsafe { init(h2, &mut ecb, key) }, CKR_OK, "{name} init");
        let rv = unsafe { one(h2, data16.as_mut_ptr(), 16, out.as_mut_ptr(), null_ul) };
        assert_rv(rv, &[CKR_ARGUMENTS_BAD], &format!("C_{name} pulLen NULL"));
        let mut n: CK_ULONG = 64;
        let rv = unsafe { one(h2, std::ptr::null_mut(), 16, out.as_mut_ptr(), &mut n) };
        assert_rv(
            rv,
            &[CKR_ARGUMENTS_BAD, CKR_OPERATION_NOT_INITIALIZED],
            &format!("C_{name} pData NULL len 16"),
        );
    }
    // Update/Final out pointers.
    let s2 = session();
    let h2 = s2.handle();
    let mut cbc_iv = [0u8; 16];
    let mut cbc = CK_MECHANISM {
        mechanism: CKM_AES_CBC_PAD,
        pParameter: cbc_iv.as_mut_ptr().cast(),
        ulParameterLen: 16,
    };
    assert_eq!(call!(C_EncryptInit, h2, &mut cbc, key), CKR_OK);
    assert_rv(
        call!(
            C_EncryptUpdate,
            h2,
            data16.as_mut_ptr(),
            16,
            out.as_mut_ptr(),
            null_ul
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_EncryptUpdate pulLen",
    );
    let s2 = session();
    let h2 = s2.handle();
    assert_eq!(call!(C_EncryptInit, h2, &mut cbc, key), CKR_OK);
    assert_rv(
        call!(C_EncryptFinal, h2, out.as_mut_ptr(), null_ul),
        &[CKR_ARGUMENTS_BAD],
        "C_EncryptFinal pulLen",
    );
    // Digest.
    let mut sha = mech(CKM_SHA256);
    assert_eq!(call!(C_DigestInit, h2, &mut sha), CKR_OK);
    assert_rv(
        call!(C_DigestUpdate, h2, std::ptr::null_mut(), 5),
        &[CKR_ARGUMENTS_BAD],
        "C_DigestUpdate NULL part",
    );
    let s3 = session();
    let h3 = s3.handle();
    assert_eq!(call!(C_DigestInit, h3, &mut sha), CKR_OK);
    assert_rv(
        call!(
            C_Digest,
            h3,
            data16.as_mut_ptr(),
            16,
            out.as_mut_ptr(),
            null_ul
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_Digest pulDigestLen",
    );
    let s3 = session();
    let h3 = s3.handle();
    assert_eq!(call!(C_DigestInit, h3, &mut sha), CKR_OK);
    assert_eq!(call!(C_DigestUpdate, h3, data16.as_mut_ptr(), 16), CKR_OK);
    assert_rv(
        call!(C_DigestFinal, h3, out.as_mut_ptr(), null_ul),
        &[CKR_ARGUMENTS_BAD],
        "C_DigestFinal pulDigestLen",
    );
    // Sign/verify.
    let mut hmac = mech(CKM_SHA256_HMAC);
    let s3 = session();
    let h3 = s3.handle();
    let gk = generic(&s, &[1u8; 32]);
    assert_eq!(call!(C_SignInit, h3, &mut hmac, gk), CKR_OK);
    assert_eq!(call!(C_SignUpdate, h3, data16.as_mut_ptr(), 16), CKR_OK);
    assert_rv(
        call!(C_SignFinal, h3, out.as_mut_ptr(), null_ul),
        &[CKR_ARGUMENTS_BAD],
        "C_SignFinal pulLen",
    );
    let s3 = session();
    let h3 = s3.handle();
    assert_eq!(call!(C_VerifyInit, h3, &mut hmac, gk), CKR_OK);
    assert_rv(
        call!(
            C_Verify,
            h3,
            data16.as_mut_ptr(),
            16,
            std::ptr::null_mut(),
            32
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_Verify NULL signature len 32",
    );
    // Keys.
    let s3 = session();
    let h3 = s3.handle();
    let mut gen = mech(CKM_AES_KEY_GEN);
    let mut vl: CK_ULONG = 16;
    let mut gt = [a_ulong(CKA_VALUE_LEN, &mut vl)];
    assert_rv(
        call!(
            C_GenerateKey,
            h3,
            &mut gen,
            gt.as_mut_ptr(),
            1,
            std::ptr::null_mut()
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_GenerateKey phKey",
    );
    let mut kp = mech(CKM_EC_KEY_PAIR_GEN);
    let mut p1: CK_OBJECT_HANDLE = 0;
    assert_rv(
        call!(
            C_GenerateKeyPair,
            h3,
            &mut kp,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            0,
            &mut p1,
            std::ptr::null_mut()
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_GenerateKeyPair phPrivateKey",
    );
    assert_rv(
        call!(
            C_GenerateKeyPair,
            h3,
            &mut kp,
            std::ptr::null_mut(),
            3,
            std::ptr::null_mut(),
            0,
            &mut p1,
            &mut o
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_GenerateKeyPair NULL pub template with count",
    );
    let mut kw = mech(CKM_AES_KEY_WRAP);
    assert_rv(
        call!(C_WrapKey, h3, &mut kw, key, key, out.as_mut_ptr(), null_ul),
        &[CKR_ARGUMENTS_BAD],
        "C_WrapKey pulWrappedKeyLen",
    );
    assert_rv(
        call!(
            C_WrapKey,
            h3,
            std::ptr::null_mut(),
            key,
            key,
            out.as_mut_ptr(),
            &mut n
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_WrapKey pMechanism",
    );
    let mut wrapped = [0u8; 24];
    assert_rv(
        call!(
            C_UnwrapKey,
            h3,
            &mut kw,
            key,
            wrapped.as_mut_ptr(),
            24,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut()
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_UnwrapKey phKey",
    );
    assert_rv(
        call!(
            C_UnwrapKey,
            h3,
            &mut kw,
            key,
            std::ptr::null_mut(),
            24,
            std::ptr::null_mut(),
            0,
            &mut o
        ),
        &[CKR_ARGUMENTS_BAD],
        "C_UnwrapKey NULL wrapped key len 24",
    );
    assert_rv(
        call!(C_GenerateRandom, h3, std::ptr::null_mut(), 16),
        &[CKR_ARGUMENTS_BAD],
        "C_GenerateRandom NULL",
    );
    assert_rv(
        call!(C_SeedRandom, h3, std::ptr::null_mut(), 16),
        &[CKR_ARGUMENTS_BAD],
        "C_SeedRandom NULL",
    );
    let mut nn: CK_ULONG = 0;
    assert_rv(
        call!(C_Login, h3, CKU_USER, std::ptr::null_mut(), 8),
        &[CKR_ARGUMENTS_BAD, CKR_USER_ALREADY_LOGGED_IN],
        "C_Login NULL PIN",
    );
    let _ = nn;
    nn = 1;
    let _ = nn;
    // The session still works after all that.
    let mut r = [0u8; 8];
    assert_eq!(call!(C_GenerateRandom, h, r.as_mut_ptr(), 8), CKR_OK);
}

#[test]
fn c1_mechanism_parameter_lengths() {
    let s = session();
    let h = s.handle();
    let key = aes(&s, &[2u8; 16]);
    let k = keys();
    let mut buf = [0u8; 128];
    let p: *mut c_void = buf.as_mut_ptr().cast();
    // pParameter NULL with a length, for mechanisms that need one.
    for m in [CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_GCM, CKM_AES_CTR] {
        let mut mm = CK_MECHANISM {
            mechanism: m,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 16,
        };
        assert_rv(
            call!(C_EncryptInit, h, &mut mm, key),
            &[CKR_MECHANISM_PARAM_INVALID, CKR_ARGUMENTS_BAD],
            &format!("mech {m:#x} NULL pParameter len 16"),
        );
    }
    for (m, key, sizes) in [
        (CKM_AES_GCM, key, &[0usize, 8, 39, 41, 47, 49, 64][..]),
        (CKM_AES_CTR, key, &[0, 8, 16, 23, 25, 32][..]),
        (CKM_RSA_PKCS_OAEP, k.rsa_pub, &[0, 8, 39, 41, 64][..]),
        (CKM_AES_CBC, key, &[0, 8, 15, 17, 32][..]),
    ] {
        for &n in sizes {
            let mut mm = CK_MECHANISM {
                mechanism: m,
                pParameter: if n == 0 { std::ptr::null_mut() } else { p },
                ulParameterLen: n as CK_ULONG,
            };
            assert_rv(
                call!(C_EncryptInit, h, &mut mm, key),
                &[CKR_MECHANISM_PARAM_INVALID],
                &format!("mech {m:#x} param len {n}"),
            );
        }
    }
    for m in [CKM_SHA256_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS] {
        for n in [0usize, 8, 16, 23, 25, 32] {
            let mut mm = CK_MECHANISM {
                mechanism: m,
                pParameter: if n == 0 { std::ptr::null_mut() } else { p },
                ulParameterLen: n as CK_ULONG,
            };
            assert_rv(
                call!(C_SignInit, h, &mut mm, k.rsa_priv),
                &[CKR_MECHANISM_PARAM_INVALID],
                &format!("sign mech {m:#x} param len {n}"),
            );
            assert_rv(
                call!(C_VerifyInit, h, &mut mm, k.rsa_pub),
                &[CKR_MECHANISM_PARAM_INVALID],
                &format!("verify mech {m:#x} param len {n}"),
            );
        }
    }
    // HMAC_GENERAL: wrong size and out-of-range lengths.
    let mut l: CK_ULONG = 33;
    let gk = generic(&s, &[2u8; 32]);
    let mut mm = mech_p(CKM_SHA256_HMAC_GENERAL, &mut l);
    assert_rv(
        call!(C_SignInit, h, &mut mm, gk),
        &[CKR_MECHANISM_PARAM_INVALID],
        "HMAC_GENERAL length 33 for SHA-256",
    );
    let mut mm = CK_MECHANISM {
        mechanism: CKM_SHA256_HMAC_GENERAL,
        pParameter: (&mut l as *mut CK_ULONG).cast(),
        ulParameterLen: 4,
    };
    assert_rv(
        call!(C_SignInit, h, &mut mm, gk),
        &[CKR_MECHANISM_PARAM_INVALID],
        "HMAC_GENERAL 4-byte param",
    );
    // A mechanism without parameters given one.
    let mut mm = CK_MECHANISM {
        mechanism: CKM_AES_ECB,
        pParameter: p,
        ulParameterLen: 16,
    };
    assert_rv(
        call!(C_EncryptInit, h, &mut mm, key),
        &[CKR_MECHANISM_PARAM_INVALID],
        "AES_ECB with a parameter",
    );
    let mut mm = CK_MECHANISM {
        mechanism: CKM_SHA256,
        pParameter: p,
        ulParameterLen: 8,
    };
    assert_rv(
        call!(C_DigestInit, h, &mut mm),
        &[CKR_MECHANISM_PARAM_INVALID],
        "SHA256 with a parameter",
    );
}

#[test]
fn c1_gcm_parameter_values() {
    let s = session();
    let h = s.handle();
    let key = aes(&s, &[3u8; 16]);
    let mut iv = [7u8; 12];
    for tag in [0, 7, 8, 129, 136, 1 << 40] {
        let mut g = gcm_params(&mut iv, tag);
        let mut m = mech_p(CKM_AES_GCM, &mut g);
        assert_rv(
            call!(C_EncryptInit, h, &mut m, key),
            &[CKR_MECHANISM_PARAM_INVALID],
            &format!("GCM encrypt tag bits {tag}"),
        );
        assert_rv(
            call!(C_DecryptInit, h, &mut m, key),
            &[CKR_MECHANISM_PARAM_INVALID],
            &format!("GCM decrypt tag bits {tag}"),
        );
    }
    // IV NULL with a length; IV length 0.
    let mut g = gcm_params(&mut iv, 128);
    g.pIv = std::ptr::null_mut();
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    assert_rv(
        call!(C_EncryptInit, h, &mut m, key),
        &[CKR_MECHANISM_PARAM_INVALID, CKR_ARGUMENTS_BAD],
        "GCM pIv NULL ulIvLen 12",
    );
    let mut g = gcm_params(&mut iv, 128);
    g.ulIvLen = 0;
    g.ulIvBits = 0;
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    assert_rv(
        call!(C_EncryptInit, h, &mut m, key),
        &[CKR_MECHANISM_PARAM_INVALID],
        "GCM IV length 0",
    );
    let mut g = gcm_params(&mut iv, 128);
    g.pIv = std::ptr::null_mut();
    g.ulIvLen = 0;
    g.ulIvBits = 0;
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    assert_rv(
        call!(C_EncryptInit, h, &mut m, key),
        &[CKR_MECHANISM_PARAM_INVALID],
        "GCM IV NULL length 0",
    );
    // AAD NULL with a length.
    let mut g = gcm_params(&mut iv, 128);
    g.ulAADLen = 20;
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    assert_rv(
        call!(C_EncryptInit, h, &mut m, key),
        &[CKR_MECHANISM_PARAM_INVALID, CKR_ARGUMENTS_BAD],
        "GCM pAAD NULL ulAADLen 20",
    );
    // The session can still do GCM afterwards.
    let mut g = gcm_params(&mut iv, 128);
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    let ct = encrypt_once(h, &mut m, key, b"hello").unwrap();
    assert_eq!(ct.len(), 5 + 16);
}

#[test]
fn c1_ctr_pss_oaep_parameter_values() {
    let s = session();
    let h = s.handle();
    let key = aes(&s, &[4u8; 16]);
    let k = keys();
    for bits in [0, 129, 1 << 33] {
        let mut c = CK_AES_CTR_PARAMS {
            ulCounterBits: bits,
            cb: [0; 16],
        };
        let mut m = mech_p(CKM_AES_CTR, &mut c);
        assert_rv(
            call!(C_EncryptInit, h, &mut m, key),
            &[CKR_MECHANISM_PARAM_INVALID],
            &format!("CTR counter bits {bits}"),
        );
    }
    // PSS: hash mismatching the mechanism, unknown MGF, absurd salt.
    for (m, hash, mgf, slen) in [
        (CKM_SHA256_RSA_PKCS_PSS, CKM_SHA_1, CKG_MGF1_SHA1, 20),
        (CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, 0x999, 32),
        (CKM_SHA256_RSA_PKCS_PSS, CKM_AES_ECB, CKG_MGF1_SHA256, 32),
        (CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 1000),
        (
            CKM_SHA256_RSA_PKCS_PSS,
            CKM_SHA256,
            CKG_MGF1_SHA256,
            CK_ULONG::MAX,
        ),
    ] {
        let mut pp = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: hash,
            mgf,
            sLen: slen,
        };
        let mut mm = mech_p(m, &mut pp);
        let rv = call!(C_SignInit, h, &mut mm, k.rsa_priv);
        if rv == CKR_OK {
            // A module may check the salt only when signing.
            let mut d = [0u8; 16];
            let mut sig = [0u8; 256];
            let mut n: CK_ULONG = 256;
            let rv = call!(C_Sign, h, d.as_mut_ptr(), 16, sig.as_mut_ptr(), &mut n);
            assert_rv(
                rv,
                &[CKR_MECHANISM_PARAM_INVALID],
                &format!("PSS sign hash {hash:#x} mgf {mgf:#x} sLen {slen}"),
            );
        } else {
            assert_rv(
                rv,
                &[CKR_MECHANISM_PARAM_INVALID],
                &format!("PSS sign init hash {hash:#x} mgf {mgf:#x} sLen {slen}"),
            );
        }
    }
    // OAEP: unknown hash, unknown source, NULL source data with length.
    for (hash, mgf, source, null_len) in [
        (CKM_AES_ECB, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, 0),
        (CKM_SHA256, 0x999, CKZ_DATA_SPECIFIED, 0),
        (CKM_SHA256, CKG_MGF1_SHA256, 2, 0),
        (CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, 8),
    ] {
        let mut op = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: hash,
            mgf,
            source,
            pSourceData: std::ptr::null_mut(),
            ulSourceDataLen: null_len,
        };
        let mut mm = mech_p(CKM_RSA_PKCS_OAEP, &mut op);
        let r = encrypt_once(h, &mut mm, k.rsa_pub, b"x");
        assert_rv(
            r.err().unwrap_or(CKR_OK),
            &[CKR_MECHANISM_PARAM_INVALID],
            &format!("OAEP hash {hash:#x} mgf {mgf:#x} source {source} len {null_len}"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Class 2: bad templates.

#[test]
fn c2_wrong_value_sizes() {
    let s = session();
    let h = s.handle();
    let mut class4 = [0u8; 4];
    class4.copy_from_slice(&(CKO_DATA as u32).to_ne_bytes());
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: class4.as_mut_ptr().cast(),
        ulValueLen: 4,
    }];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "CKA_CLASS 4 bytes",
    );
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    }];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "CKA_CLASS 0 bytes",
    );
    let mut class = CKO_DATA;
    let mut b2 = [1u8, 0u8];
    let mut t = [
        a_ulong(CKA_CLASS, &mut class),
        CK_ATTRIBUTE {
            type_: CKA_TOKEN,
            pValue: b2.as_mut_ptr().cast(),
            ulValueLen: 2,
        },
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "CKA_TOKEN 2 bytes",
    );
    let mut t = [
        a_ulong(CKA_CLASS, &mut class),
        CK_ATTRIBUTE {
            type_: CKA_PRIVATE,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        },
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "CKA_PRIVATE 0 bytes",
    );
    // Secret key: CKA_KEY_TYPE 4 bytes, CKA_VALUE_LEN 4 bytes on generate.
    let mut sk = CKO_SECRET_KEY;
    let mut kt4 = (CKK_AES as u32).to_ne_bytes();
    let mut v = [9u8; 16];
    let mut t = [
        a_ulong(CKA_CLASS, &mut sk),
        CK_ATTRIBUTE {
            type_: CKA_KEY_TYPE,
            pValue: kt4.as_mut_ptr().cast(),
            ulValueLen: 4,
        },
        a_bytes(CKA_VALUE, &mut v),
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "CKA_KEY_TYPE 4 bytes",
    );
    let mut vl4 = 16u32.to_ne_bytes();
    let mut gt = [CK_ATTRIBUTE {
        type_: CKA_VALUE_LEN,
        pValue: vl4.as_mut_ptr().cast(),
        ulValueLen: 4,
    }];
    let mut gen = mech(CKM_AES_KEY_GEN);
    let mut o: CK_OBJECT_HANDLE = 0;
    assert_rv(
        call!(C_GenerateKey, h, &mut gen, gt.as_mut_ptr(), 1, &mut o),
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "GenerateKey CKA_VALUE_LEN 4 bytes",
    );
    // AES key values of bad lengths.
    let mut kt = CKK_AES;
    for len in [0usize, 1, 15, 17, 31, 33, 64] {
        let mut v = vec![9u8; len];
        let mut t = [
            a_ulong(CKA_CLASS, &mut sk),
            a_ulong(CKA_KEY_TYPE, &mut kt),
            a_bytes(CKA_VALUE, &mut v),
        ];
        assert_rv(
            create(h, &mut t).0,
            &[CKR_ATTRIBUTE_VALUE_INVALID],
            &format!("AES CKA_VALUE {len} bytes"),
        );
    }
    // Bad date lengths, bad mechanism list lengths.
    let mut d3 = *b"202";
    let mut t = [
        a_ulong(CKA_CLASS, &mut sk),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bytes(CKA_VALUE, &mut v),
        a_bytes(CKA_START_DATE, &mut d3),
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "CKA_START_DATE 3 bytes",
    );
    let mut ml = [0u8; 5];
    let mut t = [
        a_ulong(CKA_CLASS, &mut sk),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bytes(CKA_VALUE, &mut v),
        a_bytes(CKA_ALLOWED_MECHANISMS, &mut ml),
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "CKA_ALLOWED_MECHANISMS 5 bytes",
    );
    // C_SetAttributeValue with wrong sizes on an existing object.
    let key = aes(&s, &[1u8; 16]);
    let mut b2 = [1u8, 1u8];
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_ENCRYPT,
        pValue: b2.as_mut_ptr().cast(),
        ulValueLen: 2,
    }];
    assert_rv(
        call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 1),
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "Set CKA_ENCRYPT 2 bytes",
    );
    // C_FindObjectsInit with a 4-byte class: an error or simply no match.
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: class4.as_mut_ptr().cast(),
        ulValueLen: 4,
    }];
    let rv = call!(C_FindObjectsInit, h, t.as_mut_ptr(), 1);
    assert_rv(
        rv,
        &[CKR_OK, CKR_ATTRIBUTE_VALUE_INVALID],
        "Find CKA_CLASS 4 bytes",
    );
    if rv == CKR_OK {
        let mut objs = [0 as CK_OBJECT_HANDLE; 4];
        let mut n: CK_ULONG = 99;
        assert_eq!(
            call!(C_FindObjects, h, objs.as_mut_ptr(), 4, &mut n),
            CKR_OK
        );
        assert_eq!(n, 0, "a 4-byte class matches nothing");
        assert_eq!(call!(C_FindObjectsFinal, h), CKR_OK);
    }
}

#[test]
fn c2_duplicates_unknown_types_and_classes() {
    let s = session();
    let h = s.handle();
    let mut class = CKO_DATA;
    let (mut t1, mut t0) = (CK_TRUE, CK_FALSE);
    let mut t = [
        a_ulong(CKA_CLASS, &mut class),
        a_bool(CKA_PRIVATE, &mut t1),
        a_bool(CKA_PRIVATE, &mut t0),
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_TEMPLATE_INCONSISTENT],
        "duplicate CKA_PRIVATE",
    );
    let mut c2 = CKO_SECRET_KEY;
    let mut t = [a_ulong(CKA_CLASS, &mut class), a_ulong(CKA_CLASS, &mut c2)];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_TEMPLATE_INCONSISTENT],
        "duplicate CKA_CLASS",
    );
    // Duplicates with the same value: allowed either way.
    let mut t = [
        a_ulong(CKA_CLASS, &mut class),
        a_bool(CKA_PRIVATE, &mut t0),
        a_bool(CKA_PRIVATE, &mut t0),
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_OK, CKR_TEMPLATE_INCONSISTENT],
        "duplicate CKA_PRIVATE same value",
    );
    // Duplicate on generate.
    let (mut l16, mut l32) = (16 as CK_ULONG, 32 as CK_ULONG);
    let mut gt = [
        a_ulong(CKA_VALUE_LEN, &mut l16),
        a_ulong(CKA_VALUE_LEN, &mut l32),
    ];
    let mut gen = mech(CKM_AES_KEY_GEN);
    let mut o: CK_OBJECT_HANDLE = 0;
    assert_rv(
        call!(C_GenerateKey, h, &mut gen, gt.as_mut_ptr(), 2, &mut o),
        &[CKR_TEMPLATE_INCONSISTENT],
        "GenerateKey duplicate CKA_VALUE_LEN",
    );
    // Unknown and vendor attribute types.
    for ty in [
        0x7777_0000,
        CKA_VENDOR_DEFINED | 1,
        CKA_VENDOR_DEFINED,
        CK_ULONG::MAX,
    ] {
        let mut v = [1u8; 4];
        let mut t = [a_ulong(CKA_CLASS, &mut class), a_bytes(ty, &mut v)];
        assert_rv(
            create(h, &mut t).0,
            &[CKR_ATTRIBUTE_TYPE_INVALID],
            &format!("attribute type {ty:#x}"),
        );
    }
    // An attribute of another class (CKA_MODULUS on a data object).
    let mut v = [1u8; 4];
    let mut t = [a_ulong(CKA_CLASS, &mut class), a_bytes(CKA_MODULUS, &mut v)];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_TYPE_INVALID, CKR_TEMPLATE_INCONSISTENT],
        "CKA_MODULUS on a data object",
    );
    // Unknown / vendor / unsupported classes.
    for c in [
        0x1234,
        CKO_VENDOR_DEFINED,
        CKO_VENDOR_DEFINED | 5,
        CK_ULONG::MAX,
    ] {
        let mut cc = c;
        let mut t = [a_ulong(CKA_CLASS, &mut cc)];
        assert_rv(
            create(h, &mut t).0,
            &[CKR_ATTRIBUTE_VALUE_INVALID],
            &format!("class {c:#x}"),
        );
    }
    // Unknown key type.
    let mut sk = CKO_SECRET_KEY;
    let mut kt = 0x4242;
    let mut v = [9u8; 16];
    let mut t = [
        a_ulong(CKA_CLASS, &mut sk),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bytes(CKA_VALUE, &mut v),
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID],
        "key type 0x4242",
    );
    // Token-only attribute in a creation template.
    let mut kt = CKK_AES;
    let mut tr = CK_TRUE;
    let mut t = [
        a_ulong(CKA_CLASS, &mut sk),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bytes(CKA_VALUE, &mut v),
        a_bool(CKA_LOCAL, &mut tr),
    ];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCONSISTENT],
        "CKA_LOCAL in a create template",
    );
    // Missing class entirely.
    let mut t = [a_bytes(CKA_VALUE, &mut v)];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_TEMPLATE_INCOMPLETE],
        "no CKA_CLASS",
    );
    // Secret key without value.
    let mut t = [a_ulong(CKA_CLASS, &mut sk), a_ulong(CKA_KEY_TYPE, &mut kt)];
    assert_rv(
        create(h, &mut t).0,
        &[CKR_TEMPLATE_INCOMPLETE],
        "AES without CKA_VALUE",
    );
    // A nested template attribute with garbage bytes must not be dereferenced.
    let mut garbage = [0x41u8; 24];
    let mut t = [
        a_ulong(CKA_CLASS, &mut sk),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bytes(CKA_VALUE, &mut v),
        a_bytes(CKA_WRAP_TEMPLATE, &mut garbage),
    ];
    let rv = create(h, &mut t).0;
    assert_ne!(rv, CKR_OK, "a garbage CKA_WRAP_TEMPLATE is not accepted");
    assert_ne!(rv, CKR_GENERAL_ERROR);
    // C_GetAttributeValue of an unknown type: TYPE_INVALID with UNAVAILABLE length.
    let key = aes(&s, &[5u8; 16]);
    let mut a = [CK_ATTRIBUTE {
        type_: CKA_VENDOR_DEFINED | 0x77,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    }];
    assert_eq!(
        call!(C_GetAttributeValue, h, key, a.as_mut_ptr(), 1),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
    assert_eq!(a[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    // SetAttributeValue with an unknown type.
    let mut v = [1u8; 4];
    let mut t = [a_bytes(CKA_VENDOR_DEFINED | 0x78, &mut v)];
    assert_rv(
        call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 1),
        &[CKR_ATTRIBUTE_TYPE_INVALID],
        "Set vendor attribute",
    );
}

// ---------------------------------------------------------------------------------------
// Class 3: wrong state.

#[test]
fn c3_update_after_final_and_init_twice() {
    let s = session();
    let h = s.handle();
    let key = aes(&s, &[6u8; 16]);
    let mut iv = [0u8; 16];
    let mut cbc = CK_MECHANISM {
        mechanism: CKM_AES_CBC_PAD,
        pParameter: iv.as_mut_ptr().cast(),
        ulParameterLen: 16,
    };
    assert_eq!(call!(C_EncryptInit, h, &mut cbc, key), CKR_OK);
    assert_eq!(call!(C_EncryptInit, h, &mut cbc, key), CKR_OPERATION_ACTIVE);
    let mut d = [1u8; 20];
    let mut out = [0u8; 64];
    let mut n: CK_ULONG = 64;
    assert_eq!(
        call!(
            C_EncryptUpdate,
            h,
            d.as_mut_ptr(),
            20,
            out.as_mut_ptr(),
            &mut n
        ),
        CKR_OK
    );
    n = 64;
    assert_eq!(call!(C_EncryptFinal, h, out.as_mut_ptr(), &mut n), CKR_OK);
    n = 64;
    assert_eq!(
        call!(
            C_EncryptUpdate,
            h,
            d.as_mut_ptr(),
            20,
            out.as_mut_ptr(),
            &mut n
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );
    n = 64;
    assert_eq!(
        call!(C_EncryptFinal, h, out.as_mut_ptr(), &mut n),
        CKR_OPERATION_NOT_INITIALIZED
    );
    n = 64;
    assert_eq!(
        call!(C_Encrypt, h, d.as_mut_ptr(), 20, out.as_mut_ptr(), &mut n),
        CKR_OPERATION_NOT_INITIALIZED
    );
    n = 64;
    assert_eq!(
        call!(
            C_DecryptUpdate,
            h,
            d.as_mut_ptr(),
            16,
            out.as_mut_ptr(),
            &mut n
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // Digest / sign / verify twice and after final.
    let mut sha = mech(CKM_SHA256);
    assert_eq!(call!(C_DigestInit, h, &mut sha), CKR_OK);
    assert_eq!(call!(C_DigestInit, h, &mut sha), CKR_OPERATION_ACTIVE);
    n = 64;
    assert_eq!(
        call!(C_Digest, h, d.as_mut_ptr(), 20, out.as_mut_ptr(), &mut n),
        CKR_OK
    );
    assert_eq!(
        call!(C_DigestUpdate, h, d.as_mut_ptr(), 20),
        CKR_OPERATION_NOT_INITIALIZED
    );
    n = 64;
    assert_eq!(
        call!(C_DigestFinal, h, out.as_mut_ptr(), &mut n),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut hmac = mech(CKM_SHA256_HMAC);
    let key = generic(&s, &[6u8; 32]);
    assert_eq!(call!(C_SignInit, h, &mut hmac, key), CKR_OK);
    assert_eq!(call!(C_SignInit, h, &mut hmac, key), CKR_OPERATION_ACTIVE);
    assert_eq!(call!(C_SignUpdate, h, d.as_mut_ptr(), 20), CKR_OK);
    n = 64;
    assert_eq!(
        call!(C_Sign, h, d.as_mut_ptr(), 20, out.as_mut_ptr(), &mut n),
        CKR_OPERATION_ACTIVE,
        "C_Sign after C_SignUpdate"
    );
    // The spec leaves the operation state after that error open; restart cleanly.
    let s2 = session();
    let h2 = s2.handle();
    assert_eq!(call!(C_SignInit, h2, &mut hmac, key), CKR_OK);
    assert_eq!(call!(C_SignUpdate, h2, d.as_mut_ptr(), 20), CKR_OK);
    n = 64;
    assert_eq!(call!(C_SignFinal, h2, out.as_mut_ptr(), &mut n), CKR_OK);
    assert_eq!(
        call!(C_SignUpdate, h2, d.as_mut_ptr(), 20),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut mac = out[..32].to_vec();
    assert_eq!(call!(C_VerifyInit, h2, &mut hmac, key), CKR_OK);
    assert_eq!(
        call!(C_VerifyInit, h2, &mut hmac, key),
        CKR_OPERATION_ACTIVE
    );
    assert_eq!(
        call!(C_Verify, h2, d.as_mut_ptr(), 20, mac.as_mut_ptr(), 32),
        CKR_OK
    );
    assert_eq!(
        call!(C_VerifyFinal, h2, mac.as_mut_ptr(), 32),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // Find twice.
    assert_eq!(
        call!(C_FindObjectsInit, h2, std::ptr::null_mut(), 0),
        CKR_OK
    );
    assert_eq!(
        call!(C_FindObjectsInit, h2, std::ptr::null_mut(), 0),
        CKR_OPERATION_ACTIVE
    );
    assert_eq!(call!(C_FindObjectsFinal, h2), CKR_OK);
    assert_eq!(call!(C_FindObjectsFinal, h2), CKR_OPERATION_NOT_INITIALIZED);
    let mut objs = [0 as CK_OBJECT_HANDLE; 2];
    assert_eq!(
        call!(C_FindObjects, h2, objs.as_mut_ptr(), 2, &mut n),
        CKR_OPERATION_NOT_INITIALIZED
    );
}

#[test]
fn c3_key_usage_not_permitted() {
    let s = session();
    let h = s.handle();
    let k = aes_with(
        &s,
        &[7u8; 16],
        &[
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
        ],
    )
    .handle();
    let mut ecb = mech(CKM_AES_ECB);
    assert_eq!(
        call!(C_EncryptInit, h, &mut ecb, k),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    assert_eq!(
        call!(C_DecryptInit, h, &mut ecb, k),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    let mut cmac = mech(CKM_AES_CMAC);
    assert_eq!(
        call!(C_SignInit, h, &mut cmac, k),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    assert_eq!(
        call!(C_VerifyInit, h, &mut cmac, k),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    let other = aes(&s, &[8u8; 16]);
    let mut kw = mech(CKM_AES_KEY_WRAP);
    let mut out = [0u8; 64];
    let mut n: CK_ULONG = 64;
    assert_eq!(
        call!(C_WrapKey, h, &mut kw, k, other, out.as_mut_ptr(), &mut n),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "wrap with a key without CKA_WRAP"
    );
    let mut w = [0u8; 24];
    let mut o: CK_OBJECT_HANDLE = 0;
    let (mut sk, mut kt) = (CKO_SECRET_KEY, CKK_AES);
    let mut t = [a_ulong(CKA_CLASS, &mut sk), a_ulong(CKA_KEY_TYPE, &mut kt)];
    assert_eq!(
        call!(
            C_UnwrapKey,
            h,
            &mut kw,
            k,
            w.as_mut_ptr(),
            24,
            t.as_mut_ptr(),
            2,
            &mut o
        ),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "unwrap with a key without CKA_UNWRAP"
    );
    // CKA_ALLOWED_MECHANISMS restricts the mechanism.
    let only_gcm = aes_with(
        &s,
        &[9u8; 16],
        &[
            Attribute::Encrypt(true),
            Attribute::AllowedMechanisms(vec![cryptoki::mechanism::MechanismType::AES_GCM]),
        ],
    )
    .handle();
    assert_eq!(
        call!(C_EncryptInit, h, &mut ecb, only_gcm),
        CKR_MECHANISM_INVALID,
        "mechanism not in CKA_ALLOWED_MECHANISMS (§4.8: CKR_MECHANISM_INVALID)"
    );
    // Sign with the RSA public key, encrypt with the private one.
    let keys = keys();
    let mut rsa = mech(CKM_SHA256_RSA_PKCS);
    assert_rv(
        call!(C_SignInit, h, &mut rsa, keys.rsa_pub),
        &[CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED],
        "sign with a public key",
    );
    let mut pk = mech(CKM_RSA_PKCS);
    assert_rv(
        call!(C_EncryptInit, h, &mut pk, keys.rsa_priv),
        &[CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED],
        "encrypt with a private key",
    );
}

#[test]
fn c3_signature_length_range() {
    let s = session();
    let h = s.handle();
    let key = aes(&s, &[10u8; 32]);
    let gk = generic(&s, &[10u8; 32]);
    let k = keys();
    let mut d = [1u8; 32];
    for (m, key, bad_lens) in [
        (CKM_SHA256_HMAC, gk, &[0usize, 1, 31, 33, 64][..]),
        (CKM_AES_CMAC, key, &[0, 15, 17][..]),
        (CKM_SHA256_RSA_PKCS, k.rsa_pub, &[0, 1, 255, 257, 512][..]),
        (CKM_RSA_PKCS, k.rsa_pub, &[0, 255, 257][..]),
    ] {
        for &len in bad_lens {
            let s2 = session();
            let h2 = s2.handle();
            let mut mm = mech(m);
            assert_eq!(call!(C_VerifyInit, h2, &mut mm, key), CKR_OK);
            let mut sig = vec![0u8; len];
            let rv = call!(
                C_Verify,
                h2,
                d.as_mut_ptr(),
                32,
                if len == 0 {
                    std::ptr::null_mut()
                } else {
                    sig.as_mut_ptr()
                },
                len as CK_ULONG
            );
            assert_rv(
                rv,
                &[CKR_SIGNATURE_LEN_RANGE],
                &format!("verify mech {m:#x} signature length {len}"),
            );
            // The operation ended: a second C_Verify is not initialized.
            let rv = call!(
                C_Verify,
                h2,
                d.as_mut_ptr(),
                32,
                sig.as_mut_ptr(),
                len as CK_ULONG
            );
            assert_eq!(rv, CKR_OPERATION_NOT_INITIALIZED, "mech {m:#x} len {len}");
        }
    }
    // Right length, wrong value: CKR_SIGNATURE_INVALID.
    let mut mm = mech(CKM_SHA256_HMAC);
    assert_eq!(call!(C_VerifyInit, h, &mut mm, gk), CKR_OK);
    let mut sig = [0u8; 32];
    assert_eq!(
        call!(C_Verify, h, d.as_mut_ptr(), 32, sig.as_mut_ptr(), 32),
        CKR_SIGNATURE_INVALID
    );
    // ECDSA P-256: wrong length.
    let (pubk, _privk) = s
        .generate_key_pair(
            &cryptoki::mechanism::Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::EcParams(P256_PARAMS.to_vec()),
            ],
            &[Attribute::Token(false), Attribute::Sign(true)],
        )
        .unwrap();
    for len in [0usize, 63, 65, 72] {
        let mut mm = mech(CKM_ECDSA_SHA256);
        assert_eq!(call!(C_VerifyInit, h, &mut mm, pubk.handle()), CKR_OK);
        let mut sig = vec![0u8; len.max(1)];
        let rv = call!(
            C_Verify,
            h,
            d.as_mut_ptr(),
            32,
            sig.as_mut_ptr(),
            len as CK_ULONG
        );
        assert_rv(
            rv,
            &[CKR_SIGNATURE_LEN_RANGE],
            &format!("ECDSA signature length {len}"),
        );
    }
    let mut mm = mech(CKM_ECDSA_SHA256);
    assert_eq!(call!(C_VerifyInit, h, &mut mm, pubk.handle()), CKR_OK);
    let mut sig = vec![0u8; 64];
    assert_eq!(
        call!(C_Verify, h, d.as_mut_ptr(), 32, sig.as_mut_ptr(), 64),
        CKR_SIGNATURE_INVALID,
        "all-zero ECDSA signature"
    );
    // VerifyFinal with wrong length.
    let mut mm = mech(CKM_SHA256_HMAC);
    assert_eq!(call!(C_VerifyInit, h, &mut mm, gk), CKR_OK);
    assert_eq!(call!(C_VerifyUpdate, h, d.as_mut_ptr(), 32), CKR_OK);
    assert_eq!(
        call!(C_VerifyFinal, h, sig.as_mut_ptr(), 7),
        CKR_SIGNATURE_LEN_RANGE
    );
}

#[test]
fn c3_decrypt_garbage() {
    let s = session();
    let h = s.handle();
    let key = aes(&s, &[11u8; 16]);
    let k = keys();
    let mut iv = [0u8; 12];
    // GCM: shorter than the tag, and a wrong tag.
    for len in [0usize, 1, 15] {
        let mut g = gcm_params(&mut iv, 128);
        let mut m = mech_p(CKM_AES_GCM, &mut g);
        let r = decrypt_once(h, &mut m, key, &vec![0x55; len]);
        assert_rv(
            r.err().unwrap_or(CKR_OK),
            &[CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID],
            &format!("GCM decrypt {len} bytes"),
        );
    }
    for len in [16usize, 17, 100] {
        let mut g = gcm_params(&mut iv, 128);
        let mut m = mech_p(CKM_AES_GCM, &mut g);
        let r = decrypt_once(h, &mut m, key, &vec![0x55; len]);
        assert_rv(
            r.err().unwrap_or(CKR_OK),
            &[CKR_ENCRYPTED_DATA_INVALID],
            &format!("GCM decrypt bad tag {len} bytes"),
        );
    }
    // GCM multi-part with a bad tag: the error comes at C_DecryptFinal.
    let mut g = gcm_params(&mut iv, 128);
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    assert_eq!(call!(C_DecryptInit, h, &mut m, key), CKR_OK);
    let mut ct = [0x33u8; 40];
    let mut out = [0u8; 128];
    let mut n: CK_ULONG = 128;
    let rv = call!(
        C_DecryptUpdate,
        h,
        ct.as_mut_ptr(),
        40,
        out.as_mut_ptr(),
        &mut n
    );
    assert_eq!(rv, CKR_OK);
    assert_eq!(
        n, 0,
        "GCM decrypt releases no plaintext before the tag is checked"
    );
    n = 128;
    assert_eq!(
        call!(C_DecryptFinal, h, out.as_mut_ptr(), &mut n),
        CKR_ENCRYPTED_DATA_INVALID
    );
    // CBC-PAD: not a block multiple, bad padding.
    let mut civ = [0u8; 16];
    for (len, want) in [
        (0usize, &[CKR_ENCRYPTED_DATA_LEN_RANGE][..]),
        (1, &[CKR_ENCRYPTED_DATA_LEN_RANGE][..]),
        (15, &[CKR_ENCRYPTED_DATA_LEN_RANGE][..]),
        (17, &[CKR_ENCRYPTED_DATA_LEN_RANGE][..]),
    ] {
        let mut m = CK_MECHANISM {
            mechanism: CKM_AES_CBC_PAD,
            pParameter: civ.as_mut_ptr().cast(),
            ulParameterLen: 16,
        };
        let r = decrypt_once(h, &mut m, key, &vec![0x55; len]);
        assert_rv(
            r.err().unwrap_or(CKR_OK),
            want,
            &format!("CBC-PAD decrypt {len} bytes"),
        );
    }
    // Bad padding: find a block whose decryption does not end in valid padding.
    let mut bad_pad_seen = false;
    for seed in 0u8..8 {
        let mut m = CK_MECHANISM {
            mechanism: CKM_AES_CBC_PAD,
            pParameter: civ.as_mut_ptr().cast(),
            ulParameterLen: 16,
        };
        match decrypt_once(h, &mut m, key, &[seed; 32]) {
            Ok(_) => {}
            Err(rv) => {
                assert_rv(
                    rv,
                    &[CKR_ENCRYPTED_DATA_INVALID],
                    &format!("CBC-PAD bad padding seed {seed}"),
                );
                bad_pad_seen = true;
            }
        }
    }
    assert!(bad_pad_seen);
    // Plain CBC/ECB: not a multiple of the block.
    for mt in [CKM_AES_ECB, CKM_AES_CBC] {
        let mut m = if mt == CKM_AES_CBC {
            CK_MECHANISM {
                mechanism: mt,
                pParameter: civ.as_mut_ptr().cast(),
                ulParameterLen: 16,
            }
        } else {
            mech(mt)
        };
        let r = decrypt_once(h, &mut m, key, &[1u8; 17]);
        assert_rv(
            r.err().unwrap_or(CKR_OK),
            &[CKR_ENCRYPTED_DATA_LEN_RANGE],
            &format!("{mt:#x} decrypt 17 bytes"),
        );
    }
    // OAEP and PKCS#1 v1.5: wrong length, garbage of the right length.
    let mut op = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: std::ptr::null_mut(),
        ulSourceDataLen: 0,
    };
    for len in [0usize, 1, 255, 257] {
        let mut m = mech_p(CKM_RSA_PKCS_OAEP, &mut op);
        let r = decrypt_once(h, &mut m, k.rsa_priv, &vec![0x11; len]);
        assert_rv(
            r.err().unwrap_or(CKR_OK),
            &[CKR_ENCRYPTED_DATA_LEN_RANGE],
            &format!("OAEP decrypt {len} bytes"),
        );
    }
    let mut m = mech_p(CKM_RSA_PKCS_OAEP, &mut op);
    let r = decrypt_once(h, &mut m, k.rsa_priv, &[0x11; 256]);
    assert_rv(
        r.err().unwrap_or(CKR_OK),
        &[CKR_ENCRYPTED_DATA_INVALID],
        "OAEP decrypt garbage",
    );
    // Bigger than the modulus (0xff…): still a clear code.
    let mut m = mech_p(CKM_RSA_PKCS_OAEP, &mut op);
    let r = decrypt_once(h, &mut m, k.rsa_priv, &[0xff; 256]);
    assert_rv(
        r.err().unwrap_or(CKR_OK),
        &[CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE],
        "OAEP decrypt 0xff…",
    );
    let mut m = mech(CKM_RSA_PKCS);
    let r = decrypt_once(h, &mut m, k.rsa_priv, &[0x11; 256]);
    assert_rv(
        r.err().unwrap_or(CKR_OK),
        &[CKR_ENCRYPTED_DATA_INVALID],
        "RSA PKCS decrypt garbage",
    );
    // AES key wrap as a cipher.
    for (mt, lens) in [
        (CKM_AES_KEY_WRAP, &[0usize, 8, 16, 23, 25][..]),
        (CKM_AES_KEY_WRAP_PAD, &[0, 8, 15, 17][..]),
    ] {
        for &len in lens {
            let mut m = mech(mt);
            let r = decrypt_once(h, &mut m, key, &vec![0x22; len]);
            assert_rv(
                r.err().unwrap_or(CKR_OK),
                &[CKR_ENCRYPTED_DATA_LEN_RANGE],
                &format!("{mt:#x} decrypt {len} bytes"),
            );
        }
        let mut m = mech(mt);
        let r = decrypt_once(h, &mut m, key, &[0x22; 32]);
        assert_rv(
            r.err().unwrap_or(CKR_OK),
            &[CKR_ENCRYPTED_DATA_INVALID],
            &format!("{mt:#x} decrypt garbage 32 bytes"),
        );
    }
}

#[test]
fn c3_unwrap_garbage_and_unextractable() {
    let s = session();
    let h = s.handle();
    let kek = aes(&s, &[12u8; 16]);
    let k = keys();
    let (mut sk, mut kt) = (CKO_SECRET_KEY, CKK_AES);
    let mut f = CK_FALSE;
    let mut t = [
        a_ulong(CKA_CLASS, &mut sk),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bool(CKA_TOKEN, &mut f),
    ];
    let mut o: CK_OBJECT_HANDLE = 0;
    for (mt, len, want) in [
        (
            CKM_AES_KEY_WRAP,
            0usize,
            &[CKR_WRAPPED_KEY_LEN_RANGE, CKR_ARGUMENTS_BAD][..],
        ),
        (CKM_AES_KEY_WRAP, 8, &[CKR_WRAPPED_KEY_LEN_RANGE][..]),
        (CKM_AES_KEY_WRAP, 23, &[CKR_WRAPPED_KEY_LEN_RANGE][..]),
        (CKM_AES_KEY_WRAP, 24, &[CKR_WRAPPED_KEY_INVALID][..]),
        (CKM_AES_KEY_WRAP, 40, &[CKR_WRAPPED_KEY_INVALID][..]),
        (
            CKM_AES_KEY_WRAP_PAD,
            8,
            &[CKR_WRAPPED_KEY_LEN_RANGE, CKR_WRAPPED_KEY_INVALID][..],
        ),
        (CKM_AES_KEY_WRAP_PAD, 17, &[CKR_WRAPPED_KEY_LEN_RANGE][..]),
        (CKM_AES_KEY_WRAP_PAD, 24, &[CKR_WRAPPED_KEY_INVALID][..]),
    ] {
        let mut m = mech(mt);
        let mut w = vec![0x5au8; len];
        let rv = call!(
            C_UnwrapKey,
            h,
            &mut m,
            kek,
            if len == 0 {
                std::ptr::null_mut()
            } else {
                w.as_mut_ptr()
            },
            len as CK_ULONG,
            t.as_mut_ptr(),
            3,
            &mut o
        );
        assert_rv(rv, want, &format!("unwrap {mt:#x} {len} garbage bytes"));
    }
    // GCM / CBC-PAD unwrap garbage.
    let mut iv = [0u8; 12];
    let mut g = gcm_params(&mut iv, 128);
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    let mut w = [0x5au8; 48];
    let rv = call!(
        C_UnwrapKey,
        h,
        &mut m,
        kek,
        w.as_mut_ptr(),
        48,
        t.as_mut_ptr(),
        3,
        &mut o
    );
    assert_rv(rv, &[CKR_WRAPPED_KEY_INVALID], "unwrap GCM garbage");
    let rv = call!(
        C_UnwrapKey,
        h,
        &mut m,
        kek,
        w.as_mut_ptr(),
        8,
        t.as_mut_ptr(),
        3,
        &mut o
    );
    assert_rv(
        rv,
        &[CKR_WRAPPED_KEY_LEN_RANGE, CKR_WRAPPED_KEY_INVALID],
        "unwrap GCM 8 bytes",
    );
    // RSA OAEP unwrap garbage.
    let mut op = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: std::ptr::null_mut(),
        ulSourceDataLen: 0,
    };
    let mut m = mech_p(CKM_RSA_PKCS_OAEP, &mut op);
    let mut w = [0x11u8; 256];
    let rv = call!(
        C_UnwrapKey,
        h,
        &mut m,
        k.rsa_priv,
        w.as_mut_ptr(),
        256,
        t.as_mut_ptr(),
        3,
        &mut o
    );
    assert_rv(rv, &[CKR_WRAPPED_KEY_INVALID], "unwrap OAEP garbage");
    let rv = call!(
        C_UnwrapKey,
        h,
        &mut m,
        k.rsa_priv,
        w.as_mut_ptr(),
        100,
        t.as_mut_ptr(),
        3,
        &mut o
    );
    assert_rv(rv, &[CKR_WRAPPED_KEY_LEN_RANGE], "unwrap OAEP 100 bytes");
    // Valid wrap, unwrap into an AES key with a bad length (wrapped 24-byte value → AES-192
    // is fine; wrap 40 bytes of a generic secret and unwrap as AES: a bad AES length).
    let gen40 = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Extractable(true),
            Attribute::Sensitive(false),
            Attribute::Value(vec![0x77; 40]),
        ])
        .unwrap()
        .handle();
    let mut kw = mech(CKM_AES_KEY_WRAP);
    let mut wrapped = [0u8; 64];
    let mut wn: CK_ULONG = 64;
    assert_eq!(
        call!(
            C_WrapKey,
            h,
            &mut kw,
            kek,
            gen40,
            wrapped.as_mut_ptr(),
            &mut wn
        ),
        CKR_OK
    );
    let rv = call!(
        C_UnwrapKey,
        h,
        &mut kw,
        kek,
        wrapped.as_mut_ptr(),
        wn,
        t.as_mut_ptr(),
        3,
        &mut o
    );
    assert_rv(
        rv,
        &[
            CKR_WRAPPED_KEY_INVALID,
            CKR_TEMPLATE_INCONSISTENT,
            CKR_ATTRIBUTE_VALUE_INVALID,
        ],
        "unwrap 40 bytes as AES",
    );
    // Wrap a non-extractable key.
    let unx = aes_with(&s, &[13u8; 16], &[Attribute::Extractable(false)]).handle();
    wn = 64;
    assert_eq!(
        call!(
            C_WrapKey,
            h,
            &mut kw,
            kek,
            unx,
            wrapped.as_mut_ptr(),
            &mut wn
        ),
        CKR_KEY_UNEXTRACTABLE
    );
    wn = 64;
    assert_eq!(
        call!(
            C_WrapKey,
            h,
            &mut kw,
            kek,
            unx,
            std::ptr::null_mut(),
            &mut wn
        ),
        CKR_KEY_UNEXTRACTABLE,
        "length query too"
    );
    // Wrap a key with itself: allowed or refused, never a hang.
    wn = 64;
    let rv = call!(
        C_WrapKey,
        h,
        &mut kw,
        kek,
        kek,
        wrapped.as_mut_ptr(),
        &mut wn
    );
    assert_rv(
        rv,
        &[CKR_OK, CKR_KEY_NOT_WRAPPABLE],
        "wrap a key with itself",
    );
    // Wrap the RSA private key with AES-KW (private keys: not wrappable here).
    wn = 64;
    let rv = call!(
        C_WrapKey,
        h,
        &mut kw,
        kek,
        k.rsa_priv,
        wrapped.as_mut_ptr(),
        &mut wn
    );
    assert_rv(
        rv,
        &[CKR_KEY_NOT_WRAPPABLE, CKR_KEY_UNEXTRACTABLE],
        "wrap a sensitive RSA private key",
    );
    // Wrap with a handle that is a data object.
    let mut class = CKO_DATA;
    let mut dt = [a_ulong(CKA_CLASS, &mut class)];
    let (rv, data) = create(h, &mut dt);
    assert_eq!(rv, CKR_OK);
    wn = 64;
    let rv = call!(
        C_WrapKey,
        h,
        &mut kw,
        data,
        kek,
        wrapped.as_mut_ptr(),
        &mut wn
    );
    assert_rv(
        rv,
        &[
            CKR_WRAPPING_KEY_HANDLE_INVALID,
            CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
        ],
        "wrapping key is a data object",
    );
    wn = 64;
    let rv = call!(
        C_WrapKey,
        h,
        &mut kw,
        kek,
        data,
        wrapped.as_mut_ptr(),
        &mut wn
    );
    assert_rv(
        rv,
        &[CKR_KEY_HANDLE_INVALID, CKR_KEY_NOT_WRAPPABLE],
        "wrapped key is a data object",
    );
}

#[test]
fn c3_destroy_key_during_operation() {
    let s = session();
    let h = s.handle();
    let key = aes(&s, &[14u8; 16]);
    let mut iv = [0u8; 12];
    let mut g = gcm_params(&mut iv, 128);
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    assert_eq!(call!(C_EncryptInit, h, &mut m, key), CKR_OK);
    assert_eq!(call!(C_DestroyObject, h, key), CKR_OK);
    let mut d = [1u8; 16];
    let mut out = [0u8; 64];
    let mut n: CK_ULONG = 64;
    let rv = call!(C_Encrypt, h, d.as_mut_ptr(), 16, out.as_mut_ptr(), &mut n);
    assert_rv(
        rv,
        &[CKR_OK, CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID],
        "encrypt after the key was destroyed",
    );
    // Same for a multi-part HMAC.
    let key = generic(&s, &[15u8; 16]);
    let mut hm = mech(CKM_SHA256_HMAC);
    assert_eq!(call!(C_SignInit, h, &mut hm, key), CKR_OK);
    assert_eq!(call!(C_SignUpdate, h, d.as_mut_ptr(), 16), CKR_OK);
    assert_eq!(call!(C_DestroyObject, h, key), CKR_OK);
    assert_eq!(call!(C_SignUpdate, h, d.as_mut_ptr(), 16), CKR_OK);
    n = 64;
    let rv = call!(C_SignFinal, h, out.as_mut_ptr(), &mut n);
    assert_rv(
        rv,
        &[CKR_OK, CKR_KEY_HANDLE_INVALID],
        "sign final after destroy",
    );
    // The destroyed handle is gone for good.
    let mut ecb = mech(CKM_AES_ECB);
    assert_eq!(
        call!(C_EncryptInit, h, &mut ecb, key),
        CKR_KEY_HANDLE_INVALID
    );
    assert_eq!(call!(C_DestroyObject, h, key), CKR_OBJECT_HANDLE_INVALID);
}

#[test]
fn c3_logout_with_active_operation() {
    // A separate token so logging out does not disturb the other tests.
    let e = env();
    let slot = e.user_token("logout");
    let s = e.user_session(slot);
    let h = s.handle();
    let key = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Encrypt(true),
            Attribute::Sign(true),
            Attribute::Value(vec![0x42; 16]),
        ])
        .unwrap()
        .handle();
    let mut ecb = mech(CKM_AES_ECB);
    assert_eq!(call!(C_EncryptInit, h, &mut ecb, key), CKR_OK);
    let mut hm = mech(CKM_AES_CMAC);
    assert_eq!(call!(C_SignInit, h, &mut hm, key), CKR_OK);
    assert_eq!(call!(C_FindObjectsInit, h, std::ptr::null_mut(), 0), CKR_OK);
    assert_eq!(call!(C_Logout, h), CKR_OK);
    let mut d = [1u8; 16];
    let mut out = [0u8; 64];
    let mut n: CK_ULONG = 64;
    let rv = call!(C_Encrypt, h, d.as_mut_ptr(), 16, out.as_mut_ptr(), &mut n);
    assert_rv(
        rv,
        &[CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN],
        "encrypt with a private key after logout",
    );
    assert_rv(
        call!(C_SignUpdate, h, d.as_mut_ptr(), 16),
        &[CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN],
        "sign after logout",
    );
    assert_eq!(call!(C_Logout, h), CKR_USER_NOT_LOGGED_IN);
    // Private key invisible now.
    assert_rv(
        call!(C_EncryptInit, h, &mut ecb, key),
        &[
            CKR_KEY_HANDLE_INVALID,
            CKR_USER_NOT_LOGGED_IN,
            CKR_OBJECT_HANDLE_INVALID,
        ],
        "private key after logout",
    );
    // Log in again: the old handle stays invalid ("even if a user is later logged back
    // into the token, those handles remain invalid", C_Logout, PKCS#11 3.0 §5.6), and a
    // search finds the key under a new handle that works.
    let mut p = USER_PIN.as_bytes().to_vec();
    assert_eq!(
        call!(C_Login, h, CKU_USER, p.as_mut_ptr(), p.len() as CK_ULONG),
        CKR_OK
    );
    assert_eq!(
        call!(C_EncryptInit, h, &mut ecb, key),
        CKR_KEY_HANDLE_INVALID,
        "a private object's handle from before C_Logout"
    );
    // The token "logout" holds this one secret key.
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(true),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "the key is found again after the new login");
    let key = found[0].handle();
    assert_eq!(call!(C_EncryptInit, h, &mut ecb, key), CKR_OK);
    n = 64;
    assert_eq!(
        call!(C_Encrypt, h, d.as_mut_ptr(), 16, out.as_mut_ptr(), &mut n),
        CKR_OK
    );
}

#[test]
fn c3_close_session_from_another_thread() {
    let s = session();
    let key = aes(&s, &[16u8; 16]);
    let slot = keys().slot.id();
    for round in 0..4 {
        let mut h: CK_SESSION_HANDLE = 0;
        assert_eq!(
            call!(
                C_OpenSession,
                slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                std::ptr::null_mut(),
                None,
                &mut h
            ),
            CKR_OK
        );
        let worker = std::thread::spawn(move || {
            let mut last = CKR_OK;
            let mut iv = [0u8; 16];
            for _ in 0..20_000 {
                let mut m = CK_MECHANISM {
                    mechanism: CKM_AES_CBC_PAD,
                    pParameter: iv.as_mut_ptr().cast(),
                    ulParameterLen: 16,
                };
                let rv = call!(C_EncryptInit, h, &mut m, key);
                if rv != CKR_OK {
                    last = rv;
                    break;
                }
                let mut d = [3u8; 40];
                let mut out = [0u8; 64];
                let mut n: CK_ULONG = 64;
                let rv = call!(
                    C_EncryptUpdate,
                    h,
                    d.as_mut_ptr(),
                    40,
                    out.as_mut_ptr(),
                    &mut n
                );
                if rv != CKR_OK {
                    last = rv;
                    break;
                }
                n = 64;
                let rv = call!(C_EncryptFinal, h, out.as_mut_ptr(), &mut n);
                if rv != CKR_OK {
                    last = rv;
                    break;
                }
            }
            last
        });
        std::thread::sleep(std::time::Duration::from_millis(5 + round * 3));
        assert_eq!(call!(C_CloseSession, h), CKR_OK);
        let last = worker.join().expect("worker thread");
        assert_rv(
            last,
            &[
                CKR_SESSION_HANDLE_INVALID,
                CKR_SESSION_CLOSED,
                CKR_OPERATION_NOT_INITIALIZED,
                CKR_OK,
            ],
            "worker's last rv after its session was closed",
        );
        let mut si = CK_SESSION_INFO::default();
        assert_eq!(
            call!(C_GetSessionInfo, h, &mut si),
            CKR_SESSION_HANDLE_INVALID
        );
    }
}

// ---------------------------------------------------------------------------------------
// Class 4: handles.

#[test]
fn c4_invalid_handles() {
    let s = session();
    let h = s.handle();
    let slot = keys().slot.id();
    let mut si = CK_SESSION_INFO::default();
    let mut ecb = mech(CKM_AES_ECB);
    let key = aes(&s, &[17u8; 16]);
    // Session handles: 0, never issued, closed.
    let mut closed: CK_SESSION_HANDLE = 0;
    assert_eq!(
        call!(
            C_OpenSession,
            slot,
            CKF_SERIAL_SESSION,
            std::ptr::null_mut(),
            None,
            &mut closed
        ),
        CKR_OK
    );
    assert_eq!(call!(C_CloseSession, closed), CKR_OK);
    for bad in [0, 0xdead_beef, CK_ULONG::MAX, closed] {
        assert_eq!(
            call!(C_GetSessionInfo, bad, &mut si),
            CKR_SESSION_HANDLE_INVALID,
            "{bad:#x}"
        );
        assert_eq!(
            call!(C_CloseSession, bad),
            CKR_SESSION_HANDLE_INVALID,
            "{bad:#x}"
        );
        assert_eq!(
            call!(C_EncryptInit, bad, &mut ecb, key),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(call!(C_Logout, bad), CKR_SESSION_HANDLE_INVALID);
        let mut p = *b"whatever";
        assert_eq!(
            call!(C_Login, bad, CKU_USER, p.as_mut_ptr(), 8),
            CKR_SESSION_HANDLE_INVALID
        );
        let mut r = [0u8; 4];
        assert_eq!(
            call!(C_GenerateRandom, bad, r.as_mut_ptr(), 4),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            call!(C_FindObjectsInit, bad, std::ptr::null_mut(), 0),
            CKR_SESSION_HANDLE_INVALID
        );
        let mut sha = mech(CKM_SHA256);
        assert_eq!(
            call!(C_DigestInit, bad, &mut sha),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(call!(C_DestroyObject, bad, key), CKR_SESSION_HANDLE_INVALID);
        let mut d = [0u8; 16];
        let mut out = [0u8; 16];
        let mut n: CK_ULONG = 16;
        assert_eq!(
            call!(C_Encrypt, bad, d.as_mut_ptr(), 16, out.as_mut_ptr(), &mut n),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(session_cancel(bad, CKF_ENCRYPT), CKR_SESSION_HANDLE_INVALID);
    }
    // Slot IDs.
    let mut ti = CK_TOKEN_INFO::default();
    for bad in [99, CK_ULONG::MAX] {
        assert_eq!(call!(C_GetTokenInfo, bad, &mut ti), CKR_SLOT_ID_INVALID);
        let mut hh: CK_SESSION_HANDLE = 0;
        assert_eq!(
            call!(
                C_OpenSession,
                bad,
                CKF_SERIAL_SESSION,
                std::ptr::null_mut(),
                None,
                &mut hh
            ),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(call!(C_CloseAllSessions, bad), CKR_SLOT_ID_INVALID);
        let mut n: CK_ULONG = 0;
        assert_eq!(
            call!(C_GetMechanismList, bad, std::ptr::null_mut(), &mut n),
            CKR_SLOT_ID_INVALID
        );
    }
    // Object handles: 0, never issued, destroyed, session object of a closed session.
    let dead = aes(&s, &[18u8; 16]);
    assert_eq!(call!(C_DestroyObject, h, dead), CKR_OK);
    let other = session();
    let orphan = aes(&other, &[19u8; 16]);
    drop(other); // closes the session: its session objects go
    for bad in [0, 0xdead_beef, CK_ULONG::MAX, dead, orphan] {
        let mut a = [CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        }];
        assert_eq!(
            call!(C_GetAttributeValue, h, bad, a.as_mut_ptr(), 1),
            CKR_OBJECT_HANDLE_INVALID,
            "GetAttributeValue {bad:#x}"
        );
        let mut v = [1u8; 3];
        let mut t = [a_bytes(CKA_LABEL, &mut v)];
        assert_eq!(
            call!(C_SetAttributeValue, h, bad, t.as_mut_ptr(), 1),
            CKR_OBJECT_HANDLE_INVALID,
            "SetAttributeValue {bad:#x}"
        );
        assert_eq!(
            call!(C_DestroyObject, h, bad),
            CKR_OBJECT_HANDLE_INVALID,
            "Destroy {bad:#x}"
        );
        let mut sz: CK_ULONG = 0;
        assert_eq!(
            call!(C_GetObjectSize, h, bad, &mut sz),
            CKR_OBJECT_HANDLE_INVALID,
            "GetObjectSize {bad:#x}"
        );
        let mut o: CK_OBJECT_HANDLE = 0;
        assert_eq!(
            call!(C_CopyObject, h, bad, std::ptr::null_mut(), 0, &mut o),
            CKR_OBJECT_HANDLE_INVALID,
            "CopyObject {bad:#x}"
        );
        assert_eq!(
            call!(C_EncryptInit, h, &mut ecb, bad),
            CKR_KEY_HANDLE_INVALID,
            "{bad:#x}"
        );
        assert_eq!(
            call!(C_DecryptInit, h, &mut ecb, bad),
            CKR_KEY_HANDLE_INVALID,
            "{bad:#x}"
        );
        let mut cm = mech(CKM_AES_CMAC);
        assert_eq!(
            call!(C_SignInit, h, &mut cm, bad),
            CKR_KEY_HANDLE_INVALID,
            "{bad:#x}"
        );
        assert_eq!(
            call!(C_VerifyInit, h, &mut cm, bad),
            CKR_KEY_HANDLE_INVALID,
            "{bad:#x}"
        );
        let mut kw = mech(CKM_AES_KEY_WRAP);
        let mut out = [0u8; 64];
        let mut n: CK_ULONG = 64;
        assert_eq!(
            call!(C_WrapKey, h, &mut kw, bad, key, out.as_mut_ptr(), &mut n),
            CKR_WRAPPING_KEY_HANDLE_INVALID,
            "wrapping {bad:#x}"
        );
        assert_eq!(
            call!(C_WrapKey, h, &mut kw, key, bad, out.as_mut_ptr(), &mut n),
            CKR_KEY_HANDLE_INVALID,
            "wrapped {bad:#x}"
        );
        let (mut sk, mut kt) = (CKO_SECRET_KEY, CKK_AES);
        let mut t = [a_ulong(CKA_CLASS, &mut sk), a_ulong(CKA_KEY_TYPE, &mut kt)];
        let mut w = [0u8; 24];
        assert_eq!(
            call!(
                C_UnwrapKey,
                h,
                &mut kw,
                bad,
                w.as_mut_ptr(),
                24,
                t.as_mut_ptr(),
                2,
                &mut o
            ),
            CKR_UNWRAPPING_KEY_HANDLE_INVALID,
            "unwrapping {bad:#x}"
        );
        assert_rv(
            call!(C_DigestInit, h, &mut mech(CKM_SHA256)),
            &[CKR_OK, CKR_OPERATION_ACTIVE],
            "digest init",
        );
        assert_rv(
            call!(C_DigestKey, h, bad),
            &[CKR_KEY_HANDLE_INVALID, CKR_FUNCTION_NOT_SUPPORTED],
            &format!("DigestKey {bad:#x}"),
        );
        let _ = session_cancel(h, CKF_DIGEST);
    }
}

// ---------------------------------------------------------------------------------------
// Class 5: PINs and labels.

#[test]
fn c5_pin_lengths_and_nul_bytes() {
    let e = env();
    let slot = e.user_token("pins");
    let s = e.ctx.open_rw_session(slot).unwrap();
    let h = s.handle();
    // Some other test may have this token logged in; log out first.
    let _ = call!(C_Logout, h);
    for len in [0usize, 3, 65, 1000] {
        let mut p = vec![b'1'; len];
        let rv = call!(
            C_Login,
            h,
            CKU_USER,
            if len == 0 {
                b"".as_ptr() as *mut u8
            } else {
                p.as_mut_ptr()
            },
            len as CK_ULONG
        );
        assert_rv(
            rv,
            &[CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE],
            &format!("user PIN of {len} bytes"),
        );
        let rv = call!(C_Login, h, CKU_SO, p.as_mut_ptr(), len as CK_ULONG);
        assert_rv(
            rv,
            &[CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE, CKR_ARGUMENTS_BAD],
            &format!("SO PIN of {len} bytes"),
        );
    }
    // The right PIN with a trailing NUL, and with a NUL in the middle.
    let mut p = format!("{USER_PIN}\0").into_bytes();
    assert_eq!(
        call!(C_Login, h, CKU_USER, p.as_mut_ptr(), p.len() as CK_ULONG),
        CKR_PIN_INCORRECT,
        "PIN + NUL is a different PIN"
    );
    let mut p = b"user\0pin-1234".to_vec();
    assert_eq!(
        call!(C_Login, h, CKU_USER, p.as_mut_ptr(), p.len() as CK_ULONG),
        CKR_PIN_INCORRECT
    );
    // A PIN truncated at its length: only the first bytes count.
    let mut p = format!("{USER_PIN}XYZ").into_bytes();
    assert_eq!(
        call!(
            C_Login,
            h,
            CKU_USER,
            p.as_mut_ptr(),
            USER_PIN.len() as CK_ULONG
        ),
        CKR_OK
    );
    // C_SetPIN to bad lengths and to a PIN with NUL bytes, then back.
    for len in [0usize, 3, 65, 1000] {
        let mut old = USER_PIN.as_bytes().to_vec();
        let mut new = vec![b'7'; len.max(1)];
        let rv = call!(
            C_SetPIN,
            h,
            old.as_mut_ptr(),
            old.len() as CK_ULONG,
            new.as_mut_ptr(),
            len as CK_ULONG
        );
        assert_rv(
            rv,
            &[CKR_PIN_LEN_RANGE],
            &format!("C_SetPIN new PIN {len} bytes"),
        );
    }
    let mut old = USER_PIN.as_bytes().to_vec();
    let mut nul = b"ab\0\0cd\0ef".to_vec();
    let rv = call!(
        C_SetPIN,
        h,
        old.as_mut_ptr(),
        old.len() as CK_ULONG,
        nul.as_mut_ptr(),
        nul.len() as CK_ULONG
    );
    assert_rv(
        rv,
        &[CKR_OK, CKR_PIN_INVALID],
        "C_SetPIN to a PIN with NUL bytes",
    );
    if rv == CKR_OK {
        assert_eq!(call!(C_Logout, h), CKR_OK);
        let mut cut = b"ab".to_vec();
        assert_rv(
            call!(C_Login, h, CKU_USER, cut.as_mut_ptr(), 2),
            &[CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE],
            "PIN cut at its first NUL",
        );
        assert_eq!(
            call!(
                C_Login,
                h,
                CKU_USER,
                nul.as_mut_ptr(),
                nul.len() as CK_ULONG
            ),
            CKR_OK,
            "the PIN with NUL bytes, at its full length"
        );
        assert_eq!(
            call!(
                C_SetPIN,
                h,
                nul.as_mut_ptr(),
                nul.len() as CK_ULONG,
                old.as_mut_ptr(),
                old.len() as CK_ULONG
            ),
            CKR_OK
        );
    }
    let _ = call!(C_Logout, h);
}

#[test]
fn c5_init_token_bad_labels_and_pins() {
    let e = env();
    let slot = e.with_uninit_token("label", |slot| {
        let id = slot.id();
        let mut so = SO_PIN.as_bytes().to_vec();
        // Invalid UTF-8 labels.
        for lbl in [
            {
                let mut l = [b' '; 32];
                l[0] = 0xff;
                l
            },
            {
                let mut l = [b' '; 32];
                l[..4].copy_from_slice(b"ab\xc3 ");
                l
            },
            {
                // A 3-byte character cut by the end of the 32 bytes.
                let mut l = [b'a'; 32];
                l[30] = 0xe2;
                l[31] = 0x82;
                l
            },
        ] {
            let mut l = lbl;
            let rv = call!(
                C_InitToken,
                id,
                so.as_mut_ptr(),
                so.len() as CK_ULONG,
                l.as_mut_ptr()
            );
            assert_rv(
                rv,
                &[CKR_ARGUMENTS_BAD, CKR_TOKEN_NOT_RECOGNIZED],
                &format!("C_InitToken label {:?}", String::from_utf8_lossy(&lbl)),
            );
        }
        // A NULL label.
        assert_eq!(
            call!(
                C_InitToken,
                id,
                so.as_mut_ptr(),
                so.len() as CK_ULONG,
                std::ptr::null_mut()
            ),
            CKR_ARGUMENTS_BAD
        );
        // Bad SO PIN lengths.
        for len in [0usize, 3, 65, 1000] {
            let mut p = vec![b'9'; len.max(1)];
            let mut l = padded32("label");
            let rv = call!(
                C_InitToken,
                id,
                p.as_mut_ptr(),
                len as CK_ULONG,
                l.as_mut_ptr()
            );
            assert_rv(
                rv,
                &[CKR_PIN_LEN_RANGE, CKR_PIN_INCORRECT],
                &format!("SO PIN {len}"),
            );
        }
        let mut ti = CK_TOKEN_INFO::default();
        assert_eq!(call!(C_GetTokenInfo, id, &mut ti), CKR_OK);
        assert_eq!(
            ti.flags & CKF_TOKEN_INITIALIZED,
            0,
            "no failed C_InitToken initialized it"
        );
        // A label with NUL bytes and a valid one.
        let mut l = padded32("label");
        let rv = call!(
            C_InitToken,
            id,
            so.as_mut_ptr(),
            so.len() as CK_ULONG,
            l.as_mut_ptr()
        );
        assert_eq!(rv, CKR_OK);
    });
    let mut ti = CK_TOKEN_INFO::default();
    assert_eq!(call!(C_GetTokenInfo, slot.id(), &mut ti), CKR_OK);
    assert_eq!(ti.label, padded32("label"));
    // Re-init with the wrong SO PIN: PIN_INCORRECT, token kept.
    let mut bad = b"not-the-so-pin".to_vec();
    let mut l = padded32("label");
    assert_eq!(
        call!(
            C_InitToken,
            slot.id(),
            bad.as_mut_ptr(),
            bad.len() as CK_ULONG,
            l.as_mut_ptr()
        ),
        CKR_PIN_INCORRECT
    );
    // Re-init with an invalid UTF-8 label on an initialized token.
    let mut so = SO_PIN.as_bytes().to_vec();
    let mut l = [0xffu8; 32];
    assert_rv(
        call!(
            C_InitToken,
            slot.id(),
            so.as_mut_ptr(),
            so.len() as CK_ULONG,
            l.as_mut_ptr()
        ),
        &[CKR_ARGUMENTS_BAD],
        "re-init with an invalid label",
    );
    assert_eq!(call!(C_GetTokenInfo, slot.id(), &mut ti), CKR_OK);
    assert_eq!(ti.label, padded32("label"), "label unchanged");
}

// ---------------------------------------------------------------------------------------
// Class 6: attribute rules.

#[test]
fn c6_read_only_attributes() {
    let s = session();
    let h = s.handle();
    let key = aes_with(
        &s,
        &[20u8; 16],
        &[
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
        ],
    )
    .handle();
    let mut v = [0u8; 16];
    let mut t = [a_bytes(CKA_VALUE, &mut v)];
    assert_eq!(
        call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 1),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_VALUE of a secret key"
    );
    let mut f = CK_FALSE;
    let mut t = [a_bool(CKA_SENSITIVE, &mut f)];
    assert_eq!(
        call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 1),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_SENSITIVE true -> false"
    );
    let mut tr = CK_TRUE;
    let mut t = [a_bool(CKA_EXTRACTABLE, &mut tr)];
    assert_eq!(
        call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 1),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_EXTRACTABLE false -> true"
    );
    for (ty, val) in [
        (CKA_CLASS, CKO_DATA),
        (CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        (CKA_VALUE_LEN, 32),
    ] {
        let mut vv = val;
        let mut t = [a_ulong(ty, &mut vv)];
        assert_eq!(
            call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 1),
            CKR_ATTRIBUTE_READ_ONLY,
            "attribute {ty:#x}"
        );
    }
    // Token-set attributes: never settable; CKA_TOKEN is a change here (false -> true).
    for ty in [
        CKA_LOCAL,
        CKA_ALWAYS_SENSITIVE,
        CKA_NEVER_EXTRACTABLE,
        CKA_TOKEN,
    ] {
        let mut vv = CK_TRUE;
        let mut t = [a_bool(ty, &mut vv)];
        assert_eq!(
            call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 1),
            CKR_ATTRIBUTE_READ_ONLY,
            "attribute {ty:#x}"
        );
    }
    let mut vv = CK_FALSE;
    let mut t = [a_bool(CKA_PRIVATE, &mut vv)];
    assert_eq!(
        call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 1),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_PRIVATE true -> false"
    );
    // A template that mixes a good change with a read-only one changes nothing.
    let mut lbl = *b"changed";
    let mut f = CK_FALSE;
    let mut t = [a_bytes(CKA_LABEL, &mut lbl), a_bool(CKA_SENSITIVE, &mut f)];
    assert_eq!(
        call!(C_SetAttributeValue, h, key, t.as_mut_ptr(), 2),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(get_attr(h, key, CKA_LABEL).unwrap(), b"", "nothing changed");
    // The sensitive value stays unreadable.
    assert_eq!(get_attr(h, key, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    // Allowed transitions: sensitive false->true, extractable true->false.
    let k2 = aes(&s, &[21u8; 16]);
    let mut tr = CK_TRUE;
    let mut t = [a_bool(CKA_SENSITIVE, &mut tr)];
    assert_eq!(call!(C_SetAttributeValue, h, k2, t.as_mut_ptr(), 1), CKR_OK);
    let mut f = CK_FALSE;
    let mut t = [a_bool(CKA_SENSITIVE, &mut f)];
    assert_eq!(
        call!(C_SetAttributeValue, h, k2, t.as_mut_ptr(), 1),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_SENSITIVE back to false after it was set"
    );
    assert_eq!(get_attr(h, k2, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    // C_CopyObject must not be a way around the rules either.
    let mut f = CK_FALSE;
    let mut t = [a_bool(CKA_SENSITIVE, &mut f)];
    let mut o: CK_OBJECT_HANDLE = 0;
    assert_rv(
        call!(C_CopyObject, h, key, t.as_mut_ptr(), 1, &mut o),
        &[CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCONSISTENT],
        "copy with CKA_SENSITIVE false",
    );
    let mut tr = CK_TRUE;
    let mut t = [a_bool(CKA_EXTRACTABLE, &mut tr)];
    assert_rv(
        call!(C_CopyObject, h, key, t.as_mut_ptr(), 1, &mut o),
        &[CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCONSISTENT],
        "copy with CKA_EXTRACTABLE true",
    );
    // CKA_MODIFIABLE false: everything read-only.
    let fixed = aes_with(&s, &[22u8; 16], &[Attribute::Modifiable(false)]).handle();
    let mut lbl = *b"x";
    let mut t = [a_bytes(CKA_LABEL, &mut lbl)];
    assert_eq!(
        call!(C_SetAttributeValue, h, fixed, t.as_mut_ptr(), 1),
        CKR_ACTION_PROHIBITED,
        "label of a non-modifiable object (3.0: CKR_ACTION_PROHIBITED)"
    );
}

#[test]
fn c6_get_attribute_buffers() {
    let s = session();
    let h = s.handle();
    let key = aes(&s, &[23u8; 32]);
    let sens = aes_with(&s, &[24u8; 16], &[Attribute::Sensitive(true)]).handle();
    // Short buffer.
    let mut small = [0xeeu8; 8];
    let mut a = [CK_ATTRIBUTE {
        type_: CKA_VALUE,
        pValue: small.as_mut_ptr().cast(),
        ulValueLen: 8,
    }];
    assert_eq!(
        call!(C_GetAttributeValue, h, key, a.as_mut_ptr(), 1),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(a[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(small, [0xee; 8], "nothing written into the short buffer");
    // NULL pValue: the length.
    let mut a = [CK_ATTRIBUTE {
        type_: CKA_VALUE,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    }];
    assert_eq!(
        call!(C_GetAttributeValue, h, key, a.as_mut_ptr(), 1),
        CKR_OK
    );
    assert_eq!(a[0].ulValueLen, 32);
    // NULL pValue with a huge ulValueLen: still a length query.
    a[0].ulValueLen = CK_ULONG::MAX;
    assert_eq!(
        call!(C_GetAttributeValue, h, key, a.as_mut_ptr(), 1),
        CKR_OK
    );
    assert_eq!(a[0].ulValueLen, 32);
    // A mix: short, sensitive, invalid, good. Every entry processed; SENSITIVE wins.
    let mut cls = [0u8; 8];
    let mut short = [0u8; 2];
    let mut lbl = [0u8; 16];
    let mut a = [
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: cls.as_mut_ptr().cast(),
            ulValueLen: 8,
        },
        CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: short.as_mut_ptr().cast(),
            ulValueLen: 2,
        },
        CK_ATTRIBUTE {
            type_: CKA_VENDOR_DEFINED | 5,
            pValue: lbl.as_mut_ptr().cast(),
            ulValueLen: 16,
        },
    ];
    assert_eq!(
        call!(C_GetAttributeValue, h, sens, a.as_mut_ptr(), 3),
        CKR_ATTRIBUTE_SENSITIVE
    );
    assert_eq!(CK_ULONG::from_ne_bytes(cls), CKO_SECRET_KEY);
    assert_eq!(a[0].ulValueLen, 8);
    assert_eq!(a[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(a[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    // CKA_CLASS into a 4-byte buffer.
    let mut c4 = [0u8; 4];
    let mut a = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: c4.as_mut_ptr().cast(),
        ulValueLen: 4,
    }];
    assert_eq!(
        call!(C_GetAttributeValue, h, key, a.as_mut_ptr(), 1),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(a[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    // Zero entries.
    assert_eq!(
        call!(C_GetAttributeValue, h, key, std::ptr::null_mut(), 0),
        CKR_OK
    );
    // RSA private key: sensitive components.
    let k = keys();
    assert_eq!(
        get_attr(h, k.rsa_priv, CKA_PRIVATE_EXPONENT),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    assert_eq!(
        get_attr(h, k.rsa_priv, CKA_PRIME_1),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    assert_eq!(
        get_attr(h, k.rsa_priv, CKA_MODULUS).map(|v| v.len()),
        Ok(256)
    );
}

// ---------------------------------------------------------------------------------------
// Child processes (classes 3, 7, 8): C_Initialize is process-global.

const CHILD_ENV: &str = "P11KMS_ATTACK_CHILD";

fn in_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

fn run_child(name: &str, envs: &[(&str, &str)]) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, name)
        .envs(envs.iter().copied())
        .output()
        .expect("spawn child")
}

/// Writes a one-token config in `dir` with `log_level`; returns its path.
fn child_config(dir: &std::path::Path, label: &str, log_level: &str) -> std::path::PathBuf {
    let conf = dir.join("p11kms.toml");
    std::fs::write(
        &conf,
        format!(
            "log_level = \"{log_level}\"\n[[token]]\nlabel = \"{label}\"\nbackend = \"local\"\nstore = \"{}\"\n",
            dir.join(format!("{label}.sqlite")).display()
        ),
    )
    .unwrap();
    conf
}

fn child_envs(dir: &std::path::Path, conf: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("P11KMS_CONF".into(), conf.display().to_string()),
        ("XDG_DATA_HOME".into(), dir.display().to_string()),
        ("XDG_CONFIG_HOME".into(), dir.display().to_string()),
    ]
}

fn run_child_in(
    name: &str,
    dir: &std::path::Path,
    conf: &std::path::Path,
    extra: &[(&str, &str)],
) -> (bool, String, String) {
    let envs = child_envs(dir, conf);
    let mut e: Vec<(&str, &str)> = envs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    e.extend_from_slice(extra);
    let out = run_child(name, &e);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success() && stdout.contains("1 passed"),
        stdout,
        stderr,
    )
}

/// True if the module panicked (its entry macro logs it; the panic hook names src/).
fn module_panicked(stderr: &str) -> bool {
    stderr.contains("internal panic")
        || stderr
            .lines()
            .any(|l| l.contains("panicked at") && !l.contains("tests/attack.rs"))
}

fn raw_first_slot() -> CK_SLOT_ID {
    let mut n: CK_ULONG = 4;
    let mut slots = [0 as CK_SLOT_ID; 4];
    assert_eq!(
        call!(C_GetSlotList, CK_FALSE, slots.as_mut_ptr(), &mut n),
        CKR_OK
    );
    slots[0]
}

fn raw_open(slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    let mut h: CK_SESSION_HANDLE = 0;
    assert_eq!(
        call!(
            C_OpenSession,
            slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            std::ptr::null_mut(),
            None,
            &mut h
        ),
        CKR_OK
    );
    h
}

fn raw_login(h: CK_SESSION_HANDLE, user: CK_USER_TYPE, p: &str) -> CK_RV {
    let mut p = p.as_bytes().to_vec();
    call!(C_Login, h, user, p.as_mut_ptr(), p.len() as CK_ULONG)
}

/// Initializes the token in `slot` with SO_PIN and sets the user PIN `user_pin`.
fn raw_setup_token(slot: CK_SLOT_ID, label: &str, user_pin: &str) {
    let mut so = SO_PIN.as_bytes().to_vec();
    let mut l = padded32(label);
    assert_eq!(
        call!(
            C_InitToken,
            slot,
            so.as_mut_ptr(),
            so.len() as CK_ULONG,
            l.as_mut_ptr()
        ),
        CKR_OK
    );
    let h = raw_open(slot);
    assert_eq!(raw_login(h, CKU_SO, SO_PIN), CKR_OK);
    let mut up = user_pin.as_bytes().to_vec();
    assert_eq!(
        call!(C_InitPIN, h, up.as_mut_ptr(), up.len() as CK_ULONG),
        CKR_OK
    );
    assert_eq!(call!(C_Logout, h), CKR_OK);
    assert_eq!(call!(C_CloseSession, h), CKR_OK);
}

fn raw_token_aes(h: CK_SESSION_HANDLE, value: &[u8], token: bool) -> CK_OBJECT_HANDLE {
    let (mut sk, mut kt) = (CKO_SECRET_KEY, CKK_AES);
    let (mut tk, mut t, mut f) = (if token { CK_TRUE } else { CK_FALSE }, CK_TRUE, CK_FALSE);
    let mut v = value.to_vec();
    let mut lbl = *b"leak-key";
    let mut tmpl = [
        a_ulong(CKA_CLASS, &mut sk),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bool(CKA_TOKEN, &mut tk),
        a_bool(CKA_ENCRYPT, &mut t),
        a_bool(CKA_DECRYPT, &mut t),
        a_bool(CKA_SIGN, &mut t),
        a_bool(CKA_WRAP, &mut t),
        a_bool(CKA_SENSITIVE, &mut t),
        a_bool(CKA_EXTRACTABLE, &mut f),
        a_bytes(CKA_VALUE, &mut v),
        a_bytes(CKA_LABEL, &mut lbl),
    ];
    let (rv, o) = create(h, &mut tmpl);
    assert_eq!(rv, CKR_OK);
    o
}

#[test]
fn c3_finalize_while_threads_run() {
    const NAME: &str = "c3_finalize_while_threads_run";
    if in_child(NAME) {
        assert_eq!(call!(C_Initialize, std::ptr::null_mut()), CKR_OK);
        let slot = raw_first_slot();
        raw_setup_token(slot, "fin", USER_PIN);
        let h = raw_open(slot);
        assert_eq!(raw_login(h, CKU_USER, USER_PIN), CKR_OK);
        let key = raw_token_aes(h, &[0x31; 16], false);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut rvs = std::collections::BTreeSet::new();
                    let mut hs: CK_SESSION_HANDLE = h;
                    if i > 0 {
                        let _ = call!(
                            C_OpenSession,
                            slot,
                            CKF_SERIAL_SESSION,
                            std::ptr::null_mut(),
                            None,
                            &mut hs
                        );
                    }
                    let mut n_ok = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let mut iv = [0u8; 12];
                        let mut g = gcm_params(&mut iv, 128);
                        let mut m = mech_p(CKM_AES_GCM, &mut g);
                        let rv = call!(C_EncryptInit, hs, &mut m, key);
                        rvs.insert(rv);
                        if rv == CKR_OK {
                            let mut d = [1u8; 64];
                            let mut out = [0u8; 128];
                            let mut n: CK_ULONG = 128;
                            let rv =
                                call!(C_Encrypt, hs, d.as_mut_ptr(), 64, out.as_mut_ptr(), &mut n);
                            rvs.insert(rv);
                            n_ok += 1;
                        }
                        let mut r = [0u8; 16];
                        rvs.insert(call!(C_GenerateRandom, hs, r.as_mut_ptr(), 16));
                        let mut info = CK_TOKEN_INFO::default();
                        rvs.insert(call!(C_GetTokenInfo, slot, &mut info));
                        // After finalize, re-open attempts.
                        if rvs.contains(&CKR_CRYPTOKI_NOT_INITIALIZED) {
                            let _ = call!(
                                C_OpenSession,
                                slot,
                                CKF_SERIAL_SESSION,
                                std::ptr::null_mut(),
                                None,
                                &mut hs
                            );
                        }
                    }
                    let _ = n_ok;
                    rvs
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Re-initialize while they still run; then finalize again.
        assert_eq!(call!(C_Initialize, std::ptr::null_mut()), CKR_OK);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let allowed = [
            CKR_OK,
            CKR_CRYPTOKI_NOT_INITIALIZED,
            CKR_SESSION_HANDLE_INVALID,
            CKR_SESSION_CLOSED,
            CKR_KEY_HANDLE_INVALID,
            CKR_OBJECT_HANDLE_INVALID,
            CKR_OPERATION_NOT_INITIALIZED,
            CKR_USER_NOT_LOGGED_IN,
        ];
        for w in workers {
            let rvs = w.join().expect("worker panicked");
            for rv in rvs {
                assert!(
                    allowed.contains(&rv),
                    "unexpected rv {rv:#x} during C_Finalize"
                );
            }
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = child_config(dir.path(), "fin", "warn");
    let (ok, stdout, stderr) = run_child_in(NAME, dir.path(), &conf, &[]);
    assert!(ok, "child failed or crashed\n{stdout}\n{stderr}");
    assert!(!module_panicked(&stderr), "a panic:\n{stderr}");
}

// ---------------------------------------------------------------------------------------
// Class 7: no secret in the log, at trace level.

const LEAK_PIN: &str = "PINLEAKCHECK1234";

#[test]
fn c7_no_secret_in_trace_log() {
    const NAME: &str = "c7_no_secret_in_trace_log";
    if in_child(NAME) {
        assert_eq!(call!(C_Initialize, std::ptr::null_mut()), CKR_OK);
        let slot = raw_first_slot();
        raw_setup_token(slot, "leak", LEAK_PIN);
        let h = raw_open(slot);
        // A wrong PIN close to the right one, then the right one.
        assert_eq!(
            raw_login(h, CKU_USER, "PINLEAKCHECK9999"),
            CKR_PIN_INCORRECT
        );
        assert_eq!(raw_login(h, CKU_USER, LEAK_PIN), CKR_OK);
        assert_eq!(raw_login(h, CKU_USER, LEAK_PIN), CKR_USER_ALREADY_LOGGED_IN);
        let key = [0xa5u8; 32];
        let k = raw_token_aes(h, &key, true);
        let ks = raw_token_aes(h, &key, false);
        // Encrypt, decrypt, failing calls.
        let mut iv = [0u8; 12];
        let mut g = gcm_params(&mut iv, 128);
        let mut m = mech_p(CKM_AES_GCM, &mut g);
        let ct = encrypt_once(h, &mut m, k, &[0xa5u8; 48]).unwrap();
        let mut m = mech_p(CKM_AES_GCM, &mut g);
        assert_eq!(decrypt_once(h, &mut m, k, &ct).unwrap(), vec![0xa5u8; 48]);
        let mut m = mech_p(CKM_AES_GCM, &mut g);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(
            decrypt_once(h, &mut m, ks, &bad),
            Err(CKR_ENCRYPTED_DATA_INVALID)
        );
        assert_eq!(get_attr(h, k, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
        let mut ecb = mech(CKM_AES_ECB);
        let _ = encrypt_once(h, &mut ecb, k, &[0xa5u8; 17]);
        let mut hm = mech(CKM_SHA256_HMAC);
        let _ = call!(C_SignInit, h, &mut hm, k);
        // Creating a key with a bad template that carries the secret value.
        let (mut sk, mut kt) = (CKO_SECRET_KEY, CKK_AES);
        let mut v = vec![0xa5u8; 33];
        let mut tmpl = [
            a_ulong(CKA_CLASS, &mut sk),
            a_ulong(CKA_KEY_TYPE, &mut kt),
            a_bytes(CKA_VALUE, &mut v),
        ];
        assert_ne!(create(h, &mut tmpl).0, CKR_OK);
        let mut lbl = *b"x";
        let mut v2 = vec![0xa5u8; 32];
        let mut tmpl = [a_bytes(CKA_VALUE, &mut v2), a_bytes(CKA_LABEL, &mut lbl)];
        let _ = call!(C_SetAttributeValue, h, k, tmpl.as_mut_ptr(), 2);
        // SetPIN with the PIN, failing and succeeding.
        let mut old = b"PINLEAKCHECK0000".to_vec();
        let mut new = b"PINLEAKCHECK5678".to_vec();
        assert_ne!(
            call!(C_SetPIN, h, old.as_mut_ptr(), 16, new.as_mut_ptr(), 16),
            CKR_OK
        );
        let mut old = LEAK_PIN.as_bytes().to_vec();
        let mut new = LEAK_PIN.as_bytes().to_vec();
        assert_eq!(
            call!(C_SetPIN, h, old.as_mut_ptr(), 16, new.as_mut_ptr(), 16),
            CKR_OK
        );
        assert_eq!(call!(C_Logout, h), CKR_OK);
        assert_eq!(raw_login(h, CKU_USER, LEAK_PIN), CKR_OK);
        // The token key is unwrapped from the store after re-login.
        let mut m = mech_p(CKM_AES_GCM, &mut g);
        let _ = encrypt_once(h, &mut m, k, b"again");
        // Too long and too short PINs.
        let _ = call!(C_Logout, h);
        assert_ne!(
            raw_login(
                h,
                CKU_USER,
                &format!("{LEAK_PIN}{LEAK_PIN}{LEAK_PIN}{LEAK_PIN}{LEAK_PIN}")
            ),
            CKR_OK
        );
        assert_ne!(raw_login(h, CKU_USER, "PIN"), CKR_OK);
        assert_ne!(raw_login(h, CKU_SO, LEAK_PIN), CKR_OK);
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = child_config(dir.path(), "leak", "trace");
    let (ok, stdout, stderr) = run_child_in(NAME, dir.path(), &conf, &[]);
    assert!(ok, "child failed\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("C_Login"),
        "trace log is on and names calls:\n{stderr}"
    );
    let low = stderr.to_lowercase();
    for needle in [
        "pinleakcheck",
        "a5a5a5a5",
        "a5, a5",
        "165, 165, 165",
        "0xa5",
        "¥¥¥",
    ] {
        assert!(!low.contains(needle), "{needle:?} in the log:\n{stderr}");
    }
    // The raw bytes of the key (0xA5 is not valid UTF-8 alone: check the bytes).
    let raw_err = run_child_bytes(NAME, dir.path(), &conf);
    assert!(
        !raw_err.windows(8).any(|w| w == [0xa5; 8]),
        "raw key bytes in stderr"
    );
    // The store file holds neither the PIN nor the plaintext key.
    let store = std::fs::read(dir.path().join("leak.sqlite")).unwrap();
    assert!(
        !store.windows(16).any(|w| w == LEAK_PIN.as_bytes()),
        "PIN in the store"
    );
    assert!(
        !store.windows(16).any(|w| w == [0xa5; 16]),
        "plaintext key in the store"
    );
}

fn run_child_bytes(name: &str, dir: &std::path::Path, conf: &std::path::Path) -> Vec<u8> {
    // A fresh store for the second run.
    let d2 = dir.join("again");
    std::fs::create_dir_all(&d2).unwrap();
    let conf2 = child_config(&d2, "leak", "trace");
    let _ = conf;
    let envs = child_envs(&d2, &conf2);
    let e: Vec<(&str, &str)> = envs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    run_child(name, &e).stderr
}

// ---------------------------------------------------------------------------------------
// Class 8: corrupted stores.

/// First run: make a token with a user PIN and a token key. Second run: must fail cleanly
/// or still work; never panic or crash.
#[test]
fn c8_corrupted_store() {
    const NAME: &str = "c8_corrupted_store";
    if in_child(NAME) {
        corrupted_store_child();
        return;
    }
    corrupted_store_parent(NAME, false);
}

/// A store truncated to zero bytes (a full disk, a bad copy) looks exactly like a new
/// store, so it opens as an uninitialized token — but never in silence: stderr says the
/// file is empty and may have been truncated, before C_InitToken makes the loss final.
#[test]
fn c8_store_truncated_to_zero() {
    const NAME: &str = "c8_store_truncated_to_zero";
    if in_child(NAME) {
        corrupted_store_child();
        return;
    }
    corrupted_store_parent(NAME, true);
}

fn corrupted_store_child() {
    {
        let phase = std::env::var("P11KMS_ATTACK_PHASE").unwrap();
        if phase == "setup" {
            assert_eq!(call!(C_Initialize, std::ptr::null_mut()), CKR_OK);
            let slot = raw_first_slot();
            raw_setup_token(slot, "corrupt", USER_PIN);
            let h = raw_open(slot);
            assert_eq!(raw_login(h, CKU_USER, USER_PIN), CKR_OK);
            for i in 0..20u8 {
                raw_token_aes(h, &[i; 32], true);
            }
            assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
            return;
        }
        let rv = call!(C_Initialize, std::ptr::null_mut());
        println!("C_Initialize rv = {rv:#x}");
        let clear = [
            CKR_TOKEN_NOT_RECOGNIZED,
            CKR_DEVICE_ERROR,
            CKR_GENERAL_ERROR,
            CKR_FUNCTION_FAILED,
        ];
        if rv != CKR_OK {
            assert!(clear.contains(&rv), "C_Initialize rv {rv:#x}");
            return;
        }
        let mut n: CK_ULONG = 4;
        let mut slots = [0 as CK_SLOT_ID; 4];
        let rv = call!(C_GetSlotList, CK_FALSE, slots.as_mut_ptr(), &mut n);
        println!("C_GetSlotList rv = {rv:#x}");
        assert_eq!(rv, CKR_OK);
        let mut ti = CK_TOKEN_INFO::default();
        let rv = call!(C_GetTokenInfo, slots[0], &mut ti);
        println!("C_GetTokenInfo rv = {rv:#x}");
        println!(
            "TOKEN_INITIALIZED={}",
            ti.flags & CKF_TOKEN_INITIALIZED != 0
        );
        let mut h: CK_SESSION_HANDLE = 0;
        let rv = call!(
            C_OpenSession,
            slots[0],
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            std::ptr::null_mut(),
            None,
            &mut h
        );
        println!("C_OpenSession rv = {rv:#x}");
        if rv == CKR_OK {
            let rv = raw_login(h, CKU_USER, USER_PIN);
            println!("C_Login rv = {rv:#x}");
            let login_ok = [
                CKR_OK,
                CKR_TOKEN_NOT_RECOGNIZED,
                CKR_DEVICE_ERROR,
                CKR_GENERAL_ERROR,
                CKR_FUNCTION_FAILED,
                CKR_USER_PIN_NOT_INITIALIZED,
                CKR_PIN_INCORRECT,
            ];
            assert!(login_ok.contains(&rv), "C_Login rv {rv:#x}");
            // Find and use whatever keys are left.
            let rv = call!(C_FindObjectsInit, h, std::ptr::null_mut(), 0);
            println!("C_FindObjectsInit rv = {rv:#x}");
            if rv == CKR_OK {
                let mut objs = [0 as CK_OBJECT_HANDLE; 64];
                let mut n: CK_ULONG = 0;
                let rv = call!(C_FindObjects, h, objs.as_mut_ptr(), 64, &mut n);
                println!("C_FindObjects rv = {rv:#x} n = {n}");
                let _ = call!(C_FindObjectsFinal, h);
                for o in &objs[..n as usize] {
                    let mut ecb = mech(CKM_AES_ECB);
                    let r = encrypt_once(h, &mut ecb, *o, &[0u8; 16]);
                    println!("encrypt with {o}: {r:?}");
                    if let Err(rv) = r {
                        assert_ne!(rv, CKR_GENERAL_ERROR, "a panic-like error using object {o}");
                    }
                }
            }
        }
        let _ = call!(C_Finalize, std::ptr::null_mut());
    }
}

fn corrupted_store_parent(name: &str, only_empty: bool) {
    const NAME: &str = "";
    let _ = NAME;
    let base = tempfile::tempdir().unwrap();
    let setup_dir = base.path().join("setup");
    std::fs::create_dir_all(&setup_dir).unwrap();
    let conf = child_config(&setup_dir, "corrupt", "warn");
    let (ok, stdout, stderr) =
        run_child_in(name, &setup_dir, &conf, &[("P11KMS_ATTACK_PHASE", "setup")]);
    assert!(ok, "setup failed\n{stdout}\n{stderr}");
    let pristine = std::fs::read(setup_dir.join("corrupt.sqlite")).unwrap();
    // The WAL may hold data too: checkpointed at close? Keep whatever files exist.
    let wal = std::fs::read(setup_dir.join("corrupt.sqlite-wal")).ok();
    assert!(pristine.len() > 4096, "store size {}", pristine.len());
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let len = pristine.len();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("truncated to 100".into(), pristine[..100].to_vec()),
        ("truncated to half".into(), pristine[..len / 2].to_vec()),
        ("truncated minus 1".into(), pristine[..len - 1].to_vec()),
        ("header only".into(), pristine[..4096.min(len)].to_vec()),
        (
            "random file".into(),
            (0..len).map(|_| rnd() as u8).collect(),
        ),
    ];
    for (off, n) in [
        (len / 2, 512usize),
        (len / 3, 4096),
        (4096, 4096),
        (100, 50),
        (20, 4),
        (len - 600, 600),
    ] {
        let mut c = pristine.clone();
        for b in &mut c[off..(off + n).min(len)] {
            *b = rnd() as u8;
        }
        cases.push((format!("random bytes at {off}+{n}"), c));
    }
    // Flip single bits across the file (catches decoding of records).
    for i in 1..8 {
        let mut c = pristine.clone();
        let pos = (len * i) / 8 + 37;
        c[pos] ^= 0x10;
        cases.push((format!("bit flip at {pos}"), c));
    }
    if only_empty {
        cases = vec![("empty".into(), vec![])];
    }
    let mut failures = Vec::new();
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let d = base.path().join(format!("case{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("corrupt.sqlite"), bytes).unwrap();
        if let Some(w) = &wal {
            std::fs::write(d.join("corrupt.sqlite-wal"), w).unwrap();
        }
        let conf = child_config(&d, "corrupt", "warn");
        let (ok, stdout, stderr) =
            run_child_in(name, &d, &conf, &[("P11KMS_ATTACK_PHASE", "check")]);
        let rvs: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains(" rv = ") || l.contains("encrypt with"))
            .collect();
        let init_failed = !stdout.contains("C_Initialize rv = 0x0");
        println!("[{what}] ok={ok} {}", rvs.join(" | "));
        for l in stderr.lines().filter(|l| l.contains("p11kms")).take(3) {
            println!("    {l}");
        }
        let vanished = !init_failed
            && stdout.contains("TOKEN_INITIALIZED=false")
            && !stderr.contains("p11kms");
        if !ok
            || module_panicked(&stderr)
            || (init_failed && !stderr.contains("p11kms"))
            || vanished
        {
            failures.push(format!(
                "[{what}] ok={ok}\n{}\n--- stderr\n{stderr}",
                rvs.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// Class 8 (cont.): a store edited record by record (sqlite3 CLI), as a disk error or a
// local attacker with write access to the file but no PIN would.

fn sqlite(db: &std::path::Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 CLI");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_attrs_blob(mut b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    assert_eq!(b[0], 1);
    b = &b[1..];
    let mut v = Vec::new();
    while !b.is_empty() {
        let ty = u64::from_le_bytes(b[..8].try_into().unwrap());
        let len = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
        v.push((ty, b[12..12 + len].to_vec()));
        b = &b[12 + len..];
    }
    v
}

fn encode_attrs_blob(a: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![1u8];
    for (t, v) in a {
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// (uid hex, attributes) of the stored object whose CKA_LABEL is `label`.
fn stored_object(db: &std::path::Path, label: &[u8]) -> (String, Vec<(u64, Vec<u8>)>) {
    for line in sqlite(db, "SELECT hex(uid) || '|' || hex(attrs) FROM objects").lines() {
        let (uid, attrs) = line.split_once('|').unwrap();
        let a = decode_attrs_blob(&hex(attrs));
        if a.iter().any(|(t, v)| *t == CKA_LABEL && v == label) {
            return (uid.to_string(), a);
        }
    }
    panic!("no stored object labelled {label:?}");
}

fn set_attr(a: &mut Vec<(u64, Vec<u8>)>, ty: CK_ATTRIBUTE_TYPE, v: Vec<u8>) {
    a.retain(|(t, _)| *t != ty);
    a.push((ty, v));
}

fn write_attrs(db: &std::path::Path, uid: &str, a: &[(u64, Vec<u8>)]) {
    sqlite(
        db,
        &format!(
            "UPDATE objects SET attrs = X'{}' WHERE uid = X'{uid}'",
            to_hex(&encode_attrs_blob(a))
        ),
    );
}

fn find_by_label(h: CK_SESSION_HANDLE, label: &[u8]) -> Option<CK_OBJECT_HANDLE> {
    let mut l = label.to_vec();
    let mut t = [a_bytes(CKA_LABEL, &mut l)];
    if call!(C_FindObjectsInit, h, t.as_mut_ptr(), 1) != CKR_OK {
        return None;
    }
    let mut o = [0 as CK_OBJECT_HANDLE; 4];
    let mut n: CK_ULONG = 0;
    let rv = call!(C_FindObjects, h, o.as_mut_ptr(), 4, &mut n);
    let _ = call!(C_FindObjectsFinal, h);
    (rv == CKR_OK && n > 0).then_some(o[0])
}

fn labelled_aes(h: CK_SESSION_HANDLE, label: &[u8], value: &[u8]) -> CK_OBJECT_HANDLE {
    let (mut sk, mut kt) = (CKO_SECRET_KEY, CKK_AES);
    let (mut t, mut f) = (CK_TRUE, CK_FALSE);
    let mut v = value.to_vec();
    let mut lbl = label.to_vec();
    let mut tmpl = [
        a_ulong(CKA_CLASS, &mut sk),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bool(CKA_TOKEN, &mut t),
        a_bool(CKA_ENCRYPT, &mut t),
        a_bool(CKA_WRAP, &mut t),
        a_bool(CKA_SENSITIVE, &mut t),
        a_bool(CKA_EXTRACTABLE, &mut f),
        a_bytes(CKA_VALUE, &mut v),
        a_bytes(CKA_LABEL, &mut lbl),
    ];
    let (rv, o) = create(h, &mut tmpl);
    assert_eq!(rv, CKR_OK);
    o
}

/// Every call a tampered object may see; returns the codes. GENERAL_ERROR means a panic.
fn exercise(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> Vec<(String, CK_RV)> {
    let mut r = Vec::new();
    for ty in [
        CKA_CLASS,
        CKA_KEY_TYPE,
        CKA_VALUE,
        CKA_VALUE_LEN,
        CKA_LABEL,
        CKA_ALLOWED_MECHANISMS,
        CKA_EC_POINT,
    ] {
        r.push((
            format!("get {ty:#x}"),
            get_attr(h, o, ty).err().unwrap_or(CKR_OK),
        ));
    }
    let mut sz: CK_ULONG = 0;
    r.push(("size".into(), call!(C_GetObjectSize, h, o, &mut sz)));
    let mut ecb = mech(CKM_AES_ECB);
    r.push((
        "encrypt ecb".into(),
        encrypt_once(h, &mut ecb, o, &[0u8; 16])
            .err()
            .unwrap_or(CKR_OK),
    ));
    let mut iv = [0u8; 12];
    let mut g = gcm_params(&mut iv, 128);
    let mut m = mech_p(CKM_AES_GCM, &mut g);
    r.push((
        "encrypt gcm".into(),
        encrypt_once(h, &mut m, o, &[0u8; 16])
            .err()
            .unwrap_or(CKR_OK),
    ));
    for mt in [
        CKM_ECDSA,
        CKM_SHA256_HMAC,
        CKM_AES_CMAC,
        CKM_SHA256_RSA_PKCS,
    ] {
        let mut mm = mech(mt);
        let rv = call!(C_SignInit, h, &mut mm, o);
        let rv = if rv == CKR_OK {
            let mut d = [1u8; 32];
            let mut sig = [0u8; 512];
            let mut n: CK_ULONG = 512;
            call!(C_Sign, h, d.as_mut_ptr(), 32, sig.as_mut_ptr(), &mut n)
        } else {
            rv
        };
        r.push((format!("sign {mt:#x}"), rv));
    }
    let mut kw = mech(CKM_AES_KEY_WRAP_PAD);
    let mut out = [0u8; 256];
    let mut n: CK_ULONG = 256;
    r.push((
        "wrap self".into(),
        call!(C_WrapKey, h, &mut kw, o, o, out.as_mut_ptr(), &mut n),
    ));
    let mut o2: CK_OBJECT_HANDLE = 0;
    r.push((
        "copy".into(),
        call!(C_CopyObject, h, o, std::ptr::null_mut(), 0, &mut o2),
    ));
    r
}

/// Tamper scenarios that found bugs: each has its own ignored test below.
const TAMPER_BUG_SCENARIOS: &[&str] = &[
    "K made non-sensitive and extractable",
    "Epub relabelled as an RSA public key",
];

#[test]
fn c8_tampered_records_never_panic() {
    tampered("c8_tampered_records_never_panic", "main");
}

/// Whoever can write the store file, without any PIN, may flip CKA_SENSITIVE and
/// CKA_EXTRACTABLE of a key in its row: the next logged-in session must detect it (the
/// wrapped secret seals a digest of the attributes) and neither read CKA_VALUE nor wrap
/// the key out.
#[test]
fn c8_tampered_sensitive_flag_leaks_key() {
    tampered(
        "c8_tampered_sensitive_flag_leaks_key",
        "K made non-sensitive and extractable",
    );
}

/// A public key object whose stored CKA_KEY_TYPE no longer matches its attributes (EC
/// public key relabelled RSA, so no CKA_MODULUS): C_EncryptInit must answer
/// CKR_DEVICE_ERROR or CKR_KEY_TYPE_INCONSISTENT with a message, not CKR_GENERAL_ERROR.
#[test]
fn c8_tampered_public_key_general_error() {
    tampered(
        "c8_tampered_public_key_general_error",
        "Epub relabelled as an RSA public key",
    );
}

fn tampered(name: &str, scenarios: &str) {
    const NAME: &str = "";
    let _ = NAME;
    if in_child(name) {
        let db = std::path::PathBuf::from(std::env::var("P11KMS_ATTACK_DB").unwrap());
        assert_eq!(call!(C_Initialize, std::ptr::null_mut()), CKR_OK);
        let slot = raw_first_slot();
        raw_setup_token(slot, "tamper", USER_PIN);
        let h = raw_open(slot);
        assert_eq!(raw_login(h, CKU_USER, USER_PIN), CKR_OK);
        labelled_aes(h, b"K", &[0x4b; 32]);
        labelled_aes(h, b"L", &[0x4c; 16]);
        let mut kp = mech(CKM_EC_KEY_PAIR_GEN);
        let mut params = P256_PARAMS.to_vec();
        let (mut t, mut lbl) = (CK_TRUE, b"E".to_vec());
        let mut lbl2 = b"Epub".to_vec();
        let mut pubt = [
            a_bytes(CKA_EC_PARAMS, &mut params),
            a_bool(CKA_TOKEN, &mut t),
            a_bytes(CKA_LABEL, &mut lbl2),
        ];
        let mut privt = [
            a_bool(CKA_TOKEN, &mut t),
            a_bool(CKA_SIGN, &mut t),
            a_bytes(CKA_LABEL, &mut lbl),
        ];
        let (mut p1, mut p2) = (0, 0);
        assert_eq!(
            call!(
                C_GenerateKeyPair,
                h,
                &mut kp,
                pubt.as_mut_ptr(),
                3,
                privt.as_mut_ptr(),
                3,
                &mut p1,
                &mut p2
            ),
            CKR_OK
        );
        assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
        let pristine = std::fs::read(&db).unwrap();
        type Tamper = Box<dyn Fn(&std::path::Path)>;
        let ulong = |v: CK_ULONG| v.to_ne_bytes().to_vec();
        let scenarios: Vec<(&str, &[u8], Tamper)> = vec![
            (
                "K made non-sensitive and extractable",
                b"K",
                Box::new(|db| {
                    let (uid, mut a) = stored_object(db, b"K");
                    set_attr(&mut a, CKA_SENSITIVE, vec![0]);
                    set_attr(&mut a, CKA_EXTRACTABLE, vec![1]);
                    set_attr(&mut a, CKA_ALWAYS_SENSITIVE, vec![0]);
                    set_attr(&mut a, CKA_NEVER_EXTRACTABLE, vec![0]);
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "K relabelled as an EC private key",
                b"K",
                Box::new(move |db| {
                    let (uid, mut a) = stored_object(db, b"K");
                    set_attr(&mut a, CKA_CLASS, ulong(CKO_PRIVATE_KEY));
                    set_attr(&mut a, CKA_KEY_TYPE, ulong(CKK_EC));
                    set_attr(&mut a, CKA_SIGN, vec![1]);
                    set_attr(&mut a, CKA_EC_PARAMS, P256_PARAMS.to_vec());
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "K relabelled as an RSA private key",
                b"K",
                Box::new(move |db| {
                    let (uid, mut a) = stored_object(db, b"K");
                    set_attr(&mut a, CKA_CLASS, ulong(CKO_PRIVATE_KEY));
                    set_attr(&mut a, CKA_KEY_TYPE, ulong(CKK_RSA));
                    set_attr(&mut a, CKA_SIGN, vec![1]);
                    set_attr(&mut a, CKA_MODULUS, vec![0xc5; 256]);
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "E private relabelled as an AES key",
                b"E",
                Box::new(move |db| {
                    let (uid, mut a) = stored_object(db, b"E");
                    set_attr(&mut a, CKA_CLASS, ulong(CKO_SECRET_KEY));
                    set_attr(&mut a, CKA_KEY_TYPE, ulong(CKK_AES));
                    set_attr(&mut a, CKA_ENCRYPT, vec![1]);
                    set_attr(&mut a, CKA_SENSITIVE, vec![0]);
                    set_attr(&mut a, CKA_EXTRACTABLE, vec![1]);
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "E private relabelled as generic secret",
                b"E",
                Box::new(move |db| {
                    let (uid, mut a) = stored_object(db, b"E");
                    set_attr(&mut a, CKA_CLASS, ulong(CKO_SECRET_KEY));
                    set_attr(&mut a, CKA_KEY_TYPE, ulong(CKK_GENERIC_SECRET));
                    set_attr(&mut a, CKA_SIGN, vec![1]);
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "Epub relabelled as an RSA public key",
                b"Epub",
                Box::new(move |db| {
                    let (uid, mut a) = stored_object(db, b"Epub");
                    set_attr(&mut a, CKA_KEY_TYPE, ulong(CKK_RSA));
                    set_attr(&mut a, CKA_ENCRYPT, vec![1]);
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "K odd-sized values",
                b"K",
                Box::new(move |db| {
                    let (uid, mut a) = stored_object(db, b"K");
                    set_attr(&mut a, CKA_VALUE_LEN, ulong(CK_ULONG::MAX));
                    set_attr(&mut a, CKA_ALLOWED_MECHANISMS, vec![1, 2, 3, 4, 5, 6, 7]);
                    set_attr(&mut a, CKA_ENCRYPT, vec![]);
                    set_attr(&mut a, CKA_TOKEN, vec![1, 1, 1]);
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "K class of 4 bytes",
                b"K",
                Box::new(move |db| {
                    let (uid, mut a) = stored_object(db, b"K");
                    set_attr(&mut a, CKA_CLASS, vec![4, 0, 0, 0]);
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "K key type unknown",
                b"K",
                Box::new(move |db| {
                    let (uid, mut a) = stored_object(db, b"K");
                    set_attr(&mut a, CKA_KEY_TYPE, ulong(0x7777));
                    write_attrs(db, &uid, &a);
                }),
            ),
            (
                "K and L secrets swapped",
                b"K",
                Box::new(|db| {
                    let (k, _) = stored_object(db, b"K");
                    let (l, _) = stored_object(db, b"L");
                    sqlite(db, &format!(
                    "UPDATE objects SET secret = (SELECT secret FROM objects WHERE uid = X'{l}') WHERE uid = X'{k}'"
                ));
                }),
            ),
            (
                "K secret NULL",
                b"K",
                Box::new(|db| {
                    let (k, _) = stored_object(db, b"K");
                    sqlite(
                        db,
                        &format!("UPDATE objects SET secret = NULL WHERE uid = X'{k}'"),
                    );
                }),
            ),
            (
                "K secret truncated",
                b"K",
                Box::new(|db| {
                    let (k, _) = stored_object(db, b"K");
                    sqlite(
                        db,
                        &format!(
                            "UPDATE objects SET secret = substr(secret, 1, 5) WHERE uid = X'{k}'"
                        ),
                    );
                }),
            ),
            (
                "K secret empty",
                b"K",
                Box::new(|db| {
                    let (k, _) = stored_object(db, b"K");
                    sqlite(
                        db,
                        &format!("UPDATE objects SET secret = X'' WHERE uid = X'{k}'"),
                    );
                }),
            ),
            (
                "K attrs garbage",
                b"L",
                Box::new(|db| {
                    let (k, _) = stored_object(db, b"K");
                    sqlite(db, &format!("UPDATE objects SET attrs = X'01ffffffffffffffffffffffff' WHERE uid = X'{k}'"));
                }),
            ),
            (
                "K attrs empty",
                b"L",
                Box::new(|db| {
                    let (k, _) = stored_object(db, b"K");
                    sqlite(
                        db,
                        &format!("UPDATE objects SET attrs = X'' WHERE uid = X'{k}'"),
                    );
                }),
            ),
            (
                "K attrs text",
                b"L",
                Box::new(|db| {
                    let (k, _) = stored_object(db, b"K");
                    sqlite(
                        db,
                        &format!("UPDATE objects SET attrs = 'hello' WHERE uid = X'{k}'"),
                    );
                }),
            ),
            (
                "token record truncated",
                b"L",
                Box::new(|db| {
                    sqlite(
                        db,
                        "UPDATE meta SET value = substr(value, 1, 20) WHERE key = 'local.token'",
                    );
                }),
            ),
            (
                "token record label not UTF-8",
                b"L",
                Box::new(|db| {
                    let v = hex(sqlite(
                        db,
                        "SELECT hex(value) FROM meta WHERE key = 'local.token'",
                    )
                    .trim());
                    let mut v = v.clone();
                    let n = v.len();
                    v[n - 1] = 0xff;
                    sqlite(
                        db,
                        &format!(
                            "UPDATE meta SET value = X'{}' WHERE key = 'local.token'",
                            to_hex(&v)
                        ),
                    );
                }),
            ),
            (
                "user PIN record truncated",
                b"L",
                Box::new(|db| {
                    sqlite(
                        db,
                        "UPDATE meta SET value = substr(value, 1, 30) WHERE key = 'local.pin.user'",
                    );
                }),
            ),
            (
                "user PIN record missing",
                b"L",
                Box::new(|db| {
                    sqlite(db, "DELETE FROM meta WHERE key = 'local.pin.user'");
                }),
            ),
            (
                "user PIN record failures at u32::MAX",
                b"L",
                Box::new(|db| {
                    let mut v = hex(sqlite(
                        db,
                        "SELECT hex(value) FROM meta WHERE key = 'local.pin.user'",
                    )
                    .trim());
                    // 01 | 01 | m | t | p | salt 16 | verifier 32 | failures
                    let off = 2 + 12 + 16 + 32;
                    v[off..off + 4].copy_from_slice(&[0xff; 4]);
                    sqlite(
                        db,
                        &format!(
                            "UPDATE meta SET value = X'{}' WHERE key = 'local.pin.user'",
                            to_hex(&v)
                        ),
                    );
                }),
            ),
            (
                "user PIN record wrapped master flipped",
                b"L",
                Box::new(|db| {
                    let mut v = hex(sqlite(
                        db,
                        "SELECT hex(value) FROM meta WHERE key = 'local.pin.user'",
                    )
                    .trim());
                    let n = v.len();
                    v[n - 3] ^= 1;
                    sqlite(
                        db,
                        &format!(
                            "UPDATE meta SET value = X'{}' WHERE key = 'local.pin.user'",
                            to_hex(&v)
                        ),
                    );
                }),
            ),
            (
                "objects table dropped",
                b"L",
                Box::new(|db| {
                    sqlite(db, "DROP TABLE objects");
                }),
            ),
            (
                "meta table dropped",
                b"L",
                Box::new(|db| {
                    sqlite(db, "DROP TABLE meta");
                }),
            ),
            (
                "a duplicate of K under a new uid",
                b"K",
                Box::new(|db| {
                    let (k, _) = stored_object(db, b"K");
                    sqlite(db, &format!(
                    "INSERT INTO objects SELECT X'00112233445566778899aabbccddeeff', attrs, secret FROM objects WHERE uid = X'{k}'"
                ));
                }),
            ),
        ];
        let only = std::env::var("P11KMS_ATTACK_SCENARIOS").unwrap();
        let chosen = |what: &str| match only.as_str() {
            "main" => !TAMPER_BUG_SCENARIOS.contains(&what),
            one => what == one,
        };
        let mut report = Vec::new();
        for (what, label, tamper) in scenarios.iter().filter(|(w, _, _)| chosen(w)) {
            std::fs::write(&db, &pristine).unwrap();
            let _ = std::fs::remove_file(db.with_extension("sqlite-wal"));
            let _ = std::fs::remove_file(db.with_extension("sqlite-shm"));
            tamper(&db);
            let rv = call!(C_Initialize, std::ptr::null_mut());
            let mut line = format!("[{what}] init {rv:#x}");
            if rv == CKR_OK {
                let h = raw_open(slot);
                let rv = raw_login(h, CKU_USER, USER_PIN);
                line += &format!(" login {rv:#x}");
                match find_by_label(h, label) {
                    None => line += " (object not found)",
                    Some(o) => {
                        for (op, rv) in exercise(h, o) {
                            line += &format!(" {op}={rv:#x}");
                            if rv == CKR_GENERAL_ERROR {
                                line += "(!)";
                            }
                        }
                        // A tampered sensitive key must not give its value out.
                        if let Ok(v) = get_attr(h, o, CKA_VALUE) {
                            if v == [0x4b; 32] {
                                line += " LEAKED-VALUE(!)";
                            }
                        }
                        let mut kw = mech(CKM_AES_KEY_WRAP_PAD);
                        let mut out = [0u8; 128];
                        let mut n: CK_ULONG = 128;
                        if let Some(l) = find_by_label(h, b"L") {
                            let rv = call!(C_WrapKey, h, &mut kw, l, o, out.as_mut_ptr(), &mut n);
                            if rv == CKR_OK && *label == b"K" {
                                line += " WRAPPED-OUT(!)";
                            }
                        }
                    }
                }
                assert_eq!(call!(C_Finalize, std::ptr::null_mut()), CKR_OK);
            }
            println!("{line}");
            report.push(line);
        }
        let bad: Vec<&String> = report.iter().filter(|l| l.contains("(!)")).collect();
        assert!(
            bad.is_empty(),
            "tampering not handled:\n{}",
            bad.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        return;
    }
    if Command::new("sqlite3").arg("-version").output().is_err() {
        println!("skipped: no sqlite3 CLI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = child_config(dir.path(), "tamper", "warn");
    let db = dir.path().join("tamper.sqlite");
    let (ok, stdout, stderr) = run_child_in(
        name,
        dir.path(),
        &conf,
        &[
            ("P11KMS_ATTACK_DB", db.to_str().unwrap()),
            ("P11KMS_ATTACK_SCENARIOS", scenarios),
        ],
    );
    print!("{stdout}");
    assert!(!module_panicked(&stderr), "a panic:\n{stderr}");
    assert!(ok, "child failed\n{stdout}\n{stderr}");
}

// ---------------------------------------------------------------------------------------
// Class 2 (cont.): key material that does not hold together, key sizes out of range.

#[test]
fn c2_bad_key_material_and_sizes() {
    let s = session();
    let h = s.handle();
    let mut o: CK_OBJECT_HANDLE = 0;
    // C_GenerateKey lengths.
    for (m, len) in [
        (CKM_AES_KEY_GEN, 0 as CK_ULONG),
        (CKM_AES_KEY_GEN, 15),
        (CKM_AES_KEY_GEN, 64),
        (CKM_AES_KEY_GEN, CK_ULONG::MAX),
        (CKM_GENERIC_SECRET_KEY_GEN, 0),
        (CKM_GENERIC_SECRET_KEY_GEN, 1 << 20),
        (CKM_GENERIC_SECRET_KEY_GEN, CK_ULONG::MAX),
    ] {
        let mut l = len;
        let mut t = [a_ulong(CKA_VALUE_LEN, &mut l)];
        let mut mm = mech(m);
        assert_rv(
            call!(C_GenerateKey, h, &mut mm, t.as_mut_ptr(), 1, &mut o),
            &[
                CKR_KEY_SIZE_RANGE,
                CKR_ATTRIBUTE_VALUE_INVALID,
                CKR_TEMPLATE_INCONSISTENT,
            ],
            &format!("GenerateKey {m:#x} CKA_VALUE_LEN {len}"),
        );
    }
    let mut l: CK_ULONG = 16;
    let mut t = [a_ulong(CKA_VALUE_LEN, &mut l)];
    let mut mm = mech(CKM_AES_KEY_GEN);
    assert_rv(
        call!(C_GenerateKey, h, &mut mm, t.as_mut_ptr(), 0, &mut o),
        &[CKR_TEMPLATE_INCOMPLETE],
        "AES keygen without CKA_VALUE_LEN",
    );
    let mut v = [0u8; 16];
    let mut t = [a_ulong(CKA_VALUE_LEN, &mut l), a_bytes(CKA_VALUE, &mut v)];
    assert_rv(
        call!(C_GenerateKey, h, &mut mm, t.as_mut_ptr(), 2, &mut o),
        &[CKR_TEMPLATE_INCONSISTENT, CKR_ATTRIBUTE_READ_ONLY],
        "AES keygen with CKA_VALUE",
    );
    let (mut c, mut kt) = (CKO_PUBLIC_KEY, CKK_RSA);
    let mut t = [a_ulong(CKA_VALUE_LEN, &mut l), a_ulong(CKA_CLASS, &mut c)];
    assert_rv(
        call!(C_GenerateKey, h, &mut mm, t.as_mut_ptr(), 2, &mut o),
        &[CKR_TEMPLATE_INCONSISTENT, CKR_ATTRIBUTE_VALUE_INVALID],
        "AES keygen with CKA_CLASS public key",
    );
    let mut t = [
        a_ulong(CKA_VALUE_LEN, &mut l),
        a_ulong(CKA_KEY_TYPE, &mut kt),
    ];
    assert_rv(
        call!(C_GenerateKey, h, &mut mm, t.as_mut_ptr(), 2, &mut o),
        &[CKR_TEMPLATE_INCONSISTENT, CKR_ATTRIBUTE_VALUE_INVALID],
        "AES keygen with CKA_KEY_TYPE RSA",
    );
    // RSA key pair sizes and exponents (all rejected before any generation).
    for (bits, e) in [
        (0 as CK_ULONG, vec![1u8, 0, 1]),
        (1024, vec![1, 0, 1]),
        (2049, vec![1, 0, 1]),
        (1 << 20, vec![1, 0, 1]),
        (CK_ULONG::MAX, vec![1, 0, 1]),
        (2048, vec![3]),
        (2048, vec![2]),
        (2048, vec![0xff; 300]),
    ] {
        let mut b = bits;
        let mut ee = e.clone();
        let mut pubt = [
            a_ulong(CKA_MODULUS_BITS, &mut b),
            a_bytes(CKA_PUBLIC_EXPONENT, &mut ee),
        ];
        let mut kp = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
        let (mut p1, mut p2) = (0, 0);
        let rv = call!(
            C_GenerateKeyPair,
            h,
            &mut kp,
            pubt.as_mut_ptr(),
            2,
            std::ptr::null_mut(),
            0,
            &mut p1,
            &mut p2
        );
        assert_rv(
            rv,
            &[
                CKR_KEY_SIZE_RANGE,
                CKR_TEMPLATE_INCONSISTENT,
                CKR_ATTRIBUTE_VALUE_INVALID,
            ],
            &format!("RSA keygen bits {bits} e {:02x?}", &e[..e.len().min(4)]),
        );
    }
    // EC key pair with bad parameters.
    for params in [
        vec![],
        vec![0x06, 0x03, 0x2a, 0x03, 0x04],
        vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01],
        // (A PrintableString curve name is legal in 3.0: an unknown one is not.)
        vec![0x13, 0x07, b'p', b'r', b'i', b'm', b'e', b'9', b'9'],
        vec![0x30, 0x80, 0x00],
        vec![0x06, 0xff, 0xff],
    ] {
        let mut p = params.clone();
        let mut pubt = [a_bytes(CKA_EC_PARAMS, &mut p)];
        let mut kp = mech(CKM_EC_KEY_PAIR_GEN);
        let (mut p1, mut p2) = (0, 0);
        let rv = call!(
            C_GenerateKeyPair,
            h,
            &mut kp,
            pubt.as_mut_ptr(),
            1,
            std::ptr::null_mut(),
            0,
            &mut p1,
            &mut p2
        );
        assert_rv(
            rv,
            &[
                CKR_ATTRIBUTE_VALUE_INVALID,
                CKR_CURVE_NOT_SUPPORTED,
                CKR_DOMAIN_PARAMS_INVALID,
                CKR_TEMPLATE_INCONSISTENT,
            ],
            &format!("EC keygen params {params:02x?}"),
        );
    }
    // EC public keys: off-curve, compressed, wrong size, not DER.
    let gen_point = {
        let (pubk, _) = s
            .generate_key_pair(
                &cryptoki::mechanism::Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(false),
                    Attribute::EcParams(P256_PARAMS.to_vec()),
                ],
                &[Attribute::Token(false)],
            )
            .unwrap();
        attr_bytes(&s, pubk, CKA_EC_POINT)
    };
    let mut off_curve = gen_point.clone();
    let n = off_curve.len();
    off_curve[n - 1] ^= 1;
    let mut compressed = vec![0x04, 33, 0x02];
    compressed.extend_from_slice(&gen_point[4..36]);
    for (what, point) in [
        ("off the curve", off_curve),
        ("compressed", compressed),
        ("raw, no OCTET STRING", gen_point[2..].to_vec()),
        ("too short", gen_point[..40].to_vec()),
        ("empty", vec![]),
        ("infinity", vec![0x04, 0x01, 0x00]),
        ("bad DER length", vec![0x04, 0xff, 0x04, 0x01]),
    ] {
        let (mut c, mut kt) = (CKO_PUBLIC_KEY, CKK_EC);
        let mut p = P256_PARAMS.to_vec();
        let mut pt = point.clone();
        let mut t = [
            a_ulong(CKA_CLASS, &mut c),
            a_ulong(CKA_KEY_TYPE, &mut kt),
            a_bytes(CKA_EC_PARAMS, &mut p),
            a_bytes(CKA_EC_POINT, &mut pt),
        ];
        let (rv, o) = create(h, &mut t);
        if rv == CKR_OK {
            // Accepted (compressed points are legal): verify must still answer clearly.
            let mut mm = mech(CKM_ECDSA);
            let rv = call!(C_VerifyInit, h, &mut mm, o);
            let rv = if rv == CKR_OK {
                let mut d = [1u8; 32];
                let mut sig = [1u8; 64];
                call!(C_Verify, h, d.as_mut_ptr(), 32, sig.as_mut_ptr(), 64)
            } else {
                rv
            };
            assert_rv(
                rv,
                &[CKR_SIGNATURE_INVALID, CKR_KEY_TYPE_INCONSISTENT],
                &format!("verify with EC point {what}"),
            );
            assert_ne!(what, "off the curve", "an off-curve point was accepted");
        } else {
            assert_rv(
                rv,
                &[CKR_ATTRIBUTE_VALUE_INVALID],
                &format!("EC point {what}"),
            );
        }
    }
    // EC private keys: scalar 0, >= order, wrong size.
    for (what, d) in [
        ("zero", vec![0u8; 32]),
        ("order or above", vec![0xff; 32]),
        ("31 bytes", vec![0x11; 31]),
        ("33 bytes", vec![0x11; 33]),
        ("empty", vec![]),
    ] {
        let (mut c, mut kt) = (CKO_PRIVATE_KEY, CKK_EC);
        let mut p = P256_PARAMS.to_vec();
        let mut dd = d.clone();
        let mut f = CK_FALSE;
        let mut t = [
            a_ulong(CKA_CLASS, &mut c),
            a_ulong(CKA_KEY_TYPE, &mut kt),
            a_bool(CKA_TOKEN, &mut f),
            a_bytes(CKA_EC_PARAMS, &mut p),
            a_bytes(CKA_VALUE, &mut dd),
        ];
        let (rv, o) = create(h, &mut t);
        if what == "31 bytes" && rv == CKR_OK {
            // A short big-endian scalar is still a valid integer; it must work.
            let mut mm = mech(CKM_ECDSA);
            assert_eq!(call!(C_SignInit, h, &mut mm, o), CKR_OK);
            continue;
        }
        assert_rv(
            rv,
            &[CKR_ATTRIBUTE_VALUE_INVALID],
            &format!("EC private value {what}"),
        );
    }
    // RSA private keys whose parts do not match.
    let k = openssl_rsa_key(2048);
    let mut bad_d = k.d.clone();
    bad_d[10] ^= 0x40;
    let mut bad_p = k.p.clone();
    bad_p[5] ^= 1;
    for (what, n, d, p) in [
        ("d changed", k.n.clone(), bad_d, k.p.clone()),
        ("p changed", k.n.clone(), k.d.clone(), bad_p),
        ("n of 8 bytes", vec![0xc5; 8], k.d.clone(), k.p.clone()),
        ("n empty", vec![], k.d.clone(), k.p.clone()),
    ] {
        let (mut c, mut kt) = (CKO_PRIVATE_KEY, CKK_RSA);
        let (mut n, mut d, mut p) = (n, d, p);
        let (mut e, mut q, mut dp, mut dq, mut qi) = (
            k.e.clone(),
            k.q.clone(),
            k.dp.clone(),
            k.dq.clone(),
            k.qinv.clone(),
        );
        let mut f = CK_FALSE;
        let mut t = [
            a_ulong(CKA_CLASS, &mut c),
            a_ulong(CKA_KEY_TYPE, &mut kt),
            a_bool(CKA_TOKEN, &mut f),
            a_bytes(CKA_MODULUS, &mut n),
            a_bytes(CKA_PUBLIC_EXPONENT, &mut e),
            a_bytes(CKA_PRIVATE_EXPONENT, &mut d),
            a_bytes(CKA_PRIME_1, &mut p),
            a_bytes(CKA_PRIME_2, &mut q),
            a_bytes(CKA_EXPONENT_1, &mut dp),
            a_bytes(CKA_EXPONENT_2, &mut dq),
            a_bytes(CKA_COEFFICIENT, &mut qi),
        ];
        let (rv, o) = create(h, &mut t);
        if rv == CKR_OK {
            // Accepted: signing must then fail clearly, never produce a bad signature.
            let mut mm = mech(CKM_SHA256_RSA_PKCS);
            let rv = call!(C_SignInit, h, &mut mm, o);
            let mut sig = vec![0u8; 512];
            let mut sl: CK_ULONG = 512;
            let mut data = *b"abc";
            let rv = if rv == CKR_OK {
                call!(C_Sign, h, data.as_mut_ptr(), 3, sig.as_mut_ptr(), &mut sl)
            } else {
                rv
            };
            panic!("RSA private key with {what} accepted; sign rv {rv:#x}");
        }
        assert_rv(
            rv,
            &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_TEMPLATE_INCONSISTENT],
            &format!("RSA private key with {what}"),
        );
    }
}

/// CKA_PUBLIC_EXPONENT = 00 (the integer zero) is not a valid RSA exponent: it must be
/// CKR_ATTRIBUTE_VALUE_INVALID / CKR_TEMPLATE_INCONSISTENT like 3 or 2, not silently
/// replaced by 65537.
#[test]
fn c2_rsa_exponent_zero_rejected() {
    let s = session();
    let h = s.handle();
    for e in [vec![0u8], vec![0u8, 0, 0]] {
        let mut b: CK_ULONG = 2048;
        let mut ee = e.clone();
        let mut pubt = [
            a_ulong(CKA_MODULUS_BITS, &mut b),
            a_bytes(CKA_PUBLIC_EXPONENT, &mut ee),
        ];
        let mut kp = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
        let (mut p1, mut p2) = (0, 0);
        let rv = call!(
            C_GenerateKeyPair,
            h,
            &mut kp,
            pubt.as_mut_ptr(),
            2,
            std::ptr::null_mut(),
            0,
            &mut p1,
            &mut p2
        );
        if rv == CKR_OK {
            let got = get_attr(h, p1, CKA_PUBLIC_EXPONENT);
            panic!("exponent {e:02x?} accepted; the key's CKA_PUBLIC_EXPONENT is {got:02x?}");
        }
        assert_rv(
            rv,
            &[CKR_TEMPLATE_INCONSISTENT, CKR_ATTRIBUTE_VALUE_INVALID],
            &format!("RSA exponent {e:02x?}"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Class 6 (cont.): object and session policy.

#[test]
fn c6_object_and_session_policy() {
    let s = session();
    let h = s.handle();
    let slot = keys().slot.id();
    let nocopy = aes_with(&s, &[30u8; 16], &[Attribute::Copyable(false)]).handle();
    let mut o: CK_OBJECT_HANDLE = 0;
    assert_eq!(
        call!(C_CopyObject, h, nocopy, std::ptr::null_mut(), 0, &mut o),
        CKR_ACTION_PROHIBITED,
        "copy of CKA_COPYABLE false"
    );
    let mut t = CK_TRUE;
    let mut tt = [a_bool(CKA_COPYABLE, &mut t)];
    assert_rv(
        call!(C_SetAttributeValue, h, nocopy, tt.as_mut_ptr(), 1),
        &[CKR_ATTRIBUTE_READ_ONLY],
        "CKA_COPYABLE false -> true",
    );
    let nodestroy = aes_with(&s, &[31u8; 16], &[Attribute::Destroyable(false)]).handle();
    assert_eq!(call!(C_DestroyObject, h, nodestroy), CKR_ACTION_PROHIBITED);
    // A read-only session cannot create, change or destroy token objects.
    let mut ro: CK_SESSION_HANDLE = 0;
    assert_eq!(
        call!(
            C_OpenSession,
            slot,
            CKF_SERIAL_SESSION,
            std::ptr::null_mut(),
            None,
            &mut ro
        ),
        CKR_OK
    );
    let (mut c, mut kt, mut tk) = (CKO_SECRET_KEY, CKK_AES, CK_TRUE);
    let mut v = [32u8; 16];
    let mut tmpl = [
        a_ulong(CKA_CLASS, &mut c),
        a_ulong(CKA_KEY_TYPE, &mut kt),
        a_bool(CKA_TOKEN, &mut tk),
        a_bytes(CKA_VALUE, &mut v),
    ];
    assert_eq!(create(ro, &mut tmpl).0, CKR_SESSION_READ_ONLY);
    let (rv, tok_key) = create(h, &mut tmpl);
    assert_eq!(rv, CKR_OK);
    let mut lbl = *b"ro";
    let mut lt = [a_bytes(CKA_LABEL, &mut lbl)];
    assert_eq!(
        call!(C_SetAttributeValue, ro, tok_key, lt.as_mut_ptr(), 1),
        CKR_SESSION_READ_ONLY
    );
    assert_eq!(call!(C_DestroyObject, ro, tok_key), CKR_SESSION_READ_ONLY);
    let mut gen = mech(CKM_AES_KEY_GEN);
    let mut l: CK_ULONG = 16;
    let mut gt = [a_ulong(CKA_VALUE_LEN, &mut l), a_bool(CKA_TOKEN, &mut tk)];
    assert_eq!(
        call!(C_GenerateKey, ro, &mut gen, gt.as_mut_ptr(), 2, &mut o),
        CKR_SESSION_READ_ONLY
    );
    // A session without CKF_SERIAL_SESSION.
    let mut x: CK_SESSION_HANDLE = 0;
    assert_eq!(
        call!(
            C_OpenSession,
            slot,
            CKF_RW_SESSION,
            std::ptr::null_mut(),
            None,
            &mut x
        ),
        CKR_SESSION_PARALLEL_NOT_SUPPORTED
    );
    // C_InitToken while sessions are open.
    let mut so = SO_PIN.as_bytes().to_vec();
    let mut label = padded32("attack");
    assert_eq!(
        call!(
            C_InitToken,
            slot,
            so.as_mut_ptr(),
            so.len() as CK_ULONG,
            label.as_mut_ptr()
        ),
        CKR_SESSION_EXISTS
    );
    // The token key is still there and works.
    assert_eq!(call!(C_DestroyObject, h, tok_key), CKR_OK);
    assert_eq!(call!(C_CloseSession, ro), CKR_OK);
    // Bad user types.
    let mut p = USER_PIN.as_bytes().to_vec();
    assert_rv(
        call!(C_Login, h, 7, p.as_mut_ptr(), p.len() as CK_ULONG),
        &[
            CKR_USER_TYPE_INVALID,
            CKR_USER_ALREADY_LOGGED_IN,
            CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        ],
        "user type 7",
    );
    assert_rv(
        call!(
            C_Login,
            h,
            CK_ULONG::MAX,
            p.as_mut_ptr(),
            p.len() as CK_ULONG
        ),
        &[
            CKR_USER_TYPE_INVALID,
            CKR_USER_ALREADY_LOGGED_IN,
            CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        ],
        "user type MAX",
    );
    assert_eq!(
        call!(
            C_Login,
            h,
            CKU_CONTEXT_SPECIFIC,
            p.as_mut_ptr(),
            p.len() as CK_ULONG
        ),
        CKR_OPERATION_NOT_INITIALIZED,
        "context-specific login with nothing to authorize"
    );
}
