//! Object management (PKCS#11 3.0 §5.7) and the attribute model of chapter 4.

mod common;

use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;

const TOKENS: &[TokenSpec] = &[
    tok("aes"),
    tok("generic"),
    tok("rsagen"),
    tok("rsaimp"),
    tok("ecgen"),
    tok("ecimp"),
    tok("cert"),
    tok("data"),
    tok("getattr"),
    tok("setattr"),
    tok("size"),
    tok("find"),
    tok("private"),
    tok("copy"),
    tok("index"),
];

fn env() -> &'static Env {
    common::env(TOKENS)
}

fn session(label: &str) -> Session {
    let e = env();
    let slot = e.user_token(label);
    e.user_session(slot)
}

fn aes_template(value: &[u8], label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(label.into()),
        Attribute::Id(vec![0xa1, 0xa2, 0xa3, 0xa4]),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Value(value.to_vec()),
    ]
}

#[test]
fn aes_keys_create_and_generate() {
    let s = session("aes");
    for len in [16usize, 24, 32] {
        let value: Vec<u8> = (0..len as u8).collect();
        let h = s.create_object(&aes_template(&value, "imported")).unwrap();
        assert_eq!(attr_bytes(&s, h, CKA_VALUE), value);
        assert_eq!(attr_ulong(&s, h, CKA_VALUE_LEN), len as CK_ULONG);
        assert_eq!(attr_ulong(&s, h, CKA_CLASS), CKO_SECRET_KEY);
        assert_eq!(attr_ulong(&s, h, CKA_KEY_TYPE), CKK_AES);
        assert!(
            !attr_bool(&s, h, CKA_LOCAL),
            "imported keys are not CKA_LOCAL"
        );
        assert!(!attr_bool(&s, h, CKA_ALWAYS_SENSITIVE));
        assert!(!attr_bool(&s, h, CKA_NEVER_EXTRACTABLE));
        assert_eq!(attr_bytes(&s, h, CKA_LABEL), b"imported");

        let g = s
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::ValueLen((len as CK_ULONG).into()),
                    Attribute::Label(b"generated".to_vec()),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                ],
            )
            .unwrap();
        assert_eq!(attr_ulong(&s, g, CKA_VALUE_LEN), len as CK_ULONG);
        assert_eq!(attr_ulong(&s, g, CKA_KEY_TYPE), CKK_AES);
        assert!(attr_bool(&s, g, CKA_LOCAL));
        assert!(attr_bool(&s, g, CKA_ALWAYS_SENSITIVE));
        assert!(attr_bool(&s, g, CKA_NEVER_EXTRACTABLE));
        assert!(attr_bool(&s, g, CKA_TOKEN));
        assert_eq!(
            get_attr(s.handle(), g.handle(), CKA_VALUE),
            Err(CKR_ATTRIBUTE_SENSITIVE)
        );
    }
    // Wrong sizes.
    let r = rv_err(s.generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(20.into())]));
    assert!(
        matches!(
            r,
            RvError::KeySizeRange | RvError::AttributeValueInvalid | RvError::TemplateInconsistent
        ),
        "{r:?}"
    );
    let r = rv_err(s.generate_key(&Mechanism::AesKeyGen, &[Attribute::Token(false)]));
    assert_eq!(
        r,
        RvError::TemplateIncomplete,
        "AES keygen needs CKA_VALUE_LEN"
    );
    if !is_reference() {
        // SoftHSM accepts any AES key length on C_CreateObject.
        let r = rv_err(s.create_object(&aes_template(&[7u8; 15], "bad")));
        assert!(
            matches!(
                r,
                RvError::AttributeValueInvalid | RvError::TemplateInconsistent
            ),
            "{r:?}"
        );
    }
    let mut t = aes_template(&[1u8; 16], "novalue");
    t.retain(|a| a.attribute_type() != AttributeType::Value);
    assert_eq!(rv_err(s.create_object(&t)), RvError::TemplateIncomplete);
}

#[test]
fn generic_secret_keys() {
    let s = session("generic");
    let value = vec![0x5au8; 20];
    let h = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Value(value.clone()),
        ])
        .unwrap();
    assert_eq!(attr_ulong(&s, h, CKA_KEY_TYPE), CKK_GENERIC_SECRET);
    assert_eq!(attr_bytes(&s, h, CKA_VALUE), value);
    assert_eq!(attr_ulong(&s, h, CKA_VALUE_LEN), 20);
    let g = s
        .generate_key(
            &Mechanism::GenericSecretKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(48.into()),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    assert_eq!(attr_ulong(&s, g, CKA_VALUE_LEN), 48);
    assert_eq!(attr_ulong(&s, g, CKA_KEY_TYPE), CKK_GENERIC_SECRET);
    assert!(attr_bool(&s, g, CKA_LOCAL));
}

