//! The webhook's serving certificate: PEM files (from cert-manager or the
//! chart), re-read when they change, or with `tls.auto` a CA and a serving
//! certificate made at start, valid for [`AUTO_VALIDITY`], whose CA
//! [`super::apiserver`] puts into the webhook configuration, and made anew
//! by [`renew`] at two thirds of their life. rustls picks the current
//! certificate at each handshake, so a renewed one is served without a
//! restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use zeroize::Zeroizing;

use crate::exit::{Exit, ExitCode};

/// How long a change of the certificate files is let settle before they are read.
const SETTLE: Duration = Duration::from_millis(200);
/// The largest PEM file read.
const MAX_PEM: u64 = 1 << 20;
/// How long `tls.auto` certificates are valid.
pub const AUTO_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How far back a made certificate is valid from, for clocks a little behind.
const SKEW: Duration = Duration::from_secs(3600);
/// After a failed renewal, the wait before the next try.
const RETRY: Duration = Duration::from_secs(60);

/// Why there is no certificate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read.
    #[error("inject.tls: {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("inject.tls: {path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A certificate cannot be made.
    #[error("inject.tls.auto: cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The files cannot be watched.
    #[error("inject.tls: cannot watch {path}: {source}")]
    Watch {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: notify::Error,
    },
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Generate(_) => Exit::Software,
            Error::Watch { .. } => Exit::OsErr,
            _ => Exit::Config,
        }
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The certificate currently served.
#[derive(Debug)]
pub struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

impl Current {
    /// Serves `key` until replaced.
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Current> {
        Arc::new(Current(RwLock::new(key)))
    }

    fn replace(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut k) = self.0.write() {
            *k = key;
        }
    }
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    let mut buf = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_PEM), &mut buf).map_err(err)?;
    Ok(buf)
}

/// A certified key from a PEM chain and a PEM private key.
pub fn from_pem(
    cert: &[u8],
    key: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>> {
    let bad = |path: &Path, why: String| Error::Pem {
        path: path.to_owned(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(cert_path, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert_path, "no certificate in it".into()));
    }
    let der = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| bad(key_path, format!("not a PEM private key: {e}")))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| bad(key_path, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        bad(
            key_path,
            format!("does not match {}: {e}", cert_path.display()),
        )
    })?;
    Ok(Arc::new(certified))
}

/// Reads `cert_file` and `key_file`.
pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>> {
    from_pem(&read(cert_file)?, &read(key_file)?, cert_file, key_file)
}

/// Made by [`generate`]: the CA (PEM) to trust and the key to serve.
pub struct Generated {
    /// The CA certificate, PEM: the webhook's `caBundle`.
    pub ca_pem: String,
    /// The serving certificate (and its chain) with its key.
    pub key: Arc<CertifiedKey>,
    /// When both start and stop being valid.
    pub valid: (SystemTime, SystemTime),
}

/// A new CA and a serving certificate for `names` (DNS names or IPs), both
/// valid for [`AUTO_VALIDITY`]; the CA's key is dropped once it has signed.
pub fn generate(names: &[String]) -> Result<Generated> {
    generate_for(names, AUTO_VALIDITY)
}

fn generate_for(names: &[String], validity: Duration) -> Result<Generated> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let now = SystemTime::now();
    let valid = (now - SKEW.min(validity / 4), now + validity);
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    (ca.not_before, ca.not_after) = (valid.0.into(), valid.1.into());
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "ramsecrets injector CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let mut leaf = CertificateParams::new(names.to_vec())?;
    (leaf.not_before, leaf.not_after) = (valid.0.into(), valid.1.into());
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("ramsecrets", String::as_str),
    );
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    let chain = format!("{}{}", cert.pem(), ca.pem());
    let key = from_pem(
        chain.as_bytes(),
        key_pem.as_bytes(),
        Path::new("(generated)"),
        Path::new("(generated)"),
    )?;
    Ok(Generated {
        ca_pem: ca.pem(),
        key,
        valid,
    })
}

/// When a certificate valid over `valid` is renewed: at two thirds of its
/// life, so a failing renewal has a third of it to be fixed in.
pub fn renew_at(valid: (SystemTime, SystemTime)) -> SystemTime {
    let life = valid.1.duration_since(valid.0).unwrap_or_default();
    valid.0 + life * 2 / 3
}

