//! `kessai node`: run a validator or observer with its HTTP API.

use crate::{
    api::{Api, Counters},
    config::{NodeConfig, NodeRole},
    genesis::GenesisFile,
};
use kessai_chain::{
    BlockRules, MempoolLimits, NetworkConfig, Timeouts, ValidatorConfig, start_networked,
};
use kessai_storage::StoreConfig;
use kessai_types::{PrivateKey, PublicKey};
use std::{num::NonZeroUsize, path::Path, sync::Arc, sync::atomic::Ordering, time::Duration};
use tracing::{error, info};

/// Read a key file (`ed25519:<hex>`, whitespace ignored).
pub fn read_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?;
    PrivateKey::from_text(text.trim())
        .map_err(|e| anyhow::anyhow!("key file {}: {e}", path.display()))
}

pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = NodeConfig::load(config_path)?;
    let genesis = GenesisFile::load(&config.node.genesis_file)?;
    let key = read_key(&config.node.key_file)?;
    let public_key = key.public_key();
    if config.node.role == NodeRole::Validator && !genesis.genesis.validators.contains(&public_key)
    {
        info!(
            key = %public_key,
            "not a genesis validator: this node follows the chain and votes from the epoch \
             governance adds it to the validator set"
        );
    }
    let peers = config
        .p2p
        .peers
        .iter()
        .enumerate()
        .map(|(i, peer)| {
            let key: PublicKey = peer
                .public_key
                .parse()
                .map_err(|e| anyhow::anyhow!("p2p.peers[{i}].public_key: {e}"))?;
            Ok((key.ed25519().clone(), peer.address))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !peers.iter().any(|(peer, _)| peer == public_key.ed25519()) {
        anyhow::bail!("p2p.peers must list this node's own key {public_key}");
    }
    let transactions_max = genesis.genesis.parameters.block_transactions_max as usize;
    if transactions_max > kessai_chain::BLOCK_TRANSACTIONS_MAX {
        anyhow::bail!(
            "genesis chain.block_transactions_max {transactions_max} exceeds what a block can \
             carry ({})",
            kessai_chain::BLOCK_TRANSACTIONS_MAX
        );
    }
    let c = &config.consensus;
    let validator = ValidatorConfig {
        signer: (config.node.role == NodeRole::Validator).then(|| key.ed25519().clone()),
        public_key: public_key.ed25519().clone(),
        genesis: genesis.genesis.clone(),
        genesis_hash: genesis.hash,
        store: StoreConfig {
            partition_prefix: "kessai".into(),
            page_cache_pages: NonZeroUsize::new(config.node.page_cache_pages).expect("checked"),
        },
        mempool: MempoolLimits {
            transactions_max: config.mempool.transactions_max,
            bytes_max: config.mempool.bytes_max,
        },
        rules: BlockRules {
            transactions_max,
            interval: Duration::from_millis(c.block_interval_ms),
            ..BlockRules::default()
        },
        timeouts: Timeouts {
            leader: Duration::from_millis(c.leader_timeout_ms),
            certification: Duration::from_millis(c.certification_timeout_ms),
            retry: Duration::from_millis(c.leader_timeout_ms / 2),
            // Skipping an inactive leader must wait longer than certification and retry.
            skip: Duration::from_millis(c.certification_timeout_ms.max(2_500) * 2),
        },
    };
    let network = NetworkConfig {
        identity: key.ed25519().clone(),
        listen: config.p2p.listen,
        peers,
    };
    std::fs::create_dir_all(&config.node.data_dir)?;
    let api_config = config.api.clone();
    info!(
        role = ?config.node.role, key = %public_key, api = %api_config.listen,
        p2p = %config.p2p.listen, genesis = %genesis.hash, "starting"
    );
    let (done_sender, done) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    kessai_chain::run(
        config.node.data_dir.clone(),
        config.node.worker_threads,
        move |context| async move {
            let result = serve(context, validator, network, api_config).await;
            let _ = done_sender.send(result);
        },
    );
    done.recv().unwrap_or(Ok(()))
}

async fn serve(
    context: kessai_chain::Context,
    validator: ValidatorConfig,
    network: NetworkConfig,
    api_config: crate::config::ApiSection,
) -> anyhow::Result<()> {
    let runtime_metrics = kessai_chain::metrics(&context);
    let peers = network.peers.len();
    let node = start_networked(context, validator, network).await?;
    let counters = Arc::new(Counters::default());
    let api = Api {
        store: node.store.clone(),
        mempool: node.mempool.clone(),
        submit: node.submit.clone(),
        blocks: node.blocks.clone(),
        counters: counters.clone(),
        wait_timeout: Duration::from_millis(api_config.wait_timeout_ms),
        peers,
        runtime_metrics,
    };
    // Count applied and rejected transactions from the finalized records.
    tokio::spawn({
        let store = node.store.clone();
        async move {
            let mut subscription = store.subscribe();
            let mut counted = store.applied().height;
            while subscription.changed().await.is_ok() {
                let height = store.applied().height;
                for h in counted + 1..=height {
                    if let Ok(Some(record)) = store.record(h).await {
                        let rejected = record
                            .outcomes
                            .iter()
                            .filter(|o| o.rejection.is_some())
                            .count();
                        counters
                            .rejected
                            .fetch_add(rejected as u64, Ordering::Relaxed);
                        counters.applied.fetch_add(
                            (record.outcomes.len() - rejected) as u64,
                            Ordering::Relaxed,
                        );
                    }
                }
                counted = height;
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(api_config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("api.listen {}: {e}", api_config.listen))?;
    info!(address = %api_config.listen, "API listening");
    let router = crate::api::router(api, api_config.request_bytes_max);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        (result, index, _) = futures::future::select_all(node.handles) => {
            error!(?result, index, "a node actor stopped");
            server.abort();
            anyhow::bail!("node actor {index} stopped: {result:?}")
        }
        // Every finalized block is durable before it is acknowledged: stopping here loses
        // nothing; the next start resumes at the last applied height.
        _ = tokio::signal::ctrl_c() => info!("interrupted; stopping"),
        _ = terminate.recv() => info!("terminated; stopping"),
    }
    server.abort();
    Ok(())
}
