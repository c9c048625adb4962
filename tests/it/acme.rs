//! ACME against a real pebble: first the order flow on its own (the ACME manager plus a test
//! stand-in for the data path's challenge answers), then end to end through
//! `ringproxy::server::Server` (redirect listener answering HTTP-01, TLS listener answering
//! TLS-ALPN-01, certificates served to real TLS clients).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringproxy::acme::lock::LockTimings;
use ringproxy::acme::storage::AcmeStorage;
use ringproxy::acme::{
    self, AcmeHandle, AcmeSettings, CertState, ChallengeKind, ManagedName, NameStatus,
};
use ringproxy::tls::store::CertStore;

use crate::support::acme::*;
use crate::support::net::unassigned_port;
use crate::support::origin::Origin;
use crate::support::pebble::Pebble;
use crate::support::temp::{temp_dir, TempDir};
use crate::support::ws::WsOrigin;

fn settings(pebble: &Pebble, challenges: Vec<ChallengeKind>) -> AcmeSettings {
    AcmeSettings {
        directory_url: pebble.directory_url(),
        ca_root: Some(pebble.api_root_path()),
        names: vec![ManagedName {
            name: TEST_NAME.to_owned(),
            email: Some("ops@acme-test.example".to_owned()),
        }],
        challenges,
        lock_timings: LockTimings {
            poll_every: Duration::from_millis(100),
            ..LockTimings::default()
        },
    }
}

/// How often the tests look at a status or try a handshake while waiting: each look is cheap,
/// and a long interval only adds to every test's wait.
const POLL: Duration = Duration::from_millis(25);

fn status_of(handle: &AcmeHandle) -> NameStatus {
    handle.status().into_iter().find(|s| s.name == TEST_NAME).expect("test name is managed")
}

fn wait_until(
    handle: &AcmeHandle,
    timeout: Duration,
    what: &str,
    done: impl Fn(&NameStatus) -> bool,
) -> NameStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let status = status_of(handle);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; status: {status:?}");
        std::thread::sleep(POLL);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Order one certificate with only `kind` enabled; check what was stored and served.
fn order_flow_with(kind: ChallengeKind) {
    let (http_port, tls_port) = (unassigned_port(), unassigned_port());
    let pebble = Pebble::start_new(http_port, tls_port);
    let store = Arc::new(CertStore::new());
    let _responder = ChallengeResponder::start(store.clone(), http_port, tls_port);
    let storage_dir = temp_dir("acme-flow");

    let handle = acme::spawn_with(
        settings(&pebble, vec![kind]),
        store.clone(),
        storage_dir.path().to_owned(),
    );
    let status = wait_until(&handle, Duration::from_secs(60), "issuance", |s| s.issued == 1);
    assert_eq!(status.state, CertState::Valid);
    assert_eq!(status.last_challenge, Some(kind));
    assert_eq!(status.orders, 1);
    assert_eq!(pebble.orders_placed(), 1);
    assert!(status.not_after.unwrap() > std::time::SystemTime::now() + Duration::from_secs(86_400));

    // The certificate in the store verifies against pebble's issuing root for the name.
    let tls_addr: SocketAddr = ([127, 0, 0, 1], tls_port).into();
    let leaf = served_leaf(tls_addr, TEST_NAME, roots_of(pebble.issuing_root())).unwrap();
    assert_eq!(leaf, store.cert_for(TEST_NAME).unwrap().cert[0]);
    // Challenge responses are withdrawn once the order is done.
    assert!(store.alpn_challenge_for(TEST_NAME).is_none());

    let acme_storage = AcmeStorage::new(storage_dir.path(), &pebble.directory_url());
    let stored = acme_storage.load_cert(TEST_NAME).unwrap().unwrap();
    assert_eq!(stored.key.cert[0], leaf);
    assert!(stored.key.cert.len() >= 2, "chain includes pebble's intermediate");
    assert_eq!(mode(&acme_storage.key_path(TEST_NAME)), 0o600);
    assert_eq!(mode(&acme_storage.account_path("ops@acme-test.example")), 0o600);
    assert_eq!(mode(&acme_storage.cert_dir(TEST_NAME)), 0o700);
    assert_eq!(mode(&storage_dir.path().join("acme")), 0o700);
    // The lock is released.
    assert_eq!(std::fs::read_dir(acme_storage.locks_dir()).unwrap().count(), 0);
    handle.shutdown();
}

