//! The webhook's serving certificate when nadipam manages it itself (`--cert-mode=self-managed`): a CA and a
//! serving certificate in one Secret that every replica reads, writes with optimistic concurrency and
//! follows, so any number of replicas agree on one certificate without leader election, rotate it before it
//! expires, and publish the CA into `caBundle` without a single admission request failing.
//!
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
mod error;
mod follow;
mod issue;
mod material;
mod policy;
mod publish;
mod reconcile;
mod sans;
mod settings;
mod store;

pub use certmanager::CertManager;
pub use error::{CertError, MaterialError};
pub use follow::ManagedCerts;
pub use policy::ROTATE_ANNOTATION;
pub use publish::Targets;
pub use settings::Settings;

/// Where the serving certificate comes from (`--cert-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CertMode {
    /// PEM files (`--tls-cert`, `--tls-key`), reloaded when they change: a mounted Secret, e.g. cert-manager's
    /// when the Helm chart creates the Certificate.
    Files,
    /// A CA and serving certificate the server issues, stores in `--cert-secret`, rotates and publishes.
    SelfManaged,
    /// The server applies a cert-manager Issuer and Certificate, then serves the Secret cert-manager writes
    /// and publishes its `ca.crt`.
    CertManager,
}
