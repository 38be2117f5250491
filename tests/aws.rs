//! The AWS KMS backend against a KMS emulator (LocalStack) on loopback, through the
//! built module as an application loads it. Skipped (with a "skipped: no emulator"
//! line) when AWS_ENDPOINT_URL is unset; scripts/test.sh starts LocalStack and sets it.
//!
//! KMS state is checked independently with boto3 from the LocalStack virtualenv, and
//! signatures with openssl against GetPublicKey's key.

mod common;

use common::kms::*;
use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const CKA_P11KMS_KEY_ARN: CK_ULONG = CKA_VENDOR_DEFINED | 0x504B_0001;
use cryptoki_sys::{CKA_VENDOR_DEFINED, CK_ULONG};

fn endpoint() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Skips without an emulator; else holds `serial()` for the test: the tests count
/// `kms call:` lines in one shared log, so they run one at a time.
macro_rules! need_emulator {
    () => {
        if endpoint().is_none() {
            println!("skipped: no emulator (AWS_ENDPOINT_URL unset)");
            return;
        }
        let _serial = serial();
    };
}

/// Run Python with a boto3 KMS client `k`; returns stdout (trimmed).
fn boto(code: &str) -> String {
    let venv = std::env::var("P11KMS_LOCALSTACK_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/p11kms/localstack-venv",
            std::env::var("HOME").unwrap()
        )
    });
    let script = format!(
        "import boto3, json, sys\nk = boto3.client('kms', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n",
        endpoint().unwrap()
    );
    let out = Command::new(format!("{venv}/bin/python"))
        .arg("-c")
        .arg(script)
        .output()
        .expect("python from the LocalStack venv");
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Aws {
    ctx: Pkcs11,
    dir: PathBuf,
    prefix: String,
    slot: Slot,
}

fn config_text(dir: &Path, prefix: &str, kek: &str, log: &str) -> String {
    format!(
        "{}region = \"us-east-1\"\nkek = \"{kek}\"\nalias_prefix = \"{prefix}\"\nstore = \"{}\"\n",
        config_head(dir, log, "aws"),
        dir.join("aws.sqlite").display()
    )
}

static ENV: OnceLock<Aws> = OnceLock::new();

fn aws() -> &'static Aws {
    ENV.get_or_init(|| {
        let dir = kept_dir();
        // Unique per run (the temp dir's random name): KMS state outlives the run.
        let run: String = dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let prefix = format!("alias/p11kms-test/{run}/");
        let kek_alias = format!("alias/p11kms-test-kek-{run}");
        boto(&format!(
            "kid = k.create_key(KeySpec='SYMMETRIC_DEFAULT', KeyUsage='ENCRYPT_DECRYPT')['KeyMetadata']['KeyId']\nk.create_alias(AliasName='{kek_alias}', TargetKeyId=kid)"
        ));
        std::fs::write(
            dir.join("child.toml"),
            config_text(&dir, &prefix, &kek_alias, "child.log"),
        )
        .unwrap();
        let config = config_text(&dir, &prefix, &kek_alias, "module.log");
        let (ctx, slot) = setup_token(&dir, &config, "aws");
        Aws {
            ctx,
            dir,
            prefix,
            slot,
        }
    })
}

fn session() -> Session {
    let a = aws();
    user_session(&a.ctx, a.slot)
}

/// `kms call:` lines in a log file, per operation name.
fn kms_calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once("kms call: ")
                .map(|(_, op)| op.trim().to_string())
        })
        .collect()
}

fn count(calls: &[String], op: &str) -> usize {
    calls.iter().filter(|c| *c == op).count()
}

fn module_log() -> PathBuf {
    aws().dir.join("module.log")
}

fn gen_pair(
    s: &Session,
    mech: Mechanism,
    label: &str,
    id: &[u8],
    extra_pub: Vec<Attribute>,
    extra_priv: Vec<Attribute>,
) -> (ObjectHandle, ObjectHandle) {
    let (pub_t, priv_t) = pair_templates(label, id, extra_pub, extra_priv);
    s.generate_key_pair(&mech, &pub_t, &priv_t).unwrap()
}

fn arn_of(s: &Session, h: ObjectHandle) -> String {
    vendor(s, h, CKA_P11KMS_KEY_ARN)
}

/// GetPublicKey's DER SPKI, via boto3 (independent of the module).
fn spki_of(arn: &str) -> Vec<u8> {
    let h = boto(&format!(
        "print(k.get_public_key(KeyId='{arn}')['PublicKey'].hex())"
    ));
    hex(&h)
}