fn check_standard_key_attrs(s: &Session, h: ObjectHandle) {
    for t in [
        CKA_ALWAYS_AUTHENTICATE,
        CKA_ALWAYS_SENSITIVE,
        CKA_NEVER_EXTRACTABLE,
        CKA_LOCAL,
        CKA_SENSITIVE,
        CKA_EXTRACTABLE,
    ] {
        attr_bool(s, h, t);
    }
    // CKA_ALLOWED_MECHANISMS: an array of CK_MECHANISM_TYPE (possibly empty).
    let m = attr_bytes(s, h, CKA_ALLOWED_MECHANISMS);
    assert_eq!(m.len() % std::mem::size_of::<CK_MECHANISM_TYPE>(), 0);
}

#[test]
fn rsa_generated_key_pair() {
    let s = session("rsagen");
    let id = vec![1u8, 2, 3];
    let (pubk, privk) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::Encrypt(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Id(id.clone()),
                Attribute::Label(b"rsa".to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Decrypt(true),
                Attribute::Id(id.clone()),
                Attribute::Label(b"rsa".to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(attr_ulong(&s, pubk, CKA_CLASS), CKO_PUBLIC_KEY);
    assert_eq!(attr_ulong(&s, privk, CKA_CLASS), CKO_PRIVATE_KEY);
    assert_eq!(attr_ulong(&s, pubk, CKA_KEY_TYPE), CKK_RSA);
    assert_eq!(attr_bytes(&s, pubk, CKA_ID), id);
    assert_eq!(attr_bytes(&s, privk, CKA_ID), id, "key pair shares CKA_ID");
    let n = attr_bytes(&s, pubk, CKA_MODULUS);
    let e = attr_bytes(&s, pubk, CKA_PUBLIC_EXPONENT);
    assert_eq!(n.len(), 256);
    assert_eq!(uint_bytes(&e), &[1, 0, 1]);
    assert_eq!(attr_ulong(&s, pubk, CKA_MODULUS_BITS), 2048);
    assert_eq!(
        attr_bytes(&s, privk, CKA_MODULUS),
        n,
        "private key exposes its modulus"
    );
    assert_eq!(
        get_attr(s.handle(), privk.handle(), CKA_PRIVATE_EXPONENT),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    assert_eq!(
        get_attr(s.handle(), privk.handle(), CKA_PRIME_1),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    assert!(attr_bool(&s, privk, CKA_LOCAL));
    assert!(attr_bool(&s, pubk, CKA_LOCAL));
    assert!(attr_bool(&s, privk, CKA_ALWAYS_SENSITIVE));
    assert!(attr_bool(&s, privk, CKA_NEVER_EXTRACTABLE));
    assert!(!attr_bool(&s, privk, CKA_ALWAYS_AUTHENTICATE));
    assert!(attr_bool(&s, privk, CKA_PRIVATE));
    check_standard_key_attrs(&s, privk);
    check_public_key_info(&s, pubk, &rsa_spki(&n, &e));
    check_public_key_info(&s, privk, &rsa_spki(&n, &e));
}

/// CKA_PUBLIC_KEY_INFO is the DER SubjectPublicKeyInfo (§4.8). SoftHSM 2.6 leaves it empty.
fn check_public_key_info(s: &Session, h: ObjectHandle, expected: &[u8]) {
    let info = attr_bytes(s, h, CKA_PUBLIC_KEY_INFO);
    if info.is_empty() && is_reference() {
        return;
    }
    assert_eq!(info, expected, "CKA_PUBLIC_KEY_INFO");
}

fn import_rsa(s: &Session, key: &RsaKey, id: &[u8]) -> (ObjectHandle, ObjectHandle) {
    let pubk = s
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
            Attribute::Modulus(key.n.clone()),
            Attribute::PublicExponent(key.e.clone()),
            Attribute::Id(id.to_vec()),
        ])
        .unwrap();
    let privk = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::Decrypt(true),
            Attribute::Id(id.to_vec()),
            Attribute::Modulus(key.n.clone()),
            Attribute::PublicExponent(key.e.clone()),
            Attribute::PrivateExponent(key.d.clone()),
            Attribute::Prime1(key.p.clone()),
            Attribute::Prime2(key.q.clone()),
            Attribute::Exponent1(key.dp.clone()),
            Attribute::Exponent2(key.dq.clone()),
            Attribute::Coefficient(key.qinv.clone()),
        ])
        .unwrap();
    (pubk, privk)
}

#[test]
fn rsa_imported_key_pair() {
    let s = session("rsaimp");
    let key = openssl_rsa_key(2048);
    let (pubk, privk) = import_rsa(&s, &key, b"imp");
    assert_eq!(uint_bytes(&attr_bytes(&s, pubk, CKA_MODULUS)), &key.n[..]);
    assert_eq!(attr_ulong(&s, pubk, CKA_MODULUS_BITS), 2048);
    assert!(!attr_bool(&s, privk, CKA_LOCAL));
    assert!(!attr_bool(&s, privk, CKA_NEVER_EXTRACTABLE));
    assert_eq!(
        get_attr(s.handle(), privk.handle(), CKA_PRIVATE_EXPONENT),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    check_standard_key_attrs(&s, privk);
    // The imported key signs what openssl verifies.
    let msg = b"imported RSA key";
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, privk, msg).unwrap();
    assert!(openssl_rsa_verify(
        &rsa_spki(&key.n, &key.e),
        "sha256",
        msg,
        &sig,
        false
    ));
}

#[test]
fn ec_generated_key_pairs() {
    let s = session("ecgen");
    for params in [P256_PARAMS, P384_PARAMS, P521_PARAMS] {
        let (pubk, privk) = s
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::Verify(true),
                    Attribute::EcParams(params.to_vec()),
                    Attribute::Id(vec![9]),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sign(true),
                    Attribute::Sensitive(true),
                    Attribute::Id(vec![9]),
                ],
            )
            .unwrap();
        assert_eq!(attr_ulong(&s, pubk, CKA_KEY_TYPE), CKK_EC);
        assert_eq!(attr_ulong(&s, privk, CKA_KEY_TYPE), CKK_EC);
        assert_eq!(attr_bytes(&s, pubk, CKA_EC_PARAMS), params);
        assert_eq!(attr_bytes(&s, privk, CKA_EC_PARAMS), params);
        let point = ec_point_from_attr(&attr_bytes(&s, pubk, CKA_EC_POINT));
        assert_eq!(point.len(), 1 + 2 * curve_bytes(params));
        assert_eq!(
            get_attr(s.handle(), privk.handle(), CKA_VALUE),
            Err(CKR_ATTRIBUTE_SENSITIVE)
        );
        assert!(attr_bool(&s, privk, CKA_LOCAL));
        check_standard_key_attrs(&s, privk);
        check_public_key_info(&s, pubk, &ec_spki(params, &point));
        // The point is on the curve: aws-lc-rs accepts it, and the key verifies its signature.
        let msg = b"ec keygen";
        let sig = s
            .sign(&Mechanism::Ecdsa, privk, &sha("sha256", msg))
            .unwrap();
        assert_eq!(sig.len(), 2 * curve_bytes(params));
        assert!(ecdsa_verify(params, &point, "sha256", msg, &sig));
    }
    // secp256k1: generated and signing (r||s), like SoftHSM does through OpenSSL.
    let k1 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
    let (pubk, privk) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::Verify(true), Attribute::EcParams(k1.to_vec())],
            &[Attribute::Sign(true)],
        )
        .unwrap();
    let point = ec_point_from_attr(&attr_bytes(&s, pubk, CKA_EC_POINT));
    assert_eq!(point.len(), 65);
    let msg = b"secp256k1 keygen";
    let sig = s.sign(&Mechanism::EcdsaSha256, privk, msg).unwrap();
    assert_eq!(sig.len(), 64);
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256K1_SHA256_FIXED,
        &point,
    )
    .verify(msg, &sig)
    .unwrap();
    s.verify(&Mechanism::EcdsaSha256, pubk, msg, &sig).unwrap();
    // Unknown curve (brainpoolP256r1).
    let bp = [
        0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07,
    ];
    if !is_reference() {
        // SoftHSM supports brainpool curves through OpenSSL.
        let r = rv_err(s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(bp.to_vec())],
            &[Attribute::Sign(true)],
        ));
        assert!(
            matches!(
                r,
                RvError::CurveNotSupported
                    | RvError::DomainParamsInvalid
                    | RvError::AttributeValueInvalid
            ),
            "{r:?}"
        );
    }
}