/// How [`renew`] renews.
#[derive(Debug, Clone, Copy)]
pub struct Renewal {
    /// The life of each new pair.
    pub validity: Duration,
    /// Between the new CA being trusted and its certificate being served:
    /// time for the API server to pick the new `caBundle` up.
    pub settle: Duration,
}

impl Default for Renewal {
    fn default() -> Renewal {
        Renewal {
            validity: AUTO_VALIDITY,
            settle: Duration::from_secs(30),
        }
    }
}

/// Keeps the `tls.auto` certificate of `names` in `current` (made valid
/// over `valid`) fresh until `stop`: at [`renew_at`] it makes a new pair,
/// hands its CA to `trust` (which adds it to the webhook's `caBundle`), and
/// serves it once trusted and settled. A failure is logged and retried while
/// the old certificate is still served.
pub async fn renew<F, Fut, E>(
    current: Arc<Current>,
    names: Vec<String>,
    mut valid: (SystemTime, SystemTime),
    how: Renewal,
    trust: F,
    stop: tokio_util::sync::CancellationToken,
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), E>>,
    E: std::fmt::Display,
{
    let pause = |d: Duration| {
        let stop = stop.clone();
        async move {
            tokio::select! {
                _ = stop.cancelled() => false,
                _ = tokio::time::sleep(d) => true,
            }
        }
    };
    loop {
        let wait = renew_at(valid)
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if !pause(wait).await {
            return;
        }
        let made = match generate_for(&names, how.validity) {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the serving certificate; retrying");
                if !pause(RETRY).await {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = trust(made.ca_pem.clone()).await {
            tracing::warn!(error = %e, "cannot add the renewed CA to the webhook configuration; retrying, the old certificate is served meanwhile");
            if !pause(RETRY).await {
                return;
            }
            continue;
        }
        if !pause(how.settle).await {
            return;
        }
        current.replace(made.key);
        valid = made.valid;
        tracing::info!(
            until = %humantime::format_rfc3339_seconds(valid.1),
            "serving certificate renewed"
        );
    }
}

/// Re-reads `cert_file` and `key_file` when either changes (a Secret volume
/// swaps a symlink; cert-manager rewrites both), through the one file
/// watcher, and serves the new pair once it loads; a pair that does not load
/// is logged and the old one kept. The watch starts now; the returned future
/// follows it until `stop`.
pub fn reload(
    current: Arc<Current>,
    cert_file: PathBuf,
    key_file: PathBuf,
    stop: tokio_util::sync::CancellationToken,
) -> Result<impl std::future::Future<Output = ()> + Send> {
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let files = [(cert_file.as_path(), ()), (key_file.as_path(), ())];
    let watch = crate::os::watch::Files::start(&files, None, move |_: &()| {
        let _ = tx.send(());
    })
    .map_err(|source| Error::Watch {
        path: cert_file.clone(),
        source,
    })?;
    Ok(async move {
        let _watch = watch;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = changes.recv() => if changed.is_none() { return },
            }
            // Both files change in one update: load once the burst is over.
            tokio::time::sleep(SETTLE).await;
            while changes.try_recv().is_ok() {}
            match load(&cert_file, &key_file) {
                Ok(key) => {
                    current.replace(key);
                    tracing::info!(cert_file = %cert_file.display(), "serving certificate reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "serving certificate changed but does not load; keeping the old one")
                }
            }
        }
    })
}

/// A rustls server config that serves `current`, HTTP/2 (the API server's
/// choice when offered) or HTTP/1.1.
pub fn server_config(current: Arc<Current>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(current);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_is_served_and_its_ca_is_separate() {
        let g = generate(&["injector.ns.svc".into(), "127.0.0.1".into()]).unwrap();
        assert!(g.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(g.key.cert.len(), 2, "leaf and CA");
        assert!(server_config(Current::new(g.key)).is_ok());
    }

    /// Whether the certificate `key` serves is valid for `name` at `at`
    /// with `ca_pem` trusted.
    fn valid_at(key: &CertifiedKey, ca_pem: &str, name: &str, at: SystemTime) -> bool {
        use rustls::client::danger::ServerCertVerifier;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(
                &key.cert[0],
                &key.cert[1..],
                &name,
                &[],
                rustls::pki_types::UnixTime::since_unix_epoch(since),
            )
            .is_ok()
    }

    #[test]
    fn auto_certificates_live_one_year_at_most() {
        let g = generate(&["injector.ns.svc".into()]).unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        assert!(valid_at(&g.key, &g.ca_pem, "injector.ns.svc", now));
        assert!(valid_at(
            &g.key,
            &g.ca_pem,
            "injector.ns.svc",
            now + 364 * day
        ));
        assert!(!valid_at(
            &g.key,
            &g.ca_pem,
            "injector.ns.svc",
            now + 366 * day
        ));
        assert!(g.valid.1.duration_since(g.valid.0).unwrap() <= 366 * day);
        // Renewed with a third of the year left.
        let at = renew_at(g.valid);
        assert!(at > now + 240 * day && at < now + 245 * day);
    }

    #[tokio::test]
    async fn the_running_injector_renews_its_certificate_and_has_its_ca_trusted_first() {
        let names = vec!["127.0.0.1".to_owned()];
        let how = Renewal {
            validity: Duration::from_secs(3),
            settle: Duration::ZERO,
        };
        let first = generate_for(&names, how.validity).unwrap();
        let current = Current::new(first.key.clone());
        let served = |current: &Current| current.0.read().unwrap().clone();
        let (trusted_tx, mut trusted) = tokio::sync::mpsc::unbounded_channel::<String>();
        let stop = tokio_util::sync::CancellationToken::new();
        let seen = current.clone();
        let task = tokio::spawn(renew(
            current.clone(),
            names,
            first.valid,
            how,
            move |ca: String| {
                let (tx, now_served) = (trusted_tx.clone(), served(&seen).cert.clone());
                async move {
                    // The new CA is trusted before its certificate is served.
                    let new_ca = CertificateDer::from_pem_slice(ca.as_bytes()).unwrap();
                    assert!(
                        !now_served.contains(&new_ca),
                        "served before it was trusted"
                    );
                    tx.send(ca).map_err(|e| e.to_string())
                }
            },
            stop.clone(),
        ));
        let ca = tokio::time::timeout(Duration::from_secs(60), trusted.recv())
            .await
            .expect("never renewed")
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while Arc::ptr_eq(&served(&current), &first.key) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the renewed certificate was never served"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let now = served(&current);
        assert!(valid_at(&now, &ca, "127.0.0.1", SystemTime::now()));
        assert!(
            !valid_at(&now, &first.ca_pem, "127.0.0.1", SystemTime::now()),
            "a new CA"
        );
        stop.cancel();
        task.await.unwrap();
    }

    /// A self-signed certificate and its key, PEM.
    fn pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[tokio::test]
    async fn changed_files_are_served_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (c, k) = pair("first");
        std::fs::write(&cert, &c).unwrap();
        std::fs::write(&key, &k).unwrap();
        let current = Current::new(load(&cert, &key).unwrap());
        let served = |current: &Current| current.0.read().unwrap().cert[0].clone();
        let first = served(&current);
        let stop = tokio_util::sync::CancellationToken::new();
        let task =
            tokio::spawn(reload(current.clone(), cert.clone(), key.clone(), stop.clone()).unwrap());
        // A Secret volume's update: both files replaced by a rename.
        let (c, k) = pair("second");
        std::fs::write(dir.path().join("new.crt"), &c).unwrap();
        std::fs::write(dir.path().join("new.key"), &k).unwrap();
        std::fs::rename(dir.path().join("new.key"), &key).unwrap();
        std::fs::rename(dir.path().join("new.crt"), &cert).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while served(&current) == first {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new certificate was never served"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(served(&current), load(&cert, &key).unwrap().cert[0]);
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn a_key_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, pair("a").0).unwrap();
        std::fs::write(&key, pair("b").1).unwrap();
        let e = load(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("tls.key") && e.contains("does not match"), "{e}");
    }

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let e = load(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("tls.crt"), "{e}");
        std::fs::write(&cert, "").unwrap();
        std::fs::write(&key, "not pem").unwrap();
        let e = load(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("tls.crt") && e.contains("no certificate"), "{e}");
    }
}
