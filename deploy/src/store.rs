//! What the servers keep across restarts, in embedded SQLite databases: a cluster's
//! setup message and gallery shard (`cluster.sqlite`), the main server's setup message and
//! placement (`main.sqlite`), and each the update requests it applied.
//!
//! Why SQLite: every write is one transaction, so a crash leaves the old state or the new
//! one, never a mix; an update rewrites only the rows it changes; and the bundled build
//! needs no system library. The rollback journal (`journal_mode=DELETE`) with
//! `synchronous=FULL` makes a commit durable before it returns, so a killed process
//! (SIGKILL, power loss) loses nothing that was acknowledged.
//!
//! Damage is refused, never served. Opening runs `PRAGMA quick_check` (the file's
//! structure) and checks the file's kind (`application_id`) and schema version
//! (`user_version`). Every row carries the SHA-256 of its content *and* its key, so a
//! flipped byte in a blob, an id or a count fails `load`; a state record (users, row
//! counts) under its own checksum catches lost rows. Values read back are bounded, since
//! the file may be hostile. The checksums detect accidents, not forgery: whoever can
//! write the file can recompute them.

use std::fs;
use std::path::{Path, PathBuf};

use protocol::messages::UnitId;
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};
use sha2::{Digest, Sha256};

use crate::error::{DeployError, Result};

/// The schema this build writes and reads (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// The largest group, feature, user count or cluster index stored: far above any
/// deployment, and small enough that a hostile value cannot drive a huge allocation.
const LIMIT: i64 = u32::MAX as i64;

/// What to do about damage outside the shard.
const DAMAGED: &str = "the store is damaged; restore it or set the deployment up again";

/// Tables both stores have: named checksummed blobs (the setup, the state record) and
/// the applied update requests.
const COMMON: &str = "
    CREATE TABLE meta (name TEXT PRIMARY KEY, bytes BLOB NOT NULL, sha256 BLOB NOT NULL);
    CREATE TABLE requests (id BLOB PRIMARY KEY, sha256 BLOB NOT NULL);";

/// Which store a file is: its name, its tables and its SQLite `application_id`, so a
/// main server's file is never read as a cluster's (or any other SQLite file as ours).
#[derive(Clone, Copy, Debug)]
struct Kind {
    name: &'static str,
    file: &'static str,
    application_id: i64,
    /// The table of per-unit rows.
    rows: &'static str,
    schema: &'static str,
}

const CLUSTER: Kind = Kind {
    name: "cluster",
    file: "cluster.sqlite",
    application_id: 0x5453_434C, // "TSCL"
    rows: "units",
    schema: "CREATE TABLE units (grp INTEGER NOT NULL, feature INTEGER NOT NULL,
        bytes BLOB NOT NULL, sha256 BLOB NOT NULL, PRIMARY KEY (grp, feature));",
};

const MAIN: Kind = Kind {
    name: "main server",
    file: "main.sqlite",
    application_id: 0x5453_4D4E, // "TSMN"
    rows: "placement",
    schema: "CREATE TABLE placement (grp INTEGER NOT NULL, feature INTEGER NOT NULL,
        cluster INTEGER NOT NULL, sha256 BLOB NOT NULL, PRIMARY KEY (grp, feature));",
};

/// SHA-256 over length-prefixed parts (unambiguous; the first part names the table, so
/// a row copied into another table fails too).
fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// Maps an SQLite error to a store error naming the file (and what to do, when SQLite
/// found the file damaged or foreign).
fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> DeployError + '_ {
    move |e| {
        let damaged = matches!(
            e.sqlite_error_code(),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
        );
        let remedy = if damaged {
            ": the file is damaged or not a store; restore it from a backup or start over"
        } else {
            ""
        };
        DeployError::store(path, format!("SQLite: {e}{remedy}"))
    }
}

/// A value about to be stored, refused beyond [`LIMIT`] so that it can be read back.
fn to_sql(path: &Path, what: &str, value: usize) -> Result<i64> {
    i64::try_from(value)
        .ok()
        .filter(|v| *v <= LIMIT)
        .ok_or_else(|| DeployError::store(path, format!("{what} {value} exceeds {LIMIT}")))
}

