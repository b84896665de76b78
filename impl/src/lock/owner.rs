//! Owner ids: unique per lock handle, and telling, on the same host, whether the process that
//! wrote them is still alive (so recovery can release a dead process's locks at once).
//!
//! Format: `<host>:<boot>:<pid>:<start>:<random>#<handle>`, where `boot` is the kernel's boot id
//! (a reboot ends every process), `start` is the process's start time in clock ticks (a reused
//! pid has another) and `handle` numbers the lock handles of the process. Owners are compared
//! as strings; no clock in an owner id is ever compared with another clock.

use std::sync::atomic::{AtomicU64, Ordering};

/// The process part of an owner id, computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessId {
    pub host: String,
    pub boot: String,
    pub pid: u32,
    pub start: u64,
    pub random: u64,
}

static HANDLES: AtomicU64 = AtomicU64::new(0);

impl ProcessId {
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId {
            host: hostname(),
            boot: boot_id(),
            pid,
            start: process_start(pid).unwrap_or(0),
            random: rand::random::<u64>() >> 16,
        }
    }

    /// The identity of another running process of this host (for test harnesses that give each
    /// simulated client a real process to die).
    pub fn of_process(pid: u32) -> Option<ProcessId> {
        let here = ProcessId::current();
        Some(ProcessId { pid, start: process_start(pid)?, random: rand::random::<u64>() >> 16, ..here })
    }

    /// A fresh owner id for one lock handle of this process.
    pub fn owner(&self) -> String {
        let handle = HANDLES.fetch_add(1, Ordering::Relaxed);
        format!("{}:{}:{}:{}:{:x}#{handle}", self.host, self.boot, self.pid, self.start, self.random)
    }

    /// Parses the process part of an owner id.
    pub fn parse(owner: &str) -> Option<ProcessId> {
        let process = owner.split('#').next()?;
        let mut fields = process.rsplitn(5, ':');
        let random = u64::from_str_radix(fields.next()?, 16).ok()?;
        let start = fields.next()?.parse().ok()?;
        let pid = fields.next()?.parse().ok()?;
        let boot = fields.next()?.to_owned();
        let host = fields.next()?.to_owned();
        Some(ProcessId { host, boot, pid, start, random })
    }
}

/// What can be known about an owner from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// Same host, and the process is running.
    Alive,
    /// Same host, and the process is gone (or the host rebooted since).
    Dead,
    /// Another host, or an id this build cannot parse: only expiry can tell.
    Unknown,
}

/// Whether the process behind `owner` is alive, as far as this host can tell.
pub fn liveness(owner: &str, here: &ProcessId) -> Liveness {
    let Some(them) = ProcessId::parse(owner) else { return Liveness::Unknown };
    if them.host != here.host {
        return Liveness::Unknown;
    }
    if them.boot != here.boot {
        return Liveness::Dead;
    }
    match process_start(them.pid) {
        Some(start) if start == them.start => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "unknown-host".into());
    name.trim().replace([':', '#', '/'], "_")
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().chars().filter(|c| c.is_ascii_hexdigit()).take(12).collect())
        .unwrap_or_else(|_| "noboot".into())
}

/// Field 22 of `/proc/<pid>/stat`: the process's start time since boot, in clock ticks.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_owner_ids_parse_and_are_alive() {
        let me = ProcessId::current();
        let owner = me.owner();
        assert_ne!(owner, me.owner(), "each handle gets its own id");
        assert_eq!(ProcessId::parse(&owner), Some(me.clone()));
        assert_eq!(liveness(&owner, &me), Liveness::Alive);
    }

    #[test]
    fn a_finished_process_is_dead_and_another_host_is_unknown() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = process_start(pid);
        child.wait().unwrap();
        let here = ProcessId::current();
        let gone = ProcessId { pid, start: start.unwrap_or(1), ..here.clone() };
        let owner = format!("{}:{}:{}:{}:{:x}#0", gone.host, gone.boot, gone.pid, gone.start, gone.random);
        assert_eq!(liveness(&owner, &here), Liveness::Dead);
        let elsewhere = owner.replacen(&here.host, "other-host", 1);
        assert_eq!(liveness(&elsewhere, &here), Liveness::Unknown);
        assert_eq!(liveness("garbage", &here), Liveness::Unknown);
    }
}
