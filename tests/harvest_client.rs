//! Harvest v3 client against scripted HTTP servers on 127.0.0.1.
//!
//! Each test starts its own server, which serves `/token` like Greenhouse's token endpoint
//! and `/v3/...` like Harvest, from a closure. The server is plain `std::net`, so that a test
//! can also drop a connection or cut a body short.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use greenhouse_sync::greenhouse::harvest::{
    Budget, Comparison, Credentials, HarvestClient, HarvestError, HarvestSettings, ListFilters,
};
use serde_json::value::RawValue;
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------
// Scripted server

/// One request as the server received it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: String,
    at: Instant,
}

impl Recorded {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Query parameters, percent-decoded.
    fn query(&self) -> Vec<(String, String)> {
        let query = self.target.split_once('?').map_or("", |(_, query)| query);
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    }

    fn is_token_request(&self) -> bool {
        self.path() == "/token"
    }
}

/// What the server does with a request.
enum Reply {
    /// A complete response.
    Full { status: u16, headers: Vec<(String, String)>, body: String },
    /// Close the connection without a response.
    Drop,
    /// Send headers announcing more body than follows, then close.
    CutBody { body: String },
    /// Wait, then reply.
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply::Full { status, headers: Vec::new(), body: body.to_string() }
    }

    fn raw(status: u16, body: &str) -> Reply {
        Reply::Full { status, headers: Vec::new(), body: body.to_owned() }
    }

    fn with_header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Full { status, mut headers, body } => {
                headers.push((name.to_owned(), value.to_owned()));
                Reply::Full { status, headers, body }
            }
            other => other,
        }
    }

    /// Builds a page of records with the given ids and `next` link. `None` gives an empty
    /// `Link`, as Greenhouse sends on the last page.
    fn page(ids: &[i64], next: Option<&str>) -> Reply {
        let records: Vec<Value> = ids.iter().map(|id| json!({"id": id, "name": "x"})).collect();
        let link = next.map_or(String::new(), |url| format!("<{url}>; rel=\"next\""));
        Reply::json(200, Value::Array(records)).with_header("Link", &link)
    }

    fn token(access_token: &str, expires_in: u64) -> Reply {
        Reply::json(
            200,
            json!({"token_type": "Bearer", "access_token": access_token, "expires_in": expires_in}),
        )
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

struct TestServer {
    base: String,
    listener: TcpListener,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl TestServer {
    fn bind() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        TestServer {
            base: format!("http://{address}"),
            listener,
            requests: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Serves every connection on its own thread until the test process ends.
    fn serve(self, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Served {
        let handler: Arc<Handler> = Arc::new(handler);
        let requests = Arc::clone(&self.requests);
        let listener = self.listener;
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = Arc::clone(&handler);
                let requests = Arc::clone(&requests);
                thread::spawn(move || handle_connection(stream, &*handler, &requests));
            }
        });
        Served { base: self.base, requests: self.requests }
    }
}

/// A running server: its base URL and what it received.
struct Served {
    base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Served {
    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("requests lock").clone()
    }

    fn harvest_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| !r.is_token_request()).collect()
    }

    fn token_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_token_request).collect()
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }
}

fn handle_connection(stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<Recorded>>) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let reply = handler(&request);
    requests.lock().expect("requests lock").push(request);

    let mut stream = stream;
    write_reply(&mut stream, reply);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn read_request(stream: &TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();

    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }

    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;

    Some(Recorded {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    })
}