#[test]
fn order_flow_obtains_certificate_with_http01() {
    order_flow_with(ChallengeKind::Http01);
}

#[test]
fn order_flow_obtains_certificate_with_tls_alpn01() {
    order_flow_with(ChallengeKind::TlsAlpn01);
}

#[test]
fn one_order_suffices_when_the_ca_rejects_half_of_all_nonces() {
    // badNonce means "send it again with a fresh nonce" (RFC 8555 §6.5). With half the nonces
    // rejected, instant-acme's own three attempts lose one request in eight, so an order's ten
    // or so requests would usually fail (and be re-ordered after a backoff) without retries.
    let (http_port, tls_port) = (unassigned_port(), unassigned_port());
    let mut pebble = Pebble::prepare(http_port, tls_port);
    pebble.reject_nonces(50);
    pebble.start();
    let store = Arc::new(CertStore::new());
    let _responder = ChallengeResponder::start(store.clone(), http_port, tls_port);
    let storage_dir = temp_dir("acme-bad-nonces");

    let handle = acme::spawn_with(
        settings(&pebble, vec![ChallengeKind::Http01]),
        store.clone(),
        storage_dir.path().to_owned(),
    );
    let status = wait_until(&handle, Duration::from_secs(60), "issuance", |s| s.issued == 1);
    assert_eq!(status.state, CertState::Valid);
    assert_eq!((status.orders, status.consecutive_failures), (1, 0));
    assert_eq!(pebble.orders_placed(), 1, "{}", pebble.log());
    handle.shutdown();
}

#[test]
fn order_flow_falls_back_to_tls_alpn01_when_http01_validation_fails() {
    // Pebble validates HTTP-01 on a port where nothing listens.
    let dead_http = crate::support::net::dead_port();
    let tls_port = unassigned_port();
    let pebble = Pebble::start_new(dead_http.addr.port(), tls_port);
    let store = Arc::new(CertStore::new());
    let _responder = ChallengeResponder::start(store.clone(), unassigned_port(), tls_port);
    let storage_dir = temp_dir("acme-fallback");

    let handle = acme::spawn_with(
        settings(&pebble, vec![ChallengeKind::Http01, ChallengeKind::TlsAlpn01]),
        store.clone(),
        storage_dir.path().to_owned(),
    );
    let status = wait_until(&handle, Duration::from_secs(60), "issuance", |s| s.issued == 1);
    assert_eq!(status.last_challenge, Some(ChallengeKind::TlsAlpn01));
    assert_eq!(status.consecutive_failures, 0);
    // The failed HTTP-01 order, then the TLS-ALPN-01 one.
    assert_eq!(pebble.orders_placed(), 2);
    assert!(store.cert_for(TEST_NAME).is_some());
    handle.shutdown();
}

#[test]
fn order_flow_reports_the_ca_problem_when_every_challenge_fails() {
    let pebble = Pebble::start_new(unassigned_port(), unassigned_port());
    let store = Arc::new(CertStore::new());
    let storage_dir = temp_dir("acme-fail");
    let handle = acme::spawn_with(
        settings(&pebble, vec![ChallengeKind::Http01, ChallengeKind::TlsAlpn01]),
        store.clone(),
        storage_dir.path().to_owned(),
    );
    let status =
        wait_until(&handle, Duration::from_secs(60), "a failure", |s| s.consecutive_failures == 1);
    assert_eq!(status.state, CertState::Failing);
    let error = status.last_error.unwrap();
    // Pebble's problem documents name the problem type and what the validation saw.
    assert!(error.contains("http-01 challenge failed"), "{error}");
    assert!(error.contains("tls-alpn-01 challenge failed"), "{error}");
    assert!(error.contains("urn:ietf:params:acme:error:"), "{error}");
    // A failed order is not retried at once (rate limits): the next attempt is a minute out.
    let next = status.next_attempt.unwrap().duration_since(std::time::SystemTime::now()).unwrap();
    assert!(next > Duration::from_secs(30), "{next:?}");
    assert!(store.cert_for(TEST_NAME).is_none());
    handle.shutdown();
}

