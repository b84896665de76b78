//! Real etcd members for the tests (feature `etcd`): started on 127.0.0.1 with free ports and
//! temporary data directories, killed and restarted at will, and stopped when dropped.
//!
//! `LOCKSTEP_ETCD_ENDPOINTS` (comma-separated URLs) names a running cluster to use instead of a
//! member of the test's own (CI starts one in `.ci/run`); tests that kill members always start
//! their own. The `etcd` binary is `LOCKSTEP_ETCD_BIN`, or `etcd` on the PATH (Debian's
//! `etcd-server`). Where neither a cluster nor a binary can be had, [`EtcdCluster::shared`]
//! fails, naming both, unless `LOCKSTEP_SKIP_ETCD=1` says the machine cannot run etcd (then the
//! caller prints `SKIPPED` and passes).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lockstep::store::{EtcdOptions, EtcdStore};

/// How long a member may take to elect a leader and answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One member: its process (while it runs), name, ports and data directory.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data: tempfile::TempDir,
    process: Option<Child>,
}

/// A cluster of members started by this test process.
pub struct EtcdCluster {
    members: Vec<Member>,
    /// Endpoints of a cluster someone else runs (`LOCKSTEP_ETCD_ENDPOINTS`); then `members` is
    /// empty.
    external: Vec<String>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

fn binary() -> String {
    std::env::var("LOCKSTEP_ETCD_BIN").unwrap_or_else(|_| "etcd".into())
}

/// Whether the tests may skip etcd on this machine (`LOCKSTEP_SKIP_ETCD=1`).
pub fn skip_allowed() -> bool {
    std::env::var("LOCKSTEP_SKIP_ETCD").is_ok_and(|v| v == "1")
}

impl EtcdCluster {
    /// The cluster for tests that only need one: `LOCKSTEP_ETCD_ENDPOINTS` if set, else a
    /// member of our own. `Err` explains what is missing.
    pub fn shared() -> Result<EtcdCluster, String> {
        if let Ok(endpoints) = std::env::var("LOCKSTEP_ETCD_ENDPOINTS") {
            let external: Vec<String> = endpoints
                .split(',')
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
            if !external.is_empty() {
                return Ok(EtcdCluster {
                    members: Vec::new(),
                    external,
                });
            }
        }
        EtcdCluster::start(1)
    }

