//! The Google Cloud KMS backend against the Cloud KMS emulator (tests/gcpkms/emulator.py),
//! through the built module as an application loads it. This binary starts its own
//! emulator on a free 127.0.0.1 port (a Python with `cryptography`: P11KMS_GCPKMS_PYTHON,
//! python3, or the LocalStack virtualenv's) and stops it when it exits.
//!
//! Cloud KMS state is checked independently over the emulator's REST API (CryptoKeys,
//! versions, GetPublicKey's PEM); RPCs are counted by the emulator (`/_emulator/calls`),
//! not by the module; signatures are verified with openssl against GetPublicKey's key.
//! Tests that need another configuration re-run this binary as a second process.

mod common;

use common::kms::*;
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use cryptoki_sys::{CKA_VENDOR_DEFINED, CK_ULONG};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CKA_P11KMS_KEY_VERSION: CK_ULONG = CKA_VENDOR_DEFINED | 0x504B_0002;
const CKA_P11KMS_KEY_ALGORITHM: CK_ULONG = CKA_VENDOR_DEFINED | 0x504B_0003;
const CKA_P11KMS_PROTECTION_LEVEL: CK_ULONG = CKA_VENDOR_DEFINED | 0x504B_0004;

const PROJECT_LOC: &str = "projects/p11kms-test/locations/global";
const RING: &str = "projects/p11kms-test/locations/global/keyRings/ring";
const KEK: &str = "projects/p11kms-test/locations/global/keyRings/ring/cryptoKeys/kek";

/// Holds `serial()` for the test: the tests count the emulator's RPCs, so they run one
/// at a time.
macro_rules! serial {
    () => {
        let _serial = serial();
    };
}

// ---- the emulator --------------------------------------------------------------------

struct Emulator {
    port: u16,
    _child: Child,
}

fn python() -> String {
    let mut cands: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("P11KMS_GCPKMS_PYTHON") {
        cands.push(p);
    }
    cands.push("python3".into());
    if let Ok(h) = std::env::var("HOME") {
        cands.push(format!("{h}/.cache/p11kms/localstack-venv/bin/python"));
    }
    for c in cands {
        let ok = Command::new(&c)
            .args(["-c", "import cryptography"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return c;
        }
    }
    panic!("no Python with the `cryptography` package for the Cloud KMS emulator");
}

fn emulator() -> &'static Emulator {
    static EMU: OnceLock<Emulator> = OnceLock::new();
    EMU.get_or_init(|| {
        // In a second process of this binary the parent's emulator is reused.
        if let Some(p) = std::env::var("P11KMS_GCP_TEST_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            let child = Command::new("true").spawn().unwrap();
            return Emulator {
                port: p,
                _child: child,
            };
        }
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gcpkms/emulator.py");
        // A shell that outlives the emulator only while this process lives: the
        // emulator stops when the test binary exits, whatever way it exits.
        let sh = format!(
            "'{}' '{}' --port {port} --generation-delay-ms 100 2>/dev/null & e=$!; \
             trap 'kill $e 2>/dev/null' EXIT; \
             while kill -0 {} 2>/dev/null && kill -0 $e 2>/dev/null; do sleep 0.3; done",
            python(),
            script.display(),
            std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &sh])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let e = Emulator {
            port,
            _child: child,
        };
        let t = Instant::now();
        while http_raw(port, "GET", "/_emulator/calls", "").is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "emulator did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        e
    })
}

fn endpoint() -> String {
    format!("http://127.0.0.1:{}", emulator().port)
}

fn http_raw(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Ok((status, body.to_string()))
}

/// One REST call to the emulator: (HTTP status, JSON body).
fn rest(method: &str, path: &str, body: Value) -> (u16, Value) {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (code, b) = http_raw(emulator().port, method, path, &text).unwrap();
    (code, serde_json::from_str(&b).unwrap_or(Value::Null))
}

fn rest_ok(method: &str, path: &str, body: Value) -> Value {
    let (code, v) = rest(method, path, body);
    assert_eq!(code, 200, "{method} {path}: {v}");
    v
}

/// The emulator's RPC counts since it started.
fn calls() -> HashMap<String, u64> {
    let v = rest_ok("GET", "/_emulator/calls", Value::Null);
    serde_json::from_value(v).unwrap()
}

