//! Memory extraction: turning an archive's messages into memories. In OpenViking this is an LLM
//! call, so the protocol assumes nothing of it: a replay may give a different result, it may
//! fail, and it may take long. The protocol writes every run's memories under that run's own
//! extraction id and lets one manifest create decide which run readers see (specs/redo.md §4).
//!
//! An LLM-backed extractor implements [`MemoryExtractor`] by calling the model and returning
//! its memories; an error (a timeout, a refusal) is returned as [`ExtractError`] and phase 2
//! stops there, to be replayed by recovery. It must not write to the store itself: phase 2 does
//! the writes, so that they are keyed and idempotent.

use super::entry::Message;

/// An extraction that failed; phase 2 stops, and recovery replays it later.
#[derive(Debug, thiserror::Error)]
#[error("memory extraction failed: {0}")]
pub struct ExtractError(pub String);

#[async_trait::async_trait]
pub trait MemoryExtractor: Send + Sync + 'static {
    /// The memories of `messages` (in the order they were added). May differ on every call.
    async fn extract(&self, messages: &[Message]) -> Result<Vec<String>, ExtractError>;
}

/// The built-in extractor for tests and the CLI: one memory per message, `"<id>: <text>"`
/// (the text cut to 200 characters). Deterministic, so that tests can predict the memories; the
/// protocol does not rely on that.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoExtractor;

#[async_trait::async_trait]
impl MemoryExtractor for EchoExtractor {
    async fn extract(&self, messages: &[Message]) -> Result<Vec<String>, ExtractError> {
        Ok(messages
            .iter()
            .map(|m| format!("{}: {}", m.id, m.text.chars().take(200).collect::<String>()))
            .collect())
    }
}
