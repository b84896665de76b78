//! A store named by a string, as operators name one on the command line (`--store SPEC`):
//!
//! - `fs:ROOT`: the local file system; the state lives in `ROOT/.lockstep` (`--root ROOT` is
//!   the short form);
//! - `mem`: in this process only (for `lockstep probe` and tests);
//! - `etcd:URL[,URL…][?prefix=P][&lease-ttl=SECS]`: an etcd cluster, any of its members' client
//!   URLs (`http://127.0.0.1:2379`), every key under prefix `P` (default `lockstep/`); the owner
//!   lease's TTL (default 10 s) is how long after a process dies the cluster proves it dead.
//!   Needs a build with the `etcd` feature.

use std::path::PathBuf;
use std::sync::Arc;

use super::{FsStore, MemStore, Store, StoreError};

/// The file store's directory under a data root.
pub const FS_STATE_DIR: &str = ".lockstep";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// A data root; the store is `ROOT/.lockstep`.
    Fs {
        root: PathBuf,
    },
    Mem,
    Etcd {
        endpoints: Vec<String>,
        prefix: Option<String>,
        /// The owner lease's TTL, in seconds.
        lease_ttl_s: Option<u64>,
    },
}

impl StoreSpec {
    /// Parses `fs:ROOT`, `mem` or `etcd:URL[,URL…][?prefix=P]`; the error says what is wrong.
    pub fn parse(spec: &str) -> Result<StoreSpec, String> {
        if spec == "mem" {
            return Ok(StoreSpec::Mem);
        }
        if let Some(root) = spec.strip_prefix("fs:") {
            if root.is_empty() {
                return Err("fs: needs a directory, e.g. fs:/var/lib/data".into());
            }
            return Ok(StoreSpec::Fs { root: root.into() });
        }
        if let Some(rest) = spec.strip_prefix("etcd:") {
            let (urls, query) = match rest.split_once('?') {
                Some((urls, query)) => (urls, Some(query)),
                None => (rest, None),
            };
            let (mut prefix, mut lease_ttl_s) = (None, None);
            for option in query.into_iter().flat_map(|q| q.split('&')) {
                match option.split_once('=') {
                    Some(("prefix", _)) if prefix.is_some() => {
                        return Err("etcd: prefix= is given twice".into())
                    }
                    Some(("lease-ttl", _)) if lease_ttl_s.is_some() => {
                        return Err("etcd: lease-ttl= is given twice".into())
                    }
                    Some(("prefix", p)) => {
                        if p.is_empty() || p.len() > 256 || p.contains('\0') {
                            return Err(format!("etcd: prefix={p:?} must be 1 to 256 bytes, no NUL"));
                        }
                        prefix = Some(p.to_owned());
                    }
                    Some(("lease-ttl", secs)) => match secs.parse::<u64>() {
                        Ok(secs) if (1..=3600).contains(&secs) => lease_ttl_s = Some(secs),
                        _ => return Err(format!("etcd: lease-ttl={secs} is not a whole number of seconds from 1 to 3600")),
                    },
                    _ => return Err(format!("etcd: unknown option {option:?} (the options are prefix=P and lease-ttl=SECS)")),
                }
            }
            let endpoints: Vec<String> = urls.split(',').map(str::to_owned).collect();
            for url in &endpoints {
                if url.starts_with("https://") {
                    return Err(format!("{url}: TLS is not supported by this build; use an http:// endpoint on a trusted network, or a local proxy"));
                }
                let not_a_url = || format!("{url:?} is not an etcd client URL (http://HOST:PORT)");
                let Some(authority) = url.strip_prefix("http://") else {
                    return Err(not_a_url());
                };
                let authority = authority.strip_suffix('/').unwrap_or(authority);
                // HOST:PORT, nothing after it (a path would be ignored by the client).
                let (host, port) = authority.rsplit_once(':').ok_or_else(not_a_url)?;
                if host.is_empty() || authority.contains('/') || port.parse::<u16>().is_err() {
                    return Err(not_a_url());
                }
            }
            return Ok(StoreSpec::Etcd {
                endpoints,
                prefix,
                lease_ttl_s,
            });
        }
        Err(format!(
            "{spec:?} is not a store: use fs:DIR, mem, or etcd:http://HOST:PORT[,URL…][?prefix=P]"
        ))
    }

