//! One GET to the API server, blocking.
//!
//! Why ureq (3, rustls + ring) and not kube's client: the plugin is a process that lives a few
//! milliseconds and makes one request; kube's client needs a tokio runtime and a tower stack, whose
//! start-up would dominate the run. ureq is synchronous, and with rustls-no-provider plus our ring
//! provider it brings no extra crypto or root store.
//!
//! Retries are for transient failures only (connection refused/reset, timeouts, 429, 5xx): at most 3
//! attempts, and none started after ~1 s, so a down API server fails fast with code 11 ("try again
//! later") and the runtime retries the whole sandbox.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use ureq::Agent;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, parse_pem};

use super::cni_args::PodRef;
use super::error::CniError;
use super::kubeconfig::ApiAccess;
use crate::annotations::Shown;

/// The bounded retry policy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    pub attempts: u32,
    /// Pause before the 2nd, 3rd, ... attempt (the last value repeats).
    pub backoff: [Duration; 2],
    /// No attempt starts after this much time since the first.
    pub budget: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 3,
            backoff: [Duration::from_millis(100), Duration::from_millis(300)],
            budget: Duration::from_millis(1000),
        }
    }
}

/// The parts of a Pod the plugin reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct PodMeta {
    pub uid: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PodDoc {
    metadata: PodMeta,
}

/// A client for one API server, as the kubeconfig describes it.
pub(crate) struct ApiClient {
    agent: Agent,
    server: String,
    kubeconfig: String,
    bearer: Option<String>,
    retry: Retry,
}

/// What one attempt ended with.
enum Attempt {
    Done(u16, Vec<u8>),
    Transient(String),
    Fatal(CniError),
}

