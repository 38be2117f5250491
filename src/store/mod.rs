//! The token store: one SQLite file per token (WAL, busy timeout), holding the token
//! record (key/value `meta`), and objects (attributes blob + optional wrapped secret).
//! Every write is one IMMEDIATE transaction: a crash leaves the old or the new state.
//!
//! Several processes may open the same file: `BEGIN IMMEDIATE` takes SQLite's write lock
//! up front, so read-modify-write sequences inside [`Store::transaction`] serialize across
//! processes with no lost updates, and [`Store::changed_elsewhere`] tells a process when
//! another one committed so it can reload.

use crate::error::{Error, Result};
use cryptoki_sys::*;
use parking_lot::Mutex;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The schema this code writes. A file with a higher `schema_version` is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a writer waits for another connection's write lock before giving up with
/// `CKR_DEVICE_ERROR`. Logins hold the lock for at most one Argon2 run.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    uid    BLOB PRIMARY KEY CHECK(length(uid) = 16),
    attrs  BLOB NOT NULL,
    secret BLOB
);
";

/// One persisted object. `uid` is a random 16-byte identity chosen by the caller; it is
/// also what wrapped blobs bind as associated data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub uid: [u8; 16],
    /// Serialized non-secret attributes (format owned by `object/`).
    pub attrs: Vec<u8>,
    /// Wrapped secret material, if the object has any.
    pub secret: Option<Vec<u8>>,
}

struct Inner {
    conn: Connection,
    /// `PRAGMA data_version` as last seen by `changed_elsewhere` (or at open).
    data_version: i64,
}

/// An open token store.
pub struct Store {
    path: PathBuf,
    inner: Mutex<Inner>,
}

/// Writes inside one transaction.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
}

/// Lowercase hex, for log messages naming object uids (never secrets).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Inverse of [`hex`]; `None` for odd lengths or non-hex digits.
#[cfg(kms)]
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// SQLite says "this is not a database" (or an encrypted/garbage header).
fn is_not_a_db(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::NotADatabase))
}

fn uid_from_blob(v: Vec<u8>) -> rusqlite::Result<[u8; 16]> {
    let len = v.len();
    v.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            format!("object uid of {len} bytes").into(),
        )
    })
}

fn row_to_object(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredObject> {
    Ok(StoredObject {
        uid: uid_from_blob(row.get(0)?)?,
        attrs: row.get(1)?,
        secret: row.get(2)?,
    })
}

fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                Error::device(format!(
                    "token store {}: create directory: {e}",
                    dir.display()
                ))
            })?;
    }
    // Created here, not by SQLite, so the file (and the -wal/-shm files SQLite derives
    // from its mode) are 0600 whatever the umask.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::device(format!("token store {}: {e}", path.display())))?;
    Ok(())
}

