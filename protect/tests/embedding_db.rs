//! The unprotected baseline: averaging, cosine, and the SQLite store's durability and
//! refusals.

use protect::embedding_db::{average, cosine, record_bytes, Record, Store, APPLICATION_ID};
use protect::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;

fn random_vec(rng: &mut ChaCha8Rng, d: usize) -> Vec<f32> {
    (0..d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

#[test]
fn average_is_the_plain_mean() {
    let caps = vec![vec![1.0, 0.0, 2.0], vec![3.0, 0.0, -2.0]];
    assert_eq!(average(&caps).unwrap(), vec![2.0, 0.0, 0.0]);
    assert_eq!(average(&caps[..1]).unwrap(), caps[0]);
    let eight = vec![vec![0.5f32; 4]; 8];
    assert_eq!(average(&eight).unwrap(), vec![0.5; 4]);
    assert!(average(&[]).is_err());
    assert!(average(&vec![vec![0.5f32; 4]; 9]).is_err());
    assert!(average(&[vec![1.0], vec![1.0, 2.0]]).is_err());
    assert!(average(&[vec![1.0, f32::INFINITY]]).is_err());
    assert!(average(&[vec![]]).is_err());
}

#[test]
fn cosine_values() {
    assert!((cosine(&[1.0, 0.0], &[0.0, 2.0]).unwrap()).abs() < 1e-7);
    assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]).unwrap() - 1.0).abs() < 1e-7);
    assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]).unwrap() + 1.0).abs() < 1e-7);
    let c = cosine(&[3.0, 4.0], &[4.0, 3.0]).unwrap();
    assert!((c - 24.0 / 25.0).abs() < 1e-6);
    assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]).unwrap(), 0.0);
    assert!(cosine(&[1.0], &[1.0, 2.0]).is_err());
    assert!(cosine(&[], &[]).is_err());
    assert!(cosine(&[f32::NAN], &[1.0]).is_err());
}

#[test]
fn survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.sqlite");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut expected = Vec::new();
    {
        let mut store = Store::create(&path, 16).unwrap();
        for (i, name) in ["carol", "alice", "bob", "dave", "émile"]
            .iter()
            .enumerate()
        {
            let caps: Vec<Vec<f32>> = (0..=i).map(|_| random_vec(&mut rng, 16)).collect();
            let e = average(&caps).unwrap();
            store.enrol(name, &e, caps.len() as u32).unwrap();
            expected.push(Record {
                user: name.to_string(),
                embedding: e,
                captures: caps.len() as u32,
            });
        }
        assert!(store.remove("dave").unwrap());
        assert!(!store.remove("dave").unwrap());
        assert_eq!(store.len().unwrap(), 4);
    }
    expected.retain(|r| r.user != "dave");
    expected.sort_by(|a, b| a.user.cmp(&b.user));
    let store = Store::open(&path).unwrap();
    assert_eq!(store.dim(), 16);
    assert_eq!(store.len().unwrap(), 4);
    assert_eq!(store.all().unwrap(), expected);
    let bob = store.get("bob").unwrap().unwrap();
    assert_eq!(bob, expected[1]);
    assert!(store.get("dave").unwrap().is_none());
    let (score, accept) = store.verify("bob", &bob.embedding, 0.75).unwrap();
    assert!((score - 1.0).abs() < 1e-6 && accept);
    let opposite: Vec<f32> = bob.embedding.iter().map(|v| -v).collect();
    assert!(!store.verify("bob", &opposite, 0.75).unwrap().1);
    assert!(store.file_bytes().unwrap() > 0);
    assert_eq!(record_bytes(16, 3), 3 + 64 + 32 + 1);
}

#[test]
fn enrolment_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let mut store = Store::create(&path, 4).unwrap();
    store.enrol("a", &[1.0, 0.0, 0.0, 0.0], 8).unwrap();
    assert!(matches!(
        store.enrol("a", &[0.0, 1.0, 0.0, 0.0], 1),
        Err(Error::AlreadyEnrolled { .. })
    ));
    assert!(store.enrol("b", &[1.0, 0.0, 0.0], 1).is_err());
    assert!(store.enrol("b", &[1.0, 0.0, 0.0, f32::NAN], 1).is_err());
    assert!(store.enrol("b", &[1.0; 4], 0).is_err());
    assert!(store.enrol("b", &[1.0; 4], 9).is_err());
    assert!(store.enrol("", &[1.0; 4], 1).is_err());
    assert!(store.enrol(&"x".repeat(257), &[1.0; 4], 1).is_err());
    assert!(matches!(
        store.verify("nobody", &[1.0; 4], 0.5),
        Err(Error::UnknownUser { .. })
    ));
    assert!(store.verify("a", &[1.0; 3], 0.5).is_err());
    assert!(store.identify(&[1.0; 5]).is_err());
    drop(store);
    // create refuses an existing file; open refuses a missing one.
    let e = Store::create(&path, 4).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("s.db"), "{e}");
    let e = Store::open(dir.path().join("missing.db"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.db") && e.contains("no such file"),
        "{e}"
    );
    assert!(Store::create(dir.path().join("zero.db"), 0).is_err());
}