impl ApiClient {
    pub(crate) fn new(access: &ApiAccess) -> Result<ApiClient, CniError> {
        let kubeconfig = access.path.display().to_string();
        let bad = |problem: String| CniError::Kubeconfig {
            path: kubeconfig.clone(),
            problem,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = TlsConfig::builder().unversioned_rustls_crypto_provider(provider);
        if access.insecure {
            eprintln!(
                "nadipam: warning: kubeconfig {kubeconfig} sets insecure-skip-tls-verify; the API server's identity is not verified"
            );
            tls = tls.disable_verification(true);
        } else if let Some(ca) = &access.ca_pem {
            let roots: Vec<Certificate<'static>> = pem_items(ca)
                .map_err(|e| bad(format!("certificate-authority is not valid PEM ({e})")))?
                .into_iter()
                .filter_map(|i| match i {
                    PemItem::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect();
            if roots.is_empty() {
                return Err(bad(
                    "certificate-authority(-data) holds no PEM certificate".to_string()
                ));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&roots));
        } else if access.server.starts_with("https://") {
            return Err(bad(format!(
                "has no certificate-authority(-data) for {}; add the cluster CA (nadipam carries no public root store)",
                access.server
            )));
        } else {
            eprintln!(
                "nadipam: warning: kubeconfig {kubeconfig} uses plain http ({}); credentials travel unencrypted",
                access.server
            );
        }
        if let Some((cert_pem, key_pem)) = &access.client_pem {
            let chain: Vec<Certificate<'static>> = pem_items(cert_pem)
                .map_err(|e| bad(format!("client-certificate is not valid PEM ({e})")))?
                .into_iter()
                .filter_map(|i| match i {
                    PemItem::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect();
            let key: Option<PrivateKey<'static>> = pem_items(key_pem)
                .map_err(|e| bad(format!("client-key is not valid PEM ({e})")))?
                .into_iter()
                .find_map(|i| match i {
                    PemItem::PrivateKey(k) => Some(k),
                    _ => None,
                });
            let Some(key) = key else {
                return Err(bad("client-key(-data) holds no PEM private key".to_string()));
            };
            if chain.is_empty() {
                return Err(bad(
                    "client-certificate(-data) holds no PEM certificate".to_string()
                ));
            }
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            // Proxy variables in the runtime's environment must not divert the node's API traffic.
            .proxy(None)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_millis(1000)))
            .timeout_global(Some(Duration::from_secs(5)))
            .user_agent(concat!("nadipam-cni/", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .build();
        Ok(ApiClient {
            agent: config.new_agent(),
            server: access.server.clone(),
            kubeconfig,
            bearer: access.token.as_ref().map(|t| format!("Bearer {t}")),
            retry: Retry::default(),
        })
    }

    #[cfg(test)]
    pub(crate) fn with_retry(mut self, retry: Retry) -> ApiClient {
        self.retry = retry;
        self
    }

    /// GET the Pod; 404 is [`CniError::PodNotFound`].
    ///
    /// Read with `resourceVersion=0`, which the API server answers from its watch cache without an etcd
    /// round trip. That is safe here: the result annotations are written when the Pod is created, so every
    /// cached version carries them. A miss — not found, or another UID than the runtime's — may only be the
    /// cache lagging a recreation, so it is confirmed by a quorum read before it is reported.
    pub(crate) fn get_pod(&self, pod: &PodRef) -> Result<PodMeta, CniError> {
        let path = format!("/api/v1/namespaces/{}/pods/{}", pod.namespace, pod.name);
        match self.get_pod_at(pod, &format!("{path}?resourceVersion=0")) {
            Ok(meta) if pod.uid.as_ref().is_none_or(|u| *u == meta.uid) => Ok(meta),
            Ok(_) | Err(CniError::PodNotFound { .. }) => self.get_pod_at(pod, &path),
            Err(e) => Err(e),
        }
    }

    fn get_pod_at(&self, pod: &PodRef, path: &str) -> Result<PodMeta, CniError> {
        let (status, body) = self.get(path)?;
        match status {
            200 => serde_json::from_slice::<PodDoc>(&body)
                .map(|d| d.metadata)
                .map_err(|e| CniError::ApiRefused {
                    server: self.server.clone(),
                    status,
                    path: path.to_string(),
                    message: Shown::new(&format!("the body is not a Pod ({e})")),
                    hint: "",
                }),
            404 => Err(CniError::PodNotFound {
                pod: pod.to_string(),
                server: self.server.clone(),
            }),
            _ => Err(self.refused(status, path.to_string(), &body)),
        }
    }

    /// STATUS: the API answers and accepts our credentials.
    pub(crate) fn probe(&self) -> Result<(), CniError> {
        let path = "/version".to_string();
        let (status, body) = self.get(&path)?;
        if status == 200 {
            Ok(())
        } else {
            Err(self.refused(status, path, &body))
        }
    }

    fn refused(&self, status: u16, path: String, body: &[u8]) -> CniError {
        let hint = match status {
            401 => {
                "; the kubeconfig's credentials were rejected — is the token expired or the client certificate signed by another CA? The node agent rewrites the kubeconfig; check that it runs"
            }
            403 => {
                "; the kubeconfig's identity may not get Pods — grant it get on pods (the nadipam node agent's ClusterRole does)"
            }
            _ => "",
        };
        CniError::ApiRefused {
            server: self.server.clone(),
            status,
            path,
            message: Shown::new(&status_message(body)),
            hint,
        }
    }

    /// Status and body of `GET path`, retrying transient failures within the policy.
    fn get(&self, path: &str) -> Result<(u16, Vec<u8>), CniError> {
        let url = format!("{}{path}", self.server);
        let start = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let reason = match self.attempt(&url) {
                Attempt::Done(status, body) => return Ok((status, body)),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Transient(reason) => reason,
            };
            let pause = self.retry.backoff[(attempts as usize - 1).min(1)];
            if attempts >= self.retry.attempts || start.elapsed() + pause > self.retry.budget {
                return Err(CniError::Unreachable {
                    server: self.server.clone(),
                    attempts,
                    elapsed_ms: start.elapsed().as_millis(),
                    reason,
                });
            }
            std::thread::sleep(pause);
        }
    }

    fn attempt(&self, url: &str) -> Attempt {
        let mut req = self.agent.get(url);
        if let Some(b) = &self.bearer {
            req = req.header("Authorization", b);
        }
        match req.call() {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if status == 429 || status >= 500 {
                    let body = resp.body_mut().read_to_vec().unwrap_or_default();
                    return Attempt::Transient(format!(
                        "HTTP {status}: {}",
                        Shown::new(&status_message(&body))
                    ));
                }
                match resp
                    .body_mut()
                    .with_config()
                    .limit(16 * 1024 * 1024)
                    .read_to_vec()
                {
                    Ok(body) => Attempt::Done(status, body),
                    Err(e) => Attempt::Transient(format!("reading the response: {e}")),
                }
            }
            Err(e) => self.classify(e),
        }
    }

    fn classify(&self, e: ureq::Error) -> Attempt {
        let tls = |reason: String| {
            Attempt::Fatal(CniError::Tls {
                server: self.server.clone(),
                path: self.kubeconfig.clone(),
                reason,
            })
        };
        match e {
            ureq::Error::Io(io) => {
                if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return tls(r.to_string());
                }
                Attempt::Transient(io.to_string())
            }
            ureq::Error::Rustls(r) => tls(r.to_string()),
            ureq::Error::Tls(r) => tls(r.to_string()),
            ureq::Error::Pem(r) => tls(r.to_string()),
            ureq::Error::BadUri(u) => Attempt::Fatal(CniError::Kubeconfig {
                path: self.kubeconfig.clone(),
                problem: format!("server {} does not form a valid URL ({u})", self.server),
            }),
            other => Attempt::Transient(other.to_string()),
        }
    }
}

fn pem_items(pem: &[u8]) -> Result<Vec<PemItem<'static>>, ureq::Error> {
    parse_pem(pem).collect()
}

/// The `message` of a Kubernetes `Status` body, else the body itself (bounded by the caller).
fn status_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Status {
        message: String,
    }
    match serde_json::from_slice::<Status>(body) {
        Ok(s) => s.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;

    /// A plain-HTTP server answering each connection with the next canned response, recording request
    /// heads. It stands in for the API server where a real one cannot be made to fail on demand.
    fn serve(
        responses: Vec<(u16, &'static str)>,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for (status, body) in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                heads.push(head);
                let mut s = stream;
                write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            heads
        });
        (format!("http://{addr}"), handle)
    }

