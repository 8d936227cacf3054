//! Following the certificate Secret: every poll a replica reads it (self-managed mode also decides and writes
//! a rotation step), reloads its TLS configuration when the serving certificate changed, and publishes the CA
//! bundle into `caBundle`. A rotation written by any replica so reaches every replica within a poll interval.

use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use k8s_openapi::api::core::v1::Secret;

use super::certmanager::CertManager;
use super::client_auth::ClientAuth;
use super::error::{CertError, MaterialError};
use super::material::{CA_CRT, TLS_CRT, TLS_KEY};
use super::pem::PemPair;
use super::policy::Policy;
use super::publish::{self, Targets};
use super::reconcile;
use super::settings::Settings;
use super::store::Store;

/// What a replica serves and publishes, as last read from the Secret.
#[derive(Clone, PartialEq, Eq)]
struct View {
    pair: PemPair,
    /// PEM CA bundle; empty when the Secret has no `ca.crt` (nothing to publish then).
    bundle: Vec<u8>,
}

/// Who writes the Secret.
enum Source {
    /// This replica and its peers, by the policy.
    Issue(Policy),
    /// cert-manager, for the named Certificate.
    Follow { certificate: String },
}

/// The serving certificate of one replica, kept current from a Secret.
pub struct ManagedCerts {
    follower: Follower,
    poll: Duration,
    current: View,
}

/// What one round needs: the API, the Secret, who writes it, and the configurations to publish into; and
/// which callers each TLS configuration built from the Secret admits.
struct Follower {
    client: kube::Client,
    store: Store,
    targets: Targets,
    source: Source,
    clients: ClientAuth,
}

impl ManagedCerts {
    /// `--cert-mode=self-managed`: reads the Secret, creating or repairing it when needed (agreeing with any
    /// replica doing the same), and returns the live TLS configuration serving its certificate to `clients`.
    pub async fn self_managed(
        client: kube::Client,
        s: &Settings,
        clients: ClientAuth,
    ) -> Result<(ManagedCerts, RustlsConfig), CertError> {
        let source = Source::Issue(s.policy()?);
        let store = Store::new(client.clone(), &s.namespace, &s.secret);
        Self::begin(client, store, s.targets.clone(), source, s.poll, clients).await
    }

    /// `--cert-mode=cert-manager`: applies the Issuer(s) and Certificate, waits for cert-manager to write the
    /// Secret, and returns the live TLS configuration serving it to `clients`.
    pub async fn cert_manager(
        client: kube::Client,
        s: &Settings,
        clients: ClientAuth,
    ) -> Result<(ManagedCerts, RustlsConfig), CertError> {
        let objects = CertManager::objects(s)?;
        objects.apply(&client, &s.namespace).await?;
        tracing::info!(
            certificate = %format!("{}/{}", s.namespace, s.secret),
            "cert-manager Issuer and Certificate applied"
        );
        let source = Source::Follow {
            certificate: s.secret.clone(),
        };
        let store = Store::new(client.clone(), &s.namespace, &s.secret);
        Self::begin(client, store, s.targets.clone(), source, s.poll, clients).await
    }

    async fn begin(
        client: kube::Client,
        store: Store,
        targets: Targets,
        source: Source,
        poll: Duration,
        clients: ClientAuth,
    ) -> Result<(ManagedCerts, RustlsConfig), CertError> {
        let follower = Follower {
            client,
            store,
            targets,
            source,
            clients,
        };
        let current = loop {
            match follower.round().await {
                Ok(v) => break v,
                Err(e @ CertError::NotWritten { .. }) => {
                    tracing::warn!("{e}");
                    tokio::time::sleep(poll).await;
                }
                Err(e) => return Err(e),
            }
        };
        let config = follower.server_config(&current)?;
        tracing::info!(secret = %follower.store.id(), "serving the certificate of the Secret");
        let me = ManagedCerts {
            follower,
            poll,
            current,
        };
        Ok((me, RustlsConfig::from_config(Arc::new(config))))
    }

    /// The PEM bundle of every CA the Secret trusts: what `caBundle` must hold.
    pub fn ca_bundle(&self) -> Vec<u8> {
        self.current.bundle.clone()
    }

