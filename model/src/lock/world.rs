//! The static world of the path-lock model: the path tree, the lock kinds and modes, the
//! per-client settings and the bounds. Nothing here changes while the checker runs.

use serde::Serialize;

/// Largest path tree the model state can hold (fixed-size arrays keep states allocation-free).
pub const PATHS_MAX: usize = 6;
/// Largest number of clients the model state can hold.
pub const CLIENTS_MAX: usize = 4;
/// A mode takes at most two locks (`mv` takes source and destination).
pub const LOCKS_PER_MODE_MAX: usize = 2;

/// The two lock types of OpenViking PR 431.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    /// POINT: one directory.
    Point,
    /// SUBTREE: a directory and everything below it.
    Subtree,
}

impl Kind {
    pub fn letter(self) -> char {
        match self {
            Kind::Point => 'P',
            Kind::Subtree => 'S',
        }
    }
}

/// The lock modes of `LockContext`: which locks one operation takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// `point`: POINT on one path (add_resource, session.commit).
    Point(u8),
    /// `subtree`: SUBTREE on one path (rm of a directory).
    Subtree(u8),
    /// `mv`: SUBTREE on the source and SUBTREE on the destination parent.
    Mv(u8, u8),
}

/// The directory tree the clients lock in. Index 0 is always `/`.
#[derive(Clone, Debug)]
pub struct Tree {
    pub names: Vec<String>,
    /// Ancestors of each path, nearest first, `/` last.
    pub ancestors: Vec<Vec<u8>>,
    /// Descendants of each path in depth-first order.
    pub descendants: Vec<Vec<u8>>,
}

impl Tree {
    /// Builds a tree from absolute paths such as `["/", "/a", "/a/b", "/c"]`. Every path's parent
    /// must be in the list, so that the ancestor walk has something to walk.
    pub fn parse(paths: &[String]) -> Result<Tree, String> {
        if paths.is_empty() || paths[0] != "/" {
            return Err("the tree must start with \"/\"".into());
        }
        if paths.len() > PATHS_MAX {
            return Err(format!(
                "the tree has {} paths; the model holds at most {PATHS_MAX}",
                paths.len()
            ));
        }
        let mut names: Vec<String> = Vec::new();
        for path in paths {
            let ok = path == "/"
                || (path.starts_with('/') && !path.ends_with('/') && !path.contains("//"));
            if !ok {
                return Err(format!("{path:?} is not a normalised absolute path"));
            }
            if names.contains(path) {
                return Err(format!("{path:?} appears twice"));
            }
            names.push(path.clone());
        }
        let parent_of = |path: &str| -> Option<String> {
            if path == "/" {
                return None;
            }
            let cut = path.rfind('/').expect("absolute path");
            Some(if cut == 0 {
                "/".to_string()
            } else {
                path[..cut].to_string()
            })
        };
        let index_of = |name: &str| names.iter().position(|n| n == name);
        let mut ancestors = Vec::new();
        for name in &names {
            let mut chain = Vec::new();
            let mut cursor = parent_of(name);
            while let Some(parent) = cursor {
                let Some(index) = index_of(&parent) else {
                    return Err(format!(
                        "the parent {parent:?} of {name:?} is not in the tree"
                    ));
                };
                chain.push(index as u8);
                cursor = parent_of(&parent);
            }
            ancestors.push(chain);
        }
        let mut descendants = vec![Vec::new(); names.len()];
        for (index, chain) in ancestors.iter().enumerate() {
            for &ancestor in chain {
                descendants[ancestor as usize].push(index as u8);
            }
        }
        // Depth-first order: a path sorts before its descendants when the names are sorted.
        for list in &mut descendants {
            list.sort_by(|a, b| names[*a as usize].cmp(&names[*b as usize]));
        }
        Ok(Tree {
            names,
            ancestors,
            descendants,
        })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn name(&self, path: u8) -> &str {
        &self.names[path as usize]
    }

    pub fn is_ancestor(&self, ancestor: u8, path: u8) -> bool {
        self.ancestors[path as usize].contains(&ancestor)
    }

    /// Whether a lock of `kind_a` on `a` and a lock of `kind_b` on `b` exclude each other: the same
    /// path, or a SUBTREE and any lock at or below it.
    pub fn conflicts(&self, a: u8, kind_a: Kind, b: u8, kind_b: Kind) -> bool {
        a == b
            || (kind_a == Kind::Subtree && self.is_ancestor(a, b))
            || (kind_b == Kind::Subtree && self.is_ancestor(b, a))
    }

    /// The paths whose data a guarded write under a lock touches.
    pub fn scope(&self, path: u8, kind: Kind) -> Vec<u8> {
        let mut scope = vec![path];
        if kind == Kind::Subtree {
            scope.extend(self.descendants[path as usize].iter().copied());
        }
        scope
    }
}

/// Which modes the clients may choose from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ModeSet {
    pub point: bool,
    pub subtree: bool,
    pub mv: bool,
}

