//! Shared helpers for the integration tests.
//!
//! The tests load a PKCS#11 module the way an application does. By default that is
//! p11kms (`P11KMS_MODULE`, else `<manifest>/target/release/libp11kms.so`); with
//! `P11KMS_TEST_REFERENCE=softhsm` it is SoftHSM, the conformance reference, so the test
//! code itself can be checked against an independent implementation.
#![allow(dead_code)]

pub mod kms;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;

pub const SO_PIN: &str = "so-pin-1234";
pub const USER_PIN: &str = "user-pin-1234";

/// SoftHSM's module path on Debian.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// True when the suite runs against the reference module (SoftHSM) instead of p11kms.
pub fn is_reference() -> bool {
    matches!(
        std::env::var("P11KMS_TEST_REFERENCE").as_deref(),
        Ok("softhsm")
    )
}

/// Path of the p11kms shared library under test: `P11KMS_MODULE`, else
/// `<manifest>/target/release/libp11kms.so`. `cargo test` alone builds the cdylib only in
/// `deps/` beside the test binary without copying it up, so that copy is the fallback.
pub fn p11kms_path() -> PathBuf {
    if let Some(p) = std::env::var_os("P11KMS_MODULE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let primary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libp11kms.so");
    if !primary.exists() {
        if let Some(sibling) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("libp11kms.so")))
            .filter(|p| p.exists())
        {
            return sibling;
        }
    }
    primary
}

/// Path of the module the suite loads: p11kms, or SoftHSM under the reference run.
pub fn module_path() -> PathBuf {
    if is_reference() {
        PathBuf::from(SOFTHSM_MODULE)
    } else {
        p11kms_path()
    }
}

/// Returns true (and says so) when a p11kms-only test must be skipped.
pub fn skip_p11kms_only() -> bool {
    if is_reference() {
        println!("skipped: p11kms-only");
        true
    } else {
        false
    }
}

/// Early-return from a test that exercises behaviour only p11kms promises.
#[macro_export]
macro_rules! p11kms_only {
    () => {
        if $crate::common::skip_p11kms_only() {
            return;
        }
    };
}

/// One `[[token]]` of the generated configuration.
#[derive(Clone, Copy, Debug)]
pub struct TokenSpec {
    pub label: &'static str,
    pub max_pin_attempts: Option<u32>,
}

pub const fn tok(label: &'static str) -> TokenSpec {
    TokenSpec {
        label,
        max_pin_attempts: None,
    }
}

/// Writes a p11kms configuration with one local token per spec; returns its path.
pub fn write_p11kms_config(dir: &Path, tokens: &[TokenSpec]) -> PathBuf {
    let mut s = String::from("log_level = \"warn\"\n");
    for t in tokens {
        s.push_str(&format!(
            "\n[[token]]\nlabel = \"{}\"\nbackend = \"local\"\nstore = \"{}\"\n",
            t.label,
            dir.join(format!("{}.sqlite", t.label)).display()
        ));
        if let Some(n) = t.max_pin_attempts {
            s.push_str(&format!("max_pin_attempts = {n}\n"));
        }
    }
    let path = dir.join("p11kms.toml");
    std::fs::write(&path, s).unwrap();
    path
}

