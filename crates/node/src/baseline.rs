//! The baseline: the same accounts and the same workloads as SQL transactions on PostgreSQL,
//! with its durable defaults (fsync and synchronous commit on), as a traditional centralized
//! settlement database would run them.
//!
//! One table of balances, `(account, asset) -> quantity` with `CHECK (quantity >= 0)`: an
//! overdraft makes the debit fail and the transaction roll back (a rejection, like Kessai's
//! INSUFFICIENT_BALANCE). Each transaction updates its balances in key order, so that concurrent
//! transactions never deadlock. One connection per client; latency runs from the moment a
//! transaction is due (closed loop: sent) to its commit.

use crate::bench::{BenchOptions, Mix, Workload, latency_json};
use serde_json::{Value, json};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio_postgres::{Client, NoTls};

const ASSET_JPY: i16 = 0;
const ASSET_JGB: i16 = 1;

/// The balance changes of one transaction: (account, asset, signed quantity).
type Changes = Vec<(i64, i16, i64)>;

/// The same draws as the Kessai workload generator, as balance changes.
fn changes(workload: Workload, accounts: usize, mix: &mut Mix) -> Changes {
    let pair = |mix: &mut Mix| {
        let source = mix.below(accounts);
        (source, (source + 1 + mix.below(accounts - 1)) % accounts)
    };
    let transfer = |source: usize, target: usize, asset: i16, quantity: i64| {
        [
            (source as i64, asset, -quantity),
            (target as i64, asset, quantity),
        ]
    };
    match workload {
        Workload::Transfer => {
            let (source, target) = pair(mix);
            transfer(source, target, ASSET_JPY, 1).to_vec()
        }
        Workload::Hot => {
            let other = 1 + mix.below(accounts - 1);
            let (source, target) = if mix.next() % 2 == 0 {
                (0, other)
            } else {
                (other, 0)
            };
            transfer(source, target, ASSET_JPY, 1).to_vec()
        }
        Workload::Dvp => {
            let (seller, buyer) = crate::bench::dvp_pair(accounts, mix);
            let mut changes = transfer(seller, buyer, ASSET_JGB, 1).to_vec();
            changes.extend(transfer(buyer, seller, ASSET_JPY, 100));
            changes
        }
        Workload::Bulk => (0..crate::bench::BULK_LEGS)
            .flat_map(|_| {
                let (source, target) = pair(mix);
                transfer(source, target, ASSET_JPY, 1)
            })
            .collect(),
        Workload::Repo => unreachable!("Load::check_baseline refuses the repo workload"),
    }
}

/// Net the changes per balance and order them by key: one update per balance, no deadlock.
fn netted(changes: &Changes) -> Changes {
    let mut net = std::collections::BTreeMap::new();
    for (account, asset, quantity) in changes {
        *net.entry((*account, *asset)).or_insert(0i64) += quantity;
    }
    net.into_iter()
        .filter(|(_, quantity)| *quantity != 0)
        .map(|((account, asset), quantity)| (account, asset, quantity))
        .collect()
}

/// Apply one transaction; `Ok(false)` if a debit would overdraw (rolled back).
async fn settle(client: &mut Client, changes: &Changes) -> anyhow::Result<bool> {
    let transaction = client.transaction().await?;
    for (account, asset, quantity) in changes {
        let updated = transaction
            .execute(
                "UPDATE balances SET quantity = quantity + $3 \
                 WHERE account = $1 AND asset = $2 AND quantity + $3 >= 0",
                &[account, asset, quantity],
            )
            .await?;
        if updated != 1 {
            transaction.rollback().await?;
            return Ok(false);
        }
    }
    transaction.commit().await?;
    Ok(true)
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Create and fill the balances table unless it already holds `accounts` accounts.
async fn setup(client: &Client, accounts: usize) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    client
        .batch_execute(
            "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS balances (account bigint, asset smallint, \
             quantity bigint NOT NULL CHECK (quantity >= 0), PRIMARY KEY (account, asset))",
        )
        .await?;
    let row = client
        .query_one("SELECT count(*) FROM balances WHERE asset = 0", &[])
        .await?;
    if row.get::<_, i64>(0) == accounts as i64 {
        return Ok(None);
    }
    client.batch_execute("TRUNCATE balances").await?;
    client
        .execute(
            "INSERT INTO balances SELECT a, s, CASE s WHEN 0 THEN $2::bigint ELSE $3::bigint END \
             FROM generate_series(0, $1::bigint - 1) a, generate_series(0, 1) s",
            &[
                &(accounts as i64),
                &(crate::bench::OPENING_JPY as i64),
                &(crate::bench::OPENING_JGB as i64),
            ],
        )
        .await?;
    client.batch_execute("VACUUM ANALYZE balances").await?;
    Ok(Some(started.elapsed()))
}

