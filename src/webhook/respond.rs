//! Turning denials and internal errors into AdmissionResponses, counted in metrics.

use kube::core::admission::AdmissionResponse;

use crate::context::Context;
use crate::webhook::denial::Denial;

/// `allowed: false` with the denial's message (prefixed with the object) and HTTP code.
pub(crate) fn deny(
    ctx: &Context,
    resp: AdmissionResponse,
    prefix: &str,
    denial: &Denial,
) -> AdmissionResponse {
    ctx.metrics.count_denial(denial.reason());
    let mut r = resp.deny(format!("{prefix}{denial}"));
    r.result.code = denial.code();
    r.result.reason = status_reason(r.result.code).to_string();
    r
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
