// Bind the module's own symbols locally (-Bsymbolic): a host process that has also
// loaded another PKCS#11 module (p11-kit's proxy exports C_GetInterface too) must
// still reach ours through our function lists. Rust's own version script already
// keeps everything but the #[no_mangle] C_* entry points out of the dynamic table.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
    println!("cargo:rerun-if-changed=build.rs");
}
