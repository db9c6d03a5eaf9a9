//! Live validation (feature `validate`): the validator's bounds on a paused clock (rate, time
//! budget, request cap, per-request timeout, one request per distinct credential and check, 5,000
//! findings within the budget, a local check outside the rate and the cap); the AWS check against
//! a real AWS API (moto with signatures on: a live key valid, a deleted key invalid, a wrong
//! secret unknown) and against a recording server that shows the secret key is never sent; the
//! OpenBao check against a real server (a live token valid; a revoked one and a live one that may
//! not look itself up both unknown) and against a failing server (asked once: no retry). No output
//! of a validated report holds a secret.

#![cfg(feature = "validate")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use token_scan::live::{
    AwsCallerIdentity, LiveCheck, LiveValidator, OpenBaoLookupSelf, Validation, Validity,
};
use token_scan::{Finding, Report, Scanner};
use tokio::time::Instant;

/// Judges GitHub tokens; records when it was asked; answers after `delay`.
struct Recording {
    asked: Mutex<Vec<Instant>>,
    delay: Duration,
}

#[async_trait::async_trait]
impl LiveCheck for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn judges(&self, f: &Finding) -> bool {
        f.rule == "github-classic"
    }
    async fn check(&self, _: &Finding) -> Validation {
        self.asked.lock().unwrap().push(Instant::now());
        tokio::time::sleep(self.delay).await;
        Validation::valid("recording", "ok")
    }
}

/// `n` distinct GitHub tokens whose CRC-32 checks (and one repeated), and an OpenAI-looking key
/// no check judges.
fn report(n: usize) -> Report {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("t{i} = {}\n", github_token(i)));
    }
    text.push_str(&format!("again = {}\n", github_token(0)));
    Scanner::new().unwrap().scan_bytes("x.env", text.as_bytes())
}

fn github_token(i: usize) -> String {
    let body: String = format!("{i:0>30}").chars().map(|c| if c == '0' { 'a' } else { c }).collect();
    let crc = crc32fast::hash(body.as_bytes());
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u64::from(crc);
    let mut sum = [b'0'; 6];
    for c in sum.iter_mut().rev() {
        *c = B62[usize::try_from(n % 62).unwrap()];
        n /= 62;
    }
    format!("ghp_{body}{}", String::from_utf8(sum.to_vec()).unwrap())
}

fn validator(check: &Arc<Recording>) -> token_scan::live::LiveValidatorBuilder {
    LiveValidator::builder().check(check.clone() as Arc<dyn LiveCheck>)
}

#[tokio::test(start_paused = true)]
async fn requests_keep_the_rate_and_a_copy_is_asked_once() {
    let check = Arc::new(Recording { asked: Mutex::default(), delay: Duration::ZERO });
    let mut r = report(6);
    assert_eq!(r.findings.len(), 7, "six tokens and a copy");
    let v = validator(&check).rate_per_second(4).build().unwrap();
    let summary = v.validate(&mut r).await;
    let asked = check.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 6, "the copy is not asked again");
    for pair in asked.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(250), "4 a second: {:?}", pair[1] - pair[0]);
    }
    assert_eq!((summary.valid, summary.requests), (7, 6));
    assert!(r.findings.iter().all(|f| f.validation.as_ref().unwrap().validity == Validity::Valid));
}

#[tokio::test(start_paused = true)]
async fn the_time_budget_and_the_request_cap_leave_the_rest_unknown() {
    let check = Arc::new(Recording { asked: Mutex::default(), delay: Duration::ZERO });
    let mut r = report(10);
    let v = validator(&check).rate_per_second(2).budget(Duration::from_millis(2100)).build().unwrap();
    let start = Instant::now();
    let summary = v.validate(&mut r).await;
    assert!(start.elapsed() <= Duration::from_millis(2100), "{:?}", start.elapsed());
    assert_eq!(summary.requests, 5, "at 0, 0.5, 1, 1.5 and 2 s");
    let spent =
        r.findings.iter().filter(|f| f.validation.as_ref().unwrap().detail.contains("time budget")).count();
    assert_eq!(spent, 5);

    let check = Arc::new(Recording { asked: Mutex::default(), delay: Duration::ZERO });
    let mut r = report(10);
    let summary =
        validator(&check).rate_per_second(50).max_requests(3).build().unwrap().validate(&mut r).await;
    assert_eq!(
        (summary.requests, summary.valid, summary.unknown),
        (3, 4, 7),
        "the copy of the first reuses its answer"
    );
    assert!(r.findings.iter().any(|f| f.validation.as_ref().unwrap().detail.contains("cap of 3 requests")));
}

