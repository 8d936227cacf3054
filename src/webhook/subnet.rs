//! Validating Subnets (being written).

use std::sync::Arc;

use kube::core::admission::{AdmissionRequest, AdmissionResponse};

use crate::api::Subnet;
use crate::context::Context;

pub async fn validate(_ctx: Arc<Context>, req: AdmissionRequest<Subnet>) -> AdmissionResponse {
    AdmissionResponse::from(&req)
}
