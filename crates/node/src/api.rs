//! The node's HTTP API: JSON over HTTP (axum), an OpenAPI document at `/openapi.json`.
//!
//! Every error is JSON `{"code": "...", "message": "..."}` with a stable code and a 4xx status
//! for anything the client can fix; a 500 means a bug or a storage failure, never bad input.

use crate::repo_json::{book_json, contract_json, event_json};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use commonware_codec::{DecodeExt as _, Encode};
use kessai_chain::{
    AdmissionError, BlockRecord, Context, Mempool, Store, Submitter, engine::BlockSource,
};
use kessai_state::{StateKey, StateValue};
use kessai_types::{
    AccountId, AssetId, BusinessDate, Currency, Hash32, PartyId, Rejection, Transaction, TxId,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    pub store: Store<Context>,
    pub mempool: Mempool,
    pub submit: Submitter,
    pub blocks: BlockSource,
    pub counters: Arc<Counters>,
    pub wait_timeout: Duration,
    pub peers: usize,
    /// The runtime's own metrics (consensus, p2p, storage) in Prometheus text.
    pub runtime_metrics: Arc<dyn Fn() -> String + Send + Sync>,
}

/// Counters the API exports beside the runtime's.
#[derive(Default)]
pub struct Counters {
    pub submitted: AtomicU64,
    pub refused: AtomicU64,
    pub applied: AtomicU64,
    pub rejected: AtomicU64,
    /// Sum and count of submit-to-final latencies observed by `wait=true` submissions.
    pub finality_ms_sum: AtomicU64,
    pub finality_count: AtomicU64,
}

/// An API error: a status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_ms: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            error.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        let mut response = (self.status, ()).into_response();
        if let Some(ms) = self.retry_after_ms {
            body["retry_after_ms"] = json!(ms);
            let seconds = ms.div_ceil(1000).max(1);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits"),
            );
        }
        let (parts, _) = response.into_parts();
        (parts, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "REQUEST_TOO_LARGE"
        } else {
            "BAD_JSON"
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

fn admission_error(error: AdmissionError) -> ApiError {
    let (status, code) = match error {
        AdmissionError::BadSignature => (StatusCode::BAD_REQUEST, "BAD_SIGNATURE"),
        AdmissionError::WrongNetwork { .. } => (StatusCode::BAD_REQUEST, "WRONG_NETWORK"),
        AdmissionError::Expired => (StatusCode::BAD_REQUEST, "EXPIRED"),
        AdmissionError::ExpiryTooFar => (StatusCode::BAD_REQUEST, "EXPIRY_TOO_FAR"),
        AdmissionError::Duplicate => (StatusCode::CONFLICT, "DUPLICATE"),
        AdmissionError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "MEMPOOL_FULL"),
    };
    let mut api = ApiError::new(status, code, error.to_string());
    if let AdmissionError::Busy { retry_after_ms } = error {
        api.retry_after_ms = Some(retry_after_ms);
    }
    api
}

type ApiResult<T> = Result<T, ApiError>;

use kessai_types::hex::{decode as unhex, encode as hex};

fn outcome_json(rejection: Option<Rejection>) -> Value {
    match rejection {
        None => json!({"result": "ACCEPTED"}),
        Some(rejection) => json!({
            "result": "REJECTED",
            "code": rejection.code.name(),
            "leg": rejection.leg,
        }),
    }
}

fn record_json(record: &BlockRecord, state_root: Option<Hash32>) -> Value {
    json!({
        "height": record.height,
        "digest": record.digest.to_hex(),
        "time_ms": record.time_ms,
        "state_root": state_root.map(|root| root.to_hex()),
        "transactions": record.outcomes.iter().enumerate().map(|(index, outcome)| json!({
            "id": outcome.id.to_hex(),
            "index": index,
            "outcome": outcome_json(outcome.rejection),
        })).collect::<Vec<_>>(),
        "repo_events": record.repo_events.iter().map(event_json).collect::<Vec<_>>(),
    })
}