impl ModeSet {
    pub const ALL: ModeSet = ModeSet {
        point: true,
        subtree: true,
        mv: true,
    };

    pub fn parse(text: &str) -> Result<ModeSet, String> {
        let mut set = ModeSet {
            point: false,
            subtree: false,
            mv: false,
        };
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "point" => set.point = true,
                "subtree" => set.subtree = true,
                "mv" => set.mv = true,
                other => {
                    return Err(format!(
                        "unknown mode {other:?} (expected point, subtree, mv)"
                    ))
                }
            }
        }
        if !(set.point || set.subtree || set.mv) {
            return Err("no mode given".into());
        }
        Ok(set)
    }

    /// Every mode over the tree: POINT and SUBTREE on each path; `mv` between two distinct
    /// paths below `/` where neither contains the other (both orders, to expose AB/BA waits).
    pub fn expand(self, tree: &Tree) -> Vec<Mode> {
        let count = tree.len() as u8;
        let mut modes = Vec::new();
        if self.point {
            modes.extend((0..count).map(Mode::Point));
        }
        if self.subtree {
            modes.extend((0..count).map(Mode::Subtree));
        }
        if self.mv {
            for source in 1..count {
                for target in 1..count {
                    let separate = source != target
                        && !tree.is_ancestor(source, target)
                        && !tree.is_ancestor(target, source);
                    if separate {
                        modes.push(Mode::Mv(source, target));
                    }
                }
            }
        }
        modes
    }
}

/// `lock_timeout`: what a client does when it meets a live conflicting lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timeout {
    /// `lock_timeout = 0`: fail at once.
    Zero,
    /// `lock_timeout > 0`: wait, and give up once time has run out (at the last tick).
    Bounded,
    /// `lock_timeout = None` (OpenViking #1151): wait as long as it takes.
    Forever,
}

impl Timeout {
    pub fn parse(text: &str) -> Result<Timeout, String> {
        match text {
            "zero" | "0" => Ok(Timeout::Zero),
            "bounded" => Ok(Timeout::Bounded),
            "forever" | "none" => Ok(Timeout::Forever),
            other => Err(format!(
                "unknown timeout {other:?} (expected zero, bounded, forever)"
            )),
        }
    }

    pub fn waits(self) -> bool {
        self != Timeout::Zero
    }
}

/// How one client behaves. Clients with equal settings are interchangeable (symmetry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ClientSpec {
    pub timeout: Timeout,
    /// Back-offs (withdraw and try again) allowed before the acquisition fails.
    pub retries: u8,
    /// Lease renewals (seed: refreshes) the client may do while it holds its locks.
    pub renewals: u8,
    /// How far the client's wall clock runs ahead of true time, in ticks.
    pub skew_ticks: u8,
    /// The client's mode, or `None` to let the checker try every mode.
    #[serde(skip)]
    pub mode: Option<Mode>,
}

impl Default for ClientSpec {
    fn default() -> Self {
        ClientSpec {
            timeout: Timeout::Forever,
            retries: 1,
            renewals: 1,
            skew_ticks: 0,
            mode: None,
        }
    }
}