#[tokio::test(start_paused = true)]
async fn five_thousand_findings_end_within_the_budget() {
    let check = Arc::new(Recording { asked: Mutex::default(), delay: Duration::ZERO });
    let mut r = report(5000);
    assert_eq!(r.findings.len(), 5001);
    let v = validator(&check)
        .rate_per_second(50)
        .budget(Duration::from_secs(10))
        .max_requests(100_000)
        .build()
        .unwrap();
    let summary = v.validate(&mut r).await;
    // At 0, 20 ms, …, 9.98 s: 500 requests; the rest (and nothing more) unknown once it is spent.
    assert_eq!(summary.requests, 500);
    assert_eq!(check.asked.lock().unwrap().len(), 500);
    assert_eq!((summary.valid, summary.unknown), (501, 4500), "the copy of the first reuses its answer");
    let spent = r
        .findings
        .iter()
        .filter(|f| f.validation.as_ref().unwrap().detail == "not asked: the time budget was spent")
        .count();
    assert_eq!(spent, 4500);
}

/// Judges GitHub tokens without the network; counts what it was asked.
struct Local(Mutex<usize>);

#[async_trait::async_trait]
impl LiveCheck for Local {
    fn name(&self) -> &str {
        "local"
    }
    fn judges(&self, f: &Finding) -> bool {
        f.rule == "github-classic"
    }
    fn is_local(&self) -> bool {
        true
    }
    async fn check(&self, _: &Finding) -> Validation {
        *self.0.lock().unwrap() += 1;
        Validation::invalid("local", "revoked")
    }
}

#[tokio::test(start_paused = true)]
async fn a_local_check_is_outside_the_rate_and_the_request_cap() {
    let local = Arc::new(Local(Mutex::new(0)));
    let mut r = report(300);
    let v = LiveValidator::builder()
        .check(local.clone() as Arc<dyn LiveCheck>)
        .rate_per_second(1)
        .max_requests(3)
        .budget(Duration::from_secs(1))
        .build()
        .unwrap();
    let start = Instant::now();
    let summary = v.validate(&mut r).await;
    assert_eq!(start.elapsed(), Duration::ZERO, "no wait for a rate slot");
    assert_eq!((summary.requests, summary.invalid), (0, 301));
    assert_eq!(*local.0.lock().unwrap(), 300);
}

#[tokio::test(start_paused = true)]
async fn a_copy_no_check_judges_does_not_answer_for_a_judged_one() {
    let check = Arc::new(Recording { asked: Mutex::default(), delay: Duration::ZERO });
    let mut r = report(1);
    // The token, then its copy: the first under a rule no check judges.
    assert_eq!(r.findings[0].fingerprint, r.findings[1].fingerprint);
    r.findings[0].rule = "a-rule-nobody-checks".into();
    let summary = validator(&check).build().unwrap().validate(&mut r).await;
    assert_eq!(r.findings[0].validation.as_ref().unwrap().by, "none");
    assert_eq!(r.findings[1].validation.as_ref().unwrap().validity, Validity::Valid);
    assert_eq!((summary.requests, summary.valid, summary.unknown), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_never_answers_is_unknown_after_the_timeout() {
    let check = Arc::new(Recording { asked: Mutex::default(), delay: Duration::from_secs(3600) });
    let mut r = report(2);
    let v = validator(&check).request_timeout(Duration::from_secs(2)).build().unwrap();
    let summary = v.validate(&mut r).await;
    assert_eq!((summary.unknown, summary.requests), (3, 2));
    assert!(r.findings[0].validation.as_ref().unwrap().detail.contains("no answer within 2s"));
}

#[tokio::test]
async fn a_kind_no_check_judges_is_unknown_and_bounds_out_of_range_are_refused() {
    let mut r = Scanner::new().unwrap().scan_bytes("x", format!("t = {}\n", github_token(1)).as_bytes());
    let summary = LiveValidator::builder().build().unwrap().validate(&mut r).await;
    assert_eq!((summary.unknown, summary.requests), (1, 0));
    assert_eq!(r.findings[0].validation.as_ref().unwrap().by, "none");
    for b in [
        LiveValidator::builder().rate_per_second(0),
        LiveValidator::builder().rate_per_second(51),
        LiveValidator::builder().budget(Duration::ZERO),
        LiveValidator::builder().budget(Duration::from_secs(3601)),
        LiveValidator::builder().request_timeout(Duration::from_secs(61)),
    ] {
        assert!(matches!(b.build().unwrap_err(), token_scan::ScanError::Validation(_)));
    }
}

/// Judges GitHub tokens with a provider's words that try to start lines of their own.
struct Injecting;

#[async_trait::async_trait]
impl LiveCheck for Injecting {
    fn name(&self) -> &str {
        "injecting"
    }
    fn judges(&self, f: &Finding) -> bool {
        f.rule == "github-classic"
    }
    async fn check(&self, _: &Finding) -> Validation {
        Validation::valid("injecting", "ci-deploy\n::error file=x::all clear\r\u{1b}[2K\u{202e}ok")
    }
}

#[tokio::test]
async fn a_providers_words_cannot_add_lines_to_the_text_report() {
    let mut r = report(1);
    LiveValidator::builder().check(Arc::new(Injecting)).build().unwrap().validate(&mut r).await;
    let mut text = Vec::new();
    r.write_text(&mut text, false).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("injecting")).count(), 2, "{text}");
    assert!(!text.lines().any(|l| l.starts_with("::error")), "{text}");
    assert!(!text.contains(['\r', '\u{1b}', '\u{202e}']), "{text:?}");
    assert!(text.contains("valid (injecting: ci-deploy::error file=x::all clear[2Kok)"), "{text}");
}

