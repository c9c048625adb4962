//! The typed configuration: everything between a Caddyfile on disk and what workers consume.
//!
//! This module owns the *shape* of a validated configuration; its submodules fill it in:
//!
//! | Module | Owns |
//! |---|---|
//! | `lexer` | Caddyfile text → tokens that carry `file:line`; `{$VAR}` substitution |
//! | `syntax` | tokens → blocks: global options, site blocks, snippets and `import` |
//! | `parse` | blocks → [`Config`]: what each option, directive and matcher means |
//! | `address` | site addresses and upstream addresses, resolution |
//! | `matcher` | compiling and evaluating path and header patterns |
//! | `placeholder` | `{host}`-style placeholders compiled to [`Template`]s |
//! | `units` | durations and byte sizes as Caddy writes them |
//! | `limits` | every default, and the bounds a Caddyfile value must stay within |
//! | `route` | "which handler serves this request", as a pure function |
//! | `summary` | the human-readable summary `validate` prints |
//!
//! `parse` has one file per decision (global options, `servers`, site routes and their order,
//! matchers, handler directives, `reverse_proxy`, listener assembly); its doc maps them.
//!
//! Workers never re-parse strings: addresses are resolved, matchers are compiled to
//! [`PathPattern`]s, placeholders to [`Template`]s and upstreams to [`DialAddr`] lists before a
//! worker sees the config. A `Config` is immutable once built; a reload builds a new one and
//! workers hand it to connections accepted afterwards (connections keep the snapshot they started
//! with).

mod address;
pub mod files;
pub mod lexer;
pub mod limits;
mod matcher;
pub mod parse;
mod placeholder;
pub mod route;
mod sources;
pub mod summary;
mod syntax;
mod units;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::net::ip_range::{self, IpRange};
pub use parse::{parse_bytes, parse_caddyfile, parse_file, ParseOptions};

/// The Caddyfile used by `ringproxy run` when no `--config` is given and no `./Caddyfile`
/// exists: a plaintext site on port 8080 that answers on its own, so a newcomer sees the proxy
/// work before writing any configuration.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.Caddyfile");

/// A configuration error, always tied to a place in a file.
///
/// Display renders Caddy's familiar `file:line - message` shape (`file - message` when the
/// error concerns the whole file, e.g. it cannot be read: `line` is then 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file name as the user gave it (e.g. `Caddyfile`).
    pub file: String,
    /// 1-based line of the offending token (or of the last line for end-of-file errors);
    /// 0 for errors about the file as a whole.
    pub line: usize,
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        if self.line == 0 {
            format!("{} - {}", self.file, self.message)
        } else {
            format!("{}:{} - {}", self.file, self.line, self.message)
        }
    }
}

/// A validated configuration, ready for workers.
#[derive(Debug, Clone)]
pub struct Config {
    pub globals: Globals,
    /// One entry per port we listen on. Each listener is either plaintext or TLS, never both
    /// (as in Caddy: a port configured for both is a config error).
    pub listeners: Vec<ListenerConfig>,
    /// Every `reverse_proxy` handler's upstream set; handlers refer to them by index so that
    /// workers can keep per-worker pools and health state in a plain `Vec` indexed the same way.
    pub upstream_sets: Vec<UpstreamSet>,
}

/// The global options block, resolved to typed values with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Globals {
    pub http_port: u16,
    pub https_port: u16,
    pub admin: Admin,
    pub email: Option<String>,
    /// ACME directory URL; `None` means the default (Let's Encrypt production).
    pub acme_ca: Option<String>,
    /// PEM file with an extra root trusted when talking to the ACME directory.
    pub acme_ca_root: Option<PathBuf>,
    /// `local_certs`: every HTTPS site uses the local CA instead of ACME.
    pub local_certs: bool,
    pub auto_https: AutoHttps,
    /// `storage file_system <path>`; `None` means `$XDG_DATA_HOME/ringproxy` or
    /// `~/.local/share/ringproxy`, resolved at startup.
    pub storage: Option<PathBuf>,
    /// How long a graceful stop waits for in-flight requests and live WebSockets before
    /// closing them (`grace_period`).
    pub grace_period: Duration,
    /// How long a stop keeps serving before the grace period starts, so load balancers can
    /// take the instance out of rotation (`shutdown_delay`).
    pub shutdown_delay: Duration,
    /// `acme_challenges` (a ringproxy extension): the ACME challenge types to try, in order.
    /// Empty means automatic: those the config has a listener for, HTTP-01 first.
    pub acme_challenges: Vec<ChallengeKind>,
    pub limits: limits::Limits,
    /// `limits { max_connections N  max_connections_per_ip N }`.
    pub caps: limits::ConnectionCaps,
    /// `servers { listener_wrappers { proxy_protocol { … } tls } }`: every listener reads a
    /// PROXY protocol header first. `None`: no listener does.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// `servers { trusted_proxies …  trusted_proxies_strict  client_ip_headers … }`.
    pub client_ip: ClientIp,
}

