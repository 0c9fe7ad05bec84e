//! Run a validator for real: the tokio runtime on disk and authenticated, encrypted p2p between
//! known peers (each dialed at its configured address).

use crate::engine::{
    CHANNEL_BACKFILL, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_TRANSACTIONS,
    CHANNEL_VOTES, Channels, MESSAGE_BYTES_MAX, Node, ValidatorConfig,
};
use commonware_cryptography::{ChaCha20Poly1305, Signer as _, ed25519};
use commonware_p2p::{Address, AddressableManager as _, authenticated::lookup};
use commonware_parallel::Rayon;
use commonware_runtime::{Quota, Runner as _, Supervisor as _, tokio};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZU32, NZUsize, ordered::Map};
use kessai_storage::StorageError;
use std::{future::Future, net::SocketAddr, num::NonZeroUsize, path::PathBuf, time::Duration};

/// The runtime context of a node.
pub type Context = tokio::Context;

/// Where this node listens and whom it connects to.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// This node's p2p identity (a validator's is its consensus key).
    pub identity: ed25519::PrivateKey,
    pub listen: SocketAddr,
    /// Every node of the network (validators and observers), this one included.
    pub peers: Vec<(ed25519::PublicKey, SocketAddr)>,
}

/// Run `main` on a multi-threaded runtime storing under `storage`.
pub fn run<F, Fut>(storage: PathBuf, worker_threads: usize, main: F)
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let config = tokio::Config::new()
        .with_worker_threads(worker_threads)
        .with_storage_directory(storage)
        .with_catch_panics(false);
    tokio::Runner::new(config).start(main);
}

/// Start a validator (or observer) on the authenticated p2p network.
pub async fn start_networked(
    context: Context,
    config: ValidatorConfig,
    network: NetworkConfig,
) -> Result<Node<Context>, StorageError> {
    let namespace = [
        crate::engine::namespace(&config.genesis_hash).as_slice(),
        b"_P2P",
    ]
    .concat();
    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer: network.identity.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let mut p2p_config = lookup::Config::local(
        handshake,
        &namespace,
        network.listen,
        NonZeroUsize::new(network.peers.len().max(1)).expect("non-zero"),
        MESSAGE_BYTES_MAX,
        NZUsize!(4096),
    );
    p2p_config.allow_private_ips = true;
    let (mut p2p, mut oracle) = lookup::Network::new(context.child("network"), p2p_config);
    let peers: Map<ed25519::PublicKey, Address> = Map::try_from(
        network
            .peers
            .iter()
            .map(|(key, address)| (key.clone(), Address::from(*address)))
            .collect::<Vec<_>>(),
    )
    .map_err(|_| StorageError::Database("duplicate peer keys in the network config".into()))?;
    oracle.track(0, peers);
    // Per-peer rate of each channel. The network sizes each inbound mailbox as one burst per
    // peer, up front: a generous quota costs memory and start-up time.
    let quota = Quota::per_second(NZU32!(1_000));
    let channels = Channels {
        votes: p2p.register(CHANNEL_VOTES, quota),
        certificates: p2p.register(CHANNEL_CERTIFICATES, quota),
        resolver: p2p.register(CHANNEL_RESOLVER, quota),
        backfill: p2p.register(CHANNEL_BACKFILL, quota),
        blocks: p2p.register(CHANNEL_BLOCKS, quota),
        transactions: p2p.register(CHANNEL_TRANSACTIONS, quota),
    };
    let p2p_handle = p2p.start();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let strategy = Rayon::new(NonZeroUsize::new(cores).expect("non-zero"))
        .map_err(|e| StorageError::Database(format!("thread pool: {e}")))?;
    debug_assert_eq!(network.identity.public_key(), config.public_key);
    let mut node =
        crate::engine::start(context, config, channels, oracle.clone(), oracle, strategy).await?;
    node.handles.push(p2p_handle);
    Ok(node)
}

/// A function that renders the runtime's metrics (consensus, p2p, storage) as Prometheus text.
pub fn metrics(context: &Context) -> std::sync::Arc<dyn Fn() -> String + Send + Sync> {
    use commonware_runtime::Metrics as _;
    let context = context.child("metrics");
    std::sync::Arc::new(move || context.encode())
}
