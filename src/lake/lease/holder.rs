//! Who holds a lease: a name for other runs' messages, and the holder's process, so that a lease
//! whose holder is provably dead (killed on this very machine) is taken over at once.

use serde::{Deserialize, Serialize};

use super::LeaseRecord;

/// Names one process among all processes of all machines and boots, as far as Linux tells.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub hostname: String,
    /// `/proc/sys/kernel/random/boot_id`: pids and start times mean nothing across boots.
    pub boot_id: String,
    /// The target of `/proc/self/ns/pid`: pids mean nothing across pid namespaces (containers).
    pub pid_namespace: String,
    /// Owner of the process: `/proc` may hide other users' processes (`hidepid`), so only a
    /// holder of our own user can be proven absent.
    pub uid: u32,
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`, in clock ticks since boot: with the pid, names one process
    /// even after its pid is reused.
    pub start_time: u64,
}

/// A name for the run `run_id`, for other runs' messages: host, pid and the run id.
pub fn holder_name(run_id: &str) -> String {
    format!(
        "{} pid {} run {run_id}",
        hostname().unwrap_or_else(|| "unknown-host".into()),
        std::process::id(),
    )
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
}

/// Elsewhere than Linux there is no `/proc` to prove a holder dead: leases wait for expiry.
#[cfg(not(target_os = "linux"))]
pub(super) fn this_process() -> Option<ProcessIdentity> {
    None
}

/// This process's identity, or `None` where `/proc` cannot tell it.
#[cfg(target_os = "linux")]
pub(super) fn this_process() -> Option<ProcessIdentity> {
    static THIS: std::sync::OnceLock<Option<ProcessIdentity>> = std::sync::OnceLock::new();
    THIS.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        let pid = std::process::id();
        // A `/proc` mounted from another pid namespace would describe other processes.
        let self_link = std::fs::read_link("/proc/self").ok()?;
        if self_link.to_str()? != pid.to_string() {
            return None;
        }
        let identity = ProcessIdentity {
            hostname: hostname()?,
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()?
                .trim()
                .to_string(),
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .ok()?
                .to_str()?
                .to_string(),
            uid: std::fs::metadata("/proc/self").ok()?.uid(),
            pid,
            start_time: start_time(pid).ok()??,
        };
        let known = |s: &str| !s.is_empty();
        (known(&identity.hostname) && known(&identity.boot_id) && known(&identity.pid_namespace))
            .then_some(identity)
    })
    .clone()
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`): `Ok(None)` when no such
/// process exists, an error when it cannot be told.
pub(super) fn start_time(pid: u32) -> std::io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The command name (field 2) is in parentheses and may hold spaces and ')'; fields after the
    // last ')' start at field 3.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(22 - 3))
        .and_then(|field| field.parse().ok())
        .map(Some)
        .ok_or_else(|| std::io::Error::other(format!("/proc/{pid}/stat has no start time")))
}

/// Why the holder of `record` is certainly dead, or `None` when that cannot be proven.
pub(super) fn known_dead(record: &LeaseRecord) -> Option<String> {
    let holder = record.process.as_ref()?;
    let me = this_process()?;
    let same_machine = holder.hostname == me.hostname
        && holder.boot_id == me.boot_id
        && holder.pid_namespace == me.pid_namespace
        && holder.uid == me.uid;
    if !same_machine {
        return None;
    }
    if holder.pid == me.pid {
        // This very process may hold other leases still at work (a library caller, tests).
        return (holder.start_time != me.start_time).then(|| {
            format!(
                "its pid {} is now this run's own, so that process has exited",
                holder.pid
            )
        });
    }
    match start_time(holder.pid) {
        Ok(None) => Some(format!(
            "process {} no longer exists on this machine",
            holder.pid
        )),
        Ok(Some(started)) if started != holder.start_time => Some(format!(
            "pid {} now belongs to another process (started at tick {started}, not {})",
            holder.pid, holder.start_time
        )),
        Ok(Some(_)) | Err(_) => None,
    }
}