fn write_reply(stream: &mut TcpStream, reply: Reply) {
    match reply {
        Reply::Full { status, headers, body } => {
            let mut head = format!(
                "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
        Reply::Drop => {}
        Reply::CutBody { body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() + 1000
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
        Reply::Delayed(wait, reply) => {
            thread::sleep(wait);
            write_reply(stream, *reply);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client set-up

fn settings(server: &Served) -> HarvestSettings {
    HarvestSettings {
        base_url: server.url("/v3"),
        token_url: server.url("/token"),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        max_retries: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        max_rate_limit_waits: 5,
        max_retry_after: Duration::from_secs(5),
        budget_limit: 100,
        ..HarvestSettings::default()
    }
}

fn credentials(user_id: Option<&str>) -> Credentials {
    Credentials {
        client_id: "client-id".to_owned(),
        client_secret: "client-secret".to_owned(),
        user_id: user_id.map(str::to_owned),
    }
}

fn client(server: &Served) -> HarvestClient {
    client_with(settings(server))
}

fn client_with(settings: HarvestSettings) -> HarvestClient {
    HarvestClient::new(settings, 7, credentials(Some("5414812002"))).expect("client")
}

/// Reads every page of a chain.
async fn read_all(client: &HarvestClient, resource: &str, filters: &ListFilters) -> Result<Vec<Value>, HarvestError> {
    let mut pager = client.list(resource, filters)?;
    let mut records = Vec::new();
    while let Some(page) = pager.next_page().await? {
        records.extend(page.records.iter().map(|record| parsed(record)));
    }
    Ok(records)
}

fn parsed(record: &RawValue) -> Value {
    serde_json::from_str(record.get()).expect("a record Harvest sent parses")
}

fn raw_ids_of(records: &[Box<RawValue>]) -> Vec<i64> {
    records.iter().filter_map(|record| greenhouse_sync::greenhouse::harvest::record_id(record)).collect()
}

fn ids_of(records: &[Value]) -> Vec<i64> {
    records.iter().filter_map(|record| record["id"].as_i64()).collect()
}

/// Starts a server whose token endpoint always issues `token-1` for an hour, and whose Harvest
/// side responds with what `harvest` returns.
fn serve_harvest(harvest: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Served {
    TestServer::bind().serve(move |request| {
        if request.is_token_request() {
            return Reply::token("token-1", 3600);
        }
        harvest(request)
    })
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn token_fetched_once_and_reused() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[1], None));
    let client = client(&server);

    read_all(&client, "jobs", &ListFilters::new()).await?;
    read_all(&client, "jobs", &ListFilters::new()).await?;

    assert_eq!(server.token_requests().len(), 1);
    let harvest = server.harvest_requests();
    assert_eq!(harvest.len(), 2);
    for request in &harvest {
        assert_eq!(request.header("authorization"), Some("Bearer token-1"));
    }
    Ok(())
}

#[tokio::test]
async fn token_request_sends_basic_auth_and_sub() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[1], None));
    read_all(&client(&server), "jobs", &ListFilters::new()).await?;

    let token_request = &server.token_requests()[0];
    assert_eq!(token_request.method, "POST");
    // base64("client-id:client-secret")
    assert_eq!(token_request.header("authorization"), Some("Basic Y2xpZW50LWlkOmNsaWVudC1zZWNyZXQ="));
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(token_request.body.as_bytes()).into_owned().collect();
    assert!(form.contains(&("grant_type".to_owned(), "client_credentials".to_owned())), "{form:?}");
    assert!(form.contains(&("sub".to_owned(), "5414812002".to_owned())), "{form:?}");
    Ok(())
}

#[tokio::test]
async fn token_request_without_user_id_omits_sub() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[1], None));
    let client = HarvestClient::new(settings(&server), 7, credentials(None))?;
    read_all(&client, "jobs", &ListFilters::new()).await?;

    let body = &server.token_requests()[0].body;
    assert_eq!(body, "grant_type=client_credentials");
    Ok(())
}

#[tokio::test]
async fn token_refreshed_before_expiry() -> TestResult {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&issued);
    let server = TestServer::bind().serve(move |request| {
        if request.is_token_request() {
            let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
            return Reply::token(&format!("token-{number}"), 2);
        }
        Reply::page(&[1], None)
    });
    let mut settings = settings(&server);
    // Two-second tokens replaced one second before expiry.
    settings.token_refresh_margin = Duration::from_secs(1);
    let client = client_with(settings);

    read_all(&client, "jobs", &ListFilters::new()).await?;
    read_all(&client, "jobs", &ListFilters::new()).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    read_all(&client, "jobs", &ListFilters::new()).await?;

    assert_eq!(server.token_requests().len(), 2);
    let harvest = server.harvest_requests();
    assert_eq!(harvest[1].header("authorization"), Some("Bearer token-1"));
    assert_eq!(harvest[2].header("authorization"), Some("Bearer token-2"));
    Ok(())
}