impl Store {
    /// Open (creating if absent, with parent directories, mode 0600) the store at `path`.
    ///
    /// A file that is not an SQLite database, an SQLite database that is not a token
    /// store, or a store written by a newer p11kms is `CKR_TOKEN_NOT_RECOGNIZED`.
    pub fn open(path: &Path) -> Result<Store> {
        // An existing empty file opens as a new, uninitialized token. That is also what a
        // truncated store looks like: say so, so keys are never lost in silence.
        if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            let wal = path.with_extension(format!(
                "{}-wal",
                path.extension().and_then(|e| e.to_str()).unwrap_or("")
            ));
            if !wal.exists() {
                eprintln!(
                    "p11kms: token store {} is an empty file: the token starts uninitialized; \
                     if it held keys the file was truncated: restore it before C_InitToken",
                    path.display()
                );
            }
        }
        create_private_file(path)?;
        let not_recognized = |why: &str| {
            Error::msg(
                CKR_TOKEN_NOT_RECOGNIZED,
                format!("token store {}: {why}", path.display()),
            )
        };
        let map = |e: rusqlite::Error| {
            if is_not_a_db(&e) {
                not_recognized("not an SQLite database")
            } else {
                Error::device(format!("token store {}: {e}", path.display()))
            }
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(map)?;
        // Before anything that may need a lock: switching to WAL does.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(map)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::device(format!(
                "token store {}: journal_mode is {mode}, WAL required",
                path.display()
            )));
        }
        // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss.
        // A lost commit could be a PIN failure counter (an extra guess) or a freshly
        // generated key already used to encrypt data; writes are rare, so pay the fsync.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(map)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(map)?;
        // Overwrite freed pages: an old PIN record (master key wrapped under a since
        // changed PIN) must not linger in the file.
        conn.pragma_update(None, "secure_delete", true)
            .map_err(map)?;

        {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map)?;
            let has_meta: bool = tx
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(map)?
                > 0;
            if !has_meta {
                let tables: i64 = tx
                    .query_row(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(map)?;
                if tables > 0 {
                    return Err(not_recognized(
                        "an SQLite database, but not a p11kms token store",
                    ));
                }
            }
            tx.execute_batch(SCHEMA).map_err(map)?;
            let version: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map)?;
            match version {
                None => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                        params![SCHEMA_VERSION.to_string().into_bytes()],
                    )
                    .map_err(map)?;
                }
                Some(v) => {
                    let v = std::str::from_utf8(&v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or_else(|| not_recognized("unreadable schema_version"))?;
                    if v > SCHEMA_VERSION {
                        return Err(not_recognized(&format!(
                            "schema version {v} is newer than this module's {SCHEMA_VERSION}"
                        )));
                    }
                }
            }
            tx.commit().map_err(map)?;
        }
        let data_version = data_version(&conn).map_err(map)?;
        Ok(Store {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner { conn, data_version }),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read one meta value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        get_meta(&self.inner.lock().conn, key)
    }

    /// Every object.
    pub fn objects(&self) -> Result<Vec<StoredObject>> {
        objects(&self.inner.lock().conn)
    }

    /// One object by uid, if present.
    pub fn object(&self, uid: &[u8; 16]) -> Result<Option<StoredObject>> {
        object(&self.inner.lock().conn, uid)
    }

    /// True if another connection (process) committed since the last call (or since
    /// `open`, for the first call). This connection's own commits do not count.
    pub fn changed_elsewhere(&self) -> Result<bool> {
        let mut g = self.inner.lock();
        let v = data_version(&g.conn)?;
        let changed = v != g.data_version;
        g.data_version = v;
        Ok(changed)
    }

    /// Run `f` in one IMMEDIATE transaction; commit if it returns Ok, roll back otherwise.
    ///
    /// The write lock is taken at `BEGIN`, so everything `f` reads stays current until
    /// commit. Waiting longer than the busy timeout for another writer is
    /// `CKR_DEVICE_ERROR`.
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let mut g = self.inner.lock();
        let tx = Tx {
            tx: g
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        };
        // On Err (or a panic) the Transaction drops and rolls back.
        let v = f(&tx)?;
        tx.tx.commit()?;
        Ok(v)
    }
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

fn get_meta(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?)
}