    /// Starts `n` members of a new cluster and waits until it answers.
    pub fn start(n: usize) -> Result<EtcdCluster, String> {
        assert!((1..=5).contains(&n), "1 to 5 members");
        let mut members = Vec::new();
        for i in 0..n {
            members.push(Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data: tempfile::tempdir().map_err(|e| e.to_string())?,
                process: None,
            });
        }
        let mut cluster = EtcdCluster {
            members,
            external: Vec::new(),
        };
        for i in 0..n {
            cluster.launch(i, true)?;
        }
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn launch(&mut self, i: usize, new: bool) -> Result<(), String> {
        let initial = self.initial_cluster();
        let member = &mut self.members[i];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let child = Command::new(binary())
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(member.data.path())
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", if new { "new" } else { "existing" }])
            .args(["--initial-cluster-token", "lockstep-tests"])
            // Elections in a few hundred milliseconds on loopback.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start `{}` ({e}): install etcd (Debian `etcd-server`), set LOCKSTEP_ETCD_BIN, or name a running cluster in LOCKSTEP_ETCD_ENDPOINTS",
                    binary()
                )
            })?;
        member.process = Some(child);
        Ok(())
    }

    /// Waits until a write through every running member's endpoint succeeds.
    pub fn wait_ready(&self) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = runtime.block_on(async {
                for endpoint in self.running_endpoints() {
                    let store = EtcdStore::connect(
                        &[endpoint],
                        EtcdOptions {
                            request_timeout: Duration::from_secs(2),
                            connect_timeout: Duration::from_secs(1),
                            prefix: "lockstep-tests-ready/".into(),
                            ..EtcdOptions::default()
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    let key = lockstep::store::Key::new("ready").unwrap();
                    lockstep::store::Store::delete(&store, &key)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            });
            match ready {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() > deadline => {
                    return Err(format!("etcd did not become ready: {error}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Every member's client endpoint (running or not).
    pub fn endpoints(&self) -> Vec<String> {
        if !self.external.is_empty() {
            return self.external.clone();
        }
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    fn running_endpoints(&self) -> Vec<String> {
        if !self.external.is_empty() {
            return self.external.clone();
        }
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Member `i`'s endpoint.
    pub fn endpoint(&self, i: usize) -> String {
        self.endpoints()[i].clone()
    }

    pub fn members(&self) -> usize {
        self.members.len().max(self.external.len())
    }

    /// Kills member `i` (SIGKILL; its data directory stays).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts a killed member `i` on its data directory (`Err` if it is running).
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.members[i].process.is_some() {
            return Err(format!("member {i} is running"));
        }
        self.launch(i, false)
    }

    /// A store on this cluster under a namespace of its own (every call a fresh one), through
    /// `endpoints` (all members' by default).
    pub async fn store(&self, endpoints: Option<Vec<String>>) -> Result<EtcdStore, String> {
        EtcdStore::connect(
            &endpoints.unwrap_or_else(|| self.endpoints()),
            EtcdOptions {
                prefix: fresh_prefix(),
                ..EtcdOptions::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
    }
}

impl EtcdCluster {
    /// [`EtcdCluster::store`] from synchronous code (a proptest case): the connection is made on
    /// a runtime that lives as long as the process, so that its background tasks outlive the
    /// case's own runtime. Not to be called from inside a runtime.
    pub fn store_blocking(&self) -> EtcdStore {
        static CONNECTOR: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        let connector = CONNECTOR.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime")
        });
        let endpoints = self.endpoints();
        connector
            .block_on(async move {
                EtcdStore::connect(
                    &endpoints,
                    EtcdOptions {
                        prefix: fresh_prefix(),
                        ..EtcdOptions::default()
                    },
                )
                .await
            })
            .expect("a store on the test cluster")
    }
}

/// The shared cluster, or `None` (after printing `SKIPPED`) where the machine has none and
/// `LOCKSTEP_SKIP_ETCD=1` allows it; otherwise a failure naming what is missing.
pub fn shared_or_skip() -> Option<EtcdCluster> {
    match EtcdCluster::shared() {
        Ok(cluster) => Some(cluster),
        Err(error) if skip_allowed() => {
            eprintln!("SKIPPED (LOCKSTEP_SKIP_ETCD=1): {error}");
            None
        }
        Err(error) => panic!("{error} (LOCKSTEP_SKIP_ETCD=1 skips the etcd tests)"),
    }
}

impl EtcdCluster {
    /// The member that leads the cluster now (asked of every running member).
    pub fn leader(&self) -> Option<usize> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for (i, endpoint) in self.endpoints().iter().enumerate() {
                let options = etcd_client::ConnectOptions::new()
                    .with_timeout(Duration::from_secs(1))
                    .with_connect_timeout(Duration::from_secs(1));
                let Ok(mut client) = etcd_client::Client::connect([endpoint], Some(options)).await
                else {
                    continue;
                };
                let Ok(status) = client.status().await else {
                    continue;
                };
                if status.header().map(|h| h.member_id()) == Some(status.leader()) {
                    return Some(i);
                }
            }
            None
        })
    }

    /// The failure schedule of the multi-member harnesses, applied before round `round`: a
    /// follower killed before round 2 and restarted before round 4, the leader killed before
    /// round 5 and restarted before round 7. Returns what it did.
    pub fn chaos(&mut self, round: usize) -> Option<String> {
        match round {
            2 => {
                let leader = self.leader().expect("a leader");
                let victim = (leader + 1) % self.members();
                self.kill(victim);
                Some(format!(
                    "before round 2: killed member {victim} (a follower)"
                ))
            }
            5 => {
                let leader = self.leader().expect("a leader");
                self.kill(leader);
                Some(format!(
                    "before round 5: killed member {leader}, the leader"
                ))
            }
            4 | 7 => {
                let restarted: Vec<usize> = (0..self.members())
                    .filter(|i| self.restart(*i).is_ok())
                    .collect();
                self.wait_ready().expect("the cluster heals");
                Some(format!(
                    "before round {round}: restarted members {restarted:?}"
                ))
            }
            _ => None,
        }
    }
}

/// `n` members of a cluster of the test's own, or `None` (after printing `SKIPPED`) where the
/// machine has no etcd binary and `LOCKSTEP_SKIP_ETCD=1` allows it.
pub fn start_or_skip(n: usize) -> Option<EtcdCluster> {
    match EtcdCluster::start(n) {
        Ok(cluster) => Some(cluster),
        Err(error) if skip_allowed() => {
            eprintln!("SKIPPED (LOCKSTEP_SKIP_ETCD=1): {error}");
            None
        }
        Err(error) => panic!("{error} (LOCKSTEP_SKIP_ETCD=1 skips the etcd tests)"),
    }
}

/// A namespace no other test (or run) uses.
pub fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "lockstep-test/{}-{nanos}-{}/",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
