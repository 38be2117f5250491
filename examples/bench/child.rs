//! Workloads that need a fresh process (a module reads its configuration once, at
//! C_Initialize): filling a token with objects, the cost of C_Initialize to a logged-in
//! session and of C_FindObjects among many objects, and a remote sign through an AWS
//! KMS emulator. The parent runs this same binary with a `*-child` first argument and
//! reads one `RESULT key=value ...` line from its stdout.

use crate::p11::{Tpl, P11, R};
use crate::work::{SO_PIN, USER_PIN};
use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Run `bench <args>` as a child with `P11KMS_CONF=conf`; its RESULT values.
pub fn run(conf: &Path, args: &[&str]) -> R<BTreeMap<String, f64>> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(args)
        .env("P11KMS_CONF", conf)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "child {args:?} failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or(format!("child {args:?}: no RESULT line in {text}"))?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect())
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

fn label(i: usize) -> String {
    format!("key-{i:05}")
}

fn id(i: usize) -> [u8; 4] {
    (i as u32).to_be_bytes()
}

/// `fill-child MODULE N`: a fresh token holding N token AES keys (label key-NNNNN,
/// CKA_ID the index), made with C_CreateObject in one session.
pub fn fill(module: &str, n: usize) -> R<()> {
    let m = P11::load(module, "p11kms")?;
    let slot = m.fresh_token("objects", SO_PIN, USER_PIN)?;
    let s = m.open(slot)?;
    m.login(s, CKU_USER, USER_PIN)?;
    let t = Instant::now();
    for i in 0..n {
        m.create(
            s,
            Tpl::new()
                .ulong(CKA_CLASS, CKO_SECRET_KEY)
                .ulong(CKA_KEY_TYPE, CKK_AES)
                .bool(CKA_TOKEN, true)
                .bool(CKA_PRIVATE, true)
                .bool(CKA_ENCRYPT, true)
                .bytes(CKA_LABEL, label(i).as_bytes())
                .bytes(CKA_ID, &id(i))
                .bytes(CKA_VALUE, &[i as u8; 32]),
        )?;
    }
    println!("RESULT fill_us={:.0}", us(t));
    m.finalize()
}

/// `init-child MODULE N`: time C_Initialize, C_OpenSession, C_Login in this fresh
/// process, then C_FindObjects by label and by id (first call, then the median of 21).
pub fn init(module: &str, n: usize) -> R<()> {
    // SAFETY of the timing: dlopen is not C_Initialize; load the library first.
    let lib = unsafe { libloading::Library::new(module) }.map_err(|e| e.to_string())?;
    drop(lib); // the module stays mapped (-z nodelete); P11::load maps nothing new
    let t = Instant::now();
    let m = P11::load(module, "p11kms")?;
    let init_us = us(t);
    let slot = m.slot_with_label("objects")?;
    let t = Instant::now();
    let s = m.open(slot)?;
    let open_us = us(t);
    let t = Instant::now();
    m.login(s, CKU_USER, USER_PIN)?;
    let login_us = us(t);
    let want = n / 2;
    let by_label = || m.find(s, &mut Tpl::new().bytes(CKA_LABEL, label(want).as_bytes()));
    let t = Instant::now();
    let first = by_label()?;
    let find_label_first_us = us(t);
    let find_label_us = median_us(21, || by_label().map(|_| ()))?;
    let by_id = || m.find(s, &mut Tpl::new().bytes(CKA_ID, &id(want)));
    let found_id = by_id()?;
    let find_id_us = median_us(21, || by_id().map(|_| ()))?;
    let by_class = || m.find(s, &mut Tpl::new().ulong(CKA_CLASS, CKO_SECRET_KEY));
    let all = by_class()?;
    if first.len() != 1 || found_id.len() != 1 || all.len() != n || first != found_id {
        return Err(format!(
            "find among {n}: by label {} hits, by id {}, by class {}",
            first.len(),
            found_id.len(),
            all.len()
        ));
    }
    // The KDF alone, in this process too (its first 19 MiB cost page faults here as in
    // the module's run): what "C_Login minus the key derivation" subtracts.
    let argon2 = argon2_us();
    println!(
        "RESULT init_us={init_us:.0} open_us={open_us:.0} login_us={login_us:.0} \
         find_label_first_us={find_label_first_us:.1} find_label_us={find_label_us:.1} \
         find_id_us={find_id_us:.1} argon2_us={argon2:.0}"
    );
    m.finalize()
}

