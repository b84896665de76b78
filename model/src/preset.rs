//! Named worlds: the bounds a protocol is checked under. `lockstep check` runs every protocol's
//! default worlds (which together finish within its 2-minute budget on 2 cores); larger worlds
//! are opt-in by name (`--preset`), and are claimed only where a run completed.

/// One named world of a protocol.
#[derive(Clone, Debug)]
pub struct Preset<C> {
    pub name: &'static str,
    /// What the world is for, in one line.
    pub about: &'static str,
    /// Part of `lockstep check` with no arguments.
    pub default: bool,
    pub config: C,
}

/// The preset `name` of `presets`, or an error listing the names.
pub fn find<C: Clone>(
    presets: &[Preset<C>],
    protocol: &str,
    name: &str,
) -> Result<Preset<C>, String> {
    presets
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = presets.iter().map(|p| p.name).collect();
            format!(
                "{name:?} is not a preset of {protocol}; its presets are: {}",
                names.join(", ")
            )
        })
}