/// Writes a SoftHSM configuration with a token directory under `dir`; returns its path.
pub fn write_softhsm_config(dir: &Path) -> PathBuf {
    let tokens = dir.join("softhsm-tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let path = dir.join("softhsm2.conf");
    std::fs::write(
        &path,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    path
}

/// Points the module's configuration variables at files in `dir` (before C_Initialize).
pub fn configure_env(dir: &Path, tokens: &[TokenSpec]) {
    // Keep both modules away from the user's own configuration and data.
    std::env::set_var("XDG_DATA_HOME", dir.join("xdg-data"));
    std::env::set_var("XDG_CONFIG_HOME", dir.join("xdg-config"));
    if is_reference() {
        let conf = write_softhsm_config(dir);
        std::env::set_var("SOFTHSM2_CONF", conf);
    } else {
        let conf = write_p11kms_config(dir, tokens);
        std::env::set_var("P11KMS_CONF", conf);
    }
}

/// The process-wide test environment: one initialized context over many tokens.
pub struct Env {
    pub ctx: Pkcs11,
    pub dir: tempfile::TempDir,
    pub tokens: Vec<TokenSpec>,
}

static ENV: OnceLock<Env> = OnceLock::new();

/// Loads and initializes the module once per test binary (C_Initialize is process-global).
pub fn env(tokens: &[TokenSpec]) -> &'static Env {
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        configure_env(dir.path(), tokens);
        let ctx = Pkcs11::new(module_path())
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", module_path().display()));
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("C_Initialize");
        Env {
            ctx,
            dir,
            tokens: tokens.to_vec(),
        }
    })
}

/// Serializes SoftHSM's single "next uninitialized token" slot between test threads.
static SOFTHSM_INIT: Mutex<()> = Mutex::new(());

impl Env {
    /// The slot reserved for `label` in the configuration, uninitialized (p11kms only).
    fn p11kms_slot(&self, label: &str) -> Slot {
        let idx = self
            .tokens
            .iter()
            .position(|t| t.label == label)
            .unwrap_or_else(|| panic!("token {label} is not in this binary's token list"));
        Slot::try_from(idx as u64).unwrap()
    }

    /// Runs `f` on an uninitialized token reserved for `label`; `f` must C_InitToken it with
    /// that label. Returns the slot of the now-initialized token, found by label.
    pub fn with_uninit_token(&self, label: &str, f: impl FnOnce(Slot)) -> Slot {
        if is_reference() {
            let _g = SOFTHSM_INIT.lock().unwrap_or_else(|e| e.into_inner());
            let slot = self
                .ctx
                .get_all_slots()
                .unwrap()
                .into_iter()
                .find(|s| !self.ctx.get_token_info(*s).unwrap().token_initialized())
                .expect("SoftHSM always offers one uninitialized token");
            f(slot);
            self.slot_by_label(label)
        } else {
            let slot = self.p11kms_slot(label);
            f(slot);
            slot
        }
    }

    /// A token initialized with [`SO_PIN`] and `label`, no user PIN yet.
    pub fn fresh_token(&self, label: &str) -> Slot {
        self.with_uninit_token(label, |slot| {
            self.ctx
                .init_token(slot, &pin(SO_PIN), label)
                .expect("C_InitToken");
        })
    }

    /// A fresh token whose user PIN is [`USER_PIN`].
    pub fn user_token(&self, label: &str) -> Slot {
        let slot = self.fresh_token(label);
        let s = self.ctx.open_rw_session(slot).unwrap();
        s.login(UserType::So, Some(&pin(SO_PIN))).expect("SO login");
        s.init_pin(&pin(USER_PIN)).expect("C_InitPIN");
        s.logout().unwrap();
        slot
    }

    /// A RW session on `slot`, logged in as the user (or already logged in by another one).
    pub fn user_session(&self, slot: Slot) -> Session {
        let s = self.ctx.open_rw_session(slot).unwrap();
        match s.login(UserType::User, Some(&pin(USER_PIN))) {
            Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => s,
            Err(e) => panic!("user login: {e}"),
        }
    }

    /// The slot whose initialized token carries `label`.
    pub fn slot_by_label(&self, label: &str) -> Slot {
        for s in self.ctx.get_slots_with_token().unwrap() {
            let info = self.ctx.get_token_info(s).unwrap();
            if info.token_initialized() && info.label() == label {
                return s;
            }
        }
        panic!("no initialized token labelled {label}");
    }

    /// Raw function list of the same loaded module (shares its state and handles).
    pub fn raw(&self) -> &'static Raw {
        raw()
    }
}