#[test]
fn ec_keygen_creates_kms_key_and_signs_with_one_call() {
    need_emulator!();
    let s = session();
    let params = hex("06082a8648ce3d030107");
    let (ph, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "ec-one",
        &[0xec, 1],
        vec![Attribute::EcParams(params.clone()), Attribute::Verify(true)],
        vec![Attribute::Sign(true)],
    );
    let arn = arn_of(&s, sh);
    assert_eq!(arn, arn_of(&s, ph));
    // The alias exists in KMS and names the key.
    let target = boto(&format!(
        "print([a['TargetKeyId'] for a in [a for p in k.get_paginator('list_aliases').paginate() for a in p['Aliases']] if a['AliasName'] == '{}ec-one'][0])",
        aws().prefix
    ));
    assert!(arn.ends_with(&target), "{arn} vs {target}");
    let tags = boto(&format!("print(sorted((t['TagKey'], t['TagValue']) for t in k.list_resource_tags(KeyId='{arn}')['Tags']))"));
    assert!(tags.contains("'p11kms:id', 'ec01'"), "{tags}");
    assert!(tags.contains("'p11kms:label', 'ec-one'"), "{tags}");
    // Found again by label, with the standard attributes.
    assert_eq!(find_one(&s, ObjectClass::PRIVATE_KEY, "ec-one"), sh);
    let attrs = s
        .get_attributes(
            sh,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Id,
                AttributeType::EcParams,
            ],
        )
        .unwrap();
    assert_eq!(attrs[0], Attribute::Sensitive(true));
    assert_eq!(attrs[1], Attribute::Extractable(false));
    assert_eq!(attrs[2], Attribute::Id(vec![0xec, 1]));
    assert_eq!(attrs[3], Attribute::EcParams(params.clone()));

    let spki = spki_of(&arn);
    let msg = b"signed by a KMS key through PKCS#11";
    let before = count(&kms_calls(&module_log()), "Sign");
    let sig = s.sign(&Mechanism::EcdsaSha256, sh, msg).unwrap();
    assert_eq!(
        count(&kms_calls(&module_log()), "Sign"),
        before + 1,
        "one Sign per C_Sign"
    );
    assert_eq!(sig.len(), 64);
    assert!(openssl_verify_spki(
        &spki,
        "sha256",
        msg,
        &ecdsa_to_der(&sig)
    ));
    // Verify is local: no KMS call.
    let n = kms_calls(&module_log()).len();
    s.verify(&Mechanism::EcdsaSha256, ph, msg, &sig).unwrap();
    assert_eq!(kms_calls(&module_log()).len(), n, "verify made a KMS call");
    // Raw CKM_ECDSA with a digest of another length (SHA-1, SHA-512): adapted like ECDSA.
    for d in [sha("sha1", msg), sha("sha512", msg)] {
        let sig = s.sign(&Mechanism::Ecdsa, sh, &d).unwrap();
        s.verify(&Mechanism::Ecdsa, ph, &d, &sig).unwrap();
    }
    // Multi-part: hashed locally, one Sign at the end.
    let before = count(&kms_calls(&module_log()), "Sign");
    s.sign_init(&Mechanism::EcdsaSha384, sh).unwrap();
    s.sign_update(b"part one, ").unwrap();
    s.sign_update(b"part two").unwrap();
    let sig = s.sign_final().unwrap();
    assert_eq!(count(&kms_calls(&module_log()), "Sign"), before + 1);
    assert!(openssl_verify_spki(
        &spki,
        "sha384",
        b"part one, part two",
        &ecdsa_to_der(&sig)
    ));
}

#[test]
fn rsa_pkcs1_and_pss_signatures_verify_with_openssl() {
    need_emulator!();
    let s = session();
    let (ph, sh) = gen_pair(
        &s,
        Mechanism::RsaPkcsKeyPairGen,
        "rsa-sign",
        &[0x5a, 1],
        vec![
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
        ],
        vec![Attribute::Sign(true)],
    );
    let spki = spki_of(&arn_of(&s, sh));
    assert_eq!(
        s.get_attributes(ph, &[AttributeType::PublicKeyInfo])
            .unwrap()[0],
        Attribute::PublicKeyInfo(spki.clone()),
        "CKA_PUBLIC_KEY_INFO is KMS's SPKI byte for byte"
    );
    let msg = b"RSA through KMS";
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, sh, msg).unwrap();
    assert!(openssl_rsa_verify(&spki, "sha256", msg, &sig, false));
    s.verify(&Mechanism::Sha256RsaPkcs, ph, msg, &sig).unwrap();
    // CKM_RSA_PKCS over a caller-built DigestInfo.
    let di = digest_info("sha384", &sha("sha384", msg));
    let sig = s.sign(&Mechanism::RsaPkcs, sh, &di).unwrap();
    assert!(openssl_rsa_verify(&spki, "sha384", msg, &sig, false));
    // PSS, salt = hash length.
    let pss = PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    };
    let sig = s.sign(&Mechanism::Sha256RsaPkcsPss(pss), sh, msg).unwrap();
    assert!(openssl_rsa_verify(&spki, "sha256", msg, &sig, true));
    let sig = s
        .sign(&Mechanism::RsaPkcsPss(pss), sh, &sha("sha256", msg))
        .unwrap();
    assert!(openssl_rsa_verify(&spki, "sha256", msg, &sig, true));
    // A salt KMS cannot use is refused at C_SignInit.
    let bad = PkcsPssParams {
        s_len: 20.into(),
        ..pss
    };
    let rv = rv_err(s.sign_init(&Mechanism::Sha256RsaPkcsPss(bad), sh));
    assert_eq!(rv, cryptoki::error::RvError::MechanismParamInvalid);
}

