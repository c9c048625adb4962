//! [`Pebble`]: a real pebble (Let's Encrypt's test CA) with pebble-challtestsrv as its DNS
//! server, answering 127.0.0.1 for every name, for the ACME tests.
//!
//! Pebble needs a TLS certificate for its own API; none ships in the Debian package, so each
//! `Pebble` generates one (and the root that signs it, which the proxy trusts through
//! `acme_ca_root`). Ports are picked below the ephemeral range on 127.0.0.1; pebble validates
//! challenges on the `http_port`/`tls_port` given to [`Pebble::prepare`], which tests point at
//! the proxy (or at `acme::ChallengeResponder`).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;

use super::acme::{https_get, roots_from_pem};
use super::net::unassigned_port;
use super::temp::{temp_dir, TempDir};

/// The CA for pebble's own API certificate, as PEM.
struct ApiTls {
    root_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn api_tls() -> ApiTls {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "ringproxy test: pebble API root");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    ApiTls { root_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

/// A pebble + challtestsrv pair. Created stopped by [`Pebble::prepare`] (so a test can
/// configure a proxy against a CA that is not up yet), started by [`Pebble::start`], killed on
/// drop.
pub struct Pebble {
    dir: TempDir,
    pub listen_port: u16,
    pub management_port: u16,
    dns_port: u16,
    challtestsrv_management_port: u16,
    api_root_pem: String,
    children: Vec<Child>,
    log: Arc<Mutex<String>>,
    /// Share of valid nonces pebble rejects with `badNonce`; `None` keeps pebble's 5 %.
    nonce_reject_percent: Option<u8>,
}

impl Pebble {
    /// Generate pebble's TLS certificate and config; pebble will validate HTTP-01 on
    /// `127.0.0.1:http_port` and TLS-ALPN-01 on `127.0.0.1:tls_port`.
    pub fn prepare(http_port: u16, tls_port: u16) -> Pebble {
        let dir = temp_dir("pebble");
        let tls = api_tls();
        std::fs::write(dir.path().join("api-root.pem"), &tls.root_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &tls.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &tls.key_pem).unwrap();
        let (listen_port, management_port) = (unassigned_port(), unassigned_port());
        let config = format!(
            r#"{{"pebble": {{
                "listenAddress": "127.0.0.1:{listen_port}",
                "managementListenAddress": "127.0.0.1:{management_port}",
                "certificate": "{cert}",
                "privateKey": "{key}",
                "httpPort": {http_port},
                "tlsPort": {tls_port},
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }}}}"#,
            cert = dir.path().join("cert.pem").display(),
            key = dir.path().join("key.pem").display(),
        );
        std::fs::write(dir.path().join("pebble.json"), config).unwrap();
        Pebble {
            dir,
            listen_port,
            management_port,
            dns_port: unassigned_port(),
            challtestsrv_management_port: unassigned_port(),
            api_root_pem: tls.root_pem,
            children: Vec::new(),
            log: Arc::default(),
            nonce_reject_percent: None,
        }
    }

    /// `prepare` and `start`.
    pub fn start_new(http_port: u16, tls_port: u16) -> Pebble {
        let mut pebble = Pebble::prepare(http_port, tls_port);
        pebble.start();
        pebble
    }

    /// Have pebble reject `percent` % of valid nonces (call before [`Pebble::start`]).
    pub fn reject_nonces(&mut self, percent: u8) {
        self.nonce_reject_percent = Some(percent);
    }

    /// Start challtestsrv and pebble and wait until both accept connections.
    pub fn start(&mut self) {
        assert!(self.children.is_empty(), "already started");
        let dns = format!("127.0.0.1:{}", self.dns_port);
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-dns01", &dns, "-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", self.challtestsrv_management_port)])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pebble-challtestsrv not installed: apt-get install pebble");
        self.adopt(challtestsrv, "challtestsrv");
        self.wait_for_port(self.challtestsrv_management_port);

        let mut pebble = Command::new("pebble");
        if let Some(percent) = self.nonce_reject_percent {
            pebble.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        let pebble = pebble
            .args([
                "-config",
                &self.dir.path().join("pebble.json").display().to_string(),
                "-dnsserver",
                &dns,
            ])
            // Validate at once instead of sleeping up to 15 s per challenge.
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Every order must be validated: reused authorizations would hide which
            // challenge type works.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pebble not installed: apt-get install pebble");
        self.adopt(pebble, "pebble");
        self.wait_for_port(self.listen_port);
        self.wait_for_port(self.management_port);
    }

    /// Wait until `port` accepts; a child that exited, or 20 s, fails the test with what the
    /// children printed.
    fn wait_for_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            for child in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("a test CA process exited with {status}:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "nothing listening on 127.0.0.1:{port} after 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn adopt(&mut self, mut child: Child, tag: &'static str) {
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(tag);
                    log.push_str(": ");
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        self.children.push(child);
    }

    /// The ACME directory URL (`acme_ca`).
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen_port)
    }

    /// The root that signed pebble's API certificate (`acme_ca_root`).
    pub fn api_root_path(&self) -> PathBuf {
        self.dir.path().join("api-root.pem")
    }

    /// Everything pebble and challtestsrv printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Orders pebble accepted so far (from its log: one line per order).
    pub fn orders_placed(&self) -> usize {
        self.log().matches("Added order").count()
    }

    /// Pebble's issuing root (from its management API), which every certificate it issues
    /// chains to. Pebble makes a new one each run.
    pub fn issuing_root(&self) -> CertificateDer<'static> {
        let roots = roots_from_pem(self.api_root_pem.as_bytes());
        let addr: SocketAddr = format!("127.0.0.1:{}", self.management_port).parse().unwrap();
        let (status, _, body) = https_get(addr, "localhost", "/roots/0", roots).unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        rustls::pki_types::pem::PemObject::from_pem_slice(&body).unwrap()
    }

    /// Stop pebble and challtestsrv now.
    pub fn stop(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}
