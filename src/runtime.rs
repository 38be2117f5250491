//! The tokio runtime a cloud backend owns: one per token, built on first use (so a
//! forked child, which starts from a fresh C_Initialize, builds its own: a runtime's
//! worker threads do not survive fork()). Callers are plain C threads; each remote call
//! is one `block_on` bounded by the token's timeout.

use crate::error::{Error, Result};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

/// A lazily built multi-thread runtime with a per-call deadline.
pub struct Runtime {
    rt: OnceLock<std::result::Result<tokio::runtime::Runtime, String>>,
    timeout: Duration,
}

impl Runtime {
    /// A runtime whose calls give up after `timeout`.
    pub fn new(timeout: Duration) -> Runtime {
        Runtime {
            rt: OnceLock::new(),
            timeout,
        }
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn get(&self) -> Result<&tokio::runtime::Runtime> {
        self.rt
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("p11kms-rt")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the tokio runtime: {e}"))
            })
            .as_ref()
            .map_err(|m| Error::device(m.clone()))
    }

    /// One KMS call `op`: logged at debug level as `kms call: <op>` (tests count these
    /// lines), then [`Runtime::block_on`].
    pub fn call<T>(&self, op: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        log_at!(Debug, "kms call: {op}");
        self.block_on(op, fut)
    }

    /// Run `fut` to completion on the runtime, or fail with `CKR_DEVICE_ERROR` once the
    /// deadline passes (the future is dropped: the request is abandoned).
    pub fn block_on<T>(&self, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let rt = self.get()?;
        let timeout = self.timeout;
        rt.block_on(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => {
                    let m = format!(
                        "{what}: no answer within {} s (timeout_secs)",
                        timeout.as_secs()
                    );
                    log_at!(Info, "kms {what} failed (timeout): {m}");
                    Err(Error::device(m))
                }
            }
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // C_Finalize must not wait for idle connections of the HTTP client.
        if let Some(Ok(rt)) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