/// RPCs made since `before`, as (name, count) sorted, zero counts left out.
fn delta(before: &HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = calls()
        .into_iter()
        .map(|(k, n)| {
            let d = n - before.get(&k).copied().unwrap_or(0);
            (k, d)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort();
    v
}

fn d(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    v.sort();
    v
}

fn fault(f: Value) {
    rest_ok("POST", "/_emulator/faults", f);
}

fn clear_faults() {
    rest_ok("DELETE", "/_emulator/faults", Value::Null);
}

/// A CryptoKey made outside the module; returns its name.
fn outside_key(id: &str, purpose: &str, alg: &str, level: &str) -> String {
    let v = rest_ok(
        "POST",
        &format!("/v1/{RING}/cryptoKeys?cryptoKeyId={id}"),
        json!({"purpose": purpose, "versionTemplate": {"algorithm": alg, "protectionLevel": level}}),
    );
    v["name"].as_str().unwrap().to_string()
}

fn wait_enabled(version: &str) {
    let t = Instant::now();
    loop {
        let v = rest_ok("GET", &format!("/v1/{version}"), Value::Null);
        if v["state"] == "ENABLED" {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{version}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GetPublicKey's key as DER SPKI, converted by openssl (independent of the module).
fn emulator_spki(version: &str) -> Vec<u8> {
    let v = rest_ok("GET", &format!("/v1/{version}/publicKey"), Value::Null);
    openssl(
        &["pkey", "-pubin", "-outform", "DER"],
        v["pem"].as_str().unwrap().as_bytes(),
    )
}

// ---- the module ----------------------------------------------------------------------

struct Gcp {
    ctx: Pkcs11,
    dir: PathBuf,
    slot: Slot,
}

/// The token configuration; `extra` is appended to the [[token]] table.
fn config_text(dir: &Path, log: &str, store: &str, extra: &str) -> String {
    format!(
        "{}key_ring = \"{RING}\"\nkek = \"kek\"\nendpoint = \"{}\"\ncredentials = \"anonymous\"\n\
         store = \"{}\"\n{extra}\n",
        config_head(dir, log, "gcp"),
        endpoint(),
        dir.join(store).display()
    )
}

fn gcp() -> &'static Gcp {
    static ENV: OnceLock<Gcp> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = kept_dir();
        rest_ok(
            "POST",
            &format!("/v1/{PROJECT_LOC}/keyRings?keyRingId=ring"),
            json!({}),
        );
        rest_ok(
            "POST",
            &format!("/v1/{RING}/cryptoKeys?cryptoKeyId=kek"),
            json!({"purpose": "ENCRYPT_DECRYPT"}),
        );
        // refresh_secs = 1: keys made outside the module show up a second later.
        let config = config_text(&dir, "module.log", "gcp.sqlite", "refresh_secs = 1");
        let (ctx, slot) = setup_token(&dir, &config, "gcp");
        Gcp { ctx, dir, slot }
    })
}

fn session() -> Session {
    let g = gcp();
    user_session(&g.ctx, g.slot)
}

/// The private and public key objects of one version, by version name.
fn pair_of(s: &Session, version: &str) -> (ObjectHandle, ObjectHandle) {
    let mut pubk = None;
    let mut privk = None;
    for class in [ObjectClass::PUBLIC_KEY, ObjectClass::PRIVATE_KEY] {
        for h in s.find_objects(&[Attribute::Class(class)]).unwrap() {
            let v = s
                .get_attributes(h, &[AttributeType::VendorDefined(CKA_P11KMS_KEY_VERSION)])
                .unwrap();
            if matches!(&v[0], Attribute::VendorDefined((_, b)) if b == version.as_bytes()) {
                if class == ObjectClass::PUBLIC_KEY {
                    pubk = Some(h);
                } else {
                    privk = Some(h);
                }
            }
        }
    }
    (
        pubk.unwrap_or_else(|| panic!("no public key object for {version}")),
        privk.unwrap_or_else(|| panic!("no private key object for {version}")),
    )
}

/// The template pkcs11-tool --keypairgen sends (token, private, sensitive, label, id,
/// usage).
fn gen_pair(
    s: &Session,
    mech: Mechanism,
    label: &str,
    id: &[u8],
    extra_pub: Vec<Attribute>,
    extra_priv: Vec<Attribute>,
) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    let (pub_t, mut priv_t) = pair_templates(label, id, extra_pub, extra_priv);
    // After CKA_PRIVATE, as pkcs11-tool puts it.
    priv_t.insert(2, Attribute::Sensitive(true));
    s.generate_key_pair(&mech, &pub_t, &priv_t)
}

fn version1(key: &str) -> String {
    format!("{RING}/cryptoKeys/{key}/cryptoKeyVersions/1")
}

fn openssl_verify_ec(spki: &[u8], hash: &str, msg: &[u8], sig: &[u8]) -> bool {
    openssl_verify_spki(spki, hash, msg, &ecdsa_to_der(sig))
}

/// The CKA_ID scheme for versions without a module-made id (module doc of gcp.rs).
fn derived_id(version: &str) -> Vec<u8> {
    sha("sha256", format!("p11kms-gcp-id\0{version}").as_bytes())[..16].to_vec()
}

// ---- second processes ----------------------------------------------------------------

/// Re-runs this binary as a second process running test `child_process` in `mode`,
/// with the configuration `conf_extra` (another store unless `same_store`).
fn run_child(mode: &str, conf_extra: &str, same_store: bool) -> String {
    run_child_with(mode, conf_extra, same_store, &[], &[])
}

/// `run_child` with `(from, to)` replacements in the configuration text.
fn run_child_with(
    mode: &str,
    conf_extra: &str,
    same_store: bool,
    replace: &[(&str, String)],
    envs: &[(&str, &Path)],
) -> String {
    let g = gcp();
    let conf = g.dir.join(format!("child-{mode}.toml"));
    let store = if same_store {
        "gcp.sqlite".to_string()
    } else {
        format!("child-{mode}.sqlite")
    };
    let mut text = config_text(&g.dir, &format!("child-{mode}.log"), &store, conf_extra);
    for (from, to) in replace {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    std::fs::write(&conf, text).unwrap();
    let mut all = vec![
        ("P11KMS_CONF", conf.into()),
        ("P11KMS_GCP_CHILD", mode.into()),
        ("P11KMS_GCP_TEST_PORT", emulator().port.to_string().into()),
    ];
    all.extend(envs.iter().map(|(k, v)| (*k, v.into())));
    run_self("child_process", &format!("child {mode}"), &all, &[], None)
}

/// In the second process: the token (initialized first when `init_token`: an own
/// store), the user logged in.
fn child_session(init_token: bool) -> (Pkcs11, Session) {
    child_token(init_token.then_some("gcp"))
}

fn calls_line(label: &str, before: &HashMap<String, u64>) {
    println!("child: {label}: {:?}", delta(before));
}

/// The second process (see `run_child`); prints what it saw for the parent to check.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("P11KMS_GCP_CHILD") else {
        return;
    };
    match mode.as_str() {
        // Same store: a warm start makes no Cloud KMS call until a key is used.
        "warm" => {
            let before = calls();
            let (_ctx, s) = child_session(false);
            let keys = s
                .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
                .unwrap();
            calls_line("initialize+login+find", &before);
            let h = find(&s, ObjectClass::PRIVATE_KEY, "shared-ec")[0];
            println!("child: {} private keys", keys.len());
            println!("child: id {}", hex_str(&id_of(&s, h)));
            let before = calls();
            s.sign(&Mechanism::EcdsaSha256, h, b"from the child")
                .unwrap();
            calls_line("one sign", &before);
            let k = find(&s, ObjectClass::SECRET_KEY, "shared-dek")[0];
            let before = calls();
            for _ in 0..3 {
                s.encrypt(&Mechanism::AesCbcPad([1u8; 16]), k, b"x")
                    .unwrap();
            }
            calls_line("three uses of a DEK", &before);
        }
        // Own store and show_software = false: a cold listing.
        "hsm-only" => {
            let (_ctx, s) = child_session(true);
            for label in ["hide-hsm", "hide-sw"] {
                println!(
                    "child: {label}: {} objects",
                    find(&s, ObjectClass::PRIVATE_KEY, label).len()
                );
            }
        }
        // Own store, random = "hsm": data keys from GenerateRandomBytes.
        "hsm-random" => {
            let (_ctx, s) = child_session(true);
            let before = calls();
            let k = s
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Token(true),
                        Attribute::Label(b"hsm-dek".to_vec()),
                        Attribute::ValueLen(16.into()),
                    ],
                )
                .unwrap();
            calls_line("generate", &before);
            let ct = s
                .encrypt(&Mechanism::AesCbcPad([2u8; 16]), k, b"hsm random")
                .unwrap();
            let pt = s.decrypt(&Mechanism::AesCbcPad([2u8; 16]), k, &ct).unwrap();
            println!("child: round trip {}", pt == b"hsm random");
        }
        // Same store, timeout_secs = 2: a hung call fails in bounded time.
        "timeout" => {
            let (_ctx, s) = child_session(false);
            let h = find(&s, ObjectClass::PRIVATE_KEY, "shared-ec")[0];
            fault(
                json!({"method": "AsymmetricSign", "kind": "delay", "delay_ms": 6000, "count": 1}),
            );
            let t = Instant::now();
            let r = s.sign(&Mechanism::EcdsaSha256, h, b"slow");
            println!(
                "child: hung sign: {:?} after {} ms",
                r.err().map(|e| format!("{e}")),
                t.elapsed().as_millis()
            );
            // And the next call works again.
            let r = s.sign(&Mechanism::EcdsaSha256, h, b"fast");
            println!("child: next sign ok {}", r.is_ok());
        }
        // Same store: a DEK the parent made, after `p11kms rewrap`.
        "after-rewrap" => {
            let (_ctx, s) = child_session(false);
            let k = find(&s, ObjectClass::SECRET_KEY, "rewrapped-dek")[0];
            let iv = [3u8; 16];
            let ct = hex(&std::env::var("CHILD_CT").unwrap());
            let pt = s.decrypt(&Mechanism::AesCbcPad(iv), k, &ct).unwrap();
            println!("child: decrypts {}", String::from_utf8_lossy(&pt));
        }
        // Same store: a DEK blob moved onto another object does not unwrap.
        "moved" => {
            let (_ctx, s) = child_session(false);
            for (what, label) in [("moved blob", "aad-dek-2"), ("own blob", "aad-dek")] {
                let k = find(&s, ObjectClass::SECRET_KEY, label)[0];
                let r = s.encrypt(&Mechanism::AesCbcPad([1u8; 16]), k, b"x");
                println!("child: {what}: {:?}", r.map(|_| ()).map_err(|e| rv_of(&e)));
            }
        }
        // Own store, credentials from a service-account key file.
        "keyfile" => {
            let (_ctx, s) = child_session(true);
            let h = find(&s, ObjectClass::PRIVATE_KEY, "shared-ec")[0];
            let r = s.sign(&Mechanism::EcdsaSha256, h, b"key file");
            println!(
                "child: sign with key-file credentials: {:?}",
                r.map(|_| ()).map_err(|e| rv_of(&e))
            );
        }
        // Own store, a credentials file that is no key, or a kek that does not exist:
        // C_Initialize..C_Login work, the first Cloud KMS call fails.
        "badkeyfile" | "nokek" => {
            let (_ctx, s) = child_session(true);
            let r = s.generate_key(
                &Mechanism::AesKeyGen,
                &[Attribute::Token(true), Attribute::ValueLen(16.into())],
            );
            println!(
                "child: data key generation: {:?}",
                r.map(|_| ()).map_err(|e| rv_of(&e))
            );
        }
        // Own store, a key ring that does not exist: key pair generation is the
        // token's problem (CKR_DEVICE_ERROR), not a key handle's.
        "noring" => {
            let (_ctx, s) = child_session(true);
            let (pubt, privt) = pair_templates(
                "noring",
                &[0x4e],
                vec![
                    Attribute::Verify(true),
                    Attribute::EcParams(P256_PARAMS.to_vec()),
                ],
                vec![Attribute::Sign(true)],
            );
            let r = s.generate_key_pair(&Mechanism::EccKeyPairGen, &pubt, &privt);
            println!(
                "child: key pair generation: {:?}",
                r.map(|_| ()).map_err(|e| rv_of(&e))
            );
        }
        // Same store, a closed port: the cached objects are there, a sign fails.
        "unreachable" => {
            let (_ctx, s) = child_session(false);
            let h = find(&s, ObjectClass::PRIVATE_KEY, "shared-ec")[0];
            let t = Instant::now();
            let r = s.sign(&Mechanism::EcdsaSha256, h, b"nobody there");
            println!(
                "child: unreachable: {:?} after {} ms",
                r.map(|_| ()).map_err(|e| rv_of(&e)),
                t.elapsed().as_millis()
            );
        }
        // Own store (a cold listing from Cloud KMS): the objects with each CKA_ID of
        // CHILD_IDS.
        "renamed" => {
            let (_ctx, s) = child_session(true);
            for id in std::env::var("CHILD_IDS").unwrap().split(',') {
                let mut seen: Vec<String> = s
                    .find_objects(&[Attribute::Id(hex(id))])
                    .unwrap()
                    .into_iter()
                    .map(|h| {
                        let a = s
                            .get_attributes(h, &[AttributeType::Class, AttributeType::Label])
                            .unwrap();
                        let class = match &a[0] {
                            Attribute::Class(c) if *c == ObjectClass::PRIVATE_KEY => "private",
                            Attribute::Class(c) if *c == ObjectClass::PUBLIC_KEY => "public",
                            o => panic!("{o:?}"),
                        };
                        match &a[1] {
                            Attribute::Label(l) => {
                                format!("{class} {}", String::from_utf8_lossy(l))
                            }
                            o => panic!("{o:?}"),
                        }
                    })
                    .collect();
                seen.sort();
                println!("child: id {id}: {seen:?}");
            }
        }
        m => panic!("unknown child mode {m}"),
    }
}