pub fn router(api: Api, request_bytes_max: usize) -> Router {
    Router::new()
        .route("/v1/transactions", post(submit))
        .route("/v1/transactions/batch", post(submit_batch))
        .route("/v1/transactions/{id}", get(transaction))
        .route("/v1/accounts/{account}", get(account))
        .route("/v1/accounts/{account}/balances/{asset}", get(balance))
        .route("/v1/accounts/{account}/balances/{asset}/proof", get(proof))
        .route("/v1/parties/{party}", get(party))
        .route("/v1/assets/{asset}", get(asset))
        .route("/v1/blocks/latest", get(latest_block))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/events", get(events))
        .route("/v1/validators", get(validators))
        .route("/v1/repos", get(repo_book))
        .route("/v1/repos/{id}", get(repo))
        .route("/v1/repos/{id}/events", get(repo_events))
        .route("/v1/prices/{date}/assets/{asset}", get(price))
        .route("/v1/prices/{date}/fx/{base}/{quote}", get(fx_rate))
        .route("/v1/status", get(status))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::not_found("NOT_FOUND", "no such endpoint") })
        .layer(DefaultBodyLimit::max(request_bytes_max))
        .with_state(api)
}

#[derive(Deserialize)]
struct SubmitBody {
    /// The signed transaction's canonical encoding, in hex.
    transaction: String,
}

/// Transactions per batch submission.
pub const BATCH_TRANSACTIONS_MAX: usize = 10_000;

#[derive(Deserialize)]
struct BatchBody {
    /// Signed transactions, each the hex of its canonical encoding.
    transactions: Vec<String>,
}

fn decode_transaction(text: &str) -> Result<Transaction, ApiError> {
    let bytes = unhex(text).ok_or_else(|| {
        ApiError::bad_request("MALFORMED_TRANSACTION", "`transaction` is not hex")
    })?;
    Transaction::decode(Bytes::from(bytes)).map_err(|e| {
        ApiError::bad_request(
            "MALFORMED_TRANSACTION",
            format!("not a canonical transaction: {e}"),
        )
    })
}

/// Submit many transactions in one request (signatures checked as one batch). Each gets its own
/// result, in order: an id admitted, or the error that refused it; the request as a whole fails
/// only if it is malformed or over the limits.
async fn submit_batch(
    State(api): State<Api>,
    body: Result<Json<BatchBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body?;
    if body.transactions.len() > BATCH_TRANSACTIONS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_TOO_LARGE",
            format!("at most {BATCH_TRANSACTIONS_MAX} transactions per batch"),
        ));
    }
    let decoded: Vec<Result<Transaction, ApiError>> = body
        .transactions
        .iter()
        .map(|t| decode_transaction(t))
        .collect();
    let valid: Vec<Transaction> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok().cloned())
        .collect();
    api.counters
        .submitted
        .fetch_add(decoded.len() as u64, Ordering::Relaxed);
    let mut admitted = api.submit.submit(&api.store, valid).await.into_iter();
    let results: Vec<Value> = decoded
        .into_iter()
        .map(|d| {
            let error = match d {
                Err(error) => error,
                Ok(_) => match admitted.next().expect("one result per valid transaction") {
                    Ok(id) => return json!({"id": id.to_hex(), "status": "PENDING"}),
                    Err(refusal) => admission_error(refusal),
                },
            };
            api.counters.refused.fetch_add(1, Ordering::Relaxed);
            json!({"code": error.code, "message": error.message})
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

#[derive(Deserialize)]
struct SubmitQuery {
    #[serde(default)]
    wait: bool,
}

async fn submit(
    State(api): State<Api>,
    query: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("BAD_QUERY", e.body_text()))?;
    let Json(body) = body?;
    let transaction = decode_transaction(&body.transaction)?;
    let started = Instant::now();
    api.counters.submitted.fetch_add(1, Ordering::Relaxed);
    let mut subscription = api.store.subscribe();
    let id = match api
        .submit
        .submit(&api.store, vec![transaction])
        .await
        .remove(0)
    {
        Ok(id) => id,
        Err(error) => {
            api.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(admission_error(error));
        }
    };
    if !query.wait {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id.to_hex(), "status": "PENDING"})),
        ));
    }
    let deadline = tokio::time::Instant::now() + api.wait_timeout;
    loop {
        if let Some(body) = final_status(&api, &id).await {
            let ms = started.elapsed().as_millis() as u64;
            api.counters
                .finality_ms_sum
                .fetch_add(ms, Ordering::Relaxed);
            api.counters.finality_count.fetch_add(1, Ordering::Relaxed);
            return Ok((StatusCode::OK, Json(body)));
        }
        match tokio::time::timeout_at(deadline, subscription.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                return Ok((
                    StatusCode::ACCEPTED,
                    Json(json!({"id": id.to_hex(), "status": "PENDING"})),
                ));
            }
        }
    }
}