#[tokio::test]
async fn token_expires_at_is_read() -> TestResult {
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let server = TestServer::bind().serve(move |request| {
        if request.is_token_request() {
            return Reply::json(
                200,
                json!({"token_type": "Bearer", "access_token": "recorded", "expires_at": expires_at}),
            );
        }
        Reply::page(&[1], None)
    });
    let client = client(&server);

    read_all(&client, "jobs", &ListFilters::new()).await?;
    read_all(&client, "jobs", &ListFilters::new()).await?;

    assert_eq!(server.token_requests().len(), 1);
    assert_eq!(server.harvest_requests()[1].header("authorization"), Some("Bearer recorded"));
    Ok(())
}

#[tokio::test]
async fn concurrent_callers_share_one_token_request() -> TestResult {
    let server = TestServer::bind().serve(|request| {
        if request.is_token_request() {
            return Reply::Delayed(Duration::from_millis(200), Box::new(Reply::token("shared", 3600)));
        }
        Reply::page(&[1], None)
    });
    let client = client(&server);

    let calls = (0..5).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get_by_ids("jobs", &[1]).await })
    });
    for call in futures_util::future::join_all(calls).await {
        call??;
    }

    assert_eq!(server.token_requests().len(), 1);
    assert_eq!(server.harvest_requests().len(), 5);
    Ok(())
}

