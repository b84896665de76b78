//! # Path locks (OpenViking PR 431), checked at the granularity of single storage operations
//!
//! Clients lock directories of a small tree in one of three modes (`point`, `subtree`, `mv`),
//! make one guarded write to a resource that records fencing tokens, and release. Everything that
//! can run concurrently does: other clients, time (discrete ticks, so leases expire), crashes,
//! stale-lock cleanup, operator force release and crash recovery.
//!
//! Two protocols share this world:
//! - [`seed`]: OpenViking's code at PR 431. A lock is a file `{dir}/.path.ovlock` holding the token
//!   `{owner}:{wall-clock ns}:{P|S}`, written by blind overwrite. Acquisition checks the own path,
//!   the ancestors (the walk stops below `/`) and, for SUBTREE, the descendants; writes; re-checks
//!   the *other* paths; verifies its own file. Stale locks (by wall clock) are deleted with a plain
//!   `rm`; release is a plain `rm`.
//! - [`fixed`]: lockstep's protocol (specs/lock.md). Each path has a journal whose entries are
//!   claimed with create-if-absent; a global ticket journal orders acquisitions and its index is
//!   the fencing token. No entry is ever overwritten or deleted by the protocol.
//!
//! The shortest seed bug (found by `lockstep bugs lock`) takes seven steps: two POINT acquirers
//! of `/a` both read "no lock", both write (the second overwrite wins), and each verifies its own
//! file in a moment when it still holds its own token; both hold the lock.
//!
//! Properties (each is broken by the seed or by one mutant, see `catalogue.rs`):
//! - `always`: mutual exclusion, fencing, live holder never fenced, ABA safety, no stuck lock,
//!   no deadlock, no wait cycle, no livelock, bounded retries;
//! - `sometimes`: each mode is acquired, a contested lock is won, an expired lock is taken over,
//!   a stale write is rejected.
//!
//! The world's faults: client crashes (the process dies, its stored entries stay), time (leases
//! expire while a holder is paused: a zombie), store faults (an operation fails, or a create
//! lands while its caller gets an error: an ambiguous outcome), the operator's force release,
//! the stale-lock cleaner and crash recovery.

pub mod catalogue;
pub mod fixed;
pub mod properties;
pub mod seed;
pub mod state;
pub mod trace;
pub mod variant;
pub mod vectors;
pub mod world;

use serde::Serialize;
use stateright::{Model, Property};

pub use state::{
    canonical, Client, Head, Held, Hold, LockState, Marks, Outcome, Phase, Slot, Step, Synced, GONE,
};
pub use variant::{Mutation, Variant};
pub use world::{
    ClientSpec, Kind, Mode, ModeSet, Timeout, Tree, CLIENTS_MAX, LOCKS_PER_MODE_MAX, PATHS_MAX,
};

/// The bounds and settings of one check. Every field is a CLI flag of `lockstep check lock`.
#[derive(Clone, Debug, Serialize)]
pub struct LockConfig {
    #[serde(skip)]
    pub variant: Variant,
    pub tree: Vec<String>,
    pub modes: ModeSet,
    pub clients: Vec<ClientSpec>,
    /// Crashes allowed in one behaviour (client crashes and, in the seed, torn writes).
    pub crashes: u8,
    /// Time runs from tick 0 to `ticks`.
    pub ticks: u8,
    /// A lock written at tick `t` is live until tick `t + lease_ticks`.
    pub lease_ticks: u8,
    /// Stale-lock cleanups (seed: read-then-rm; fixed: release of an expired entry).
    pub reaps: u8,
    /// Operator force releases of a lock that may still be held (fixed only).
    pub force_releases: u8,
    /// Store faults per behaviour: an operation that fails (a read error, a create that did not
    /// land) or a create that lands while its caller gets an error (an ambiguous outcome).
    pub faults: u8,
    /// The store refuses every removal of a stale lock by an acquirer (e.g. a lock file of
    /// another user in a directory the acquirer cannot write): a persistent fault.
    pub stale_unremovable: bool,
    /// Runs of the offline collector (`lockstep gc`, fixed only): it deletes every journal whose
    /// newest entry is a release or withdraw, and runs only while no client is in the middle of
    /// an operation (every process that uses the store holds its users lock).
    pub collections: u8,
    /// Lost leases (fixed only): the store proves a client dead while it still runs, as etcd
    /// does when an owner's lease expires during a stall or a partition, or when a stalled
    /// leader revokes every lease (etcd #15247). From then on its entries, old and new, are a
    /// dead owner's: anyone may pass and recover them, and the client is a zombie.
    #[serde(default)]
    pub lease_losses: u8,
    /// Power losses (fixed only): the machine crashes. Every running client dies and starts
    /// its operation again in the next boot as a new process; every entry written since its
    /// journal was last synced may be lost (specs/lock.md §12); the resource keeps what it
    /// accepted.
    #[serde(default)]
    pub power_losses: u8,
}