/// How listeners read the PROXY protocol header (`proxy_protocol { … }` in Caddy's
/// `listener_wrappers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// How long a peer may take to send its whole header before it is closed.
    pub timeout: Duration,
    /// Peers whose header is used ([`ProxyPolicy::Use`]).
    pub allow: Vec<IpRange>,
    /// Peers that may not send a header ([`ProxyPolicy::Reject`]); wins over `allow`.
    pub deny: Vec<IpRange>,
    /// The policy for peers in neither list.
    pub fallback_policy: ProxyPolicy,
}

/// What a listener does with a peer's PROXY header: go-proxyproto's policies, which Caddy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyPolicy {
    /// A header is optional; when present its source address becomes the peer.
    Use,
    /// A header is optional and read, but the real peer address stands.
    Ignore,
    /// A header closes the connection; without one the connection is served.
    Reject,
    /// Without a header the connection is closed; with one, its source address is the peer.
    Require,
    /// No header is looked for: the connection's bytes are served as they come.
    Skip,
}

impl ProxyPolicy {
    /// Every policy with its Caddyfile name, in Caddy's order.
    pub const NAMES: [(&'static str, ProxyPolicy); 5] = [
        ("ignore", ProxyPolicy::Ignore),
        ("use", ProxyPolicy::Use),
        ("reject", ProxyPolicy::Reject),
        ("require", ProxyPolicy::Require),
        ("skip", ProxyPolicy::Skip),
    ];
}

impl ProxyProtocol {
    /// The policy for a connection from `peer`, decided as Caddy does: `deny` first, then
    /// `allow`, then the fallback.
    pub fn policy_for(&self, peer: IpAddr) -> ProxyPolicy {
        if ip_range::any_contains(&self.deny, peer) {
            ProxyPolicy::Reject
        } else if ip_range::any_contains(&self.allow, peer) {
            ProxyPolicy::Use
        } else {
            self.fallback_policy
        }
    }
}

/// Which peers are trusted proxies and how the client's address is read from what they send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientIp {
    /// `trusted_proxies static …`: X-Forwarded-* from these peers are kept (X-Forwarded-For
    /// appended to) and the client IP is read from [`ClientIp::headers`].
    pub trusted_proxies: Vec<IpRange>,
    /// `trusted_proxies_strict`: the client is the first untrusted address from the right of
    /// the headers' list, not the leftmost.
    pub strict: bool,
    /// `client_ip_headers`, in order; empty means `X-Forwarded-For` (Caddy's default).
    pub headers: Vec<String>,
}

impl ClientIp {
    /// Whether `peer` is a trusted proxy.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        ip_range::any_contains(&self.trusted_proxies, peer)
    }
}

impl Default for Globals {
    /// Caddy's defaults (ports 80/443, admin on localhost:2019, automatic HTTPS on) and
    /// ringproxy's limits.
    fn default() -> Self {
        Globals {
            http_port: limits::DEFAULT_HTTP_PORT,
            https_port: limits::DEFAULT_HTTPS_PORT,
            admin: Admin::Address(limits::DEFAULT_ADMIN_ADDRESS.to_string()),
            email: None,
            acme_ca: None,
            acme_ca_root: None,
            local_certs: false,
            auto_https: AutoHttps::On,
            storage: None,
            grace_period: limits::DEFAULT_GRACE_PERIOD,
            shutdown_delay: Duration::ZERO,
            acme_challenges: Vec::new(),
            limits: limits::Limits::default(),
            caps: limits::ConnectionCaps::default(),
            proxy_protocol: None,
            client_ip: ClientIp::default(),
        }
    }
}