/// A value read back, refused when negative or absurd (damaged or hostile file).
fn from_sql(path: &Path, what: &str, value: i64) -> Result<usize> {
    match usize::try_from(value) {
        Ok(v) if value <= LIMIT => Ok(v),
        _ => Err(DeployError::store(
            path,
            format!("holds {what} {value}, outside 0..={LIMIT}: the file is damaged or not ours"),
        )),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unit_name(group: i64, feature: i64) -> String {
    format!("unit (group {group}, feature {feature})")
}

/// Refuses a row whose stored checksum is not `expected`.
fn check(path: &Path, what: &str, stored: &[u8], expected: &[u8; 32], remedy: &str) -> Result<()> {
    if stored == expected {
        Ok(())
    } else {
        Err(DeployError::store(
            path,
            format!("{what} fails its SHA-256 check: {remedy}"),
        ))
    }
}

/// The checksummed record of what the row tables should hold, rewritten by every write:
/// it carries the user count and lets `load` notice a lost row.
struct State {
    users: usize,
    rows: usize,
    requests: usize,
}

/// The open database of one store; the code both stores share.
#[derive(Debug)]
struct Db {
    path: PathBuf,
    conn: Connection,
    kind: Kind,
}

impl Db {
    /// Opens or creates `dir/<kind.file>`, sets durability, and refuses a damaged file,
    /// another kind of file or another schema version.
    fn open(dir: &Path, kind: Kind) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| {
            DeployError::store(dir, format!("cannot create the store's folder: {e}"))
        })?;
        let path = dir.join(kind.file);
        let conn = Connection::open(&path).map_err(sql(&path))?;
        let db = Self { path, conn, kind };
        db.configure()?;
        db.quick_check()?;
        db.check_kind()?;
        Ok(db)
    }

    fn configure(&self) -> Result<()> {
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "DELETE", |row| row.get(0))
            .map_err(sql(&self.path))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(DeployError::store(
                &self.path,
                format!("SQLite kept journal_mode {mode}, not DELETE"),
            ));
        }
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .and_then(|()| self.conn.pragma_update(None, "cell_size_check", true))
            .map_err(sql(&self.path))
    }

    fn quick_check(&self) -> Result<()> {
        let mut problems = Vec::new();
        self.conn
            .pragma_query(None, "quick_check", |row| {
                problems.push(row.get::<_, String>(0)?);
                Ok(())
            })
            .map_err(sql(&self.path))?;
        if problems == ["ok"] {
            return Ok(());
        }
        problems.truncate(3);
        Err(DeployError::store(
            &self.path,
            format!(
                "fails SQLite's quick_check ({}): the file is damaged; restore it from a backup or start over",
                problems.join("; ")
            ),
        ))
    }

    /// Creates the schema in a new (empty) file; otherwise checks kind and version.
    fn check_kind(&self) -> Result<()> {
        let pragma = |name: &str| {
            self.conn
                .pragma_query_value(None, name, |row| row.get::<_, i64>(0))
                .map_err(sql(&self.path))
        };
        let (application_id, version) = (pragma("application_id")?, pragma("user_version")?);
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(sql(&self.path))?;
        if application_id == 0 && version == 0 && tables == 0 {
            let schema = format!(
                "BEGIN IMMEDIATE; {COMMON} {} PRAGMA application_id = {}; \
                 PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
                self.kind.schema, self.kind.application_id
            );
            return self.conn.execute_batch(&schema).map_err(sql(&self.path));
        }
        if application_id != self.kind.application_id {
            return Err(DeployError::store(
                &self.path,
                format!(
                    "is not a {} store (SQLite application_id {application_id:#x}, expected {:#x})",
                    self.kind.name, self.kind.application_id
                ),
            ));
        }
        if version != SCHEMA_VERSION {
            return Err(DeployError::store(
                &self.path,
                format!(
                    "has schema version {version}; this build reads version {SCHEMA_VERSION} only"
                ),
            ));
        }
        Ok(())
    }

    /// The checksummed blob `name` of the meta table.
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .conn
            .query_row(
                "SELECT bytes, sha256 FROM meta WHERE name = ?1",
                [name],
                |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .map_err(sql(&self.path))?;
        let Some((bytes, stored)) = row else {
            return Ok(None);
        };
        let expected = digest(&[b"meta", name.as_bytes(), &bytes]);
        check(
            &self.path,
            &format!("the {name} record"),
            &stored,
            &expected,
            DAMAGED,
        )?;
        Ok(Some(bytes))
    }

    /// The setup and the state, both verified; `None` when nothing was set up.
    fn load_head(&self) -> Result<Option<(Vec<u8>, State)>> {
        let Some(setup) = self.get_meta("setup")? else {
            let rows: i64 = self
                .conn
                .query_row(
                    &format!(
                        "SELECT (SELECT count(*) FROM meta) + (SELECT count(*) FROM {}) \
                         + (SELECT count(*) FROM requests)",
                        self.kind.rows
                    ),
                    [],
                    |row| row.get(0),
                )
                .map_err(sql(&self.path))?;
            if rows != 0 {
                return Err(self.damaged("holds rows but no setup record"));
            }
            return Ok(None);
        };
        let state = self
            .get_meta("state")?
            .ok_or_else(|| self.damaged("has a setup but no state record"))?;
        let state: [u8; 24] = state
            .try_into()
            .map_err(|_| self.damaged("has a state record of the wrong size"))?;
        let field = |i: usize, what: &str| -> Result<usize> {
            let word = state[8 * i..]
                .first_chunk::<8>()
                .copied()
                .unwrap_or_default();
            from_sql(&self.path, what, i64::from_le_bytes(word))
        };
        let state = State {
            users: field(0, "a user count")?,
            rows: field(1, "a row count")?,
            requests: field(2, "a request count")?,
        };
        self.check_requests(state.requests)?;
        Ok(Some((setup, state)))
    }

    /// Verifies every request row and their number.
    fn check_requests(&self, expected: usize) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, sha256 FROM requests")
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sql(&self.path))?;
        let mut count = 0;
        for row in rows {
            let (id, stored) = row.map_err(sql(&self.path))?;
            self.check_request(&id, &stored)?;
            count += 1;
        }
        self.check_count("update requests", count, expected)
    }

    fn check_request(&self, id: &[u8], stored: &[u8]) -> Result<()> {
        check(
            &self.path,
            &format!("update request {}", hex(id)),
            stored,
            &digest(&[b"request", id]),
            DAMAGED,
        )
    }

    fn check_count(&self, what: &str, found: usize, expected: usize) -> Result<()> {
        if found == expected {
            Ok(())
        } else {
            Err(self.damaged(&format!(
                "holds {found} {what} where its state record says {expected}"
            )))
        }
    }

    fn damaged(&self, what: &str) -> DeployError {
        DeployError::store(&self.path, format!("{what}: {DAMAGED}"))
    }

    fn has_request(&self, request: &[u8; 16]) -> Result<bool> {
        let stored: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT sha256 FROM requests WHERE id = ?1",
                [&request[..]],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql(&self.path))?;
        match stored {
            Some(stored) => self.check_request(request, &stored).map(|()| true),
            None => Ok(false),
        }
    }

    /// A new setup: every table cleared, the setup stored, zero users.
    fn save_setup(&mut self, setup: &[u8]) -> Result<()> {
        let Self { path, conn, kind } = self;
        let (path, kind) = (path.as_path(), *kind);
        let tx = begin(conn, path)?;
        clear(&tx, kind)
            .and_then(|()| put_meta(&tx, "setup", setup))
            .map_err(sql(path))?;
        write_state(&tx, path, kind, 0)?;
        tx.commit().map_err(sql(path))
    }

    /// One write after the setup: records `request` (refused when applied already),
    /// clears the row table when `replace`, lets `put` write rows, rewrites the state, all
    /// in one transaction.
    fn write(
        &mut self,
        request: Option<&[u8; 16]>,
        users: usize,
        replace: bool,
        put: impl FnOnce(&Connection, &Path) -> Result<()>,
    ) -> Result<()> {
        let Self { path, conn, kind } = self;
        let (path, kind) = (path.as_path(), *kind);
        let users = to_sql(path, "user count", users)?;
        let tx = begin(conn, path)?;
        let setup: bool = tx
            .query_row(
                "SELECT count(*) FROM meta WHERE name = 'setup'",
                [],
                |row| row.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(sql(path))?;
        if !setup {
            return Err(DeployError::store(
                path,
                "holds no setup: the deployment must be set up before it is enrolled or updated",
            ));
        }
        if let Some(request) = request {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO requests (id, sha256) VALUES (?1, ?2)",
                    params![&request[..], &digest(&[b"request", request])[..]],
                )
                .map_err(sql(path))?;
            if inserted == 0 {
                return Err(DeployError::store(
                    path,
                    format!(
                        "update request {} was applied already; it is not applied twice",
                        hex(request)
                    ),
                ));
            }
        }
        if replace {
            tx.execute(&format!("DELETE FROM {}", kind.rows), [])
                .map_err(sql(path))?;
        }
        put(&tx, path)?;
        write_state(&tx, path, kind, users)?;
        tx.commit().map_err(sql(path))
    }

    /// Forgets everything, then rebuilds the file so the old rows leave it.
    fn reset(&mut self) -> Result<()> {
        let Self { path, conn, kind } = self;
        let (path, kind) = (path.as_path(), *kind);
        let tx = begin(conn, path)?;
        clear(&tx, kind).map_err(sql(path))?;
        tx.commit().map_err(sql(path))?;
        conn.execute_batch("VACUUM").map_err(sql(path))
    }
}

