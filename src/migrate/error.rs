//! Errors of `adopt` and `import`: what could not be read or written, naming the object, the field, the value
//! and what is valid. Problems with single peer objects or Pods are not errors: they are items of the report
//! (conflicts and skips), so one bad object never stops a migration.

/// Why `adopt` or `import` could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--network {value:?} is not a network reference (expected <namespace>/<nad>, e.g. default/macvlan)"
    )]
    BadNetwork { value: String },
    #[error(
        "network {network}: no Subnet has provider {provider} (or {provider}.ovn); create the nadipam Subnet the \
         network will allocate from first (its cidrBlock covering the Pods' addresses, spec.provider: {provider}), \
         or name one with --subnet"
    )]
    NoSubnet { network: String, provider: String },
    #[error("--subnet {name}: no Subnet of that name exists; create it first or fix --subnet")]
    SubnetNotFound { name: String },
    #[error("Subnet {name}: {problem}")]
    BadSubnet { name: String, problem: String },
    #[error("listing {what}: {source}")]
    List {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
    #[error("rendering the plan as {format}: {message}")]
    Render {
        format: &'static str,
        message: String,
    },
}
