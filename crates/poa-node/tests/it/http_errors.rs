//! Every route of both listeners with bad input: each error answer has the status of its code
//! and one JSON shape, `{"error": {"code": "...", "message": "..."}}`, including the answers the
//! router and the extractors make (unknown routes, methods, path and query parameters, bodies
//! over the limit) and the listener's own request timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::support::Node;

/// The pool's default size limit of one transaction.
const MAX_TRANSACTION_BYTES: usize = 64 * 1024;
/// The largest relay batch read.
const MAX_RELAY_BODY_BYTES: usize = 2 * 1024 * 1024;

/// One request and the error it must get.
struct Case {
    method: &'static str,
    path: String,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(method: &'static str, path: &str, status: u16, code: &'static str) -> Case {
    Case {
        method,
        path: path.to_owned(),
        body: Vec::new(),
        status,
        code,
    }
}

fn with_body(
    method: &'static str,
    path: &str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        body,
        ..case(method, path, status, code)
    }
}

/// What a listener answered: the status, the content type, whether it named the allowed
/// methods, and the body.
struct Answer {
    status: u16,
    content_type: String,
    allow: bool,
    body: Value,
}

/// Sends `case` to the listener at `address`.
fn send(address: &str, case: &Case) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(case.method)
        .uri(format!("http://{address}{}", case.path))
        .body(case.body.clone())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let headers = response.headers();
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let allow = headers.contains_key("allow");
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status: response.status().as_u16(),
        content_type,
        allow,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// Checks one answer against its case: status, content type, and the error object's shape.
fn assert_error(label: &str, case: &Case, answer: &Answer) {
    let what = format!(
        "{label} {} {}: {} {}",
        case.method, case.path, answer.status, answer.body
    );
    assert_eq!(answer.status, case.status, "{what}");
    assert_eq!(answer.content_type, "application/json", "{what}");
    let error = answer.body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}"));
    assert_eq!(
        error.len(),
        2,
        "the error holds code and message only: {what}"
    );
    assert_eq!(error["code"], case.code, "{what}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}");
    if case.code == "method_not_allowed" {
        assert!(answer.allow, "405 names the allowed methods: {what}");
    }
}

/// Walks `cases` on the listener at `address`.
fn walk(label: &str, address: &str, cases: &[Case]) {
    for case in cases {
        assert_error(label, case, &send(address, case));
    }
}