/// Starts a write transaction, taking the write lock at once.
fn begin<'c>(conn: &'c mut Connection, path: &Path) -> Result<Transaction<'c>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(path))
}

fn clear(conn: &Connection, kind: Kind) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "DELETE FROM meta; DELETE FROM requests; DELETE FROM {};",
        kind.rows
    ))
}

fn put_meta(conn: &Connection, name: &str, bytes: &[u8]) -> rusqlite::Result<()> {
    let sum = digest(&[b"meta", name.as_bytes(), bytes]);
    conn.execute(
        "INSERT OR REPLACE INTO meta (name, bytes, sha256) VALUES (?1, ?2, ?3)",
        params![name, bytes, &sum[..]],
    )
    .map(drop)
}

/// Rewrites the state record from the rows the transaction leaves.
fn write_state(conn: &Connection, path: &Path, kind: Kind, users: i64) -> Result<()> {
    let count = |table: &str| -> Result<i64> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .map_err(sql(path))
    };
    let mut state = Vec::with_capacity(24);
    for value in [users, count(kind.rows)?, count("requests")?] {
        state.extend_from_slice(&value.to_le_bytes());
    }
    put_meta(conn, "state", &state).map_err(sql(path))
}

/// A unit's key as stored.
fn unit_key(path: &Path, id: &UnitId) -> Result<(i64, i64)> {
    Ok((
        to_sql(path, "group", id.group)?,
        to_sql(path, "feature", id.feature)?,
    ))
}

