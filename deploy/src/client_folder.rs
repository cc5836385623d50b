//! The client's folder: its secret key (only here, file mode 0600), the deployment's
//! parameter set, layout and quantized model, and the enrolled users — names, templates
//! and which were removed. The client needs the templates to re-encrypt a unit when a
//! user of it is added or removed (the servers cannot), and to check every decrypted
//! score against the plaintext one. It already holds the key that decrypts them all, so
//! keeping them here adds no secret it did not have.
//!
//! Every change is written temp → fsync → rename. An update is recorded as pending
//! (with its request id) before it is sent and cleared once acknowledged, so a client
//! stopped mid-update resends the same request and the servers apply it once.

use crate::remote::Remote;
use crate::{DeployError, Result};
use protocol::messages::QueryForm;
use protocol::messages::{Layout, RequestId};
use protocol::quantize::QuantizedModel;
use protocol::roles::Client;
use protocol::{Decision, ParamSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STATE: &str = "client.json";
const KEY: &str = "secret.key";
const VERSION: u32 = 1;

/// One enrolled user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// The user's name (unique in the deployment).
    pub name: String,
    /// The float template.
    pub template: Vec<f32>,
    /// Removed: the slot is zeros on the servers and never matches.
    #[serde(default)]
    pub removed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    request: [u8; 16],
    users: Vec<User>,
    changed: BTreeSet<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    version: u32,
    params: ParamSpec,
    /// "blindtouch", "blindtouch-ew" or "columnar".
    layout: String,
    model: QuantizedModel,
    /// Whether the gallery was enrolled (later additions are updates).
    enrolled: bool,
    users: Vec<User>,
    pending: Option<Pending>,
}

/// Names of the layouts in the folder and on the command line.
pub fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::BlindTouch {
            encrypted_weights: false,
        } => "blindtouch",
        Layout::BlindTouch {
            encrypted_weights: true,
        } => "blindtouch-ew",
        Layout::Columnar => "columnar",
    }
}

/// The layout named `name`.
pub fn parse_layout(name: &str) -> Result<Layout> {
    Ok(match name {
        "blindtouch" => Layout::BlindTouch {
            encrypted_weights: false,
        },
        "blindtouch-ew" => Layout::BlindTouch {
            encrypted_weights: true,
        },
        "columnar" => Layout::Columnar,
        other => {
            return Err(DeployError::Input(format!(
                "unknown scheme `{other}`: blindtouch, blindtouch-ew or columnar"
            )))
        }
    })
}

/// One identification through the deployment.
#[derive(Clone, Debug)]
pub struct Identification {
    /// Decrypted integer score per user slot (`None`: removed, or left out by a
    /// partial answer).
    pub scores: Vec<Option<i64>>,
    /// Every slot's decrypted score, removed users' included (their slot holds zeros on
    /// the servers: what a template of zeros scores, proof that the template is gone).
    pub slots: Vec<Option<i64>>,
    /// Live, scored users at or above the threshold, best first: (slot, name, score).
    pub ranking: Vec<(usize, String, i64)>,
    /// Whether the best is accepted.
    pub accepted: bool,
    /// Users a partial answer left out (names).
    pub missing: Vec<String>,
    /// Clusters that failed (partial answers).
    pub failed: Vec<(usize, String)>,
    /// Stage timings, in order: encrypt, serialize, upload, server, download, decrypt,
    /// decide; plus the main server's own stages.
    pub timings: Timings,
}

/// Where a remote identification's time went.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Encrypting the query.
    pub encrypt: Duration,
    /// Sealing it.
    pub serialize_query: Duration,
    /// Socket transfer of the query until the main server had it.
    pub upload: Duration,
    /// The main server's work, seen from the client.
    pub server: Duration,
    /// Socket transfer of the answer.
    pub download: Duration,
    /// Opening and decrypting the results.
    pub decrypt: Duration,
    /// Reading scores and ranking.
    pub decide: Duration,
    /// Query bytes up, answer bytes down.
    pub upload_bytes: usize,
    /// Answer bytes.
    pub download_bytes: usize,
    /// The main server's stages.
    pub main: crate::answers::ServerStages,
}