fn median_us(n: usize, mut f: impl FnMut() -> R<()>) -> R<f64> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        v.push(us(t));
    }
    v.sort_by(f64::total_cmp);
    Ok(v[n / 2])
}

/// Argon2id at the module's default cost (KdfParams::default in src/backend/local.rs:
/// 19 MiB, 2 passes, 1 lane): what one C_Login spends on the PIN, reported apart.
pub fn argon2_us() -> f64 {
    use argon2::{Algorithm, Argon2, Params, Version};
    let a = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19456, 2, 1, Some(32)).expect("params"),
    );
    let mut out = [0u8; 32];
    let mut v: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            a.hash_password_into(b"123456", &[9u8; 16], &mut out)
                .expect("argon2");
            us(t)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[1]
}

/// `remote-child MODULE N`: on an AWS token (the emulator), one ECDSA P-256 sign of a
/// digest through the module against the same KMS Sign made directly with aws-sdk-kms,
/// interleaved, N of each; and the KMS calls the module made per sign (its debug log).
#[cfg(feature = "aws")]
pub fn remote(module: &str, n: usize, log: &Path) -> R<()> {
    use aws_sdk_kms::primitives::Blob;
    use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
    let m = P11::load(module, "p11kms")?;
    let slot = m.fresh_token("aws", SO_PIN, USER_PIN)?;
    let s = m.open(slot)?;
    m.login(s, CKU_USER, USER_PIN)?;
    let (_, sk) = m.generate_pair(
        s,
        CKM_EC_KEY_PAIR_GEN,
        Tpl::new()
            .bool(CKA_TOKEN, true)
            .bool(CKA_VERIFY, true)
            .bytes(CKA_EC_PARAMS, &[6, 8, 42, 134, 72, 206, 61, 3, 1, 7]),
        Tpl::new()
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, true)
            .bool(CKA_SIGN, true)
            .bytes(CKA_LABEL, b"bench-sign"),
    )?;
    const CKA_P11KMS_KEY_ARN: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x504B_0001;
    let arn = String::from_utf8(m.attr(s, sk, CKA_P11KMS_KEY_ARN)?).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        aws_sdk_kms::Client::new(&conf)
    });
    let digest = [0x5au8; 32];
    let mut sig = [0u8; 64];
    let mut via_module = || {
        m.sign(s, &mut crate::p11::mech(CKM_ECDSA), sk, &digest, &mut sig);
    };
    let direct = || {
        rt.block_on(
            client
                .sign()
                .key_id(&arn)
                .message(Blob::new(digest.to_vec()))
                .message_type(MessageType::Digest)
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .send(),
        )
        .expect("KMS Sign");
    };
    via_module(); // connection set-up, outside the samples
    direct();
    // LOG "-": no call count (the timed run logs nothing).
    let counting = log != Path::new("-");
    let calls = || -> R<usize> {
        if !counting {
            return Ok(0);
        }
        let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
        Ok(text.lines().filter(|l| l.contains("kms call: ")).count())
    };
    let before = calls()?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    // Interleaved, and in turn first: the emulator is slower right after a call (it
    // finishes the previous request's work), which would favour whichever goes first.
    let mut direct = direct;
    for i in 0..n {
        let timed = |f: &mut dyn FnMut(), into: &mut Vec<f64>| {
            let t = Instant::now();
            f();
            into.push(us(t));
        };
        if i % 2 == 0 {
            timed(&mut via_module, &mut a);
            timed(&mut direct, &mut b);
        } else {
            timed(&mut direct, &mut b);
            timed(&mut via_module, &mut a);
        }
    }
    let per_sign = if counting {
        (calls()? - before) as f64 / n as f64
    } else {
        f64::NAN
    };
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (ma, mb) = (a[n / 2], b[n / 2]);
    println!(
        "RESULT module_us={ma:.0} sdk_us={mb:.0} ratio={:.3} kms_calls_per_sign={per_sign:.2}",
        ma / mb
    );
    m.finalize()
}