#[derive(Default)]
struct Results {
    latencies_ms: Vec<f64>,
    accepted: usize,
    rejected: usize,
    last_commit: Option<Instant>,
}

/// Run `options`' workload against PostgreSQL at `url`; the report has the same fields as
/// Kessai's where they apply.
pub async fn run(url: &str, options: &BenchOptions) -> anyhow::Result<Value> {
    options.load.check_baseline()?;
    let setup_time = setup(&connect(url).await?, options.load.accounts).await?;
    let mut mix = Mix(42);
    let jobs: Vec<Changes> = (0..options.load.count)
        .map(|_| {
            netted(&changes(
                options.load.workload,
                options.load.accounts,
                &mut mix,
            ))
        })
        .collect();
    let jobs = Arc::new(jobs);
    let results = Arc::new(Mutex::new(Results::default()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..options.load.concurrency {
        clients.push(connect(url).await?);
    }
    let started = Instant::now();
    // Open loop: transaction i is due at i / rate; a client takes the next one when free, and
    // its latency counts from when it was due.
    let interval = options
        .load
        .rate
        .map(|rate| Duration::from_secs_f64(1.0 / rate));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (jobs, results, next) = (jobs.clone(), results.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else {
                        return anyhow::Ok(());
                    };
                    let due = match interval {
                        Some(interval) => {
                            let due = started + interval * index as u32;
                            tokio::time::sleep_until(due.into()).await;
                            due
                        }
                        None => Instant::now(),
                    };
                    let accepted = settle(&mut client, job).await?;
                    let now = Instant::now();
                    let mut results = results.lock().expect("results lock");
                    results
                        .latencies_ms
                        .push(now.duration_since(due).as_secs_f64() * 1e3);
                    if accepted {
                        results.accepted += 1;
                    } else {
                        results.rejected += 1;
                    }
                    results.last_commit = Some(now);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let results = results.lock().expect("results lock");
    let window = results
        .last_commit
        .map_or(0.0, |last| last.duration_since(started).as_secs_f64());
    let mut latencies = results.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let mut outcomes = serde_json::Map::new();
    outcomes.insert("ACCEPTED".into(), json!(results.accepted));
    if results.rejected > 0 {
        outcomes.insert(
            "REJECTED INSUFFICIENT_BALANCE".into(),
            json!(results.rejected),
        );
    }
    Ok(json!({
        "system": "postgresql",
        "workload": options.load.workload.name(),
        "accounts": options.load.accounts,
        "transactions": options.load.count,
        "setup_seconds": setup_time.map(|t| t.as_secs_f64()),
        "finalized": latencies.len(),
        "finalized_per_second": latencies.len() as f64 / window.max(1e-9),
        "outcomes": outcomes,
        "latency_ms": latency_json(&latencies),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_net_per_balance_in_key_order() {
        let netted = netted(&vec![
            (5, 0, -1),
            (2, 0, 1),
            (5, 0, 3),
            (2, 1, 0),
            (1, 1, -2),
        ]);
        assert_eq!(netted, vec![(1, 1, -2), (2, 0, 1), (5, 0, 2)]);
    }

    #[test]
    fn a_dvp_changes_four_balances_and_conserves_each_asset() {
        let mut mix = Mix(7);
        for _ in 0..100 {
            let changes = netted(&changes(Workload::Dvp, 10, &mut mix));
            assert_eq!(changes.len(), 4);
            for asset in [ASSET_JPY, ASSET_JGB] {
                let sum: i64 = changes.iter().filter(|c| c.1 == asset).map(|c| c.2).sum();
                assert_eq!(sum, 0);
            }
        }
    }
}
