//! Which protocol a model runs: its origin's, as published (one or more `seed` variants), or
//! lockstep's `fixed` protocol, optionally with one planted defect (a mutant) so that no
//! property passes vacuously. Every protocol declares its variants with [`variants!`]; the
//! names, parsing and listing are written once, here.

/// Declares a protocol's mutations and variants:
///
/// ```ignore
/// variants! {
///     protocol: "lock",
///     /// doc of the mutation enum
///     pub enum Mutation {
///         /// doc of one mutation
///         SkipRecheck = "skip-recheck": "no re-check after the entry is created",
///     }
///     pub enum Variant {
///         /// doc of one seed variant
///         Seed = "seed",
///     }
/// }
/// ```
///
/// This yields `Mutation` (with `ALL`, `name`, `describe`) and `Variant` with every seed variant
/// plus `Fixed(Option<Mutation>)` (with `name`, `parse`, `names`, `all`, `is_seed`, `has`).
#[macro_export]
macro_rules! variants {
    (
        protocol: $protocol:literal,
        $(#[$mutation_meta:meta])*
        pub enum $mutation:ident {
            $( $(#[$m_meta:meta])* $m:ident = $m_name:literal : $m_text:literal, )*
        }
        $(#[$variant_meta:meta])*
        pub enum $variant:ident {
            $( $(#[$s_meta:meta])* $s:ident = $s_name:literal, )*
        }
    ) => {
        $(#[$mutation_meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $mutation {
            $( $(#[$m_meta])* $m, )*
        }

        impl $mutation {
            pub const ALL: &'static [$mutation] = &[$($mutation::$m),*];

            pub fn name(self) -> &'static str {
                match self {
                    $($mutation::$m => $m_name,)*
                }
            }

            /// One line on the planted defect.
            pub fn describe(self) -> &'static str {
                match self {
                    $($mutation::$m => $m_text,)*
                }
            }
        }

        $(#[$variant_meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $variant {
            $( $(#[$s_meta])* $s, )*
            /// lockstep's protocol, optionally with one planted defect.
            Fixed(Option<$mutation>),
        }

        impl $variant {
            pub fn name(self) -> &'static str {
                match self {
                    $($variant::$s => $s_name,)*
                    $variant::Fixed(None) => "fixed",
                    $variant::Fixed(Some(mutation)) => mutation.name(),
                }
            }

            pub fn parse(name: &str) -> Result<$variant, String> {
                $variant::all().into_iter().find(|v| v.name() == name).ok_or_else(|| {
                    format!(
                        "{:?} is not a variant of {}; its variants are: {}",
                        name,
                        $protocol,
                        $variant::names().join(", ")
                    )
                })
            }

            /// Every variant: the seeds, `fixed`, then the mutants.
            pub fn all() -> Vec<$variant> {
                let mut all = vec![$($variant::$s,)* $variant::Fixed(None)];
                all.extend($mutation::ALL.iter().map(|m| $variant::Fixed(Some(*m))));
                all
            }

            pub fn names() -> Vec<&'static str> {
                $variant::all().into_iter().map($variant::name).collect()
            }

            pub fn is_seed(self) -> bool {
                !matches!(self, $variant::Fixed(_))
            }

            pub fn has(self, mutation: $mutation) -> bool {
                self == $variant::Fixed(Some(mutation))
            }
        }
    };
}