    fn client(server: &str, token: Option<&str>) -> ApiClient {
        ApiClient::new(&ApiAccess {
            path: PathBuf::from("/k"),
            server: server.to_string(),
            ca_pem: None,
            client_pem: None,
            token: token.map(str::to_string),
            insecure: false,
        })
        .unwrap()
        .with_retry(Retry {
            attempts: 3,
            backoff: [Duration::from_millis(5), Duration::from_millis(5)],
            budget: Duration::from_secs(2),
        })
    }

    fn pod() -> PodRef {
        PodRef {
            namespace: "ns1".into(),
            name: "p1".into(),
            uid: None,
        }
    }

    const POD: &str =
        r#"{"kind":"Pod","metadata":{"name":"p1","uid":"u1","annotations":{"a":"b"}},"spec":{}}"#;

    #[test]
    fn gets_the_pod_with_the_token() {
        let (url, h) = serve(vec![(200, POD)]);
        let meta = client(&url, Some("tok")).get_pod(&pod()).unwrap();
        assert_eq!(meta.uid, "u1");
        assert_eq!(meta.annotations.get("a").map(String::as_str), Some("b"));
        let heads = h.join().unwrap();
        assert!(
            heads[0].starts_with("GET /api/v1/namespaces/ns1/pods/p1?resourceVersion=0 HTTP/1.1"),
            "{}",
            heads[0]
        );
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains("authorization: bearer tok"),
            "{}",
            heads[0]
        );
    }

    #[test]
    fn retries_transient_statuses() {
        let (url, h) = serve(vec![
            (503, r#"{"message":"etcd leader changed"}"#),
            (429, "slow down"),
            (200, POD),
        ]);
        assert_eq!(client(&url, None).get_pod(&pod()).unwrap().uid, "u1");
        assert_eq!(h.join().unwrap().len(), 3);
    }

    #[test]
    fn gives_up_after_three_attempts_with_code_11() {
        let (url, h) = serve(vec![(500, "a"), (502, "b"), (503, r#"{"message":"down"}"#)]);
        let e = client(&url, None).get_pod(&pod()).unwrap_err();
        assert_eq!(e.code(), 11);
        let text = e.to_string();
        assert!(text.contains("(3 attempt(s) in"), "{text}");
        assert!(text.contains("last: HTTP 503: \"down\""), "{text}");
        h.join().unwrap();
    }

    #[test]
    fn connection_refused_is_try_again_later() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let e = client(&url, None).get_pod(&pod()).unwrap_err();
        assert_eq!(e.code(), 11);
        assert!(
            e.to_string().contains(&format!(
                "Kubernetes API at {url} is unreachable (3 attempt(s)"
            )),
            "{e}"
        );
    }

    #[test]
    fn a_cache_miss_is_confirmed_by_a_quorum_read() {
        // Not found in the cache, found in etcd.
        let (url, h) = serve(vec![(404, "{}"), (200, POD)]);
        assert_eq!(client(&url, None).get_pod(&pod()).unwrap().uid, "u1");
        let heads = h.join().unwrap();
        assert!(
            heads[1].starts_with("GET /api/v1/namespaces/ns1/pods/p1 HTTP/1.1"),
            "{}",
            heads[1]
        );
        // The cache still has the old Pod of that name; etcd has the runtime's.
        let newer = r#"{"metadata":{"uid":"u2"}}"#;
        let (url, h) = serve(vec![(200, POD), (200, newer)]);
        let mut p = pod();
        p.uid = Some("u2".into());
        assert_eq!(client(&url, None).get_pod(&p).unwrap().uid, "u2");
        assert_eq!(h.join().unwrap().len(), 2);
    }

    #[test]
    fn not_found_and_forbidden_are_not_retried() {
        let (url, h) = serve(vec![
            (404, r#"{"message":"pods \"p1\" not found"}"#),
            (404, "{}"),
        ]);
        let e = client(&url, None).get_pod(&pod()).unwrap_err();
        assert_eq!(e.code(), 100);
        assert_eq!(
            h.join().unwrap().len(),
            2,
            "one cached read, one quorum read, no retries"
        );

        let (url, h) = serve(vec![(
            403,
            r#"{"kind":"Status","message":"pods \"p1\" is forbidden: User \"x\" cannot get resource"}"#,
        )]);
        let e = client(&url, None).get_pod(&pod()).unwrap_err();
        assert_eq!(e.code(), 106);
        assert_eq!(
            e.to_string(),
            format!(
                "Kubernetes API at {url} answered 403 to GET /api/v1/namespaces/ns1/pods/p1?resourceVersion=0: \"pods \\\"p1\\\" is forbidden: User \\\"x\\\" cannot get resource\"; the kubeconfig's identity may not get Pods — grant it get on pods (the nadipam node agent's ClusterRole does)"
            )
        );
        h.join().unwrap();
    }

    #[test]
    fn probe_reads_version() {
        let (url, h) = serve(vec![
            (200, r#"{"major":"1"}"#),
            (401, r#"{"message":"Unauthorized"}"#),
        ]);
        let c = client(&url, Some("t"));
        c.probe().unwrap();
        let e = c.probe().unwrap_err();
        assert!(e.to_string().contains("answered 401 to GET /version: \"Unauthorized\"; the kubeconfig's credentials were rejected"), "{e}");
        let heads = h.join().unwrap();
        assert!(heads[0].starts_with("GET /version "));
    }

    #[test]
    fn https_needs_a_ca_and_valid_pem() {
        let access = |ca: Option<&[u8]>| ApiAccess {
            path: PathBuf::from("/k"),
            server: "https://127.0.0.1:6443".into(),
            ca_pem: ca.map(<[u8]>::to_vec),
            client_pem: None,
            token: None,
            insecure: false,
        };
        let e = ApiClient::new(&access(None)).err().unwrap();
        assert_eq!(e.code(), 105);
        assert!(
            e.to_string().starts_with(
                "kubeconfig /k: has no certificate-authority(-data) for https://127.0.0.1:6443"
            ),
            "{e}"
        );
        let e = ApiClient::new(&access(Some(b"not pem"))).err().unwrap();
        assert_eq!(
            e.to_string(),
            "kubeconfig /k: certificate-authority(-data) holds no PEM certificate"
        );
    }
}
