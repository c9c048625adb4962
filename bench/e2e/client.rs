//! How the load generator reaches a target: TCP to a loopback address, optionally TLS with the
//! run's SNI, and the WebSocket upgrade on top; plus the watched proxy process, if any.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::common::procfs::Watched;
use crate::common::{ws, ToolError};

/// Where and how to connect; shared by every scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// Loopback address of the target (proxy or backend).
    #[arg(long)]
    pub addr: SocketAddr,
    /// Host name sent as SNI and in the Host header (with the port).
    #[arg(long, default_value = "localhost")]
    pub host: String,
    /// Speak TLS; needs --ca.
    #[arg(long)]
    pub tls: bool,
    /// PEM of the CA that signed the target's certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The proxy's process id: its CPU (and RSS) is reported around the measured window.
    #[arg(long)]
    pub pid: Option<u32>,
    /// USER_HZ of /proc/<pid>/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
}

/// A connected target, ready to make connections.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    host: String,
    server_name: ServerName<'static>,
    tls: Option<TlsConnector>,
    pub watched: Option<Watched>,
}

impl Target {
    pub fn new(a: &TargetArgs) -> Result<Self, ToolError> {
        if !a.addr.ip().is_loopback() {
            return Err(ToolError::Usage(format!(
                "{}: targets must be loopback addresses",
                a.addr
            )));
        }
        let tls = match (a.tls, &a.ca) {
            (false, _) => None,
            (true, Some(ca)) => Some(TlsConnector::from(crate::common::tls::client_config(ca)?)),
            (true, None) => return Err(ToolError::Usage("--tls needs --ca".into())),
        };
        let server_name = ServerName::try_from(a.host.clone())
            .map_err(|e| ToolError::Usage(format!("--host {}: {e}", a.host)))?;
        Ok(Self {
            addr: a.addr,
            host: a.host.clone(),
            server_name,
            tls,
            watched: a.pid.map(|pid| Watched { pid, clk_tck: a.clk_tck }),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The Host header value: name and port, as a browser would send it.
    pub fn host_header(&self) -> String {
        format!("{}:{}", self.host, self.addr.port())
    }

    pub async fn connect(&self) -> Result<Conn, ToolError> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Conn::Plain(tcp)),
            Some(c) => Ok(Conn::Tls(Box::new(c.connect(self.server_name.clone(), tcp).await?))),
        }
    }

    /// Connects and upgrades to a WebSocket on `/ws`; returns bytes read past the 101 head.
    pub async fn connect_ws(&self) -> Result<(Conn, Vec<u8>), ToolError> {
        let mut c = self.connect().await?;
        let rest = ws::client_upgrade(&mut c, &self.host_header(), "/ws").await?;
        Ok((c, rest))
    }

    /// The proxy's CPU time so far, or `None` for the direct target.
    pub fn cpu(&self) -> Result<Option<std::time::Duration>, ToolError> {
        self.watched.as_ref().map(Watched::cpu).transpose()
    }
}

/// A client connection, plaintext or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A scenario's results, in the order measured.
#[derive(Debug, Default)]
pub struct Metrics(pub Vec<(String, f64)>);

impl Metrics {
    pub fn put(&mut self, metric: &str, value: f64) {
        self.0.push((metric.to_owned(), value));
    }

    pub fn get(&self, metric: &str) -> Option<f64> {
        self.0.iter().find(|(m, _)| m == metric).map(|(_, v)| *v)
    }

    /// One `metric<TAB>value` line each, the format bench/run collects.
    pub fn print(&self) {
        for (m, v) in &self.0 {
            println!("{m}\t{v}");
        }
    }
}

/// Sets the calling thread's timer slack to 1 ns so its sleeps end when asked rather than up to
/// 50 µs later. Only `/proc/<tid>/timerslack_ns` exists (not under thread-self), and the tid is
/// read from the `/proc/thread-self` link (`<pid>/task/<tid>`). Best effort: older kernels and
/// restricted /proc refuse, and the paced scenario reports its ticker's lateness either way.
pub fn tighten_timer_slack() {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().and_then(|t| t.to_str()).map(str::to_owned) else {
        return;
    };
    let _ = std::fs::write(format!("/proc/{tid}/timerslack_ns"), "1");
}
