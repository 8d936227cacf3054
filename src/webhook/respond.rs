//! Turning outcomes into AdmissionResponses: Pod denials, validators' refusals and internal errors, each
//! counted in metrics, all through [`refuse`].

use std::fmt;

use kube::core::admission::AdmissionResponse;

use crate::context::Context;
use crate::webhook::denial::Denial;

/// A validator's reason to refuse: the message is the Display text; the reason labels the denial metric.
pub(crate) trait Refusal: fmt::Display {
    fn reason(&self) -> &'static str;
    fn code(&self) -> u16;
}

/// Allowed (with any warnings) or refused with the refusal's code and message.
pub(crate) fn answer<R: Refusal>(
    ctx: &Context,
    resp: AdmissionResponse,
    outcome: Result<Vec<String>, R>,
) -> AdmissionResponse {
    match outcome {
        Ok(warnings) if warnings.is_empty() => resp,
        Ok(warnings) => {
            let mut r = resp;
            r.warnings = Some(warnings);
            r
        }
        Err(refusal) => {
            tracing::info!(reason = refusal.reason(), "denied: {refusal}");
            refuse(
                ctx,
                resp,
                refusal.reason(),
                refusal.code(),
                refusal.to_string(),
            )
        }
    }
}

/// The warning for a peer's field (peer_fields.rs) that a user set on `kind` `name`: stored as written, not acted
/// on, so the manifest applies unchanged and the user learns it does nothing here.
pub(crate) fn ignored_field(kind: &str, name: &str, field: &str) -> String {
    format!(
        "{kind} {name}: spec.{field} has no effect in nadipam (secondary-network IPAM): kept, ignored"
    )
}

/// `allowed: false` with the denial's message (prefixed with the object) and HTTP code.
pub(crate) fn deny(
    ctx: &Context,
    resp: AdmissionResponse,
    prefix: &str,
    denial: &Denial,
) -> AdmissionResponse {
    refuse(
        ctx,
        resp,
        denial.reason(),
        denial.code(),
        format!("{prefix}{denial}"),
    )
}

/// The Kubernetes StatusReason for an HTTP code, so clients print `Error from server (Conflict): ...`.
fn status_reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        _ => "InternalError",
    }
}

/// A refusal with a plain message (validation webhooks).
pub(crate) fn refuse(
    ctx: &Context,
    resp: AdmissionResponse,
    reason: &str,
    code: u16,
    msg: String,
) -> AdmissionResponse {
    ctx.metrics.count_denial(reason);
    let mut r = resp.deny(msg);
    r.result.code = code;
    r.result.reason = status_reason(code).to_string();
    r
}

/// Something went wrong on our side; refuse (failurePolicy semantics) with the cause.
pub(crate) fn error(ctx: &Context, resp: AdmissionResponse, msg: &str) -> AdmissionResponse {
    refuse(
        ctx,
        resp,
        "internal_error",
        500,
        format!("nadipam internal error: {msg}"),
    )
}
