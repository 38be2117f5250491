//! Minimal safe wrappers over AWS-LC (`aws-lc-sys`, the same libcrypto aws-lc-rs links)
//! for the RSA operations aws-lc-rs does not expose: PKCS#1 v1.5 signing of caller-built
//! data (CKM_RSA_PKCS over a DigestInfo or any short string), PSS over a digest with any
//! salt length, recovery for verifying those, and key generation of any size.
//!
//! Every pointer AWS-LC returns is checked; every object is owned by an RAII wrapper;
//! nothing here panics. Failures are a bare [`Failed`]: callers map them to the spec code
//! that fits their context, and the AWS-LC error queue is cleared so no stale entry leaks
//! into a later, unrelated call on the same thread.

use aws_lc_sys as sys;
use std::ffi::c_int;
use std::ptr::{self, NonNull};
use zeroize::Zeroizing;

/// An AWS-LC call failed (bad key, bad input, or internal error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed;

type Res<T> = std::result::Result<T, Failed>;

fn failed<T>() -> Res<T> {
    // SAFETY: clears this thread's error queue; no arguments.
    unsafe { sys::ERR_clear_error() };
    Err(Failed)
}

/// Hash functions for PSS (message digest and MGF1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Md {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Md {
    fn evp(self) -> Res<*const sys::EVP_MD> {
        // SAFETY: these return pointers to static, immutable EVP_MD tables.
        let md = unsafe {
            match self {
                Md::Sha1 => sys::EVP_sha1(),
                Md::Sha224 => sys::EVP_sha224(),
                Md::Sha256 => sys::EVP_sha256(),
                Md::Sha384 => sys::EVP_sha384(),
                Md::Sha512 => sys::EVP_sha512(),
            }
        };
        if md.is_null() {
            return failed();
        }
        Ok(md)
    }
}

/// An owned AWS-LC `RSA` (public, or private with CRT values).
pub struct Rsa(NonNull<sys::RSA>);

// SAFETY: an AWS-LC RSA object is safe to use from several threads at once for the
// operations exposed here (sign/verify/encode); the lazily-built Montgomery and blinding
// caches those operations fill are guarded by the object's internal lock. Nothing here
// mutates the key after construction.
unsafe impl Send for Rsa {}
unsafe impl Sync for Rsa {}

impl Drop for Rsa {
    fn drop(&mut self) {
        // SAFETY: we own the only reference taken at construction.
        unsafe { sys::RSA_free(self.0.as_ptr()) };
    }
}

/// An owned BIGNUM, freed on drop.
struct Bn(NonNull<sys::BIGNUM>);

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: owned, allocated by BN_new.
        unsafe { sys::BN_free(self.0.as_ptr()) };
    }
}

impl Rsa {
    fn from_ptr(p: *mut sys::RSA) -> Res<Rsa> {
        match NonNull::new(p) {
            Some(p) => Ok(Rsa(p)),
            None => failed(),
        }
    }

    /// Parse a PKCS#1 `RSAPrivateKey` (AWS-LC runs `RSA_check_key` on it, so
    /// inconsistent components are rejected).
    pub fn from_pkcs1_private_der(der: &[u8]) -> Res<Rsa> {
        // SAFETY: der is a valid slice for its length; the result is checked.
        Self::from_ptr(unsafe { sys::RSA_private_key_from_bytes(der.as_ptr(), der.len()) })
    }

    /// Parse a PKCS#1 `RSAPublicKey`.
    pub fn from_pkcs1_public_der(der: &[u8]) -> Res<Rsa> {
        // SAFETY: as above.
        Self::from_ptr(unsafe { sys::RSA_public_key_from_bytes(der.as_ptr(), der.len()) })
    }

    /// Generate a key of `bits` bits with public exponent 65537. AWS-LC rounds `bits`
    /// down to a multiple of 128, so callers must pass a multiple of 128.
    pub fn generate(bits: u32) -> Res<Rsa> {
        if bits % 128 != 0 || !(1024..=16384).contains(&bits) {
            return Err(Failed);
        }
        // SAFETY: BN_new returns an owned BIGNUM or NULL (checked).
        let e = match NonNull::new(unsafe { sys::BN_new() }) {
            Some(p) => Bn(p),
            None => return failed(),
        };
        // SAFETY: e is a valid BIGNUM.
        if unsafe { sys::BN_set_word(e.0.as_ptr(), 65537) } != 1 {
            return failed();
        }
        // SAFETY: RSA_new returns an owned RSA or NULL (checked by from_ptr).
        let rsa = Self::from_ptr(unsafe { sys::RSA_new() })?;
        // SAFETY: rsa and e are valid; no callback.
        let ok = unsafe {
            sys::RSA_generate_key_ex(rsa.0.as_ptr(), bits as c_int, e.0.as_ptr(), ptr::null_mut())
        };
        if ok != 1 {
            return failed();
        }
        Ok(rsa)
    }