#[test]
fn ec_imported_key_pair() {
    use aws_lc_rs::encoding::AsBigEndian;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let s = session("ecimp");
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let scalar = kp.private_key().as_be_bytes().unwrap();
    let point = kp.public_key().as_ref().to_vec();
    let pubk = s
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::EcPoint(der(0x04, &point)),
        ])
        .unwrap();
    let privk = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Value(scalar.as_ref().to_vec()),
        ])
        .unwrap();
    assert_eq!(
        ec_point_from_attr(&attr_bytes(&s, pubk, CKA_EC_POINT)),
        point
    );
    assert!(!attr_bool(&s, privk, CKA_LOCAL));
    assert_eq!(
        get_attr(s.handle(), privk.handle(), CKA_VALUE),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    let msg = b"imported EC key";
    let sig = s
        .sign(&Mechanism::Ecdsa, privk, &sha("sha256", msg))
        .unwrap();
    assert!(ecdsa_verify(P256_PARAMS, &point, "sha256", msg, &sig));
    // And the module verifies what aws-lc-rs signs.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let theirs = kp.sign(&rng, msg).unwrap();
    s.verify(
        &Mechanism::Ecdsa,
        pubk,
        &sha("sha256", msg),
        theirs.as_ref(),
    )
    .unwrap();
}