fn unit_id(path: &Path, group: i64, feature: i64) -> Result<UnitId> {
    Ok(UnitId {
        group: from_sql(path, "a group", group)?,
        feature: from_sql(path, "a feature", feature)?,
    })
}

/// What a cluster held when it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// The sealed setup message as received.
    pub setup: Vec<u8>,
    /// Users of the whole gallery the shard belongs to.
    pub users: usize,
    /// The shard's gallery ciphertexts (raw fhe bytes), sorted by id.
    pub units: Vec<(UnitId, Vec<u8>)>,
}

/// A cluster's store (`cluster.sqlite`): the setup message, its shard of the gallery and
/// the update requests it applied, so a restarted cluster serves the same shard.
#[derive(Debug)]
pub struct ClusterStore {
    db: Db,
}

impl ClusterStore {
    /// Opens (creating the folder and `cluster.sqlite` inside it when missing) and checks
    /// it: structure (`quick_check`), kind and schema version.
    pub fn open(dir: &Path) -> Result<Self> {
        Db::open(dir, CLUSTER).map(|db| Self { db })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// `None` when nothing was ever set up (or after reset). Verifies every checksum, so
    /// a damaged shard is refused rather than matched against.
    pub fn load(&self) -> Result<Option<ClusterSnapshot>> {
        let Some((setup, state)) = self.db.load_head()? else {
            return Ok(None);
        };
        let path = &self.db.path;
        let mut stmt = self
            .db
            .conn
            .prepare("SELECT grp, feature, bytes, sha256 FROM units ORDER BY grp, feature")
            .map_err(sql(path))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(sql(path))?;
        let mut units = Vec::new();
        for row in rows {
            let (group, feature, bytes, stored) = row.map_err(sql(path))?;
            let expected = digest(&[
                b"unit",
                &group.to_le_bytes(),
                &feature.to_le_bytes(),
                &bytes,
            ]);
            check(
                path,
                &unit_name(group, feature),
                &stored,
                &expected,
                "the stored shard is damaged; restore it or re-enrol",
            )?;
            units.push((unit_id(path, group, feature)?, bytes));
        }
        self.db.check_count("units", units.len(), state.rows)?;
        Ok(Some(ClusterSnapshot {
            setup,
            users: state.users,
            units,
        }))
    }

    /// A new deployment's setup: replaces everything (units, users, requests are cleared).
    pub fn save_setup(&mut self, setup: &[u8]) -> Result<()> {
        self.db.save_setup(setup)
    }

    /// Replaces the whole shard (an enrolment): all units replaced, users set.
    pub fn save_shard(&mut self, users: usize, units: &[(UnitId, &[u8])]) -> Result<()> {
        self.db
            .write(None, users, true, |conn, path| put_units(conn, path, units))
    }

    /// An update: inserts or replaces the given units, sets users, and records `request`,
    /// all in one transaction, so a crash never leaves half an update, nor an update
    /// without its record. A request recorded already is refused.
    pub fn apply_update(
        &mut self,
        request: &[u8; 16],
        users: usize,
        units: &[(UnitId, &[u8])],
    ) -> Result<()> {
        self.db.write(Some(request), users, false, |conn, path| {
            put_units(conn, path, units)
        })
    }

    /// Whether an update with this id was applied already (retries must not apply twice).
    pub fn has_request(&self, request: &[u8; 16]) -> Result<bool> {
        self.db.has_request(request)
    }

    /// Forget everything (the operator's reset).
    pub fn reset(&mut self) -> Result<()> {
        self.db.reset()
    }
}

fn put_units(conn: &Connection, path: &Path, units: &[(UnitId, &[u8])]) -> Result<()> {
    let mut stmt = conn
        .prepare(
            "INSERT OR REPLACE INTO units (grp, feature, bytes, sha256) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql(path))?;
    for (id, bytes) in units {
        let (group, feature) = unit_key(path, id)?;
        let sum = digest(&[b"unit", &group.to_le_bytes(), &feature.to_le_bytes(), bytes]);
        stmt.execute(params![group, feature, bytes, &sum[..]])
            .map_err(sql(path))?;
    }
    Ok(())
}

/// What the main server held when it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MainSnapshot {
    /// The client's sealed setup message as received.
    pub setup: Vec<u8>,
    /// Users of the gallery.
    pub users: usize,
    /// Which cluster (index) holds each gallery unit, sorted by unit.
    pub placement: Vec<(UnitId, usize)>,
}

/// The main server's store (`main.sqlite`): the client's setup message, which cluster
/// holds each gallery unit, the user count and the applied update requests. It holds no
/// ciphertext of the gallery: the clusters keep their shards.
#[derive(Debug)]
pub struct MainStore {
    db: Db,
}

impl MainStore {
    /// Opens (creating the folder and `main.sqlite` inside it when missing) and checks it.
    pub fn open(dir: &Path) -> Result<Self> {
        Db::open(dir, MAIN).map(|db| Self { db })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// `None` when nothing was set up; verifies every checksum.
    pub fn load(&self) -> Result<Option<MainSnapshot>> {
        let Some((setup, state)) = self.db.load_head()? else {
            return Ok(None);
        };
        let path = &self.db.path;
        let mut stmt = self
            .db
            .conn
            .prepare("SELECT grp, feature, cluster, sha256 FROM placement ORDER BY grp, feature")
            .map_err(sql(path))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(sql(path))?;
        let mut placement = Vec::new();
        for row in rows {
            let (group, feature, cluster, stored) = row.map_err(sql(path))?;
            let expected = digest(&[
                b"placement",
                &group.to_le_bytes(),
                &feature.to_le_bytes(),
                &cluster.to_le_bytes(),
            ]);
            check(
                path,
                &format!("the placement of {}", unit_name(group, feature)),
                &stored,
                &expected,
                "the store is damaged; restore it or set up and enrol again",
            )?;
            placement.push((
                unit_id(path, group, feature)?,
                from_sql(path, "a cluster index", cluster)?,
            ));
        }
        self.db
            .check_count("placement rows", placement.len(), state.rows)?;
        Ok(Some(MainSnapshot {
            setup,
            users: state.users,
            placement,
        }))
    }

    /// A new deployment's setup: clears placement, users and requests.
    pub fn save_setup(&mut self, setup: &[u8]) -> Result<()> {
        self.db.save_setup(setup)
    }

    /// An enrolment: replaces the whole placement and sets users.
    pub fn save_enrolment(&mut self, users: usize, placement: &[(UnitId, usize)]) -> Result<()> {
        self.db.write(None, users, true, |conn, path| {
            put_placement(conn, path, placement)
        })
    }

    /// An update: inserts or replaces the given placements, sets users and records
    /// `request`, in one transaction. A request recorded already is refused.
    pub fn apply_update(
        &mut self,
        request: &[u8; 16],
        users: usize,
        placement: &[(UnitId, usize)],
    ) -> Result<()> {
        self.db.write(Some(request), users, false, |conn, path| {
            put_placement(conn, path, placement)
        })
    }

    /// Whether an update with this id was applied already (retries must not apply twice).
    pub fn has_request(&self, request: &[u8; 16]) -> Result<bool> {
        self.db.has_request(request)
    }

    /// Forget everything (the operator's reset).
    pub fn reset(&mut self) -> Result<()> {
        self.db.reset()
    }
}

fn put_placement(conn: &Connection, path: &Path, placement: &[(UnitId, usize)]) -> Result<()> {
    let mut stmt = conn
        .prepare(
            "INSERT OR REPLACE INTO placement (grp, feature, cluster, sha256) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql(path))?;
    for (id, cluster) in placement {
        let (group, feature) = unit_key(path, id)?;
        let cluster = to_sql(path, "cluster index", *cluster)?;
        let sum = digest(&[
            b"placement",
            &group.to_le_bytes(),
            &feature.to_le_bytes(),
            &cluster.to_le_bytes(),
        ]);
        stmt.execute(params![group, feature, cluster, &sum[..]])
            .map_err(sql(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(group: usize, feature: usize) -> UnitId {
        UnitId { group, feature }
    }

    /// A recognisable blob of `len` bytes.
    fn blob(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn units(list: &[(UnitId, Vec<u8>)]) -> Vec<(UnitId, &[u8])> {
        list.iter()
            .map(|(id, b)| (id.clone(), b.as_slice()))
            .collect()
    }

    fn message<T: std::fmt::Debug>(result: Result<T>) -> String {
        result.expect_err("must be refused").to_string()
    }

    /// A cluster store with a setup and a shard of three 4 KB units.
    fn filled(dir: &Path) -> ClusterSnapshot {
        let shard = vec![
            (id(0, 1), blob(1, 4096)),
            (id(3, 7), blob(2, 4096)),
            (id(0, 0), blob(3, 4096)),
        ];
        let mut store = ClusterStore::open(dir).unwrap();
        store.save_setup(&blob(9, 10_000)).unwrap();
        store.save_shard(12, &units(&shard)).unwrap();
        let mut sorted = shard;
        sorted.sort();
        ClusterSnapshot {
            setup: blob(9, 10_000),
            users: 12,
            units: sorted,
        }
    }

    #[test]
    fn cluster_round_trip_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = ClusterStore::open(dir.path()).unwrap();
        assert_eq!(store.path(), dir.path().join("cluster.sqlite"));
        assert_eq!(store.load().unwrap(), None);
        drop(store);
        let expected = filled(dir.path());
        let store = ClusterStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), Some(expected));
    }

    #[test]
    fn cluster_update_upserts_and_records_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = filled(dir.path());
        let mut store = ClusterStore::open(dir.path()).unwrap();
        let request = [7u8; 16];
        assert!(!store.has_request(&request).unwrap());
        let update = vec![(id(3, 7), blob(20, 100)), (id(5, 0), blob(21, 50))];
        store.apply_update(&request, 13, &units(&update)).unwrap();
        assert!(store.has_request(&request).unwrap());
        assert!(!store.has_request(&[8u8; 16]).unwrap());
        // A retry is refused, and changes nothing.
        let again = message(store.apply_update(&request, 99, &[]));
        assert!(again.contains("applied already"), "{again}");

        expected.users = 13;
        expected.units[2].1 = blob(20, 100);
        expected.units.push((id(5, 0), blob(21, 50)));
        drop(store);
        let store = ClusterStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), Some(expected));
        assert!(store.has_request(&request).unwrap());
    }

