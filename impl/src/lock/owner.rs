//! Owner ids: unique per lock handle.
//!
//! Format: `<host>:<boot>:<pid>:<start>:<random>#<handle>`, where `boot` is the kernel's boot id,
//! `start` the process's start time in clock ticks, `random` a number drawn when the process (or
//! manager) took its identity, and `handle` numbers its lock handles. Host, boot, pid and start
//! are **hints for people** (`lockstep locks` shows them); no decision reads them. Whether an
//! owner is dead is proven by the store (`Store::owner_liveness`: on a file system, the kernel's
//! `flock` on the owner's registration file), or it is unknown and only expiry frees its locks.
//! Owners are compared as strings; no clock in an owner id is ever compared with another clock.

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
        Some(ProcessId {
            pid,
            start: process_start(pid)?,
            random: rand::random::<u64>() >> 16,
            ..here
        })
    }

    /// A fresh owner id for one lock handle of this process.
    pub fn owner(&self) -> String {
        let handle = HANDLES.fetch_add(1, Ordering::Relaxed);
        format!("{}#{handle}", self.key())
    }

    /// The process part of its owner ids: what the store registers.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}:{:x}",
            self.host, self.boot, self.pid, self.start, self.random
        )
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
        Some(ProcessId {
            host,
            boot,
            pid,
            start,
            random,
        })
    }
}

pub use crate::store::Liveness;

/// The process part of an owner id (before `#handle`): what a store registers, and proves alive
/// or dead.
pub fn process_part(owner: &str) -> &str {
    owner.split('#').next().unwrap_or(owner)
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "unknown-host".into());
    name.trim().replace([':', '#', '/'], "_")
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| {
            id.trim()
                .chars()
                .filter(|c| c.is_ascii_hexdigit())
                .take(12)
                .collect()
        })
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
    fn owner_ids_parse_and_name_their_process() {
        let me = ProcessId::current();
        let owner = me.owner();
        assert_ne!(owner, me.owner(), "each handle gets its own id");
        assert_eq!(ProcessId::parse(&owner), Some(me.clone()));
        assert_eq!(process_part(&owner), me.key());
        assert_ne!(
            ProcessId::current().key(),
            me.key(),
            "each identity is its own owner"
        );
    }
}