async fn final_status(api: &Api, id: &TxId) -> Option<Value> {
    let location = api.store.transaction(id).await?;
    Some(json!({
        "id": id.to_hex(),
        "status": "FINAL",
        "height": location.height,
        "index": location.index,
        "outcome": outcome_json(location.rejection),
    }))
}

fn parse<T: std::str::FromStr>(text: &str, code: &'static str, what: &str) -> ApiResult<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| ApiError::bad_request(code, format!("{what} {text:?}: {e}")))
}

async fn transaction(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id: TxId = parse(&id, "BAD_TRANSACTION_ID", "transaction id")?;
    if let Some(body) = final_status(&api, &id).await {
        return Ok(Json(body));
    }
    if api.mempool.contains(&id) {
        return Ok(Json(json!({"id": id.to_hex(), "status": "PENDING"})));
    }
    Err(ApiError::not_found(
        "UNKNOWN_TRANSACTION",
        "not final and not waiting on this node",
    ))
}

async fn read(api: &Api, key: StateKey) -> ApiResult<(u64, Option<StateValue>)> {
    api.store.get(&key).await.map_err(ApiError::internal)
}

async fn account(State(api): State<Api>, Path(account): Path<String>) -> ApiResult<Json<Value>> {
    let id: AccountId = parse(&account, "BAD_ACCOUNT_ID", "account")?;
    match read(&api, StateKey::Account(id)).await? {
        (height, Some(StateValue::Account(a))) => Ok(Json(json!({
            "id": a.id.to_string(), "owner": a.owner.to_string(), "frozen": a.frozen,
            "height": height,
        }))),
        _ => Err(ApiError::not_found(
            "UNKNOWN_ACCOUNT",
            format!("no account {id}"),
        )),
    }
}

async fn known_account_and_asset(
    api: &Api,
    account: &str,
    asset: &str,
) -> ApiResult<(AccountId, AssetId)> {
    let account: AccountId = parse(account, "BAD_ACCOUNT_ID", "account")?;
    let asset: AssetId = parse(asset, "BAD_ASSET_ID", "asset")?;
    if !matches!(
        read(api, StateKey::Account(account)).await?.1,
        Some(StateValue::Account(_))
    ) {
        return Err(ApiError::not_found(
            "UNKNOWN_ACCOUNT",
            format!("no account {account}"),
        ));
    }
    if !matches!(
        read(api, StateKey::Asset(asset)).await?.1,
        Some(StateValue::Asset(_))
    ) {
        return Err(ApiError::not_found(
            "UNKNOWN_ASSET",
            format!("no asset {asset}"),
        ));
    }
    Ok((account, asset))
}

