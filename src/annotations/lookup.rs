//! Bounded reading of one annotation value: the size limit every parser relies on.

use std::collections::BTreeMap;

use super::error::{AnnotationError, Shown};

/// Annotation values larger than this are refused before any parsing (Kubernetes allows 256 KiB for all
/// annotations together; no legitimate request of ours comes near 64 KiB).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// At most this many attachments per Pod (and Spiderpool entries), so hostile input cannot make admission do
/// unbounded work: each nadipam attachment is one or two IPLease creates inside the webhook's 10 s deadline,
/// and every address reserved by an admission that then times out stays Reserved until the reclaimer frees
/// it. 32 is far above what real Pods attach (a handful; SR-IOV CNFs a dozen or two).
pub const MAX_ATTACHMENTS: usize = 32;

/// The trimmed value of `key`; `None` when absent or blank (Kube-OVN treats an empty value as unset, and
/// templates often render one).
pub(crate) fn value<'a>(
    annotations: &'a BTreeMap<String, String>,
    key: &str,
) -> Result<Option<&'a str>, AnnotationError> {
    let Some(raw) = annotations.get(key) else {
        return Ok(None);
    };
    if raw.len() > MAX_VALUE_BYTES {
        return Err(AnnotationError::TooLarge {
            key: key.into(),
            value: Shown::new(raw),
            max: MAX_VALUE_BYTES,
        });
    }
    let trimmed = raw.trim();
    Ok((!trimmed.is_empty()).then_some(trimmed))
}