#[tokio::test]
async fn one_401_refreshes_token_and_retries() -> TestResult {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&issued);
    let server = TestServer::bind().serve(move |request| {
        if request.is_token_request() {
            let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
            return Reply::token(&format!("token-{number}"), 3600);
        }
        if request.header("authorization") == Some("Bearer token-1") {
            return Reply::json(401, json!({"message": "token revoked"}));
        }
        Reply::page(&[5], None)
    });

    let records = read_all(&client(&server), "jobs", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![5]);
    assert_eq!(server.token_requests().len(), 2);
    assert_eq!(server.harvest_requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn second_401_is_authentication_error() -> TestResult {
    let server = serve_harvest(|_| Reply::json(401, json!({"message": "unauthorized"})));

    let error = read_all(&client(&server), "jobs", &ListFilters::new())
        .await
        .expect_err("two 401s must fail");

    assert!(matches!(error, HarvestError::Authentication { account_id: 7, .. }), "{error:?}");
    assert_eq!(server.token_requests().len(), 2);
    assert_eq!(server.harvest_requests().len(), 2);
    let message = error.to_string();
    assert!(!message.contains("token-1"), "{message}");
    assert!(!message.contains("client-secret"), "{message}");
    Ok(())
}

#[tokio::test]
async fn rejected_credentials_fail_without_retry() -> TestResult {
    let server = TestServer::bind().serve(|request| {
        if request.is_token_request() {
            return Reply::json(401, json!({"error": "invalid_client"}));
        }
        Reply::page(&[1], None)
    });

    let error = read_all(&client(&server), "jobs", &ListFilters::new())
        .await
        .expect_err("rejected credentials must fail");

    assert!(matches!(error, HarvestError::Authentication { .. }), "{error:?}");
    assert!(error.to_string().contains("invalid_client"), "{error}");
    assert_eq!(server.token_requests().len(), 1);
    assert!(server.harvest_requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn unreachable_token_endpoint_fails_after_retries() -> TestResult {
    // A port that was just free on loopback: nothing listens there.
    let closed_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let server = serve_harvest(|_| Reply::page(&[1], None));
    let mut settings = settings(&server);
    settings.token_url = format!("http://127.0.0.1:{closed_port}/token");
    settings.max_retries = 1;

    let error = read_all(&client_with(settings), "jobs", &ListFilters::new())
        .await
        .expect_err("no token endpoint");

    let HarvestError::RetriesExhausted { attempts, last, .. } = &error else {
        panic!("expected RetriesExhausted, got {error:?}");
    };
    assert_eq!(*attempts, 2);
    assert!(last.to_string().contains("connection failed"), "{last}");
    assert!(server.harvest_requests().is_empty());
    Ok(())
}

#[test]
fn credentials_debug_hides_secret() {
    let printed = format!("{:?}", credentials(Some("1")));
    assert!(!printed.contains("client-secret"), "{printed}");
    assert!(printed.contains("***"), "{printed}");
}

// ---------------------------------------------------------------------------------------------
// Paging

#[tokio::test]
async fn paging_follows_link_exactly() -> TestResult {
    let server = TestServer::bind();
    let base = server.base.clone();
    let server = server.serve(move |request| {
        if request.is_token_request() {
            return Reply::token("token-1", 3600);
        }
        match request.target.as_str() {
            "/v3/candidates?cursor=eyJwYWdlIjoyfQ%3D%3D" => {
                // `rel` without quotes, among other links.
                let link = format!(
                    "<{base}/v3/candidates?cursor=first>; rel=\"first\", \
                     <{base}/v3/candidates?cursor=page3>; rel=next"
                );
                Reply::page(&[20, 19], None).with_header("Link", &link)
            }
            "/v3/candidates?cursor=page3" => Reply::page(&[18], None),
            _ => Reply::page(&[30, 29], Some(&format!("{base}/v3/candidates?cursor=eyJwYWdlIjoyfQ%3D%3D"))),
        }
    });
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")?.to_utc();
    let end = chrono::DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")?.to_utc();
    let filters = ListFilters::new()
        .per_page(2)
        .updated_at(Comparison::Gte, start)
        .updated_at(Comparison::Lte, end);

    let client = client(&server);
    let mut pager = client.list("candidates", &filters)?;
    let mut pages = Vec::new();
    while let Some(page) = pager.next_page().await? {
        pages.push(page);
    }

    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].next.as_deref(), Some(server.url("/v3/candidates?cursor=eyJwYWdlIjoyfQ%3D%3D").as_str()));
    assert_eq!(pages[1].next.as_deref(), Some(server.url("/v3/candidates?cursor=page3").as_str()));
    assert_eq!(pages[2].next, None);
    assert_eq!(pager.next_url(), None);

    let requests = server.harvest_requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[0].query(),
        vec![
            ("per_page".to_owned(), "2".to_owned()),
            ("updated_at".to_owned(), "gte|2026-01-01T00:00:00Z|lte|2026-02-01T00:00:00Z".to_owned()),
        ]
    );
    assert_eq!(requests[1].target, "/v3/candidates?cursor=eyJwYWdlIjoyfQ%3D%3D");
    assert_eq!(requests[2].target, "/v3/candidates?cursor=page3");
    Ok(())
}

#[tokio::test]
async fn repeated_cursor_fails_chain() -> TestResult {
    let server = TestServer::bind();
    let base = server.base.clone();
    let server = server.serve(move |request| {
        if request.is_token_request() {
            return Reply::token("token-1", 3600);
        }
        let (ids, next) = match request.target.as_str() {
            "/v3/jobs" => (10, "a"),
            "/v3/jobs?cursor=a" => (9, "b"),
            _ => (8, "a"),
        };
        Reply::page(&[ids], Some(&format!("{base}/v3/jobs?cursor={next}")))
    });

    let error = read_all(&client(&server), "jobs", &ListFilters::new())
        .await
        .expect_err("a repeated cursor must fail");

    assert!(matches!(error, HarvestError::CursorRepeated { ref resource } if resource == "jobs"), "{error:?}");
    // First page, cursor a, cursor b: the link back to cursor a is never requested.
    assert_eq!(server.harvest_requests().len(), 3);
    Ok(())
}