/// A self-signed certificate made by openssl, and its DER subject.
fn openssl_cert() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.der");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            dir.path().join("k.pem").to_str().unwrap(),
            "-subj",
            "/CN=p11kms test",
            "-days",
            "1",
            "-outform",
            "DER",
            "-out",
            cert.to_str().unwrap(),
        ],
        &[],
    );
    let der_cert = std::fs::read(cert).unwrap();
    let (_, certseq, _) = der_read(&der_cert);
    let (_, tbs, _) = der_read(certseq);
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let start = rest;
        let (_, _, r) = der_read(rest);
        fields.push(start[..start.len() - r.len()].to_vec());
        rest = r;
    }
    // [0] version, serial, signature, issuer, validity, subject, ...
    (der_cert, fields[5].clone(), fields[1].clone())
}

#[test]
fn certificate_object() {
    let s = session("cert");
    let (cert, subject, serial) = openssl_cert();
    let h = s
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(b"my cert".to_vec()),
            Attribute::Id(vec![0xce]),
            Attribute::Subject(subject.clone()),
            Attribute::SerialNumber(serial.clone()),
            Attribute::Value(cert.clone()),
        ])
        .unwrap();
    assert_eq!(attr_ulong(&s, h, CKA_CLASS), CKO_CERTIFICATE);
    assert_eq!(attr_ulong(&s, h, CKA_CERTIFICATE_TYPE), CKC_X_509);
    assert_eq!(
        attr_bytes(&s, h, CKA_VALUE),
        cert,
        "certificates are not sensitive"
    );
    assert_eq!(attr_bytes(&s, h, CKA_SUBJECT), subject);
    let found = s
        .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
        .unwrap();
    assert_eq!(found, vec![h]);
    let found = s.find_objects(&[Attribute::Subject(subject)]).unwrap();
    assert_eq!(found, vec![h]);
    // Missing CKA_CERTIFICATE_TYPE.
    let r = rv_err(s.create_object(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::Value(cert),
    ]));
    assert_eq!(r, RvError::TemplateIncomplete);
}

#[test]
fn data_objects() {
    let s = session("data");
    let h = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"blob".to_vec()),
            Attribute::Application(b"p11kms-tests".to_vec()),
            Attribute::Value(b"hello data".to_vec()),
        ])
        .unwrap();
    assert_eq!(attr_bytes(&s, h, CKA_VALUE), b"hello data");
    assert_eq!(attr_bytes(&s, h, CKA_APPLICATION), b"p11kms-tests");
    assert!(attr_bool(&s, h, CKA_TOKEN));
    let sess_obj = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(false),
            Attribute::Value(vec![1, 2, 3]),
        ])
        .unwrap();
    assert!(!attr_bool(&s, sess_obj, CKA_TOKEN));
    s.destroy_object(h).unwrap();
    assert_eq!(
        get_attr(s.handle(), h.handle(), CKA_VALUE),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
    assert_eq!(rv_err(s.destroy_object(h)), RvError::ObjectHandleInvalid);
}