// ---- the tests -----------------------------------------------------------------------

/// Keys made outside the module: one pair per ENABLED version, ids derived from the
/// version name, vendor attributes; symmetric keys and disabled versions not shown.
#[test]
fn versions_are_key_pairs_with_stable_ids() {
    serial!();
    let s = session();
    let ec = outside_key(
        "outside-ec",
        "ASYMMETRIC_SIGN",
        "EC_SIGN_P256_SHA256",
        "HSM",
    );
    let v2 = rest_ok("POST", &format!("/v1/{ec}/cryptoKeyVersions"), json!({}))["name"]
        .as_str()
        .unwrap()
        .to_string();
    let v3 = rest_ok("POST", &format!("/v1/{ec}/cryptoKeyVersions"), json!({}))["name"]
        .as_str()
        .unwrap()
        .to_string();
    let sw = outside_key(
        "outside-sw",
        "ASYMMETRIC_SIGN",
        "EC_SIGN_P384_SHA384",
        "SOFTWARE",
    );
    outside_key(
        "outside-sym",
        "ENCRYPT_DECRYPT",
        "GOOGLE_SYMMETRIC_ENCRYPTION",
        "SOFTWARE",
    );
    for v in [
        format!("{ec}/cryptoKeyVersions/1"),
        v2.clone(),
        v3.clone(),
        format!("{sw}/cryptoKeyVersions/1"),
    ] {
        wait_enabled(&v);
    }
    // Version 3 destroyed then restored: DISABLED, not shown.
    rest_ok("POST", &format!("/v1/{v3}:destroy"), json!({}));
    rest_ok("POST", &format!("/v1/{v3}:restore"), json!({}));
    std::thread::sleep(Duration::from_millis(1100)); // refresh_secs = 1
    let privs = find(&s, ObjectClass::PRIVATE_KEY, "outside-ec");
    let pubs = find(&s, ObjectClass::PUBLIC_KEY, "outside-ec");
    assert_eq!((privs.len(), pubs.len()), (2, 2), "two enabled versions");
    assert!(find(&s, ObjectClass::PRIVATE_KEY, "outside-sym").is_empty());
    assert!(find(&s, ObjectClass::SECRET_KEY, "outside-sym").is_empty());
    assert!(find(&s, ObjectClass::SECRET_KEY, "kek").is_empty());
    for v in [format!("{ec}/cryptoKeyVersions/1"), v2.clone()] {
        let (ph, sh) = pair_of(&s, &v);
        assert_eq!(id_of(&s, ph), derived_id(&v));
        assert_eq!(id_of(&s, sh), derived_id(&v));
        assert_eq!(
            vendor(&s, sh, CKA_P11KMS_KEY_ALGORITHM),
            "EC_SIGN_P256_SHA256"
        );
        assert_eq!(vendor(&s, ph, CKA_P11KMS_PROTECTION_LEVEL), "HSM");
        let attrs = s
            .get_attributes(
                sh,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Local,
                    AttributeType::EcParams,
                    AttributeType::Modifiable,
                ],
            )
            .unwrap();
        assert_eq!(attrs[0], Attribute::Sensitive(true));
        assert_eq!(attrs[1], Attribute::Extractable(false));
        assert_eq!(attrs[2], Attribute::Local(true));
        assert_eq!(attrs[3], Attribute::EcParams(P256_PARAMS.to_vec()));
        // CKA_ID can change (a CryptoKey label), so the objects are modifiable.
        assert_eq!(attrs[4], Attribute::Modifiable(true));
        // The version signs, and the public object is GetPublicKey's key.
        let info = match &s
            .get_attributes(ph, &[AttributeType::PublicKeyInfo])
            .unwrap()[0]
        {
            Attribute::PublicKeyInfo(b) => b.clone(),
            o => panic!("{o:?}"),
        };
        assert_eq!(info, emulator_spki(&v));
        let sig = s.sign(&Mechanism::EcdsaSha256, sh, b"outside").unwrap();
        assert!(openssl_verify_ec(
            &emulator_spki(&v),
            "sha256",
            b"outside",
            &sig
        ));
    }
    // The SOFTWARE key is shown by default, its level readable.
    let (_, sh) = pair_of(&s, &format!("{sw}/cryptoKeyVersions/1"));
    assert_eq!(vendor(&s, sh, CKA_P11KMS_PROTECTION_LEVEL), "SOFTWARE");
    assert_eq!(
        vendor(&s, sh, CKA_P11KMS_KEY_ALGORITHM),
        "EC_SIGN_P384_SHA384"
    );
    // A vendor attribute selects in C_FindObjects.
    let v = s
        .find_objects(&[Attribute::VendorDefined((
            AttributeType::VendorDefined(CKA_P11KMS_KEY_VERSION),
            v2.as_bytes().to_vec(),
        ))])
        .unwrap();
    assert_eq!(v.len(), 2);
}