#[test]
fn refuses_a_file_of_random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for len in [1usize, 100, 4096, 20_000] {
        let path = dir.path().join(format!("junk{len}.db"));
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        std::fs::write(&path, bytes).unwrap();
        let e = Store::open(&path).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Database { .. }), "{msg}");
        assert!(msg.contains(&format!("junk{len}.db")), "{msg}");
        assert!(msg.contains("not an SQLite database"), "{msg}");
    }
    // An empty file would be a valid empty SQLite database, but is not a store.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let msg = Store::open(&empty).unwrap_err().to_string();
    assert!(
        msg.contains("empty file") && msg.contains("empty.db"),
        "{msg}"
    );
    // A valid SQLite header followed by garbage.
    let fake = dir.path().join("fake.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..8192).map(|_| rng.random::<u8>()));
    std::fs::write(&fake, bytes).unwrap();
    let msg = Store::open(&fake).unwrap_err().to_string();
    assert!(msg.contains("fake.db"), "{msg}");
}

#[test]
fn refuses_a_corrupted_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let original = {
        let mut store = Store::create(&path, 64).unwrap();
        for i in 0..300 {
            store
                .enrol(&format!("user{i:04}"), &random_vec(&mut rng, 64), 1)
                .unwrap();
        }
        store.all().unwrap()
    };
    let clean = std::fs::read(&path).unwrap();
    let pages = clean.len() / 4096;
    assert!(pages > 16);
    // Garbage over parts of the file: opening (quick_check) or reading must fail with an
    // error naming the file, or — where only unused space was hit — return exactly the
    // stored records. Never a panic, never wrong data.
    let mut failures = 0;
    for trial in 0..40 {
        let (start, len) = match trial {
            0 => (100, 1500),                // page 1: the schema
            1 => (4096 * (pages / 2), 4096), // a whole page in the middle
            _ => {
                let start = rng.random_range(100..clean.len() - 600);
                (start, rng.random_range(1..600))
            }
        };
        let mut bytes = clean.clone();
        for b in &mut bytes[start..start + len] {
            *b = rng.random();
        }
        std::fs::write(&path, &bytes).unwrap();
        match Store::open(&path).and_then(|s| s.all()) {
            Err(e) => {
                failures += 1;
                assert!(e.to_string().contains("big.db"), "{e}");
            }
            Ok(records) => {
                assert!(trial >= 2, "trial {trial} read a corrupted store");
                assert_eq!(records, original, "trial {trial}: wrong data");
            }
        }
    }
    assert!(
        failures > 10,
        "only {failures} of 40 corruptions were noticed"
    );
    // A store truncated to half its size.
    std::fs::write(&path, &clean[..clean.len() / 2]).unwrap();
    assert!(Store::open(&path).and_then(|s| s.all()).is_err());
}

