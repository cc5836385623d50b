//! Mutual TLS on every link: a test deployment's certificate authority, and the tonic
//! configurations that present a certificate and require the peer's, both checked
//! against that CA only (never the system's roots).
//!
//! One server certificate serves the main server and every cluster, and carries both
//! `serverAuth` and `clientAuth`, since the main server also is the clusters' TLS client;
//! the client's certificate carries `clientAuth` only. Keys are ECDSA P-256 (rcgen's
//! default), written readable by their owner only.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, ServerTlsConfig};

use crate::error::{DeployError, Result};

/// The files `make_ca` writes, in the order it writes them.
const FILES: [&str; 6] = [
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
    "client.pem",
    "client.key",
];

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What [`make_ca`] wrote.
#[derive(Clone, Debug)]
pub struct CaFiles {
    /// The folder.
    pub dir: PathBuf,
    /// Every file written: ca.pem, ca.key, server.pem, server.key, client.pem, client.key.
    pub files: Vec<PathBuf>,
}

/// Writes into `out` (created; refuses to overwrite an existing CA: a second CA would
/// silently split a deployment into peers that no longer trust each other) ca.pem, ca.key,
/// server.pem, server.key (one certificate for every server; subject alt names: `names`
/// plus "localhost" and "127.0.0.1", IP names as IP SANs, others as DNS SANs; extended key
/// usage serverAuth and clientAuth, since the main server also is the clusters' TLS
/// client), client.pem, client.key (clientAuth). Keys are written with mode 0600. ECDSA
/// P-256. Validity: a day ago (clock skew) to 825 days ahead.
pub fn make_ca(out: &Path, names: &[String]) -> Result<CaFiles> {
    let files: Vec<PathBuf> = FILES.iter().map(|name| out.join(name)).collect();
    if let Some(existing) = files.iter().find(|file| file.exists()) {
        return Err(DeployError::tls(
            existing,
            "exists already: refusing to overwrite a CA (a new one would not be trusted by \
             peers holding the old); remove the folder's files first to make a new one",
        ));
    }
    let mut sans: Vec<String> = Vec::new();
    for name in names
        .iter()
        .map(String::as_str)
        .chain(["localhost", "127.0.0.1"])
    {
        if name.trim().is_empty() {
            return Err(DeployError::tls(out, "a server name is empty"));
        }
        if !sans.iter().any(|known| known == name) {
            sans.push(name.to_owned());
        }
    }
    fs::create_dir_all(out)
        .map_err(|e| DeployError::tls(out, format!("cannot create the folder: {e}")))?;

    let now = SystemTime::now();
    let (Some(not_before), Some(not_after)) = (now.checked_sub(DAY), now.checked_add(825 * DAY))
    else {
        return Err(DeployError::tls(out, "the system clock is out of range"));
    };
    let fail =
        |e: rcgen::Error| DeployError::tls(out, format!("cannot make the certificates: {e}"));
    let params = |sans: Vec<String>, common_name: &str| -> Result<CertificateParams> {
        let mut params = CertificateParams::new(sans).map_err(|e| {
            DeployError::tls(
                out,
                format!("a server name is neither a DNS name nor an IP address: {e}"),
            )
        })?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "touchstone test deployment");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        Ok(params)
    };

    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca = params(Vec::new(), "touchstone test CA")?;
    // Path length 0: this CA signs end entities only.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca, &ca_key);

    let leaf = |sans: Vec<String>, common_name: &str, usages: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().map_err(fail)?;
        let mut params = params(sans, common_name)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer).map_err(fail)?;
        Ok::<_, DeployError>((cert.pem(), key.serialize_pem()))
    };
    let server = leaf(
        sans,
        "touchstone server",
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )?;
    let client = leaf(
        Vec::new(),
        "touchstone client",
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;

    let contents = [
        ca_cert.pem(),
        ca_key.serialize_pem(),
        server.0,
        server.1,
        client.0,
        client.1,
    ];
    for (file, text) in files.iter().zip(&contents) {
        let private = file.extension().is_some_and(|ext| ext == "key");
        write_new(file, text, private)?;
    }
    Ok(CaFiles {
        dir: out.to_path_buf(),
        files,
    })
}

/// Creates `path` (never overwriting) and writes `text`; a key gets mode 0600 from the
/// start, so it is never readable by others, not even briefly.
fn write_new(path: &Path, text: &str, private: bool) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if private {
        owner_only(&mut options);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => {
            DeployError::tls(path, "exists already: refusing to overwrite it")
        }
        _ => DeployError::tls(path, format!("cannot create: {e}")),
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| DeployError::tls(path, format!("cannot write: {e}")))
}

#[cfg(unix)]
fn owner_only(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600);
}

#[cfg(not(unix))]
fn owner_only(_: &mut OpenOptions) {}