impl LockConfig {
    /// The default bounds: the largest that `lockstep check` finishes within its budget.
    pub fn new(variant: Variant) -> LockConfig {
        LockConfig {
            variant,
            tree: ["/", "/a", "/a/b", "/c"].map(String::from).to_vec(),
            modes: ModeSet::ALL,
            clients: vec![ClientSpec::default(); 2],
            crashes: 1,
            ticks: 1,
            lease_ticks: 1,
            reaps: 1,
            force_releases: 1,
            faults: 0,
            stale_unremovable: false,
            collections: 0,
            lease_losses: 0,
            power_losses: 0,
        }
    }

    pub fn with_clients(mut self, count: usize) -> LockConfig {
        let spec = self.clients.first().copied().unwrap_or_default();
        self.clients = vec![spec; count];
        self
    }

    pub fn into_model(self) -> Result<LockModel, String> {
        LockModel::new(self)
    }
}

/// One check of another path during acquisition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub path: u8,
    /// Any lock there conflicts (descendants, the own path); otherwise only SUBTREE (ancestors).
    pub any_kind: bool,
}

/// How one lock of a mode is acquired: its path and kind, the pre-check list (index 0 is the own
/// path) and the re-check list.
#[derive(Clone, Debug)]
pub struct LockPlan {
    pub path: u8,
    pub kind: Kind,
    pub pre: Vec<Check>,
    pub re: Vec<Check>,
}

#[derive(Clone, Debug)]
pub struct LockModel {
    pub config: LockConfig,
    pub tree: Tree,
    pub modes: Vec<Mode>,
    /// For each mode, its locks in acquisition order.
    pub plans: Vec<Vec<LockPlan>>,
    /// For each client, the index of the first client with equal settings.
    pub classes: Vec<u8>,
    /// The checker's time limit (see `check::Budget`).
    pub budget: crate::check::Budget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockAction {
    /// The client performs its next storage operation.
    Step(u8),
    /// The client's next storage operation fails: no effect, and the client gets an error.
    Fail(u8),
    /// The client's next create lands, but the client gets an error (an ambiguous outcome).
    Ambiguous(u8),
    /// A waiting client's deadline passes.
    GiveUp(u8),
    /// The client's process dies; its stored locks stay.
    Crash(u8),
    /// Seed: the storage crashes in the middle of a refresh overwrite, leaving a zero-byte file.
    TornRefresh(u8),
    /// Seed: refresh (read) lock `n`. Fixed: renew lock `n`.
    Renew(u8, u8),
    /// Fixed: a renewal of lock `n` lands, but the client gets an error and cannot read it back.
    RenewAmbiguous(u8, u8),
    /// Time advances one tick.
    Tick,
    /// Fixed: the cleaner releases an expired entry.
    ReapExpired(u8),
    /// Fixed: an operator force-releases the lock on a path.
    ForceRelease(u8),
    /// Fixed: recovery releases a lock whose owner the store proves dead (crashed, or its lease
    /// lost while it runs on).
    Recover(u8),
    /// Fixed: the store proves the client dead while it still runs (its lease is lost).
    LoseLease(u8),
    /// Fixed: the offline collector deletes every released journal.
    Collect,
    /// Fixed: the machine loses power. Every running client dies and starts over in the next
    /// boot; each journal keeps what the choice says for its path (two bits per path, see
    /// `Slot::after_power_loss`).
    PowerLoss(u16),
    /// Mutant `hint-only`: the wake-up hint pending for waiter `c` is lost (the watch limit
    /// reached, a dropped notification).
    LoseHint(u8),
}

/// The kind of storage operation a client's next step performs (where a fault can strike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    Read,
    /// Fixed: create-if-absent.
    Create,
    /// Seed: a blind overwrite.
    Write,
    /// Seed: `rm`.
    Remove,
}

