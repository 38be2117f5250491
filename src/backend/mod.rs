//! The KMS seam. Every token keeps its PIN records and login in the `local` backend
//! (HSM-like); [`Kek`] decides what wraps the token's stored secrets: the local master
//! key, or a cloud KMS key ([`kms::Kms`]: `aws` or `gcp`), whose asymmetric keys then
//! also appear as objects.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(kms)]
pub mod kms;
pub mod local;

/// What wraps a token's stored secrets.
#[derive(Clone)]
pub enum Kek {
    /// The local master key (unwrapped by C_Login).
    Local,
    /// The token's cloud KMS KEK; its asymmetric KMS keys appear as objects.
    #[cfg(kms)]
    Kms(kms::Kms),
}