#[test]
fn get_attribute_value_mixed_template() {
    let s = session("getattr");
    let mut t = aes_template(&[3u8; 16], "mixed");
    t.retain(|a| {
        !matches!(
            a.attribute_type(),
            AttributeType::Sensitive | AttributeType::Extractable
        )
    });
    t.push(Attribute::Sensitive(true));
    let key = s.create_object(&t).unwrap();
    let (sh, kh) = (s.handle(), key.handle());

    let mut label = [0u8; 32];
    let mut value = [0u8; 32];
    let mut id_short = [0u8; 1];
    let mut modulus = [0u8; 256];
    let mut tmpl = [
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_mut_ptr().cast(),
            ulValueLen: 32,
        },
        CK_ATTRIBUTE {
            type_: CKA_MODULUS,
            pValue: modulus.as_mut_ptr().cast(),
            ulValueLen: 256,
        },
        CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: value.as_mut_ptr().cast(),
            ulValueLen: 32,
        },
        CK_ATTRIBUTE {
            type_: CKA_ID,
            pValue: id_short.as_mut_ptr().cast(),
            ulValueLen: 1,
        },
        CK_ATTRIBUTE {
            type_: CKA_KEY_TYPE,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: 0x7ff0_0001,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        },
    ];
    let rv = call!(
        C_GetAttributeValue,
        sh,
        kh,
        tmpl.as_mut_ptr(),
        tmpl.len() as CK_ULONG
    );
    // §5.7: several cases apply; the module may return any of the three codes, but must
    // have processed every entry.
    assert!(
        [
            CKR_ATTRIBUTE_SENSITIVE,
            CKR_ATTRIBUTE_TYPE_INVALID,
            CKR_BUFFER_TOO_SMALL
        ]
        .contains(&rv),
        "{}",
        rv_name(rv)
    );
    assert_eq!(tmpl[0].ulValueLen, 5);
    assert_eq!(&label[..5], b"mixed");
    assert_eq!(
        tmpl[1].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "invalid type"
    );
    assert_eq!(
        tmpl[2].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "sensitive value"
    );
    assert_eq!(value, [0u8; 32], "no sensitive byte leaks into the buffer");
    assert_eq!(
        tmpl[3].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "short buffer"
    );
    assert_eq!(
        tmpl[4].ulValueLen as usize,
        std::mem::size_of::<CK_ULONG>(),
        "NULL buffer gets the length"
    );
    assert_eq!(
        tmpl[5].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "unknown type"
    );

    // One case at a time gives its own code.
    let one = |t: CK_ATTRIBUTE_TYPE, buf: &mut [u8]| {
        let mut a = CK_ATTRIBUTE {
            type_: t,
            pValue: buf.as_mut_ptr().cast(),
            ulValueLen: buf.len() as CK_ULONG,
        };
        let rv = call!(C_GetAttributeValue, sh, kh, &mut a, 1);
        (rv, a.ulValueLen)
    };
    assert_eq!(
        one(CKA_VALUE, &mut [0u8; 32]),
        (CKR_ATTRIBUTE_SENSITIVE, CK_UNAVAILABLE_INFORMATION)
    );
    assert_eq!(
        one(CKA_MODULUS, &mut [0u8; 32]),
        (CKR_ATTRIBUTE_TYPE_INVALID, CK_UNAVAILABLE_INFORMATION)
    );
    assert_eq!(
        one(CKA_ID, &mut [0u8; 2]),
        (CKR_BUFFER_TOO_SMALL, CK_UNAVAILABLE_INFORMATION)
    );
    assert_eq!(one(CKA_ID, &mut [0u8; 8]), (CKR_OK, 4));

    assert_eq!(
        call!(C_GetAttributeValue, sh, kh, std::ptr::null_mut(), 1),
        CKR_ARGUMENTS_BAD
    );
    let mut a = CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    };
    assert_eq!(
        call!(C_GetAttributeValue, sh, 0x7fff_fff0, &mut a, 1),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        call!(C_GetAttributeValue, 0x7fff_fff0, kh, &mut a, 1),
        CKR_SESSION_HANDLE_INVALID
    );
}

