//! What the protocols' JSON entries share: one line of JSON per entry, a format version `"v"`
//! that a reader checks before it trusts anything else, wall-clock stamps for people, and random
//! ids. Each protocol names its own entries and maps a refusal to its own error.

use serde::{de::DeserializeOwned, Serialize};

/// Encodes an entry as one line of JSON.
pub fn encode<T: Serialize>(entry: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(entry).expect("entries serialise");
    bytes.push(b'\n');
    bytes
}

/// Decodes an entry of format `version`, or says why it cannot be read: not JSON, no `"v"`,
/// another version, or not the entry expected. Nothing is guessed.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], version: u32) -> Result<T, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == version as u64 => {}
        Some(v) => {
            return Err(format!(
                "format version {v}; this build reads version {version} only"
            ))
        }
        None => return Err("no format version \"v\"".into()),
    }
    serde_json::from_value(value).map_err(|e| format!("unexpected entry: {e}"))
}

/// Milliseconds since the epoch by this machine's clock: for people, never for decisions.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh random id, 16 hex digits (commit ids, message ids, extraction ids, row nonces).
pub fn fresh_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
