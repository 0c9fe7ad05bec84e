//! A simple load measurement against a running devnet (the benchmark suite is its own work):
//! finality latency of single waiting transfers, then the finalized rate of a burst.
//!
//! `cargo run --release -p kessai --example devnet_load -- DIR COUNT CONCURRENCY [BATCH]`
//! (BATCH transactions per request, default 1; above 1 the batch endpoint is used.)
//! (DIR is the devnet folder; its keystore passphrase is taken from KESSAI_KEYSTORE_PASSPHRASE,
//! default "devnet"; the APIs are read from the validators' node.toml files.)

use commonware_codec::Encode;
use kessai::{config::NodeConfig, keystore::Keystore};
use kessai_types::{
    AccountId, AssetId, Expiry, Leg, Operation, PartyId, Transaction, TxBody, UniqueId,
};
use std::{path::PathBuf, time::Instant};

use kessai_types::hex::encode as hex;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or(".kessai/devnet", String::as_str));
    let count: usize = args.get(2).map_or(Ok(5000), |s| s.parse())?;
    let concurrency: usize = args.get(3).map_or(Ok(64), |s| s.parse())?;
    let batch: usize = args.get(4).map_or(Ok(1), |s| s.parse())?;
    let passphrase =
        std::env::var("KESSAI_KEYSTORE_PASSPHRASE").unwrap_or_else(|_| "devnet".into());
    let keys = Keystore::open(&dir.join("keystore.json"), &passphrase)?;
    let apis: Vec<String> = (0..4)
        .map(|i| {
            let config = NodeConfig::load(&dir.join(format!("validator-{i}/node.toml")))?;
            Ok(format!("http://{}", config.api.listen))
        })
        .collect::<anyhow::Result<_>>()?;
    let client = reqwest::Client::new();
    let network = 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let owners = ["BANK-A", "BANK-B", "CCP"];
    let signing = Instant::now();
    let transactions: Vec<String> = (0..count + 50)
        .map(|i| {
            let from = owners[i % 3];
            let to = owners[(i + 1) % 3];
            let party = PartyId::new(from).unwrap();
            let body = TxBody {
                network,
                submitter: party,
                unique_id: UniqueId(rand::random()),
                expiry: Expiry::TimeMs(now + 3_600_000),
                operation: Operation::Transfer(Leg {
                    source: AccountId::new(&format!("{from}/CASH")).unwrap(),
                    target: AccountId::new(&format!("{to}/CASH")).unwrap(),
                    asset: AssetId::new("JPY").unwrap(),
                    quantity: 1,
                }),
            };
            let tx = Transaction::sign(body, &[(party, keys.key(party).unwrap())]);
            serde_json::json!({ "transaction": hex(&tx.encode()) }).to_string()
        })
        .collect();
    println!(
        "signed {} transactions in {:?}",
        transactions.len(),
        signing.elapsed()
    );

    // 1. Finality latency: 50 transfers one at a time, each waiting until final.
    let mut latencies = Vec::new();
    for (i, body) in transactions[count..].iter().enumerate() {
        let started = Instant::now();
        let response = client
            .post(format!("{}/v1/transactions?wait=true", apis[i % 4]))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let value: serde_json::Value = response.json().await?;
        anyhow::ensure!(value["status"] == "FINAL", "not final: {value}");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "finality latency over 50 waiting transfers: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies[latencies.len() - 1]
    );

    // 2. Throughput: submit `count` without waiting, spread over the validators, then wait for
    //    the last block that carries them.
    let (_, status) = (
        (),
        client
            .get(format!("{}/v1/status", apis[0]))
            .send()
            .await?
            .json::<serde_json::Value>()
            .await?,
    );
    let start_height = status["height"].as_u64().unwrap_or(0);
    let started = Instant::now();
    // Each worker sends its share, `batch` transactions per request.
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let share: Vec<String> = transactions[..count]
            .iter()
            .skip(worker)
            .step_by(concurrency)
            .cloned()
            .collect();
        let client = client.clone();
        let api = apis[worker % apis.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            for group in share.chunks(batch) {
                loop {
                    let request = if batch == 1 {
                        client
                            .post(format!("{api}/v1/transactions"))
                            .header("content-type", "application/json")
                            .body(group[0].clone())
                    } else {
                        let hexes: Vec<serde_json::Value> = group
                            .iter()
                            .map(|body| serde_json::from_str::<serde_json::Value>(body).unwrap()["transaction"].clone())
                            .collect();
                        client
                            .post(format!("{api}/v1/transactions/batch"))
                            .json(&serde_json::json!({ "transactions": hexes }))
                    };
                    let response = request.send().await.expect("API reachable");
                    if response.status().as_u16() == 429 {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                    if batch == 1 {
                        refused += usize::from(!response.status().is_success());
                    } else {
                        let body: serde_json::Value = response.json().await.expect("json");
                        refused += body["results"]
                            .as_array()
                            .map_or(group.len(), |r| r.iter().filter(|x| x["id"].is_null()).count());
                    }
                    break;
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await?;
    }
    let submitted = started.elapsed();
    // Count finalized transactions block by block until all `count` are in.
    let mut finalized = 0usize;
    let mut height = start_height;
    while finalized < count - refused {
        let response = client
            .get(format!("{}/v1/blocks/{}", apis[0], height + 1))
            .send()
            .await?;
        if response.status().as_u16() == 404 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        let block: serde_json::Value = response.json().await?;
        finalized += block["transactions"].as_array().map_or(0, Vec::len);
        height += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "{count} transfers ({refused} refused): submitted in {:.2} s, all final in {:.2} s over {} blocks: {:.0} transfers/s finalized",
        submitted.as_secs_f64(),
        elapsed.as_secs_f64(),
        height - start_height,
        finalized as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
