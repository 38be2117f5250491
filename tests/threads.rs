//! Multithreading (PKCS#11 3.0 §6.7): one context, many threads and sessions.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::*;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki_sys::*;

const TOKENS: &[TokenSpec] = &[
    tok("workers"),
    tok("race"),
    tok("fast-close"),
    tok("fast-destroy"),
    tok("fast-logout"),
];

fn env() -> &'static Env {
    common::env(TOKENS)
}

const THREADS: usize = 8;
const ROUNDS: usize = 25;

#[test]
fn eight_threads_own_sessions() {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let e = env();
    let slot = e.user_token("workers");
    let setup = e.user_session(slot);
    let (pubk, privk) = setup
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::EcParams(P256_PARAMS.to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let point = ec_point_from_attr(&attr_bytes(&setup, pubk, CKA_EC_POINT));
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = barrier.clone();
            let point = point.clone();
            thread::spawn(move || {
                let s = env().user_session(slot);
                let kv = [t as u8 + 1; 32];
                let key = s
                    .create_object(&[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::Token(false),
                        Attribute::Encrypt(true),
                        Attribute::Decrypt(true),
                        Attribute::Value(kv.to_vec()),
                    ])
                    .unwrap();
                let reference = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &kv).unwrap());
                barrier.wait();
                for i in 0..ROUNDS {
                    let pt = format!("thread {t} round {i}").into_bytes();
                    let aad = [t as u8, i as u8];
                    let mut iv = [0u8; 12];
                    iv[0] = t as u8;
                    iv[1] = i as u8;
                    let mut ivm = iv;
                    let m = Mechanism::AesGcm(GcmParams::new(&mut ivm, &aad, 128.into()).unwrap());
                    let ct = s.encrypt(&m, key, &pt).unwrap();
                    let mut want = pt.clone();
                    reference
                        .seal_in_place_append_tag(
                            Nonce::assume_unique_for_key(iv),
                            Aad::from(aad),
                            &mut want,
                        )
                        .unwrap();
                    assert_eq!(ct, want, "thread {t} round {i}");
                    assert_eq!(s.decrypt(&m, key, &ct).unwrap(), pt);

                    let digest = sha("sha256", &pt);
                    let sig = s.sign(&Mechanism::Ecdsa, privk, &digest).unwrap();
                    assert!(
                        ecdsa_verify(P256_PARAMS, &point, "sha256", &pt, &sig),
                        "thread {t} round {i}"
                    );
                    s.verify(&Mechanism::Ecdsa, pubk, &digest, &sig).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
}

#[test]
fn two_threads_race_on_one_session() {
    let e = env();
    let slot = e.user_token("race");
    let s = e.user_session(slot);
    let key = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Encrypt(true),
            Attribute::Value(vec![9u8; 16]),
        ])
        .unwrap()
        .handle();
    let h = s.handle();
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|t| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let allowed = [CKR_OK, CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED];
                let mut seen = Vec::new();
                barrier.wait();
                for _ in 0..500 {
                    if t == 0 {
                        let mut m = CK_MECHANISM {
                            mechanism: CKM_AES_ECB,
                            pParameter: std::ptr::null_mut(),
                            ulParameterLen: 0,
                        };
                        seen.push(call!(C_EncryptInit, h, &mut m, key));
                        let mut data = [0u8; 16];
                        let mut out = [0u8; 16];
                        let mut n: CK_ULONG = 16;
                        let rv = call!(
                            C_Encrypt,
                            h,
                            data.as_mut_ptr(),
                            16,
                            out.as_mut_ptr(),
                            &mut n
                        );
                        if rv == CKR_OK {
                            assert_eq!(n, 16);
                        }
                        seen.push(rv);
                    } else {
                        let mut m = CK_MECHANISM {
                            mechanism: CKM_SHA256,
                            pParameter: std::ptr::null_mut(),
                            ulParameterLen: 0,
                        };
                        seen.push(call!(C_DigestInit, h, &mut m));
                        let mut data = [1u8; 8];
                        seen.push(call!(C_DigestUpdate, h, data.as_mut_ptr(), 8));
                        let mut out = [0u8; 32];
                        let mut n: CK_ULONG = 32;
                        seen.push(call!(C_DigestFinal, h, out.as_mut_ptr(), &mut n));
                        let mut m2 = CK_MECHANISM {
                            mechanism: CKM_AES_ECB,
                            pParameter: std::ptr::null_mut(),
                            ulParameterLen: 0,
                        };
                        seen.push(call!(C_EncryptInit, h, &mut m2, key));
                        let mut info = CK_SESSION_INFO::default();
                        seen.push(call!(C_GetSessionInfo, h, &mut info));
                    }
                }
                for rv in &seen {
                    assert!(
                        allowed.contains(rv),
                        "thread {t}: unexpected {}",
                        rv_name(*rv)
                    );
                }
                seen.iter().filter(|rv| **rv == CKR_OK).count()
            })
        })
        .collect();
    for r in racers {
        let oks = r.join().expect("racer panicked");
        assert!(oks > 0);
    }
    // The session is still usable afterwards (end whatever operation is left).
    let mut out = [0u8; 32];
    let mut n: CK_ULONG = 32;
    let mut data = [0u8; 16];
    let _ = call!(
        C_Encrypt,
        h,
        data.as_mut_ptr(),
        16,
        out.as_mut_ptr(),
        &mut n
    );
    let _ = call!(C_DigestFinal, h, out.as_mut_ptr(), &mut n);
    s.digest(&Mechanism::Sha256, b"abc").unwrap();
}