/// An ACME challenge type ringproxy can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    Http01,
    TlsAlpn01,
}

impl ChallengeKind {
    /// Every type, in the order errors list them.
    pub const ALL: [ChallengeKind; 2] = [ChallengeKind::Http01, ChallengeKind::TlsAlpn01];

    /// The name ACME and the Caddyfile use.
    pub fn name(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }

    /// `http-01` or `tls-alpn-01`, any case.
    pub fn parse(text: &str) -> Option<ChallengeKind> {
        ChallengeKind::ALL.into_iter().find(|kind| kind.name().eq_ignore_ascii_case(text))
    }

    /// A comma-separated list such as `tls-alpn-01,http-01`, duplicates dropped (the
    /// deprecated `RINGPROXY_ACME_CHALLENGES` variable's format).
    pub fn parse_list(text: &str) -> Result<Vec<ChallengeKind>, String> {
        let mut kinds = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind = ChallengeKind::parse(item).ok_or_else(|| {
                format!("unknown ACME challenge type {item:?} (use http-01 or tls-alpn-01)")
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(kinds)
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `admin` global option: where the admin endpoint listens (`admin`'s module doc), or
/// `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    Off,
    Address(String),
}

/// The `auto_https` global option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoHttps {
    /// Certificates are managed and HTTP→HTTPS redirects are served (Caddy's default).
    On,
    /// Certificates are managed, no redirect listener.
    DisableRedirects,
    /// No certificate management and no redirects; sites without an explicit `tls` are
    /// plaintext.
    Off,
}

/// One port we listen on, and the sites it serves.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Bind address; by default every interface (`[::]:port`, dual-stack).
    pub bind: SocketAddr,
    pub kind: ListenerKind,
    /// Sites ordered most specific host first: exact hosts, then wildcard hosts, then the
    /// catch-all (a site with no host, e.g. `:8080`). The first site whose host matches wins.
    pub sites: Vec<Site>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Plaintext,
    Tls,
    /// The automatic HTTP→HTTPS redirect listener on `http_port`; its sites hold only
    /// redirect routes. It also answers ACME HTTP-01 challenges before redirecting.
    Redirect,
}

/// A site block as it applies to one listener.
#[derive(Debug, Clone)]
pub struct Site {
    /// Host patterns this site answers for; empty means every host.
    pub hosts: Vec<HostPattern>,
    pub tls: TlsPolicy,
    /// `tls { protocols … client_auth … }`: how its handshakes go (default: TLS 1.2 and 1.3,
    /// no client certificates).
    pub tls_options: TlsOptions,
    /// The site's routes in evaluation order (Caddy's directive order already applied).
    pub routes: Vec<Route>,
    pub access_log: Option<AccessLog>,
    /// Where the site block starts, for summaries and runtime messages.
    pub origin: Origin,
}

/// Where something came from in the Caddyfile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A host matcher: lower-case, without port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `example.com`, `localhost`, `127.0.0.1`, `::1` (IPv6 without brackets).
    Exact(String),
    /// `*.example.com`: exactly one label in place of `*`; stores the suffix `.example.com`.
    Wildcard(String),
}

/// A TLS site's handshake options, from its `tls { … }` block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct TlsOptions {
    /// `protocols MIN [MAX]`; none is TLS 1.2 and 1.3 (all rustls offers).
    pub protocols: Option<(TlsVersion, TlsVersion)>,
    /// `client_auth { … }`: mutual TLS.
    pub client_auth: Option<ClientAuth>,
}

/// A TLS protocol version a site may negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Client certificates a site asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientAuth {
    pub mode: ClientAuthMode,
    /// PEM files of the CAs a client certificate must chain to (resolved paths).
    pub trusted_ca_files: Vec<PathBuf>,
}

/// Caddy's `client_auth { mode … }` values that ringproxy supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuthMode {
    /// A certificate is required and must chain to a trusted CA (Caddy's default when CAs
    /// are given).
    RequireAndVerify,
    /// A certificate is optional; one that is given must chain to a trusted CA.
    VerifyIfGiven,
}

