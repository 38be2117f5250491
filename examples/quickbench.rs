//! A quick benchmark (not the full harness): C_Initialize time on the local token and
//! one-thread AES-256-GCM throughput on 16 KiB messages through the C ABI.
//!
//!   cargo run --release --example quickbench [-- path/to/libp11kms.so]

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let module = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/libp11kms.so").into()
    });
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("p11kms.conf");
    std::fs::write(
        &conf,
        format!(
            "[[token]]\nlabel = \"bench\"\nstore = \"{}\"\n",
            dir.path().join("bench.sqlite").display()
        ),
    )?;
    std::env::set_var("P11KMS_CONF", &conf);

    let p = Pkcs11::new(&module)?;
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = p.get_all_slots()?[0];
    let so = AuthPin::new("so-pin-1234".into());
    let pin = AuthPin::new("user-1234".into());
    p.init_token(slot, &so, "bench")?;
    {
        let s = p.open_rw_session(slot)?;
        s.login(UserType::So, Some(&so))?;
        s.init_pin(&pin)?;
    }
    let s = p.open_rw_session(slot)?;
    s.login(UserType::User, Some(&pin))?;
    let key = s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(true),
            Attribute::ValueLen(32.into()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ],
    )?;
    drop(s);
    p.finalize()?;

    // C_Initialize with one initialized token holding one key.
    let mut times = Vec::new();
    for _ in 0..20 {
        let p = Pkcs11::new(&module)?;
        let t = Instant::now();
        p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
        times.push(t.elapsed());
        p.finalize()?;
    }
    let p = Pkcs11::new(&module)?;
    times.sort();
    println!(
        "C_Initialize: median {:?}, min {:?} (20 runs)",
        times[10], times[0]
    );

    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let s = p.open_rw_session(slot)?;
    s.login(UserType::User, Some(&pin))?;
    let key = s
        .find_objects(&[Attribute::Class(cryptoki::object::ObjectClass::SECRET_KEY)])?
        .into_iter()
        .next()
        .unwrap_or(key);
    let data = vec![0x5au8; 16 * 1024];
    let mut iv = [0u8; 12];
    let n = 20_000u32;
    let mut out = Vec::new();
    let t = Instant::now();
    for i in 0..n {
        iv[..4].copy_from_slice(&i.to_be_bytes());
        let params = GcmParams::new(&mut iv, &[], 128.into())?;
        out = s.encrypt(&Mechanism::AesGcm(params), key, &data)?;
    }
    let el = t.elapsed();
    assert_eq!(out.len(), data.len() + 16);
    let mb = (n as f64 * data.len() as f64) / 1e6;
    println!(
        "AES-256-GCM encrypt 16 KiB, 1 thread: {:.0} MB/s, {:.1} us/op ({} ops)",
        mb / el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64,
        n
    );

    // The raw limit on this machine: aws-lc-rs sealing the same buffer in place.
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(|_| "key")?);
    let mut buf = data.clone();
    let t = Instant::now();
    for i in 0..n {
        iv[..4].copy_from_slice(&i.to_be_bytes());
        let nonce = Nonce::try_assume_unique_for_key(&iv).map_err(|_| "nonce")?;
        let tag = k
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf)
            .map_err(|_| "seal")?;
        let _ = std::hint::black_box(tag);
    }
    let el = t.elapsed();
    println!(
        "raw aws-lc-rs AES-256-GCM seal 16 KiB in place: {:.0} MB/s, {:.1} us/op",
        mb / el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