#[test]
fn oaep_decrypt_of_locally_encrypted_data() {
    need_emulator!();
    let s = session();
    let (ph, sh) = gen_pair(
        &s,
        Mechanism::RsaPkcsKeyPairGen,
        "rsa-dec",
        &[0xde, 1],
        vec![
            Attribute::ModulusBits(2048.into()),
            Attribute::Encrypt(true),
        ],
        vec![Attribute::Decrypt(true)],
    );
    let arn = arn_of(&s, sh);
    assert_eq!(
        boto(&format!(
            "print(k.describe_key(KeyId='{arn}')['KeyMetadata']['KeyUsage'])"
        )),
        "ENCRYPT_DECRYPT"
    );
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    );
    let n = kms_calls(&module_log()).len();
    let ct = s
        .encrypt(&Mechanism::RsaPkcsOaep(oaep), ph, b"a secret message")
        .unwrap();
    assert_eq!(kms_calls(&module_log()).len(), n, "encrypt is local");
    let before = count(&kms_calls(&module_log()), "Decrypt");
    let pt = s.decrypt(&Mechanism::RsaPkcsOaep(oaep), sh, &ct).unwrap();
    assert_eq!(pt, b"a secret message");
    assert_eq!(count(&kms_calls(&module_log()), "Decrypt"), before + 1);
    // (RSAES_OAEP_SHA_1 is an emulator gap in LocalStack: not tested here.)
    let labelled = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::data_specified(b"L"),
    );
    let rv = rv_err(s.decrypt(&Mechanism::RsaPkcsOaep(labelled), sh, &ct));
    assert_eq!(rv, cryptoki::error::RvError::MechanismParamInvalid);
}

#[test]
fn data_keys_are_kms_wrapped_and_used_locally() {
    need_emulator!();
    let s = session();
    let before = kms_calls(&module_log());
    let k = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"dek".to_vec()),
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let after = kms_calls(&module_log());
    assert_eq!(
        count(&after, "GenerateDataKey"),
        count(&before, "GenerateDataKey") + 1
    );
    let value = match &s.get_attributes(k, &[AttributeType::Value]).unwrap()[0] {
        Attribute::Value(v) => v.clone(),
        o => panic!("{o:?}"),
    };
    assert_eq!(value.len(), 32);
    // Imported value: wrapped with Encrypt.
    let imported_value = [0x5cu8; 32];
    let n = count(&kms_calls(&module_log()), "Encrypt");
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Label(b"imported".to_vec()),
        Attribute::Value(imported_value.to_vec()),
    ])
    .unwrap();
    assert_eq!(count(&kms_calls(&module_log()), "Encrypt"), n + 1);

    // AES-GCM round trip, no KMS call per operation; 16 KiB throughput.
    let iv = [7u8; 12];
    let data = vec![0xabu8; 16 * 1024];
    let calls = kms_calls(&module_log()).len();
    let rounds = 500;
    let t = std::time::Instant::now();
    let mut ct = Vec::new();
    for _ in 0..rounds {
        let mut iv = iv;
        let m = Mechanism::AesGcm(
            cryptoki::mechanism::aead::GcmParams::new(&mut iv, b"aad", 128.into()).unwrap(),
        );
        ct = s.encrypt(&m, k, &data).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "AES-GCM 16 KiB encrypt on a KMS-wrapped DEK: {:.0} ops/s, {:.1} MiB/s",
        rounds as f64 / secs,
        rounds as f64 * 16.0 / 1024.0 / secs
    );
    let mut iv2 = iv;
    let m = Mechanism::AesGcm(
        cryptoki::mechanism::aead::GcmParams::new(&mut iv2, b"aad", 128.into()).unwrap(),
    );
    assert_eq!(s.decrypt(&m, k, &ct).unwrap(), data);
    assert_eq!(
        kms_calls(&module_log()).len(),
        calls,
        "KMS call during AES-GCM"
    );

    // The store file holds no plaintext key bytes.
    let mut bytes = std::fs::read(aws().dir.join("aws.sqlite")).unwrap();
    if let Ok(w) = std::fs::read(aws().dir.join("aws.sqlite-wal")) {
        bytes.extend(w);
    }
    assert!(!contains(&bytes, &value), "generated DEK in the store file");
    assert!(
        !contains(&bytes, &imported_value),
        "imported key in the store file"
    );
}

/// Re-runs this binary as a second process for `child_process`.
fn run_child(args: &[(&str, String)]) -> String {
    let mut envs = vec![
        ("P11KMS_CONF", aws().dir.join("child.toml").into()),
        ("P11KMS_AWS_CHILD", "1".into()),
    ];
    envs.extend(args.iter().map(|(k, v)| (*k, v.into())));
    run_self("child_process", "child", &envs, &[], None)
}