/// How a site gets its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Plaintext site.
    None,
    /// ACME (automatic HTTPS); `email` overrides the global `email`.
    Acme { email: Option<String> },
    /// The local CA (`tls internal`, `local_certs`, `localhost`/IP sites).
    Internal,
    /// `tls <cert.pem> <key.pem>`, paths resolved relative to the Caddyfile's directory.
    Files { cert: PathBuf, key: PathBuf },
}

/// A route: an optional matcher guarding a handler.
#[derive(Debug, Clone)]
pub struct Route {
    /// `None` matches every request.
    pub matcher: Option<Matcher>,
    pub handler: Handler,
    /// Routes from `handle`/`handle_path` directives in the same block form one mutually
    /// exclusive group: once one matches, the rest of its group is skipped.
    pub group: Option<u32>,
}

/// What a route does when it matches. Most handlers answer the request and end the route
/// chain; the middleware ones (see [`Handler::is_terminal`]) shape how it is answered.
#[derive(Debug, Clone)]
pub enum Handler {
    /// `reverse_proxy`: index into [`Config::upstream_sets`].
    Proxy(usize),
    /// `respond`.
    Respond { status: u16, body: Template },
    /// `redir`: answers `status` with `Location: <to>`.
    Redirect { to: Template, status: u16 },
    /// The automatic HTTP→HTTPS redirect: `308`, `Location: https://<host><uri>`, the port
    /// appended only when it is not the default https_port, `Connection: close`.
    HttpsRedirect { port: Option<u16> },
    /// `metrics`: the Prometheus exposition of this proxy (the admin endpoint's `/metrics`).
    Metrics,
    /// `handle`, `route`, `handle_path`: a nested route list. `strip_prefix` is set by
    /// `handle_path` and removed from the path before the nested routes run.
    Subroute { routes: Vec<Route>, strip_prefix: Option<String> },
    /// `request_body { max_size }` (middleware): a request body longer than this many bytes
    /// is refused with `413`; `None` limits nothing.
    RequestBody { max_size: Option<u64> },
    /// `root` (middleware): the directory the file server serves from. Absolute.
    Root(std::path::PathBuf),
    /// `try_files` (middleware): the path the file server serves instead of the request's.
    TryFiles(files::TryFiles),
    /// `file_server`: answers from the files under the root.
    FileServer(Box<files::FileServer>),
    /// `basic_auth` (middleware): a request without one of these accounts' credentials gets
    /// `401`.
    BasicAuth(BasicAuth),
    /// `encode` (middleware): compress responses the client accepts compressed.
    Encode(Encode),
    /// `forward_auth` (middleware): the request is first asked of an auth server.
    ForwardAuth(ForwardAuth),
    /// `header` (middleware): operations on the response head.
    Header(ResponseHeaders),
}

/// A content coding `encode` can apply (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Zstd,
}

impl Coding {
    /// The name in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Zstd => "zstd",
        }
    }
}

/// `encode`'s codings and when they apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encode {
    /// Offered codings; among equal client q-values the first wins.
    pub prefer: Vec<Coding>,
    /// Responses known to be shorter than this are sent as they are.
    pub minimum_length: u64,
    /// 1 (fastest) to 9 (smallest).
    pub gzip_level: u32,
    /// zstd's own levels (Caddy's `fastest`, `default`, `better`, `best` are 1, 3, 7, 11).
    pub zstd_level: i32,
    /// `Content-Type` patterns (`text/*`, `application/json*`) of responses to encode.
    pub content_types: Vec<String>,
}

impl Default for Encode {
    /// Caddy's defaults: zstd then gzip, 512 bytes, gzip level 5, zstd's default level, and its
    /// list of text-like types.
    fn default() -> Self {
        Encode {
            prefer: vec![Coding::Zstd, Coding::Gzip],
            minimum_length: limits::DEFAULT_ENCODE_MINIMUM_LENGTH,
            gzip_level: 5,
            zstd_level: 3,
            content_types: limits::DEFAULT_ENCODE_TYPES.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// `basic_auth`'s accounts and realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// Sent in `WWW-Authenticate: Basic realm="…"`.
    pub realm: String,
    pub accounts: Vec<BasicAccount>,
}

/// One `basic_auth` account: a user name and the bcrypt hash of its password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAccount {
    pub user: String,
    /// `$2a$…`/`$2b$…`/`$2y$…`, checked for its shape when parsed.
    pub hash: String,
}

impl std::fmt::Debug for BasicAccount {
    /// The hash stays out of logs and config dumps.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAccount").field("user", &self.user).finish_non_exhaustive()
    }
}