#[tokio::test]
async fn failed_chain_never_reports_done() -> TestResult {
    let server = TestServer::bind();
    let base = server.base.clone();
    let server = server.serve(move |request| {
        if request.is_token_request() {
            return Reply::token("token-1", 3600);
        }
        let (id, next) = if request.target == "/v3/jobs" { (10, "a") } else { (9, "a") };
        Reply::page(&[id], Some(&format!("{base}/v3/jobs?cursor={next}")))
    });
    let client = client(&server);
    let mut pager = client.list("jobs", &ListFilters::new())?;

    pager.next_page().await?.expect("first page");
    let first_error = pager.next_page().await.expect_err("cursor a links to itself");
    let second_error = pager.next_page().await.expect_err("the chain stays failed");

    assert!(matches!(first_error, HarvestError::CursorRepeated { .. }), "{first_error:?}");
    assert!(matches!(second_error, HarvestError::CursorRepeated { .. }), "{second_error:?}");
    assert_eq!(pager.next_url(), Some(server.url("/v3/jobs?cursor=a").as_str()));
    Ok(())
}

#[tokio::test]
async fn page_not_advancing_fails_chain() -> TestResult {
    let server = TestServer::bind();
    let base = server.base.clone();
    let server = server.serve(move |request| {
        if request.is_token_request() {
            return Reply::token("token-1", 3600);
        }
        let number = request.target.rsplit('=').next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
        Reply::page(&[50, 49], Some(&format!("{base}/v3/jobs?cursor={}", number + 1)))
    });

    let error = read_all(&client(&server), "jobs", &ListFilters::new())
        .await
        .expect_err("a page that does not advance must fail");

    assert!(matches!(error, HarvestError::PageDidNotAdvance { first_id: 50, .. }), "{error:?}");
    assert_eq!(server.harvest_requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn empty_page_with_next_continues() -> TestResult {
    let server = TestServer::bind();
    let base = server.base.clone();
    let server = server.serve(move |request| {
        if request.is_token_request() {
            return Reply::token("token-1", 3600);
        }
        match request.target.as_str() {
            "/v3/offers" => Reply::page(&[], Some(&format!("{base}/v3/offers?cursor=1"))),
            "/v3/offers?cursor=1" => Reply::page(&[], Some(&format!("{base}/v3/offers?cursor=2"))),
            _ => Reply::page(&[3, 2], None),
        }
    });

    let records = read_all(&client(&server), "offers", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![3, 2]);
    assert_eq!(server.harvest_requests().len(), 3);
    Ok(())
}

#[tokio::test]
async fn resume_starts_at_stored_cursor() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[4], None));
    let client = client(&server);

    let mut pager = client.resume("applications", &server.url("/v3/applications?cursor=c2%3D"))?;
    let page = pager.next_page().await?.expect("one page");

    assert_eq!(raw_ids_of(&page.records), vec![4]);
    assert_eq!(server.harvest_requests()[0].target, "/v3/applications?cursor=c2%3D");
    Ok(())
}

#[tokio::test]
async fn resume_rejects_other_origin() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[4], None));
    let client = client(&server);

    // Same loopback address, other port: another origin, never contacted.
    let error = client
        .resume("applications", "http://127.0.0.1:9/v3/applications?cursor=x")
        .expect_err("another origin must be rejected");

    assert!(matches!(error, HarvestError::InvalidNextUrl { .. }), "{error:?}");
    assert!(server.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn link_to_other_origin_fails_chain() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[4], Some("http://127.0.0.1:9/v3/jobs?cursor=x")));

    let error = read_all(&client(&server), "jobs", &ListFilters::new())
        .await
        .expect_err("a next link to another origin must fail");

    assert!(matches!(error, HarvestError::InvalidNextUrl { .. }), "{error:?}");
    assert_eq!(server.harvest_requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn get_by_ids_sends_ids_filter() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[3, 1], None));

    let records = client(&server).get_by_ids("candidates", &[1, 2, 3]).await?;

    assert_eq!(raw_ids_of(&records), vec![3, 1]);
    let request = &server.harvest_requests()[0];
    assert_eq!(request.path(), "/v3/candidates");
    assert_eq!(request.query(), vec![("ids".to_owned(), "1,2,3".to_owned())]);
    Ok(())
}

