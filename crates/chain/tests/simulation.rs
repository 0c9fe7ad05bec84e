//! Deterministic simulation of a 4-validator network: Simplex + marshal + the executor over
//! Commonware's simulated p2p network, in the deterministic runtime (virtual time, seeded
//! scheduling). Every scenario runs over a few seeds; a failure names its seed.

use commonware_consensus::simplex::mocks::conflicter;
use commonware_cryptography::{Signer as _, ed25519, sha256::Sha256};
use commonware_p2p::{
    simulated::{self, Link, Network, Oracle},
    utils::mux::Muxer,
};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Clock as _, Handle, Quota, Runner as _, Spawner as _, Supervisor as _, deterministic,
};
use commonware_utils::{NZU32, NZUsize, ordered, probability};
use futures::channel::oneshot;
use kessai_chain::{
    BlockRules, Channels, MempoolLimits, Node, Scheme, Store, Timeouts, ValidatorConfig,
    engine::{
        CHANNEL_BACKFILL, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER,
        CHANNEL_TRANSACTIONS, CHANNEL_VOTES, MESSAGE_BYTES_MAX, namespace,
    },
};
use kessai_state::Workload;
use kessai_storage::StoreConfig;
use kessai_types::{Hash32, TxId};
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::Duration,
};

type Context = deterministic::Context;
type PublicKey = ed25519::PublicKey;

/// Validators in every scenario.
const N: usize = 4;
/// Nodes of a simulated chain: the genesis validators and one standby validator, which
/// governance may add.
const NODES: usize = N + 1;
/// Blocks per epoch: short, so that every scenario crosses several epoch boundaries.
const EPOCH_BLOCKS: u64 = 8;
/// Seeds each scenario runs with, unless `KESSAI_SIM_SEEDS` says otherwise (`3`, `1,7,42` or
/// `0..50`).
const SEEDS: [u64; 3] = [1, 7, 42];

fn seeds() -> Vec<u64> {
    let Ok(spec) = std::env::var("KESSAI_SIM_SEEDS") else {
        return SEEDS.to_vec();
    };
    if let Some((from, to)) = spec.split_once("..") {
        let from: u64 = from.trim().parse().expect("KESSAI_SIM_SEEDS: a..b");
        let to: u64 = to.trim().parse().expect("KESSAI_SIM_SEEDS: a..b");
        return (from..to).collect();
    }
    spec.split(',')
        .map(|seed| {
            seed.trim()
                .parse()
                .expect("KESSAI_SIM_SEEDS: comma-separated seeds")
        })
        .collect()
}
/// Virtual time after which a scenario fails ("runtime timeout").
const VIRTUAL_TIMEOUT: Duration = Duration::from_secs(600);
/// Transactions expire this long after genesis (time 0 in the deterministic runtime).
const EXPIRY_MS: u64 = 3_600_000;

fn link() -> Link {
    Link {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        success_rate: probability!(1.0),
    }
}

/// Slow and lossy: one message in five is lost.
fn lossy_link() -> Link {
    Link {
        latency: Duration::from_millis(100),
        jitter: Duration::from_millis(40),
        success_rate: probability!(4, 5),
    }
}

/// What every validator of one simulated chain shares.
struct Chain {
    keys: Vec<ed25519::PrivateKey>,
    workload: Workload,
    genesis_hash: Hash32,
}

impl Chain {
    fn new() -> Self {
        let keys: Vec<_> = (0..NODES as u64)
            .map(ed25519::PrivateKey::from_seed)
            .collect();
        // Genesis at time 0: the deterministic runtime's clock starts at the Unix epoch.
        let mut workload = Workload::new(64, 8, 0);
        workload.genesis.validators = keys[..N]
            .iter()
            .map(|key| kessai_types::PublicKey::Ed25519(key.public_key()))
            .collect();
        workload.genesis.parameters.epoch_blocks = EPOCH_BLOCKS;
        Chain {
            keys,
            workload,
            genesis_hash: Hash32::of(&[b"kessai-simulation-genesis".as_slice()]),
        }
    }

    fn public_key(&self, index: usize) -> PublicKey {
        self.keys[index].public_key()
    }

    fn public_keys(&self) -> Vec<PublicKey> {
        self.keys.iter().map(|k| k.public_key()).collect()
    }