/// A file with an AWS key pair.
fn aws_report(id: &str, secret: &str) -> Report {
    let text = format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n");
    let r = Scanner::new().unwrap().scan_bytes("deploy.env", text.as_bytes());
    let pairs: Vec<_> = r.findings.iter().filter(|f| f.rule == "aws-access-key").collect();
    assert_eq!(pairs.len(), 1, "{:?}", r.findings);
    assert_eq!(pairs[0].public_id.as_deref(), Some(id));
    r
}

/// Every output of `r`, which must not hold `secret`.
fn assert_no_secret_in_outputs(r: &Report, secret: &str) {
    let mut all = Vec::new();
    r.write_text(&mut all, false).unwrap();
    r.write_jsonl(&mut all).unwrap();
    r.write_sarif(&mut all, &token_scan::RuleSet::builtin(), std::path::Path::new(".")).unwrap();
    all.extend(format!("{r:?}").bytes());
    assert!(!String::from_utf8_lossy(&all).contains(secret), "a secret in an output");
}

#[tokio::test]
async fn aws_keys_are_asked_by_a_signed_call_that_never_sends_the_secret_key() {
    // A recording "STS" that refuses every key, as STS does an unknown one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 8192];
        // Headers and the form body: read until the body's length has arrived.
        loop {
            let n = s.read(&mut buf).unwrap_or(0);
            record.lock().unwrap().extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&record.lock().unwrap()).into_owned();
            if n == 0 || text.contains("GetCallerIdentity") {
                break;
            }
        }
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>\
                    <Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>";
        let _ = write!(
            s,
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let (id, secret) = ("AKIAZ7QFAKE4LV2XM3PQ", "Vq7Lr2Xw9Tb4KpN8mYcZ3hQwE5rT6yU1iO0pAsDf");
    let mut r = aws_report(id, secret);
    let check = AwsCallerIdentity::new("us-east-1").endpoint(&format!("http://{addr}")).unwrap();
    LiveValidator::builder().check(Arc::new(check)).build().unwrap().validate(&mut r).await;
    let v = r.findings.iter().find(|f| f.rule == "aws-access-key").unwrap().validation.clone().unwrap();
    assert_eq!((v.validity, v.by.as_str()), (Validity::Invalid, "aws-sts"), "{v:?}");
    assert!(v.detail.starts_with("InvalidClientTokenId: STS (us-east-1)"), "{}", v.detail);
    assert!(v.detail.ends_with("The security token included in the request is invalid."), "{}", v.detail);
    let sent = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(sent.contains(&format!("Credential={id}/")), "signed with the found key: {sent}");
    assert!(!sent.contains(secret) && !sent.contains(&secret[..20]), "the secret key never leaves");
    assert_no_secret_in_outputs(&r, secret);
}

