//! HTTP codes of validation refusals, shared by every validator's error type.

/// The object itself is wrong, …
pub(crate) const INVALID: u16 = 422;
/// … it conflicts with objects that use it, …
pub(crate) const CONFLICT: u16 = 409;
/// … or it names an object that does not exist.
pub(crate) const NOT_FOUND: u16 = 404;