#[test]
fn public_api__when_every_route_gets_bad_input__then_answers_the_json_error_of_its_code() {
    // given: a manual node, so nothing commits unless asked
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--manual"]);
    let committed = b"a committed transaction".to_vec();
    assert_eq!(node.post("/transactions", &committed).0, 202);
    assert_eq!(node.post_admin("/admin/produce").0, 200);
    let pending = b"a pending transaction".to_vec();
    assert_eq!(node.post("/transactions", &pending).0, 202);

    // when / then
    let mut cases = vec![
        case("GET", "/nope", 404, "route_not_found"),
        case("GET", "/blocks", 404, "route_not_found"),
        case("GET", "/blocks/1/raw/more", 404, "route_not_found"),
        case("GET", "/blocks/abc", 400, "invalid_height"),
        case("GET", "/blocks/-1", 400, "invalid_height"),
        case("GET", "/blocks/18446744073709551616", 400, "invalid_height"),
        case("GET", "/blocks/abc/raw", 400, "invalid_height"),
        case("GET", "/blocks/999999", 404, "block_not_found"),
        case("GET", "/blocks/999999/raw", 404, "block_not_found"),
        case("GET", "/blocks/raw", 400, "invalid_query"),
        case("GET", "/blocks/raw?from=abc", 400, "invalid_query"),
        case("GET", "/blocks/raw?from=1&limit=many", 400, "invalid_query"),
        case("GET", "/blocks/raw?from=999999", 404, "block_not_found"),
        case("POST", "/transactions", 400, "empty_transaction"),
        case("GET", "/transactions/abc", 400, "invalid_transaction_id"),
        case(
            "GET",
            &format!("/transactions/{}", "g".repeat(64)),
            400,
            "invalid_transaction_id",
        ),
        case(
            "GET",
            &format!("/transactions/{}", "a".repeat(66)),
            400,
            "invalid_transaction_id",
        ),
        case(
            "GET",
            &format!("/transactions/{}", "ab".repeat(32)),
            404,
            "transaction_unknown",
        ),
        case("GET", "/transactions/ab/more", 404, "route_not_found"),
        with_body(
            "POST",
            "/transactions",
            vec![7; MAX_TRANSACTION_BYTES + 1],
            413,
            "transaction_too_large",
        ),
        with_body(
            "POST",
            "/transactions",
            vec![7; MAX_TRANSACTION_BYTES + 100],
            413,
            "transaction_too_large",
        ),
        with_body("POST", "/transactions", pending, 409, "transaction_pending"),
        with_body(
            "POST",
            "/transactions",
            committed,
            409,
            "transaction_committed",
        ),
        with_body(
            "POST",
            "/transactions/relay",
            b"not a batch".to_vec(),
            400,
            "invalid_relay_batch",
        ),
        with_body(
            "POST",
            "/transactions/relay",
            vec![0; MAX_RELAY_BODY_BYTES + 1],
            413,
            "relay_batch_too_large",
        ),
    ];
    for path in [
        "/health",
        "/leader",
        "/status",
        "/blocks/latest",
        "/blocks/1",
        "/blocks/1/raw",
        "/blocks/raw?from=1",
        "/metrics",
        "/transactions/abc",
    ] {
        cases.push(case("POST", path, 405, "method_not_allowed"));
        cases.push(case("DELETE", path, 405, "method_not_allowed"));
    }
    for path in ["/transactions", "/transactions/relay"] {
        cases.push(case("GET", path, 405, "method_not_allowed"));
    }
    walk("public", &node.http, &cases);
}

#[test]
fn admin_api__when_every_route_gets_bad_input__then_answers_the_json_error_of_its_code() {
    // given: a node with an interval trigger and no Redis
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--block-time", "1s"]);

    // when / then
    let mut cases = vec![
        case("GET", "/nope", 404, "route_not_found"),
        case("GET", "/status", 404, "route_not_found"),
        case("POST", "/admin", 404, "route_not_found"),
        case(
            "POST",
            "/admin/step-down?hold_off=soon",
            400,
            "invalid_query",
        ),
        case("POST", "/admin/step-down?hold_off=0s", 400, "invalid_query"),
        case(
            "POST",
            "/admin/step-down?hold_off=1s&hold_off=2s",
            400,
            "invalid_query",
        ),
        case("POST", "/admin/produce", 409, "trigger_not_manual"),
        case(
            "POST",
            "/admin/remove-invalid-entries",
            400,
            "invalid_query",
        ),
        case(
            "POST",
            "/admin/remove-invalid-entries?height=abc",
            400,
            "invalid_query",
        ),
        case(
            "POST",
            "/admin/remove-invalid-entries?height=1&height=2",
            400,
            "invalid_query",
        ),
        case(
            "POST",
            "/admin/remove-invalid-entries?height=5",
            409,
            "no_shared_block_log",
        ),
    ];
    for path in [
        "/admin/step-down",
        "/admin/produce",
        "/admin/remove-invalid-entries",
        "/admin/vouch-for-head",
    ] {
        cases.push(case("GET", path, 405, "method_not_allowed"));
        cases.push(case("PUT", path, 405, "method_not_allowed"));
    }
    walk("admin", &node.admin_http, &cases);
}

#[test]
fn public_api__when_a_request_body_stalls_past_the_request_timeout__then_answers_the_json_408() {
    // given
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--http-request-timeout", "300ms"]);
    let mut stream = TcpStream::connect(&node.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    // when: headers promise ten bytes of body, two come
    stream
        .write_all(b"POST /transactions HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();

    // then
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    let answer = Answer {
        status: 408,
        content_type: "application/json".to_owned(),
        allow: false,
        body: serde_json::from_str(body).unwrap(),
    };
    let timeout = case("POST", "/transactions", 408, "request_timeout");
    assert_error("public", &timeout, &answer);
}
