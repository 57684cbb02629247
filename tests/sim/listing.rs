//! Pagination and filters of `GET /v3/<resource>`.

use std::collections::{BTreeSet, HashSet};

use greenhouse_sync::sim::{Resource, SimConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Client, TestResult, admin_get, admin_post, small_config, start, truth_ids};

fn assert_descending_unique(ids: &[i64], context: &str) {
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "{context}: an id was returned twice");
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{context}: ids are not in descending order");
}

#[tokio::test]
async fn pagination_visits_each_record_once() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    let expected = truth_ids(&sim, "candidates").await?;

    for per_page in [1, 7, 100, 500] {
        let ids = client.page_all(&format!("/v3/candidates?per_page={per_page}"), || async {}).await?;
        assert_descending_unique(&ids, &format!("per_page={per_page}"));
        assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), expected, "per_page={per_page}");
    }

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn every_resource_pages_to_end() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;

    for resource in Resource::ALL {
        let expected = truth_ids(&sim, resource.name()).await?;
        let ids = client.page_all(&format!("/v3/{resource}?per_page=50"), || async {}).await?;
        assert_descending_unique(&ids, resource.name());
        assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), expected, "{resource}");
        assert!(ids.iter().all(|id| *id > i64::from(u32::MAX)), "{resource}: ids must exceed 2^32");
    }

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn pagination_while_mutating() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;

    for resource in ["candidates", "applications"] {
        let before = truth_ids(&sim, resource).await?;
        let ids = client
            .page_all(&format!("/v3/{resource}?per_page=7"), || async {
                admin_post(&sim, "/_sim/mutate", json!({ "count": 5 })).await.expect("mutate answers");
            })
            .await?;
        let after = truth_ids(&sim, resource).await?;

        assert_descending_unique(&ids, resource);
        let seen: BTreeSet<i64> = ids.iter().copied().collect();
        let throughout: BTreeSet<i64> = before.intersection(&after).copied().collect();
        let missed: Vec<&i64> = throughout.difference(&seen).collect();
        assert!(missed.is_empty(), "{resource}: records existing throughout were missed: {missed:?}");
        assert!(seen.iter().all(|id| before.contains(id)), "{resource}: a record created mid-walk was returned");
        assert_ne!(before, after, "{resource}: the mutations changed nothing");
    }

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn pagination_during_mutation_stream() -> TestResult {
    let sim = start(SimConfig { mutations_per_sec: 200.0, ..small_config() }).await?;
    let client = Client::connect(&sim).await?;

    let before = truth_ids(&sim, "applications").await?;
    let ids = client
        .page_all("/v3/applications?per_page=7", || async {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        })
        .await?;
    let after = truth_ids(&sim, "applications").await?;

    assert_descending_unique(&ids, "applications");
    let seen: BTreeSet<i64> = ids.iter().copied().collect();
    let throughout: BTreeSet<i64> = before.intersection(&after).copied().collect();
    let missed: Vec<&i64> = throughout.difference(&seen).collect();
    assert!(missed.is_empty(), "records existing throughout were missed: {missed:?}");
    assert_ne!(before, after, "the stream changed nothing");

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn updated_at_window_is_exact() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    let versions = admin_get(&sim, "/_sim/truth/applications").await?;
    let mut pairs: Vec<(i64, String)> = serde_json::from_value(versions)?;
    pairs.sort_by(|a, b| a.1.cmp(&b.1));
    let low = pairs[30].1.clone();
    let high = pairs[90].1.clone();

    // Two-sided window [low, high): by repeating the key, and as one pipe-delimited value.
    let expected: BTreeSet<i64> = pairs.iter().filter(|(_, at)| *at >= low && *at < high).map(|(id, _)| *id).collect();
    for query in [
        format!("updated_at=gte|{low}&updated_at=lt|{high}&per_page=9"),
        format!("updated_at=gte|{low}|lt|{high}&per_page=9"),
    ] {
        let ids = client.page_all(&format!("/v3/applications?{query}"), || async {}).await?;
        assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), expected, "{query}");
        assert_eq!(ids.len(), expected.len(), "{query}: duplicates");
    }

    // Open window (gt, lte): excludes low, includes high.
    let expected: BTreeSet<i64> = pairs.iter().filter(|(_, at)| *at > low && *at <= high).map(|(id, _)| *id).collect();
    let ids = client.page_all(&format!("/v3/applications?updated_at=gt|{low}&updated_at=lte|{high}"), || async {}).await?;
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), expected);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn created_at_and_parent_filters() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    let dump = admin_get(&sim, "/_sim/dump/applications").await?;
    let records = dump.as_array().ok_or("dump is an array")?;

    let cutoff = records[60]["created_at"].as_str().ok_or("created_at")?.to_owned();
    let expected: BTreeSet<i64> = records
        .iter()
        .filter(|record| record["created_at"].as_str().is_some_and(|at| at < cutoff.as_str()))
        .filter_map(|record| record["id"].as_i64())
        .collect();
    let ids = client.page_all(&format!("/v3/applications?created_at=lt|{cutoff}&per_page=25"), || async {}).await?;
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), expected);

    let candidate_id = records[3]["candidate_id"].as_i64().ok_or("candidate_id")?;
    let expected: BTreeSet<i64> = records.iter().filter(|r| r["candidate_id"] == candidate_id).filter_map(|r| r["id"].as_i64()).collect();
    let ids = client.page_all(&format!("/v3/applications?candidate_ids={candidate_id}"), || async {}).await?;
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), expected);

    let job_id = records[5]["job_id"].as_i64().ok_or("job_id")?;
    let expected: BTreeSet<i64> = records.iter().filter(|r| r["job_id"] == job_id).filter_map(|r| r["id"].as_i64()).collect();
    let ids = client.page_all(&format!("/v3/applications?job_ids={job_id}&per_page=2"), || async {}).await?;
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), expected);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn ids_filter_returns_those_ids() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    let all: Vec<i64> = truth_ids(&sim, "candidates").await?.into_iter().collect();
    let requested = [all[0], all[17], all[99]];

    let answer = client.get(&format!("/v3/candidates?ids={},{},{},999", requested[0], requested[1], requested[2])).await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.ids(), vec![requested[2], requested[1], requested[0]]);
    assert_eq!(answer.header("link").as_deref(), Some(""));

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn invalid_queries_answer_422() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;
    let first = client.get("/v3/jobs?per_page=2").await?;
    let next = first.next_link().ok_or("first page has a next link")?;
    let fifty_one: Vec<String> = (1..=51).map(|n| n.to_string()).collect();

    let cases = [
        format!("{next}&per_page=2"),
        "/v3/jobs?per_page=0".to_owned(),
        "/v3/jobs?per_page=501".to_owned(),
        format!("/v3/jobs?ids={}", fifty_one.join(",")),
        "/v3/jobs?updated_at=after|2026-01-01T00:00:00Z".to_owned(),
        "/v3/jobs?updated_at=gte|not-a-time".to_owned(),
        "/v3/jobs?cursor=not-a-cursor".to_owned(),
        "/v3/candidates?job_ids=1".to_owned(),
    ];
    for url in cases {
        let answer = client.get(&url).await?;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert!(answer.body["error"].is_string(), "{url}: error body");
        assert!(answer.header("x-ratelimit-limit").is_some(), "{url}: rate-limit headers");
    }

    assert_eq!(client.get("/v3/widgets").await?.status, StatusCode::NOT_FOUND);

    sim.stop().await;
    Ok(())
}