/// `Client::restarts` saturates here (enough to exceed any retry budget the CLI accepts).
pub const RESTARTS_COUNTED_MAX: u8 = 15;

impl LockModel {
    pub fn new(config: LockConfig) -> Result<LockModel, String> {
        let tree = Tree::parse(&config.tree)?;
        if config.clients.is_empty() || config.clients.len() > CLIENTS_MAX {
            return Err(format!("clients must be between 1 and {CLIENTS_MAX}"));
        }
        if config.lease_ticks == 0 {
            return Err("lease_ticks must be at least 1".into());
        }
        let bound_max = 12;
        let retries_max = config.clients.iter().map(|c| c.retries).max().unwrap_or(0);
        for (name, value) in [
            ("ticks", config.ticks),
            ("crashes", config.crashes),
            ("reaps", config.reaps),
            ("faults", config.faults),
            ("force_releases", config.force_releases),
            ("lease_losses", config.lease_losses),
            ("power_losses", config.power_losses),
            ("lease_ticks", config.lease_ticks),
            ("retries", retries_max),
        ] {
            if value > bound_max {
                return Err(format!(
                    "{name} = {value} is beyond what the model's counters hold ({bound_max})"
                ));
            }
        }
        let mut modes = config.modes.expand(&tree);
        for spec in &config.clients {
            if let Some(mode) = spec.mode {
                if !modes.contains(&mode) {
                    modes.push(mode);
                }
            }
        }
        let variant = config.variant;
        let plans = modes
            .iter()
            .map(|mode| plan_mode(&tree, variant, *mode))
            .collect();
        let classes = (0..config.clients.len())
            .map(|i| {
                config
                    .clients
                    .iter()
                    .position(|c| *c == config.clients[i])
                    .unwrap() as u8
            })
            .collect();
        Ok(LockModel {
            config,
            tree,
            modes,
            plans,
            classes,
            budget: Default::default(),
        })
    }

    pub fn variant(&self) -> Variant {
        self.config.variant
    }

    pub fn spec(&self, client: usize) -> &ClientSpec {
        &self.config.clients[client]
    }

    pub fn plan(&self, state: &LockState, client: usize, lock: u8) -> &LockPlan {
        &self.plans[state.clients[client].mode as usize][lock as usize]
    }

    pub fn lock_count(&self, state: &LockState, client: usize) -> u8 {
        self.plans[state.clients[client].mode as usize].len() as u8
    }

    /// Whether the model may canonicalise states by permuting clients.
    pub fn symmetric(&self) -> bool {
        !self.variant().is_seed()
    }

    /// A lock written at `tick` is live (for its holder, in true time).
    pub fn live(&self, state: &LockState, tick: u8) -> bool {
        state.now < tick + self.config.lease_ticks
    }

