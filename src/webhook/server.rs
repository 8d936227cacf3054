//! The HTTPS server: admission endpoints, health, readiness and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};

use crate::api::{IPPool, NetworkAttachmentDefinition, Subnet};
use crate::context::Context;
use crate::metrics::Outcome;

/// Admission paths, shared with the webhook configurations so the two never disagree.
pub mod paths {
    pub const MUTATE_PODS: &str = "/mutate-pods";
    pub const VALIDATE_PODS: &str = "/validate-pods";
    pub const VALIDATE_NADS: &str = "/validate-nads";
    pub const VALIDATE_SUBNETS: &str = "/validate-subnets";
    pub const VALIDATE_IPPOOLS: &str = "/validate-ippools";
    pub const VALIDATE_WORKLOADS: &str = "/validate-workloads";
}

pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route(paths::MUTATE_PODS, post(mutate_pods))
        .route(paths::VALIDATE_PODS, post(validate_pods))
        .route(paths::VALIDATE_NADS, post(validate_nads))
        .route(paths::VALIDATE_SUBNETS, post(validate_subnets))
        .route(paths::VALIDATE_IPPOOLS, post(validate_ippools))
        .route(paths::VALIDATE_WORKLOADS, post(validate_workloads))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ctx)
}

/// Serves until the process is stopped.
pub async fn serve(ctx: Arc<Context>, addr: SocketAddr, tls: RustlsConfig) -> std::io::Result<()> {
    tracing::info!(%addr, "admission server listening (HTTPS only)");
    axum_server::bind_rustls(addr, tls)
        .serve(router(ctx).into_make_service())
        .await
}

async fn readyz(State(ctx): State<Arc<Context>>) -> (StatusCode, &'static str) {
    if ctx.cache.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics(
    State(ctx): State<Arc<Context>>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.metrics.encode(),
    )
}

type Review<T> = Json<AdmissionReview<T>>;
type Answer = Json<AdmissionReview<DynamicObject>>;

/// Runs one admission handler: decodes the request, times it, and always answers with an AdmissionReview
/// (a review without a request is answered as invalid rather than with an HTTP error, so the apiserver shows why).
async fn handle<T, F, Fut>(
    ctx: Arc<Context>,
    resource: &'static str,
    review: Review<T>,
    f: F,
) -> Answer
where
    T: kube::Resource,
    F: FnOnce(Arc<Context>, AdmissionRequest<T>) -> Fut,
    Fut: std::future::Future<Output = AdmissionResponse>,
{
    let start = Instant::now();
    let req = match review.0.try_into() {
        Ok(req) => req,
        Err(_) => {
            ctx.metrics
                .observe_admission(resource, Outcome::Error, start.elapsed());
            return Json(
                AdmissionResponse::invalid("AdmissionReview without a request").into_review(),
            );
        }
    };
    let resp = f(ctx.clone(), req).await;
    let outcome = match (resp.allowed, resp.patch.is_some()) {
        (false, _) => Outcome::Denied,
        (true, true) => Outcome::Patched,
        (true, false) => Outcome::Allowed,
    };
    ctx.metrics
        .observe_admission(resource, outcome, start.elapsed());
    Json(resp.into_review())
}

async fn mutate_pods(State(ctx): State<Arc<Context>>, review: Review<Pod>) -> Answer {
    handle(ctx, "pods", review, super::pod::mutate).await
}

async fn validate_pods(State(ctx): State<Arc<Context>>, review: Review<Pod>) -> Answer {
    handle(ctx, "pods", review, super::pod::guard::validate).await
}

async fn validate_nads(
    State(ctx): State<Arc<Context>>,
    review: Review<NetworkAttachmentDefinition>,
) -> Answer {
    handle(
        ctx,
        "network-attachment-definitions",
        review,
        super::nad::validate,
    )
    .await
}

async fn validate_subnets(State(ctx): State<Arc<Context>>, review: Review<Subnet>) -> Answer {
    handle(ctx, "subnets", review, super::subnet::validate).await
}

async fn validate_ippools(State(ctx): State<Arc<Context>>, review: Review<IPPool>) -> Answer {
    handle(ctx, "ippools", review, super::ippool::validate).await
}

async fn validate_workloads(
    State(ctx): State<Arc<Context>>,
    review: Review<DynamicObject>,
) -> Answer {
    handle(ctx, "workloads", review, super::workload::validate).await
}
