//! Shared helpers of the cross-tests (the test files live in `tests/tests/`).
