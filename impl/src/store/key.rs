//! Store keys: `/`-separated components, validated once so that no backend can be tricked into
//! touching anything outside its root (`..`, absolute paths, NUL, overlong names).

use std::fmt;

/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 1024;
/// Longest component, in bytes (the usual file-name limit).
pub const COMPONENT_BYTES_MAX: usize = 255;

/// A validated store key such as `locks/a/b/~00000000000000000003`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

/// Why a key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid key {key:?}: {reason}")]
pub struct InvalidKey {
    pub key: String,
    pub reason: &'static str,
}

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Key, InvalidKey> {
        let key = key.into();
        let refuse = |reason| {
            Err(InvalidKey {
                key: key.clone(),
                reason,
            })
        };
        if key.is_empty() {
            return refuse("empty");
        }
        if key.len() > KEY_BYTES_MAX {
            return refuse("longer than 1024 bytes");
        }
        if key.starts_with('/') {
            return refuse("absolute (starts with '/')");
        }
        if key.contains('\0') {
            return refuse("contains NUL");
        }
        for component in key.split('/') {
            match component {
                "" => return refuse("empty component ('//' or trailing '/')"),
                "." | ".." => return refuse("'.' or '..' component"),
                c if c.len() > COMPONENT_BYTES_MAX => {
                    return refuse("component longer than 255 bytes")
                }
                _ => {}
            }
        }
        Ok(Key(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_keys_that_could_escape_a_root() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a/",
            "a/./b",
            "a\0b",
        ] {
            assert!(Key::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Key::new("x".repeat(256)).is_err());
        assert!(Key::new("a/".repeat(600)).is_err());
    }

    #[test]
    fn accepts_journal_keys() {
        let key = Key::new("locks/a/b/~00000000000000000003").unwrap();
        assert_eq!(key.components().count(), 4);
    }
}