async fn balance(
    State(api): State<Api>,
    Path((account, asset)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (account, asset) = known_account_and_asset(&api, &account, &asset).await?;
    let (height, value) = read(&api, StateKey::Balance(account, asset)).await?;
    let (available, encumbered) = match value {
        Some(StateValue::Balance(b)) => (b.available, b.encumbered),
        _ => (0, 0),
    };
    Ok(Json(json!({
        "account": account.to_string(), "asset": asset.to_string(),
        "available": available.to_string(), "encumbered": encumbered.to_string(),
        "height": height,
    })))
}

async fn proof(
    State(api): State<Api>,
    Path((account, asset)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (account, asset) = known_account_and_asset(&api, &account, &asset).await?;
    let key = StateKey::Balance(account, asset);
    let (applied, proven) = api.store.prove(&key).await.map_err(ApiError::internal)?;
    let Some((value, proof)) = proven else {
        return Err(ApiError::not_found(
            "NO_BALANCE",
            "the account has never held this asset: there is no record to prove",
        ));
    };
    let StateValue::Balance(b) = &value else {
        return Err(ApiError::internal("balance key holds another record"));
    };
    Ok(Json(json!({
        "account": account.to_string(), "asset": asset.to_string(),
        "available": b.available.to_string(), "encumbered": b.encumbered.to_string(),
        "height": applied.height,
        "state_root": applied.state_root.to_hex(),
        "value": hex(&value.encode()),
        "proof": hex(&kessai_storage::encode_proof(&proof)),
    })))
}

async fn party(State(api): State<Api>, Path(party): Path<String>) -> ApiResult<Json<Value>> {
    let id: PartyId = parse(&party, "BAD_PARTY_ID", "party")?;
    match read(&api, StateKey::Party(id)).await? {
        (height, Some(StateValue::Party(p))) => {
            let roles: Vec<&str> = kessai_types::Role::ALL
                .into_iter()
                .filter(|role| p.roles.contains(*role))
                .map(crate::genesis::role_name)
                .collect();
            Ok(Json(json!({
                "id": p.id.to_string(), "public_key": p.public_key.to_string(),
                "roles": roles, "kyc_attested": p.kyc.is_some(), "height": height,
            })))
        }
        _ => Err(ApiError::not_found(
            "UNKNOWN_PARTY",
            format!("no party {id}"),
        )),
    }
}

async fn asset(State(api): State<Api>, Path(asset): Path<String>) -> ApiResult<Json<Value>> {
    let id: AssetId = parse(&asset, "BAD_ASSET_ID", "asset")?;
    match read(&api, StateKey::Asset(id)).await? {
        (height, Some(StateValue::Asset(a))) => Ok(Json(json!({
            "id": a.id.to_string(), "class": format!("{:?}", a.class),
            "administrator": a.administrator.to_string(), "kyc_required": a.kyc_required,
            "frozen": a.frozen, "supply": a.supply.to_string(), "height": height,
        }))),
        _ => Err(ApiError::not_found(
            "UNKNOWN_ASSET",
            format!("no asset {id}"),
        )),
    }
}

async fn repo_book(State(api): State<Api>) -> ApiResult<Json<Value>> {
    match read(&api, StateKey::RepoBook).await? {
        (height, Some(StateValue::RepoBook(book))) => Ok(Json(book_json(&book, height))),
        (height, _) => Ok(Json(book_json(&Default::default(), height))),
    }
}

async fn known_contract(api: &Api, id: &str) -> ApiResult<(u64, kessai_types::RepoContract)> {
    let id: TxId = parse(id, "BAD_CONTRACT_ID", "contract id")?;
    match read(api, StateKey::Repo(id)).await? {
        (height, Some(StateValue::Repo(contract))) => Ok((height, contract)),
        _ => Err(ApiError::not_found(
            "UNKNOWN_CONTRACT",
            format!("no repo contract {}", id.to_hex()),
        )),
    }
}

async fn repo(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let (height, contract) = known_contract(&api, &id).await?;
    let time_ms = api.store.applied().time_ms;
    Ok(Json(contract_json(&contract, height, time_ms)))
}

/// The most events one page returns.
const EVENTS_PAGE_MAX: u32 = 1_000;

#[derive(Deserialize)]
struct EventsPage {
    from: Option<u32>,
    limit: Option<u32>,
}

/// A contract's events from sequence `from` (0 by default), at most `limit` (100 by default,
/// [`EVENTS_PAGE_MAX`] at most).
async fn repo_events(
    State(api): State<Api>,
    Path(id): Path<String>,
    page: Result<Query<EventsPage>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(page) = page.map_err(|e| ApiError::bad_request("BAD_QUERY", e.body_text()))?;
    let limit = page.limit.unwrap_or(100);
    if limit == 0 || limit > EVENTS_PAGE_MAX {
        return Err(ApiError::bad_request(
            "BAD_QUERY",
            format!("limit must be 1 to {EVENTS_PAGE_MAX}"),
        ));
    }
    let (height, contract) = known_contract(&api, &id).await?;
    let from = page.from.unwrap_or(0).min(contract.events);
    let to = from.saturating_add(limit).min(contract.events);
    let keys: Vec<StateKey> = (from..to)
        .map(|sequence| StateKey::RepoEvent(contract.id, sequence))
        .collect();
    let events: Vec<Value> = api
        .store
        .get_many(&keys)
        .await
        .map_err(ApiError::internal)?
        .iter()
        .map(|value| match value {
            Some(StateValue::RepoEvent(record)) => Ok(event_json(record)),
            other => Err(ApiError::internal(format!(
                "event record missing: {other:?}"
            ))),
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(json!({
        "contract": contract.id.to_hex(),
        "events": events,
        "next": (to < contract.events).then_some(to),
        "height": height,
    })))
}

fn business_date(text: &str) -> ApiResult<BusinessDate> {
    text.parse()
        .ok()
        .filter(|date| kessai_types::repo::is_business_date(*date))
        .ok_or_else(|| {
            ApiError::bad_request("BAD_DATE", format!("{text:?} is not a date YYYYMMDD"))
        })
}

async fn price_day(api: &Api, date: BusinessDate) -> ApiResult<bool> {
    Ok(matches!(
        read(api, StateKey::PriceDay(date)).await?.1,
        Some(StateValue::PriceDay(true))
    ))
}

async fn price(
    State(api): State<Api>,
    Path((date, asset)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let date = business_date(&date)?;
    let asset: AssetId = parse(&asset, "BAD_ASSET_ID", "asset")?;
    match read(&api, StateKey::Price(date, asset)).await? {
        (height, Some(StateValue::Price(price))) => Ok(Json(json!({
            "date": date, "asset": asset.to_string(), "price": price.to_string(),
            "date_closed": price_day(&api, date).await?, "height": height,
        }))),
        _ => Err(ApiError::not_found(
            "PRICE_MISSING",
            format!("no price of {asset} for {date}"),
        )),
    }
}

async fn fx_rate(
    State(api): State<Api>,
    Path((date, base, quote)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let date = business_date(&date)?;
    let base: Currency = parse(&base, "BAD_CURRENCY", "currency")?;
    let quote: Currency = parse(&quote, "BAD_CURRENCY", "currency")?;
    match read(&api, StateKey::FxRate(date, base, quote)).await? {
        (height, Some(StateValue::FxRate(rate))) => Ok(Json(json!({
            "date": date, "base": base.to_string(), "quote": quote.to_string(),
            "rate": rate.to_string(), "date_closed": price_day(&api, date).await?,
            "height": height,
        }))),
        _ => Err(ApiError::not_found(
            "PRICE_MISSING",
            format!("no {base}/{quote} rate for {date}"),
        )),
    }
}

async fn block_json(api: &Api, height: u64) -> ApiResult<Json<Value>> {
    let record = api
        .store
        .record(height)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found("UNKNOWN_BLOCK", format!("no finalized block {height}"))
        })?;
    let mut body = record_json(&record, api.store.root_at(height).await);
    if let Some(block) = api.blocks.block(height).await {
        body["parent"] = json!(kessai_chain::block::digest_hash(&block.parent).to_hex());
        body["attested_state_height"] = json!(block.state_height);
        body["attested_state_root"] = json!(block.state_root.to_hex());
        for (entry, transaction) in body["transactions"]
            .as_array_mut()
            .expect("array")
            .iter_mut()
            .zip(&block.transactions)
        {
            entry["submitter"] = json!(transaction.body.submitter.to_string());
            entry["operation"] = json!(format!("{:?}", transaction.body.operation));
        }
    }
    Ok(Json(body))
}

async fn block(State(api): State<Api>, Path(height): Path<String>) -> ApiResult<Json<Value>> {
    let height: u64 = parse(&height, "BAD_HEIGHT", "height")?;
    block_json(&api, height).await
}

async fn latest_block(State(api): State<Api>) -> ApiResult<Json<Value>> {
    block_json(&api, api.store.applied().height).await
}

#[derive(Deserialize)]
struct EventsQuery {
    from_height: Option<u64>,
}

/// Finalized blocks as server-sent events, one per height, from `from_height` (or from the
/// `Last-Event-ID` header plus one) onwards: never a gap, never a repeat. The event id is the
/// height, so a client that reconnects with `Last-Event-ID` resumes exactly.
async fn events(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("BAD_QUERY", e.body_text()))?;
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .and_then(|height| height.checked_add(1))
                .ok_or_else(|| ApiError::bad_request("BAD_LAST_EVENT_ID", "not a height"))?,
        ),
        None => None,
    };
    let start = resume
        .or(query.from_height)
        .unwrap_or(api.store.applied().height + 1);
    let stream = futures::stream::unfold((api, start), |(api, next)| async move {
        let mut subscription = api.store.subscribe();
        loop {
            if api.store.applied().height >= next {
                let events = match api.store.record(next).await {
                    Ok(Some(record)) => {
                        let root = api.store.root_at(next).await;
                        // A block's repo events come first and carry no id; the block event
                        // last, with the height as its id: a client resuming after it has
                        // seen them all.
                        let repo = record.repo_events.iter().map(|event| {
                            Event::default()
                                .event("repo")
                                .json_data(event_json(event))
                                .expect("serializable")
                        });
                        let block = Event::default()
                            .id(next.to_string())
                            .event("block")
                            .json_data(record_json(&record, root))
                            .expect("serializable");
                        repo.chain([block])
                            .map(Ok::<_, std::convert::Infallible>)
                            .collect::<Vec<_>>()
                    }
                    _ => return None,
                };
                return Some((futures::stream::iter(events), (api, next + 1)));
            }
            if subscription.changed().await.is_err() {
                return None;
            }
        }
    });
    Ok(Sse::new(futures::StreamExt::flatten(stream)).keep_alive(KeepAlive::default()))
}

