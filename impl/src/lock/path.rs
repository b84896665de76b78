//! Lock paths (`/a/b`) and the store keys of their journals (specs/lock.md §3).

use std::fmt;

use crate::store::{Key, COMPONENT_BYTES_MAX, KEY_BYTES_MAX};

/// Digits of a journal index in a key: zero-padded so that keys sort in index order.
pub const INDEX_DIGITS: usize = 20;

/// A normalised absolute path in the lock namespace: `/`, `/a`, `/a/b`. Never contains `.` or
/// `..` components, so a lock can never name anything outside its root.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockPath(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid lock path {path:?}: {reason}")]
pub struct InvalidPath {
    pub path: String,
    pub reason: &'static str,
}

impl LockPath {
    pub fn root() -> LockPath {
        LockPath("/".into())
    }

    /// Parses an absolute path. A trailing `/` is dropped; `.`/`..`, empty components, NUL and
    /// components over 255 bytes are refused.
    pub fn new(path: &str) -> Result<LockPath, InvalidPath> {
        let refuse = |reason| {
            Err(InvalidPath {
                path: path.to_owned(),
                reason,
            })
        };
        if !path.starts_with('/') {
            return refuse("not absolute (must start with '/')");
        }
        if path.contains('\0') {
            return refuse("contains NUL");
        }
        let trimmed = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        if trimmed == "/" {
            return Ok(LockPath::root());
        }
        for component in trimmed[1..].split('/') {
            match component {
                "" => return refuse("empty component ('//')"),
                "." | ".." => {
                    return refuse("'.' or '..' component (paths may not escape the root)")
                }
                c if c.len() > COMPONENT_BYTES_MAX - 2 => {
                    return refuse("component longer than 253 bytes")
                }
                _ => {}
            }
        }
        if trimmed.len() > 700 {
            return refuse("longer than 700 bytes");
        }
        let path = LockPath(trimmed.to_owned());
        // Components starting with `~` are escaped in store keys (`~~`), so a path within 700
        // bytes can still make a key beyond the store's limit: refuse it here, not at the store.
        if path.journal_prefix().len() + INDEX_DIGITS > KEY_BYTES_MAX {
            return refuse("too long for a store key once its '~' components are escaped (keys are at most 1024 bytes)");
        }
        Ok(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    pub fn parent(&self) -> Option<LockPath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').expect("absolute");
        Some(if cut == 0 {
            LockPath::root()
        } else {
            LockPath(self.0[..cut].to_owned())
        })
    }

    /// Every proper ancestor, nearest first, `/` last.
    pub fn ancestors(&self) -> Vec<LockPath> {
        let mut out = Vec::new();
        let mut cursor = self.parent();
        while let Some(path) = cursor {
            cursor = path.parent();
            out.push(path);
        }
        out
    }

    /// Whether `self` is a proper ancestor of `other`.
    pub fn is_ancestor_of(&self, other: &LockPath) -> bool {
        if self == other {
            return false;
        }
        self.is_root() || other.0.starts_with(&format!("{}/", self.0))
    }

    /// The prefix of every key of this path's journal: `locks/a/b/~`.
    pub fn journal_prefix(&self) -> String {
        format!("{}~", self.subtree_prefix())
    }

    /// The prefix of every key of this path's journal and of every journal below it: `locks/a/b/`.
    pub fn subtree_prefix(&self) -> String {
        let mut prefix = String::from("locks/");
        for component in self.components() {
            // A component starting with `~` gets one more, so `~<digits>` is always an entry.
            if component.starts_with('~') {
                prefix.push('~');
            }
            prefix.push_str(component);
            prefix.push('/');
        }
        prefix
    }

    /// The key of entry `index` of this path's journal.
    pub fn entry_key(&self, index: u64) -> Key {
        Key::new(format!(
            "{}{index:0width$}",
            self.journal_prefix(),
            width = INDEX_DIGITS
        ))
        .expect("lock paths make valid keys")
    }

    /// Reads a lock journal key back: the path and the entry index. `None` for anything else.
    pub fn parse_entry_key(key: &str) -> Option<(LockPath, u64)> {
        let rest = key.strip_prefix("locks/")?;
        let (dirs, last) = match rest.rfind('/') {
            Some(cut) => (&rest[..cut], &rest[cut + 1..]),
            None => ("", rest),
        };
        let digits = last.strip_prefix('~')?;
        if digits.len() != INDEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut path = String::new();
        for component in dirs.split('/').filter(|c| !c.is_empty()) {
            path.push('/');
            path.push_str(
                component
                    .strip_prefix('~')
                    .filter(|_| component.starts_with("~~"))
                    .unwrap_or(component),
            );
        }
        let path = if path.is_empty() {
            LockPath::root()
        } else {
            LockPath::new(&path).ok()?
        };
        Some((path, digits.parse().ok()?))
    }
}

impl fmt::Display for LockPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_escape_or_are_malformed() {
        for bad in ["a", "", "/a/../b", "/..", "/a//b", "/a/./b", "/a\0"] {
            assert!(LockPath::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn keys_round_trip_including_tilde_components() {
        for path in ["/", "/a", "/a/b", "/~x", "/a/~~y/~0"] {
            let path = LockPath::new(path).unwrap();
            let key = path.entry_key(42);
            assert_eq!(
                LockPath::parse_entry_key(key.as_str()),
                Some((path.clone(), 42)),
                "{key}"
            );
        }
        assert_eq!(
            LockPath::new("/a/b/").unwrap().entry_key(3).as_str(),
            "locks/a/b/~00000000000000000003"
        );
        assert_eq!(
            LockPath::root().entry_key(0).as_str(),
            "locks/~00000000000000000000"
        );
        // A directory named like an entry is escaped and cannot be mistaken for one.
        let tricky = LockPath::new("/~00000000000000000001").unwrap();
        assert!(tricky.entry_key(0).as_str().starts_with("locks/~~0000"));
    }

    #[test]
    fn ancestry() {
        let path = LockPath::new("/a/b").unwrap();
        let names: Vec<_> = path.ancestors().iter().map(|p| p.to_string()).collect();
        assert_eq!(names, ["/a", "/"]);
        assert!(LockPath::root().is_ancestor_of(&path));
        assert!(!LockPath::new("/a/bc").unwrap().is_ancestor_of(&path));
        assert!(!LockPath::new("/a/b")
            .unwrap()
            .is_ancestor_of(&LockPath::new("/a/bc").unwrap()));
    }
}
