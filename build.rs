// Bind the module's own symbols locally (-Bsymbolic): a host process that has also
// loaded another PKCS#11 module (p11-kit's proxy exports C_GetInterface too) must
// still reach ours through our function lists. Rust's own version script already
// keeps everything but the #[no_mangle] C_* entry points out of the dynamic table.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
    // Never unmap the module (-z nodelete): aws-lc registers per-thread destructors in
    // it, and a host that dlclose()s us while its threads live on (p11-kit, NSS, the
    // cryptoki crate's tests) would crash when those threads exit. The cost: state left
    // by a host that unloads without C_Finalize survives a reload.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // `cfg(kms)`: some cloud KMS backend is built (the code they share: runtime, remote
    // key listing, KMS-wrapped data keys).
    println!("cargo::rustc-check-cfg=cfg(kms)");
    if std::env::var_os("CARGO_FEATURE_AWS").is_some()
        || std::env::var_os("CARGO_FEATURE_GCP").is_some()
    {
        println!("cargo:rustc-cfg=kms");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