#[test]
fn set_attribute_value_rules() {
    let s = session("setattr");
    let key = s
        .create_object(&aes_template(&[4u8; 16], "before"))
        .unwrap();
    s.update_attributes(key, &[Attribute::Label(b"after".to_vec())])
        .unwrap();
    assert_eq!(attr_bytes(&s, key, CKA_LABEL), b"after");
    s.update_attributes(key, &[Attribute::Id(vec![7, 7])])
        .unwrap();
    assert_eq!(attr_bytes(&s, key, CKA_ID), vec![7, 7]);

    let ro = |attrs: &[Attribute]| rv_err(s.update_attributes(key, attrs));
    assert_eq!(
        ro(&[Attribute::Class(ObjectClass::DATA)]),
        RvError::AttributeReadOnly
    );
    assert_eq!(
        ro(&[Attribute::KeyType(KeyType::GENERIC_SECRET)]),
        RvError::AttributeReadOnly
    );
    assert_eq!(ro(&[Attribute::Local(true)]), RvError::AttributeReadOnly);
    assert_eq!(
        ro(&[Attribute::AlwaysSensitive(true)]),
        RvError::AttributeReadOnly
    );

    // CKA_SENSITIVE may only go false → true; CKA_EXTRACTABLE only true → false (§4.10).
    s.update_attributes(key, &[Attribute::Sensitive(true)])
        .unwrap();
    assert!(attr_bool(&s, key, CKA_SENSITIVE));
    assert_eq!(
        get_attr(s.handle(), key.handle(), CKA_VALUE),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    assert_eq!(
        ro(&[Attribute::Sensitive(false)]),
        RvError::AttributeReadOnly
    );
    s.update_attributes(key, &[Attribute::Extractable(false)])
        .unwrap();
    assert!(!attr_bool(&s, key, CKA_EXTRACTABLE));
    assert_eq!(
        ro(&[Attribute::Extractable(true)]),
        RvError::AttributeReadOnly
    );
    assert!(
        !attr_bool(&s, key, CKA_ALWAYS_SENSITIVE),
        "was not sensitive from the start"
    );
    assert!(
        !attr_bool(&s, key, CKA_NEVER_EXTRACTABLE),
        "was extractable once"
    );

    // A non-modifiable object refuses changes.
    let fixed = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(false),
            Attribute::Modifiable(false),
            Attribute::Label(b"fixed".to_vec()),
        ])
        .unwrap();
    let r = rv_err(s.update_attributes(fixed, &[Attribute::Label(b"x".to_vec())]));
    assert!(
        matches!(r, RvError::ActionProhibited | RvError::AttributeReadOnly),
        "{r:?}"
    );

    let mut a = CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    };
    assert_eq!(
        call!(C_SetAttributeValue, s.handle(), 0x7fff_fff0, &mut a, 1),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        call!(
            C_SetAttributeValue,
            s.handle(),
            key.handle(),
            std::ptr::null_mut(),
            1
        ),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn object_size() {
    let s = session("size");
    let h = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Value(vec![0u8; 100]),
        ])
        .unwrap();
    let mut size: CK_ULONG = 0;
    assert_eq!(
        call!(C_GetObjectSize, s.handle(), h.handle(), &mut size),
        CKR_OK
    );
    assert!(size == CK_UNAVAILABLE_INFORMATION || size > 0);
    assert_eq!(
        call!(C_GetObjectSize, s.handle(), 0x7fff_fff0, &mut size),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        call!(
            C_GetObjectSize,
            s.handle(),
            h.handle(),
            std::ptr::null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn find_objects() {
    let s = session("find");
    let mk = |label: &str, id: u8| {
        let mut t = aes_template(&[id; 16], label);
        t.retain(|a| a.attribute_type() != AttributeType::Id);
        t.push(Attribute::Id(vec![id]));
        s.create_object(&t).unwrap()
    };
    let a = mk("key-a", 1);
    let b = mk("key-b", 2);
    let d = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"key-a".to_vec()),
        ])
        .unwrap();
    let mut keys = s
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap();
    keys.sort_by_key(|h| h.handle());
    let mut want = vec![a, b];
    want.sort_by_key(|h| h.handle());
    assert_eq!(keys, want);
    assert_eq!(s.find_objects(&[Attribute::Id(vec![2])]).unwrap(), vec![b]);
    let mut by_label = s
        .find_objects(&[Attribute::Label(b"key-a".to_vec())])
        .unwrap();
    by_label.sort_by_key(|h| h.handle());
    let mut want = vec![a, d];
    want.sort_by_key(|h| h.handle());
    assert_eq!(by_label, want);
    assert_eq!(
        s.find_objects(&[
            Attribute::Label(b"key-a".to_vec()),
            Attribute::Class(ObjectClass::DATA)
        ])
        .unwrap(),
        vec![d]
    );
    assert!(s
        .find_objects(&[Attribute::Label(b"nothing".to_vec())])
        .unwrap()
        .is_empty());
    assert!(
        s.find_objects(&[Attribute::Label(b"key".to_vec())])
            .unwrap()
            .is_empty(),
        "exact match, not prefix"
    );
    let all = s.find_objects(&[]).unwrap();
    for h in [a, b, d] {
        assert!(all.contains(&h));
    }

    // Raw: one at a time, operation state rules.
    let sh = s.handle();
    let mut out: CK_OBJECT_HANDLE = 0;
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(C_FindObjects, sh, &mut out, 1, &mut n),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(call!(C_FindObjectsFinal, sh), CKR_OPERATION_NOT_INITIALIZED);
    assert_eq!(
        call!(C_FindObjectsInit, sh, std::ptr::null_mut(), 0),
        CKR_OK,
        "NULL template with count 0"
    );
    assert_eq!(
        call!(C_FindObjectsInit, sh, std::ptr::null_mut(), 0),
        CKR_OPERATION_ACTIVE
    );
    let mut seen = 0;
    loop {
        assert_eq!(call!(C_FindObjects, sh, &mut out, 1, &mut n), CKR_OK);
        if n == 0 {
            break;
        }
        assert_eq!(n, 1);
        seen += 1;
        assert!(seen <= all.len());
    }
    assert_eq!(seen, all.len());
    assert_eq!(
        call!(C_FindObjects, sh, std::ptr::null_mut(), 1, &mut n),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(call!(C_FindObjectsFinal, sh), CKR_OK);
    assert_eq!(
        call!(C_FindObjectsInit, sh, std::ptr::null_mut(), 1),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn private_objects_need_login() {
    let e = env();
    let slot = e.user_token("private");
    let s = e.ctx.open_rw_session(slot).unwrap();
    let data = |private: bool| {
        vec![
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(if private {
                b"secret".to_vec()
            } else {
                b"public".to_vec()
            }),
        ]
    };
    assert_eq!(
        rv_err(s.create_object(&data(true))),
        RvError::UserNotLoggedIn
    );
    let public = s.create_object(&data(false)).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let private = s.create_object(&data(true)).unwrap();
    let all = s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    assert!(all.contains(&public) && all.contains(&private));
    s.logout().unwrap();
    let visible = s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    assert_eq!(
        visible,
        vec![public],
        "private objects are invisible before login"
    );
    assert!(s
        .find_objects(&[Attribute::Label(b"secret".to_vec())])
        .unwrap()
        .is_empty());

    // Token objects cannot be created in a R/O session.
    let ro = e.ctx.open_ro_session(slot).unwrap();
    assert_eq!(
        rv_err(ro.create_object(&data(false))),
        RvError::SessionReadOnly
    );
    ro.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(false),
        Attribute::Private(false),
    ])
    .unwrap();
}

