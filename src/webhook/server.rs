//! The HTTPS server: admission endpoints, health, readiness and metrics; and the plain-HTTP server for health,
//! readiness and metrics alone (`--metrics-listen`), so a NetworkPolicy can close the admission port to all
//! but the apiserver without cutting off probes and Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{AddExtension, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tower_layer::Layer;

use crate::api::{IPPool, Network, NetworkAttachmentDefinition, Subnet};
use crate::certs::ClientAuth;
use crate::context::Context;
use crate::metrics::Outcome;

/// Admission paths, shared with the webhook configurations so the two never disagree.
pub mod paths {
    pub const MUTATE_PODS: &str = "/mutate-pods";
    pub const VALIDATE_PODS: &str = "/validate-pods";
    pub const VALIDATE_NADS: &str = "/validate-nads";
    pub const VALIDATE_SUBNETS: &str = "/validate-subnets";
    pub const VALIDATE_IPPOOLS: &str = "/validate-ippools";
    pub const VALIDATE_NETWORKS: &str = "/validate-networks";
    pub const VALIDATE_WORKLOADS: &str = "/validate-workloads";
}

/// The admission paths, served to the callers `clients` admits; health, readiness and metrics, to anyone.
pub fn router(ctx: Arc<Context>, clients: ClientAuth) -> Router {
    let admission = Router::new()
        .route(paths::MUTATE_PODS, post(mutate_pods))
        .route(paths::VALIDATE_PODS, post(validate_pods))
        .route(paths::VALIDATE_NADS, post(validate_nads))
        .route(paths::VALIDATE_SUBNETS, post(validate_subnets))
        .route(paths::VALIDATE_IPPOOLS, post(validate_ippools))
        .route(paths::VALIDATE_NETWORKS, post(validate_networks))
        .route(paths::VALIDATE_WORKLOADS, post(validate_workloads))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(clients),
            authenticate,
        ));
    admission.merge(probes()).with_state(ctx)
}

/// Health, readiness and metrics: on the admission port (as before `--metrics-listen` existed) and on the
/// metrics port.
fn probes() -> Router<Arc<Context>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Serves the admission paths over HTTPS until the process is stopped. `tls` must ask for client
/// certificates as `clients` says (see [`crate::certs::PemPair::server_config`]).
pub async fn serve(
    ctx: Arc<Context>,
    addr: SocketAddr,
    tls: RustlsConfig,
    clients: ClientAuth,
) -> std::io::Result<()> {
    tracing::info!(
        %addr,
        client_certificates = if clients.required() { "required" } else { "not asked for" },
        "admission server listening (HTTPS only)"
    );
    axum_server::bind(addr)
        .acceptor(PeerAcceptor(RustlsAcceptor::new(tls)))
        .serve(router(ctx, clients).into_make_service())
        .await
}

/// Serves health, readiness and metrics over plain HTTP until the process is stopped: what kubelet probes and
/// Prometheus scrape, on a port of their own.
pub async fn serve_metrics(ctx: Arc<Context>, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health and metrics server listening (HTTP)");
    axum::serve(listener, probes().with_state(ctx)).await
}

/// The certificate a caller presented in the TLS handshake (verified against the client CA by then), if any.
#[derive(Clone)]
struct Peer(Option<CertificateDer<'static>>);

/// The rustls acceptor, plus the caller's certificate attached to every request of the connection.
#[derive(Clone)]
struct PeerAcceptor(RustlsAcceptor);

impl<I, S> Accept<I, S> for PeerAcceptor
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = TlsStream<I>;
    type Service = AddExtension<S, Peer>;
    type Future = BoxFuture<'static, std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let tls = self.0.clone();
        Box::pin(async move {
            let (stream, service) = tls.accept(stream, service).await?;
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .cloned();
            Ok((stream, Extension(Peer(leaf)).layer(service)))
        })
    }
}

/// How much of a refused request's body is read (and dropped) before answering.
const REFUSED_BODY_LIMIT: usize = 64 * 1024;

/// Refuses admission requests from callers `clients` does not admit: 401 without a certificate, 403 with one
/// of the wrong name. A request that reached no [`PeerAcceptor`] carries no certificate.
async fn authenticate(
    State(clients): State<Arc<ClientAuth>>,
    peer: Option<Extension<Peer>>,
    req: Request,
    next: Next,
) -> Response {
    let leaf = peer
        .as_ref()
        .and_then(|Extension(Peer(leaf))| leaf.as_ref());
    match clients.admits(leaf) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::warn!(path = %req.uri().path(), "admission request refused: {refusal}");
            let status = match refusal {
                crate::certs::Refusal::NoCertificate { .. } => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            // Over HTTP/2 an unread request body makes the server reset the stream after the answer, and
            // some clients (curl) then report a framing error instead of the 401. A review is a few KiB;
            // reading more than REFUSED_BODY_LIMIT for a caller we refuse is not worth it (that one is reset).
            let _ = axum::body::to_bytes(req.into_body(), REFUSED_BODY_LIMIT).await;
            (status, refusal.to_string()).into_response()
        }
    }
}

/// Ready once every cache has listed; otherwise 503 with what each missing kind is waiting for (e.g. the
/// NetworkAttachmentDefinition CRD Multus installs), which `kubectl describe pod` shows in the probe failure.
async fn readyz(State(ctx): State<Arc<Context>>) -> (StatusCode, String) {
    if ctx.cache.is_ready() {
        (StatusCode::OK, "ok".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            ctx.cache.not_ready_reason(),
        )
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

async fn validate_networks(State(ctx): State<Arc<Context>>, review: Review<Network>) -> Answer {
    handle(ctx, "networks", review, super::network::validate).await
}

async fn validate_workloads(
    State(ctx): State<Arc<Context>>,
    review: Review<DynamicObject>,
) -> Answer {
    handle(ctx, "workloads", review, super::workload::validate).await
}