#[test]
fn refuses_foreign_sqlite_databases() {
    let dir = tempfile::tempdir().unwrap();
    // Another application's database.
    let other = dir.path().join("other.db");
    let conn = Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x');")
        .unwrap();
    drop(conn);
    let msg = Store::open(&other).unwrap_err().to_string();
    assert!(
        msg.contains("other.db") && msg.contains("application_id"),
        "{msg}"
    );
    // Our application id, but not our tables.
    let mimic = dir.path().join("mimic.db");
    let conn = Connection::open(&mimic).unwrap();
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    conn.execute_batch("CREATE TABLE users (name TEXT, face BLOB);")
        .unwrap();
    drop(conn);
    let msg = Store::open(&mimic).unwrap_err().to_string();
    assert!(msg.contains("mimic.db") && msg.contains("columns"), "{msg}");
    // Ours, from a later schema version.
    let later = dir.path().join("later.db");
    Store::create(&later, 8).unwrap();
    let conn = Connection::open(&later).unwrap();
    conn.execute(
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let msg = Store::open(&later).unwrap_err().to_string();
    assert!(
        msg.contains("later.db") && msg.contains("schema version"),
        "{msg}"
    );
    // Ours, with the meta table emptied.
    let bare = dir.path().join("bare.db");
    Store::create(&bare, 8).unwrap();
    let conn = Connection::open(&bare).unwrap();
    conn.execute("DELETE FROM meta", []).unwrap();
    drop(conn);
    let msg = Store::open(&bare).unwrap_err().to_string();
    assert!(msg.contains("bare.db") && msg.contains("magic"), "{msg}");
}

#[test]
fn tampered_rows_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tamper.db");
    let mut store = Store::create(&path, 4).unwrap();
    store.enrol("alice", &[0.1, 0.2, 0.3, 0.4], 8).unwrap();
    store.enrol("bob", &[0.4, 0.3, 0.2, 0.1], 8).unwrap();
    store.enrol("carol", &[0.0, 0.3, 0.2, 0.1], 8).unwrap();
    drop(store);
    let conn = Connection::open(&path).unwrap();
    // Same length, other values: the checksum no longer matches.
    let forged: Vec<u8> = [0.9f32, 0.9, 0.9, 0.9]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    conn.execute(
        "UPDATE users SET embedding = ?1 WHERE user = 'bob'",
        [&forged],
    )
    .unwrap();
    // Wrong length.
    conn.execute(
        "UPDATE users SET embedding = X'00000000' WHERE user = 'carol'",
        [],
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get("alice").unwrap().unwrap().captures, 8);
    for (user, what) in [("bob", "checksum"), ("carol", "4 bytes")] {
        let e = store.get(user).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::Row { user: u, .. } if u == user),
            "{msg}"
        );
        assert!(
            msg.contains("tamper.db") && msg.contains(user) && msg.contains(what),
            "{msg}"
        );
    }
    assert!(store.all().is_err());
    assert!(store.identify(&[1.0; 4]).is_err());
    assert!(store.verify("bob", &[1.0; 4], 0.5).is_err());
    drop(store);
    // Swapping two users' (self-consistent) embeddings and checksums is caught too.
    let conn = Connection::open(&path).unwrap();
    conn.execute("DELETE FROM users WHERE user IN ('bob', 'carol')", [])
        .unwrap();
    conn.execute(
        "INSERT INTO users (user, embedding, captures, checksum) \
         SELECT 'mallory', embedding, captures, checksum FROM users WHERE user = 'alice'",
        [],
    )
    .unwrap();
    conn.execute("UPDATE users SET captures = 7 WHERE user = 'alice'", [])
        .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    assert!(store
        .get("mallory")
        .unwrap_err()
        .to_string()
        .contains("checksum"));
    assert!(store
        .get("alice")
        .unwrap_err()
        .to_string()
        .contains("checksum"));
}

#[test]
fn identify_ranks_like_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let dir = tempfile::tempdir().unwrap();
    for trial in 0..5 {
        let d = 8;
        let path = dir.path().join(format!("rank{trial}.db"));
        let mut store = Store::create(&path, d).unwrap();
        let mut gallery: Vec<(String, Vec<f32>)> = Vec::new();
        for i in 0..40 {
            let name = format!("u{:02}", rng.random_range(0..100u32) * 100 + i);
            // Some duplicates and scaled copies, so ties occur.
            let e = if i > 2 && rng.random_bool(0.2) {
                let j = rng.random_range(0..gallery.len());
                gallery[j].1.iter().map(|v| v * 2.0).collect()
            } else {
                random_vec(&mut rng, d)
            };
            store.enrol(&name, &e, 1).unwrap();
            gallery.push((name, e));
        }
        for _ in 0..10 {
            let probe = if rng.random_bool(0.5) {
                gallery[rng.random_range(0..gallery.len())].1.clone()
            } else {
                random_vec(&mut rng, d)
            };
            let mut reference: Vec<(String, f32)> = gallery
                .iter()
                .map(|(u, e)| (u.clone(), cosine(e, &probe).unwrap()))
                .collect();
            reference.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
            assert_eq!(store.identify(&probe).unwrap(), reference);
            // verify agrees with the ranking's scores.
            let (u, s) = &reference[0];
            assert_eq!(store.verify(u, &probe, *s).unwrap(), (*s, true));
        }
    }
}