#[test]
fn order_flow_with_stored_certificate_loads_it_before_returning_and_places_no_order() {
    let (http_port, tls_port) = (unassigned_port(), unassigned_port());
    let pebble = Pebble::start_new(http_port, tls_port);
    let first_store = Arc::new(CertStore::new());
    let _responder = ChallengeResponder::start(first_store.clone(), http_port, tls_port);
    let storage_dir = temp_dir("acme-restart");
    let first = acme::spawn_with(
        settings(&pebble, vec![ChallengeKind::Http01]),
        first_store.clone(),
        storage_dir.path().to_owned(),
    );
    wait_until(&first, Duration::from_secs(60), "issuance", |s| s.issued == 1);
    first.shutdown();
    let issued = first_store.cert_for(TEST_NAME).unwrap();

    // A restart: a new store, the same storage directory.
    let second_store = Arc::new(CertStore::new());
    let second = acme::spawn_with(
        settings(&pebble, vec![ChallengeKind::Http01]),
        second_store.clone(),
        storage_dir.path().to_owned(),
    );
    let served = second_store
        .cert_for(TEST_NAME)
        .expect("stored certificate is served as soon as spawn returns");
    assert_eq!(served.cert, issued.cert);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pebble.orders_placed(), 1);
    let status = status_of(&second);
    assert_eq!((status.orders, status.state), (0, CertState::Valid));
    assert!(status.next_attempt.is_some());
    second.shutdown();
}

#[test]
fn order_flow_two_instances_racing_on_one_storage_place_one_order_and_either_can_answer() {
    // Two instances (separate stores) on one storage directory. The CA only ever reaches
    // instance A, as a load balancer might decide; if B wins the race and orders, A must still
    // answer, from the challenge B published in storage.
    let (http_port, tls_port) = (unassigned_port(), unassigned_port());
    let pebble = Pebble::start_new(http_port, tls_port);
    let store_a = Arc::new(CertStore::new());
    let store_b = Arc::new(CertStore::new());
    let _responder = ChallengeResponder::start(store_a.clone(), http_port, tls_port);
    let storage_dir = temp_dir("acme-race");
    let locks = AcmeStorage::new(storage_dir.path(), &pebble.directory_url()).locks_dir();
    // Rounds 0 and 1: both start at once. Rounds 2 and 3: B starts first and is seen holding
    // the lock before A starts, so B orders and only A's mirror of B's answer can satisfy the CA.
    for round in 0..4 {
        let kind = if round % 2 == 0 { ChallengeKind::Http01 } else { ChallengeKind::TlsAlpn01 };
        let name = format!("race{round}.acme-test.example");
        let mut settings = settings(&pebble, vec![kind]);
        settings.names[0].name = name.clone();
        let (a, b) = if round < 2 {
            let a =
                acme::spawn_with(settings.clone(), store_a.clone(), storage_dir.path().to_owned());
            (a, acme::spawn_with(settings, store_b.clone(), storage_dir.path().to_owned()))
        } else {
            let b =
                acme::spawn_with(settings.clone(), store_b.clone(), storage_dir.path().to_owned());
            let lock = ringproxy::acme::lock::lock_path(&locks, &name);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !lock.exists() {
                assert!(Instant::now() < deadline, "B never took the lock");
                std::thread::sleep(Duration::from_millis(5));
            }
            (acme::spawn_with(settings, store_a.clone(), storage_dir.path().to_owned()), b)
        };
        let wait = |h: &AcmeHandle| {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let status = h.status().into_iter().find(|s| s.name == name).unwrap();
                if status.issued + status.loaded_from_storage >= 1 {
                    return status;
                }
                assert!(Instant::now() < deadline, "round {round}: {status:?}");
                std::thread::sleep(POLL);
            }
        };
        let (a_status, b_status) = (wait(&a), wait(&b));
        assert_eq!(
            a_status.issued + b_status.issued,
            1,
            "round {round}: {a_status:?} {b_status:?}"
        );
        if round >= 2 {
            assert_eq!((b_status.issued, a_status.loaded_from_storage), (1, 1), "round {round}");
        }
        assert_eq!(store_a.cert_for(&name).unwrap().cert, store_b.cert_for(&name).unwrap().cert);
        a.shutdown();
        b.shutdown();
    }
    assert_eq!(pebble.orders_placed(), 4);
}

