//! `tls { protocols … client_auth … }`: per-site handshake options on one listener, chosen by
//! SNI, with real rustls clients. A site limited to TLS 1.3 refuses a TLS 1.2 client while its
//! neighbour serves it; a site with `client_auth` admits only clients with a certificate from
//! its CA, and a request whose `Host` names it on a connection made for another site gets 421.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::support::client::{ClientStream, HttpConn};
use crate::support::net::free_port;
use crate::support::per_driver;
use crate::support::tls_client::TestCa;

struct Front {
    server: ringproxy::server::Server,
    addr: SocketAddr,
    server_ca: TestCa,
    client_ca: TestCa,
    _dir: tempfile::TempDir,
}

fn start(driver: ringproxy::server::DriverChoice) -> Front {
    let server_ca = TestCa::new("server-ca");
    let client_ca = TestCa::new("client-ca");
    let dir = tempfile::tempdir().unwrap();
    let client_ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&client_ca_file, client_ca.pem_pair().0).unwrap();
    let port = free_port();
    let mut caddyfile = format!(
        "{{\n\tadmin off\n\tauto_https disable_redirects\n\tstorage file_system {}\n}}\n",
        dir.path().join("storage").display()
    );
    for (name, options) in [
        ("tls13.test", "\t\tprotocols tls1.3\n".to_string()),
        (
            "mtls.test",
            format!(
                "\t\tclient_auth {{\n\t\t\ttrust_pool file {}\n\t\t}}\n",
                client_ca_file.display()
            ),
        ),
        ("open.test", String::new()),
    ] {
        let (cert, key) = server_ca.leaf(name, &[name]);
        let block = if options.is_empty() { String::new() } else { format!(" {{\n{options}\t}}") };
        caddyfile += &format!(
            "\nhttps://{name}:{port} {{\n\ttls {} {}{block}\n\trespond \"{name}\" 200\n}}\n",
            cert.display(),
            key.display()
        );
    }
    let config = ringproxy::config::parse_caddyfile(&caddyfile, "Caddyfile", dir.path())
        .unwrap_or_else(|e| panic!("{e}\n{caddyfile}"));
    let options = ringproxy::server::RunOptions { workers: Some(2), driver, ..Default::default() };
    let server = ringproxy::server::Server::start(config, options).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addrs()[0].port()));
    Front { server, addr, server_ca, client_ca, _dir: dir }
}

/// A client trusting `ca`, with `versions`, presenting `identity` if given.
fn client(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.root()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client certificate for `name` from `ca`.
fn identity(ca: &TestCa, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let (cert, key) = ca.leaf(name, &[name]);
    let chain = CertificateDer::pem_file_iter(&cert).unwrap().map(Result::unwrap).collect();
    (chain, PrivateKeyDer::from_pem_file(&key).unwrap())
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// `GET /` with `Host: host` over a new TLS connection for `sni`: the status, or the error.
fn get(
    front: &Front,
    sni: &str,
    host: &str,
    config: &Arc<ClientConfig>,
) -> Result<(u16, String), String> {
    let stream =
        ClientStream::try_connect_tls(front.addr, sni, config).map_err(|e| e.to_string())?;
    let mut conn = HttpConn::new(stream);
    conn.stream.set_read_timeout(std::time::Duration::from_secs(5));
    // A refused client certificate (TLS 1.3) shows as an alert on the first read.
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.send_lenient(request.as_bytes());
    conn.try_response("GET").map(|r| (r.status, r.text())).map_err(|e| format!("{e:?}"))
}

per_driver! {
    tls_only("the options under test are TLS handshake options")
    fn a_site_limited_to_tls13_refuses_a_tls12_client_while_its_neighbour_serves_it(setup) {
        let front = start(setup.driver);
        let tls12 = client(&front.server_ca, TLS12, None);
        let refused = get(&front, "tls13.test", "tls13.test", &tls12);
        assert!(refused.is_err(), "TLS 1.2 was served by a tls1.3-only site: {refused:?}");
        assert_eq!(get(&front, "open.test", "open.test", &tls12).unwrap(), (200, "open.test".into()));
        let modern = client(&front.server_ca, BOTH, None);
        assert_eq!(get(&front, "tls13.test", "tls13.test", &modern).unwrap(), (200, "tls13.test".into()));
        front.server.shutdown();
    }
}

per_driver! {
    tls_only("the options under test are TLS handshake options")
    fn a_client_auth_site_admits_only_clients_with_a_certificate_from_its_ca(setup) {
        let front = start(setup.driver);
        let anonymous = client(&front.server_ca, BOTH, None);
        let refused = get(&front, "mtls.test", "mtls.test", &anonymous);
        assert!(refused.is_err(), "served without a client certificate: {refused:?}");

        let stranger = TestCa::new("stranger-ca");
        let forged = client(&front.server_ca, BOTH, Some(identity(&stranger, "eve")));
        let refused = get(&front, "mtls.test", "mtls.test", &forged);
        assert!(refused.is_err(), "served with a certificate from another CA: {refused:?}");

        let member = client(&front.server_ca, BOTH, Some(identity(&front.client_ca, "alice")));
        assert_eq!(get(&front, "mtls.test", "mtls.test", &member).unwrap(), (200, "mtls.test".into()));
        // Over TLS 1.2 as well.
        let member12 = client(&front.server_ca, TLS12, Some(identity(&front.client_ca, "bob")));
        assert_eq!(get(&front, "mtls.test", "mtls.test", &member12).unwrap(), (200, "mtls.test".into()));
        // Other sites on the listener do not ask for a certificate.
        assert_eq!(get(&front, "open.test", "open.test", &anonymous).unwrap(), (200, "open.test".into()));
        front.server.shutdown();
    }
}

per_driver! {
    tls_only("the options under test are TLS handshake options")
    fn a_request_for_the_client_auth_site_on_a_connection_made_for_another_site_gets_421(setup) {
        let front = start(setup.driver);
        let anonymous = client(&front.server_ca, BOTH, None);
        // The handshake is for open.test (no certificate asked), the Host is mtls.test.
        let (status, _) = get(&front, "open.test", "mtls.test", &anonymous).unwrap();
        assert_eq!(status, 421);
        front.server.shutdown();
    }
}
