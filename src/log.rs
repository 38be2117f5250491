//! Logging to stderr or a configured file — never stdout (pkcs11-tool writes there).
//! Messages never carry secret bytes: callers log handles, mechanisms and return codes.

use crate::config::LogLevel;
use parking_lot::Mutex;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Warn as u8);
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Set the level and destination (None: stderr).
pub fn configure(level: LogLevel, file: Option<&std::path::Path>) -> Result<(), String> {
    LEVEL.store(level as u8, Ordering::Relaxed);
    let f = match file {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("p11kms: cannot open log file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    *FILE.lock() = f;
    Ok(())
}

/// True if messages at `level` are written.
pub fn enabled(level: LogLevel) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Write one line.
pub fn write(level: LogLevel, args: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let line = format!("p11kms[{}] {:?}: {}\n", std::process::id(), level, args);
    let mut f = FILE.lock();
    match f.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

#[macro_export]
macro_rules! log_at {
    ($lvl:ident, $($arg:tt)*) => {
        if $crate::log::enabled($crate::config::LogLevel::$lvl) {
            $crate::log::write($crate::config::LogLevel::$lvl, format_args!($($arg)*))
        }
    };
}
