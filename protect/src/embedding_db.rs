//! The unprotected baseline: a face-login design as in the "Deep Authenticator" blog
//! (seed 004) — average k captures into one embedding, store it in plain, accept a login
//! when the cosine similarity of the averaged probe reaches a threshold.
//!
//! **Why it is here.** Every protection scheme is measured against what it protects: this
//! is the accuracy ceiling (nothing is lost to hashing or encryption) and the security
//! floor (whoever reads the file holds every user's biometric for good). The blog stores
//! one MongoDB document per user; touchstone keeps the same record in an embedded SQLite
//! file ([`Store`]), which needs no server and is a real database with real failure modes.
//!
//! * [`average`]: the mean of k = 1..=8 captures, **not** re-normalised (the blog's
//!   enrolment stores the plain mean; cosine ignores the scale anyway).
//! * [`cosine`]: ⟨a, b⟩ / (‖a‖‖b‖) in f64, 0 when either vector is zero.
//! * [`Store`]: SQLite with `PRAGMA application_id` = [`APPLICATION_ID`], a `meta` table
//!   (magic, schema version, dimension) and a STRICT `users` table (INTEGER id in
//!   enrolment order, unique indexed user TEXT, embedding BLOB of little-endian f32,
//!   captures, SHA-256 checksum). Opening checks the file is SQLite, ours, of this
//!   schema version and structurally sound (`PRAGMA quick_check`); reading a row checks
//!   its blob length and checksum. Failures are [`Error`]s naming the file and the user,
//!   never panics.
//!
//! The checksum catches corruption and edits made without this code (a restored backup
//! of another store, a hand-run UPDATE); it is not a MAC: whoever can write the file can
//! recompute it. It covers the user id, the captures count and the blob, so swapping two
//! users' embeddings is detected too.

use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Most captures averaged into one template (the blog takes 8).
pub const MAX_CAPTURES: usize = 8;
/// Largest embedding dimension a store accepts.
pub const MAX_DIM: usize = 65_536;
/// Longest user id, in bytes.
pub const MAX_USER_LEN: usize = 256;
/// `PRAGMA application_id` of a touchstone embedding store: "TSED" in ASCII.
pub const APPLICATION_ID: i32 = 0x5453_4544;
/// The value of `meta.magic`.
pub const MAGIC: &str = "touchstone-embedding-db";
/// The schema this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

const CHECKSUM_DOMAIN: &[u8] = b"touchstone/protect/embedding-db/v1";
const USERS_COLUMNS: [(&str, &str); 5] = [
    ("id", "INTEGER"),
    ("user", "TEXT"),
    ("embedding", "BLOB"),
    ("captures", "INTEGER"),
    ("checksum", "BLOB"),
];
const SCHEMA: &str = "
    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        embedding BLOB NOT NULL,
        captures INTEGER NOT NULL,
        checksum BLOB NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX users_by_user ON users(user);
";

/// The mean of k captures (1 ≤ k ≤ [`MAX_CAPTURES`]), each of the same non-zero length
/// and finite; not re-normalised.
pub fn average(captures: &[Vec<f32>]) -> Result<Vec<f32>> {
    if !(1..=MAX_CAPTURES).contains(&captures.len()) {
        return Err(Error::Input(format!(
            "{} captures; average takes 1..={MAX_CAPTURES}",
            captures.len()
        )));
    }
    let d = captures[0].len();
    if d == 0 {
        return Err(Error::Input("empty capture".into()));
    }
    let mut sum = vec![0f64; d];
    for (c, capture) in captures.iter().enumerate() {
        if capture.len() != d {
            return Err(Error::Input(format!(
                "capture {c} has {} values, capture 0 has {d}",
                capture.len()
            )));
        }
        if let Some(i) = capture.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!(
                "capture {c}, value {i} is not finite"
            )));
        }
        for (s, &v) in sum.iter_mut().zip(capture) {
            *s += f64::from(v);
        }
    }
    let k = captures.len() as f64;
    Ok(sum.into_iter().map(|s| (s / k) as f32).collect())
}