/// The second process: sees the same objects with the same ids; with a current cached
/// listing, C_Initialize..C_FindObjects make no KMS call; one Sign per sign.
#[test]
fn child_process() {
    if std::env::var("P11KMS_AWS_CHILD").is_err() {
        return;
    }
    let conf = PathBuf::from(std::env::var("P11KMS_CONF").unwrap());
    let log = conf.with_file_name("child.log");
    let _ = std::fs::remove_file(&log);
    let (_ctx, s) = child_token(None);
    let label = std::env::var("CHILD_LABEL").unwrap();
    let v = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.into_bytes()),
        ])
        .unwrap();
    assert_eq!(v.len(), 1);
    let calls = kms_calls(&log);
    println!("child: kms calls through C_FindObjects: {}", calls.len());
    println!("child: id {}", hex_str(&id_of(&s, v[0])));
    let t = std::time::Instant::now();
    let sig = s
        .sign(&Mechanism::EcdsaSha256, v[0], b"from the child")
        .unwrap();
    println!("child: sign {} us", t.elapsed().as_micros());
    assert_eq!(sig.len(), 64);
    let after = kms_calls(&log);
    println!("child: kms calls for one sign: {:?}", &after[calls.len()..]);
    // A DEK from the parent: one Decrypt on first use, then none.
    let dek = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"child-dek".to_vec()),
        ])
        .unwrap();
    if let Some(k) = dek.first() {
        // Its attributes (what keytool, NSS and pkcs11-tool read of every key they
        // list) are no use of the key: no KMS call.
        let n = kms_calls(&log).len();
        s.get_attributes(
            *k,
            &[
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::ValueLen,
                AttributeType::Sensitive,
                AttributeType::Value,
            ],
        )
        .unwrap();
        println!(
            "child: kms calls for the DEK's attributes: {:?}",
            &kms_calls(&log)[n..]
        );
        let n = kms_calls(&log).len();
        for _ in 0..3 {
            s.encrypt(&Mechanism::AesCbcPad([1u8; 16]), *k, b"x")
                .unwrap();
        }
        println!(
            "child: kms calls for 3 uses of a DEK: {:?}",
            &kms_calls(&log)[n..]
        );
    }
}

#[test]
fn second_process_sees_same_objects_without_kms_calls() {
    need_emulator!();
    let s = session();
    let (_, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "shared-ec",
        &[0x51, 0x51],
        vec![Attribute::EcParams(hex("06082a8648ce3d030107"))],
        vec![Attribute::Sign(true)],
    );
    let _ = sh;
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(true),
            Attribute::Label(b"child-dek".to_vec()),
            // 32 bytes: LocalStack ignores GenerateDataKey's NumberOfBytes (always 32).
            Attribute::ValueLen(32.into()),
        ],
    )
    .unwrap();
    // The listing must have been fetched once (a token that only ever created keys has
    // not looked for others'): without this the test passed only after other tests.
    s.find_objects(&[]).unwrap();
    let out = run_child(&[("CHILD_LABEL", "shared-ec".to_string())]);
    print!("{out}");
    assert!(
        out.contains("child: kms calls through C_FindObjects: 0"),
        "{out}"
    );
    assert!(out.contains("child: id 5151"), "{out}");
    assert!(
        out.contains("child: kms calls for one sign: [\"Sign\"]"),
        "{out}"
    );
    assert!(
        out.contains("child: kms calls for the DEK's attributes: []"),
        "{out}"
    );
    assert!(
        out.contains("child: kms calls for 3 uses of a DEK: [\"Decrypt\"]"),
        "{out}"
    );
}