/// C_SetAttributeValue of CKA_ID on a Cloud KMS key (what NSS's certutil -G does after
/// generating): kept per version in a CryptoKey label (`p11kms-id` for version 1,
/// `p11kms-id-v<N>` for version N) with UpdateCryptoKey, seen by another process, found
/// by C_FindObjects on both halves; a too-long id and a new CKA_LABEL are refused with
/// no call; a failed update changes nothing.
#[test]
fn cka_id_is_kept_in_a_crypto_key_label() {
    serial!();
    let s = session();
    let (ph, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "rename-ec",
        &[0x01],
        vec![
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Verify(true),
        ],
        vec![Attribute::Sign(true)],
    )
    .unwrap();
    let key_path = format!("/v1/{RING}/cryptoKeys/rename-ec");
    let token_label = rest_ok("GET", &key_path, Value::Null)["labels"]["p11kms-token"].clone();
    assert!(token_label.is_string(), "{token_label}");
    for h in [ph, sh] {
        assert_eq!(
            s.get_attributes(h, &[AttributeType::Modifiable]).unwrap()[0],
            Attribute::Modifiable(true)
        );
    }
    // NSS's id: 20 bytes (a SHA-1 of the public key), set on the private key.
    let nss_id: Vec<u8> = (0..20u8).map(|i| i * 13 + 1).collect();
    let before = calls();
    s.update_attributes(sh, &[Attribute::Id(nss_id.clone())])
        .unwrap();
    assert_eq!(
        delta(&before),
        d(&[("GetCryptoKey", 1), ("UpdateCryptoKey", 1)])
    );
    let key = rest_ok("GET", &key_path, Value::Null);
    assert_eq!(key["labels"]["p11kms-id"], hex_str(&nss_id), "{key}");
    assert_eq!(
        key["labels"]["p11kms-token"], token_label,
        "other labels kept: {key}"
    );
    // Both halves follow; the same id again, on the other half, is no call.
    assert_eq!(id_of(&s, ph), nss_id);
    assert_eq!(id_of(&s, sh), nss_id);
    let before = calls();
    s.update_attributes(ph, &[Attribute::Id(nss_id.clone())])
        .unwrap();
    s.update_attributes(sh, &[Attribute::Label(b"rename-ec".to_vec())])
        .unwrap();
    assert_eq!(delta(&before), d(&[]));
    let found = s.find_objects(&[Attribute::Id(nss_id.clone())]).unwrap();
    assert_eq!(found.len(), 2, "private and public key by the new id");
    assert!(found.contains(&ph) && found.contains(&sh));
    assert!(s
        .find_objects(&[Attribute::Id(vec![0x01])])
        .unwrap()
        .is_empty());
    // Refused before any Cloud KMS call: an id a label value cannot hold (32 bytes =
    // 64 hex digits), a new CKA_LABEL (the CryptoKey id), any other attribute.
    let before = calls();
    for (t, want) in [
        (
            Attribute::Id(vec![0xab; 32]),
            RvError::AttributeValueInvalid,
        ),
        (
            Attribute::Label(b"another-name".to_vec()),
            RvError::AttributeReadOnly,
        ),
        (Attribute::Sign(false), RvError::AttributeReadOnly),
    ] {
        let e = s
            .update_attributes(sh, std::slice::from_ref(&t))
            .unwrap_err();
        assert_eq!(rv_of(&e), want, "{t:?}");
    }
    assert_eq!(delta(&before), d(&[]));
    assert_eq!(id_of(&s, sh), nss_id);
    // The longest id a label holds: 31 bytes.
    let long = vec![0xcd; 31];
    s.update_attributes(sh, &[Attribute::Id(long.clone())])
        .unwrap();
    assert_eq!(id_of(&s, ph), long);
    // A failed UpdateCryptoKey leaves the id as it was, here and in Cloud KMS.
    fault(json!({"method": "UpdateCryptoKey", "kind": "status", "status": 403, "count": 1}));
    let e = s
        .update_attributes(sh, &[Attribute::Id(vec![7])])
        .unwrap_err();
    clear_faults();
    assert_eq!(rv_of(&e), RvError::DeviceError);
    assert_eq!(id_of(&s, sh), long);
    assert_eq!(
        rest_ok("GET", &key_path, Value::Null)["labels"]["p11kms-id"],
        hex_str(&long)
    );
    s.update_attributes(sh, &[Attribute::Id(nss_id.clone())])
        .unwrap();

    // Version 2 of a key made outside the module has a label of its own; version 1
    // keeps its derived id.
    let out = outside_key(
        "rename-out",
        "ASYMMETRIC_SIGN",
        "EC_SIGN_P256_SHA256",
        "HSM",
    );
    let v2 = rest_ok("POST", &format!("/v1/{out}/cryptoKeyVersions"), json!({}))["name"]
        .as_str()
        .unwrap()
        .to_string();
    let v1 = format!("{out}/cryptoKeyVersions/1");
    wait_enabled(&v1);
    wait_enabled(&v2);
    std::thread::sleep(Duration::from_millis(1100)); // refresh_secs = 1
    let _ = find(&s, ObjectClass::PRIVATE_KEY, "rename-out");
    let (p2, s2) = pair_of(&s, &v2);
    let (p1, _) = pair_of(&s, &v1);
    assert_eq!(id_of(&s, p2), derived_id(&v2));
    s.update_attributes(p2, &[Attribute::Id(vec![0x0b, 0x02])])
        .unwrap();
    assert_eq!(id_of(&s, s2), vec![0x0b, 0x02]);
    assert_eq!(id_of(&s, p1), derived_id(&v1));
    let labels = &rest_ok("GET", &format!("/v1/{out}"), Value::Null)["labels"];
    assert_eq!(labels, &json!({"p11kms-id-v2": "0b02"}));
    // An empty CKA_ID is an id too (an empty label value).
    s.update_attributes(s2, &[Attribute::Id(vec![])]).unwrap();
    assert_eq!(id_of(&s, p2), Vec::<u8>::new());
    s.update_attributes(s2, &[Attribute::Id(vec![0x0b, 0x02])])
        .unwrap();

    // Another process with a store of its own reads the ids from Cloud KMS.
    let ids = [hex_str(&nss_id), "0b02".to_string(), "01".to_string()].join(",");
    let out = run_child_with("renamed", "", false, &[], &[("CHILD_IDS", Path::new(&ids))]);
    print!("{out}");
    let pair = |label: &str| format!("[\"private {label}\", \"public {label}\"]");
    assert!(
        out.contains(&format!(
            "child: id {}: {}",
            hex_str(&nss_id),
            pair("rename-ec")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("child: id 0b02: {}", pair("rename-out"))),
        "{out}"
    );
    assert!(out.contains("child: id 01: []"), "{out}");
}

/// C_GenerateKeyPair templates on a KMS token are checked as a local key pair's are,
/// before any Cloud KMS call: a malformed value (a CKA_ALLOWED_MECHANISMS that is no
/// CK_ULONG array once made a PKCS#1 key where PSS-only was asked), an attribute the
/// token sets, one foreign to the class, a secret one, a contradicting class.
#[test]
fn kms_keygen_templates_are_checked_before_any_call() {
    use cryptoki_sys::*;
    serial!();
    let s = session();
    let h = s.handle();
    let attr = |t: CK_ATTRIBUTE_TYPE, v: &mut Vec<u8>| CK_ATTRIBUTE {
        type_: t,
        pValue: v.as_mut_ptr().cast(),
        ulValueLen: v.len() as CK_ULONG,
    };
    let ul = |v: CK_ULONG| v.to_ne_bytes().to_vec();
    let cases: Vec<(&str, bool, CK_ATTRIBUTE_TYPE, Vec<u8>, CK_RV)> = vec![
        (
            "allowed mechanisms of 3 bytes",
            false,
            CKA_ALLOWED_MECHANISMS,
            vec![0x0d, 0, 0],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            "CKA_SENSITIVE of 2 bytes",
            false,
            CKA_SENSITIVE,
            vec![1, 1],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            "CKA_LOCAL (set by the token)",
            false,
            CKA_LOCAL,
            vec![1],
            CKR_ATTRIBUTE_READ_ONLY,
        ),
        (
            "CKA_VALUE_LEN on a public key",
            true,
            CKA_VALUE_LEN,
            ul(32),
            CKR_ATTRIBUTE_TYPE_INVALID,
        ),
        (
            "a private exponent",
            false,
            CKA_PRIVATE_EXPONENT,
            vec![3],
            CKR_TEMPLATE_INCONSISTENT,
        ),
        (
            "CKA_CLASS public in the private template",
            false,
            CKA_CLASS,
            ul(CKO_PUBLIC_KEY),
            CKR_TEMPLATE_INCONSISTENT,
        ),
        (
            "CKA_KEY_TYPE EC for RSA",
            true,
            CKA_KEY_TYPE,
            ul(CKK_EC),
            CKR_TEMPLATE_INCONSISTENT,
        ),
    ];
    let before = calls();
    for (what, on_public, ty, mut bad, want) in cases {
        let (mut t, mut bits, mut label, mut sign) =
            (vec![1u8], ul(2048), b"bad-template".to_vec(), vec![1u8]);
        let mut pub_t = vec![
            attr(CKA_TOKEN, &mut t),
            attr(CKA_MODULUS_BITS, &mut bits),
            attr(CKA_LABEL, &mut label),
        ];
        let mut priv_t = vec![
            attr(CKA_TOKEN, &mut t),
            attr(CKA_LABEL, &mut label),
            attr(CKA_SIGN, &mut sign),
        ];
        if on_public {
            pub_t.push(attr(ty, &mut bad));
        } else {
            priv_t.push(attr(ty, &mut bad));
        }
        let mut m = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_KEY_PAIR_GEN,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        let (mut ph, mut sh): (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) = (0, 0);
        let rv = call!(
            C_GenerateKeyPair,
            h,
            &mut m,
            pub_t.as_mut_ptr(),
            pub_t.len() as CK_ULONG,
            priv_t.as_mut_ptr(),
            priv_t.len() as CK_ULONG,
            &mut ph,
            &mut sh
        );
        assert_eq!(
            rv,
            want,
            "{what}: {} instead of {}",
            rv_name(rv),
            rv_name(want)
        );
    }
    assert_eq!(delta(&before), d(&[]), "no Cloud KMS call");
    let (code, _) = rest(
        "GET",
        &format!("/v1/{RING}/cryptoKeys/bad-template"),
        Value::Null,
    );
    assert_eq!(code, 404);
}

#[test]
fn show_software_false_hides_software_keys() {
    serial!();
    let _ = session();
    outside_key(
        "hide-sw",
        "ASYMMETRIC_SIGN",
        "EC_SIGN_P384_SHA384",
        "SOFTWARE",
    );
    outside_key("hide-hsm", "ASYMMETRIC_SIGN", "EC_SIGN_P256_SHA256", "HSM");
    wait_enabled(&version1("hide-sw"));
    wait_enabled(&version1("hide-hsm"));
    let out = run_child("hsm-only", "show_software = false", false);
    print!("{out}");
    assert!(out.contains("child: hide-sw: 0 objects"), "{out}");
    assert!(out.contains("child: hide-hsm: 1 objects"), "{out}");
}

/// C_GenerateKeyPair with pkcs11-tool's templates: the matching CryptoKey, the template's
/// CKA_ID in its labels, signatures verified by openssl against GetPublicKey.
#[test]
fn keygen_each_algorithm_and_sign() {
    serial!();
    let s = session();
    let msg = b"signed in the Cloud KMS emulator through PKCS#11";
    // EC curves.
    for (label, params, alg, hash, mech) in [
        (
            "gen-p256",
            P256_PARAMS.to_vec(),
            "EC_SIGN_P256_SHA256",
            "sha256",
            Mechanism::EcdsaSha256,
        ),
        (
            "gen-p384",
            P384_PARAMS.to_vec(),
            "EC_SIGN_P384_SHA384",
            "sha384",
            Mechanism::EcdsaSha384,
        ),
        (
            "gen-k256",
            hex("06052b8104000a"),
            "EC_SIGN_SECP256K1_SHA256",
            "sha256",
            Mechanism::EcdsaSha256,
        ),
    ] {
        let before = calls();
        let (ph, sh) = gen_pair(
            &s,
            Mechanism::EccKeyPairGen,
            label,
            &[0x10, label.len() as u8],
            vec![Attribute::EcParams(params.clone()), Attribute::Verify(true)],
            vec![Attribute::Sign(true)],
        )
        .unwrap();
        let dl = delta(&before);
        assert!(
            dl.iter().any(|(k, n)| k == "CreateCryptoKey" && *n == 1)
                && dl.iter().any(|(k, n)| k == "GetPublicKey" && *n == 1),
            "{label}: {dl:?}"
        );
        let key = rest_ok(
            "GET",
            &format!("/v1/{RING}/cryptoKeys/{label}"),
            Value::Null,
        );
        assert_eq!(key["purpose"], "ASYMMETRIC_SIGN", "{key}");
        assert_eq!(key["versionTemplate"]["algorithm"], alg, "{key}");
        assert_eq!(key["versionTemplate"]["protectionLevel"], "HSM", "{key}");
        assert_eq!(key["labels"]["p11kms-id"], format!("10{:02x}", label.len()));
        assert_eq!(id_of(&s, sh), vec![0x10, label.len() as u8]);
        assert_eq!(
            rest_ok("GET", &format!("/v1/{}", version1(label)), Value::Null)["state"],
            "ENABLED"
        );
        let spki = emulator_spki(&version1(label));
        let before = calls();
        let sig = s.sign(&mech, sh, msg).unwrap();
        assert_eq!(
            delta(&before),
            d(&[("AsymmetricSign", 1)]),
            "one call per C_Sign"
        );
        assert!(openssl_verify_ec(&spki, hash, msg, &sig), "{label}");
        // Verify is local.
        let before = calls();
        s.verify(&mech, ph, msg, &sig).unwrap();
        assert!(delta(&before).is_empty());
        // Multi-part: hashed locally, one call at C_SignFinal.
        s.sign_init(&mech, sh).unwrap();
        s.sign_update(b"part one, ").unwrap();
        let before = calls();
        s.sign_update(b"part two").unwrap();
        let sig = s.sign_final().unwrap();
        assert_eq!(delta(&before), d(&[("AsymmetricSign", 1)]));
        assert!(openssl_verify_ec(&spki, hash, b"part one, part two", &sig));
        // Raw CKM_ECDSA over a digest of another length (adapted as ECDSA does).
        let dg = sha("sha512", msg);
        let sig = s.sign(&Mechanism::Ecdsa, sh, &dg).unwrap();
        s.verify(&Mechanism::Ecdsa, ph, &dg, &sig).unwrap();
    }
    // P-521: no such Cloud KMS key.
    let r = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "gen-p521",
        &[0x15],
        vec![Attribute::EcParams(P521_PARAMS.to_vec())],
        vec![],
    );
    assert_eq!(rv_err(r), RvError::CurveNotSupported);
    // RSA: PKCS#1 v1.5 by default, PSS when the allowed mechanisms say so.
    let pss = PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    };
    for (label, bits, allowed, alg) in [
        ("gen-rsa2048", 2048u64, None, "RSA_SIGN_PKCS1_2048_SHA256"),
        (
            "gen-rsa3072-pss",
            3072,
            Some(vec![
                MechanismType::RSA_PKCS_PSS,
                MechanismType::SHA256_RSA_PKCS_PSS,
            ]),
            "RSA_SIGN_PSS_3072_SHA256",
        ),
        ("gen-rsa4096", 4096, None, "RSA_SIGN_PKCS1_4096_SHA256"),
    ] {
        let mut priv_extra = vec![Attribute::Sign(true)];
        if let Some(a) = &allowed {
            priv_extra.push(Attribute::AllowedMechanisms(a.clone()));
        }
        let (ph, sh) = gen_pair(
            &s,
            Mechanism::RsaPkcsKeyPairGen,
            label,
            &[0x20, (bits / 256) as u8],
            vec![
                Attribute::ModulusBits(bits.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Verify(true),
            ],
            priv_extra,
        )
        .unwrap();
        let key = rest_ok(
            "GET",
            &format!("/v1/{RING}/cryptoKeys/{label}"),
            Value::Null,
        );
        assert_eq!(key["versionTemplate"]["algorithm"], alg, "{key}");
        let spki = emulator_spki(&version1(label));
        if allowed.is_some() {
            let sig = s.sign(&Mechanism::Sha256RsaPkcsPss(pss), sh, msg).unwrap();
            assert!(
                openssl_rsa_verify(&spki, "sha256", msg, &sig, true),
                "{label}"
            );
            let sig = s
                .sign(&Mechanism::RsaPkcsPss(pss), sh, &sha("sha256", msg))
                .unwrap();
            assert!(openssl_rsa_verify(&spki, "sha256", msg, &sig, true));
            // A PKCS#1 v1.5 mechanism on a PSS version is refused.
            assert_eq!(
                rv_err(s.sign(&Mechanism::Sha256RsaPkcs, sh, msg)),
                RvError::MechanismInvalid
            );
        } else {
            let sig = s.sign(&Mechanism::Sha256RsaPkcs, sh, msg).unwrap();
            assert!(
                openssl_rsa_verify(&spki, "sha256", msg, &sig, false),
                "{label}"
            );
            s.verify(&Mechanism::Sha256RsaPkcs, ph, msg, &sig).unwrap();
            // CKM_RSA_PKCS over a DigestInfo, multi-part SHA256-RSA-PKCS.
            let di = digest_info("sha256", &sha("sha256", msg));
            let sig = s.sign(&Mechanism::RsaPkcs, sh, &di).unwrap();
            assert!(openssl_rsa_verify(&spki, "sha256", msg, &sig, false));
            s.sign_init(&Mechanism::Sha256RsaPkcs, sh).unwrap();
            s.sign_update(&msg[..5]).unwrap();
            s.sign_update(&msg[5..]).unwrap();
            let sig = s.sign_final().unwrap();
            assert!(openssl_rsa_verify(&spki, "sha256", msg, &sig, false));
            // A DigestInfo of a hash this version does not sign with.
            let di = digest_info("sha384", &sha("sha384", msg));
            let before = calls();
            assert_eq!(
                rv_err(s.sign(&Mechanism::RsaPkcs, sh, &di)),
                RvError::MechanismInvalid
            );
            assert!(delta(&before).is_empty(), "refused before any call");
        }
    }
    // A CKA_ID longer than a CryptoKey label holds: refused before any call.
    let before = calls();
    let r = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "gen-long-id",
        &[7u8; 32],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
    );
    assert_eq!(rv_err(r), RvError::AttributeValueInvalid);
    assert!(delta(&before).is_empty());
    // A label already taken in the ring.
    let r = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "gen-p256",
        &[0x99],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
    );
    assert_eq!(rv_err(r), RvError::TemplateInconsistent);
}

