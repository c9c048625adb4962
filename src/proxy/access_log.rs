//! The `log` directive: one JSON line per request, in the spirit of Caddy's access log
//! (`http.log.access`), to stdout, stderr or a file.
//!
//! `remote_ip` is the connection's peer (the PROXY protocol's source address when a header
//! carried one); `client_ip` is who the trusted proxies say the client is (`http::client_ip`).
//!
//! This module formats the line; the worker's log buffer (`logs::WorkerLog`) takes it and a
//! log-writer thread writes it, so a slow disk never stalls a connection.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ConnCtx;
use crate::config::{AccessLog, LogFormat, LogOutput};
use crate::http::client_ip::client_ip;
use crate::http::head::Version;
use crate::http::request::Request;

/// Write one access log line.
pub fn write(
    log: &AccessLog,
    ctx: &ConnCtx,
    request: &Request,
    status: u16,
    bytes: u64,
    took: Duration,
) {
    if log.output == LogOutput::Discard {
        return;
    }
    // Borrowed from the request's own head bytes (no copy unless they are not UTF-8).
    let method = String::from_utf8_lossy(request.method_token());
    let uri = String::from_utf8_lossy(request.target());
    let host = request.head().host_port.as_str();
    let proto = match request.head().version {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let mut line = String::with_capacity(256);
    match log.format {
        LogFormat::Json => {
            line.push_str("{\"level\":\"info\",\"ts\":");
            let _ = write!(line, "{now:.6}");
            line.push_str(",\"logger\":\"http.log.access\",\"msg\":\"handled request\",\"request\":{\"remote_ip\":");
            // A dual-stack listener's `::ffff:a.b.c.d` is logged as the IPv4 address it is.
            json_string(&mut line, &ctx.peer.ip().to_canonical().to_string());
            let _ = write!(line, ",\"remote_port\":\"{}\",\"client_ip\":", ctx.peer.port());
            let client = client_ip(
                &ctx.snapshot.config.globals.client_ip,
                ctx.peer.ip(),
                &request.head().headers,
                request.head_bytes(),
            );
            json_string(&mut line, &client.to_canonical().to_string());
            line.push_str(",\"proto\":");
            json_string(&mut line, proto);
            line.push_str(",\"method\":");
            json_string(&mut line, &method);
            line.push_str(",\"host\":");
            json_string(&mut line, host);
            line.push_str(",\"uri\":");
            json_string(&mut line, &uri);
            let _ = write!(
                line,
                "}},\"duration\":{:.6},\"size\":{bytes},\"status\":{status}}}",
                took.as_secs_f64()
            );
        }
        LogFormat::Console => {
            let _ = write!(
                line,
                "{now:.3}\t{} {} {} {} {}\t{status}\t{bytes}\t{:.6}s",
                ctx.peer.ip().to_canonical(),
                method,
                host,
                uri,
                proto,
                took.as_secs_f64()
            );
        }
    }
    ctx.worker.log_line(&log.output, &line);
}

fn json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\u{1}");
        assert_eq!(out, r#""a\"b\\c\u000ad\u0001""#);
    }
}
