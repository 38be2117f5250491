//! The one error type of the crate and the one place it becomes a `CK_RV`.

use cryptoki_sys::*;
use std::fmt;

/// An error carrying the PKCS#11 return value the caller will see, plus an optional
/// internal message for the log. The message must never contain secret bytes.
pub struct Error {
    rv: CK_RV,
    msg: Option<String>,
    needed: Option<usize>,
}

/// Crate-wide result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with only a return code.
    pub const fn new(rv: CK_RV) -> Self {
        Error {
            rv,
            msg: None,
            needed: None,
        }
    }

    /// An error with a return code and a message for the log (never for secrets).
    pub fn msg(rv: CK_RV, msg: impl Into<String>) -> Self {
        Error {
            rv,
            msg: Some(msg.into()),
            needed: None,
        }
    }

    /// `CKR_BUFFER_TOO_SMALL`, carrying the length the caller needs.
    pub fn too_small(needed: usize) -> Self {
        Error {
            rv: CKR_BUFFER_TOO_SMALL,
            msg: None,
            needed: Some(needed),
        }
    }

    /// The needed output length of a `CKR_BUFFER_TOO_SMALL`.
    pub fn needed(&self) -> Option<usize> {
        self.needed
    }

    /// The PKCS#11 return value.
    pub fn rv(&self) -> CK_RV {
        self.rv
    }

    /// The internal message, if any.
    pub fn message(&self) -> Option<&str> {
        self.msg.as_deref()
    }

    /// Shorthand for `CKR_GENERAL_ERROR` with a message: internal invariants only.
    pub fn general(msg: impl Into<String>) -> Self {
        Self::msg(CKR_GENERAL_ERROR, msg)
    }

    /// Shorthand for `CKR_DEVICE_ERROR`: the store or a backend failed.
    pub fn device(msg: impl Into<String>) -> Self {
        Self::msg(CKR_DEVICE_ERROR, msg)
    }
}

impl From<CK_RV> for Error {
    fn from(rv: CK_RV) -> Self {
        Error::new(rv)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::device(format!("token store: {e}"))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:x})", rv_name(self.rv), self.rv)?;
        if let Some(m) = &self.msg {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// The spec name of a return value, for logs.
pub fn rv_name(rv: CK_RV) -> &'static str {
    macro_rules! names {
        ($($n:ident),* $(,)?) => {
            match rv { $( $n => stringify!($n), )* _ => "CKR_(unknown)" }
        };
    }
    names!(
        CKR_OK,
        CKR_CANCEL,
        CKR_HOST_MEMORY,
        CKR_SLOT_ID_INVALID,
        CKR_GENERAL_ERROR,
        CKR_FUNCTION_FAILED,
        CKR_ARGUMENTS_BAD,
        CKR_NO_EVENT,
        CKR_NEED_TO_CREATE_THREADS,
        CKR_CANT_LOCK,
        CKR_ATTRIBUTE_READ_ONLY,
        CKR_ATTRIBUTE_SENSITIVE,
        CKR_ATTRIBUTE_TYPE_INVALID,
        CKR_ATTRIBUTE_VALUE_INVALID,
        CKR_ACTION_PROHIBITED,
        CKR_DATA_INVALID,
        CKR_DATA_LEN_RANGE,
        CKR_DEVICE_ERROR,
        CKR_DEVICE_MEMORY,
        CKR_DEVICE_REMOVED,
        CKR_ENCRYPTED_DATA_INVALID,
        CKR_ENCRYPTED_DATA_LEN_RANGE,
        CKR_FUNCTION_CANCELED,
        CKR_FUNCTION_NOT_PARALLEL,
        CKR_FUNCTION_NOT_SUPPORTED,
        CKR_KEY_HANDLE_INVALID,
        CKR_KEY_SIZE_RANGE,
        CKR_KEY_TYPE_INCONSISTENT,
        CKR_KEY_NOT_NEEDED,
        CKR_KEY_CHANGED,
        CKR_KEY_NEEDED,
        CKR_KEY_INDIGESTIBLE,
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        CKR_KEY_NOT_WRAPPABLE,
        CKR_KEY_UNEXTRACTABLE,
        CKR_MECHANISM_INVALID,
        CKR_MECHANISM_PARAM_INVALID,
        CKR_OBJECT_HANDLE_INVALID,
        CKR_OPERATION_ACTIVE,
        CKR_OPERATION_NOT_INITIALIZED,
        CKR_PIN_INCORRECT,
        CKR_PIN_INVALID,
        CKR_PIN_LEN_RANGE,
        CKR_PIN_EXPIRED,
        CKR_PIN_LOCKED,
        CKR_SESSION_CLOSED,
        CKR_SESSION_COUNT,
        CKR_SESSION_HANDLE_INVALID,
        CKR_SESSION_PARALLEL_NOT_SUPPORTED,
        CKR_SESSION_READ_ONLY,
        CKR_SESSION_EXISTS,
        CKR_SESSION_READ_ONLY_EXISTS,
        CKR_SESSION_READ_WRITE_SO_EXISTS,
        CKR_SIGNATURE_INVALID,
        CKR_SIGNATURE_LEN_RANGE,
        CKR_TEMPLATE_INCOMPLETE,
        CKR_TEMPLATE_INCONSISTENT,
        CKR_TOKEN_NOT_PRESENT,
        CKR_TOKEN_NOT_RECOGNIZED,
        CKR_TOKEN_WRITE_PROTECTED,
        CKR_UNWRAPPING_KEY_HANDLE_INVALID,
        CKR_UNWRAPPING_KEY_SIZE_RANGE,
        CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
        CKR_USER_ALREADY_LOGGED_IN,
        CKR_USER_NOT_LOGGED_IN,
        CKR_USER_PIN_NOT_INITIALIZED,
        CKR_USER_TYPE_INVALID,
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        CKR_USER_TOO_MANY_TYPES,
        CKR_WRAPPED_KEY_INVALID,
        CKR_WRAPPED_KEY_LEN_RANGE,
        CKR_WRAPPING_KEY_HANDLE_INVALID,
        CKR_WRAPPING_KEY_SIZE_RANGE,
        CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
        CKR_RANDOM_SEED_NOT_SUPPORTED,
        CKR_RANDOM_NO_RNG,
        CKR_DOMAIN_PARAMS_INVALID,
        CKR_CURVE_NOT_SUPPORTED,
        CKR_BUFFER_TOO_SMALL,
        CKR_SAVED_STATE_INVALID,
        CKR_INFORMATION_SENSITIVE,
        CKR_STATE_UNSAVEABLE,
        CKR_CRYPTOKI_NOT_INITIALIZED,
        CKR_CRYPTOKI_ALREADY_INITIALIZED,
        CKR_MUTEX_BAD,
        CKR_MUTEX_NOT_LOCKED,
        CKR_OPERATION_CANCEL_FAILED,
    )
}