impl Timings {
    /// Client-side wall time of the whole identification.
    pub fn total(&self) -> Duration {
        self.encrypt
            + self.serialize_query
            + self.upload
            + self.server
            + self.download
            + self.decrypt
            + self.decide
    }
}

/// A client folder, open.
pub struct ClientFolder {
    dir: PathBuf,
    state: State,
    client: Client,
}

impl ClientFolder {
    /// Generates a key and writes a new folder (refuses an existing one).
    pub fn create(
        dir: &Path,
        params: ParamSpec,
        layout: Layout,
        model: QuantizedModel,
    ) -> Result<Self> {
        if dir.join(STATE).exists() || dir.join(KEY).exists() {
            return Err(DeployError::Input(format!(
                "{} already holds a client (its key would be lost); choose another folder",
                dir.display()
            )));
        }
        fs::create_dir_all(dir)
            .map_err(|e| DeployError::Input(format!("cannot create {}: {e}", dir.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
                DeployError::Input(format!("cannot restrict {}: {e}", dir.display()))
            })?;
        }
        let client = Client::new(params.build()?, layout, model.clone())?;
        write_atomic(&dir.join(KEY), &client.secret_key_bytes(), true)?;
        let folder = Self {
            dir: dir.to_path_buf(),
            state: State {
                version: VERSION,
                params,
                layout: layout_name(layout).to_string(),
                model,
                enrolled: false,
                users: Vec::new(),
                pending: None,
            },
            client,
        };
        folder.save()?;
        Ok(folder)
    }