#[tokio::test]
async fn get_by_ids_rejects_more_than_50() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[1], None));
    let ids: Vec<i64> = (1..=51).collect();

    let error = client(&server).get_by_ids("candidates", &ids).await.expect_err("51 ids");

    assert!(matches!(error, HarvestError::TooManyIds { count: 51, max: 50, .. }), "{error:?}");
    assert!(server.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn invalid_resource_rejected() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[1], None));

    let error = client(&server).list("../admin?x=1", &ListFilters::new()).expect_err("bad resource");

    assert!(matches!(error, HarvestError::InvalidSetting { setting: "resource", .. }), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn invalid_urls_rejected() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[1], None));

    for (setting, value) in [("base_url", "not a url"), ("base_url", "ftp://127.0.0.1/v3"), ("token_url", "")] {
        let mut invalid = settings(&server);
        match setting {
            "base_url" => invalid.base_url = value.to_owned(),
            _ => invalid.token_url = value.to_owned(),
        }
        let error = HarvestClient::new(invalid, 7, credentials(None)).expect_err("invalid URL");
        assert!(
            matches!(error, HarvestError::InvalidSetting { setting: named, .. } if named == setting),
            "{setting} = {value:?}: {error:?}"
        );
    }
    assert!(server.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn zero_durations_rejected() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[1], None));

    let mut zero_window = settings(&server);
    zero_window.budget_window = Duration::ZERO;
    let error = HarvestClient::new(zero_window, 7, credentials(None)).expect_err("zero window");
    assert!(matches!(error, HarvestError::InvalidSetting { setting: "budget_window", .. }), "{error:?}");

    let mut zero_timeout = settings(&server);
    zero_timeout.request_timeout = Duration::ZERO;
    let error = HarvestClient::new(zero_timeout, 7, credentials(None)).expect_err("zero timeout");
    assert!(matches!(error, HarvestError::InvalidSetting { setting: "request_timeout", .. }), "{error:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Status codes and faults

/// Starts a server that responds with `first()` to the first `times` Harvest requests, then
/// with a page.
fn failing_first(times: usize, first: impl Fn() -> Reply + Send + Sync + 'static) -> Served {
    let seen = AtomicUsize::new(0);
    serve_harvest(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < times {
            return first();
        }
        Reply::page(&[1], None)
    })
}

#[tokio::test]
async fn rate_limit_waits_retry_after_seconds() -> TestResult {
    let server = failing_first(1, || Reply::json(429, json!({})).with_header("Retry-After", "1"));
    let client = client(&server);

    let started = Instant::now();
    let records = read_all(&client, "jobs", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![1]);
    let requests = server.harvest_requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(990), "{:?}", requests[1].at - requests[0].at);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(client.budget().snapshot().rate_limited, 1);
    Ok(())
}

#[tokio::test]
async fn rate_limit_waits_retry_after_http_date() -> TestResult {
    let server = failing_first(1, || {
        let at = SystemTime::now() + Duration::from_secs(2);
        Reply::json(429, json!({})).with_header("Retry-After", &httpdate::fmt_http_date(at))
    });

    let records = read_all(&client(&server), "jobs", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![1]);
    let requests = server.harvest_requests();
    // The date has whole seconds, so two seconds ahead means a wait of one to two seconds.
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited <= Duration::from_millis(2500), "{waited:?}");
    Ok(())
}

#[tokio::test]
async fn rate_limit_blocks_every_caller() -> TestResult {
    let server = serve_harvest(|request| {
        if request.target.contains("ids=1") {
            return Reply::json(429, json!({})).with_header("Retry-After", "1");
        }
        Reply::page(&[2], None)
    });
    // A short window, so that only the 429 block can hold the second caller for a second.
    let mut settings_shared = settings(&server);
    settings_shared.budget_window = Duration::from_millis(50);
    let client = client_with(settings_shared.clone());

    // The first caller gets 429 and gives up at once; a second caller starts during the block.
    let mut settings_first = settings_shared;
    settings_first.max_rate_limit_waits = 0;
    let limited = HarvestClient::with_parts(
        settings_first,
        7,
        credentials(None),
        greenhouse_sync::greenhouse::harvest::build_http_client(client.settings())?,
        Arc::clone(client.budget()),
    )?;
    let error = limited.get_by_ids("jobs", &[1]).await.expect_err("429 with no waits allowed");
    assert!(matches!(error, HarvestError::RateLimitExhausted { .. }), "{error:?}");

    client.get_by_ids("jobs", &[2]).await?;

    let requests = server.harvest_requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_millis(990), "second caller sent after {gap:?}");
    Ok(())
}