/// `forward_auth UPSTREAM { uri …; copy_headers … }`: a bodiless `GET` copy of each request
/// goes to the auth server first; a 2xx lets the request on with `copy_headers` set from the
/// auth response, anything else is the client's answer.
#[derive(Debug, Clone)]
pub struct ForwardAuth {
    /// The auth server's upstreams: an index into [`Config::upstream_sets`].
    pub set: usize,
    /// The auth request's target (`uri`), rendered against the client's request.
    pub uri: Template,
    pub copy_headers: Vec<CopyHeader>,
}

/// One `copy_headers` entry, `From>To` or just `Name` (both the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyHeader {
    /// The auth response's field.
    pub from: String,
    /// The field set on the request that goes on.
    pub to: String,
}

impl Handler {
    /// Whether this handler answers the request and so ends the route chain. The others are
    /// middleware: routing collects them and goes on (see [`route`]).
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            Handler::RequestBody { .. }
                | Handler::Header(_)
                | Handler::BasicAuth(_)
                | Handler::ForwardAuth(_)
                | Handler::Encode(_)
                | Handler::Root(_)
                | Handler::TryFiles(_)
        )
    }
}

/// A compiled request matcher: all conditions must hold (Caddy's matcher set semantics). The
/// default has no conditions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matcher {
    /// Any of these paths (empty = no path condition).
    pub paths: Vec<PathPattern>,
    /// Any of these hosts (empty = no host condition).
    pub hosts: Vec<HostPattern>,
    /// Any of these methods, upper-case (empty = no method condition).
    pub methods: Vec<String>,
    /// Every header condition must hold.
    pub headers: Vec<HeaderCondition>,
    /// `not { ... }` blocks: each must *not* match.
    pub not: Vec<Matcher>,
}

/// A path pattern, compiled from Caddy's path matcher syntax. Patterns are stored lower-case
/// and compared against the normalised, lower-cased request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// `/health`
    Exact(String),
    /// `/api/auth/*` stores `/api/auth/`.
    Prefix(String),
    /// `*.js` stores `.js`.
    Suffix(String),
    /// `*/foo/*` stores `/foo/`.
    Contains(String),
    /// `*`
    Any,
}

/// A header matcher condition: `header Name value`, `header Name` (present), `header !Name`
/// (absent), values with a leading/trailing `*` for suffix/prefix matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderCondition {
    /// Lower-case header name.
    pub name: String,
    pub test: HeaderTest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderTest {
    Present,
    Absent,
    /// Any of these value patterns (Caddy's OR within one header's values).
    Values(Vec<ValuePattern>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValuePattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Any,
}

/// A string with placeholders compiled out, e.g. `https://{host}{uri}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Placeholder(Placeholder),
}

/// The placeholders ringproxy can fill in. Anything else in a Caddyfile is a config error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{host}`, `{http.request.host}`: request host without port.
    Host,
    /// `{hostport}`, `{http.request.hostport}`.
    HostPort,
    /// `{uri}`, `{http.request.uri}`: path and query as received.
    Uri,
    /// `{path}`, `{http.request.uri.path}`.
    Path,
    /// `{query}`, `{http.request.uri.query}`.
    Query,
    /// `{scheme}`, `{http.request.scheme}`.
    Scheme,
    /// `{method}`, `{http.request.method}`.
    Method,
    /// `{remote_host}`, `{http.request.remote.host}`.
    RemoteHost,
    /// `{remote_port}`, `{http.request.remote.port}`.
    RemotePort,
    /// `{upstream_hostport}`, `{http.reverse_proxy.upstream.hostport}`: only in `header_up`.
    UpstreamHostPort,
}