fn objects(conn: &Connection) -> Result<Vec<StoredObject>> {
    let mut st = conn.prepare_cached("SELECT uid, attrs, secret FROM objects ORDER BY uid")?;
    let rows = st.query_map([], row_to_object)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn object(conn: &Connection, uid: &[u8; 16]) -> Result<Option<StoredObject>> {
    Ok(conn
        .prepare_cached("SELECT uid, attrs, secret FROM objects WHERE uid = ?1")?
        .query_row(params![&uid[..]], row_to_object)
        .optional()?)
}

impl Tx<'_> {
    /// Read one meta value (current: the write lock is held).
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        get_meta(&self.tx, key)
    }

    /// Insert or replace one meta value.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute(params![key, value])?;
        Ok(())
    }

    /// Delete one meta value; absent is fine.
    pub fn delete_meta(&self, key: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM meta WHERE key = ?1")?
            .execute(params![key])?;
        Ok(())
    }

    /// Every object.
    pub fn objects(&self) -> Result<Vec<StoredObject>> {
        objects(&self.tx)
    }

    /// One object by uid, if present.
    pub fn object(&self, uid: &[u8; 16]) -> Result<Option<StoredObject>> {
        object(&self.tx, uid)
    }

    /// Insert a new object; a duplicate uid is an error (`CKR_DEVICE_ERROR`).
    pub fn insert_object(&self, o: &StoredObject) -> Result<()> {
        self.tx
            .prepare_cached("INSERT INTO objects (uid, attrs, secret) VALUES (?1, ?2, ?3)")?
            .execute(params![&o.uid[..], &o.attrs, &o.secret])
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => Error::device(format!(
                    "token store: object {} already exists",
                    hex(&o.uid)
                )),
                _ => e.into(),
            })?;
        Ok(())
    }

    /// Replace an object's attributes and secret; a missing uid is CKR_OBJECT_HANDLE_INVALID.
    pub fn update_object(&self, o: &StoredObject) -> Result<()> {
        let n = self
            .tx
            .prepare_cached("UPDATE objects SET attrs = ?2, secret = ?3 WHERE uid = ?1")?
            .execute(params![&o.uid[..], &o.attrs, &o.secret])?;
        if n == 0 {
            return Err(Error::msg(
                CKR_OBJECT_HANDLE_INVALID,
                format!("token store: no object {}", hex(&o.uid)),
            ));
        }
        Ok(())
    }

    /// Delete an object; a missing uid is CKR_OBJECT_HANDLE_INVALID.
    pub fn delete_object(&self, uid: &[u8; 16]) -> Result<()> {
        let n = self
            .tx
            .prepare_cached("DELETE FROM objects WHERE uid = ?1")?
            .execute(params![&uid[..]])?;
        if n == 0 {
            return Err(Error::msg(
                CKR_OBJECT_HANDLE_INVALID,
                format!("token store: no object {}", hex(uid)),
            ));
        }
        Ok(())
    }

    /// Delete every object (C_InitToken).
    pub fn clear_objects(&self) -> Result<()> {
        self.tx.execute("DELETE FROM objects", [])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn obj(n: u8) -> StoredObject {
        StoredObject {
            uid: [n; 16],
            attrs: vec![n, 1, 2, 3],
            secret: if n % 2 == 0 { Some(vec![9; 40]) } else { None },
        }
    }

    #[test]
    fn creates_private_file_and_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/tok.sqlite");
        let _s = Store::open(&p).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&d.path().join("a/b")), 0o700);
        assert_eq!(mode(&d.path().join("a")), 0o700);
    }

    #[test]
    fn reopen_persists() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tok.sqlite");
        {
            let s = Store::open(&p).unwrap();
            s.transaction(|tx| {
                tx.set_meta("label", b"hello")?;
                tx.insert_object(&obj(1))?;
                tx.insert_object(&obj(2))
            })
            .unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.get_meta("label").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(s.objects().unwrap(), vec![obj(1), obj(2)]);
        assert_eq!(s.object(&[2; 16]).unwrap(), Some(obj(2)));
        assert_eq!(s.object(&[3; 16]).unwrap(), None);
        assert_eq!(
            s.get_meta("schema_version").unwrap().as_deref(),
            Some(&b"1"[..])
        );
    }

    #[test]
    fn update_delete_clear() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("t.sqlite")).unwrap();
        s.transaction(|tx| {
            tx.insert_object(&obj(1))?;
            tx.insert_object(&obj(2))?;
            tx.insert_object(&obj(3))
        })
        .unwrap();
        let mut o = obj(1);
        o.attrs = vec![7; 3];
        o.secret = Some(vec![1]);
        s.transaction(|tx| tx.update_object(&o)).unwrap();
        assert_eq!(s.object(&[1; 16]).unwrap(), Some(o));
        s.transaction(|tx| tx.delete_object(&[2; 16])).unwrap();
        assert_eq!(s.objects().unwrap().len(), 2);
        s.transaction(|tx| {
            tx.set_meta("k", b"v")?;
            tx.delete_meta("k")?;
            tx.delete_meta("never")?;
            assert_eq!(tx.get_meta("k")?, None);
            tx.clear_objects()
        })
        .unwrap();
        assert!(s.objects().unwrap().is_empty());
        assert_eq!(s.get_meta("k").unwrap(), None);
    }

    #[test]
    fn rollback_on_err() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("t.sqlite")).unwrap();
        s.transaction(|tx| tx.set_meta("k", b"old")).unwrap();
        let r: Result<()> = s.transaction(|tx| {
            tx.set_meta("k", b"new")?;
            tx.insert_object(&obj(1))?;
            assert_eq!(tx.get_meta("k")?.as_deref(), Some(&b"new"[..]));
            Err(CKR_FUNCTION_FAILED.into())
        });
        assert_eq!(r.unwrap_err().rv(), CKR_FUNCTION_FAILED);
        assert_eq!(s.get_meta("k").unwrap().as_deref(), Some(&b"old"[..]));
        assert!(s.objects().unwrap().is_empty());
        // The connection is usable afterwards.
        s.transaction(|tx| tx.insert_object(&obj(1))).unwrap();
    }

    #[test]
    fn duplicate_and_missing_uids() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("t.sqlite")).unwrap();
        s.transaction(|tx| tx.insert_object(&obj(1))).unwrap();
        let e = s.transaction(|tx| tx.insert_object(&obj(1))).unwrap_err();
        assert_eq!(e.rv(), CKR_DEVICE_ERROR);
        assert!(e.message().unwrap().contains(&hex(&[1; 16])));
        let e = s.transaction(|tx| tx.update_object(&obj(5))).unwrap_err();
        assert_eq!(e.rv(), CKR_OBJECT_HANDLE_INVALID);
        let e = s.transaction(|tx| tx.delete_object(&[5; 16])).unwrap_err();
        assert_eq!(e.rv(), CKR_OBJECT_HANDLE_INVALID);
        assert_eq!(s.objects().unwrap(), vec![obj(1)]);
    }

    #[test]
    fn bad_file_not_recognized() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("garbage.sqlite");
        std::fs::write(&p, vec![0x5a; 8192]).unwrap();
        let e = Store::open(&p).err().unwrap();
        assert_eq!(e.rv(), CKR_TOKEN_NOT_RECOGNIZED);
        assert!(e.message().unwrap().contains(&p.display().to_string()));

        // A real SQLite database that is someone else's.
        let q = d.path().join("other.sqlite");
        Connection::open(&q)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let e = Store::open(&q).err().unwrap();
        assert_eq!(e.rv(), CKR_TOKEN_NOT_RECOGNIZED);
        assert!(e.message().unwrap().contains(&q.display().to_string()));
    }

    #[test]
    fn newer_schema_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.sqlite");
        Store::open(&p)
            .unwrap()
            .transaction(|tx| tx.set_meta("schema_version", b"99"))
            .unwrap();
        let e = Store::open(&p).err().unwrap();
        assert_eq!(e.rv(), CKR_TOKEN_NOT_RECOGNIZED);
    }

    #[test]
    fn changed_elsewhere_tracks_other_connections_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.sqlite");
        let a = Store::open(&p).unwrap();
        let b = Store::open(&p).unwrap();
        assert!(!a.changed_elsewhere().unwrap());
        a.transaction(|tx| tx.set_meta("x", b"1")).unwrap();
        assert!(!a.changed_elsewhere().unwrap(), "own commit");
        assert!(b.changed_elsewhere().unwrap(), "a committed");
        assert!(!b.changed_elsewhere().unwrap(), "remembered");
        b.transaction(|tx| tx.insert_object(&obj(1))).unwrap();
        assert!(a.changed_elsewhere().unwrap());
        assert!(!b.changed_elsewhere().unwrap());
        // A rolled-back transaction changes nothing anywhere.
        let _ = b.transaction(|tx| -> Result<()> {
            tx.clear_objects()?;
            Err(CKR_CANCEL.into())
        });
        assert!(!a.changed_elsewhere().unwrap());
        assert_eq!(a.objects().unwrap(), vec![obj(1)]);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.sqlite");
        // Two handles on one file, as two processes would have.
        let stores = [
            Arc::new(Store::open(&p).unwrap()),
            Arc::new(Store::open(&p).unwrap()),
        ];
        const THREADS: usize = 4;
        const ROUNDS: u32 = 50;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let s = stores[t % 2].clone();
                std::thread::spawn(move || {
                    for i in 0..ROUNDS {
                        s.transaction(|tx| {
                            // Read-modify-write: lost updates would show in the count.
                            let n = tx
                                .get_meta("counter")?
                                .map(|v| u32::from_be_bytes(v.try_into().unwrap()))
                                .unwrap_or(0);
                            tx.set_meta("counter", &(n + 1).to_be_bytes())?;
                            let mut uid = [0u8; 16];
                            uid[0] = t as u8;
                            uid[1..5].copy_from_slice(&i.to_be_bytes());
                            tx.insert_object(&StoredObject {
                                uid,
                                attrs: vec![],
                                secret: None,
                            })
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for s in &stores {
            let n = u32::from_be_bytes(s.get_meta("counter").unwrap().unwrap().try_into().unwrap());
            assert_eq!(n, THREADS as u32 * ROUNDS);
            assert_eq!(s.objects().unwrap().len(), THREADS * ROUNDS as usize);
        }
    }
}