#[test]
fn order_flow_keeps_retrying_while_the_ca_is_down_and_succeeds_once_it_is_up() {
    let (http_port, tls_port) = (unassigned_port(), unassigned_port());
    let mut pebble = Pebble::prepare(http_port, tls_port);
    let store = Arc::new(CertStore::new());
    let _responder = ChallengeResponder::start(store.clone(), http_port, tls_port);
    let storage_dir = temp_dir("acme-down");
    let handle = acme::spawn_with(
        settings(&pebble, vec![ChallengeKind::Http01]),
        store.clone(),
        storage_dir.path().to_owned(),
    );

    let status =
        wait_until(&handle, Duration::from_secs(10), "a failure", |s| s.consecutive_failures >= 1);
    let error = status.last_error.unwrap();
    assert!(error.contains("Connection refused") || error.contains("connect"), "{error}");
    // Unreachable CA: retried within seconds, not minutes.
    let next = status
        .next_attempt
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(next <= Duration::from_secs(3), "{next:?}");

    pebble.start();
    let status =
        wait_until(&handle, Duration::from_secs(60), "issuance after the CA came up", |s| {
            s.issued == 1
        });
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.last_error.is_none());
    assert!(store.cert_for(TEST_NAME).is_some());
    handle.shutdown();
}

/// A certificate for `name` from a throwaway CA, valid from `age` ago for `lifetime`: what an
/// expiring certificate from a previous run looks like in storage.
fn throwaway_cert(
    name: &str,
    age: Duration,
    lifetime: Duration,
) -> (String, String, CertificateDerOwned) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "ringproxy test: expiring root");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - age;
    params.not_after = now - age + lifetime;
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (cert.pem(), key.serialize_pem(), ca.der().clone())
}

type CertificateDerOwned = rustls::pki_types::CertificateDer<'static>;

#[test]
fn order_flow_renews_a_stored_certificate_past_two_thirds_of_its_lifetime() {
    let (http_port, tls_port) = (unassigned_port(), unassigned_port());
    let pebble = Pebble::start_new(http_port, tls_port);
    let store = Arc::new(CertStore::new());
    let _responder = ChallengeResponder::start(store.clone(), http_port, tls_port);
    let storage_dir = temp_dir("acme-renew");
    let (chain, key, old_root) = throwaway_cert(
        TEST_NAME,
        Duration::from_secs(20 * 86_400),
        Duration::from_secs(21 * 86_400),
    );
    AcmeStorage::new(storage_dir.path(), &pebble.directory_url())
        .save_cert(TEST_NAME, chain.as_bytes(), key.as_bytes())
        .unwrap();

    let handle = acme::spawn_with(
        settings(&pebble, vec![ChallengeKind::TlsAlpn01]),
        store.clone(),
        storage_dir.path().to_owned(),
    );
    // Still valid for a day: served at once while the renewal runs.
    let tls_addr: SocketAddr = ([127, 0, 0, 1], tls_port).into();
    served_leaf(tls_addr, TEST_NAME, roots_of(old_root)).unwrap();

    let status = wait_until(&handle, Duration::from_secs(60), "renewal", |s| s.issued == 1);
    assert!(
        status.not_after.unwrap() > std::time::SystemTime::now() + Duration::from_secs(30 * 86_400)
    );
    served_leaf(tls_addr, TEST_NAME, roots_of(pebble.issuing_root())).unwrap();
    handle.shutdown();
}

// ---------------------------------------------------------------------------------------------
// End to end through the proxy: the redirect listener answers HTTP-01, the TLS listener
// answers TLS-ALPN-01 and serves the issued certificate.

/// The seed's routes for `acme-test.example`, with ACME pointed at `pebble`.
struct ProxySetup {
    http_port: u16,
    https_port: u16,
    plain_port: u16,
    storage: TempDir,
    main: Origin,
    auth: Origin,
    ws: WsOrigin,
}

impl ProxySetup {
    fn new() -> ProxySetup {
        ProxySetup {
            http_port: unassigned_port(),
            https_port: unassigned_port(),
            plain_port: unassigned_port(),
            storage: temp_dir("acme-e2e"),
            main: Origin::start("moshi"),
            auth: Origin::start("auth"),
            ws: WsOrigin::start(),
        }
    }

