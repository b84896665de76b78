//! Faster state fingerprints. stateright fingerprints every state with SipHash over its `Hash`
//! impl, and a derived `Hash` of a state made of many small fields makes one hasher call per
//! field: profiling the path-lock checker showed hashing at about a third of its time. A state's
//! `Hash` can instead feed its derived field hashes into a [`Packer`] (plain byte appends) and
//! hash the packed bytes once.
//!
//! The packing is injective for plain data whose discriminants and lengths are below 256, which
//! is what the models' states are (checked in debug builds), so equal packings mean equal states.

use std::hash::Hasher;

/// Collects the bytes a derived `Hash` writes. Not a hash function: only `bytes` is read.
pub struct Packer {
    buffer: [u8; Packer::CAPACITY],
    len: usize,
}

impl Packer {
    const CAPACITY: usize = 384;

    pub fn new() -> Packer {
        Packer {
            buffer: [0; Packer::CAPACITY],
            len: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buffer[..self.len]
    }

    fn push(&mut self, byte: u8) {
        assert!(
            self.len < Packer::CAPACITY,
            "a state packs into at most {} bytes",
            Packer::CAPACITY
        );
        self.buffer[self.len] = byte;
        self.len += 1;
    }

    fn small(&mut self, value: u64) {
        debug_assert!(
            value < 256,
            "a discriminant or length of {value} does not pack into one byte"
        );
        self.push(value as u8);
    }
}

impl Default for Packer {
    fn default() -> Self {
        Packer::new()
    }
}

impl Hasher for Packer {
    fn finish(&self) -> u64 {
        unreachable!("a Packer only collects bytes")
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.push(*byte);
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.push(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.small(value as u64);
    }

    fn write_isize(&mut self, value: isize) {
        self.small(value as u64);
    }
}

/// Implements `Hash` for a state type by packing its fields' derived hashes and hashing the
/// bytes once: `packed_hash!(LockState { now, tickets, … })`, naming every field.
#[macro_export]
macro_rules! packed_hash {
    ($type:ty { $($field:ident),* $(,)? }) => {
        impl std::hash::Hash for $type {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                let mut packer = $crate::packed::Packer::new();
                // Destructure so that a field added to the type and not named here fails to compile.
                let Self { $($field),* } = self;
                $(std::hash::Hash::hash($field, &mut packer);)*
                state.write(packer.bytes());
            }
        }
    };
}