pub fn pin(s: &str) -> AuthPin {
    AuthPin::new(s.into())
}

/// The PKCS#11 error code of a failed cryptoki call; panics on success.
#[track_caller]
pub fn rv_err<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        Err(e) => panic!("expected a PKCS#11 error, got {e}"),
        Ok(v) => panic!("expected a PKCS#11 error, got Ok({v:?})"),
    }
}

// ---------------------------------------------------------------------------------------
// Raw access to the function lists, for what the cryptoki wrapper hides (per-entry
// attribute results, buffer-size conventions, NULL pointers).

/// The module's 2.40 function list (and 3.0 one when it has C_GetInterface).
pub struct Raw {
    pub lib: libloading::Library,
    pub f: &'static CK_FUNCTION_LIST,
}

static RAW: OnceLock<Raw> = OnceLock::new();

/// Loads the module a second time through libloading; the dynamic loader hands back the
/// same instance, so the state initialized by cryptoki is shared.
pub fn raw() -> &'static Raw {
    RAW.get_or_init(|| unsafe {
        let lib = libloading::Library::new(module_path()).unwrap();
        let gfl: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
            lib.get(b"C_GetFunctionList\0").unwrap();
        let mut p: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        assert_eq!(gfl(&mut p), CKR_OK);
        assert!(!p.is_null());
        Raw { f: &*p, lib }
    })
}

/// Calls a function of the raw 2.40 list: `call!(C_Encrypt, a, b, ...)` → CK_RV.
/// Every use is a raw FFI call with caller-built pointers: unsafe by nature.
#[macro_export]
macro_rules! call {
    ($name:ident $(, $arg:expr)* $(,)?) => {
        unsafe { ($crate::common::raw().f.$name.expect(stringify!($name)))($($arg),*) }
    };
}

/// C_EncryptInit on session `h` with AES-GCM: a 96-bit IV of ones, no AAD, a 128-bit tag.
pub fn gcm_encrypt_init(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    let mut iv = [1u8; 12];
    let mut p = CK_GCM_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: 12,
        ulIvBits: 96,
        pAAD: std::ptr::null_mut(),
        ulAADLen: 0,
        ulTagBits: 128,
    };
    let mut m = CK_MECHANISM {
        mechanism: CKM_AES_GCM,
        pParameter: (&mut p as *mut CK_GCM_PARAMS).cast(),
        ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG,
    };
    call!(C_EncryptInit, h, &mut m, key)
}

/// C_Encrypt of 64 bytes of 9s with room for a 16-byte tag: the code and the output.
pub fn encrypt_64(h: CK_SESSION_HANDLE) -> (CK_RV, Vec<u8>) {
    let mut data = [9u8; 64];
    let mut out = vec![0u8; 80];
    let mut n = out.len() as CK_ULONG;
    let rv = call!(
        C_Encrypt,
        h,
        data.as_mut_ptr(),
        64,
        out.as_mut_ptr(),
        &mut n
    );
    out.truncate(n as usize);
    (rv, out)
}

/// Name of a CK_RV for assertion messages.
pub fn rv_name(rv: CK_RV) -> String {
    format!("{rv:#x}")
}

// ---------------------------------------------------------------------------------------
// Encodings.

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Reads one DER TLV: (tag, content, rest).
pub fn der_read(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, hdr) = if input[1] < 0x80 {
        (input[1] as usize, 2)
    } else {
        let n = (input[1] & 0x7f) as usize;
        let mut l = 0usize;
        for b in &input[2..2 + n] {
            l = (l << 8) | *b as usize;
        }
        (l, 2 + n)
    };
    (tag, &input[hdr..hdr + len], &input[hdr + len..])
}

pub fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let b = len.to_be_bytes();
        let skip = b.iter().take_while(|x| **x == 0).count();
        let mut v = vec![0x80 | (b.len() - skip) as u8];
        v.extend_from_slice(&b[skip..]);
        v
    }
}

pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(content.len()));
    v.extend_from_slice(content);
    v
}

/// DER INTEGER of an unsigned big-endian value.
pub fn der_uint(be: &[u8]) -> Vec<u8> {
    let mut b: &[u8] = be;
    while b.len() > 1 && b[0] == 0 {
        b = &b[1..];
    }
    let mut c = Vec::new();
    if b[0] & 0x80 != 0 {
        c.push(0);
    }
    c.extend_from_slice(b);
    der(0x02, &c)
}

/// Strips the DER sign byte from an INTEGER's content.
pub fn uint_bytes(content: &[u8]) -> &[u8] {
    if content.len() > 1 && content[0] == 0 {
        &content[1..]
    } else {
        content
    }
}

pub const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER CKA_EC_PARAMS (namedCurve OIDs).
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
pub const P521_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];

/// SubjectPublicKeyInfo of an RSA public key.
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let alg = der(0x30, &[OID_RSA_ENCRYPTION, &[0x05, 0x00]].concat());
    let key = der(0x30, &[der_uint(n), der_uint(e)].concat());
    let bits = der(0x03, &[&[0u8][..], &key].concat());
    der(0x30, &[alg, bits].concat())
}

/// SubjectPublicKeyInfo of an EC public key (`point` = 04||X||Y).
pub fn ec_spki(params: &[u8], point: &[u8]) -> Vec<u8> {
    let alg = der(0x30, &[OID_EC_PUBLIC_KEY, params].concat());
    let bits = der(0x03, &[&[0u8][..], point].concat());
    der(0x30, &[alg, bits].concat())
}

/// The uncompressed point inside CKA_EC_POINT (a DER OCTET STRING).
pub fn ec_point_from_attr(attr: &[u8]) -> Vec<u8> {
    let (tag, content, rest) = der_read(attr);
    assert_eq!(tag, 0x04, "CKA_EC_POINT must be a DER OCTET STRING");
    assert!(rest.is_empty());
    assert_eq!(content[0], 0x04, "point must be uncompressed");
    content.to_vec()
}

/// PKCS#11 ECDSA signature (r||s) as a DER Ecdsa-Sig-Value.
pub fn ecdsa_to_der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    der(0x30, &[der_uint(r), der_uint(s)].concat())
}

/// DigestInfo prefix for PKCS#1 v1.5 signatures over a precomputed hash.
pub fn digest_info(hash: &str, digest: &[u8]) -> Vec<u8> {
    let prefix = match hash {
        "sha1" => hex("3021300906052b0e03021a05000414"),
        "sha224" => hex("302d300d06096086480165030402040500041c"),
        "sha256" => hex("3031300d060960864801650304020105000420"),
        "sha384" => hex("3041300d060960864801650304020205000430"),
        "sha512" => hex("3051300d060960864801650304020305000440"),
        _ => panic!("{hash}"),
    };
    [prefix, digest.to_vec()].concat()
}

/// Digest with aws-lc-rs (independent of the module).
pub fn sha(hash: &str, data: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest;
    let alg = match hash {
        "sha1" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        "sha224" => &digest::SHA224,
        "sha256" => &digest::SHA256,
        "sha384" => &digest::SHA384,
        "sha512" => &digest::SHA512,
        _ => panic!("{hash}"),
    };
    digest::digest(alg, data).as_ref().to_vec()
}

/// An RSA private key made by openssl, with its PKCS#1 components.
pub struct RsaKey {
    pub pkcs8_der: Vec<u8>,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Vec<u8>,
    pub p: Vec<u8>,
    pub q: Vec<u8>,
    pub dp: Vec<u8>,
    pub dq: Vec<u8>,
    pub qinv: Vec<u8>,
}