    /// Whether `observer` (a client, or `None` for the cleaner) judges a lock of `owner` written at
    /// `tick` expired. The seed and the `wallclock-expiry` mutant compare the writer's wall-clock
    /// timestamp with the reader's wall clock; the fixed protocol measures elapsed time on the
    /// observer's own clock, which is never ahead of true time.
    ///
    /// In the fixed protocol an entry of an owner proven dead is expired at once: a crash ends a
    /// process, and the store proves its death (specs/lock.md §10: on a file system the kernel
    /// drops the owner's `flock`). The seed has no such proof.
    pub fn expired(&self, state: &LockState, observer: Option<usize>, owner: u8, tick: u8) -> bool {
        let variant = self.variant();
        if variant.is_seed() || variant.has(Mutation::WallclockExpiry) {
            let reader = state.now + observer.map_or(0, |c| self.spec(c).skew_ticks);
            let skew = (owner != GONE).then(|| self.spec(owner as usize).skew_ticks);
            reader >= tick + skew.unwrap_or(0) + self.config.lease_ticks
        } else {
            !self.live(state, tick) || state.owner_dead(owner)
        }
    }

    fn init_state(&self, modes: &[u8]) -> LockState {
        let mut clients = [Client {
            class: u8::MAX,
            ..Client::default()
        }; CLIENTS_MAX];
        for (index, spec) in self.config.clients.iter().enumerate() {
            clients[index] = Client {
                class: self.classes[index],
                mode: modes[index],
                phase: Phase::Acquiring {
                    lock: 0,
                    step: Step::CheckSame,
                },
                retries_left: spec.retries,
                renewals_left: spec.renewals,
                ..Client::default()
            };
        }
        LockState {
            now: 0,
            tickets: 0,
            crashes_left: self.config.crashes,
            reaps_left: if self.variant().is_seed() {
                0
            } else {
                self.config.reaps
            },
            forces_left: if self.variant().is_seed() {
                0
            } else {
                self.config.force_releases
            },
            slots: [Slot::default(); PATHS_MAX],
            accepted: [0; PATHS_MAX],
            clients,
            stale_write_accepted: false,
            live_write_rejected: false,
            disturbed: false,
            took_over: false,
            stale_write_rejected: false,
            faults_left: self.config.faults,
            collects_left: if self.variant().is_seed() {
                0
            } else {
                self.config.collections
            },
            lease_losses_left: if self.variant().is_seed() {
                0
            } else {
                self.config.lease_losses
            },
            power_losses_left: if self.variant().is_seed() {
                0
            } else {
                self.config.power_losses
            },
        }
    }

    /// The mode choices of each client: its fixed mode, or every mode.
    fn mode_choices(&self, client: usize) -> Vec<u8> {
        match self.spec(client).mode {
            Some(mode) => vec![self.modes.iter().position(|m| *m == mode).unwrap() as u8],
            None => (0..self.modes.len() as u8).collect(),
        }
    }

    pub fn clients(&self) -> std::ops::Range<usize> {
        0..self.config.clients.len()
    }

    /// Applies the guarded write of a holder: every lock's token goes to the paths it covers.
    /// Returns whether the resource accepted it.
    pub fn guarded_write(&self, state: &mut LockState, client: usize) -> bool {
        let fencing =
            !(self.variant().is_seed() || self.variant().has(Mutation::ResourceIgnoresTokens));
        let mut writes = Vec::new();
        for lock in 0..self.lock_count(state, client) {
            let plan = self.plan(state, client, lock);
            let held = state.clients[client].held[lock as usize]
                .expect("a holder holds every lock of its mode");
            for path in self.tree.scope(plan.path, plan.kind) {
                writes.push((path as usize, held.token));
            }
        }
        let older = writes
            .iter()
            .any(|(path, token)| *token < state.accepted[*path]);
        if fencing && older {
            state.stale_write_rejected = true;
            let current = state.clients[client]
                .held
                .iter()
                .flatten()
                .all(|h| !h.revoked && self.live(state, h.tick))
                && !state.clients[client].lease_lost;
            if current {
                state.live_write_rejected = true;
            }
            return false;
        }
        if older {
            state.stale_write_accepted = true;
        }
        for (path, token) in writes {
            state.accepted[path] = state.accepted[path].max(token);
        }
        true
    }

    /// Starts releasing: the client gives back what it holds, newest first, then stops.
    pub fn finish_with(&self, state: &mut LockState, client: usize, outcome: Outcome) {
        let me = &mut state.clients[client];
        me.kept = false;
        me.phase = if me.held.iter().any(Option::is_some) {
            Phase::Releasing { outcome }
        } else {
            Phase::Finished(outcome)
        };
    }