/// A `reverse_proxy` handler's upstreams and options.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSet {
    pub upstreams: Vec<Upstream>,
    pub lb_policy: LbPolicy,
    pub health: Option<HealthCheck>,
    /// How long an upstream is skipped after a failed request (`fail_duration`); zero disables
    /// passive health tracking, as in Caddy.
    pub fail_duration: Duration,
    /// Failures within `fail_duration` before an upstream counts as down (`max_fails`).
    pub max_fails: u32,
    pub header_up: Vec<HeaderOp>,
    pub header_down: Vec<HeaderOp>,
    pub transport: Transport,
    /// A WebSocket (any upgraded stream) through this set is closed this long after its
    /// upgrade, at a frame boundary with a 1001 close frame to both sides (`stream_timeout`;
    /// `None`, the default as in Caddy: never).
    pub stream_timeout: Option<Duration>,
    /// Whether and how long a request that could not be delivered is tried again
    /// (`lb_retries`, `lb_try_duration`, `lb_try_interval`).
    pub retries: Retries,
    pub origin: Origin,
}

/// Trying a request again after it could not be delivered (see `proxy::forward` for what
/// counts). Caddy's rules: no retries unless `count` or `duration` is set; with both, tries
/// stop at whichever ends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retries {
    /// Tries after the first (`lb_retries`); 0: as many as `duration` allows.
    pub count: u32,
    /// No try starts once this long has passed since the first (`lb_try_duration`).
    pub duration: Option<Duration>,
    /// The wait before each retry (`lb_try_interval`); see `limits::DEFAULT_LB_TRY_INTERVAL`.
    pub interval: Duration,
}

impl Retries {
    pub fn enabled(&self) -> bool {
        self.count > 0 || self.duration.is_some()
    }
}

impl Default for UpstreamSet {
    /// No upstreams yet; Caddy's defaults for everything else (`lb_policy random`, passive
    /// health off, no health checks, no header ops).
    fn default() -> Self {
        UpstreamSet {
            upstreams: Vec::new(),
            lb_policy: LbPolicy::Random,
            health: None,
            fail_duration: limits::DEFAULT_FAIL_DURATION,
            max_fails: limits::DEFAULT_MAX_FAILS,
            header_up: Vec::new(),
            header_down: Vec::new(),
            transport: Transport::default(),
            stream_timeout: None,
            retries: Retries::default(),
            origin: Origin::default(),
        }
    }
}

/// One upstream, resolved at config time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// As written (`localhost:8080`, `unix//run/moshi.sock`), for logs, metrics labels and the
    /// admin API.
    pub display: String,
    /// Addresses to dial, in order (e.g. `127.0.0.1:8080` then `[::1]:8080` for localhost; a
    /// unix socket upstream has exactly one).
    pub addrs: Vec<DialAddr>,
}

impl Upstream {
    /// `{upstream_hostport}`: the address as written for TCP; for a unix socket, its path
    /// (Caddy's `http.reverse_proxy.upstream.hostport`, which has no `unix/` prefix).
    pub fn hostport(&self) -> &str {
        upstream_hostport(&self.display)
    }

    /// A unix socket upstream: its requests need a `Host` of our choosing where TCP ones use
    /// the address (health checks send `localhost`, as Caddy does).
    pub fn is_unix(&self) -> bool {
        matches!(self.addrs.first(), Some(DialAddr::Unix(_)))
    }
}

/// `{upstream_hostport}` of the upstream written as `display` (see [`Upstream::hostport`]). An
/// address written `unix/…` is always a unix socket (the parser takes every one as such), so
/// the text alone decides, and what keeps an upstream's name needs nothing more.
pub fn upstream_hostport(display: &str) -> &str {
    display.strip_prefix("unix/").unwrap_or(display)
}

/// Where a connection to an upstream is dialled: a TCP address, or a unix stream socket's
/// path (`unix//run/moshi.sock`, or `unix/moshi.sock`, relative to the working directory as
/// in Caddy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for DialAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialAddr::Tcp(addr) => addr.fmt(f),
            DialAddr::Unix(path) => write!(f, "unix/{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    First,
    LeastConn,
    Random,
    IpHash,
}

