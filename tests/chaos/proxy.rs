//! What stands in for the Service in front of the replicas (there is no kube-proxy on the test bed): an HTTPS
//! proxy on 127.0.0.1 that the webhook configuration points at. It terminates TLS with the test bed's webhook
//! certificate and sends each admission request to the next *ready* replica (readiness = `/readyz`, polled
//! like a readiness probe), so the apiserver's admissions are spread over all three however it pools its
//! connections. A request that could not be delivered (connection refused: the replica is down) goes to the
//! next ready replica; one cut off after delivery is answered 502, as a Service would fail it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use ureq::Agent;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, parse_pem};

use super::{ChaosError, direct};

/// How long a forwarded admission may take (the webhook configuration allows 10 s).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(9);
/// Readiness probe period and timeout.
const PROBE_EVERY: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// An HTTPS client that trusts only the test bed's webhook CA, opens a fresh connection per request (so a
/// connection to a killed replica is never reused) and ignores proxy variables.
pub fn agent(ca_pem: &[u8], timeout: Duration) -> Result<Agent, ChaosError> {
    let roots: Vec<Certificate<'static>> = parse_pem(ca_pem)
        .filter_map(|i| match i {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if roots.is_empty() {
        return Err(ChaosError::Http(
            "the webhook CA holds no certificate".into(),
        ));
    }
    let tls = TlsConfig::builder()
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::new_with_certs(&roots))
        .build();
    Ok(Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .proxy(None)
        .max_redirects(0)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .timeout_connect(Some(Duration::from_millis(500)))
        .timeout_global(Some(timeout))
        .build()
        .new_agent())
}

/// How a request to a replica ended.
#[derive(Debug)]
pub enum Sent {
    /// An HTTP answer: status and body.
    Answer(u16, Vec<u8>),
    /// Never delivered (connection refused or not established): safe to send elsewhere.
    NotDelivered,
    /// Delivered, then the connection broke or timed out: the replica may have acted on it.
    Cut(String),
}

fn not_delivered(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve),
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// POSTs `body` (JSON) to `url`. Blocking: call from `spawn_blocking`.
pub fn post(agent: &Agent, url: &str, body: &[u8]) -> Sent {
    match agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
    {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            match resp.body_mut().with_config().limit(8 << 20).read_to_vec() {
                Ok(body) => Sent::Answer(status, body),
                Err(e) => Sent::Cut(format!("reading the answer: {e}")),
            }
        }
        Err(e) if not_delivered(&e) => Sent::NotDelivered,
        Err(e) => Sent::Cut(e.to_string()),
    }
}

/// The replicas behind the proxy and what the proxy knows about them.
pub struct Backends {
    pub urls: Vec<String>,
    ready: Vec<AtomicBool>,
    /// Admissions each replica answered through the proxy.
    pub served: Vec<AtomicU64>,
    /// Requests sent on to another replica because the chosen one refused the connection.
    pub redirected: AtomicU64,
    /// Requests answered 503 because no replica was ready.
    pub unavailable: AtomicU64,
    /// Requests answered 502 because the replica's connection broke after delivery.
    pub cut: AtomicU64,
    /// The Pod admissions that were reinvocations, and how nadipam answered them.
    pub reinvocations: Reinvocations,
    next: AtomicUsize,
}

/// Pod admissions whose Pod already carried nadipam's token: reinvocations (the apiserver calls nadipam
/// again after the reordering webhook changed the Pod). No Pod reaches nadipam through the apiserver with a
/// token otherwise: the load's Pods carry none, and the directly admitted ones (created with their token) are
/// not sent to nadipam.
#[derive(Default)]
pub struct Reinvocations {
    /// Reinvocations answered, dry runs included.
    pub answered: AtomicU64,
    /// Of these, dry runs (their first call reserved nothing, so their token holds no lease).
    pub dry: AtomicU64,
    /// Dry-run reinvocations refused.
    pub dry_denied: AtomicU64,
    /// Reinvocations (not dry runs) that nadipam refused, other than for an API error.
    pub denied: AtomicU64,
    /// When nadipam refused a reinvocation because its token lookup got no answer from the API server
    /// (`could not look up reservation …; retry the request`, as any admission is refused with the API server
    /// away).
    pub api_errors: std::sync::Mutex<Vec<std::time::Instant>>,
    /// Reinvocations (not dry runs) whose answer changed the Pod: another allocation than the first call's.
    pub changed: AtomicU64,
    /// Reinvocations that got no answer (no replica ready, or the connection cut after delivery).
    pub unanswered: AtomicU64,
    /// The first few refusals and changes.
    pub examples: std::sync::Mutex<Vec<String>>,
}

impl Reinvocations {
    fn example(&self, text: String) {
        let mut e = self.examples.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() < 10 {
            e.push(text);
        }
    }

    /// Judges one answered Pod admission: `request` as the apiserver sent it, `answer` the replica's.
    fn observe(&self, request: &[u8], answer: &[u8]) {
        let Some(req) = reinvocation(request) else {
            return;
        };
        inc(&self.answered);
        if req.dry_run {
            inc(&self.dry);
            if let Ok(direct::Answer::Denied(msg)) = direct::answer(&req.uid, answer) {
                inc(&self.dry_denied);
                self.example(format!("{}: dry-run reinvocation refused: {msg}", req.pod));
            }
            return;
        }
        match direct::answer(&req.uid, answer) {
            Ok(direct::Answer::Allowed) => {}
            Ok(direct::Answer::Patched(patch)) => {
                let mut after = req.object.clone();
                let same = json_patch::patch(&mut after, &patch).is_ok() && after == req.object;
                if !same {
                    inc(&self.changed);
                    self.example(format!(
                        "{}: reinvocation changed the Pod: {patch:?}",
                        req.pod
                    ));
                }
            }
            Ok(direct::Answer::Denied(msg)) if msg.contains("could not look up reservation") => {
                self.api_errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(std::time::Instant::now());
                self.example(format!("{}: reinvocation refused: {msg}", req.pod));
            }
            Ok(direct::Answer::Denied(msg)) => {
                inc(&self.denied);
                self.example(format!("{}: reinvocation refused: {msg}", req.pod));
            }
            Err(e) => {
                inc(&self.denied);
                self.example(format!("{}: reinvocation answered wrongly: {e}", req.pod));
            }
        }
    }
}