#[derive(Serialize)]
struct StatusBody {
    network: u32,
    height: u64,
    time_ms: u64,
    state_root: String,
    mempool_transactions: usize,
    mempool_bytes: usize,
}

async fn status(State(api): State<Api>) -> Json<StatusBody> {
    let applied = api.store.applied();
    let (transactions, bytes) = api.mempool.size();
    Json(StatusBody {
        network: api.mempool.chain().network,
        height: applied.height,
        time_ms: applied.time_ms,
        state_root: applied.state_root.to_hex(),
        mempool_transactions: transactions,
        mempool_bytes: bytes,
    })
}

async fn validators(State(api): State<Api>) -> ApiResult<Json<Value>> {
    let sets = api.store.validators().await.map_err(ApiError::internal)?;
    let keys = |set: &[kessai_types::PublicKey]| -> Vec<String> {
        set.iter().map(|key| key.to_string()).collect()
    };
    Ok(Json(json!({
        "height": sets.height,
        "epoch": sets.epoch,
        "first_height": sets.first_height,
        "last_height": sets.last_height,
        "validators": keys(&sets.current),
        "next_validators": sets.next.as_deref().map(keys),
    })))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "OK"}))
}

/// Ready once the node has applied a block after its start: it follows the chain.
async fn ready(State(api): State<Api>) -> Response {
    let applied = api.store.applied();
    if applied.height > 0 {
        Json(json!({"status": "READY", "height": applied.height})).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            "no block finalized yet",
        )
        .into_response()
    }
}