    #[test]
    fn cluster_setup_clears_and_reset_forgets() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let mut store = ClusterStore::open(dir.path()).unwrap();
        store.apply_update(&[1; 16], 12, &[]).unwrap();
        store.save_setup(b"new setup").unwrap();
        let snapshot = store.load().unwrap().unwrap();
        assert_eq!(snapshot.setup, b"new setup");
        assert_eq!((snapshot.users, snapshot.units.len()), (0, 0));
        assert!(!store.has_request(&[1; 16]).unwrap());

        store.save_shard(1, &[(id(0, 0), b"x")]).unwrap();
        store.reset().unwrap();
        assert_eq!(store.load().unwrap(), None);
        // Nothing can be stored before a setup.
        assert!(message(store.save_shard(1, &[])).contains("no setup"));
        assert!(message(store.apply_update(&[2; 16], 1, &[])).contains("no setup"));
    }

    #[test]
    fn save_shard_replaces_every_unit() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let mut store = ClusterStore::open(dir.path()).unwrap();
        store.save_shard(2, &[(id(9, 9), b"only")]).unwrap();
        let snapshot = store.load().unwrap().unwrap();
        assert_eq!(snapshot.users, 2);
        assert_eq!(snapshot.units, vec![(id(9, 9), b"only".to_vec())]);
    }

    #[test]
    fn a_changed_unit_is_refused_naming_file_and_unit() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let path = dir.path().join("cluster.sqlite");
        let raw = Connection::open(&path).unwrap();
        let mut damaged = blob(2, 4096);
        damaged[100] ^= 1;
        raw.execute(
            "UPDATE units SET bytes = ?1 WHERE grp = 3 AND feature = 7",
            [&damaged],
        )
        .unwrap();
        drop(raw);
        let text = message(ClusterStore::open(dir.path()).unwrap().load());
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains("unit (group 3, feature 7) fails its SHA-256 check"),
            "{text}"
        );
    }

    #[test]
    fn moved_or_lost_rows_and_hostile_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let raw = Connection::open(dir.path().join("cluster.sqlite")).unwrap();
        // A unit moved to another id keeps its bytes and checksum, but not its key.
        raw.execute("UPDATE units SET feature = 8 WHERE grp = 3", [])
            .unwrap();
        let text = message(ClusterStore::open(dir.path()).unwrap().load());
        assert!(text.contains("unit (group 3, feature 8)"), "{text}");
        raw.execute("UPDATE units SET feature = 7 WHERE grp = 3", [])
            .unwrap();
        raw.execute("DELETE FROM units WHERE grp = 3", []).unwrap();
        let text = message(ClusterStore::open(dir.path()).unwrap().load());
        assert!(
            text.contains("holds 2 units where its state record says 3"),
            "{text}"
        );

        // A negative group with a matching checksum (a forged row) is still refused.
        let sum = digest(&[b"unit", &(-1i64).to_le_bytes(), &0i64.to_le_bytes(), b"x"]);
        raw.execute("INSERT INTO units VALUES (-1, 0, X'78', ?1)", [&sum[..]])
            .unwrap();
        let text = message(ClusterStore::open(dir.path()).unwrap().load());
        assert!(text.contains("holds a group -1"), "{text}");
    }

    /// Every byte position of the file in turn (a sample of them): flipped, the store is
    /// refused at open or load, or loads exactly what was written — never other data.
    #[test]
    fn a_flipped_byte_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let expected = filled(dir.path());
        let path = dir.path().join("cluster.sqlite");
        let original = fs::read(&path).unwrap();
        let open_and_load = || ClusterStore::open(dir.path()).and_then(|s| s.load());

        // A byte inside a stored unit: must be refused.
        let needle = &expected.units[1].1[..64];
        let at = original
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the unit's bytes are in the file");
        let mut damaged = original.clone();
        damaged[at + 10] ^= 0x40;
        fs::write(&path, &damaged).unwrap();
        assert!(open_and_load().is_err());

        let mut refused = 0;
        // Every 397th byte (≈ 120 offsets over pages, headers and blobs; each open runs
        // quick_check and syncs, so a denser sweep costs CI a minute — an exhaustive
        // sweep of every byte with three masks was run once: never served).
        for offset in (0..original.len()).step_by(397) {
            let mut damaged = original.clone();
            damaged[offset] ^= 0x10;
            fs::write(&path, &damaged).unwrap();
            match open_and_load() {
                Ok(snapshot) => assert_eq!(snapshot.as_ref(), Some(&expected), "offset {offset}"),
                Err(_) => refused += 1,
            }
        }
        assert!(refused > 0);
    }

    #[test]
    fn unknown_schema_version_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let raw = Connection::open(dir.path().join("cluster.sqlite")).unwrap();
        raw.pragma_update(None, "user_version", 7).unwrap();
        drop(raw);
        let text = message(ClusterStore::open(dir.path()));
        assert!(text.contains("schema version 7"), "{text}");

        // A main server's file is not a cluster's.
        let other = tempfile::tempdir().unwrap();
        drop(MainStore::open(other.path()).unwrap());
        fs::rename(
            other.path().join("main.sqlite"),
            other.path().join("cluster.sqlite"),
        )
        .unwrap();
        let text = message(ClusterStore::open(other.path()));
        assert!(text.contains("is not a cluster store"), "{text}");
    }

    #[test]
    fn garbage_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.sqlite");
        let garbage: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(&path, &garbage).unwrap();
        let text = message(ClusterStore::open(dir.path()));
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("not a database"), "{text}");
    }

    #[test]
    fn out_of_range_values_are_refused_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MainStore::open(dir.path()).unwrap();
        store.save_setup(b"setup").unwrap();
        let huge = usize::MAX;
        assert!(message(store.save_enrolment(huge, &[])).contains("user count"));
        assert!(message(store.save_enrolment(1, &[(id(huge, 0), 0)])).contains("group"));
        assert!(message(store.save_enrolment(1, &[(id(0, 0), huge)])).contains("cluster index"));
        // Nothing of the refused writes remains.
        let snapshot = store.load().unwrap().unwrap();
        assert_eq!((snapshot.users, snapshot.placement.len()), (0, 0));
    }

    #[test]
    fn main_round_trip_update_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MainStore::open(dir.path()).unwrap();
        assert_eq!(store.path(), dir.path().join("main.sqlite"));
        assert_eq!(store.load().unwrap(), None);
        store.save_setup(&blob(4, 5000)).unwrap();
        store
            .save_enrolment(10, &[(id(1, 0), 1), (id(0, 0), 0), (id(2, 0), 2)])
            .unwrap();
        drop(store);

        let mut store = MainStore::open(dir.path()).unwrap();
        let request = [3u8; 16];
        store
            .apply_update(&request, 11, &[(id(2, 0), 0), (id(3, 0), 1)])
            .unwrap();
        assert!(store.has_request(&request).unwrap());
        drop(store);

        let mut store = MainStore::open(dir.path()).unwrap();
        let expected = MainSnapshot {
            setup: blob(4, 5000),
            users: 11,
            placement: vec![(id(0, 0), 0), (id(1, 0), 1), (id(2, 0), 0), (id(3, 0), 1)],
        };
        assert_eq!(store.load().unwrap(), Some(expected));

        // A new enrolment replaces the placement; a new setup clears it and the requests.
        store.save_enrolment(1, &[(id(0, 0), 3)]).unwrap();
        assert_eq!(
            store.load().unwrap().unwrap().placement,
            vec![(id(0, 0), 3)]
        );
        store.save_setup(b"again").unwrap();
        let snapshot = store.load().unwrap().unwrap();
        assert_eq!((snapshot.users, snapshot.placement.len()), (0, 0));
        assert!(!store.has_request(&request).unwrap());
        store.reset().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }

    #[test]
    fn a_changed_setup_or_placement_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MainStore::open(dir.path()).unwrap();
        store.save_setup(b"setup").unwrap();
        store.save_enrolment(1, &[(id(0, 0), 1)]).unwrap();
        drop(store);
        let raw = Connection::open(dir.path().join("main.sqlite")).unwrap();
        raw.execute("UPDATE placement SET cluster = 2", []).unwrap();
        let text = message(MainStore::open(dir.path()).unwrap().load());
        assert!(
            text.contains("the placement of unit (group 0, feature 0) fails its SHA-256 check"),
            "{text}"
        );
        raw.execute("UPDATE meta SET bytes = X'00' WHERE name = 'setup'", [])
            .unwrap();
        let text = message(MainStore::open(dir.path()).unwrap().load());
        assert!(
            text.contains("the setup record fails its SHA-256 check"),
            "{text}"
        );
    }
}
