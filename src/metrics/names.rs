//! Every metric name ringproxy exports, with its type and help text, in one place (so the
//! exposition, the docs and the tests agree). Prometheus conventions: `snake_case`, a unit
//! suffix (`_seconds`, `_bytes`), `_total` on counters.

/// One metric family: name, type and help line.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
}

const fn family(name: &'static str, kind: &'static str, help: &'static str) -> Family {
    Family { name, kind, help }
}

pub const HTTP_REQUESTS: Family = family(
    "ringproxy_http_requests_total",
    "counter",
    "HTTP responses sent to clients, by status code (proxied and synthesized; a 101 counts once).",
);
pub const HTTP_REQUEST_DURATION: Family = family(
    "ringproxy_http_request_duration_seconds",
    "histogram",
    "Time from the first byte of a request head to the end of its response (to the 101 for an upgrade).",
);
pub const WEBSOCKETS_OPEN: Family =
    family("ringproxy_websockets_open", "gauge", "Upgraded connections being relayed now.");
pub const RELAYED_BYTES: Family = family(
    "ringproxy_relayed_bytes_total",
    "counter",
    "Bytes relayed after an upgrade, by direction (upstream: client to upstream).",
);
pub const CONNECTIONS_OPEN: Family = family(
    "ringproxy_connections_open",
    "gauge",
    "Client connections open now, by kind (plain or tls; a TLS connection counts once its handshake completes).",
);
pub const TLS_HANDSHAKES: Family = family(
    "ringproxy_tls_handshakes_total",
    "counter",
    "TLS handshakes on client connections, by result.",
);
pub const CONNECTIONS_REFUSED: Family = family(
    "ringproxy_connections_refused_total",
    "counter",
    "Client connections closed at accept by a cap, by the cap (max_connections or max_connections_per_ip).",
);
pub const CONNECTIONS_SHED: Family = family(
    "ringproxy_connections_shed_total",
    "counter",
    "Idle keep-alive client connections closed to make room when accept ran out of file descriptors.",
);
pub const PROXY_PROTOCOL_REFUSED: Family = family(
    "ringproxy_proxy_protocol_refused_total",
    "counter",
    "Client connections closed while their PROXY protocol header was read, by reason (timeout, missing, not_allowed, malformed, closed).",
);
pub const LOG_LINES_DROPPED: Family = family(
    "ringproxy_access_log_lines_dropped_total",
    "counter",
    "Access log lines dropped because the log writer fell behind.",
);
pub const UPSTREAM_HEALTHY: Family = family(
    "ringproxy_upstream_healthy",
    "gauge",
    "1 when the upstream takes new requests on every worker (active and passive health), else 0.",
);
pub const UPSTREAM_IN_FLIGHT: Family =
    family("ringproxy_upstream_requests_in_flight", "gauge", "Requests in flight to the upstream.");
pub const CONFIG_RELOADS: Family = family(
    "ringproxy_config_reloads_total",
    "counter",
    "Configuration reloads (admin /load, SIGHUP, ringproxy reload), by result.",
);
pub const CONFIG_LAST_RELOAD_SUCCESS: Family = family(
    "ringproxy_config_last_reload_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful configuration load (the start counts).",
);
pub const CERTIFICATE_EXPIRY: Family = family(
    "ringproxy_certificate_expiry_timestamp_seconds",
    "gauge",
    "Unix time at which the certificate served for a name expires.",
);
pub const PROCESS_RESIDENT_MEMORY: Family =
    family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
pub const PROCESS_CPU: Family = family(
    "process_cpu_seconds_total",
    "counter",
    "Total user and system CPU time spent in seconds.",
);
pub const PROCESS_OPEN_FDS: Family =
    family("process_open_fds", "gauge", "Number of open file descriptors.");
pub const PROCESS_MAX_FDS: Family =
    family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
pub const PROCESS_START_TIME: Family = family(
    "process_start_time_seconds",
    "gauge",
    "Start time of the process since unix epoch in seconds.",
);

/// Every family, in exposition order.
pub const ALL: [Family; 20] = [
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    WEBSOCKETS_OPEN,
    RELAYED_BYTES,
    CONNECTIONS_OPEN,
    CONNECTIONS_REFUSED,
    CONNECTIONS_SHED,
    PROXY_PROTOCOL_REFUSED,
    TLS_HANDSHAKES,
    LOG_LINES_DROPPED,
    UPSTREAM_HEALTHY,
    UPSTREAM_IN_FLIGHT,
    CONFIG_RELOADS,
    CONFIG_LAST_RELOAD_SUCCESS,
    CERTIFICATE_EXPIRY,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_CPU,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_START_TIME,
];
