//! How an address is chosen among the free ones.

/// How to choose among free addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Uniform among the free addresses (dense ranges) or the first free one from a uniform point (sparse
    /// ranges): a freed address is unlikely to be handed out again at once, and concurrent allocators
    /// working from stale views of the same subnet rarely collide.
    #[default]
    Random,
    /// The lowest free address, as Kube-OVN and Spiderpool allocate.
    Sequential,
}
