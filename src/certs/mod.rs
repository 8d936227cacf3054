//! The webhook's serving certificate and who may call, in every `--cert-mode`; [`start`] starts it.
//!
//! When nadipam manages it itself (`--cert-mode=self-managed`): a CA and a serving certificate in one Secret
//! that every replica reads, writes with optimistic concurrency and follows, so any number of replicas agree
//! on one certificate without leader election, rotate it before it expires, and publish the CA into
//! `caBundle` without a single admission request failing.
//!
//! - [`serving`]: the entry point ([`start`]): the live TLS configuration for `--cert-mode`, kept current.
//! - [`pem`]: a certificate and key as PEM, turned into a rustls configuration.
//! - [`files`]: `--cert-mode=files`: PEM files, reloaded when they change.
//! - [`client_auth`]: who may call the admission paths (`--client-ca`).
//! - [`material`]: what the Secret holds, parsed and checked.
//! - [`issue`]: issuing CAs and serving certificates (rcgen).
//! - [`policy`]: when to rotate what (pure).
//! - [`sans`]: the serving certificate's names.
//! - [`store`]: the Secret: create-if-absent, replace with a resourceVersion precondition.
//! - [`publish`]: the `caBundle` of the webhook configurations.
//! - [`settings`]: the flags, checked together.
//! - [`reconcile`]: one self-managed round: read, decide, write.
//! - [`follow`]: bootstrap and the loop every replica runs: reload TLS, publish `caBundle`.
//! - [`certmanager`]: `--cert-mode=cert-manager`: the Issuer and Certificate objects, applied by the server.

mod certmanager;
mod client_auth;
mod error;
mod files;
mod follow;
mod issue;
mod material;
mod pem;
mod policy;
mod publish;
mod reconcile;
mod sans;
mod serving;
mod settings;
mod store;

pub use certmanager::CertManager;
pub use client_auth::ClientAuth;
pub(crate) use client_auth::Refusal;
pub use error::{CertError, MaterialError, TlsError};
pub use follow::ManagedCerts;
pub use pem::{PemPair, install_crypto_provider};
pub use policy::ROTATE_ANNOTATION;
pub use publish::Targets;
pub use serving::{CertMode, Serving, start};
pub use settings::Settings;