    fn caddyfile(&self, pebble: &Pebble) -> String {
        format!(
            r#"{{
    admin off
    http_port {http}
    https_port {https}
    email ops@acme-test.example
    acme_ca {ca}
    acme_ca_root {root}
    storage file_system {storage}
}}

{name} {{
    handle /api/auth/* {{
        reverse_proxy {auth}
    }}
    handle /health {{
        reverse_proxy {auth}
    }}
    handle /api/chat {{
        reverse_proxy {ws}
    }}
    handle {{
        reverse_proxy {main}
    }}
}}

:{plain} {{
    respond "plain site up" 200
}}
"#,
            http = self.http_port,
            https = self.https_port,
            ca = pebble.directory_url(),
            root = pebble.api_root_path().display(),
            storage = self.storage.path().display(),
            name = TEST_NAME,
            auth = self.auth.addr,
            ws = self.ws.addr,
            main = self.main.addr,
            plain = self.plain_port,
        )
    }

    fn write_caddyfile(&self, pebble: &Pebble) -> std::path::PathBuf {
        let path = self.storage.path().join("Caddyfile");
        std::fs::write(&path, self.caddyfile(pebble)).unwrap();
        path
    }

    fn start(&self, pebble: &Pebble) -> ringproxy::server::Server {
        let config = ringproxy::config::parse_caddyfile(
            &self.caddyfile(pebble),
            "Caddyfile",
            self.storage.path(),
        )
        .unwrap();
        let options = ringproxy::server::RunOptions { workers: Some(2), ..Default::default() };
        ringproxy::server::Server::start(config, options).unwrap()
    }

    fn https_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.https_port).into()
    }

    fn http_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.http_port).into()
    }
}

const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn site_gets_a_pebble_certificate_and_serves_seed_routes_and_websocket_over_https() {
    let setup = ProxySetup::new();
    let pebble = Pebble::start_new(setup.http_port, setup.https_port);
    let server = setup.start(&pebble);
    let roots = roots_of(pebble.issuing_root());

    let leaf = wait_for_served_leaf(setup.https_addr(), TEST_NAME, &roots, ISSUE_TIMEOUT);
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    assert!(cert.issuer().to_string().contains("Pebble"), "{}", cert.issuer());

    for (path, body) in [
        ("/", "moshi GET /"),
        ("/api/build_info", "moshi GET /api/build_info"),
        ("/api/auth/session", "auth GET /api/auth/session"),
        ("/health", "auth GET /health"),
    ] {
        let (status, _, got) =
            https_get(setup.https_addr(), TEST_NAME, path, roots.clone()).unwrap();
        assert_eq!((status, String::from_utf8_lossy(&got).as_ref()), (200, body), "{path}");
    }
    let mut ws = wss_connect(setup.https_addr(), TEST_NAME, "/api/chat", roots.clone());
    for i in 0..10 {
        ws_echo_roundtrip(&mut ws, &format!("audio frame {i}"));
    }
    // Closed before the shutdown below, which would otherwise wait out its grace period for it.
    close_websocket(ws);

    let (status, head, _) = http_get(setup.http_addr(), TEST_NAME, "/api/tts?x=1").unwrap();
    assert_eq!(status, 308, "{head}");
    let location = format!("location: https://{TEST_NAME}/api/tts?x=1");
    assert!(head.to_ascii_lowercase().contains(&location), "{head}");
    server.shutdown();
}

#[test]
fn http01_alone_obtains_the_certificate_when_tls_alpn01_cannot_be_validated() {
    let setup = ProxySetup::new();
    // Pebble's TLS-ALPN-01 validation goes to a dead port: only HTTP-01 can succeed.
    let pebble = Pebble::start_new(setup.http_port, unassigned_port());
    let server = setup.start(&pebble);
    wait_for_served_leaf(
        setup.https_addr(),
        TEST_NAME,
        &roots_of(pebble.issuing_root()),
        ISSUE_TIMEOUT,
    );
    server.shutdown();
}

#[test]
fn tls_alpn01_alone_obtains_the_certificate_when_http01_cannot_be_validated() {
    let setup = ProxySetup::new();
    // Pebble's HTTP-01 validation goes to a dead port: only TLS-ALPN-01 can succeed.
    let pebble = Pebble::start_new(unassigned_port(), setup.https_port);
    let server = setup.start(&pebble);
    wait_for_served_leaf(
        setup.https_addr(),
        TEST_NAME,
        &roots_of(pebble.issuing_root()),
        ISSUE_TIMEOUT,
    );
    server.shutdown();
}

#[test]
fn restart_with_the_same_storage_places_no_new_order_and_serves_the_stored_certificate_at_once() {
    let setup = ProxySetup::new();
    let pebble = Pebble::start_new(setup.http_port, setup.https_port);
    let roots = roots_of(pebble.issuing_root());
    let server = setup.start(&pebble);
    let first = wait_for_served_leaf(setup.https_addr(), TEST_NAME, &roots, ISSUE_TIMEOUT);
    server.shutdown();
    let orders = pebble.orders_placed();
    assert_eq!(orders, 1);

    let server = setup.start(&pebble);
    // No waiting: the very first handshake after start gets the stored certificate.
    let again = served_leaf(setup.https_addr(), TEST_NAME, roots.clone()).unwrap();
    assert_eq!(again, first);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pebble.orders_placed(), orders);
    server.shutdown();
}

#[test]
fn certificate_near_expiry_is_renewed_in_the_background_without_dropping_a_live_websocket() {
    let setup = ProxySetup::new();
    let pebble = Pebble::start_new(setup.http_port, setup.https_port);
    let (chain, key, old_root) = throwaway_cert(
        TEST_NAME,
        Duration::from_secs(20 * 86_400),
        Duration::from_secs(21 * 86_400),
    );
    AcmeStorage::new(setup.storage.path(), &pebble.directory_url())
        .save_cert(TEST_NAME, chain.as_bytes(), key.as_bytes())
        .unwrap();
    let server = setup.start(&pebble);

    // The old certificate is served at once; a WebSocket opened with it stays up.
    let mut ws = wss_connect(setup.https_addr(), TEST_NAME, "/api/chat", roots_of(old_root));
    ws_echo_roundtrip(&mut ws, "before renewal");

    wait_for_served_leaf(
        setup.https_addr(),
        TEST_NAME,
        &roots_of(pebble.issuing_root()),
        ISSUE_TIMEOUT,
    );
    for i in 0..5 {
        ws_echo_roundtrip(&mut ws, &format!("after renewal {i}"));
    }
    close_websocket(ws);
    assert_eq!(pebble.orders_placed(), 1);
    server.shutdown();
}

#[test]
fn ca_unreachable_at_start_proxy_serves_other_sites_and_obtains_the_certificate_once_the_ca_is_up()
{
    let setup = ProxySetup::new();
    let mut pebble = Pebble::prepare(setup.http_port, setup.https_port);
    let server = setup.start(&pebble);

    let plain: SocketAddr = ([127, 0, 0, 1], setup.plain_port).into();
    let (status, _, body) = http_get(plain, "localhost", "/").unwrap();
    assert_eq!((status, body.as_slice()), (200, b"plain site up".as_slice()));
    // No certificate yet: the handshake fails with an alert, the redirect listener still works.
    let no_cert = served_leaf(setup.https_addr(), TEST_NAME, rustls::RootCertStore::empty());
    assert!(no_cert.is_err());
    let (status, _, _) = http_get(setup.http_addr(), TEST_NAME, "/").unwrap();
    assert_eq!(status, 308);

    // The CA comes up once the proxy has seen it unreachable (the next attempt is seconds
    // away, not minutes).
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let statuses = server.acme_status().expect("the site's certificate is managed");
        let status = statuses.into_iter().find(|s| s.name == TEST_NAME).expect("managed name");
        if status.consecutive_failures >= 1 {
            break status;
        }
        assert!(Instant::now() < deadline, "timed out waiting for a failure; status: {status:?}");
        std::thread::sleep(POLL);
    };
    let error = status.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("Connection refused") || error.contains("connect"), "{error}");
    pebble.start();
    wait_for_served_leaf(
        setup.https_addr(),
        TEST_NAME,
        &roots_of(pebble.issuing_root()),
        ISSUE_TIMEOUT,
    );
    server.shutdown();
}

#[test]
fn two_proxy_processes_on_one_storage_directory_place_exactly_one_order() {
    // Both processes start at once on one storage directory. Pebble validates only against
    // instance A's ports (as a load balancer might route it); whichever instance wins the lock
    // orders, and A answers either way (directly, or from the challenge B shared in storage).
    let a = ProxySetup::new();
    let pebble = Pebble::start_new(a.http_port, a.https_port);
    let b = ProxySetup::new();
    let shared_storage = a.storage.path().display().to_string();
    let b_caddyfile = b.storage.path().join("Caddyfile");
    let b_text =
        b.caddyfile(&pebble).replace(&b.storage.path().display().to_string(), &shared_storage);
    std::fs::write(&b_caddyfile, b_text).unwrap();
    let a_caddyfile = a.write_caddyfile(&pebble);

    let logs = temp_dir("acme-two-procs-logs");
    let spawn = |caddyfile: &Path, instance: &str| {
        let log = std::fs::File::create(logs.path().join(instance)).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_ringproxy"))
            .args(["run", "--config"])
            .arg(caddyfile)
            .env("RINGPROXY_WORKERS", "1")
            .env("RINGPROXY_LOG", "ringproxy=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut procs = [KillOnDrop(spawn(&a_caddyfile, "a")), KillOnDrop(spawn(&b_caddyfile, "b"))];
    let instance_logs = || {
        let read = |i| std::fs::read_to_string(logs.path().join(i)).unwrap_or_default();
        format!("--- instance a ---\n{}\n--- instance b ---\n{}", read("a"), read("b"))
    };

    let roots = roots_of(pebble.issuing_root());
    let deadline = Instant::now() + ISSUE_TIMEOUT;
    let (leaf_a, leaf_b) = loop {
        let a_leaf = served_leaf(a.https_addr(), TEST_NAME, roots.clone());
        let b_leaf = served_leaf(b.https_addr(), TEST_NAME, roots.clone());
        if let (Ok(a_leaf), Ok(b_leaf)) = (a_leaf, b_leaf) {
            break (a_leaf, b_leaf);
        }
        for (i, proc) in procs.iter_mut().enumerate() {
            assert!(proc.0.try_wait().unwrap().is_none(), "instance {i} exited");
        }
        assert!(
            Instant::now() < deadline,
            "no certificate on both instances after {ISSUE_TIMEOUT:?}"
        );
        std::thread::sleep(POLL);
    };
    assert_eq!(leaf_a, leaf_b);
    assert_eq!(pebble.orders_placed(), 1, "{}\n--- pebble ---\n{}", instance_logs(), pebble.log());
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_reload_orders_a_new_sites_certificate_keeps_the_live_one_and_leaves_removed_ones_in_storage() {
    let setup = ProxySetup::new();
    let pebble = Pebble::start_new(setup.http_port, setup.https_port);
    let roots = roots_of(pebble.issuing_root());
    let server = setup.start(&pebble);
    let first = wait_for_served_leaf(setup.https_addr(), TEST_NAME, &roots, ISSUE_TIMEOUT);
    let mut ws = wss_connect(setup.https_addr(), TEST_NAME, "/api/chat", roots.clone());
    ws_echo_roundtrip(&mut ws, "before the reload");

    // A second site appears: its certificate is ordered, the first keeps being served.
    const SECOND: &str = "second.acme-test.example";
    let with_second =
        format!("{}\n{SECOND} {{\n\trespond \"second site\" 200\n}}\n", setup.caddyfile(&pebble));
    let parse = |text: &str| {
        ringproxy::config::parse_caddyfile(text, "Caddyfile", setup.storage.path()).unwrap()
    };
    server.reload(parse(&with_second)).unwrap();
    assert_eq!(served_leaf(setup.https_addr(), TEST_NAME, roots.clone()).unwrap(), first);
    wait_for_served_leaf(setup.https_addr(), SECOND, &roots, ISSUE_TIMEOUT);
    let (status, _, body) = https_get(setup.https_addr(), SECOND, "/", roots.clone()).unwrap();
    assert_eq!((status, body.as_slice()), (200, b"second site".as_slice()));
    assert_eq!(pebble.orders_placed(), 2, "the reload re-ordered the first site's certificate");
    ws_echo_roundtrip(&mut ws, "after the first reload");

    // The first site goes away: its stream runs on, its certificate stays in storage.
    let storage = AcmeStorage::new(setup.storage.path(), &pebble.directory_url());
    let only_second =
        with_second.replacen(&format!("{TEST_NAME} {{"), &format!(":{} {{", unassigned_port()), 1);
    server.reload(parse(&only_second)).unwrap();
    ws_echo_roundtrip(&mut ws, "after its site was removed");
    assert!(storage.chain_path(TEST_NAME).is_file() && storage.key_path(TEST_NAME).is_file());
    close_websocket(ws);
    server.shutdown();
}