#[test]
fn oaep_decrypt_of_locally_encrypted_data() {
    serial!();
    let s = session();
    let (ph, sh) = gen_pair(
        &s,
        Mechanism::RsaPkcsKeyPairGen,
        "gen-rsa-dec",
        &[0xde, 1],
        vec![
            Attribute::ModulusBits(2048.into()),
            Attribute::Encrypt(true),
        ],
        vec![Attribute::Decrypt(true)],
    )
    .unwrap();
    let key = rest_ok(
        "GET",
        &format!("/v1/{RING}/cryptoKeys/gen-rsa-dec"),
        Value::Null,
    );
    assert_eq!(key["purpose"], "ASYMMETRIC_DECRYPT");
    assert_eq!(
        key["versionTemplate"]["algorithm"],
        "RSA_DECRYPT_OAEP_2048_SHA256"
    );
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    );
    let before = calls();
    let ct = s
        .encrypt(&Mechanism::RsaPkcsOaep(oaep), ph, b"a secret message")
        .unwrap();
    assert!(delta(&before).is_empty(), "encrypt is local");
    let pt = s.decrypt(&Mechanism::RsaPkcsOaep(oaep), sh, &ct).unwrap();
    assert_eq!(pt, b"a secret message");
    assert_eq!(delta(&before), d(&[("AsymmetricDecrypt", 1)]));
    // Encrypted by openssl with GetPublicKey's key.
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("k.der");
    std::fs::write(&k, emulator_spki(&version1("gen-rsa-dec"))).unwrap();
    let ct2 = openssl(
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            k.to_str().unwrap(),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
        b"from openssl",
    );
    let pt = s.decrypt(&Mechanism::RsaPkcsOaep(oaep), sh, &ct2).unwrap();
    assert_eq!(pt, b"from openssl");
    // A corrupted ciphertext: Cloud KMS refuses it.
    let mut bad = ct.clone();
    bad[10] ^= 1;
    assert_eq!(
        rv_err(s.decrypt(&Mechanism::RsaPkcsOaep(oaep), sh, &bad)),
        RvError::EncryptedDataInvalid
    );
    // A label, or SHA-1 on a SHA-256 version: not what the version does.
    let labelled = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::data_specified(b"L"),
    );
    assert_eq!(
        rv_err(s.decrypt(&Mechanism::RsaPkcsOaep(labelled), sh, &ct)),
        RvError::MechanismParamInvalid
    );
    let sha1 = PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    );
    assert_eq!(
        rv_err(s.decrypt(&Mechanism::RsaPkcsOaep(sha1), sh, &ct)),
        RvError::MechanismParamInvalid
    );
    // ... refused at C_DecryptInit (PKCS#11 5.2), not first at C_Decrypt: pkcs11-tool
    // then tried C_DecryptUpdate and showed CKR_FUNCTION_NOT_SUPPORTED instead of the
    // parameter error. No AsymmetricDecrypt is spent on it.
    let before = calls();
    assert_eq!(
        rv_err(s.decrypt_init(&Mechanism::RsaPkcsOaep(sha1), sh)),
        RvError::MechanismParamInvalid
    );
    assert!(
        delta(&before).is_empty(),
        "refused without a Cloud KMS call"
    );
    // No operation was left active: a right one starts and decrypts.
    let pt = s.decrypt(&Mechanism::RsaPkcsOaep(oaep), sh, &ct).unwrap();
    assert_eq!(pt, b"a secret message");
}