#[test]
fn destroy_schedules_deletion_and_objects_disappear() {
    need_emulator!();
    let s = session();
    let (ph, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "doomed",
        &[0xdd],
        vec![Attribute::EcParams(hex("06052b81040022"))],
        vec![],
    );
    let arn = arn_of(&s, sh);
    // The public half alone cannot be destroyed.
    assert_eq!(
        rv_err(s.destroy_object(ph)),
        cryptoki::error::RvError::ActionProhibited
    );
    s.destroy_object(sh).unwrap();
    assert_eq!(
        boto(&format!(
            "print(k.describe_key(KeyId='{arn}')['KeyMetadata']['KeyState'])"
        )),
        "PendingDeletion"
    );
    let left = s
        .find_objects(&[Attribute::Label(b"doomed".to_vec())])
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// C_DestroyObject of keys removed outside the module while their objects are cached:
/// one scheduled for deletion already, one whose alias was deleted. Both succeed (what
/// C_DestroyObject asks for holds, DescribeKey confirms it), the objects go, and the
/// key whose alias went is scheduled for deletion too.
#[test]
fn destroy_of_keys_removed_elsewhere_succeeds() {
    need_emulator!();
    let s = session();
    let gen = |label: &str, id: u8| {
        let (_, sh) = gen_pair(
            &s,
            Mechanism::EccKeyPairGen,
            label,
            &[0xde, id],
            vec![Attribute::EcParams(hex("06082a8648ce3d030107"))],
            vec![],
        );
        (sh, arn_of(&s, sh))
    };
    let (pending, pending_arn) = gen("pending-elsewhere", 1);
    boto(&format!(
        "k.schedule_key_deletion(KeyId='{pending_arn}', PendingWindowInDays=7)"
    ));
    let (unaliased, unaliased_arn) = gen("unaliased-elsewhere", 2);
    boto(&format!(
        "k.delete_alias(AliasName='{}unaliased-elsewhere')",
        aws().prefix
    ));
    s.destroy_object(pending).unwrap();
    s.destroy_object(unaliased).unwrap();
    for (label, arn) in [
        ("pending-elsewhere", &pending_arn),
        ("unaliased-elsewhere", &unaliased_arn),
    ] {
        let left = s
            .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
            .unwrap();
        assert!(left.is_empty(), "{label}: {left:?}");
        assert_eq!(
            boto(&format!(
                "print(k.describe_key(KeyId='{arn}')['KeyMetadata']['KeyState'])"
            )),
            "PendingDeletion",
            "{label}"
        );
    }
}

#[test]
fn disabled_key_is_key_function_not_permitted() {
    need_emulator!();
    let s = session();
    let (_, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "disabled",
        &[0xd1],
        vec![Attribute::EcParams(hex("06082a8648ce3d030107"))],
        vec![],
    );
    let arn = arn_of(&s, sh);
    boto(&format!("k.disable_key(KeyId='{arn}')"));
    let rv = rv_err(s.sign(&Mechanism::EcdsaSha256, sh, b"x"));
    assert_eq!(rv, cryptoki::error::RvError::KeyFunctionNotPermitted);
    let l = std::fs::read_to_string(module_log()).unwrap();
    assert!(
        l.contains("kms Sign failed (key disabled or pending deletion): DisabledException"),
        "{l}"
    );
    boto(&format!("k.enable_key(KeyId='{arn}')"));
    // Enabled again: signing works, nothing remembered the failure.
    assert_eq!(s.sign(&Mechanism::EcdsaSha256, sh, b"x").unwrap().len(), 64);
}

/// Latency of one ECDSA P-256 sign through the module against the same KMS Sign made
/// directly with aws-sdk-kms, in the same run (medians of 30).
#[test]
fn sign_latency_module_vs_sdk() {
    need_emulator!();
    let s = session();
    let (_, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "latency",
        &[0x1a],
        vec![Attribute::EcParams(hex("06082a8648ce3d030107"))],
        vec![],
    );
    let arn = arn_of(&s, sh);
    let digest = sha("sha256", b"latency");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        aws_sdk_kms::Client::new(&conf)
    });
    let direct = || {
        rt.block_on(
            client
                .sign()
                .key_id(&arn)
                .message(aws_sdk_kms::primitives::Blob::new(digest.clone()))
                .message_type(aws_sdk_kms::types::MessageType::Digest)
                .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
                .send(),
        )
        .unwrap();
    };
    let sdk = median_of_30_us(&mut || direct());
    let module = median_of_30_us(&mut || {
        s.sign(&Mechanism::Ecdsa, sh, &digest).unwrap();
    });
    println!(
        "sign latency (median of 30): module {module} us, aws-sdk-kms direct {sdk} us, ratio {:.2}",
        module as f64 / sdk as f64
    );
}

// ---- error paths ---------------------------------------------------------------------