// ---- the per-thread session fast path (api::cached_session) ------------------------
// A thread's next call on the session it used last skips the module and the session
// table. Whatever ends a session, a key or a login in between — here from another
// thread, which never touches this thread's cache — must still be seen by that call.

/// A session or token AES-256 key of value [7; 32] for AES-GCM on `s`.
fn gcm_key(s: &cryptoki::session::Session, token: bool, private: bool) -> CK_OBJECT_HANDLE {
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(token),
        Attribute::Private(private),
        Attribute::Encrypt(true),
        Attribute::Value(vec![7u8; 32]),
    ])
    .unwrap()
    .handle()
}

/// Warm this thread's fast path on `h` with `key`: two full rounds, the ciphertext
/// checked against aws-lc.
fn warm(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let mut want = vec![9u8; 64];
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([1u8; 12]),
        Aad::empty(),
        &mut want,
    )
    .unwrap();
    for _ in 0..2 {
        assert_eq!(gcm_encrypt_init(h, key), CKR_OK);
        let (rv, ct) = encrypt_64(h);
        assert_eq!(rv, CKR_OK);
        assert_eq!(ct, want, "AES-GCM through the module is aws-lc's");
    }
}

#[test]
fn fast_path_sees_a_session_closed_by_another_thread() {
    let e = env();
    let slot = e.user_token("fast-close");
    let s = e.user_session(slot);
    let key = gcm_key(&s, false, false);
    let h = s.handle();
    warm(h, key);
    // An operation is active when the session goes: it must not survive in the cache.
    assert_eq!(gcm_encrypt_init(h, key), CKR_OK);
    thread::spawn(move || assert_eq!(call!(C_CloseSession, h), CKR_OK))
        .join()
        .unwrap();
    assert_eq!(encrypt_64(h).0, CKR_SESSION_HANDLE_INVALID);
    assert_eq!(gcm_encrypt_init(h, key), CKR_SESSION_HANDLE_INVALID);
    std::mem::forget(s); // its handle is closed already
}

#[test]
fn fast_path_sees_a_key_destroyed_by_another_thread() {
    let e = env();
    let slot = e.user_token("fast-destroy");
    let s = e.user_session(slot);
    let key = gcm_key(&s, true, false);
    let h = s.handle();
    warm(h, key);
    thread::spawn(move || {
        let other = env().user_session(slot);
        assert_eq!(call!(C_DestroyObject, other.handle(), key), CKR_OK);
    })
    .join()
    .unwrap();
    assert_eq!(gcm_encrypt_init(h, key), CKR_KEY_HANDLE_INVALID);
}

#[test]
fn fast_path_sees_a_logout_by_another_session() {
    let e = env();
    let slot = e.user_token("fast-logout");
    let s = e.user_session(slot);
    let key = gcm_key(&s, false, true);
    let h = s.handle();
    warm(h, key);
    let other = e.user_session(slot);
    let oh = other.handle();
    thread::spawn(move || assert_eq!(call!(C_Logout, oh), CKR_OK))
        .join()
        .unwrap();
    // Private objects are out of reach after C_Logout (§5.6): the private key's handle
    // no longer resolves.
    let rv = gcm_encrypt_init(h, key);
    assert!(
        rv == CKR_KEY_HANDLE_INVALID || rv == CKR_USER_NOT_LOGGED_IN,
        "C_EncryptInit with a private key after C_Logout: {}",
        rv_name(rv)
    );
    drop(other);
}
