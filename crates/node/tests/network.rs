//! Four real `kessai node` validator processes, a standby validator and an observer on loopback:
//! the API's endpoints and error classes; transfers through a `kill -9` of one validator and its
//! restart, checking that every transaction reported final is on every node, with identical state
//! roots; then a validator-set change through governance (the CLI), after which the new set
//! finalizes without the validators it replaced.

use commonware_codec::Encode;
use kessai::keystore::Keystore;
use kessai_types::{
    AccountId, AssetId, Expiry, Leg, Operation, PartyId, PrivateKey, Transaction, TxBody, UniqueId,
};
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

const VALIDATORS: usize = 4;
/// The standby validator: not in the genesis set; governance adds it.
const STANDBY: usize = VALIDATORS;
/// Validators, the standby validator, then one observer.
const NODES: usize = VALIDATORS + 2;
/// Blocks per epoch: short, so that the kill and restart cross epochs too.
const EPOCH_BLOCKS: u64 = 40;
const PASSPHRASE: &str = "network-test";

fn kessai() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kessai"))
}

struct Network {
    dir: tempfile::TempDir,
    base_port: u16,
    nodes: Vec<Option<Child>>,
}

impl Network {
    fn node_dir(&self, index: usize) -> PathBuf {
        kessai::devnet::InitOptions {
            dir: self.dir.path().into(),
            validators: VALIDATORS,
            standby: 1,
            observers: 1,
            epoch_blocks: EPOCH_BLOCKS,
            base_port: self.base_port,
            passphrase: PASSPHRASE.into(),
            bench_accounts: 0,
        }
        .node_dir(index)
    }