/// A loopback port that forwards to the emulator only once `live` is set; before that it
/// accepts connections and never answers (a hung endpoint). Not listening at all (port
/// unused) is the other way of being unreachable.
struct Forwarder {
    live: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn upstream_addr() -> String {
    endpoint()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

fn start_forwarder(port: u16) -> Forwarder {
    use std::sync::atomic::{AtomicBool, Ordering};
    let live = std::sync::Arc::new(AtomicBool::new(false));
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let up = upstream_addr();
    let flag = live.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            if !flag.load(Ordering::SeqCst) {
                held.push(c); // never answered
                continue;
            }
            let Ok(u) = std::net::TcpStream::connect(&up) else {
                continue;
            };
            let (mut c2, mut u2) = (c.try_clone().unwrap(), u.try_clone().unwrap());
            let (mut c, mut u) = (c, u);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut u);
                let _ = u.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Forwarder { live }
}

/// A token config on the parent's store (PINs, cached listing) with another endpoint.
fn error_config(endpoint_line: &str, log: &str) -> PathBuf {
    let a = aws();
    let base = std::fs::read_to_string(a.dir.join("child.toml")).unwrap();
    let text = base.replace("child.log", log).replace(
        "[[token]]\n",
        &format!("[[token]]\n{endpoint_line}timeout_secs = 2\nrefresh_secs = 1\n"),
    );
    let path = a.dir.join(format!("{log}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn run_error_child(mode: &str, conf: &Path, envs: &[(&str, String)], clear: &[&str]) -> String {
    let mut all = vec![
        ("P11KMS_CONF", conf.into()),
        ("P11KMS_AWS_ERROR_CHILD", mode.into()),
    ];
    all.extend(envs.iter().map(|(k, v)| (*k, v.into())));
    let what = format!("error child {mode}");
    run_self("error_child", &what, &all, clear, Some("1 passed"))
}

/// One bounded step: its result and the check that it took less than timeout + 5 s.
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let r = f();
    let secs = t.elapsed().as_secs_f64();
    println!("error child: {what}: {secs:.2} s");
    assert!(secs < 7.0, "{what} took {secs:.1} s (timeout_secs = 2)");
    r
}

/// The child of the error-path tests (P11KMS_AWS_ERROR_CHILD names the case).
#[test]
fn error_child() {
    let Ok(mode) = std::env::var("P11KMS_AWS_ERROR_CHILD") else {
        return;
    };
    let conf = PathBuf::from(std::env::var("P11KMS_CONF").unwrap());
    let log = PathBuf::from(
        std::fs::read_to_string(&conf)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("log_file = "))
            .unwrap()
            .trim_matches('"'),
    );
    let _ = std::fs::remove_file(&log);
    let label = std::env::var("CHILD_LABEL").unwrap();
    let ctx = Pkcs11::new(p11kms_path()).unwrap();
    bounded("C_Initialize", || {
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap()
    });
    let slot = ctx.get_all_slots().unwrap()[0];
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    // A stale listing (refresh_secs = 1): C_FindObjects tries KMS, fails, keeps the cache.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let find = |s: &Session| {
        s.find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.clone().into_bytes()),
        ])
        .unwrap()
    };
    let v = bounded("C_FindObjects", || find(&s));
    assert_eq!(v.len(), 1, "the cached listing stays in use");
    let key = v[0];
    let sign = |s: &Session| s.sign(&Mechanism::EcdsaSha256, key, b"error paths");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    match mode.as_str() {
        "unreachable" => {
            let port: u16 = std::env::var("DEAD_PORT").unwrap().parse().unwrap();
            // Nothing listens: connection refused (after the SDK's retries).
            let rv = rv_err(bounded("C_Sign, port closed", || sign(&s)));
            assert_eq!(rv, cryptoki::error::RvError::DeviceError);
            // The log names the cause: refused, or (when the SDK's retries with backoff
            // outlast timeout_secs, as on a loaded machine) the timeout.
            let first = logged();
            assert!(
                first.contains("kms Sign failed (unreachable)")
                    || first.contains("kms Sign failed (timeout)"),
                "{first}"
            );
            assert!(logged().contains("KMS key listing not refreshed"));
            // Something listens and never answers: the timeout ends the call.
            let fwd = start_forwarder(port);
            let rv = rv_err(bounded("C_Sign, endpoint hangs", || sign(&s)));
            assert_eq!(rv, cryptoki::error::RvError::DeviceError);
            assert!(logged().contains("timeout"), "{}", logged());
            // KMS is back: the same token works again, nothing cached the failure.
            fwd.live.store(true, std::sync::atomic::Ordering::SeqCst);
            let sig = bounded("C_Sign, endpoint back", || sign(&s)).unwrap();
            assert_eq!(sig.len(), 64);
            std::thread::sleep(std::time::Duration::from_millis(1100));
            let n = count(&kms_calls(&log), "ListAliases");
            assert_eq!(find(&s).len(), 1);
            // Refreshed (one ListAliases per page: LocalStack may hold many aliases).
            assert!(
                count(&kms_calls(&log), "ListAliases") > n,
                "listing refreshed"
            );
        }
        "credentials" => {
            let rv = rv_err(bounded("C_Sign, no credentials", || sign(&s)));
            assert_eq!(rv, cryptoki::error::RvError::DeviceError);
            let l = logged();
            assert!(l.contains("kms Sign failed (credentials)"), "{l}");
        }
        m => panic!("unknown mode {m}"),
    }
    println!("error child: log\n{}", logged());
}

fn error_key(s: &Session, label: &str, id: u8) -> (ObjectHandle, String) {
    let (_, sh) = gen_pair(
        s,
        Mechanism::EccKeyPairGen,
        label,
        &[0xe0, id],
        vec![Attribute::EcParams(hex("06082a8648ce3d030107"))],
        vec![],
    );
    let arn = arn_of(s, sh);
    (sh, arn)
}

#[test]
fn unreachable_endpoint_fails_within_timeout_and_recovers() {
    need_emulator!();
    let s = session();
    error_key(&s, "err-dead", 1);
    let port = free_port();
    let conf = error_config(
        &format!("endpoint = \"http://127.0.0.1:{port}\"\n"),
        "dead.log",
    );
    let out = run_error_child(
        "unreachable",
        &conf,
        &[
            ("CHILD_LABEL", "err-dead".into()),
            ("DEAD_PORT", port.to_string()),
        ],
        &[],
    );
    print!("{out}");
}