/// Active health checks (`health_uri`, `health_interval`, `health_timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path and query requested with GET; any 2xx/3xx counts as healthy.
    pub uri: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// A `header_up`, `header_down` or `header` operation. `header_up` takes only the first three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// `Name value`: replace every existing value.
    Set { name: String, value: Template },
    /// `+Name value`: append a field.
    Add { name: String, value: Template },
    /// `-Name`: remove every field with this name.
    Remove { name: String },
    /// `-Prefix*`, `-*Suffix`, `-*Part*`, `-*`: remove every field whose name matches.
    RemoveMatching { pattern: FieldPattern },
    /// `?Name value`: set the field only if the head has none of that name.
    Default { name: String, value: Template },
    /// `Name find replace`: every value of the field (of every field for `*`) has each match
    /// of `find` replaced (`$1` and `${name}` refer to its groups, as in Caddy).
    Replace { name: String, find: FindPattern, replace: Template },
}

/// A field-name pattern with Caddy's wildcards: `*` alone, or at the start and/or the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPattern {
    /// The name without its wildcards.
    pub core: String,
    pub any_prefix: bool,
    pub any_suffix: bool,
}

impl FieldPattern {
    /// Whether `name` matches, ASCII case-insensitively as field names compare.
    pub fn matches(&self, name: &[u8]) -> bool {
        let core = self.core.as_bytes();
        let eq = |a: &[u8]| a.eq_ignore_ascii_case(core);
        match (self.any_prefix, self.any_suffix) {
            (false, false) => eq(name),
            (false, true) => name.len() >= core.len() && eq(&name[..core.len()]),
            (true, false) => name.len() >= core.len() && eq(&name[name.len() - core.len()..]),
            (true, true) => core.is_empty() || name.windows(core.len()).any(eq),
        }
    }
}

/// The `find` of a replace op: a regular expression over the value's bytes.
#[derive(Debug, Clone)]
pub struct FindPattern(pub regex::bytes::Regex);

impl PartialEq for FindPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for FindPattern {}

/// A `header` directive's response ops, split as Caddy applies them: `immediate` ones before
/// the handler runs (to an empty head that the handler's fields are then added to) and
/// `deferred` ones on the complete head just before it is written (see
/// `http::header_ops`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHeaders {
    pub immediate: Vec<HeaderOp>,
    /// In the order they apply.
    pub deferred: Vec<HeaderOp>,
}

/// `transport http { ... }` options, with defaults from `limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    pub dial_timeout: Duration,
    /// `None`: wait as long as the upstream takes (Caddy's default).
    pub response_header_timeout: Option<Duration>,
    /// Idle pooled connections are closed after this long; `keepalive off` disables pooling.
    pub keepalive: Option<Duration>,
    /// Idle pooled connections kept per upstream, per worker.
    pub keepalive_idle_conns: usize,
    /// A response body that makes no progress for this long is cut off; `None`: off.
    pub read_timeout: Option<Duration>,
    /// A request (head or body) the upstream accepts no bytes of for this long is abandoned
    /// with `504`; `None`: off.
    pub write_timeout: Option<Duration>,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            dial_timeout: limits::DEFAULT_DIAL_TIMEOUT,
            response_header_timeout: None,
            keepalive: Some(limits::DEFAULT_UPSTREAM_KEEPALIVE),
            keepalive_idle_conns: limits::DEFAULT_KEEPALIVE_IDLE_CONNS,
            read_timeout: Some(limits::DEFAULT_UPSTREAM_READ_TIMEOUT),
            write_timeout: Some(limits::DEFAULT_UPSTREAM_WRITE_TIMEOUT),
        }
    }
}

/// `log` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub output: LogOutput,
    pub format: LogFormat,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogOutput {
    Stdout,
    Stderr,
    File { path: PathBuf, roll: LogRoll },
    Discard,
}

/// Rolling a log file by size (`output file F { roll_size … }`, Caddy's options).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogRoll {
    /// Roll when the file would grow past this; `None` (`roll_disabled`): never roll.
    pub size: Option<u64>,
    /// Rolled files kept (the oldest beyond this are deleted).
    pub keep: usize,
    /// Rolled files older than this are deleted; `None`: kept whatever their age.
    pub keep_for: Option<Duration>,
}

impl Default for LogRoll {
    /// Caddy's defaults: 100 MiB, 10 files, 90 days.
    fn default() -> Self {
        LogRoll {
            size: Some(limits::DEFAULT_LOG_ROLL_SIZE),
            keep: limits::DEFAULT_LOG_ROLL_KEEP,
            keep_for: Some(limits::DEFAULT_LOG_ROLL_KEEP_FOR),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Console,
}