    /// Opens a folder written by [`ClientFolder::create`].
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(STATE);
        let text = fs::read(&path).map_err(|e| {
            DeployError::Input(format!(
                "{}: {e} (make a client with `touchstone client keygen`)",
                path.display()
            ))
        })?;
        let state: State = serde_json::from_slice(&text)
            .map_err(|e| DeployError::Input(format!("{}: malformed: {e}", path.display())))?;
        if state.version != VERSION {
            return Err(DeployError::Input(format!(
                "{}: format version {} (this build reads {VERSION})",
                path.display(),
                state.version
            )));
        }
        let key_path = dir.join(KEY);
        let key = fs::read(&key_path)
            .map_err(|e| DeployError::Input(format!("{}: {e}", key_path.display())))?;
        let layout = parse_layout(&state.layout)?;
        let client =
            Client::from_secret_key(state.params.build()?, layout, state.model.clone(), &key)
                .map_err(|e| DeployError::Input(format!("{}: {e}", key_path.display())))?;
        for user in &state.users {
            if user.template.len() != state.model.features()
                || user.template.iter().any(|v| !v.is_finite())
            {
                return Err(DeployError::Input(format!(
                    "{}: user `{}` has a template of {} values (the model has {} features) or a non-finite value",
                    path.display(),
                    user.name,
                    user.template.len(),
                    state.model.features()
                )));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            state,
            client,
        })
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_vec(&self.state)
            .map_err(|e| DeployError::Input(format!("encoding the client state: {e}")))?;
        // The templates are as sensitive as the key: owner-only too.
        write_atomic(&self.dir.join(STATE), &json, true)
    }

    /// The protocol client (holds the secret key).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The parameter set's spec.
    pub fn params(&self) -> &ParamSpec {
        &self.state.params
    }

    /// The layout's name.
    pub fn layout_name(&self) -> &str {
        &self.state.layout
    }

    /// Every user slot, removed ones included.
    pub fn users(&self) -> &[User] {
        &self.state.users
    }

    /// Live (not removed) users.
    pub fn live_users(&self) -> usize {
        self.state.users.iter().filter(|u| !u.removed).count()
    }

    /// Makes sure the main server serves this client: sends the setup unless it serves
    /// this deployment already. Refuses a server bound to another client.
    pub fn ensure_setup(&self, remote: &Remote) -> Result<()> {
        let mine = format!("{:016x}", self.client.deployment());
        match remote.status()?.deployment {
            Some(d) if d == mine => Ok(()),
            Some(other) => Err(DeployError::Input(format!(
                "main server {} serves deployment {other}, not this client's {mine} (a \
                 deployment serves one client: stop its servers and start them on empty \
                 --store folders to hand them to another client)",
                remote.addr()
            ))),
            None => {
                let (setup, _) = self.client.setup_message()?;
                remote.setup(setup.clone())?;
                Ok(())
            }
        }
    }

    /// Enrols users: the first time the whole gallery, later as an update that adds
    /// them. Names must be new.
    pub fn enrol(
        &mut self,
        remote: &Remote,
        users: Vec<(String, Vec<f32>)>,
    ) -> Result<crate::answers::Ack> {
        self.resend_pending(remote)?;
        let mut names: BTreeSet<&str> = self.state.users.iter().map(|u| u.name.as_str()).collect();
        for (name, template) in &users {
            if !names.insert(name) {
                return Err(DeployError::Input(format!(
                    "user `{name}` is enrolled already (or listed twice)"
                )));
            }
            if template.len() != self.state.model.features() {
                return Err(DeployError::Input(format!(
                    "user `{name}`: template of {} values, the model has {} features",
                    template.len(),
                    self.state.model.features()
                )));
            }
        }
        if users.is_empty() {
            return Err(DeployError::Input("no users to enrol".into()));
        }
        self.ensure_setup(remote)?;
        let new: Vec<User> = users
            .into_iter()
            .map(|(name, template)| User {
                name,
                template,
                removed: false,
            })
            .collect();
        if !self.state.enrolled {
            let gallery: Vec<Vec<f32>> = new.iter().map(|u| u.template.clone()).collect();
            let (ack, _) = remote.enrol(self.client.enrolment_message(&gallery)?)?;
            self.state.users = new;
            self.state.enrolled = true;
            self.save()?;
            return Ok(ack);
        }
        let first = self.state.users.len();
        let mut after = self.state.users.clone();
        after.extend(new);
        let changed: BTreeSet<usize> = (first..after.len()).collect();
        self.send_update(remote, after, changed)
    }

    /// Removes users by name: their slots are re-encrypted as zeros on the servers and
    /// never ranked again.
    pub fn remove(&mut self, remote: &Remote, names: &[String]) -> Result<crate::answers::Ack> {
        self.resend_pending(remote)?;
        let index: BTreeMap<&str, usize> = self
            .state
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| !u.removed)
            .map(|(i, u)| (u.name.as_str(), i))
            .collect();
        let mut changed = BTreeSet::new();
        for name in names {
            let i = index
                .get(name.as_str())
                .ok_or_else(|| DeployError::Input(format!("no enrolled user `{name}`")))?;
            changed.insert(*i);
        }
        if changed.is_empty() {
            return Err(DeployError::Input("no users to remove".into()));
        }
        let mut after = self.state.users.clone();
        for &i in &changed {
            after[i].removed = true;
        }
        self.send_update(remote, after, changed)
    }

    fn send_update(
        &mut self,
        remote: &Remote,
        after: Vec<User>,
        changed: BTreeSet<usize>,
    ) -> Result<crate::answers::Ack> {
        self.state.pending = Some(Pending {
            request: RequestId::random().0,
            users: after,
            changed,
        });
        self.save()?;
        self.resend_pending(remote)?
            .ok_or_else(|| DeployError::Input("no pending update".into()))
    }

    /// Sends the pending update, if any (same request id: applied once), and commits it.
    /// An update that failed half way (some clusters applied it, some did not) leaves the
    /// servers inconsistent until this succeeds; `identify` refuses until then.
    pub fn resend_pending(&mut self, remote: &Remote) -> Result<Option<crate::answers::Ack>> {
        let Some(pending) = self.state.pending.clone() else {
            return Ok(None);
        };
        let gallery: Vec<Vec<f32>> = pending.users.iter().map(|u| u.template.clone()).collect();
        let removed: BTreeSet<usize> = pending
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| u.removed)
            .map(|(i, _)| i)
            .collect();
        let message = self.client.update_message(
            &RequestId(pending.request),
            &gallery,
            &removed,
            &pending.changed,
        )?;
        let (ack, _) = remote.update(message)?;
        self.state.users = pending.users;
        self.state.pending = None;
        self.save()?;
        Ok(Some(ack))
    }

    /// The plaintext integer scores of `probe` against the gallery as the servers hold
    /// it (removed users: `None`): what every decrypted score must equal.
    pub fn expected_scores(&self, probe: &[f32]) -> Vec<Option<i64>> {
        let m = self.client.model();
        let q = m.quantize(probe);
        self.state
            .users
            .iter()
            .map(|u| (!u.removed).then(|| m.score(&q, &m.quantize(&u.template))))
            .collect()
    }

    /// Whether an update was sent but not acknowledged.
    pub fn has_pending(&self) -> bool {
        self.state.pending.is_some()
    }

    /// Identifies `probe`: encrypt, send, decrypt, decide over the live users. Refused
    /// while an update is pending: some clusters may hold it and others not, and a score
    /// summed over both would be wrong without any sign of it.
    pub fn identify(&self, remote: &Remote, probe: &[f32]) -> Result<Identification> {
        self.identify_as(remote, probe, QueryForm::Ciphertexts)
    }

    /// [`ClientFolder::identify`] with the query sent in `form` (the extended form needs
    /// clusters on a fused engine).
    pub fn identify_as(
        &self,
        remote: &Remote,
        probe: &[f32],
        form: QueryForm,
    ) -> Result<Identification> {
        if self.state.pending.is_some() {
            return Err(DeployError::Input(format!(
                "{}: an update was sent but not acknowledged; finish it first (`touchstone \
                 client enrol`/`remove` resend it, and `client identify` does so itself)",
                self.dir.display()
            )));
        }
        let mut t = Timings::default();
        let start = Instant::now();
        let query = match form {
            QueryForm::Ciphertexts => self.client.encrypt_query(probe)?,
            QueryForm::Extended => self.client.encrypt_query_extended(probe)?,
        };
        t.encrypt = start.elapsed();
        let start = Instant::now();
        let message = self.client.query_message(&query);
        t.serialize_query = start.elapsed();
        t.upload_bytes = message.len();
        let (answer, results, timed) = remote.identify(message)?;
        t.upload = timed.upload;
        t.server = timed.server;
        t.download = timed.download;
        t.download_bytes = timed.answer.len();
        t.main = answer.stages.clone();
        let users = self.state.users.len();
        if answer.users != users {
            return Err(DeployError::Input(format!(
                "the main server holds {} users, this client {users} (another client's \
                 changes, or a pending update: run enrol/remove again)",
                answer.users
            )));
        }
        let start = Instant::now();
        let opened = self.client.open_results(&results)?;
        let decoded = self.client.decrypt(&opened)?;
        t.decrypt = start.elapsed();
        let start = Instant::now();
        let missing_units: BTreeSet<usize> = answer.missing_units.iter().copied().collect();
        let mut scores = self
            .client
            .scores_partial(&decoded, users, &missing_units)?;
        let slots = scores.clone();
        let mut missing = Vec::new();
        for (u, user) in self.state.users.iter().enumerate() {
            if user.removed {
                scores[u] = None;
            } else if scores[u].is_none() {
                if missing_units.is_empty() {
                    return Err(DeployError::Input(format!(
                        "no result carries the score of user `{}`",
                        user.name
                    )));
                }
                missing.push(user.name.clone());
            }
        }
        // Rank the live, scored users: Decision over them, mapped back to slots.
        let live: Vec<usize> = (0..users).filter(|&u| scores[u].is_some()).collect();
        let values: Vec<i64> = live.iter().map(|&u| scores[u].unwrap_or(0)).collect();
        let decision = Decision::from_integers(&values, self.client.model().threshold_score);
        let ranking = decision
            .ranking
            .iter()
            .filter(|&&i| values[i] >= self.client.model().threshold_score)
            .map(|&i| (live[i], self.state.users[live[i]].name.clone(), values[i]))
            .collect::<Vec<_>>();
        t.decide = start.elapsed();
        Ok(Identification {
            accepted: !ranking.is_empty(),
            scores,
            slots,
            ranking,
            missing,
            failed: answer.failed,
            timings: t,
        })
    }
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename; `secret` files
/// get mode 0600.
fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    // A leftover temp file keeps its old mode when reopened: start from none.
    let _ = fs::remove_file(&tmp);
    let fail =
        |e: std::io::Error| DeployError::Input(format!("cannot write {}: {e}", path.display()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
