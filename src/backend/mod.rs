//! The KMS seam. Every token keeps its PIN records and login in the `local` backend
//! (HSM-like); [`Kek`] decides what wraps the token's stored secrets: the local master
//! key, or a KMS key (`aws`).

#[cfg(feature = "aws")]
pub mod aws;
pub mod local;

/// What wraps a token's stored secrets.
#[derive(Clone)]
pub enum Kek {
    /// The local master key (unwrapped by C_Login).
    Local,
    /// The token's AWS KMS KEK; its asymmetric KMS keys appear as objects.
    #[cfg(feature = "aws")]
    Aws(std::sync::Arc<aws::AwsBackend>),
}