#[test]
fn destroy_schedules_version_destruction() {
    serial!();
    let s = session();
    let (ph, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "doomed",
        &[0xdd],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
    )
    .unwrap();
    assert_eq!(rv_err(s.destroy_object(ph)), RvError::ActionProhibited);
    let before = calls();
    s.destroy_object(sh).unwrap();
    assert_eq!(delta(&before), d(&[("DestroyCryptoKeyVersion", 1)]));
    let v = rest_ok("GET", &format!("/v1/{}", version1("doomed")), Value::Null);
    assert_eq!(v["state"], "DESTROY_SCHEDULED", "{v}");
    assert!(find(&s, ObjectClass::PRIVATE_KEY, "doomed").is_empty());
    assert!(find(&s, ObjectClass::PUBLIC_KEY, "doomed").is_empty());
    // Still gone after the listing is fetched again.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(find(&s, ObjectClass::PRIVATE_KEY, "doomed").is_empty());
}

/// C_DestroyObject of a version destroyed outside the module (its objects still
/// cached): what it asks for holds already, so it succeeds — after DestroyCryptoKeyVersion
/// (FAILED_PRECONDITION) and a GetCryptoKeyVersion that confirms the state — and the
/// objects go.
#[test]
fn destroy_of_a_version_destroyed_elsewhere_succeeds() {
    serial!();
    let s = session();
    let (_, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "twice-doomed",
        &[0xdd, 0x02],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
    )
    .unwrap();
    rest_ok(
        "POST",
        &format!("/v1/{}:destroy", version1("twice-doomed")),
        json!({}),
    );
    let before = calls();
    s.destroy_object(sh).unwrap();
    assert_eq!(
        delta(&before),
        d(&[("DestroyCryptoKeyVersion", 1), ("GetCryptoKeyVersion", 1)])
    );
    assert!(find(&s, ObjectClass::PRIVATE_KEY, "twice-doomed").is_empty());
    assert!(find(&s, ObjectClass::PUBLIC_KEY, "twice-doomed").is_empty());
}

/// A version destroyed outside the module while its objects are still cached: the
/// sign fails with the documented code, and the next listing drops it.
#[test]
fn version_disabled_elsewhere_is_key_function_not_permitted() {
    serial!();
    let s = session();
    let (_, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "gone-elsewhere",
        &[0xde, 0xad],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
    )
    .unwrap();
    rest_ok(
        "POST",
        &format!("/v1/{}:destroy", version1("gone-elsewhere")),
        json!({}),
    );
    assert_eq!(
        rv_err(s.sign(&Mechanism::EcdsaSha256, sh, b"x")),
        RvError::KeyFunctionNotPermitted
    );
    // Disabled (UpdateCryptoKeyVersion state=DISABLED), then enabled again.
    let (_, sh2) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "disabled-elsewhere",
        &[0xd1],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
    )
    .unwrap();
    let v = version1("disabled-elsewhere");
    let set_state = |state: &str| {
        rest_ok(
            "PATCH",
            &format!("/v1/{v}?updateMask=state"),
            json!({"name": v, "state": state}),
        )
    };
    set_state("DISABLED");
    assert_eq!(
        rv_err(s.sign(&Mechanism::EcdsaSha256, sh2, b"x")),
        RvError::KeyFunctionNotPermitted
    );
    set_state("ENABLED");
    s.sign(&Mechanism::EcdsaSha256, sh2, b"x").unwrap();
    // NOT_FOUND and PERMISSION_DENIED as Cloud KMS would answer them.
    let (_, sh) = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "faulty",
        &[0xfa],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
    )
    .unwrap();
    fault(json!({"method": "AsymmetricSign", "kind": "status", "status": 404, "count": 1}));
    assert_eq!(
        rv_err(s.sign(&Mechanism::EcdsaSha256, sh, b"x")),
        RvError::KeyHandleInvalid
    );
    fault(json!({"method": "AsymmetricSign", "kind": "status", "status": 403, "count": 1}));
    assert_eq!(
        rv_err(s.sign(&Mechanism::EcdsaSha256, sh, b"x")),
        RvError::DeviceError
    );
    clear_faults();
    s.sign(&Mechanism::EcdsaSha256, sh, b"x").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(find(&s, ObjectClass::PRIVATE_KEY, "gone-elsewhere").is_empty());
}

#[test]
fn data_keys_are_wrapped_with_aad_and_used_locally() {
    serial!();
    let s = session();
    let before = calls();
    let k = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"aad-dek".to_vec()),
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    assert_eq!(
        delta(&before),
        d(&[("Encrypt", 1)]),
        "local RNG, one Encrypt"
    );
    let before = calls();
    let iv = [7u8; 16];
    let ct = s
        .encrypt(
            &Mechanism::AesCbcPad(iv),
            k,
            b"round trip on a KMS-wrapped DEK",
        )
        .unwrap();
    let pt = s.decrypt(&Mechanism::AesCbcPad(iv), k, &ct).unwrap();
    assert_eq!(pt, b"round trip on a KMS-wrapped DEK");
    assert!(delta(&before).is_empty(), "DEK operations are local");
    // The stored blob is an Encrypt ciphertext whose AAD names token and object:
    // Cloud KMS decrypts it with that AAD only, to the key's value.
    let value = match &s.get_attributes(k, &[AttributeType::Value]).unwrap()[0] {
        Attribute::Value(v) => v.clone(),
        o => panic!("{o:?}"),
    };
    let uid = match &s.get_attributes(k, &[AttributeType::UniqueId]).unwrap()[0] {
        Attribute::UniqueId(u) => String::from_utf8(u.clone()).unwrap(),
        o => panic!("{o:?}"),
    };
    let blob = hex(&store_sql(&format!(
        "SELECT hex(secret) FROM objects WHERE hex(uid) = upper('{uid}')"
    )));
    assert_eq!(blob[0], 0xA2, "Cloud KMS blob tag");
    assert!(!contains(&blob, &value), "plaintext key in the store");
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let (code, _) = rest(
        "POST",
        &format!("/v1/{KEK}:decrypt"),
        json!({"ciphertext": b64(&blob[1..])}),
    );
    assert_eq!(code, 400, "decrypts without the AAD");
    // A blob moved onto another object does not unwrap (the AAD names the object).
    let k2 = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"aad-dek-2".to_vec()),
                Attribute::ValueLen(32.into()),
            ],
        )
        .unwrap();
    let uid2 = match &s.get_attributes(k2, &[AttributeType::UniqueId]).unwrap()[0] {
        Attribute::UniqueId(u) => String::from_utf8(u.clone()).unwrap(),
        o => panic!("{o:?}"),
    };
    store_sql(&format!(
        "UPDATE objects SET secret = x'{}' WHERE hex(uid) = upper('{uid2}')",
        hex_str(&blob)
    ));
    let out = run_child("moved", "refresh_secs = 3600", true);
    print!("{out}");
    // The parent still holds both plaintext keys: drop the doctored object.
    s.destroy_object(k2).unwrap();
    assert!(out.contains("child: moved blob: Err(DeviceError)"), "{out}");
    assert!(out.contains("child: own blob: Ok"), "{out}");
}