/// Which identity a process presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// `server.pem`/`server.key`: the main server and the clusters (also as the main
    /// server's client identity towards the clusters).
    Server,
    /// `client.pem`/`client.key`: the enrolling and querying client.
    Client,
}

/// A folder with ca.pem and the identity's pem/key (as [`make_ca`] writes them), read
/// and checked once so that a missing or damaged file is named at start-up rather than
/// surfacing as a failed handshake.
#[derive(Clone)]
pub struct TlsDir {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
    /// The DER of the identity's certificate (what a peer sees at the handshake).
    leaf: Vec<u8>,
}

impl std::fmt::Debug for TlsDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsDir { .. }") // never the private key
    }
}

impl TlsDir {
    /// Reads `ca.pem` and the identity's certificate and key from `dir`, and checks that
    /// they parse as PEM (certificates, a private key) and that the key belongs to the
    /// certificate; errors name the file at fault.
    pub fn open(dir: &Path, identity: Identity) -> Result<Self> {
        let stem = match identity {
            Identity::Server => "server",
            Identity::Client => "client",
        };
        let ca_path = dir.join("ca.pem");
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        let (ca, ca_text) = read(&ca_path)?;
        certificates(&ca_path, &ca_text)?;
        let (cert, cert_text) = read(&cert_path)?;
        let leaf = certificates(&cert_path, &cert_text)?;
        let (key, key_text) = read(&key_path)?;
        check_key(&key_path, &key_text, &leaf)?;
        let leaf = leaf.into_iter().next().unwrap_or_default();
        Ok(Self {
            ca,
            cert,
            key,
            leaf,
        })
    }

    /// The DER of this identity's certificate. Clusters compare a caller's certificate
    /// with their own server certificate: only a server of the deployment (the main
    /// server) may call them, not a client holding the deployment's client certificate.
    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf
    }

    /// Server side: presents the identity, and requires a client certificate signed by
    /// ca.pem (no anonymous client gets an answer).
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(Certificate::from_pem(&self.ca))
            .client_auth_optional(false)
    }

    /// Client side: trusts ca.pem only and presents the identity; `domain` is the name
    /// expected in the server's certificate (e.g. "localhost").
    pub fn client_config(&self, domain: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
            .domain_name(domain)
    }
}

/// The file's bytes and text.
fn read(path: &Path) -> Result<(Vec<u8>, String)> {
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => DeployError::tls(
            path,
            "is missing: make the test CA (make_ca) or put the deployment's file there",
        ),
        _ => DeployError::tls(path, format!("cannot be read: {e}")),
    })?;
    let text =
        String::from_utf8(bytes.clone()).map_err(|_| DeployError::tls(path, "is not PEM text"))?;
    Ok((bytes, text))
}

/// The DER of the certificates in `text` (at least one; the first is the leaf).
fn certificates(path: &Path, text: &str) -> Result<Vec<Vec<u8>>> {
    let blocks = pem_blocks(text).ok_or_else(|| DeployError::tls(path, "is not valid PEM"))?;
    let mut ders = Vec::new();
    for (label, der) in blocks {
        if label != "CERTIFICATE" || der.first() != Some(&0x30) {
            return Err(DeployError::tls(
                path,
                format!("holds a {label} block where certificates were expected"),
            ));
        }
        ders.push(der);
    }
    if ders.is_empty() {
        return Err(DeployError::tls(path, "holds no PEM certificate"));
    }
    Ok(ders)
}

/// Checks that `text` holds a private key and, for a PKCS#8 key (what `make_ca` writes),
/// that its public key is the leaf certificate's: a swapped key would otherwise only show
/// as a failed handshake on the peer's side.
fn check_key(path: &Path, text: &str, leaf: &[Vec<u8>]) -> Result<()> {
    let blocks = pem_blocks(text).ok_or_else(|| DeployError::tls(path, "is not valid PEM"))?;
    let Some((label, _)) = blocks
        .iter()
        .find(|(label, _)| label.ends_with("PRIVATE KEY"))
    else {
        return Err(DeployError::tls(path, "holds no PEM private key"));
    };
    if label != "PRIVATE KEY" {
        return Ok(()); // SEC1 or PKCS#1: left to rustls
    }
    let key = KeyPair::from_pem(text)
        .map_err(|e| DeployError::tls(path, format!("holds an unusable private key: {e}")))?;
    let public = key.public_key_raw();
    let matches = leaf.first().is_some_and(|der| {
        !public.is_empty() && der.windows(public.len()).any(|window| window == public)
    });
    if matches {
        Ok(())
    } else {
        Err(DeployError::tls(
            path,
            "is not the key of the certificate next to it",
        ))
    }
}