#[tokio::test]
async fn aws_keys_on_a_real_aws_api_live_deleted_and_wrong() {
    use token_http::aws::xml;
    let Some(moto) = tokenward_test_support::Moto::start(3) else { return };
    let admin = moto.client(moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await);
    let v = "2010-05-08";
    admin.query("iam", v, "CreateUser", &[("UserName", "billing".into())]).await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..2 {
        let k = admin.query("iam", v, "CreateAccessKey", &[("UserName", "billing".into())]).await.unwrap();
        keys.push((xml::tag(&k, "AccessKeyId").unwrap(), xml::tag(&k, "SecretAccessKey").unwrap()));
    }
    let (dead_id, _) = &keys[1];
    admin
        .query(
            "iam",
            v,
            "DeleteAccessKey",
            &[("UserName", "billing".into()), ("AccessKeyId", dead_id.clone())],
        )
        .await
        .unwrap();
    let validator = LiveValidator::builder()
        .check(Arc::new(AwsCallerIdentity::new("us-east-1").endpoint(moto.endpoint()).unwrap()))
        .build()
        .unwrap();
    let verdict = async |id: &str, secret: &str| {
        let mut r = aws_report(id, secret);
        validator.validate(&mut r).await;
        assert_no_secret_in_outputs(&r, secret);
        r.findings.iter().find(|f| f.rule == "aws-access-key").unwrap().validation.clone().unwrap()
    };
    let live = verdict(&keys[0].0, &keys[0].1).await;
    assert_eq!(live.validity, Validity::Valid, "{live:?}");
    assert!(live.detail.ends_with(":user/billing"), "the identity it acts as: {}", live.detail);
    let dead = verdict(&keys[1].0, &keys[1].1).await;
    assert_eq!(dead.validity, Validity::Invalid, "a deleted key: {dead:?}");
    // The live key's id with another secret: the signature does not match, which does not prove
    // the key dead (a mixed-up pair in the file, a clock or region off).
    let mut wrong = keys[0].1.clone().into_bytes();
    wrong[5] = if wrong[5] == b'A' { b'B' } else { b'A' };
    let wrong = verdict(&keys[0].0, std::str::from_utf8(&wrong).unwrap()).await;
    assert_eq!(wrong.validity, Validity::Unknown, "a wrong secret: {wrong:?}");
    assert!(wrong.detail.starts_with("SignatureDoesNotMatch: the key id exists"), "{}", wrong.detail);
}

