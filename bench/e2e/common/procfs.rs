//! The proxy's CPU time and resident memory, read from `/proc/<pid>` around a measured window.
//!
//! CPU time is the larger of two readings:
//! - utime+stime from `/proc/<pid>/stat`: every thread, including threads that have exited, but
//!   in USER_HZ ticks (10 ms; bench/run passes `getconf CLK_TCK`), too coarse for a 0.1 s window;
//! - the sum of `/proc/<pid>/task/*/schedstat` on-CPU nanoseconds: exact, but only for threads
//!   alive at the reading (Go and ringproxy keep their threads; a thread that exits inside the
//!   window makes the tick figure the larger one, which is then used).

use std::time::Duration;

use super::ToolError;

/// A process whose resource use a scenario reports.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    pub pid: u32,
    pub clk_tck: u64,
}

impl Watched {
    /// utime + stime so far.
    pub fn cpu(&self) -> Result<Duration, ToolError> {
        let path = format!("/proc/{}/stat", self.pid);
        let text =
            std::fs::read_to_string(&path).map_err(|e| ToolError::Proc(format!("{path}: {e}")))?;
        let ticks = parse_stat_cpu_ticks(&text)
            .ok_or_else(|| ToolError::Proc(format!("{path}: unparsable")))?;
        let tck = self.clk_tck.max(1);
        Ok(Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / tck))
    }

    /// Resident set size in KiB (VmRSS).
    pub fn rss_kib(&self) -> Result<u64, ToolError> {
        let path = format!("/proc/{}/status", self.pid);
        let text =
            std::fs::read_to_string(&path).map_err(|e| ToolError::Proc(format!("{path}: {e}")))?;
        parse_status_rss_kib(&text).ok_or_else(|| ToolError::Proc(format!("{path}: no VmRSS")))
    }
}

/// utime + stime (fields 14 and 15) from a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After ')' the first field is field 3 (state); utime is field 14, i.e. the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in KiB from `/proc/<pid>/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 5 \
                    1000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\tcaddy\nVmPeak:\t 900 kB\nVmRSS:\t   41236 kB\nThreads:\t7\n";
        assert_eq!(parse_status_rss_kib(status), Some(41236));
        assert_eq!(parse_status_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = Watched { pid: std::process::id(), clk_tck: 100 };
        assert!(me.rss_kib().unwrap() > 0);
        me.cpu().unwrap();
    }
}
