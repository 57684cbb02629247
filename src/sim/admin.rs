//! The simulator's own endpoints under `/_sim/`: ground truth, mutations, faults and webhook
//! impairments. They need no token and are not rate-limited.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::config::{FaultConfig, Impairments};
use super::faults;
use super::mutate::MutationKind;
use super::resource::Resource;
use super::state::SimState;
use super::truth;

/// Largest resource `GET /_sim/dump/<resource>` returns, because larger ones would build one
/// huge response in memory.
pub const MAX_DUMP_RECORDS: u64 = 20_000;

/// Most mutations one `POST /_sim/mutate` applies.
pub const MAX_MUTATIONS_PER_REQUEST: u32 = 10_000;

fn bad_request(message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message.to_string() }))
}

fn parse_resource(name: &str) -> Result<Resource, HttpResponse> {
    name.parse::<Resource>().map_err(|error| HttpResponse::NotFound().json(json!({ "error": error.to_string() })))
}

/// `GET /_sim/truth`: count and checksum of every resource.
pub async fn truth_all(state: web::Data<SimState>) -> HttpResponse {
    let mut store = SimState::lock(&state.store);
    let mut body = Map::new();
    for resource in Resource::ALL {
        let truth = store.truth(resource);
        body.insert(resource.name().to_owned(), json!(truth));
    }
    HttpResponse::Ok().json(Value::Object(body))
}

/// `GET /_sim/truth/<resource>`: `[[id, updated_at], ...]` in ascending id order.
pub async fn truth_one(path: web::Path<String>, state: web::Data<SimState>) -> HttpResponse {
    let resource = match parse_resource(&path) {
        Ok(resource) => resource,
        Err(answer) => return answer,
    };
    let versions = truth::versions(&SimState::lock(&state.store), resource);
    HttpResponse::Ok().json(versions)
}

/// `GET /_sim/dump/<resource>`: every existing record in ascending id order, for small
/// accounts.
pub async fn dump(path: web::Path<String>, state: web::Data<SimState>) -> HttpResponse {
    let resource = match parse_resource(&path) {
        Ok(resource) => resource,
        Err(answer) => return answer,
    };
    let store = SimState::lock(&state.store);
    let size = store.next_index(resource);
    if size > MAX_DUMP_RECORDS {
        return bad_request(format!(
            "/_sim/dump/{resource} holds up to {size} records, more than the dump limit of {MAX_DUMP_RECORDS}; use /_sim/truth/{resource} instead"
        ));
    }
    HttpResponse::Ok().json(truth::dump(&store, resource))
}

/// Body of `POST /_sim/mutate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutateRequest {
    #[serde(default = "one")]
    pub count: u32,
    pub kind: Option<MutationKind>,
}

fn one() -> u32 {
    1
}

/// `POST /_sim/mutate`: applies mutations now and returns what changed.
pub async fn mutate(body: web::Json<MutateRequest>, state: web::Data<SimState>) -> HttpResponse {
    if body.count > MAX_MUTATIONS_PER_REQUEST {
        return bad_request(format!("count {} is above the limit of {MAX_MUTATIONS_PER_REQUEST} per request", body.count));
    }
    let applied = state.mutate(body.count, body.kind);
    HttpResponse::Ok().json(json!({ "applied": applied }))
}

/// `GET /_sim/faults`: the faults in force.
pub async fn faults_get(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(SimState::lock(&state.faults).clone())
}

/// `POST /_sim/faults`: replaces the faults; `revoke_tokens: true` also revokes every token
/// now.
pub async fn faults_set(body: web::Json<FaultConfig>, state: web::Data<SimState>) -> HttpResponse {
    let mut faults = body.into_inner();
    if let Err(message) = faults::validate(&faults) {
        return bad_request(message);
    }
    if faults.revoke_tokens {
        SimState::lock(&state.tokens).revoke_all();
        tracing::info!("all access tokens revoked by fault injection");
        faults.revoke_tokens = false;
    }
    *SimState::lock(&state.faults) = faults.clone();
    HttpResponse::Ok().json(faults)
}

/// `GET /_sim/webhooks`: sender counters and impairments.
pub async fn webhooks_get(state: web::Data<SimState>) -> HttpResponse {
    match &state.webhooks {
        Some(sender) => HttpResponse::Ok().json(json!({ "stats": sender.stats(), "impairments": sender.impairments() })),
        None => no_webhooks(),
    }
}

/// `POST /_sim/webhooks`: replaces the delivery impairments.
pub async fn webhooks_set(body: web::Json<Impairments>, state: web::Data<SimState>) -> HttpResponse {
    let Some(sender) = &state.webhooks else { return no_webhooks() };
    let impairments = body.into_inner();
    for (name, rate) in [("drop_rate", impairments.drop_rate), ("duplicate_rate", impairments.duplicate_rate), ("delay_rate", impairments.delay_rate)] {
        if !(0.0..=1.0).contains(&rate) {
            return bad_request(format!("invalid {name} {rate}: expected a fraction from 0.0 to 1.0"));
        }
    }
    sender.set_impairments(impairments.clone());
    HttpResponse::Ok().json(impairments)
}

fn no_webhooks() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": "no webhook target configured: start the simulator with --webhook-url" }))
}