#[tokio::test]
async fn openbao_tokens_live_revoked_and_not_allowed_to_look_up_and_an_unreachable_server() {
    use token_http::openbao::{OpenBao, TokenRequest};
    use token_http::secrecy::{ExposeSecret, SecretString};
    use token_http::{HttpClient, Request};
    let (Ok(addr), Ok(root)) = (std::env::var("TOKENWARD_BAO_ADDR"), std::env::var("TOKENWARD_BAO_TOKEN"))
    else {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true but no OpenBao");
        eprintln!("\n*** SKIPPED: OpenBao validation (no TOKENWARD_BAO_ADDR) ***\n");
        return;
    };
    let root = SecretString::from(root);
    let admin = OpenBao::new(&addr, root.clone()).unwrap();
    let request = TokenRequest {
        policies: vec!["default".into()],
        ttl: Duration::from_secs(600),
        display_name: "ci-deploy".into(),
        meta: Vec::new(),
    };
    let live = admin.create_orphan_token(&request).await.unwrap();
    let dead = admin.create_orphan_token(&request).await.unwrap();
    assert!(admin.revoke_accessor(&dead.accessor).await.unwrap());
    // A live token without the `default` policy, whose one policy does not allow lookup-self.
    let http = HttpClient::builder(&addr).build().unwrap();
    let policy = json_call(
        &http,
        Request::put("/v1/sys/policies/acl/scan-no-lookup")
            .json(&serde_json::json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"})),
        &root,
    )
    .await;
    assert!(policy.0 == 204 || policy.0 == 200, "{policy:?}");
    let (status, created) = json_call(
        &http,
        Request::post("/v1/auth/token/create-orphan").json(&serde_json::json!({
            "policies": ["scan-no-lookup"], "no_default_policy": true, "ttl": "600s",
        })),
        &root,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let blind = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let (live, dead) = (live.token.expose_secret().to_owned(), dead.token.expose_secret().to_owned());
    let text = format!("export VAULT_TOKEN={live}\nX-Vault-Token: {dead}\nBAO_TOKEN={blind}\n");
    let mut r = Scanner::new().unwrap().scan_bytes("ci.sh", text.as_bytes());
    let vault: Vec<_> = r.findings.iter().filter(|f| f.rule.starts_with("vault-token")).collect();
    assert_eq!(vault.len(), 3, "{:?}", r.findings);
    let v = LiveValidator::builder()
        .check(Arc::new(OpenBaoLookupSelf::new(&addr, None).unwrap()))
        .build()
        .unwrap();
    v.validate(&mut r).await;
    let by_line = |line| {
        r.findings
            .iter()
            .find(|f| f.location.line() == line && f.rule.starts_with("vault-token"))
            .unwrap()
            .validation
            .clone()
            .unwrap()
    };
    assert_eq!(by_line(1).validity, Validity::Valid, "{:?}", by_line(1));
    assert!(by_line(1).detail.contains("ci-deploy"), "{:?}", by_line(1));
    // Refused alike (403), the revoked token and the live one that may not look itself up: neither
    // is called dead.
    for line in [2, 3] {
        let v = by_line(line);
        assert_eq!(v.validity, Validity::Unknown, "line {line}: {v:?}");
        assert_eq!(
            v.detail,
            format!("refused by {addr}: revoked or expired, another server's, or lookup-self not allowed")
        );
    }
    let (status, still) = json_call(&http, Request::get("/v1/auth/token/lookup-self"), &root).await;
    assert_eq!(status, 200, "{still}");
    let (status, _) = json_call(
        &http,
        Request::post("/v1/auth/token/lookup").json(&serde_json::json!({ "token": blind })),
        &root,
    )
    .await;
    assert_eq!(status, 200, "the token that may not look itself up is live");
    for secret in [&live, &dead, &blind] {
        assert_no_secret_in_outputs(&r, secret);
    }

    // A server that does not answer: unknown, never valid or invalid.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut r =
        Scanner::new().unwrap().scan_bytes("ci.sh", format!("export VAULT_TOKEN={live}\n").as_bytes());
    let v = LiveValidator::builder()
        .check(Arc::new(OpenBaoLookupSelf::new(&format!("http://{closed}"), None).unwrap()))
        .build()
        .unwrap();
    v.validate(&mut r).await;
    let unknown =
        r.findings.iter().find(|f| f.rule.starts_with("vault-token")).unwrap().validation.clone().unwrap();
    assert_eq!(unknown.validity, Validity::Unknown, "{unknown:?}");
}

/// `request` with `token`: the status and the JSON body (`null` when empty).
async fn json_call(
    http: &token_http::HttpClient,
    request: token_http::Request,
    token: &token_http::secrecy::SecretString,
) -> (u16, serde_json::Value) {
    let r = http.send(request.secret_header("X-Vault-Token", token)).await.unwrap();
    let v = if r.body.is_empty() { serde_json::Value::Null } else { r.json().unwrap() };
    (r.status, v)
}

#[tokio::test]
async fn an_openbao_lookup_is_sent_once_never_retried() {
    // A server that fails every request (503, which a retrying client would try again): a lookup
    // consumes a use of a use-limited token, so it is sent once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(0usize));
    let count = seen.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            *count.lock().unwrap() += 1;
            let body = r#"{"errors":["sealed"]}"#;
            let _ = write!(
                s,
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let token = "hvs.CAESIJq3xYt7LpN2mWc8Zr4KbVd5";
    let mut r =
        Scanner::new().unwrap().scan_bytes("ci.sh", format!("export VAULT_TOKEN={token}\n").as_bytes());
    // A user:password written in the address is never shown.
    let bao = OpenBaoLookupSelf::new(&format!("http://ops:hunter2@{addr}/"), None).unwrap();
    let summary = LiveValidator::builder().check(Arc::new(bao)).build().unwrap().validate(&mut r).await;
    assert_eq!(summary.requests, 1);
    assert_eq!(*seen.lock().unwrap(), 1, "one request reached the server");
    let v = r.findings.iter().find(|f| f.rule == "vault-token").unwrap().validation.clone().unwrap();
    assert_eq!(
        (v.validity, v.detail.as_str()),
        (Validity::Unknown, format!("http://{addr} answered 503").as_str())
    );
    assert_no_secret_in_outputs(&r, token);
    assert_no_secret_in_outputs(&r, "hunter2");
}