#[test]
fn missing_credentials_are_device_error_naming_credentials() {
    need_emulator!();
    let s = session();
    error_key(&s, "err-creds", 2);
    let conf = error_config("", "nocreds.log");
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let out = run_error_child(
        "credentials",
        &conf,
        &[
            ("CHILD_LABEL", "err-creds".into()),
            ("HOME", home.path().display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", empty.display().to_string()),
            ("AWS_CONFIG_FILE", empty.display().to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ],
        &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ],
    );
    print!("{out}");
}

#[test]
fn pending_deletion_key_is_key_function_not_permitted_until_cancelled() {
    need_emulator!();
    let s = session();
    let (sh, arn) = error_key(&s, "err-pending", 3);
    boto(&format!(
        "k.schedule_key_deletion(KeyId='{arn}', PendingWindowInDays=7)"
    ));
    let rv = rv_err(s.sign(&Mechanism::EcdsaSha256, sh, b"x"));
    assert_eq!(rv, cryptoki::error::RvError::KeyFunctionNotPermitted);
    // Cancelling leaves the key disabled (as in AWS); enabling it makes it usable again.
    boto(&format!(
        "k.cancel_key_deletion(KeyId='{arn}')\nk.enable_key(KeyId='{arn}')"
    ));
    assert_eq!(s.sign(&Mechanism::EcdsaSha256, sh, b"x").unwrap().len(), 64);
}

/// secp256k1: C_GenerateKeyPair with its OID makes an ECC_SECG_P256K1 key; CKM_ECDSA and
/// CKM_ECDSA_SHA256 sign through KMS; r||s verifies locally and with openssl against
/// GetPublicKey's SPKI; a fresh listing shows the key.
#[test]
fn secp256k1_keygen_signs_through_kms() {
    need_emulator!();
    let s = session();
    let params = hex("06052b8104000a");
    let (ph, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "k256",
        &[0x25, 0x6b],
        vec![Attribute::EcParams(params.clone()), Attribute::Verify(true)],
        vec![Attribute::Sign(true)],
    );
    let arn = arn_of(&s, sh);
    assert_eq!(
        boto(&format!(
            "print(k.describe_key(KeyId='{arn}')['KeyMetadata']['KeySpec'])"
        )),
        "ECC_SECG_P256K1"
    );
    let attrs = s
        .get_attributes(ph, &[AttributeType::EcParams, AttributeType::EcPoint])
        .unwrap();
    assert_eq!(attrs[0], Attribute::EcParams(params.clone()));
    let spki = spki_of(&arn);
    let msg = b"secp256k1 through KMS";
    let sig = s.sign(&Mechanism::EcdsaSha256, sh, msg).unwrap();
    assert_eq!(sig.len(), 64);
    s.verify(&Mechanism::EcdsaSha256, ph, msg, &sig).unwrap();
    assert!(openssl_verify_spki(
        &spki,
        "sha256",
        msg,
        &ecdsa_to_der(&sig)
    ));
    // Raw CKM_ECDSA, checked with openssl pkeyutl over the digest.
    let d = sha("sha256", msg);
    let sig = s.sign(&Mechanism::Ecdsa, sh, &d).unwrap();
    s.verify(&Mechanism::Ecdsa, ph, &d, &sig).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (k, sg, dg) = (
        dir.path().join("k.der"),
        dir.path().join("s"),
        dir.path().join("d"),
    );
    std::fs::write(&k, &spki).unwrap();
    std::fs::write(&sg, ecdsa_to_der(&sig)).unwrap();
    std::fs::write(&dg, &d).unwrap();
    let (ok, out, err) = openssl_status(
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            k.to_str().unwrap(),
            "-sigfile",
            sg.to_str().unwrap(),
            "-in",
            dg.to_str().unwrap(),
        ],
        b"",
    );
    assert!(ok, "{} {err}", String::from_utf8_lossy(&out));
    // A listing fetched from KMS (the child, refresh_secs = 1) shows the key.
    let conf = error_config("", "k256.log");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = run_child_conf(&conf, "k256");
    assert!(out.contains("child: id 256b"), "{out}");
    let calls = kms_calls(&aws().dir.join("k256.log"));
    assert!(count(&calls, "ListAliases") >= 1, "{calls:?}");
}

fn run_child_conf(conf: &Path, label: &str) -> String {
    let envs = [
        ("P11KMS_CONF", conf.into()),
        ("P11KMS_AWS_CHILD", "1".into()),
        ("CHILD_LABEL", label.into()),
    ];
    run_self("child_process", "child", &envs, &[], None)
}