/// This process's CPU seconds and resident bytes, from `/proc` (Linux; `None` elsewhere).
fn process_usage() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), counted from the 3rd: utime is the
    // 14th field and stime the 15th, in clock ticks.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let pages: f64 = std::fs::read_to_string("/proc/self/statm")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    (per_second > 0.0).then_some((ticks / per_second, pages * page_bytes))
}

async fn metrics(State(api): State<Api>) -> Response {
    let applied = api.store.applied();
    let (transactions, bytes) = api.mempool.size();
    let c = &api.counters;
    let mut text = String::new();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let series: [(&str, &str, &str, u64); 10] = [
        (
            "height",
            "Last applied finalized height.",
            "gauge",
            applied.height,
        ),
        (
            "mempool_transactions",
            "Transactions waiting.",
            "gauge",
            transactions as u64,
        ),
        ("mempool_bytes", "Bytes waiting.", "gauge", bytes as u64),
        (
            "peers_configured",
            "Nodes in the p2p peer set.",
            "gauge",
            api.peers as u64,
        ),
        (
            "submitted_total",
            "Transactions submitted to this API.",
            "counter",
            load(&c.submitted),
        ),
        (
            "refused_total",
            "Submissions refused at admission.",
            "counter",
            load(&c.refused),
        ),
        (
            "transactions_applied_total",
            "Finalized transactions the ledger accepted.",
            "counter",
            load(&c.applied),
        ),
        (
            "transactions_rejected_total",
            "Finalized transactions the ledger rejected.",
            "counter",
            load(&c.rejected),
        ),
        (
            "finality_latency_ms_sum",
            "Submit-to-final latency of waiting submissions.",
            "counter",
            load(&c.finality_ms_sum),
        ),
        (
            "finality_latency_ms_count",
            "Waiting submissions that became final.",
            "counter",
            load(&c.finality_count),
        ),
    ];
    for (name, help, kind, value) in series {
        text.push_str(&format!(
            "# HELP kessai_{name} {help}\n# TYPE kessai_{name} {kind}\nkessai_{name} {value}\n"
        ));
    }
    if let Some((cpu_seconds, resident_bytes)) = process_usage() {
        for (name, help, kind, value) in [
            (
                "process_cpu_seconds_total",
                "CPU time of this process, user and system.",
                "counter",
                cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory of this process.",
                "gauge",
                resident_bytes,
            ),
        ] {
            text.push_str(&format!(
                "# HELP kessai_{name} {help}\n# TYPE kessai_{name} {kind}\nkessai_{name} {value}\n"
            ));
        }
    }
    text.push_str(&(api.runtime_metrics)());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}
