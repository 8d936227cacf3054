//! Validating workloads (being written).

use std::sync::Arc;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};

use crate::context::Context;

pub async fn validate(
    _ctx: Arc<Context>,
    req: AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    AdmissionResponse::from(&req)
}
