//! `process_*` metrics, read from procfs at scrape time (Prometheus's standard process
//! collector names, so existing dashboards work).

use std::time::Duration;

/// One reading of the process's resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub cpu: Option<Duration>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// Read what procfs offers; a field that cannot be read is `None` and left out of the
/// exposition rather than reported as 0.
pub fn read() -> ProcessStats {
    ProcessStats {
        resident_bytes: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| resident_bytes(&s)),
        cpu: crate::net::sys::process_cpu_time().ok(),
        open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
        max_fds: std::fs::read_to_string("/proc/self/limits").ok().and_then(|s| max_open_files(&s)),
    }
}

/// `VmRSS:    1234 kB` from /proc/self/status.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit from `Max open files  1024  1048576  files` in /proc/self/limits.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfs_lines_parse() {
        let status = "Name:\tringproxy\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(resident_bytes(status), Some(5120 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            65536                1048576              files\n";
        assert_eq!(max_open_files(limits), Some(65536));
        assert_eq!(max_open_files("Max open files unlimited unlimited files\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let stats = read();
        assert!(stats.resident_bytes.unwrap() > 0);
        assert!(stats.open_fds.unwrap() >= 3);
        assert!(stats.max_fds.unwrap() >= stats.open_fds.unwrap());
        assert!(stats.cpu.is_some());
    }
}