/// Generates an RSA key with the openssl CLI (independent of the module).
pub fn openssl_rsa_key(bits: u32) -> RsaKey {
    let pkcs8 = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-outform",
            "DER",
        ],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let p8 = dir.path().join("k.der");
    std::fs::write(&p8, &pkcs8).unwrap();
    let pkcs1 = openssl(
        &[
            "rsa",
            "-inform",
            "DER",
            "-in",
            p8.to_str().unwrap(),
            "-traditional",
            "-outform",
            "DER",
        ],
        &[],
    );
    let (_, seq, _) = der_read(&pkcs1);
    let mut ints = Vec::new();
    let mut rest = seq;
    while !rest.is_empty() {
        let (tag, c, r) = der_read(rest);
        assert_eq!(tag, 0x02);
        ints.push(uint_bytes(c).to_vec());
        rest = r;
    }
    assert_eq!(ints.len(), 9);
    RsaKey {
        pkcs8_der: pkcs8,
        n: ints[1].clone(),
        e: ints[2].clone(),
        d: ints[3].clone(),
        p: ints[4].clone(),
        q: ints[5].clone(),
        dp: ints[6].clone(),
        dq: ints[7].clone(),
        qinv: ints[8].clone(),
    }
}

/// Runs the openssl CLI; panics with its stderr on failure.
pub fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let (ok, out, err) = openssl_status(args, stdin);
    assert!(ok, "openssl {args:?} failed: {err}");
    out
}

/// Runs the openssl CLI: (success, stdout, stderr).
pub fn openssl_status(args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl CLI");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Verifies an RSA signature with `openssl dgst`; `pss` uses salt length = digest length.
/// `openssl dgst -verify` of a DER signature `sig_der` over `msg` with the DER SPKI `spki`.
pub fn openssl_verify_spki(spki: &[u8], hash: &str, msg: &[u8], sig_der: &[u8]) -> bool {
    let d = tempfile::tempdir().unwrap();
    let k = d.path().join("k.der");
    let sg = d.path().join("s");
    std::fs::write(&k, spki).unwrap();
    std::fs::write(&sg, sig_der).unwrap();
    let (ok, out, _) = openssl_status(
        &[
            "dgst",
            &format!("-{hash}"),
            "-keyform",
            "DER",
            "-verify",
            k.to_str().unwrap(),
            "-signature",
            sg.to_str().unwrap(),
        ],
        msg,
    );
    ok && String::from_utf8_lossy(&out).contains("Verified OK")
}

pub fn openssl_rsa_verify(spki_der: &[u8], hash: &str, msg: &[u8], sig: &[u8], pss: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("pub.der");
    let s = dir.path().join("sig");
    std::fs::write(&k, spki_der).unwrap();
    std::fs::write(&s, sig).unwrap();
    let mut args = vec![
        "dgst".to_string(),
        format!("-{hash}"),
        "-keyform".into(),
        "DER".into(),
        "-verify".into(),
        k.to_str().unwrap().into(),
        "-signature".into(),
        s.to_str().unwrap().into(),
    ];
    if pss {
        args.extend(
            [
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]
            .map(String::from),
        );
    }
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let (ok, out, _) = openssl_status(&a, msg);
    ok && String::from_utf8_lossy(&out).contains("Verified OK")
}

/// Verifies a PKCS#11 ECDSA signature (r||s) with aws-lc-rs.
pub fn ecdsa_verify(params: &[u8], point: &[u8], hash: &str, msg: &[u8], sig: &[u8]) -> bool {
    use aws_lc_rs::signature::*;
    let alg: &'static dyn VerificationAlgorithm = match (params, hash) {
        (p, "sha1") if p == P256_PARAMS => &ECDSA_P256_SHA1_ASN1,
        (p, "sha256") if p == P256_PARAMS => &ECDSA_P256_SHA256_ASN1,
        (p, "sha384") if p == P256_PARAMS => &ECDSA_P256_SHA384_ASN1,
        (p, "sha512") if p == P256_PARAMS => &ECDSA_P256_SHA512_ASN1,
        (p, "sha256") if p == P384_PARAMS => &ECDSA_P384_SHA256_ASN1,
        (p, "sha384") if p == P384_PARAMS => &ECDSA_P384_SHA384_ASN1,
        (p, "sha512") if p == P384_PARAMS => &ECDSA_P384_SHA512_ASN1,
        (p, "sha1") if p == P521_PARAMS => &ECDSA_P521_SHA1_ASN1,
        (p, "sha224") if p == P521_PARAMS => &ECDSA_P521_SHA224_ASN1,
        (p, "sha256") if p == P521_PARAMS => &ECDSA_P521_SHA256_ASN1,
        (p, "sha384") if p == P521_PARAMS => &ECDSA_P521_SHA384_ASN1,
        (p, "sha512") if p == P521_PARAMS => &ECDSA_P521_SHA512_ASN1,
        _ => panic!("no verifier for {hash}"),
    };
    UnparsedPublicKey::new(alg, point)
        .verify(msg, &ecdsa_to_der(sig))
        .is_ok()
}

