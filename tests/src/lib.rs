//! Shared pieces of the cross-tests (the test files live in `tests/tests/`): the backend
//! conformance suite and the deliberately broken backends it must reject.

pub mod broken;
pub mod conformance;
pub mod recording;