fn inc(n: &AtomicU64) {
    n.fetch_add(1, Ordering::SeqCst);
}

/// A Pod admission request whose Pod carries nadipam's token.
struct Reinvoked {
    uid: String,
    dry_run: bool,
    pod: String,
    object: serde_json::Value,
}

fn reinvocation(request: &[u8]) -> Option<Reinvoked> {
    let v: serde_json::Value = serde_json::from_slice(request).ok()?;
    let req = v.get("request")?;
    let object = req.get("object")?;
    object.pointer("/metadata/annotations/nadipam.io~1reservation")?;
    let name = object
        .pointer("/metadata/name")
        .or_else(|| object.pointer("/metadata/generateName"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?");
    Some(Reinvoked {
        uid: req.get("uid")?.as_str()?.to_string(),
        dry_run: req
            .get("dryRun")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        pod: format!("pod {name}"),
        object: object.clone(),
    })
}

impl Backends {
    pub fn new(urls: Vec<String>) -> Backends {
        let n = urls.len();
        Backends {
            urls,
            ready: (0..n).map(|_| AtomicBool::new(false)).collect(),
            served: (0..n).map(|_| AtomicU64::new(0)).collect(),
            redirected: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            reinvocations: Reinvocations::default(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn is_ready(&self, i: usize) -> bool {
        self.ready[i].load(Ordering::SeqCst)
    }

    pub fn all_ready(&self) -> bool {
        (0..self.urls.len()).all(|i| self.is_ready(i))
    }

    /// Marks a replica down at once (killed), before the next probe notices.
    pub fn mark_down(&self, i: usize) {
        self.ready[i].store(false, Ordering::SeqCst);
    }

    /// Ready replicas in round-robin order, starting with the next one's turn.
    fn order(&self) -> Vec<usize> {
        let n = self.urls.len();
        let first = self.next.fetch_add(1, Ordering::SeqCst);
        (0..n)
            .map(|k| (first + k) % n)
            .filter(|&i| self.is_ready(i))
            .collect()
    }
}

struct Shared {
    backends: Arc<Backends>,
    agent: Agent,
}

/// The running proxy; dropping it stops the server and the probes.
pub struct Proxy {
    pub url: String,
    handle: axum_server::Handle<std::net::SocketAddr>,
    probes: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(backends: Arc<Backends>, ca_pem: &[u8]) -> Result<Proxy, ChaosError> {
        let shared = Arc::new(Shared {
            backends: backends.clone(),
            agent: agent(ca_pem, FORWARD_TIMEOUT)?,
        });
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let (port, handle) = crate::common::serve_tls(app).await;
        let probe_agent = agent(ca_pem, PROBE_TIMEOUT)?;
        let probes = tokio::spawn(probe(backends, probe_agent));
        Ok(Proxy {
            url: format!("https://127.0.0.1:{port}"),
            handle,
            probes,
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.probes.abort();
    }
}

/// Polls every replica's `/readyz` (caches synced) until aborted.
async fn probe(backends: Arc<Backends>, agent: Agent) {
    loop {
        for i in 0..backends.urls.len() {
            let url = format!("{}/readyz", backends.urls[i]);
            let agent = agent.clone();
            let ok = tokio::task::spawn_blocking(move || {
                agent
                    .get(&url)
                    .call()
                    .map(|r| r.status().as_u16() == 200)
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            backends.ready[i].store(ok, Ordering::SeqCst);
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

async fn forward(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    let backends = &shared.backends;
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let pods = path.starts_with("/mutate-pods");
    let order = backends.order();
    for (attempt, i) in order.into_iter().enumerate() {
        let url = format!("{}{path}", backends.urls[i]);
        let agent = shared.agent.clone();
        let request = body.clone();
        let sent = tokio::task::spawn_blocking(move || post(&agent, &url, &request))
            .await
            .unwrap_or_else(|e| Sent::Cut(format!("forwarding task: {e}")));
        match sent {
            Sent::Answer(status, answer) => {
                backends.served[i].fetch_add(1, Ordering::SeqCst);
                if pods && status == 200 {
                    backends.reinvocations.observe(&body, &answer);
                } else if pods && reinvocation(&body).is_some() {
                    inc(&backends.reinvocations.unanswered);
                }
                if attempt > 0 {
                    backends.redirected.fetch_add(1, Ordering::SeqCst);
                }
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                return (status, [(header::CONTENT_TYPE, "application/json")], answer)
                    .into_response();
            }
            Sent::NotDelivered => {
                backends.mark_down(i);
                continue;
            }
            Sent::Cut(e) => {
                backends.cut.fetch_add(1, Ordering::SeqCst);
                if pods && reinvocation(&body).is_some() {
                    inc(&backends.reinvocations.unanswered);
                }
                return (StatusCode::BAD_GATEWAY, format!("replica {i}: {e}")).into_response();
            }
        }
    }
    backends.unavailable.fetch_add(1, Ordering::SeqCst);
    if pods && reinvocation(&body).is_some() {
        inc(&backends.reinvocations.unanswered);
    }
    (StatusCode::SERVICE_UNAVAILABLE, "no ready nadipam replica").into_response()
}