    fn api(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.base_port + 100 + index as u16)
    }

    fn start(&mut self, index: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node_dir(index).join("node.log"))
            .unwrap();
        let child = kessai()
            .arg("node")
            .arg("--config")
            .arg(self.node_dir(index).join("node.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start a node");
        self.nodes[index] = Some(child);
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    fn log_tail(&self, index: usize) -> String {
        let text =
            std::fs::read_to_string(self.node_dir(index).join("node.log")).unwrap_or_default();
        text.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}

fn init(base_port: u16) -> Network {
    let dir = tempfile::tempdir().unwrap();
    let status = kessai()
        .args(["init", "--dir"])
        .arg(dir.path())
        .args([
            "--base-port",
            &base_port.to_string(),
            "--passphrase",
            PASSPHRASE,
            "--standby",
            "1",
            "--observers",
            "1",
            "--epoch-blocks",
            &EPOCH_BLOCKS.to_string(),
            // The bench smoke run opens the other 40 of its 100 accounts.
            "--bench-accounts",
            "60",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "kessai init failed");
    Network {
        dir,
        base_port,
        nodes: (0..NODES).map(|_| None).collect(),
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(client: &reqwest::Client, url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait_ready(client: &reqwest::Client, network: &Network, index: usize, min_height: u64) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Ok(response) = client
            .get(format!("{}/v1/status", network.api(index)))
            .send()
            .await
            && let Ok(body) = response.json::<Value>().await
            && body["height"].as_u64().unwrap_or(0) >= min_height.max(1)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {index} not at height {min_height} in time; log:\n{}",
            network.log_tail(index)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

use kessai_types::hex::encode as hex;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn transfer(
    network: u32,
    signer: &str,
    key: &PrivateKey,
    from: &str,
    to: &str,
    quantity: u128,
) -> Transaction {
    let party = PartyId::new(signer).unwrap();
    let body = TxBody {
        network,
        submitter: party,
        unique_id: UniqueId(rand::random()),
        expiry: Expiry::TimeMs(now_ms() + 600_000),
        operation: Operation::Transfer(Leg {
            source: AccountId::new(from).unwrap(),
            target: AccountId::new(to).unwrap(),
            asset: AssetId::new("JPY").unwrap(),
            quantity,
        }),
    };
    Transaction::sign(body, &[(party, key)])
}

fn submit_body(transaction: &Transaction) -> String {
    json!({ "transaction": hex(&transaction.encode()) }).to_string()
}

/// Every endpoint and every error class, against node 0.
async fn api_checks(
    client: &reqwest::Client,
    api: &str,
    keys: &Keystore,
    keystore: &std::path::Path,
) {
    let bank_a = keys.key(PartyId::new("BANK-A").unwrap()).unwrap();
    let url = format!("{api}/v1/transactions");

    // Health, readiness, metrics, OpenAPI.
    assert_eq!(get(client, &format!("{api}/health")).await.0, 200);
    assert_eq!(get(client, &format!("{api}/ready")).await.0, 200);
    let (status, metrics) = get(client, &format!("{api}/metrics")).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    for name in [
        "kessai_height",
        "kessai_mempool_transactions",
        "kessai_transactions_applied_total",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
    let (status, openapi) = get(client, &format!("{api}/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.0.3");

    // A transfer, final, then queried every way.
    let transaction = transfer(1, "BANK-A", bank_a, "BANK-A/CASH", "BANK-B/CASH", 5);
    let (status, body) = post(
        client,
        &format!("{url}?wait=true"),
        submit_body(&transaction),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "FINAL");
    assert_eq!(body["outcome"]["result"], "ACCEPTED");
    let id = body["id"].as_str().unwrap().to_string();
    let height = body["height"].as_u64().unwrap();
    let (status, body) = get(client, &format!("{api}/v1/transactions/{id}")).await;
    assert_eq!((status, body["height"].as_u64()), (200, Some(height)));
    let (status, block) = get(client, &format!("{api}/v1/blocks/{height}")).await;
    assert_eq!(status, 200);
    assert!(
        block["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id)
    );
    assert_eq!(get(client, &format!("{api}/v1/blocks/latest")).await.0, 200);
    let (status, party) = get(client, &format!("{api}/v1/parties/BANK-A")).await;
    assert_eq!(
        (status, party["roles"][0].as_str()),
        (200, Some("participant"))
    );
    assert_eq!(get(client, &format!("{api}/v1/assets/JPY")).await.0, 200);
    assert_eq!(
        get(client, &format!("{api}/v1/accounts/BANK-A%2FCASH"))
            .await
            .0,
        200
    );
    let (status, balance) = get(
        client,
        &format!("{api}/v1/accounts/BANK-B%2FCASH/balances/JPY"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        balance["available"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
            >= 10_000_000_005
    );

    // The balance's proof verifies against the state root, and fails for another value.
    let (status, proof) = get(
        client,
        &format!("{api}/v1/accounts/BANK-B%2FCASH/balances/JPY/proof"),
    )
    .await;
    assert_eq!(status, 200, "{proof}");
    let unhex = |s: &str| kessai_types::hex::decode(s).unwrap();
    let root: kessai_types::Hash32 = proof["state_root"].as_str().unwrap().parse().unwrap();
    let key = kessai_state::StateKey::Balance(
        AccountId::new("BANK-B/CASH").unwrap(),
        AssetId::new("JPY").unwrap(),
    );
    let value = kessai_state::StateValue::decode(&unhex(proof["value"].as_str().unwrap())).unwrap();
    let merkle = kessai_storage::decode_proof(&unhex(proof["proof"].as_str().unwrap())).unwrap();
    assert!(kessai_storage::verify_proof(&root, &key, &value, &merkle));
    let forged = kessai_state::StateValue::Balance(kessai_types::Balance {
        available: 1,
        encumbered: 0,
    });
    assert!(!kessai_storage::verify_proof(&root, &key, &forged, &merkle));

    // A ledger rejection comes back as an outcome: BANK-A cannot move BANK-B's units.
    let stolen = transfer(1, "BANK-A", bank_a, "BANK-B/CASH", "BANK-A/CASH", 1);
    let (status, body) = post(client, &format!("{url}?wait=true"), submit_body(&stolen)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"]["result"], "REJECTED");
    assert_eq!(body["outcome"]["code"], "NOT_AUTHORIZED");

    // Error classes: each a 4xx with a stable code, and nothing admitted.
    let expect = |(status, body): (u16, Value), want_status: u16, code: &str| {
        assert_eq!(status, want_status, "{code}: {body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    };
    expect(post(client, &url, "{not json").await, 400, "BAD_JSON");
    expect(post(client, &url, r#"{"tx": "00"}"#).await, 422, "BAD_JSON");
    expect(
        post(client, &url, r#"{"transaction": "zz"}"#).await,
        400,
        "MALFORMED_TRANSACTION",
    );
    expect(
        post(client, &url, r#"{"transaction": "0102030405"}"#).await,
        400,
        "MALFORMED_TRANSACTION",
    );
    let mut forged = transfer(1, "BANK-A", bank_a, "BANK-A/CASH", "BANK-B/CASH", 1);
    if let Operation::Transfer(leg) = &mut forged.body.operation {
        leg.quantity = 1_000_000; // altered after signing
    }
    expect(
        post(client, &url, submit_body(&forged)).await,
        400,
        "BAD_SIGNATURE",
    );
    let other_network = transfer(2, "BANK-A", bank_a, "BANK-A/CASH", "BANK-B/CASH", 1);
    expect(
        post(client, &url, submit_body(&other_network)).await,
        400,
        "WRONG_NETWORK",
    );
    expect(
        post(client, &url, submit_body(&transaction)).await,
        409,
        "DUPLICATE",
    );
    let huge = json!({"transaction": "00".repeat(3 * 1024 * 1024)}).to_string();
    // The server answers before reading the whole body and closes the connection: send it on a
    // connection of its own, so the shared client does not reuse the closed one.
    let fresh = reqwest::Client::new();
    expect(post(&fresh, &url, huge).await, 413, "REQUEST_TOO_LARGE");
    expect(
        get(client, &format!("{api}/v1/accounts/NOPE/balances/JPY")).await,
        404,
        "UNKNOWN_ACCOUNT",
    );
    expect(
        get(
            client,
            &format!("{api}/v1/accounts/BANK-A%2FCASH/balances/NOPE"),
        )
        .await,
        404,
        "UNKNOWN_ASSET",
    );
    expect(
        get(client, &format!("{api}/v1/accounts/lower/balances/JPY")).await,
        400,
        "BAD_ACCOUNT_ID",
    );
    expect(
        get(client, &format!("{api}/v1/parties/NOPE")).await,
        404,
        "UNKNOWN_PARTY",
    );
    expect(
        get(
            client,
            &format!("{api}/v1/transactions/{}", "ab".repeat(32)),
        )
        .await,
        404,
        "UNKNOWN_TRANSACTION",
    );
    expect(
        get(client, &format!("{api}/v1/transactions/xyz")).await,
        400,
        "BAD_TRANSACTION_ID",
    );
    expect(
        get(client, &format!("{api}/v1/blocks/99999999")).await,
        404,
        "UNKNOWN_BLOCK",
    );
    expect(
        get(client, &format!("{api}/v1/blocks/minus")).await,
        400,
        "BAD_HEIGHT",
    );
    expect(
        get(client, &format!("{api}/v1/nothing")).await,
        404,
        "NOT_FOUND",
    );

    // A batch: each transaction gets its own result, in order.
    let fresh = transfer(1, "BANK-A", bank_a, "BANK-A/CASH", "BANK-B/CASH", 2);
    let batch = json!({"transactions": [
        hex(&fresh.encode()), "zz", hex(&transaction.encode()),
    ]});
    let (status, body) = post(client, &format!("{url}/batch"), batch.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "PENDING", "{body}");
    assert_eq!(results[1]["code"], "MALFORMED_TRANSACTION", "{body}");
    assert_eq!(results[2]["code"], "DUPLICATE", "{body}");

    // Delivery versus payment: both owners sign one bundle; it settles whole or not at all.
    let bank_b = keys.key(PartyId::new("BANK-B").unwrap()).unwrap();
    let (party_a, party_b) = (
        PartyId::new("BANK-A").unwrap(),
        PartyId::new("BANK-B").unwrap(),
    );
    let leg = |from: &str, to: &str, asset: &str, quantity| Leg {
        source: AccountId::new(from).unwrap(),
        target: AccountId::new(to).unwrap(),
        asset: AssetId::new(asset).unwrap(),
        quantity,
    };
    let dvp = |signers: &[(PartyId, &PrivateKey)]| {
        let body = TxBody {
            network: 1,
            submitter: party_a,
            unique_id: UniqueId(rand::random()),
            expiry: Expiry::TimeMs(now_ms() + 600_000),
            operation: Operation::Bundle(kessai_types::Bundle {
                legs: vec![
                    leg("BANK-A/SEC", "BANK-B/SEC", "TOYOTA", 100),
                    leg("BANK-B/CASH", "BANK-A/CASH", "JPY", 250_000),
                ],
            }),
        };
        Transaction::sign(body, signers)
    };
    let (_, body) = post(
        client,
        &format!("{url}?wait=true"),
        submit_body(&dvp(&[(party_a, bank_a)])),
    )
    .await;
    assert_eq!(
        body["outcome"]["code"], "NOT_AUTHORIZED",
        "the buyer did not sign: {body}"
    );
    assert_eq!(body["outcome"]["leg"], 1, "{body}");
    let signed = dvp(&[(party_a, bank_a), (party_b, bank_b)]);
    let (_, body) = post(client, &format!("{url}?wait=true"), submit_body(&signed)).await;
    assert_eq!(body["outcome"]["result"], "ACCEPTED", "{body}");
    let (_, shares) = get(
        client,
        &format!("{api}/v1/accounts/BANK-B%2FSEC/balances/TOYOTA"),
    )
    .await;
    assert_eq!(shares["available"], "1000100");

    // The command line, as a user runs it: a transfer, then a balance with its proof checked.
    let cli = |args: &[&str]| cli(api, keystore, args);
    let out = cli(&[
        "tx",
        "transfer",
        "--as",
        "CCP",
        "--from",
        "CCP/CASH",
        "--to",
        "BANK-A/CASH",
        "--asset",
        "JPY",
        "--quantity",
        "7",
        "--wait",
    ]);
    assert!(out.contains("ACCEPTED"), "{out}");
    let out = cli(&[
        "tx",
        "bundle",
        "--as",
        "BANK-B",
        "--as",
        "CCP",
        "--leg",
        "BANK-B/SEC:CCP/SEC:JGB-10Y:1000",
        "--leg",
        "CCP/CASH:BANK-B/CASH:JPY:990",
        "--wait",
    ]);
    assert!(out.contains("ACCEPTED"), "{out}");
    let out = cli(&["query", "balance", "CCP/SEC", "JGB-10Y", "--prove"]);
    assert!(
        out.contains("\"proof_verified_locally\": true") && out.contains("5000001000"),
        "{out}"
    );

    // Events: from a height, then resumed after a given event id, without gaps or repeats.
    let first = read_events(client, &format!("{api}/v1/events?from_height=1"), None, 3).await;
    assert_eq!(first, vec![1, 2, 3]);
    let resumed = read_events(client, &format!("{api}/v1/events"), Some(2), 2).await;
    assert_eq!(resumed, vec![3, 4]);
}

/// A tiny `kessai bench` run, so that it keeps working: setup of 100 accounts (60 of them in
/// the genesis), then 300 DvP transactions in batches of 10 over two nodes, all final and
/// accepted; then the repo workload with 7 contracts: every start and the margin calls of the
/// 3 that pledge the moving asset (no timing asserted).
fn bench_smoke(network: &Network) {
    let report = network.dir.path().join("bench.json");
    let out = cli(
        &network.api(0),
        &network.dir.path().join("keystore.json"),
        &[
            "bench",
            "--api",
            &network.api(0),
            "--api",
            &network.api(1),
            "--workload",
            "dvp",
            "--accounts",
            "100",
            "--count",
            "300",
            "--batch",
            "10",
            "--concurrency",
            "4",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["finalized"], 300, "{out}");
    assert_eq!(report["outcomes"], json!({"ACCEPTED": 300}), "{out}");
    assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{out}");
    assert!(
        report["nodes"][0]["rss_mib"].as_f64().unwrap() > 0.0,
        "{out}"
    );

    let report = network.dir.path().join("repo.json");
    let out = cli(
        &network.api(0),
        &network.dir.path().join("keystore.json"),
        &[
            "bench",
            "--api",
            &network.api(0),
            "--api",
            &network.api(1),
            "--workload",
            "repo",
            "--accounts",
            "100",
            "--count",
            "7",
            "--concurrency",
            "2",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["outcomes"], json!({"ACCEPTED": 7}), "{out}");
    let repo = &report["repo"];
    assert_eq!(repo["starts"], json!({"STARTED": 7}), "{out}");
    let burst = &repo["burst"];
    assert_eq!(burst["marked"], 7, "{out}");
    assert_eq!(burst["margin_calls"], 3, "{out}");
    assert_eq!(burst["margin_calls_expected"], 3, "{out}");
    assert_eq!(burst["failures"], json!({}), "{out}");
    assert_eq!(repo["cleanup"]["events"], json!({"MATURED": 7}), "{out}");
}

/// Run the command line against `api` and return what it printed; it must succeed.
fn cli(api: &str, keystore: &std::path::Path, args: &[&str]) -> String {
    let output = kessai()
        .args(args)
        .env("KESSAI_API", api)
        .env("KESSAI_KEYSTORE", keystore)
        .env("KESSAI_KEYSTORE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "kessai {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The brief's sample repo through the command line and the API: BANK-B borrows 50,000,000
/// Bunds from BANK-A against US stock; 335,240 shares at start, 333,450 after the second day's
/// close (1,790 return automatically), then maturity with the fee, and every step on the event
/// stream.
async fn repo_sample(client: &reqwest::Client, api: &str, keystore: &std::path::Path) {
    let cli = |args: &[&str]| -> Value {
        let out = cli(api, keystore, args);
        let body: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{args:?}: {out}"));
        assert_eq!(body["outcome"]["result"], "ACCEPTED", "{args:?}: {body}");
        body
    };
    let (_, applied) = get(client, &format!("{api}/v1/status")).await;
    let from_height = applied["height"].as_u64().unwrap() + 1;
    // The oracle closes a business date: Bund and US stock prices, EUR/USD.
    let close = |date: &str, bund: &str, stock: &str, eurusd: &str| {
        let (bund, stock, eurusd) = (
            format!("DE-BUND={bund}"),
            format!("US-STOCK={stock}"),
            format!("EUR/USD={eurusd}"),
        );
        cli(&[
            "tx", "prices", "--as", "ORACLE", "--date", date, "--price", &bund, "--price", &stock,
            "--fx", &eurusd, "--close", "--wait",
        ])
    };
    close("20230419", "98.8110", "161.01", "1.09253");
    let registered = cli(&[
        "tx",
        "repo",
        "register",
        "--as",
        "BANK-B",
        "--lender",
        "BANK-A:BANK-A/SEC",
        "--borrower",
        "BANK-B:BANK-B/SEC",
        "--principal",
        "DE-BUND:50000000",
        "--collateral",
        "US-STOCK",
        "--currency",
        "USD",
        "--term",
        "open",
        "--rate",
        "0.001",
        "--day-count",
        "act360",
        "--fee-asset",
        "USD",
        "--wait",
    ]);
    let id = registered["id"].as_str().unwrap().to_string();
    cli(&[
        "tx", "repo", "step", "approve", &id, "--as", "BANK-A", "--wait",
    ]);
    cli(&[
        "tx", "repo", "step", "start", &id, "--as", "BANK-B", "--wait",
    ]);
    let (status, contract) = get(client, &format!("{api}/v1/repos/{id}")).await;
    assert_eq!(status, 200, "{contract}");
    assert_eq!(contract["status"], "OPEN", "{contract}");
    assert_eq!(
        contract["collateral"][0]["quantity"], "335240",
        "{contract}"
    );
    assert_eq!(contract["fee_base"], "5397699092", "{contract}");
    let balance = |account: &'static str, asset: &'static str| async move {
        let url = format!(
            "{api}/v1/accounts/{}/balances/{asset}",
            account.replace('/', "%2F")
        );
        let (_, body) = get(client, &url).await;
        (
            body["available"].as_str().unwrap().to_string(),
            body["encumbered"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        balance("BANK-A/SEC", "US-STOCK").await,
        ("1000000".into(), "335240".into())
    );
    assert_eq!(balance("BANK-B/SEC", "US-STOCK").await.0, "664760");

    // The second day's close marks the contract in the next block: 1,790 shares return.
    close("20230420", "98.7590", "162.53", "1.09753");
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let (_, page) = get(client, &format!("{api}/v1/repos/{id}/events")).await;
        if page["events"].as_array().unwrap().len() >= 6 {
            break page["events"].clone();
        }
        assert!(Instant::now() < deadline, "no margin call: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "REGISTERED",
            "APPROVED",
            "STARTED",
            "MARKED",
            "MARKED",
            "MARGIN_CALL_SETTLED"
        ]
    );
    // The brief's market values: 53,976,991 and 53,976,992 USD at start; 54,195,483 and
    // 54,195,629 USD after the call (here to the cent, rounded half-up).
    assert_eq!(events[2]["collateral_value"], "53976992.40");
    assert_eq!(events[3]["exposure"], "53976990.92");
    assert_eq!(events[4]["exposure"], "54195482.64");
    assert_eq!(
        events[5]["moves"][0],
        json!({"asset": "US-STOCK", "quantity": "1790", "direction": "TO_BORROWER"})
    );
    assert_eq!(events[5]["collateral_value"], "54195628.50");
    assert_eq!(balance("BANK-A/SEC", "US-STOCK").await.1, "333450");
    assert_eq!(balance("BANK-B/SEC", "US-STOCK").await.0, "666550");

    // Maturity of the open contract: the borrower funds the fee, then the legs return.
    let funded = cli(&[
        "tx",
        "transfer",
        "--as",
        "BANK-B",
        "--from",
        "BANK-B/CASH",
        "--to",
        "BANK-B/SEC",
        "--asset",
        "USD",
        "--quantity",
        "1000000",
        "--wait",
    ]);
    assert_eq!(funded["status"], "FINAL");
    cli(&[
        "tx", "repo", "step", "mature", &id, "--as", "BANK-B", "--wait",
    ]);
    let (_, page) = get(client, &format!("{api}/v1/repos/{id}/events?from=6")).await;
    let matured = &page["events"][0];
    assert_eq!(matured["event"], "MATURED", "{page}");
    let elapsed =
        (matured["time_ms"].as_u64().unwrap() - contract["started_ms"].as_u64().unwrap()) as u128;
    let fee = 5_397_699_092u128 * elapsed / 1000 / (360 * 86_400_000);
    assert_eq!(matured["fee"], fee.to_string(), "fee on {elapsed} ms");
    assert_eq!(balance("BANK-B/SEC", "US-STOCK").await.0, "1000000");
    assert_eq!(
        balance("BANK-A/SEC", "US-STOCK").await,
        ("1000000".into(), "0".into())
    );
    assert_eq!(balance("BANK-A/SEC", "DE-BUND").await.0, "100000000");
    let (_, book) = get(client, &format!("{api}/v1/repos")).await;
    assert_eq!(book["latest_closed_date"], 20230420, "{book}");

    // Every step was on the event stream, before its block's event.
    let streamed = read_repo_events(
        client,
        &format!("{api}/v1/events?from_height={from_height}"),
        7,
    )
    .await;
    assert_eq!(
        streamed,
        [
            "REGISTERED",
            "APPROVED",
            "STARTED",
            "MARKED",
            "MARKED",
            "MARGIN_CALL_SETTLED",
            "MATURED"
        ]
    );
    let (status, _) = get(client, &format!("{api}/v1/repos/{}", "00".repeat(32))).await;
    assert_eq!(status, 404);
}

/// Read server-sent events from `response` and keep what `pick` takes from each, until it has
/// taken `count`.
async fn read_sse<T>(
    mut response: reqwest::Response,
    count: usize,
    pick: impl Fn(&str) -> Option<T>,
) -> Vec<T> {
    assert_eq!(response.status().as_u16(), 200);
    let mut text = String::new();
    let mut picked = Vec::new();
    while picked.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            picked.extend(pick(&event));
        }
    }
    picked.truncate(count);
    picked
}

/// Read server-sent events until `count` repo events came; return their names.
async fn read_repo_events(client: &reqwest::Client, url: &str, count: usize) -> Vec<String> {
    let response = client.get(url).send().await.unwrap();
    read_sse(response, count, |event| {
        let data = event.lines().find_map(|line| line.strip_prefix("data: "))?;
        if !event.lines().any(|line| line == "event: repo") {
            return None;
        }
        let body: Value = serde_json::from_str(data).unwrap();
        Some(body["event"].as_str().unwrap().to_string())
    })
    .await
}

/// Read `count` server-sent events and return their ids.
async fn read_events(
    client: &reqwest::Client,
    url: &str,
    last_event_id: Option<u64>,
    count: usize,
) -> Vec<u64> {
    let mut request = client.get(url);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    read_sse(request.send().await.unwrap(), count, |event| {
        let line = event.lines().find(|l| l.starts_with("id:"))?;
        Some(line[3..].trim().parse().unwrap())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validator_processes_survive_a_kill() {
    let base_port = 21_000 + (std::process::id() % 200) as u16 * 10;
    let mut network = init(base_port);
    for index in 0..NODES {
        network.start(index);
    }
    let client = reqwest::Client::new();
    for index in 0..NODES {
        wait_ready(&client, &network, index, 1).await;
    }
    let keys = Keystore::open(&network.dir.path().join("keystore.json"), PASSPHRASE).unwrap();
    api_checks(
        &client,
        &network.api(0),
        &keys,
        &network.dir.path().join("keystore.json"),
    )
    .await;
    repo_sample(
        &client,
        &network.api(0),
        &network.dir.path().join("keystore.json"),
    )
    .await;
    bench_smoke(&network);

    // Transfers to every node, then kill -9 validator 3 and go on with the other three.
    let bank_a = keys.key(PartyId::new("BANK-A").unwrap()).unwrap();
    let mut finals: Vec<(String, u64)> = Vec::new();
    for round in 0..40 {
        if round == 20 {
            network.kill(3);
        }
        let live = if round < 20 {
            VALIDATORS
        } else {
            VALIDATORS - 1
        };
        let transaction = transfer(1, "BANK-A", bank_a, "BANK-A/CASH", "BANK-B/CASH", 1);
        let url = format!("{}/v1/transactions?wait=true", network.api(round % live));
        let (status, body) = post(&client, &url, submit_body(&transaction)).await;
        assert_eq!(status, 200, "round {round}: {body}");
        assert_eq!(body["status"], "FINAL", "round {round}: {body}");
        finals.push((
            body["id"].as_str().unwrap().to_string(),
            body["height"].as_u64().unwrap(),
        ));
    }
    let (_, status) = get(&client, &format!("{}/v1/status", network.api(0))).await;
    let target = status["height"].as_u64().unwrap();

    // Restart validator 3: it catches up from its peers.
    network.start(3);
    for index in 0..NODES {
        wait_ready(&client, &network, index, target).await;
    }
    // Every node, the observer included, has every final transaction where it was reported.
    for (id, height) in &finals {
        for index in 0..NODES {
            let (status, body) = get(
                &client,
                &format!("{}/v1/transactions/{id}", network.api(index)),
            )
            .await;
            assert_eq!(status, 200, "node {index} lacks {id}: {body}");
            assert_eq!(body["height"].as_u64(), Some(*height), "node {index}, {id}");
        }
    }
    for height in [1, target / 2, target] {
        let mut roots = Vec::new();
        for index in 0..NODES {
            let (status, block) = get(
                &client,
                &format!("{}/v1/blocks/{height}", network.api(index)),
            )
            .await;
            assert_eq!(status, 200, "node {index} block {height}: {block}");
            roots.push((block["digest"].clone(), block["state_root"].clone()));
        }
        assert!(
            roots.windows(2).all(|w| w[0] == w[1]),
            "height {height}: {roots:?}"
        );
    }
    validator_set_change(&client, &mut network, &keys).await;
}

/// Governance replaces validator 3 with the standby validator through `kessai tx
/// set-validators`. Once the next epoch runs, validators 0 and 3 stop: on the old set two of four
/// could not finalize; on the new set {0, 1, 2, standby} the other three are a quorum.
async fn validator_set_change(client: &reqwest::Client, network: &mut Network, keys: &Keystore) {
    let key_of = |index: usize| {
        let text = std::fs::read_to_string(network.node_dir(index).join("node.key")).unwrap();
        PrivateKey::from_text(text.trim())
            .unwrap()
            .public_key()
            .to_string()
    };
    let new_set: Vec<String> = [0, 1, 2, STANDBY].into_iter().map(key_of).collect();
    let (_, before) = get(client, &format!("{}/v1/validators", network.api(0))).await;
    assert_eq!(
        before["validators"].as_array().unwrap().len(),
        VALIDATORS,
        "{before}"
    );
    assert!(
        !before["validators"]
            .as_array()
            .unwrap()
            .contains(&json!(key_of(STANDBY))),
        "{before}"
    );

    let mut args = vec!["tx", "set-validators", "--as", "GOVERNOR", "--wait"];
    for key in &new_set {
        args.extend(["--validator", key]);
    }
    let output = kessai()
        .args(&args)
        .env("KESSAI_API", network.api(1))
        .env("KESSAI_KEYSTORE", network.dir.path().join("keystore.json"))
        .env("KESSAI_KEYSTORE_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("FINAL"),
        "set-validators: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The next epoch starts with the new set, the same on every node.
    let mut expected = new_set.clone();
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(120);
    let switched = loop {
        let (_, sets) = get(client, &format!("{}/v1/validators", network.api(0))).await;
        let mut current: Vec<String> = sets["validators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key.as_str().unwrap().to_string())
            .collect();
        current.sort();
        if current == expected {
            break sets["first_height"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "the set did not change: {sets}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for index in 0..NODES {
        wait_ready(client, network, index, switched + 2).await;
    }

    network.kill(0);
    network.kill(3);
    let bank_a = keys.key(PartyId::new("BANK-A").unwrap()).unwrap();
    let mut last = 0;
    for round in 0..10 {
        let transaction = transfer(1, "BANK-A", bank_a, "BANK-A/CASH", "BANK-B/CASH", 1);
        let node = [1, 2, STANDBY][round % 3];
        let url = format!("{}/v1/transactions?wait=true", network.api(node));
        let (status, body) = post(client, &url, submit_body(&transaction)).await;
        assert_eq!(status, 200, "after the change, round {round}: {body}");
        assert_eq!(
            body["status"], "FINAL",
            "after the change, round {round}: {body}"
        );
        last = body["height"].as_u64().unwrap();
    }
    let live = [1, 2, STANDBY, NODES - 1];
    for index in live {
        wait_ready(client, network, index, last).await;
    }
    let mut roots = Vec::new();
    for index in live {
        let (status, block) =
            get(client, &format!("{}/v1/blocks/{last}", network.api(index))).await;
        assert_eq!(status, 200, "node {index} block {last}: {block}");
        roots.push(block["state_root"].clone());
    }
    assert!(
        roots.windows(2).all(|w| w[0] == w[1]),
        "height {last}: {roots:?}"
    );
}