    fn config(&self, index: usize) -> ValidatorConfig {
        ValidatorConfig {
            signer: Some(self.keys[index].clone()),
            public_key: self.public_key(index),
            genesis: self.workload.genesis.clone(),
            genesis_hash: self.genesis_hash,
            store: StoreConfig {
                partition_prefix: format!("node-{index}"),
                page_cache_pages: NZUsize!(1024),
            },
            mempool: MempoolLimits::default(),
            rules: BlockRules::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// Start the simulated network with every validator as a peer.
async fn network(context: &Context, chain: &Chain) -> Oracle<PublicKey, Context> {
    let (network, oracle) = Network::new_with_peers(
        context.child("network"),
        simulated::Config {
            max_size: MESSAGE_BYTES_MAX,
            max_peers_per_set: NZUsize!(NODES),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
        chain.public_keys(),
    )
    .await;
    network.start();
    oracle
}

/// Link every pair of `members`, both directions.
async fn link_all(oracle: &Oracle<PublicKey, Context>, members: &[PublicKey], link: Link) {
    for a in members {
        for b in members {
            if a != b {
                oracle
                    .add_link(a.clone(), b.clone(), link.clone())
                    .await
                    .unwrap();
            }
        }
    }
}

type Sender = simulated::Sender<PublicKey, Context>;
type Receiver = simulated::Receiver<PublicKey>;

/// Register (or re-register, after a crash) the six channels of a validator, in the order of
/// the `CHANNEL_*` constants.
async fn register(
    oracle: &Oracle<PublicKey, Context>,
    me: &PublicKey,
) -> Channels<Sender, Receiver> {
    let control = oracle.control(me.clone());
    let quota = Quota::per_second(NZU32!(100_000));
    let mut pairs = Vec::new();
    for channel in [
        CHANNEL_VOTES,
        CHANNEL_CERTIFICATES,
        CHANNEL_RESOLVER,
        CHANNEL_BACKFILL,
        CHANNEL_BLOCKS,
        CHANNEL_TRANSACTIONS,
    ] {
        pairs.push(control.register(channel, quota).await.unwrap());
    }
    let mut pairs = pairs.into_iter();
    Channels {
        votes: pairs.next().unwrap(),
        certificates: pairs.next().unwrap(),
        resolver: pairs.next().unwrap(),
        backfill: pairs.next().unwrap(),
        blocks: pairs.next().unwrap(),
        transactions: pairs.next().unwrap(),
    }
}

/// A running validator. All its tasks descend from `supervisor`: aborting it crashes the node.
struct Running {
    index: usize,
    node: Node<Context>,
    supervisor: Handle<()>,
}

impl Running {
    fn store(&self) -> &Store<Context> {
        &self.node.store
    }

    fn height(&self) -> u64 {
        self.node.store.applied().height
    }

    /// Crash the node: abort every task, drop every handle on its storage.
    async fn crash(self, context: &Context) {
        let Running {
            node, supervisor, ..
        } = self;
        supervisor.abort();
        let _ = supervisor.await;
        for handle in node.handles {
            handle.abort();
        }
        drop(node.store);
        // Let aborted descendants unwind before anything reopens the partitions.
        context.sleep(Duration::from_millis(10)).await;
    }
}

/// Start validator `index` (generation `generation` of it: restarts reuse its partitions).
async fn launch(
    context: &Context,
    oracle: &Oracle<PublicKey, Context>,
    chain: &Chain,
    index: usize,
    generation: u32,
) -> Running {
    let config = chain.config(index);
    let me = config.public_key.clone();
    let channels = register(oracle, &me).await;
    let blocker = oracle.control(me);
    let peers = oracle.manager();
    let (sender, receiver) = oneshot::channel();
    let supervisor = context
        .child("validator")
        .with_attribute("index", index)
        .with_attribute("generation", generation)
        .spawn(move |context| async move {
            let node = kessai_chain::start(context, config, channels, blocker, peers, Sequential)
                .await
                .expect("validator starts");
            if sender.send(node).is_err() {
                return;
            }
            futures::future::pending::<()>().await
        });
    let node = receiver.await.expect("validator started");
    Running {
        index,
        node,
        supervisor,
    }
}

/// Run `scenario` once with `seed`; a failure, whatever its source, names the seed.
fn run<F, Fut, T>(name: &str, seed: u64, scenario: F) -> T
where
    F: FnOnce(Context, u64) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let started = std::time::Instant::now();
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(VIRTUAL_TIMEOUT));
    let runner = deterministic::Runner::new(config);
    let result = catch_unwind(AssertUnwindSafe(|| {
        runner.start(|context| scenario(context, seed))
    }));
    match result {
        Ok(output) => {
            eprintln!("{name} seed {seed}: {:?} wall time", started.elapsed());
            output
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            panic!("{name} failed with seed {seed}: {message}");
        }
    }
}

/// Run `scenario` for every seed of [`seeds`].
fn for_seeds<F, Fut>(name: &str, scenario: F)
where
    F: Fn(Context, u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for seed in seeds() {
        run(name, seed, &scenario);
    }
}

/// Virtual seconds since the runtime started.
fn now(context: &Context) -> f64 {
    context
        .current()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Wait until every node has applied `height`; false if `within` (virtual) passes first.
async fn wait_height(context: &Context, nodes: &[&Running], height: u64, within: Duration) -> bool {
    let deadline = context.current() + within;
    loop {
        if nodes.iter().all(|n| n.height() >= height) {
            return true;
        }
        if context.current() >= deadline {
            return false;
        }
        context.sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until every node holds every transaction of `ids` as final.
async fn wait_final(context: &Context, nodes: &[&Running], ids: &[TxId], within: Duration) -> bool {
    let deadline = context.current() + within;
    loop {
        let mut all = true;
        'outer: for node in nodes {
            for id in ids {
                if node.store().transaction(id).await.is_none() {
                    all = false;
                    break 'outer;
                }
            }
        }
        if all {
            return true;
        }
        if context.current() >= deadline {
            return false;
        }
        context.sleep(Duration::from_millis(100)).await;
    }
}

fn heights(nodes: &[&Running]) -> Vec<(usize, u64)> {
    nodes.iter().map(|n| (n.index, n.height())).collect()
}

/// Every pair of nodes has the same state root and block record at every height both applied.
/// Returns the lowest applied height.
async fn assert_agree(seed: u64, nodes: &[&Running]) -> u64 {
    let common = nodes.iter().map(|n| n.height()).min().unwrap();
    let reference = nodes[0];
    for height in 0..=common {
        let root = reference.store().root_at(height).await;
        let record = reference.store().record(height).await.unwrap();
        assert!(
            root.is_some(),
            "seed {seed}: node {} has no root at {height}",
            reference.index
        );
        assert!(
            record.is_some(),
            "seed {seed}: node {} has no record at {height}",
            reference.index
        );
        for other in &nodes[1..] {
            let other_root = other.store().root_at(height).await;
            assert_eq!(
                root, other_root,
                "seed {seed}: state roots of nodes {} and {} differ at height {height}",
                reference.index, other.index
            );
            let other_record = other.store().record(height).await.unwrap();
            assert_eq!(
                record, other_record,
                "seed {seed}: block records of nodes {} and {} differ at height {height}",
                reference.index, other.index
            );
        }
    }
    common
}

/// Submit `count` signed transfers (every 7th fails at execution) on `node`; all are admitted.
/// A fresh chain of `N` validators, all linked by `link` and started.
async fn start_all(
    context: &Context,
    link: Link,
) -> (Chain, Oracle<PublicKey, Context>, Vec<Running>) {
    let chain = Chain::new();
    let oracle = network(context, &chain).await;
    link_all(&oracle, &chain.public_keys(), link).await;
    let mut nodes = Vec::new();
    for index in 0..N {
        nodes.push(launch(context, &oracle, &chain, index, 0).await);
    }
    (chain, oracle, nodes)
}

/// Wait until `nodes` reach `height` and hold every transaction in `ids` final, then check they
/// agree; returns the height they agree up to.
async fn settle(
    context: &Context,
    seed: u64,
    nodes: &[&Running],
    height: u64,
    ids: &[TxId],
    within: Duration,
) -> u64 {
    assert!(
        wait_height(context, nodes, height, within).await,
        "seed {seed}: height {height} not reached: {:?}",
        heights(nodes)
    );
    assert!(
        wait_final(context, nodes, ids, within).await,
        "seed {seed}: transactions not final: {:?}",
        heights(nodes)
    );
    assert_agree(seed, nodes).await
}

async fn submit(seed: u64, node: &Running, chain: &Chain, batch: u64, count: usize) -> Vec<TxId> {
    let transactions = chain
        .workload
        .transfers(seed * 1_000 + batch, count, EXPIRY_MS, 7);
    let results = node
        .node
        .submit
        .submit(&node.node.store, transactions)
        .await;
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("seed {seed}: admission refused: {e}")))
        .collect()
}

#[test]
fn four_validators_finalize_and_agree() {
    for_seeds(
        "four_validators_finalize_and_agree",
        |context, seed| async move {
            let (chain, _oracle, nodes) = start_all(&context, link()).await;

            // Transactions arrive on one validator, in a few batches while the chain runs.
            let mut ids = Vec::new();
            for batch in 0..4 {
                ids.extend(submit(seed, &nodes[batch as usize % 2], &chain, batch, 50).await);
                context.sleep(Duration::from_millis(700)).await;
            }

            let all: Vec<&Running> = nodes.iter().collect();
            let common = settle(&context, seed, &all, 20, &ids, Duration::from_secs(120)).await;
            assert!(common >= 20, "seed {seed}");
            eprintln!(
                "seed {seed}: {} transactions final, all agree up to {common} ({:.1}s)",
                ids.len(),
                now(&context)
            );

            // Every transaction landed exactly where the others say; some were rejected.
            let mut rejected = 0;
            for id in &ids {
                let location = nodes[0].store().transaction(id).await.unwrap();
                rejected += usize::from(location.rejection.is_some());
                for node in &nodes[1..] {
                    assert_eq!(
                        Some(location),
                        node.store().transaction(id).await,
                        "seed {seed}: transaction {} located differently on node {}",
                        id.to_hex(),
                        node.index
                    );
                }
            }
            assert!(rejected > 0, "seed {seed}: expected some failing transfers");
            assert!(rejected < ids.len(), "seed {seed}: every transfer failed");

            // The blocks marshal serves match the records.
            for height in 1..=common {
                let record = nodes[0].store().record(height).await.unwrap().unwrap();
                for node in &nodes {
                    let block = node.node.blocks.block(height).await.unwrap_or_else(|| {
                        panic!("seed {seed}: node {} lacks block {height}", node.index)
                    });
                    assert_eq!(block.height, height, "seed {seed}");
                    assert_eq!(block.time_ms, record.time_ms, "seed {seed}: block {height}");
                    assert_eq!(
                        block.transactions.len(),
                        record.outcomes.len(),
                        "seed {seed}: block {height} on node {}",
                        node.index
                    );
                }
            }
        },
    );
}

#[test]
fn one_of_four_down_keeps_finalizing() {
    for_seeds(
        "one_of_four_down_keeps_finalizing",
        |context, seed| async move {
            let chain = Chain::new();
            let oracle = network(&context, &chain).await;
            link_all(&oracle, &chain.public_keys(), link()).await;
            // Validator 3 is never started: its leader views time out and are skipped.
            let mut nodes = Vec::new();
            for index in 0..N - 1 {
                nodes.push(launch(&context, &oracle, &chain, index, 0).await);
            }
            let ids = submit(seed, &nodes[1], &chain, 0, 100).await;

            let all: Vec<&Running> = nodes.iter().collect();
            let end = settle(&context, seed, &all, 20, &ids, Duration::from_secs(180)).await;
            eprintln!(
                "seed {seed}: 3 of 4 agree up to {end} ({:.1}s)",
                now(&context)
            );

            // Validator 3 joins late, from genesis: it backfills every finalized block and then
            // finalizes with the others.
            nodes.push(launch(&context, &oracle, &chain, N - 1, 0).await);
            let all: Vec<&Running> = nodes.iter().collect();
            let target = end + 5;
            assert!(
                wait_height(&context, &all, target, Duration::from_secs(180)).await,
                "seed {seed}: the late validator did not catch up to {target}: {:?}",
                heights(&all)
            );
            let end = assert_agree(seed, &all).await;
            eprintln!(
                "seed {seed}: late joiner caught up, 4 agree up to {end} ({:.1}s)",
                now(&context)
            );
        },
    );
}

#[test]
fn two_of_four_down_halts_then_resumes() {
    for_seeds(
        "two_of_four_down_halts_then_resumes",
        |context, seed| async move {
            let (chain, oracle, mut nodes) = start_all(&context, link()).await;
            let mut ids = submit(seed, &nodes[0], &chain, 0, 50).await;
            {
                let all: Vec<&Running> = nodes.iter().collect();
                assert!(
                    wait_height(&context, &all, 6, Duration::from_secs(60)).await,
                    "seed {seed}: height 6 not reached: {:?}",
                    heights(&all)
                );
            }

            // Crash validator 3 at a seed-dependent moment, while blocks are in flight; the other
            // three keep finalizing without it.
            context.sleep(Duration::from_millis(seed * 37 % 150)).await;
            let third = nodes.pop().unwrap();
            let crashed_at = third.height();
            third.crash(&context).await;
            ids.extend(submit(seed, &nodes[1], &chain, 1, 50).await);
            {
                let three: Vec<&Running> = nodes.iter().collect();
                let target = crashed_at + 6;
                assert!(
                    wait_height(&context, &three, target, Duration::from_secs(120)).await,
                    "seed {seed}: height {target} not reached by 3 of 4: {:?}",
                    heights(&three)
                );
            }

            // Crash validator 2 too: no quorum is left.
            context.sleep(Duration::from_millis(seed * 53 % 150)).await;
            let second = nodes.pop().unwrap();
            second.crash(&context).await;

            // Whatever was in flight settles, then nothing is finalized.
            context.sleep(Duration::from_secs(3)).await;
            let before: Vec<u64> = nodes.iter().map(Running::height).collect();
            ids.extend(submit(seed, &nodes[0], &chain, 2, 50).await);
            context.sleep(Duration::from_secs(10)).await;
            let after: Vec<u64> = nodes.iter().map(Running::height).collect();
            assert_eq!(
                before, after,
                "seed {seed}: 2 of 4 validators finalized blocks without a quorum"
            );
            let live: Vec<&Running> = nodes.iter().collect();
            let halted = assert_agree(seed, &live).await;

            // Restart validator 3 on its partitions: 3 of 4 again. It recovers what it had applied
            // and must fetch the blocks finalized while it was down.
            let restarted = launch(&context, &oracle, &chain, 3, 1).await;
            assert!(
                restarted.height() >= crashed_at,
                "seed {seed}: restarted validator reopened at {} below its {crashed_at}",
                restarted.height()
            );
            eprintln!(
                "seed {seed}: node 3 crashed at {crashed_at}; halted at {after:?}; node 3 reopened at {} ({:.1}s)",
                restarted.height(),
                now(&context)
            );
            nodes.push(restarted);
            let target = halted + 10;
            let live: Vec<&Running> = nodes.iter().collect();
            let end = settle(
                &context,
                seed,
                &live,
                target,
                &ids,
                Duration::from_secs(180),
            )
            .await;
            eprintln!("seed {seed}: resumed to {end} ({:.1}s)", now(&context));
        },
    );
}

#[test]
fn partition_heals() {
    for_seeds("partition_heals", |context, seed| async move {
        let (chain, oracle, nodes) = start_all(&context, link()).await;
        let keys = chain.public_keys();
        let all: Vec<&Running> = nodes.iter().collect();
        assert!(
            wait_height(&context, &all, 5, Duration::from_secs(60)).await,
            "seed {seed}: height 5 not reached: {:?}",
            heights(&all)
        );

        // Split {0, 1} | {2, 3}.
        for a in &keys[..2] {
            for b in &keys[2..] {
                oracle.remove_link(a.clone(), b.clone()).await.unwrap();
                oracle.remove_link(b.clone(), a.clone()).await.unwrap();
            }
        }
        context.sleep(Duration::from_secs(3)).await;
        let before: Vec<u64> = nodes.iter().map(Running::height).collect();
        let mut ids = submit(seed, &nodes[0], &chain, 0, 30).await;
        ids.extend(submit(seed, &nodes[3], &chain, 1, 30).await);
        context.sleep(Duration::from_secs(15)).await;
        let after: Vec<u64> = nodes.iter().map(Running::height).collect();
        assert_eq!(
            before, after,
            "seed {seed}: a 2/2 partition finalized blocks"
        );
        let split = assert_agree(seed, &all).await;

        // Heal.
        for a in &keys[..2] {
            for b in &keys[2..] {
                oracle.add_link(a.clone(), b.clone(), link()).await.unwrap();
                oracle.add_link(b.clone(), a.clone(), link()).await.unwrap();
            }
        }
        let target = after.iter().copied().max().unwrap().max(split) + 10;
        let end = settle(&context, seed, &all, target, &ids, Duration::from_secs(180)).await;
        eprintln!(
            "seed {seed}: split at {before:?}, still {after:?} before healing; healed to {end} ({:.1}s)",
            now(&context)
        );
    });
}

#[test]
fn byzantine_conflicter() {
    for_seeds("byzantine_conflicter", |context, seed| async move {
        let chain = Chain::new();
        let oracle = network(&context, &chain).await;
        let keys = chain.public_keys();
        link_all(&oracle, &keys, link()).await;

        // Validator 0 signs a random conflicting notarize/finalize for every vote it sees, beside
        // the vote itself; it never proposes.
        let byzantine = 0;
        let channels = register(&oracle, &keys[byzantine]).await;
        let scheme = Scheme::signer(
            &namespace(&chain.genesis_hash),
            ordered::Set::from_iter_dedup(chain.keys[..N].iter().map(|k| k.public_key())),
            chain.keys[byzantine].clone(),
        )
        .unwrap();
        // Votes travel on a subchannel per epoch: the conflicter attacks the first three (the
        // validator set never changes here, so one scheme serves them all).
        let (mux, mut votes) = Muxer::new(
            context.child("byzantine_mux"),
            channels.votes.0,
            channels.votes.1,
        );
        mux.start();
        for epoch in 0..3 {
            let conflicter: conflicter::Conflicter<_, _, Sha256> = conflicter::Conflicter::new(
                context.child("byzantine").with_attribute("epoch", epoch),
                conflicter::Config {
                    scheme: scheme.clone(),
                },
            );
            conflicter.start(votes.register(epoch).await.unwrap());
        }

        let mut nodes = Vec::new();
        for index in 1..N {
            nodes.push(launch(&context, &oracle, &chain, index, 0).await);
        }
        let ids = submit(seed, &nodes[0], &chain, 0, 100).await;
        let honest: Vec<&Running> = nodes.iter().collect();
        let end = settle(&context, seed, &honest, 20, &ids, Duration::from_secs(180)).await;

        // The honest validators caught the equivocation and blocked the byzantine one.
        let blocked = oracle.blocked().await.unwrap();
        assert!(
            blocked.iter().all(|(_, to)| *to == keys[byzantine]),
            "seed {seed}: an honest validator was blocked: {blocked:?}"
        );
        assert!(
            blocked.iter().any(|(_, to)| *to == keys[byzantine]),
            "seed {seed}: nobody blocked the conflicter"
        );
        eprintln!(
            "seed {seed}: honest 3 agree up to {end}; blocks: {} ({:.1}s)",
            blocked.len(),
            now(&context)
        );
    });
}

/// The same seed replays the same execution: the runtime's event audit, the virtual time and
/// every state root match.
#[test]
fn same_seed_same_run() {
    let scenario = |context: Context, seed: u64| async move {
        let (chain, _oracle, nodes) = start_all(&context, link()).await;
        submit(seed, &nodes[0], &chain, 0, 50).await;
        let all: Vec<&Running> = nodes.iter().collect();
        assert!(
            wait_height(&context, &all, 10, Duration::from_secs(60)).await,
            "seed {seed}: height 10 not reached: {:?}",
            heights(&all)
        );
        let common = assert_agree(seed, &all).await;
        let mut roots = Vec::new();
        for height in 0..=common {
            roots.push(nodes[0].store().root_at(height).await.unwrap());
        }
        (context.auditor().state(), context.current(), roots)
    };
    let seed = seeds()[0];
    let first = run("same_seed_same_run", seed, scenario);
    let second = run("same_seed_same_run", seed, scenario);
    assert_eq!(first.1, second.1, "seed {seed}: virtual end times differ");
    assert_eq!(
        first.2, second.2,
        "seed {seed}: state roots differ between runs"
    );
    assert_eq!(
        first.0, second.0,
        "seed {seed}: runtime audits differ between runs"
    );
}

#[test]
fn lossy_links_finalize_and_agree() {
    for_seeds(
        "lossy_links_finalize_and_agree",
        |context, seed| async move {
            let (chain, _oracle, nodes) = start_all(&context, lossy_link()).await;
            let mut ids = submit(seed, &nodes[0], &chain, 0, 50).await;
            ids.extend(submit(seed, &nodes[2], &chain, 1, 50).await);
            let all: Vec<&Running> = nodes.iter().collect();
            let end = settle(&context, seed, &all, 15, &ids, Duration::from_secs(300)).await;
            eprintln!(
                "seed {seed}: lossy links, 4 agree up to {end} ({:.1}s)",
                now(&context)
            );
        },
    );
}

/// A validator-set change through governance, without stopping the network: the genesis
/// validators 0-3 run with standby validator 4; governance replaces 0 with 4. Once the next epoch
/// starts, validator 2 restarts (and must resume on the new set), then validators 0 and 1 stop: on the old set, 2 of 4 could not finalize; on the new set
/// {1, 2, 3, 4}, validators 2, 3 and 4 are a quorum and the chain goes on.
#[test]
fn validator_set_changes_at_epoch_boundary() {
    for_seeds(
        "validator_set_changes_at_epoch_boundary",
        |context, seed| async move {
            let (chain, oracle, mut nodes) = start_all(&context, link()).await;
            nodes.push(launch(&context, &oracle, &chain, N, 0).await);

            let governor = kessai_types::PartyId::new("GOVERNOR").unwrap();
            let body = kessai_types::TxBody {
                network: chain.workload.genesis.parameters.network,
                submitter: governor,
                unique_id: kessai_types::UniqueId([seed as u8; 16]),
                expiry: kessai_types::Expiry::TimeMs(EXPIRY_MS),
                operation: kessai_types::Operation::SetValidators(kessai_types::SetValidators {
                    validators: (1..NODES)
                        .map(|index| kessai_types::PublicKey::Ed25519(chain.public_key(index)))
                        .collect(),
                }),
            };
            let change = kessai_types::Transaction::sign(
                body,
                &[(governor, &kessai_types::PrivateKey::from_seed(1))],
            );
            let results = nodes[1]
                .node
                .submit
                .submit(&nodes[1].node.store, vec![change])
                .await;
            let id = results[0].expect("the change is admitted");
            let all: Vec<&Running> = nodes.iter().collect();
            assert!(
                wait_final(&context, &all, &[id], Duration::from_secs(60)).await,
                "seed {seed}: the change is not final: {:?}",
                heights(&all)
            );
            let location = nodes[1].store().transaction(&id).await.unwrap();
            assert_eq!(
                location.rejection, None,
                "seed {seed}: the change was rejected"
            );

            // The change applies after the last block of the epoch it landed in.
            let boundary = (location.height / EPOCH_BLOCKS + 1) * EPOCH_BLOCKS - 1;
            let settled = settle(
                &context,
                seed,
                &all,
                boundary + 2,
                &[],
                Duration::from_secs(60),
            )
            .await;
            eprintln!(
                "seed {seed}: change final at {}, epoch ends at {boundary}, all 5 agree up to {settled}",
                location.height
            );

            // Validator 2 restarts inside the new epoch: it must resume on the new set, not the
            // genesis one (it is needed for a quorum below).
            let restarted = nodes.remove(2);
            restarted.crash(&context).await;
            nodes.insert(2, launch(&context, &oracle, &chain, 2, 1).await);

            let mut nodes = nodes.into_iter();
            let removed = nodes.next().unwrap();
            let stopped = nodes.next().unwrap();
            removed.crash(&context).await;
            stopped.crash(&context).await;
            let rest: Vec<Running> = nodes.collect();
            let rest_refs: Vec<&Running> = rest.iter().collect();
            let from = rest_refs.iter().map(|n| n.height()).max().unwrap();
            let ids = submit(seed, &rest[0], &chain, 1, 50).await;
            let end = settle(
                &context,
                seed,
                &rest_refs,
                from + 2 * EPOCH_BLOCKS,
                &ids,
                Duration::from_secs(120),
            )
            .await;
            eprintln!(
                "seed {seed}: validators 2, 3 and the added 4 finalize on their own, up to {end} ({:.1}s)",
                now(&context)
            );
        },
    );
}