/// One SQL statement on the main token's store, by the sqlite3 of another process:
/// a second SQLite library in this process would break the module's POSIX locks.
/// Returns the rows, one per line.
fn store_sql(sql: &str) -> String {
    let db = gcp().dir.join("gcp.sqlite");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n\
             rows = c.execute(sys.argv[2]).fetchall()\nc.commit()\n\
             print('\\n'.join('|'.join(str(x) for x in r) for r in rows))",
            db.to_str().unwrap(),
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// CRC32C: a response checksum that disagrees, or a request checksum the service did
/// not verify, is CKR_DEVICE_ERROR on every RPC that carries one.
#[test]
fn crc32c_mismatch_in_either_direction_is_an_error() {
    serial!();
    let s = session();
    let sh = ensure_shared(&s);
    let msg = b"integrity";
    for (kind, target) in [
        ("crc_response", "crc"),
        ("crc_response", "payload"),
        ("crc_request_ignored", ""),
    ] {
        fault(
            json!({"method": "AsymmetricSign", "kind": kind, "target": if target.is_empty() { "crc" } else { target }, "count": 1}),
        );
        assert_eq!(
            rv_err(s.sign(&Mechanism::EcdsaSha256, sh, msg)),
            RvError::DeviceError,
            "AsymmetricSign {kind} {target}"
        );
    }
    s.sign(&Mechanism::EcdsaSha256, sh, msg).unwrap();
    // Encrypt (wrapping a new DEK): nothing is stored on a failure.
    for kind in ["crc_response", "crc_request_ignored"] {
        fault(json!({"method": "Encrypt", "kind": kind, "count": 1}));
        let r = s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"crc-dek".to_vec()),
                Attribute::ValueLen(16.into()),
            ],
        );
        assert_eq!(rv_err(r), RvError::DeviceError, "Encrypt {kind}");
    }
    assert!(find(&s, ObjectClass::SECRET_KEY, "crc-dek").is_empty());
    // AsymmetricDecrypt.
    let (ph, dh) = match find(&s, ObjectClass::PRIVATE_KEY, "crc-dec").first() {
        Some(h) => (find(&s, ObjectClass::PUBLIC_KEY, "crc-dec")[0], *h),
        None => gen_pair(
            &s,
            Mechanism::RsaPkcsKeyPairGen,
            "crc-dec",
            &[0xcc],
            vec![
                Attribute::ModulusBits(2048.into()),
                Attribute::Encrypt(true),
            ],
            vec![Attribute::Decrypt(true)],
        )
        .unwrap(),
    };
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let ct = s.encrypt(&oaep, ph, b"crc").unwrap();
    for kind in ["crc_response", "crc_request_ignored"] {
        fault(json!({"method": "AsymmetricDecrypt", "kind": kind, "count": 1}));
        assert_eq!(
            rv_err(s.decrypt(&oaep, dh, &ct)),
            RvError::DeviceError,
            "AsymmetricDecrypt {kind}"
        );
    }
    assert_eq!(s.decrypt(&oaep, dh, &ct).unwrap(), b"crc");
    // GetPublicKey during keygen: the key pair is not shown with a corrupt public key.
    fault(
        json!({"method": "GetPublicKey", "kind": "crc_response", "target": "payload", "count": 1}),
    );
    let r = gen_pair(
        &s,
        Mechanism::EccKeyPairGen,
        "crc-pub",
        &[0xc1],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![],
    );
    assert_eq!(rv_err(r), RvError::DeviceError);
    clear_faults();
}

/// The shared EC key of the second-process tests.
fn ensure_shared(s: &Session) -> ObjectHandle {
    if let Some(h) = find(s, ObjectClass::PRIVATE_KEY, "shared-ec").first() {
        return *h;
    }
    gen_pair(
        s,
        Mechanism::EccKeyPairGen,
        "shared-ec",
        &[0x51, 0x51],
        vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        vec![Attribute::Sign(true)],
    )
    .unwrap()
    .1
}

#[test]
fn throttling_and_unavailable_are_retried() {
    serial!();
    let s = session();
    let sh = ensure_shared(&s);
    for status in [429, 503] {
        fault(json!({"method": "AsymmetricSign", "kind": "status", "status": status, "count": 2}));
        let before = calls();
        s.sign(&Mechanism::EcdsaSha256, sh, b"retried").unwrap();
        assert_eq!(delta(&before), d(&[("AsymmetricSign", 3)]), "{status}");
    }
    // Still failing after the retries: CKR_DEVICE_ERROR.
    fault(json!({"method": "AsymmetricSign", "kind": "status", "status": 503, "count": 100}));
    assert_eq!(
        rv_err(s.sign(&Mechanism::EcdsaSha256, sh, b"x")),
        RvError::DeviceError
    );
    clear_faults();
    // INTERNAL is not retried.
    fault(json!({"method": "AsymmetricSign", "kind": "status", "status": 500, "count": 1}));
    let before = calls();
    assert_eq!(
        rv_err(s.sign(&Mechanism::EcdsaSha256, sh, b"x")),
        RvError::DeviceError
    );
    assert_eq!(delta(&before), d(&[("AsymmetricSign", 1)]));
    clear_faults();
}

#[test]
fn delay_beyond_timeout_is_device_error() {
    serial!();
    let s = session();
    ensure_shared(&s);
    let out = run_child("timeout", "timeout_secs = 2\nrefresh_secs = 3600", true);
    print!("{out}");
    clear_faults();
    assert!(
        out.contains("child: hung sign: Some(\"") && out.contains("CKR_DEVICE_ERROR"),
        "{out}"
    );
    assert!(out.contains("child: next sign ok true"), "{out}");
    // The hung call was abandoned at the deadline, not answered after 6 s.
    let ms: u64 = out
        .split("after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(ms < 6000, "{out}");
}

/// A second process on the same store: the same objects and ids, no Cloud KMS call
/// through C_Initialize..C_FindObjects, one AsymmetricSign per sign, one Decrypt for a
/// DEK's first use and none after.
#[test]
fn second_process_sees_same_objects_without_calls() {
    serial!();
    let s = session();
    ensure_shared(&s);
    if find(&s, ObjectClass::SECRET_KEY, "shared-dek").is_empty() {
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"shared-dek".to_vec()),
                Attribute::ValueLen(32.into()),
            ],
        )
        .unwrap();
    }
    // A listing fetched now is current for the child (refresh_secs = 3600).
    let _ = find(&s, ObjectClass::PRIVATE_KEY, "shared-ec");
    let out = run_child("warm", "refresh_secs = 3600", true);
    print!("{out}");
    assert!(out.contains("child: initialize+login+find: []"), "{out}");
    assert!(out.contains("child: id 5151"), "{out}");
    assert!(
        out.contains("child: one sign: [(\"AsymmetricSign\", 1)]"),
        "{out}"
    );
    assert!(
        out.contains("child: three uses of a DEK: [(\"Decrypt\", 1)]"),
        "{out}"
    );
}

#[test]
fn hsm_randomness_for_data_keys() {
    serial!();
    let _ = gcp();
    let out = run_child("hsm-random", "random = \"hsm\"", false);
    print!("{out}");
    assert!(
        out.contains("child: generate: [(\"Encrypt\", 1), (\"GenerateRandomBytes\", 1)]"),
        "{out}"
    );
    assert!(out.contains("child: round trip true"), "{out}");
}