/// NSS (certutil -G) and SunPKCS11 generate a key pair with neither CKA_LABEL nor
/// CKA_ID, then name it with C_SetAttributeValue(CKA_ID) on both halves (and
/// CKA_LABEL for a nickname). On a KMS token the key is aliased by its key id, shows
/// an empty label, and ID and label changes become its `p11kms:id` tag and its alias,
/// seen by another process; nothing else changes, and setting what is already there
/// makes no KMS call.
#[test]
fn unnamed_keygen_then_set_id_and_label_like_nss() {
    need_emulator!();
    let s = session();
    let p256 = hex("06082a8648ce3d030107");
    let (ph, sh) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::EcParams(p256.clone()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let arn = arn_of(&s, sh);
    let key_id = arn.rsplit('/').next().unwrap().to_string();
    let aliases = |key: &str| {
        boto(&format!(
            "print(sorted(a['AliasName'] for a in k.list_aliases(KeyId='{key}')['Aliases']))"
        ))
    };
    assert_eq!(aliases(&key_id), format!("['{}{key_id}']", aws().prefix));
    let label_id = |h| {
        let v = s
            .get_attributes(
                h,
                &[
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::Modifiable,
                ],
            )
            .unwrap();
        (v[0].clone(), v[1].clone(), v[2].clone())
    };
    // CKA_PUBLIC_KEY_INFO is KMS's own SPKI, byte for byte (a listing refresh compares
    // the two to notice a changed key).
    let spki = spki_of(&arn);
    for h in [ph, sh] {
        assert_eq!(
            s.get_attributes(h, &[AttributeType::PublicKeyInfo])
                .unwrap()[0],
            Attribute::PublicKeyInfo(spki.clone())
        );
    }
    for h in [ph, sh] {
        let (l, _, m) = label_id(h);
        assert_eq!(
            l,
            Attribute::Label(vec![]),
            "a key named by its key id has no label"
        );
        assert_eq!(m, Attribute::Modifiable(true));
    }

    // NSS: CKA_ID = SHA-1 of the public value, on the private then the public half.
    let id = vec![0xab; 20];
    let before = kms_calls(&module_log());
    s.update_attributes(sh, &[Attribute::Id(id.clone())])
        .unwrap();
    let mid = kms_calls(&module_log());
    assert_eq!(
        count(&mid, "TagResource") - count(&before, "TagResource"),
        1
    );
    s.update_attributes(ph, &[Attribute::Id(id.clone())])
        .unwrap();
    assert_eq!(
        kms_calls(&module_log()).len(),
        mid.len(),
        "setting the same ID called KMS"
    );
    for h in [ph, sh] {
        assert_eq!(label_id(h).1, Attribute::Id(id.clone()));
    }
    let tags = boto(&format!(
        "print(sorted((t['TagKey'], t['TagValue']) for t in k.list_resource_tags(KeyId='{arn}')['Tags']))"
    ));
    assert!(
        tags.contains(&format!("'p11kms:id', '{}'", "ab".repeat(20))),
        "{tags}"
    );

    // A nickname: the alias moves, both halves follow, handles stay.
    s.update_attributes(sh, &[Attribute::Label(b"nss-named".to_vec())])
        .unwrap();
    assert_eq!(aliases(&key_id), format!("['{}nss-named']", aws().prefix));
    assert_eq!(find_one(&s, ObjectClass::PRIVATE_KEY, "nss-named"), sh);
    assert_eq!(find_one(&s, ObjectClass::PUBLIC_KEY, "nss-named"), ph);
    let msg = b"signed after the rename";
    let sig = s.sign(&Mechanism::EcdsaSha256, sh, msg).unwrap();
    assert!(openssl_verify_spki(
        &spki_of(&arn),
        "sha256",
        msg,
        &ecdsa_to_der(&sig)
    ));

    // Another process sees the new name and ID.
    let out = run_child(&[("CHILD_LABEL", "nss-named".to_string())]);
    assert!(
        out.contains(&format!("child: id {}", "ab".repeat(20))),
        "{out}"
    );

    // Nothing else of a KMS key changes; a label another key has is refused.
    assert_eq!(
        rv_err(s.update_attributes(sh, &[Attribute::Sign(false)])),
        cryptoki::error::RvError::AttributeReadOnly
    );
    gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "nss-taken",
        &[0x7a],
        vec![Attribute::EcParams(p256)],
        vec![Attribute::Sign(true)],
    );
    assert_eq!(
        rv_err(s.update_attributes(ph, &[Attribute::Label(b"nss-taken".to_vec())])),
        cryptoki::error::RvError::AttributeValueInvalid
    );
    assert_eq!(aliases(&key_id), format!("['{}nss-named']", aws().prefix));
    assert_eq!(label_id(sh).0, Attribute::Label(b"nss-named".to_vec()));
}

/// CK_TOKEN_INFO.model names the backend (it said "local" on every token): p11-kit and
/// GnuTLS put it in the token's pkcs11: URI (`model=aws`), NSS and pkcs11-tool list it.
#[test]
fn token_model_names_the_backend() {
    need_emulator!();
    let a = aws();
    assert_eq!(a.ctx.get_token_info(a.slot).unwrap().model(), "aws");
    assert!(a
        .ctx
        .get_slot_info(a.slot)
        .unwrap()
        .slot_description()
        .ends_with("(aws)"));
}

/// A disabled KEK is the token's problem, not the application's key handle: generating
/// a token data key is CKR_DEVICE_ERROR (not CKR_KEY_FUNCTION_NOT_PERMITTED), and works
/// again once the KEK is enabled.
#[test]
fn disabled_kek_is_device_error() {
    need_emulator!();
    let s = session();
    let run: String = aws()
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let kek = format!("alias/p11kms-test-kek-{run}");
    let kid = boto(&format!(
        "print(k.describe_key(KeyId='{kek}')['KeyMetadata']['KeyId'])"
    ));
    let gen = |s: &Session| {
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"kek-disabled".to_vec()),
                Attribute::ValueLen(32.into()),
            ],
        )
    };
    boto(&format!("k.disable_key(KeyId='{kid}')"));
    let rv = rv_err(gen(&s));
    boto(&format!("k.enable_key(KeyId='{kid}')"));
    assert_eq!(rv, cryptoki::error::RvError::DeviceError);
    gen(&s).unwrap();
}