    /// After lock `lock` is granted: on to the next lock of the mode, or hold them all.
    pub fn granted(&self, state: &mut LockState, client: usize, lock: u8, held: Held) {
        let count = self.lock_count(state, client);
        let me = &mut state.clients[client];
        me.held[lock as usize] = Some(held);
        me.phase = if lock + 1 < count {
            Phase::Acquiring {
                lock: lock + 1,
                step: Step::CheckSame,
            }
        } else {
            Phase::Holding(Hold::Ready)
        };
    }

    /// Whether any action can change the state (used by the deadlock property).
    pub fn has_successor(&self, state: &LockState) -> bool {
        let mut actions = Vec::new();
        self.actions(state, &mut actions);
        actions
            .into_iter()
            .any(|action| self.next_state(state, action).is_some())
    }

    /// The locks a client believes it holds, with their path and kind, while they are live and
    /// not revoked behind its back.
    pub fn live_locks(&self, state: &LockState, client: usize) -> Vec<(u8, Kind, Held)> {
        let me = &state.clients[client];
        if me.is_dead_to_store() || me.phase == Phase::Idle {
            return Vec::new();
        }
        let plans = &self.plans[me.mode as usize];
        me.held
            .iter()
            .zip(plans)
            .filter_map(|(held, plan)| held.map(|h| (plan.path, plan.kind, h)))
            .filter(|(_, _, held)| !held.revoked && self.live(state, held.tick))
            .collect()
    }
}

/// The locks of a mode in acquisition order, with the paths each one checks.
fn plan_mode(tree: &Tree, variant: Variant, mode: Mode) -> Vec<LockPlan> {
    let mut locks = match mode {
        Mode::Point(path) => vec![(path, Kind::Point)],
        Mode::Subtree(path) => vec![(path, Kind::Subtree)],
        Mode::Mv(source, target) => vec![(source, Kind::Subtree), (target, Kind::Subtree)],
    };
    // The fixed protocol takes the locks of one operation in path order, so two operations
    // never wait for each other in a cycle. The seed (and a mutant) keep the caller's order.
    if !variant.is_seed() && !variant.has(Mutation::UnsortedLocks) {
        locks.sort_by(|a, b| tree.name(a.0).cmp(tree.name(b.0)));
    }
    locks
        .into_iter()
        .map(|(path, kind)| plan_lock(tree, variant, path, kind))
        .collect()
}

