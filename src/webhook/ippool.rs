//! Validating IPPools (being written).

use std::sync::Arc;

use kube::core::admission::{AdmissionRequest, AdmissionResponse};

use crate::api::IPPool;
use crate::context::Context;

pub async fn validate(_ctx: Arc<Context>, req: AdmissionRequest<IPPool>) -> AdmissionResponse {
    AdmissionResponse::from(&req)
}