    /// Follows the Secret forever: reloads `live` when the serving certificate changes and keeps `caBundle`
    /// equal to the Secret's bundle (self-managed mode also rotates when due).
    pub async fn run(mut self, live: RustlsConfig) {
        let f = &self.follower;
        let mut reported_missing = false;
        f.publish(&self.current, &mut reported_missing).await;
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let next = match f.round().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "keeping the current certificate");
                    continue;
                }
            };
            if next.pair != self.current.pair {
                match f.server_config(&next) {
                    Ok(cfg) => {
                        live.reload_from_config(Arc::new(cfg));
                        tracing::info!(secret = %f.store.id(), "serving certificate reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "new serving certificate rejected; keeping the current one");
                        continue;
                    }
                }
            }
            self.current = next;
            f.publish(&self.current, &mut reported_missing).await;
        }
    }
}

impl Follower {
    async fn round(&self) -> Result<View, CertError> {
        match &self.source {
            Source::Issue(policy) => {
                let m = reconcile::round(&self.client, &self.store, policy, &self.targets).await?;
                Ok(View {
                    pair: m.pem_pair(),
                    bundle: m.ca_bundle(),
                })
            }
            Source::Follow { certificate } => match self.store.get().await? {
                Some(s) => view_of(&s).map_err(|source| CertError::Unusable {
                    secret: self.store.id(),
                    source,
                }),
                None => Err(CertError::NotWritten {
                    secret: self.store.id(),
                    writer: "cert-manager",
                    namespace: self.store.namespace.clone(),
                    certificate: certificate.clone(),
                }),
            },
        }
    }

    fn server_config(&self, v: &View) -> Result<rustls::ServerConfig, CertError> {
        v.pair
            .server_config(
                &format!("Secret {} tls.crt/tls.key", self.store.id()),
                &self.clients,
            )
            .map_err(|source| CertError::Tls {
                secret: self.store.id(),
                source,
            })
    }

    async fn publish(&self, current: &View, reported_missing: &mut bool) {
        if current.bundle.is_empty() {
            return;
        }
        match publish::publish(&self.client, &self.targets, &current.bundle).await {
            Ok(p) => {
                if !p.patched.is_empty() {
                    tracing::info!(configurations = %p.patched.join(", "), "caBundle published");
                }
                if p.missing.is_empty() {
                    *reported_missing = false;
                } else if !*reported_missing {
                    *reported_missing = true;
                    tracing::info!(
                        configurations = %p.missing.join(", "),
                        "webhook configurations not found (yet); their caBundle is set once they exist"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not publish caBundle; will retry"),
        }
    }
}

/// The serving pair and CA bundle of a Secret someone else writes (cert-manager: `tls.crt`, `tls.key`,
/// `ca.crt`).
fn view_of(s: &Secret) -> Result<View, MaterialError> {
    let data = s.data.clone().unwrap_or_default();
    let get = |k: &str| data.get(k).map(|b| b.0.clone()).filter(|b| !b.is_empty());
    let missing = |k: &str| MaterialError::Missing {
        key: k.to_string(),
        expected: "tls.crt and tls.key, and ca.crt for caBundle",
    };
    Ok(View {
        pair: PemPair {
            cert: get(TLS_CRT).ok_or_else(|| missing(TLS_CRT))?,
            key: get(TLS_KEY).ok_or_else(|| missing(TLS_KEY))?,
        },
        bundle: get(CA_CRT).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn a_followed_secret_needs_the_serving_pair() {
        let mut s = Secret {
            data: Some(BTreeMap::from([(
                TLS_CRT.to_string(),
                ByteString(b"PEM".to_vec()),
            )])),
            ..Secret::default()
        };
        assert_eq!(
            view_of(&s).err().unwrap().to_string(),
            "has no tls.key (expected PEM data under tls.crt and tls.key, and ca.crt for caBundle)"
        );
        s.data
            .as_mut()
            .unwrap()
            .insert(TLS_KEY.into(), ByteString(b"KEY".to_vec()));
        let v = view_of(&s).unwrap();
        assert!(v.bundle.is_empty());
    }
}