fn plan_lock(tree: &Tree, variant: Variant, path: u8, kind: Kind) -> LockPlan {
    let same = Check {
        path,
        any_kind: true,
    };
    let all_ancestors = &tree.ancestors[path as usize];
    // Seed: `while parent != "/"`: the walk stops below the root, so `/` is never checked.
    let ancestors: Vec<Check> = all_ancestors
        .iter()
        .filter(|a| !(variant.is_seed() && **a == 0))
        .map(|a| Check {
            path: *a,
            any_kind: false,
        })
        .collect();
    let descendants: Vec<Check> = if kind == Kind::Subtree {
        tree.descendants[path as usize]
            .iter()
            .map(|d| Check {
                path: *d,
                any_kind: true,
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut pre = vec![same];
    pre.extend(ancestors.iter().copied());
    pre.extend(descendants.iter().copied());
    let re = if variant.is_seed() {
        // Seed re-check: POINT re-reads ancestors; SUBTREE descendants, then ancestors.
        let mut re = descendants.clone();
        re.extend(ancestors.iter().copied());
        re
    } else {
        let mut re = ancestors.clone();
        re.extend(descendants.iter().copied());
        // `locks/<p>/` lists p's own journal too; `~` sorts after every name, so it comes last.
        if kind == Kind::Subtree && variant.has(Mutation::DescendantScanIncludesSelf) {
            re.push(same);
        }
        if kind == Kind::Point && variant.has(Mutation::PointVerifyByTicket) {
            re.push(same);
        }
        re
    };
    LockPlan {
        path,
        kind,
        pre,
        re,
    }
}

impl Model for LockModel {
    type State = LockState;
    type Action = LockAction;

    fn init_states(&self) -> Vec<LockState> {
        // One initial state per combination of the clients' mode choices.
        let mut combos: Vec<Vec<u8>> = vec![Vec::new()];
        for client in self.clients() {
            let choices = self.mode_choices(client);
            combos = combos
                .into_iter()
                .flat_map(|prefix| {
                    choices.iter().map(move |m| {
                        let mut next = prefix.clone();
                        next.push(*m);
                        next
                    })
                })
                .collect();
        }
        let mut states: Vec<LockState> =
            combos.iter().map(|modes| self.init_state(modes)).collect();
        if self.symmetric() {
            // Drop initial states that are permutations of one already listed.
            let mut seen = std::collections::HashSet::new();
            states.retain(|s| seen.insert(canonical(s)));
        }
        states
    }

    fn actions(&self, state: &LockState, actions: &mut Vec<LockAction>) {
        for client in self.clients() {
            let me = &state.clients[client];
            if me.is_finished() || me.phase == Phase::Idle {
                continue;
            }
            let c = client as u8;
            actions.push(LockAction::Step(c));
            if state.faults_left > 0 {
                match self.next_op(state, client) {
                    Some(StoreOp::Create | StoreOp::Write) => {
                        actions.push(LockAction::Fail(c));
                        // An ambiguous release or refresh is just a release or refresh.
                        if !matches!(
                            me.phase,
                            Phase::Releasing { .. } | Phase::BackingOff | Phase::Holding(_)
                        ) {
                            actions.push(LockAction::Ambiguous(c));
                        }
                    }
                    Some(StoreOp::Read | StoreOp::Remove) => actions.push(LockAction::Fail(c)),
                    None => {}
                }
            }
            if matches!(
                me.phase,
                Phase::Acquiring {
                    step: Step::Wait { .. },
                    ..
                }
            ) && state.now == self.config.ticks
                && self.spec(client).timeout == Timeout::Bounded
            {
                actions.push(LockAction::GiveUp(c));
            }
            if state.crashes_left > 0 {
                actions.push(LockAction::Crash(c));
                if matches!(me.phase, Phase::Holding(Hold::Refreshing(_))) {
                    actions.push(LockAction::TornRefresh(c));
                }
            }
            // A holder renews its locks; so does an operation still taking its later locks (its
            // earlier ones must not run out while it waits). The seed refreshes held handles only.
            let renewing = me.phase == Phase::Holding(Hold::Ready)
                || (!self.variant().is_seed() && matches!(me.phase, Phase::Acquiring { .. }));
            if renewing && me.renewals_left > 0 {
                for lock in
                    (0..self.lock_count(state, client)).filter(|l| me.held[*l as usize].is_some())
                {
                    actions.push(LockAction::Renew(c, lock));
                    if state.faults_left > 0 && !self.variant().is_seed() {
                        actions.push(LockAction::RenewAmbiguous(c, lock));
                    }
                }
            }
        }
        if state.now < self.config.ticks {
            actions.push(LockAction::Tick);
        }
        match self.variant() {
            Variant::Seed => seed::cleaner_actions(self, state, actions),
            Variant::Fixed(_) => fixed::cleaner_actions(self, state, actions),
        }
    }

    fn next_state(&self, last: &LockState, action: LockAction) -> Option<LockState> {
        let mut state = last.clone();
        let moved = match action {
            LockAction::Tick => {
                state.now += 1;
                true
            }
            LockAction::Crash(c) => {
                let me = &mut state.clients[c as usize];
                // Only the stored locks survive a crash; the local state is gone.
                *me = Client {
                    class: me.class,
                    phase: Phase::Crashed,
                    ..Client::default()
                };
                state.crashes_left -= 1;
                state.disturbed = true;
                true
            }
            LockAction::GiveUp(c) => self.give_up(&mut state, c as usize),
            _ => match self.variant() {
                Variant::Seed => seed::apply(self, &mut state, action),
                Variant::Fixed(_) => fixed::apply(self, &mut state, action),
            },
        };
        moved.then_some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all(self)
    }

    fn within_boundary(&self, _state: &LockState) -> bool {
        self.budget.allows()
    }

    fn format_action(&self, action: &LockAction) -> String {
        trace::action_name(self, *action)
    }

    fn format_step(&self, last: &LockState, action: LockAction) -> Option<String> {
        let next = self.next_state(last, action)?;
        let (actor, text) = trace::describe(self, last, action, &next);
        Some(format!("{actor}: {text}"))
    }

    /// The Explorer's view of a state: the state as a table, then the path to it.
    fn as_svg(&self, path: stateright::Path<LockState, LockAction>) -> Option<String> {
        let path = path.into_vec();
        let state = &path.last()?.0;
        crate::diagram::explorer_svg(
            &crate::check::Protocol::trace(self, &path),
            "lock",
            &trace::state_rows(self, state),
        )
    }
}

impl LockModel {
    /// The storage operation the client's next step performs, if any.
    pub fn next_op(&self, state: &LockState, client: usize) -> Option<StoreOp> {
        match self.variant() {
            Variant::Seed => seed::next_op(state, client),
            Variant::Fixed(_) => fixed::next_op(state, client),
        }
    }

    fn give_up(&self, state: &mut LockState, client: usize) -> bool {
        let Phase::Acquiring {
            lock,
            step: Step::Wait { recheck, .. },
        } = state.clients[client].phase
        else {
            return false;
        };
        // A waiter whose wait is already over is not "waiting" any more; it must move on.
        if self
            .next_state(state, LockAction::Step(client as u8))
            .is_some()
        {
            return false;
        }
        fixed::end_wait(state, client);
        if recheck && !self.variant().is_seed() {
            state.clients[client].phase = Phase::Acquiring {
                lock,
                step: Step::Withdraw {
                    retry: false,
                    outcome: Outcome::TimedOut,
                },
            };
        } else {
            self.finish_with(state, client, Outcome::TimedOut);
        }
        true
    }
}

impl crate::check::Protocol for LockModel {
    fn protocol(&self) -> &'static str {
        "lock"
    }

    fn variant_name(&self) -> &'static str {
        self.variant().name()
    }

    fn bounds(&self) -> serde_json::Value {
        let mut bounds = serde_json::to_value(&self.config).expect("config serialises");
        bounds["modes_per_client"] = self.modes.len().into();
        bounds
    }

    fn with_budget(&self, budget: crate::check::Budget) -> Self {
        LockModel {
            budget,
            ..self.clone()
        }
    }

    fn symmetry(&self) -> Option<fn(&LockState) -> LockState> {
        self.symmetric()
            .then_some(canonical as fn(&LockState) -> LockState)
    }

    fn trace(&self, path: &[(LockState, Option<LockAction>)]) -> crate::trace::Trace {
        let setup = path
            .first()
            .map(|(init, _)| trace::setup(self, init))
            .unwrap_or_default();
        crate::trace::Trace::from_path(
            setup,
            path,
            |last, action, next| trace::describe(self, last, action, next),
            |action| trace::action_name(self, action),
            |last, action, next| trace::step_kind(self, last, action, next),
        )
    }

    fn conclusion(
        &self,
        property: &str,
        path: &[(LockState, Option<LockAction>)],
    ) -> Option<String> {
        trace::conclusion(self, property, path)
    }
}

/// The named worlds of the path-lock model (`lockstep check lock --preset NAME`). The default
/// ones together finish within `lockstep check`'s budget (under 2 minutes on 2 cores, two worlds
/// at a time); the opt-in ones are larger, and claimed only where a run completed (README).
pub fn presets() -> Vec<crate::preset::Preset<LockConfig>> {
    use crate::preset::Preset;
    let base = LockConfig::new(Variant::Fixed(None));
    let tree = |paths: &[&str]| paths.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let point_subtree = ModeSet {
        point: true,
        subtree: true,
        mv: false,
    };
    let with_timeout = |config: LockConfig, timeout: Timeout| {
        let clients = config
            .clients
            .iter()
            .map(|c| ClientSpec { timeout, ..*c })
            .collect();
        LockConfig { clients, ..config }
    };
    let three = LockConfig {
        tree: tree(&["/", "/a", "/a/b"]),
        modes: point_subtree,
        reaps: 0,
        force_releases: 0,
        ..base.clone().with_clients(3)
    };
    vec![
        Preset {
            name: "two-clients",
            about: "2 clients, every mode on a 4-path tree, a crash, time, renewal and cleanup",
            default: true,
            config: LockConfig { force_releases: 0, ..base.clone() },
        },
        Preset {
            name: "three-clients",
            about: "3 clients, POINT and SUBTREE on a 3-path tree, time (expiry, takeover), no crash",
            default: true,
            config: LockConfig { crashes: 0, ..three.clone() }.with_renewals(0),
        },
        Preset {
            name: "three-clients-crash",
            about: "3 clients, POINT and SUBTREE on a 3-path tree, a crash, a run of the offline collector, no time",
            default: true,
            config: LockConfig { ticks: 0, collections: 1, ..three.clone() }.with_renewals(0),
        },
        Preset {
            name: "faults",
            about: "2 clients, POINT and SUBTREE on a 3-path tree, one store fault (failed or ambiguous), a crash, time, renewal, cleanup, force release",
            default: true,
            config: LockConfig { tree: tree(&["/", "/a", "/c"]), modes: point_subtree, faults: 1, ..base.clone() },
        },
        Preset {
            name: "bounded",
            about: "2 clients with a positive lock_timeout, every mode on a 3-path tree, a crash, time, renewal, cleanup, force release",
            default: true,
            config: with_timeout(LockConfig { tree: tree(&["/", "/a", "/c"]), ..base.clone() }, Timeout::Bounded),
        },
        Preset {
            name: "lease-loss",
            about: "2 clients, POINT and SUBTREE on a 3-path tree, a crash, time, renewal, cleanup, and a lease lost while its client runs on (etcd's owner leases)",
            default: true,
            config: LockConfig { tree: tree(&["/", "/a", "/c"]), modes: point_subtree, force_releases: 0, lease_losses: 1, ..base.clone() },
        },
        Preset {
            name: "power-loss",
            about: "2 clients, POINT and SUBTREE on a 3-path tree, a power loss (every running client restarts; unsynced entries may be lost), time, renewal",
            default: true,
            config: LockConfig { tree: tree(&["/", "/a", "/c"]), modes: point_subtree, force_releases: 0, crashes: 0, reaps: 0, power_losses: 1, ..base.clone() },
        },
        Preset {
            name: "power-loss-wide",
            about: "opt-in: power-loss with a client crash and a cleaner run as well",
            default: false,
            config: LockConfig { tree: tree(&["/", "/a", "/c"]), modes: point_subtree, force_releases: 0, power_losses: 1, ..base.clone() },
        },
        Preset {
            name: "two-clients-wide",
            about: "opt-in: two-clients with a force release as well",
            default: false,
            config: base.clone(),
        },
        Preset {
            name: "three-clients-wide",
            about: "opt-in: 3 clients, POINT and SUBTREE on a 3-path tree, a crash, time, renewals and a cleanup",
            default: false,
            config: LockConfig { reaps: 1, ..three },
        },
        Preset {
            name: "faults-wide",
            about: "opt-in: 2 clients, every mode on a 3-path tree, one store fault, and everything of faults",
            default: false,
            config: LockConfig { tree: tree(&["/", "/a", "/c"]), faults: 1, ..base },
        },
    ]
}

impl LockConfig {
    /// These bounds with `renewals` lease renewals per client.
    pub fn with_renewals(mut self, renewals: u8) -> LockConfig {
        for client in &mut self.clients {
            client.renewals = renewals;
        }
        self
    }
}