    /// Encode the private key as PKCS#1 `RSAPrivateKey` DER.
    pub fn to_pkcs1_private_der(&self) -> Res<Zeroizing<Vec<u8>>> {
        let mut out: *mut u8 = ptr::null_mut();
        let mut len: usize = 0;
        // SAFETY: out/len are valid out-pointers; on success AWS-LC allocates `out`.
        if unsafe { sys::RSA_private_key_to_bytes(&mut out, &mut len, self.0.as_ptr()) } != 1
            || out.is_null()
        {
            return failed();
        }
        // SAFETY: AWS-LC returned `len` initialised bytes at `out`.
        let der = Zeroizing::new(unsafe { std::slice::from_raw_parts(out, len) }.to_vec());
        // SAFETY: `out` came from OPENSSL_malloc; OPENSSL_free also cleanses it.
        unsafe { sys::OPENSSL_free(out.cast()) };
        Ok(der)
    }

    /// Modulus length in bytes (the signature length).
    pub fn size(&self) -> usize {
        // SAFETY: valid RSA.
        unsafe { sys::RSA_size(self.0.as_ptr()) as usize }
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        // SAFETY: valid RSA.
        unsafe { sys::RSA_bits(self.0.as_ptr()) as usize }
    }

    /// EMSA-PKCS1-v1_5 (block type 1) private-key operation over `data` exactly as given
    /// (the caller builds any DigestInfo). `data` must be at most `size() - 11` bytes.
    pub fn sign_pkcs1_raw(&self, data: &[u8]) -> Res<Vec<u8>> {
        let k = self.size();
        if data.len() + 11 > k {
            return Err(Failed);
        }
        let mut out = vec![0u8; k];
        let mut out_len = 0usize;
        // SAFETY: out has k writable bytes; data is a valid slice.
        let ok = unsafe {
            sys::RSA_sign_raw(
                self.0.as_ptr(),
                &mut out_len,
                out.as_mut_ptr(),
                out.len(),
                data.as_ptr(),
                data.len(),
                sys::RSA_PKCS1_PADDING as c_int,
            )
        };
        if ok != 1 || out_len != k {
            return failed();
        }
        Ok(out)
    }

    /// Public-key operation and PKCS#1 v1.5 block type 1 check: the data that was signed.
    pub fn verify_pkcs1_raw(&self, sig: &[u8]) -> Res<Vec<u8>> {
        let k = self.size();
        if sig.len() != k {
            return Err(Failed);
        }
        let mut out = vec![0u8; k];
        let mut out_len = 0usize;
        // SAFETY: out has k writable bytes; sig is a valid slice.
        let ok = unsafe {
            sys::RSA_verify_raw(
                self.0.as_ptr(),
                &mut out_len,
                out.as_mut_ptr(),
                out.len(),
                sig.as_ptr(),
                sig.len(),
                sys::RSA_PKCS1_PADDING as c_int,
            )
        };
        if ok != 1 || out_len > k {
            return failed();
        }
        out.truncate(out_len);
        Ok(out)
    }

    /// RSASSA-PSS over a precomputed `digest` of hash `md`, MGF1 with `mgf1`, and an
    /// explicit salt length.
    pub fn sign_pss(&self, digest: &[u8], md: Md, mgf1: Md, salt_len: usize) -> Res<Vec<u8>> {
        let salt = c_int::try_from(salt_len).map_err(|_| Failed)?;
        let (md, mgf1) = (md.evp()?, mgf1.evp()?);
        let k = self.size();
        let mut out = vec![0u8; k];
        let mut out_len = 0usize;
        // SAFETY: out has k writable bytes; digest is a valid slice; md/mgf1 are static.
        let ok = unsafe {
            sys::RSA_sign_pss_mgf1(
                self.0.as_ptr(),
                &mut out_len,
                out.as_mut_ptr(),
                out.len(),
                digest.as_ptr(),
                digest.len(),
                md,
                mgf1,
                salt,
            )
        };
        if ok != 1 || out_len != k {
            return failed();
        }
        Ok(out)
    }

    /// Check an RSASSA-PSS signature over a precomputed digest with an explicit salt length.
    pub fn verify_pss(
        &self,
        digest: &[u8],
        md: Md,
        mgf1: Md,
        salt_len: usize,
        sig: &[u8],
    ) -> Res<()> {
        let salt = c_int::try_from(salt_len).map_err(|_| Failed)?;
        let (md, mgf1) = (md.evp()?, mgf1.evp()?);
        // SAFETY: all slices valid for their lengths; md/mgf1 are static.
        let ok = unsafe {
            sys::RSA_verify_pss_mgf1(
                self.0.as_ptr(),
                digest.as_ptr(),
                digest.len(),
                md,
                mgf1,
                salt,
                sig.as_ptr(),
                sig.len(),
            )
        };
        if ok != 1 {
            return failed();
        }
        Ok(())
    }
}
