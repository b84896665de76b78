//! Shared pieces of the cross-tests (the test files live in `tests/tests/`): the backend
//! conformance suite and the deliberately broken backends it must reject, the recording store
//! wrapper, and the model side of the conformance harnesses (`refinement`), protocol-independent.

pub mod broken;
pub mod catalogue;
pub mod conformance;
pub mod coverage;
pub mod diagram;
#[cfg(feature = "etcd")]
pub mod etcd_server;
pub mod gate;
pub mod recording;
pub mod refinement;
pub mod replay;
pub mod scripted;
