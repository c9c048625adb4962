//! Starting and stopping a running proxy: worker threads, listeners, shutdown.
//! (Stub: signatures fixed for tests; the data path fills it in.)

use std::net::SocketAddr;

use crate::config::Config;

/// Which monoio driver workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    IoUring,
    Epoll,
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Worker threads; `None` = available cores.
    pub workers: Option<usize>,
    pub driver: DriverChoice,
}

/// A running proxy. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    addrs: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl Server {
    /// Bind every listener and start the workers. A listener configured on port 0 gets an
    /// ephemeral port, shared by all workers; [`Server::local_addrs`] reports it.
    pub fn start(config: Config, options: RunOptions) -> Result<Server, StartError> {
        let _ = (config, options);
        todo!("data path")
    }

    /// Bound addresses, in the order of `Config::listeners`.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stop accepting, close connections after `grace_period`, join the workers.
    pub fn shutdown(self) {}
}