/// The PEM blocks of `text` as (label, decoded bytes); `None` when a block is not closed
/// or its body is not base64.
fn pem_blocks(text: &str) -> Option<Vec<(String, Vec<u8>)>> {
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let label_end = after.find("-----")?;
        let label = &after[..label_end];
        let body = &after[label_end + 5..];
        let end = format!("-----END {label}-----");
        let body_end = body.find(&end)?;
        blocks.push((label.to_owned(), base64(&body[..body_end])?));
        rest = &body[body_end + end.len()..];
    }
    Some(blocks)
}

/// Standard base64 (whitespace ignored, padding at the end only).
fn base64(text: &str) -> Option<Vec<u8>> {
    let text: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let data = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(&text);
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in data {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn leaf_der(path: &Path) -> Vec<u8> {
        let text = fs::read_to_string(path).unwrap();
        certificates(path, &text).unwrap().remove(0)
    }

    #[test]
    fn make_ca_writes_every_file_once_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls");
        let made = make_ca(&out, &["cluster-1.internal".into(), "10.0.0.7".into()]).unwrap();
        assert_eq!(made.dir, out);
        let names: Vec<_> = made
            .files
            .iter()
            .map(|f| f.strip_prefix(&out).unwrap())
            .collect();
        assert_eq!(names, FILES.map(Path::new));
        for file in &made.files {
            let text = fs::read_to_string(file).unwrap();
            assert!(
                pem_blocks(&text).is_some_and(|blocks| blocks.len() == 1),
                "{file:?}"
            );
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(file).unwrap().permissions().mode() & 0o777;
                if file.extension().is_some_and(|e| e == "key") {
                    assert_eq!(mode, 0o600, "{file:?}");
                }
            }
        }
        let again = make_ca(&out, &[]).unwrap_err().to_string();
        assert!(
            again.contains("ca.pem") && again.contains("exists already"),
            "{again}"
        );
    }

    #[test]
    fn the_server_certificate_names_every_server_for_both_roles() {
        let dir = tempfile::tempdir().unwrap();
        make_ca(
            dir.path(),
            &["cluster-1.internal".into(), "10.0.0.7".into()],
        )
        .unwrap();
        let server = leaf_der(&dir.path().join("server.pem"));
        assert!(contains(&server, b"cluster-1.internal"));
        assert!(contains(&server, b"localhost"));
        // IP SANs: [7] OCTET STRING of the address.
        assert!(contains(&server, &[0x87, 4, 10, 0, 0, 7]));
        assert!(contains(&server, &[0x87, 4, 127, 0, 0, 1]));
        // id-kp-serverAuth and id-kp-clientAuth.
        let eku = |n: u8| [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, n];
        assert!(contains(&server, &eku(1)) && contains(&server, &eku(2)));
        let client = leaf_der(&dir.path().join("client.pem"));
        assert!(!contains(&client, &eku(1)) && contains(&client, &eku(2)));
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(make_ca(dir.path(), &[" ".into()]).is_err());
        assert!(make_ca(dir.path(), &["bäd".into()]).is_err());
        assert!(!dir.path().join("ca.pem").exists());
    }

    #[test]
    fn tls_dir_loads_both_identities_and_builds_configs() {
        let dir = tempfile::tempdir().unwrap();
        make_ca(dir.path(), &[]).unwrap();
        for identity in [Identity::Server, Identity::Client] {
            let tls = TlsDir::open(dir.path(), identity).unwrap();
            let _ = tls.server_config();
            let _ = tls.client_config("localhost");
            assert_eq!(format!("{tls:?}"), "TlsDir { .. }");
        }
    }

    #[test]
    fn tls_dir_names_a_missing_damaged_or_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        make_ca(dir.path(), &[]).unwrap();
        let key = dir.path().join("client.key");
        let client_key = fs::read(&key).unwrap();

        fs::remove_file(&key).unwrap();
        let text = TlsDir::open(dir.path(), Identity::Client)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(&key.display().to_string()) && text.contains("missing"),
            "{text}"
        );

        // Another certificate's key.
        fs::copy(dir.path().join("server.key"), &key).unwrap();
        let text = TlsDir::open(dir.path(), Identity::Client)
            .unwrap_err()
            .to_string();
        assert!(text.contains("is not the key of the certificate"), "{text}");
        fs::write(&key, &client_key).unwrap();
        TlsDir::open(dir.path(), Identity::Client).unwrap();

        let ca = dir.path().join("ca.pem");
        fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let text = TlsDir::open(dir.path(), Identity::Server)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(&ca.display().to_string()) && text.contains("PEM"),
            "{text}"
        );
        fs::write(&ca, &client_key).unwrap();
        let text = TlsDir::open(dir.path(), Identity::Server)
            .unwrap_err()
            .to_string();
        assert!(text.contains("PRIVATE KEY block"), "{text}");
    }

    #[test]
    fn base64_decodes_standard_text() {
        assert_eq!(base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64("aGVs\nbG8h").unwrap(), b"hello!");
        assert_eq!(base64("aGk=").unwrap(), b"hi");
        assert!(base64("a=b=").is_none());
    }
}