/// `p11kms rewrap`: Decrypt + Encrypt of every DEK under the kek's primary version
/// (rotated first), after which the DEK still decrypts what it encrypted.
#[test]
fn rewrap_under_the_primary_version() {
    serial!();
    let s = session();
    let k = match find(&s, ObjectClass::SECRET_KEY, "rewrapped-dek").first() {
        Some(k) => *k,
        None => s
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Label(b"rewrapped-dek".to_vec()),
                    Attribute::ValueLen(32.into()),
                ],
            )
            .unwrap(),
    };
    let iv = [3u8; 16];
    let ct = s
        .encrypt(&Mechanism::AesCbcPad(iv), k, b"before the rewrap")
        .unwrap();
    // Rotate the kek: a new primary version.
    let v = rest_ok("POST", &format!("/v1/{KEK}/cryptoKeyVersions"), json!({}));
    let new_version = v["name"].as_str().unwrap().to_string();
    rest_ok(
        "POST",
        &format!("/v1/{KEK}:updatePrimaryVersion"),
        json!({"cryptoKeyVersionId": new_version.rsplit('/').next().unwrap()}),
    );
    let blobs = || -> Vec<Vec<u8>> {
        store_sql("SELECT hex(secret) FROM objects WHERE secret IS NOT NULL ORDER BY uid")
            .lines()
            .map(hex)
            .collect()
    };
    let old = blobs();
    let n = old.iter().filter(|b| b.first() == Some(&0xA2)).count();
    let g = gcp();
    let conf = g.dir.join("rewrap.toml");
    std::fs::write(&conf, config_text(&g.dir, "rewrap.log", "gcp.sqlite", "")).unwrap();
    let cli = p11kms_path().with_file_name("p11kms");
    let before = calls();
    let out = Command::new(&cli)
        .args(["rewrap", "gcp"])
        .env("P11KMS_CONF", &conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{n} data keys rewrapped")),
        "{stdout}"
    );
    assert_eq!(
        delta(&before),
        d(&[("Decrypt", n as u64), ("Encrypt", n as u64)])
    );
    let new = blobs();
    for (a, b) in old.iter().zip(&new) {
        if a.first() == Some(&0xA2) {
            assert_ne!(a, b, "blob not rewrapped");
            // The emulator's ciphertext names its version (bytes 4..8 after the tag).
            let vid = u32::from_be_bytes(b[5..9].try_into().unwrap());
            assert_eq!(vid.to_string(), new_version.rsplit('/').next().unwrap());
        }
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("P11KMS_CONF", &conf)
        .env("P11KMS_GCP_CHILD", "after-rewrap")
        .env("P11KMS_GCP_TEST_PORT", emulator().port.to_string())
        .env("CHILD_CT", hex_str(&ct))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("child: decrypts before the rewrap"),
        "{stdout}"
    );
}

/// One sign through the module vs the same AsymmetricSign made directly with
/// google-cloud-kms-v1, medians of 30 (reported, not asserted).
#[test]
fn sign_latency_module_vs_crate() {
    serial!();
    let s = session();
    let sh = ensure_shared(&s);
    let version = vendor(&s, sh, CKA_P11KMS_KEY_VERSION);
    let digest = sha("sha256", b"latency");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        google_cloud_kms_v1::client::KeyManagementService::builder()
            .with_endpoint(endpoint())
            .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
            .build()
            .await
            .unwrap()
    });
    let mut direct = || {
        rt.block_on(async {
            client
                .asymmetric_sign()
                .set_name(&version)
                .set_digest(google_cloud_kms_v1::model::Digest::new().set_sha256(digest.clone()))
                .send()
                .await
                .unwrap()
        });
    };
    let crate_us = median_of_30_us(&mut direct);
    let module_us = median_of_30_us(&mut || {
        s.sign(&Mechanism::EcdsaSha256, sh, b"latency").unwrap();
    });
    println!(
        "sign latency (median of 30): module {module_us} us, google-cloud-kms-v1 direct {crate_us} us, ratio {:.2}",
        module_us as f64 / crate_us.max(1) as f64
    );
}

/// `credentials` = a service-account JSON file: the client signs its own tokens and the
/// calls go through; a file that is no key is CKR_DEVICE_ERROR at the first call.
#[test]
fn credentials_from_a_key_file() {
    serial!();
    let s = session();
    ensure_shared(&s);
    let _ = find(&s, ObjectClass::PRIVATE_KEY, "shared-ec");
    let dir = &gcp().dir;
    let pem = String::from_utf8(openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        b"",
    ))
    .unwrap();
    let key = json!({
        "type": "service_account",
        "project_id": "p11kms-test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "p11kms@p11kms-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("{}/token", endpoint()),
    });
    let path = dir.join("sa.json");
    std::fs::write(&path, key.to_string()).unwrap();
    let creds = format!("credentials = \"{}\"", path.display());
    let out = run_child_with(
        "keyfile",
        "",
        false,
        &[("credentials = \"anonymous\"", creds)],
        &[],
    );
    print!("{out}");
    assert!(
        out.contains("child: sign with key-file credentials: Ok(())"),
        "{out}"
    );
    // The same key as Application Default Credentials (the default `credentials`).
    let out = run_child_with(
        "keyfile",
        "",
        false,
        &[("credentials = \"anonymous\"\n", String::new())],
        &[("GOOGLE_APPLICATION_CREDENTIALS", &path)],
    );
    print!("{out}");
    assert!(
        out.contains("child: sign with key-file credentials: Ok(())"),
        "ADC: {out}"
    );
    let bad = dir.join("not-a-key.json");
    std::fs::write(&bad, "{\"type\": \"api_key\"}").unwrap();
    let out = run_child_with(
        "badkeyfile",
        "",
        false,
        &[(
            "credentials = \"anonymous\"",
            format!("credentials = \"{}\"", bad.display()),
        )],
        &[],
    );
    print!("{out}");
    assert!(
        out.contains("child: data key generation: Err(DeviceError)"),
        "{out}"
    );
    let log = std::fs::read_to_string(dir.join("child-badkeyfile.log")).unwrap();
    assert!(log.contains("(credentials)"), "{log}");
}

/// A kek that is not in the key ring: NOT_FOUND on Encrypt is the token's problem, not
/// the application's key handle: CKR_DEVICE_ERROR.
#[test]
fn missing_kek_is_device_error() {
    serial!();
    let _ = gcp();
    let out = run_child_with(
        "nokek",
        "",
        false,
        &[("kek = \"kek\"", "kek = \"no-such-kek\"".to_string())],
        &[],
    );
    print!("{out}");
    assert!(
        out.contains("child: data key generation: Err(DeviceError)"),
        "{out}"
    );
    let log = std::fs::read_to_string(gcp().dir.join("child-nokek.log")).unwrap();
    assert!(log.contains("kms Encrypt failed (not found)"), "{log}");
}

/// A key ring that is not there: NOT_FOUND on CreateCryptoKey names the token's
/// configuration, not an application's key: CKR_DEVICE_ERROR (C_GenerateKeyPair has no
/// CKR_KEY_HANDLE_INVALID).
#[test]
fn missing_key_ring_is_device_error() {
    serial!();
    let _ = gcp();
    let out = run_child_with(
        "noring",
        "",
        false,
        &[(
            &format!("key_ring = \"{RING}\""),
            format!("key_ring = \"{RING}-gone\""),
        )],
        &[],
    );
    print!("{out}");
    assert!(
        out.contains("child: key pair generation: Err(DeviceError)"),
        "{out}"
    );
}

/// A closed port: the token still opens and lists from its cache; a sign is
/// CKR_DEVICE_ERROR (after the connect retries; the time is printed).
#[test]
fn unreachable_endpoint_is_device_error() {
    serial!();
    let s = session();
    ensure_shared(&s);
    let _ = find(&s, ObjectClass::PRIVATE_KEY, "shared-ec");
    let closed = free_port();
    let out = run_child_with(
        "unreachable",
        "refresh_secs = 3600\ntimeout_secs = 30",
        true,
        &[(
            &format!("endpoint = \"{}\"", endpoint()),
            format!("endpoint = \"http://127.0.0.1:{closed}\""),
        )],
        &[],
    );
    print!("{out}");
    assert!(
        out.contains("child: unreachable: Err(DeviceError)"),
        "{out}"
    );
    let log = std::fs::read_to_string(gcp().dir.join("child-unreachable.log")).unwrap();
    assert!(
        log.contains("kms AsymmetricSign failed (unreachable)"),
        "{log}"
    );
}