    /// Opens the store. `create`: for `fs:`, create `ROOT/.lockstep` if it is missing (commands
    /// that only read pass `false`, and get `None` where there is no store yet).
    pub async fn open(&self, create: bool) -> Result<Option<Arc<dyn Store>>, StoreError> {
        match self {
            StoreSpec::Mem => Ok(Some(Arc::new(MemStore::new()))),
            StoreSpec::Fs { root } => {
                if !root.is_dir() {
                    return Err(StoreError::Unsupported(format!(
                        "{} is not a directory",
                        root.display()
                    )));
                }
                let path = root.join(FS_STATE_DIR);
                if !create && !path.exists() {
                    return Ok(None);
                }
                Ok(Some(Arc::new(FsStore::open(path)?)))
            }
            #[cfg(feature = "etcd")]
            StoreSpec::Etcd {
                endpoints,
                prefix,
                lease_ttl_s,
            } => {
                let mut options = super::EtcdOptions::default();
                if let Some(prefix) = prefix {
                    options.prefix = prefix.clone();
                }
                if let Some(secs) = lease_ttl_s {
                    options.lease_ttl = std::time::Duration::from_secs(*secs);
                }
                Ok(Some(Arc::new(super::EtcdStore::connect(endpoints, options).await?)))
            }
            #[cfg(not(feature = "etcd"))]
            StoreSpec::Etcd { .. } => Err(StoreError::Unsupported(
                "this lockstep was built without etcd support: build it with `--features etcd` (which needs protoc: Debian protobuf-compiler and libprotobuf-dev)".into(),
            )),
        }
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Fs { root } => write!(f, "fs:{}", root.display()),
            StoreSpec::Mem => f.write_str("mem"),
            StoreSpec::Etcd {
                endpoints,
                prefix,
                lease_ttl_s,
            } => {
                write!(f, "etcd:{}", endpoints.join(","))?;
                let mut options = Vec::new();
                if let Some(p) = prefix {
                    options.push(format!("prefix={p}"));
                }
                if let Some(secs) = lease_ttl_s {
                    options.push(format!("lease-ttl={secs}"));
                }
                if !options.is_empty() {
                    write!(f, "?{}", options.join("&"))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(StoreSpec::parse("mem"), Ok(StoreSpec::Mem));
        assert_eq!(
            StoreSpec::parse("fs:/data"),
            Ok(StoreSpec::Fs {
                root: "/data".into()
            })
        );
        assert_eq!(
            StoreSpec::parse("etcd:http://127.0.0.1:2379,http://127.0.0.1:22379?prefix=x/"),
            Ok(StoreSpec::Etcd {
                endpoints: vec![
                    "http://127.0.0.1:2379".into(),
                    "http://127.0.0.1:22379".into()
                ],
                prefix: Some("x/".into()),
                lease_ttl_s: None,
            })
        );
        assert_eq!(
            StoreSpec::parse("etcd:http://h:1?lease-ttl=2&prefix=p/").map(|s| s.to_string()),
            Ok("etcd:http://h:1?prefix=p/&lease-ttl=2".to_owned())
        );
        for (bad, why) in [
            ("fs:", "needs a directory"),
            ("s3:bucket", "is not a store"),
            ("etcd:127.0.0.1:2379", "not an etcd client URL"),
            ("etcd:https://h:1", "TLS"),
            ("etcd:http://h:1?pfx=a", "unknown option"),
            ("etcd:http://h:1?lease-ttl=0", "lease-ttl=0"),
            ("etcd:", "not an etcd client URL"),
            ("etcd:http://h", "not an etcd client URL"),
            ("etcd:http://h:x", "not an etcd client URL"),
            ("etcd:http://h:1/a/", "not an etcd client URL"),
            ("etcd:http://h:1?prefix=", "must be 1 to 256 bytes"),
            ("etcd:http://h:1?prefix=a/&prefix=b/", "twice"),
        ] {
            let error = StoreSpec::parse(bad).expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