/// Cosine similarity in [−1, 1]; 0 when either vector is zero. Vectors of different
/// lengths, empty or non-finite are an error.
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32> {
    if a.len() != b.len() || a.is_empty() {
        return Err(Error::Input(format!(
            "cosine of vectors of lengths {} and {}",
            a.len(),
            b.len()
        )));
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err(Error::Input("cosine of a non-finite vector".into()));
    }
    Ok(cosine_unchecked(a, b))
}

fn cosine_unchecked(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    // `+ 0.0` turns −0 into +0, so equal scores also compare equal in the ranking.
    (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0) as f32 + 0.0
}

/// Logical bytes of one user's record: the id, the embedding (4·dim), the checksum (32)
/// and the captures count (1) — what the server holds per user, before SQLite's page and
/// index overhead (measure that with [`Store::file_bytes`]).
pub fn record_bytes(dim: usize, user_len: usize) -> usize {
    user_len + 4 * dim + 32 + 1
}

/// One enrolled user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The user id.
    pub user: String,
    /// The stored (averaged) embedding.
    pub embedding: Vec<f32>,
    /// How many captures were averaged into it.
    pub captures: u32,
}

/// A SQLite file of plaintext embeddings.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    dim: usize,
}

fn checksum(user: &str, captures: u32, blob: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CHECKSUM_DOMAIN);
    h.update((user.len() as u64).to_le_bytes());
    h.update(user.as_bytes());
    h.update(captures.to_le_bytes());
    h.update(blob);
    h.finalize().into()
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Store {
    fn db_error(&self, what: &str, e: rusqlite::Error) -> Error {
        db_error(&self.path, what, e)
    }

    fn row_error(&self, user: &str, msg: impl Into<String>) -> Error {
        Error::Row {
            path: self.path.clone(),
            user: user.to_owned(),
            msg: msg.into(),
        }
    }

    /// Creates a new store for `dim`-dimensional embeddings. Refuses an existing path.
    pub fn create(path: impl AsRef<Path>, dim: usize) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let fail = |msg: String| Error::Database {
            path: path.clone(),
            msg,
        };
        if !(1..=MAX_DIM).contains(&dim) {
            return Err(fail(format!("dimension {dim}; must be 1..={MAX_DIM}")));
        }
        if path.exists() {
            return Err(fail("already exists; open it, or remove it first".into()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|e| db_error(&path, "create", e))?;
        let result = (|| -> rusqlite::Result<()> {
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            conn.execute_batch(&format!("BEGIN; {SCHEMA}"))?;
            let mut insert = conn.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
            insert.execute(params!["magic", MAGIC])?;
            insert.execute(params!["schema_version", SCHEMA_VERSION.to_string()])?;
            insert.execute(params!["dimension", dim.to_string()])?;
            drop(insert);
            conn.execute_batch("COMMIT")
        })();
        if let Err(e) = result {
            drop(conn);
            let _ = std::fs::remove_file(&path);
            return Err(db_error(&path, "writing the schema", e));
        }
        Ok(Store { conn, path, dim })
    }

    /// Opens an existing store after checking that it is an SQLite file, that its
    /// application id, tables, columns, magic and schema version are this crate's, and
    /// that SQLite's `quick_check` passes.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let fail = |msg: String| Error::Database {
            path: path.clone(),
            msg,
        };
        if !path.is_file() {
            return Err(fail("no such file".into()));
        }
        // SQLite takes a file too short for its header for a new, empty database;
        // look at the header first so that such a file reads as what it is.
        let mut header = [0u8; 16];
        let read = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut header))
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        if read == 0 {
            return Err(fail("empty file, not a touchstone embedding store".into()));
        }
        if read < header.len() || &header != b"SQLite format 3\0" {
            return Err(fail("not an SQLite database (no SQLite header)".into()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|e| db_error(&path, "open", e))?;
        // The first read of the header: a non-SQLite file fails here.
        let app_id: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| db_error(&path, "reading the header", e))?;
        if app_id != APPLICATION_ID {
            return Err(fail(format!(
                "not a touchstone embedding store: application_id {app_id:#x}, expected {APPLICATION_ID:#x}"
            )));
        }
        let problems: Vec<String> = conn
            .prepare("PRAGMA quick_check")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| db_error(&path, "integrity check", e))?;
        if problems != ["ok"] {
            return Err(fail(format!(
                "corrupt (SQLite quick_check: {})",
                problems.join("; ")
            )));
        }
        let columns: Vec<(String, String)> = conn
            .prepare("SELECT name, type FROM pragma_table_info('users') ORDER BY cid")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| db_error(&path, "reading the users table's columns", e))?;
        let expected: Vec<(String, String)> = USERS_COLUMNS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        if columns != expected {
            return Err(fail(format!(
                "table users has columns {columns:?}, expected {expected:?}"
            )));
        }
        let meta = |key: &str| -> Result<String> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(|e| db_error(&path, "reading table meta", e))?
            .ok_or_else(|| fail(format!("table meta has no {key:?}")))
        };
        let magic = meta("magic")?;
        if magic != MAGIC {
            return Err(fail(format!("meta magic {magic:?}, expected {MAGIC:?}")));
        }
        let version = meta("schema_version")?;
        if version != SCHEMA_VERSION.to_string() {
            return Err(fail(format!(
                "schema version {version:?}; this code reads version {SCHEMA_VERSION}"
            )));
        }
        let dim_text = meta("dimension")?;
        let dim = dim_text
            .parse::<usize>()
            .ok()
            .filter(|d| (1..=MAX_DIM).contains(d))
            .ok_or_else(|| fail(format!("meta dimension {dim_text:?} is not 1..={MAX_DIM}")))?;
        let index: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'users_by_user'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_error(&path, "reading the schema", e))?;
        if index.is_none() {
            return Err(fail("index users_by_user is missing".into()));
        }
        Ok(Store { conn, path, dim })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn check_vector(&self, what: &str, v: &[f32]) -> Result<()> {
        if v.len() != self.dim {
            return Err(Error::Input(format!(
                "{what} has {} values; the store holds {}-dimensional embeddings",
                v.len(),
                self.dim
            )));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::Input(format!("{what} value {i} is not finite")));
        }
        Ok(())
    }

    fn check_user(user: &str) -> Result<()> {
        if user.is_empty() || user.len() > MAX_USER_LEN {
            return Err(Error::Input(format!(
                "user id of {} bytes; must be 1..={MAX_USER_LEN}",
                user.len()
            )));
        }
        Ok(())
    }

    /// Stores `embedding` (already averaged over `captures` captures, 1..=8) for a new
    /// user. Re-enrolling an enrolled user is an error: [`Store::remove`] first.
    pub fn enrol(&mut self, user: &str, embedding: &[f32], captures: u32) -> Result<()> {
        Self::check_user(user)?;
        self.check_vector("embedding", embedding)?;
        if !(1..=MAX_CAPTURES as u32).contains(&captures) {
            return Err(Error::Input(format!(
                "{captures} captures; must be 1..={MAX_CAPTURES}"
            )));
        }
        let blob = to_blob(embedding);
        let sum = checksum(user, captures, &blob);
        match self.conn.execute(
            "INSERT INTO users (user, embedding, captures, checksum) VALUES (?1, ?2, ?3, ?4)",
            params![user, blob, captures, &sum[..]],
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                Err(Error::AlreadyEnrolled {
                    path: self.path.clone(),
                    user: user.to_owned(),
                })
            }
            Err(e) => Err(self.db_error(&format!("enrolling {user:?}"), e)),
        }
    }

    /// Removes a user; false when the user was not enrolled.
    pub fn remove(&mut self, user: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM users WHERE user = ?1", [user])
            .map_err(|e| self.db_error(&format!("removing {user:?}"), e))?;
        Ok(n > 0)
    }

    /// Number of enrolled users.
    pub fn len(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
            .map_err(|e| self.db_error("counting users", e))?;
        Ok(n as usize)
    }

    /// True when no user is enrolled.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Size of the file as SQLite lays it out (page count × page size).
    pub fn file_bytes(&self) -> Result<u64> {
        let pages: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .map_err(|e| self.db_error("page count", e))?;
        let size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(|e| self.db_error("page size", e))?;
        Ok((pages * size) as u64)
    }

    /// Decodes and checks one row (user, embedding, captures, checksum).
    fn decode(&self, row: &rusqlite::Row<'_>) -> Result<Record> {
        let cell = |i: usize| {
            row.get_ref(i)
                .map_err(|e| self.db_error("reading a row", e))
        };
        let user = match cell(0)? {
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map_err(|_| self.row_error(&String::from_utf8_lossy(t), "user id is not UTF-8"))?
                .to_owned(),
            other => {
                return Err(self.row_error(
                    "?",
                    format!("user id stored as {:?}, not text", other.data_type()),
                ))
            }
        };
        let blob = match cell(1)? {
            ValueRef::Blob(b) => b,
            other => {
                return Err(self.row_error(
                    &user,
                    format!("embedding stored as {:?}, not a blob", other.data_type()),
                ))
            }
        };
        if blob.len() != 4 * self.dim {
            return Err(self.row_error(
                &user,
                format!(
                    "embedding blob of {} bytes; a {}-dimensional embedding has {}",
                    blob.len(),
                    self.dim,
                    4 * self.dim
                ),
            ));
        }
        let captures = match cell(2)? {
            ValueRef::Integer(c) if (1..=MAX_CAPTURES as i64).contains(&c) => c as u32,
            other => {
                return Err(self.row_error(&user, format!("captures value {other:?} out of range")))
            }
        };
        let stored = match cell(3)? {
            ValueRef::Blob(b) => b,
            _ => return Err(self.row_error(&user, "checksum is not a blob")),
        };
        if stored != checksum(&user, captures, blob) {
            return Err(self.row_error(
                &user,
                "checksum mismatch: the record was changed outside this store or is corrupt",
            ));
        }
        let embedding: Vec<f32> = blob
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if embedding.iter().any(|v| !v.is_finite()) {
            return Err(self.row_error(&user, "embedding has a non-finite value"));
        }
        Ok(Record {
            user,
            embedding,
            captures,
        })
    }

    fn query(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Record>> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.db_error("preparing a query", e))?;
        let mut rows = stmt
            .query(args)
            .map_err(|e| self.db_error("querying users", e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.db_error("reading users", e))? {
            out.push(self.decode(row)?);
        }
        Ok(out)
    }

    /// One user's record, checked; `None` when not enrolled.
    pub fn get(&self, user: &str) -> Result<Option<Record>> {
        Ok(self
            .query(
                "SELECT user, embedding, captures, checksum FROM users WHERE user = ?1",
                &[&user],
            )?
            .pop())
    }

    /// Every record, checked, ordered by user id.
    pub fn all(&self) -> Result<Vec<Record>> {
        self.query(
            "SELECT user, embedding, captures, checksum FROM users ORDER BY user",
            &[],
        )
    }

    /// 1:1 — the cosine of the probe with `user`'s embedding and whether it reaches
    /// `threshold` (score ≥ threshold accepts). An unknown user is an error.
    pub fn verify(&self, user: &str, probe: &[f32], threshold: f32) -> Result<(f32, bool)> {
        self.check_vector("probe", probe)?;
        let record = self.get(user)?.ok_or_else(|| Error::UnknownUser {
            path: self.path.clone(),
            user: user.to_owned(),
        })?;
        let score = cosine_unchecked(&record.embedding, probe);
        Ok((score, score >= threshold))
    }

    /// 1:N — every enrolled user with the cosine of the probe, by descending score, ties
    /// by user id.
    pub fn identify(&self, probe: &[f32]) -> Result<Vec<(String, f32)>> {
        self.check_vector("probe", probe)?;
        let mut ranked: Vec<(String, f32)> = self
            .all()?
            .into_iter()
            .map(|r| {
                let s = cosine_unchecked(&r.embedding, probe);
                (r.user, s)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(ranked)
    }
}

fn db_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    let msg = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => format!("{what}: not an SQLite database ({e})"),
        Some(ErrorCode::DatabaseCorrupt) => format!("{what}: corrupt database ({e})"),
        _ => format!("{what}: {e}"),
    };
    Error::Database {
        path: path.to_path_buf(),
        msg,
    }
}