#[tokio::test]
async fn rate_limit_beyond_limit_fails() -> TestResult {
    let server = serve_harvest(|_| Reply::json(429, json!({})).with_header("Retry-After", "0"));
    let mut settings = settings(&server);
    settings.max_rate_limit_waits = 2;
    let client = client_with(settings);

    let error = read_all(&client, "jobs", &ListFilters::new()).await.expect_err("always 429");

    assert!(matches!(error, HarvestError::RateLimitExhausted { waits: 2, .. }), "{error:?}");
    assert_eq!(server.harvest_requests().len(), 3);
    assert_eq!(client.budget().snapshot().rate_limited, 3);
    Ok(())
}

#[tokio::test]
async fn server_errors_retried_then_succeed() -> TestResult {
    let server = failing_first(2, || Reply::raw(503, "<html>unavailable</html>"));
    let client = client(&server);

    let records = read_all(&client, "jobs", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![1]);
    assert_eq!(server.harvest_requests().len(), 3);
    let snapshot = client.budget().snapshot();
    assert_eq!(snapshot.retries, 2);
    assert_eq!(snapshot.requests_sent, 3);
    Ok(())
}

#[tokio::test]
async fn server_errors_beyond_limit_fail() -> TestResult {
    let server = serve_harvest(|_| Reply::json(500, json!({"message": "boom"})));

    let error = read_all(&client(&server), "jobs", &ListFilters::new()).await.expect_err("always 500");

    match &error {
        HarvestError::RetriesExhausted { resource, attempts, last } => {
            assert_eq!(resource, "jobs");
            assert_eq!(*attempts, 4);
            assert!(matches!(**last, HarvestError::ServerError { status: 500, .. }), "{last:?}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    // One first attempt and three retries.
    assert_eq!(server.harvest_requests().len(), 4);
    Ok(())
}

#[tokio::test]
async fn dropped_connection_retried() -> TestResult {
    let server = failing_first(1, || Reply::Drop);

    let records = read_all(&client(&server), "jobs", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![1]);
    assert_eq!(server.harvest_requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn cut_body_retried() -> TestResult {
    let server = failing_first(1, || Reply::CutBody { body: r#"[{"id": 1},"#.to_owned() });

    let records = read_all(&client(&server), "jobs", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![1]);
    assert_eq!(server.harvest_requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn truncated_json_retried() -> TestResult {
    let server = failing_first(2, || Reply::raw(200, r#"[{"id": 1}, {"id": 2, "na"#));

    let records = read_all(&client(&server), "jobs", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![1]);
    assert_eq!(server.harvest_requests().len(), 3);
    Ok(())
}

#[tokio::test]
async fn timeout_retried() -> TestResult {
    let server = failing_first(1, || Reply::Delayed(Duration::from_millis(1500), Box::new(Reply::page(&[9], None))));
    let mut settings = settings(&server);
    settings.request_timeout = Duration::from_millis(300);
    let client = client_with(settings);

    let records = read_all(&client, "jobs", &ListFilters::new()).await?;

    assert_eq!(ids_of(&records), vec![1]);
    assert_eq!(client.budget().snapshot().retries, 1);
    Ok(())
}

#[tokio::test]
async fn forbidden_not_retried() -> TestResult {
    let server = serve_harvest(|_| Reply::json(403, json!({"message": "forbidden"})));

    let error = read_all(&client(&server), "scorecards", &ListFilters::new()).await.expect_err("403");

    assert!(error.is_forbidden(), "{error:?}");
    assert!(matches!(error, HarvestError::Forbidden { ref resource } if resource == "scorecards"));
    assert_eq!(server.harvest_requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn client_error_carries_message() -> TestResult {
    let server = serve_harvest(|_| {
        Reply::json(422, json!({"errors": ["When passing a cursor, do not include other query params."]}))
    });

    let error = read_all(&client(&server), "jobs", &ListFilters::new()).await.expect_err("422");

    match &error {
        HarvestError::Status { resource, status, message } => {
            assert_eq!(resource, "jobs");
            assert_eq!(*status, 422);
            assert_eq!(message, "When passing a cursor, do not include other query params.");
        }
        other => panic!("expected Status, got {other:?}"),
    }
    assert_eq!(server.harvest_requests().len(), 1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Budget

#[tokio::test]
async fn budget_acquire_respects_window() {
    let window = Duration::from_millis(150);
    let limit = 3;
    let budget = Arc::new(Budget::with_window(limit, window));

    let tasks = (0..10).map(|_| {
        let budget = Arc::clone(&budget);
        tokio::spawn(async move {
            let permit = budget.acquire().await;
            drop(permit);
            Instant::now()
        })
    });
    let mut times: Vec<Instant> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|time| time.expect("task"))
        .collect();
    times.sort();

    // Any limit + 1 acquisitions in a row span at least one window.
    for i in 0..times.len() - limit as usize {
        let span = times[i + limit as usize] - times[i];
        assert!(span >= window - Duration::from_millis(2), "acquisitions {i}..={}: {span:?}", i + 3);
    }
    assert_eq!(budget.snapshot().requests_sent, 10);
}

#[tokio::test]
async fn budget_never_exceeds_limit_over_http() -> TestResult {
    let server = serve_harvest(|_| Reply::page(&[1], None));
    let mut settings = settings(&server);
    settings.budget_limit = 3;
    settings.budget_window = Duration::from_millis(250);
    let client = client_with(settings);

    let calls = (0..9).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get_by_ids("jobs", &[1]).await })
    });
    for call in futures_util::future::join_all(calls).await {
        call??;
    }

    let mut arrivals: Vec<Instant> = server.harvest_requests().iter().map(|r| r.at).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 9);
    for i in 0..arrivals.len() - 3 {
        let span = arrivals[i + 3] - arrivals[i];
        // Arrival times vary by a few ms around the send times.
        assert!(span >= Duration::from_millis(220), "requests {i}..={}: {span:?}", i + 3);
    }
    Ok(())
}

#[tokio::test]
async fn budget_learns_lower_limit() -> TestResult {
    let server = serve_harvest(|_| {
        Reply::page(&[1], None)
            .with_header("X-Ratelimit-Limit", "2")
            .with_header("X-Ratelimit-Remaining", "1")
    });
    let mut settings = settings(&server);
    settings.budget_limit = 10;
    settings.budget_window = Duration::from_millis(300);
    let client = client_with(settings);

    client.get_by_ids("jobs", &[1]).await?;
    let snapshot = client.budget().snapshot();
    assert_eq!(snapshot.limit, 2);
    assert_eq!(snapshot.remaining, 1);

    for _ in 0..4 {
        client.get_by_ids("jobs", &[1]).await?;
    }

    // Five requests at two per window need three windows: the last starts two windows
    // after the first.
    let arrivals: Vec<Instant> = server.harvest_requests().iter().map(|r| r.at).collect();
    assert_eq!(arrivals.len(), 5);
    let span = arrivals[4] - arrivals[0];
    assert!(span >= Duration::from_millis(580), "five requests within {span:?}");
    Ok(())
}

#[tokio::test]
async fn budget_remaining_follows_server_count() -> TestResult {
    let server = serve_harvest(|_| {
        Reply::page(&[1], None)
            .with_header("X-Ratelimit-Limit", "150")
            .with_header("X-Ratelimit-Remaining", "40")
            .with_header("X-Ratelimit-Reset", "1778507655")
    });
    let client = client(&server);

    client.get_by_ids("jobs", &[1]).await?;

    let snapshot = client.budget().snapshot();
    assert_eq!(snapshot.limit, 150);
    assert_eq!(snapshot.remaining, 40);
    Ok(())
}