#[test]
fn copy_and_destroy() {
    let e = env();
    let slot = e.user_token("copy");
    let s = e.user_session(slot);
    let key = s.create_object(&aes_template(&[9u8; 32], "orig")).unwrap();
    let copy = s
        .copy_object(
            key,
            &[Attribute::Label(b"copy".to_vec()), Attribute::Token(false)],
        )
        .unwrap();
    assert_ne!(copy, key);
    assert_eq!(attr_bytes(&s, copy, CKA_LABEL), b"copy");
    assert_eq!(attr_bytes(&s, copy, CKA_VALUE), vec![9u8; 32]);
    assert_eq!(attr_bytes(&s, copy, CKA_ID), attr_bytes(&s, key, CKA_ID));
    assert!(!attr_bool(&s, copy, CKA_TOKEN));
    assert_eq!(
        attr_bytes(&s, key, CKA_LABEL),
        b"orig",
        "original unchanged"
    );
    let sensitive = s.copy_object(key, &[Attribute::Sensitive(true)]).unwrap();
    assert_eq!(
        get_attr(s.handle(), sensitive.handle(), CKA_VALUE),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    let r = rv_err(s.copy_object(sensitive, &[Attribute::Sensitive(false)]));
    assert!(
        matches!(
            r,
            RvError::AttributeReadOnly | RvError::TemplateInconsistent
        ),
        "{r:?}"
    );
    s.destroy_object(copy).unwrap();
    assert_eq!(rv_err(s.destroy_object(copy)), RvError::ObjectHandleInvalid);
    assert_eq!(attr_bytes(&s, key, CKA_VALUE), vec![9u8; 32]);

    // Session objects die with their session; handles stay valid across sessions otherwise.
    let s2 = e.user_session(slot);
    let tmp = s2
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(false),
            Attribute::Value(vec![1]),
        ])
        .unwrap();
    assert_eq!(
        attr_bytes(&s, tmp, CKA_VALUE),
        vec![1],
        "session objects are visible to all sessions"
    );
    assert_eq!(attr_bytes(&s2, key, CKA_LABEL), b"orig");
    drop(s2);
    assert_eq!(
        get_attr(s.handle(), tmp.handle(), CKA_VALUE),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
}