/// Field size in bytes of a curve given by its DER params.
pub fn curve_bytes(params: &[u8]) -> usize {
    if params == P256_PARAMS {
        32
    } else if params == P384_PARAMS {
        48
    } else {
        66
    }
}

/// Space-padded 32-byte label as it appears in CK_TOKEN_INFO.
pub fn padded32(s: &str) -> [u8; 32] {
    let mut b = [b' '; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    b
}

/// Reads one attribute with the two-call convention through the raw list.
pub fn get_attr(
    session: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    t: CK_ATTRIBUTE_TYPE,
) -> Result<Vec<u8>, CK_RV> {
    let mut a = CK_ATTRIBUTE {
        type_: t,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    };
    let rv = call!(C_GetAttributeValue, session, obj, &mut a, 1);
    if rv != CKR_OK {
        return Err(rv);
    }
    assert_ne!(
        a.ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "CKR_OK with unavailable length"
    );
    let mut buf = vec![0u8; a.ulValueLen as usize];
    a.pValue = buf.as_mut_ptr().cast();
    let rv = call!(C_GetAttributeValue, session, obj, &mut a, 1);
    if rv != CKR_OK {
        return Err(rv);
    }
    buf.truncate(a.ulValueLen as usize);
    Ok(buf)
}

/// A CK_BBOOL attribute.
#[track_caller]
pub fn attr_bool(
    session: &Session,
    obj: cryptoki::object::ObjectHandle,
    t: CK_ATTRIBUTE_TYPE,
) -> bool {
    let v = get_attr(session.handle(), obj.handle(), t)
        .unwrap_or_else(|rv| panic!("attribute {t:#x}: rv {rv:#x}"));
    assert_eq!(v.len(), 1, "CK_BBOOL is one byte");
    v[0] != 0
}

/// A CK_ULONG attribute.
#[track_caller]
pub fn attr_ulong(
    session: &Session,
    obj: cryptoki::object::ObjectHandle,
    t: CK_ATTRIBUTE_TYPE,
) -> CK_ULONG {
    let v = get_attr(session.handle(), obj.handle(), t)
        .unwrap_or_else(|rv| panic!("attribute {t:#x}: rv {rv:#x}"));
    assert_eq!(v.len(), std::mem::size_of::<CK_ULONG>());
    CK_ULONG::from_ne_bytes(v.try_into().unwrap())
}

/// A byte-array attribute.
#[track_caller]
pub fn attr_bytes(
    session: &Session,
    obj: cryptoki::object::ObjectHandle,
    t: CK_ATTRIBUTE_TYPE,
) -> Vec<u8> {
    get_attr(session.handle(), obj.handle(), t)
        .unwrap_or_else(|rv| panic!("attribute {t:#x}: rv {rv:#x}"))
}
