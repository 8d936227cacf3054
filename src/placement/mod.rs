//! Where a Pod may run, in pure terms: IPPool and Subnet node scopes (`spec.nodeSelector`, and SpiderIPPool's
//! `nodeAffinity` and `nodeName`), a Pod's own node constraints (`spec.nodeName`, `spec.nodeSelector`,
//! required node affinity), and the required node-affinity terms that keep a Pod on the nodes where its
//! address is valid; and who may use a pool (label selectors over a Pod's or a Namespace's labels, which share the
//! node selectors' requirements). No I/O: the webhook feeds it the cached Nodes (name and labels).

mod affinity;
mod error;
mod labels;
mod pod;
mod requirement;
mod scope;

pub(crate) use affinity::with_scopes;
pub(crate) use error::SelectorError;
pub(crate) use labels::LabelScope;
pub(crate) use pod::PodConstraints;
pub(crate) use scope::NodeScope;

use std::collections::BTreeMap;

/// What placement reads of a Node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodeFacts<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// Up to five node names (sorted, so messages are stable), then how many there are in all: what messages and
/// status show.
pub(crate) fn show_nodes<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    match names.len() {
        0 => "no node".to_string(),
        1 => format!("node {}", names[0]),
        n if n <= SHOWN => format!("nodes {}", names.join(", ")),
        n => format!("nodes {}, … ({n} in all)", names[..SHOWN].join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::show_nodes;

    #[test]
    fn node_lists_stay_short() {
        assert_eq!(show_nodes([]), "no node");
        assert_eq!(show_nodes(["a"]), "node a");
        assert_eq!(show_nodes(["a", "b"]), "nodes a, b");
        assert_eq!(
            show_nodes(["g", "b", "c", "d", "e", "f", "a"]),
            "nodes a, b, c, d, e, … (7 in all)"
        );
    }
}