#[tokio::test]
async fn records_have_v3_shapes() -> TestResult {
    let sim = start(small_config()).await?;
    let client = Client::connect(&sim).await?;

    let expected_fields: [(&str, &[&str]); 4] = [
        ("candidates", &["first_name", "last_name", "email_addresses", "custom_fields", "last_activity_at", "linked_user_ids"]),
        ("applications", &["candidate_id", "job_id", "prospect", "status", "last_activity_at", "prospective_job_ids"]),
        ("offers", &["version", "application_id", "candidate_id", "status", "starts_on"]),
        ("scorecards", &["interviewer_id", "application_id", "candidate_rating", "private_notes"]),
    ];
    for (resource, fields) in expected_fields {
        let answer = client.get(&format!("/v3/{resource}?per_page=5")).await?;
        for record in answer.body.as_array().ok_or("page is an array")? {
            for field in fields {
                assert!(record.get(*field).is_some(), "{resource} lacks {field}: {record}");
            }
            let updated_at = record["updated_at"].as_str().ok_or("updated_at")?;
            assert_eq!(updated_at.len(), "2026-01-01T00:00:00.000Z".len(), "{resource}: milliseconds in {updated_at}");
        }
    }

    let applications = admin_get(&sim, "/_sim/dump/applications").await?;
    let jobless = applications.as_array().ok_or("dump")?.iter().filter(|a| a["job_id"].is_null()).count();
    assert!(jobless > 0, "some prospects have no job");

    sim.stop().await;
    Ok(())
}
