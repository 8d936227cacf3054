//! Why a Network reconcile failed; names the Network and the call. The Network is retried after a pause.

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("Network {network}: {action} failed: {source}")]
    Api {
        network: String,
        /// What was attempted, e.g. `applying NetworkAttachmentDefinition kube-system/ovs-conf`.
        action: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl Error {
    pub(crate) fn api(network: &str, action: impl Into<String>, source: kube::Error) -> Error {
        Error::Api {
            network: network.to_string(),
            action: action.into(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_network_and_the_call() {
        let source = kube::Error::Api(
            kube::core::Status::failure("forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        let e = Error::api("default/macvlan", "creating Subnet macvlan.default", source);
        assert!(
            e.to_string()
                .starts_with("Network default/macvlan: creating Subnet macvlan.default failed: "),
            "{e}"
        );
    }
}
