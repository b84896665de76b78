//! What every protocol's test vectors share: a seeded generator, so a file is reproducible
//! from its seed alone.

/// A small deterministic generator (splitmix64), so the file is reproducible from its seed.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The model's next state for `action`, only if the model enables `action` in `state` (a
/// vector takes no step the model would not).
pub fn take<M: stateright::Model>(
    model: &M,
    state: &M::State,
    action: M::Action,
) -> Option<M::State>
where
    M::Action: PartialEq,
{
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions
        .contains(&action)
        .then(|| model.next_state(state, action))
        .flatten()
}