/// C_FindObjects answers from indexes by label, id and class: they must follow every
/// change of those attributes, destruction, and mixed templates (indexed attributes
/// together with others), for token and session objects alike.
#[test]
fn find_by_label_id_and_class_follows_changes() {
    let s = session("index");
    let mk = |i: u8, token: bool| {
        s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(token),
            Attribute::Private(true),
            Attribute::Encrypt(i % 2 == 0),
            Attribute::Label(format!("k{i}").into_bytes()),
            Attribute::Id(vec![0xd0, i]),
            Attribute::Value(vec![i; 16]),
        ])
        .unwrap()
    };
    let hs: Vec<ObjectHandle> = (0..40).map(|i| mk(i, i < 20)).collect();
    let data = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"k3".to_vec()),
        ])
        .unwrap();
    let find = |t: &[Attribute]| {
        let mut v = s.find_objects(t).unwrap();
        v.sort_by_key(|h| h.handle());
        v
    };
    assert_eq!(find(&[Attribute::Id(vec![0xd0, 7])]), vec![hs[7]]);
    assert_eq!(find(&[Attribute::Label(b"k3".to_vec())]), vec![hs[3], data]);
    assert_eq!(
        find(&[
            Attribute::Label(b"k3".to_vec()),
            Attribute::Class(ObjectClass::SECRET_KEY)
        ]),
        vec![hs[3]]
    );
    assert_eq!(
        find(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(b"k3".to_vec())
        ]),
        vec![data]
    );
    // An indexed attribute with one the object must be asked about.
    assert_eq!(
        find(&[Attribute::Label(b"k4".to_vec()), Attribute::Encrypt(true)]),
        vec![hs[4]]
    );
    assert!(find(&[Attribute::Label(b"k5".to_vec()), Attribute::Encrypt(true)]).is_empty());
    let even: Vec<ObjectHandle> = hs.iter().step_by(2).copied().collect();
    let mut got = find(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Encrypt(true),
    ]);
    got.retain(|h| hs.contains(h));
    assert_eq!(got, even);
    // Relabel and re-id a token key and a session key.
    for i in [2usize, 30] {
        s.update_attributes(
            hs[i],
            &[
                Attribute::Label(format!("moved{i}").into_bytes()),
                Attribute::Id(vec![0xee, i as u8]),
            ],
        )
        .unwrap();
        assert!(find(&[Attribute::Label(format!("k{i}").into_bytes())]).is_empty());
        assert!(find(&[Attribute::Id(vec![0xd0, i as u8])]).is_empty());
        assert_eq!(
            find(&[Attribute::Label(format!("moved{i}").into_bytes())]),
            vec![hs[i]]
        );
        assert_eq!(find(&[Attribute::Id(vec![0xee, i as u8])]), vec![hs[i]]);
    }
    // Destroyed objects leave every index.
    s.destroy_object(hs[7]).unwrap();
    s.destroy_object(hs[33]).unwrap();
    assert!(find(&[Attribute::Id(vec![0xd0, 7])]).is_empty());
    assert!(find(&[Attribute::Label(b"k33".to_vec())]).is_empty());
    let all = find(&[Attribute::Class(ObjectClass::SECRET_KEY)]);
    assert_eq!(all.iter().filter(|h| hs.contains(h)).count(), 38);
    // A value of the wrong size for CKA_CLASS matches nothing.
    assert!(s
        .find_objects(&[Attribute::Label(b"k3".to_vec()), Attribute::Id(vec![])])
        .unwrap()
        .is_empty());
    // Private objects disappear from the indexes' answers after logout.
    s.logout().unwrap();
    assert!(find(&[Attribute::Label(b"k4".to_vec())]).is_empty());
    assert_eq!(find(&[Attribute::Label(b"k3".to_vec())]), vec![data]);
}
