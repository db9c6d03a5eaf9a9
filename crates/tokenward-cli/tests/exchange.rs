//! A CI job with no stored secret (issue 27): it holds only its platform's OIDC token, trades it
//! by `tokenward exchange` at a `tokenward serve` endpoint for a short-lived token, uses that
//! token through the tower layer (`/authorize/SCOPE`), and is denied outside its scope and after
//! its TTL; a job of another branch, and a replayed OIDC token, get nothing; neither the OIDC
//! token nor the issued one reaches the server's output or the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tokenward_test_support::dpop::{DpopKey, TestIssuer};

use tokenward_test_support::dpop::{CI_ISSUER as ISSUER, ci_federation_policy as policy};

/// The server, killed if the test ends early (it would outlive the test, holding its inherited
/// descriptors).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `tokenward serve` on a free loopback port: the child and its base URL.
fn serve(cli: &Cli) -> (Server, String, std::sync::mpsc::Receiver<String>) {
    let child = cli
        .command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let stderr = server.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("serve starts");
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap();
            return (server, format!("http://{addr}"), rx);
        }
    }
}

async fn get(base: &str, path: &str, token: &str) -> u16 {
    let client = token_http::HttpClient::builder(base).build().unwrap();
    let r = client
        .send(token_http::Request::get(path).header("authorization", format!("Bearer {token}")))
        .await
        .unwrap();
    r.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_job_with_only_an_oidc_token_gets_a_scoped_short_lived_token_and_nothing_more() {
    let cli = Cli::new();
    let issuer = TestIssuer::new(ISSUER, "ci-key-1", [0x31; 32]);
    std::fs::write(cli.path("jwks.json"), issuer.jwks()).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(cli.path("jwks.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(cli.path("policy.toml"), policy(&cli.path("jwks.json"))).unwrap();
    cli.run(&["init", "--prefix", "acme", "--policy", "policy.toml"]).ok();
    let (mut server, base, lines) = serve(&cli);
    let server_out =
        |lines: &std::sync::mpsc::Receiver<String>| lines.try_iter().collect::<Vec<_>>().join("\n");
    let url = format!("{base}/token");

    // The job: an OIDC token of acme/api on main, and nothing else.
    let main = serde_json::json!({"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api", "ref": "refs/heads/main"});
    let oidc = issuer.mint("tokenward", 300, &main);
    let scope = "deploy:service/api/v2:release";
    let got = cli.run_stdin(&["exchange", "--url", &url, "--scope", scope, "--ttl", "3s"], oidc.as_bytes());
    let token = got.ok().trim().to_owned();
    assert!(token.starts_with("acme_"), "only the new token on stdout: {:?}", got.stdout);
    assert_eq!(got.stdout.lines().count(), 1);

    // Through the tower layer: its scope, nothing else.
    assert_eq!(get(&base, &format!("/authorize/{scope}"), &token).await, 200);
    assert_eq!(
        get(&base, "/authorize/deploy:service/api/v3:release", &token).await,
        403,
        "only what it asked for"
    );
    assert_eq!(
        get(&base, "/authorize/deploy:service/web/v2:release", &token).await,
        403,
        "outside its scope"
    );
    assert_eq!(get(&base, "/authorize/deploy:service/api/v2:release", "acme_made-up").await, 401);

    // The same OIDC token again: replayed, refused.
    let again = cli.run_stdin(&["exchange", "--url", &url, "--scope", scope], oidc.as_bytes());
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stdout.is_empty());
    assert!(again.stderr.contains("invalid_request"), "{}", again.stderr);
    // A job on another branch: its identity is not trusted.
    let dev = serde_json::json!({"sub": "repo:acme/api:ref:refs/heads/dev", "repository": "acme/api", "ref": "refs/heads/dev"});
    let other = cli.run_stdin(
        &["exchange", "--url", &url, "--scope", scope],
        issuer.mint("tokenward", 300, &dev).as_bytes(),
    );
    assert_eq!(other.code, 1);
    assert!(other.stderr.contains("not trusted"), "{}", other.stderr);
    // A token for another audience, or signed by another key: refused.
    let wrong_aud = issuer.mint("someone-else", 300, &main);
    assert_eq!(cli.run_stdin(&["exchange", "--url", &url, "--scope", scope], wrong_aud.as_bytes()).code, 1);
    let forger = TestIssuer::new(ISSUER, "ci-key-1", [0x32; 32]);
    assert_eq!(
        cli.run_stdin(
            &["exchange", "--url", &url, "--scope", scope],
            forger.mint("tokenward", 300, &main).as_bytes()
        )
        .code,
        1
    );
    // Asking for a scope the federation's principal does not hold, or longer than max_ttl.
    let fresh = issuer.mint("tokenward", 300, &main);
    let wide = cli.run_stdin(
        &["exchange", "--url", &url, "--scope", "deploy:service/web/v2:release"],
        fresh.as_bytes(),
    );
    assert_eq!(wide.code, 1);
    assert!(wide.stderr.contains("invalid_scope"), "{}\n{}", wide.stderr, server_out(&lines));
    let fresh = issuer.mint("tokenward", 300, &main);
    let long = cli.run_stdin(&["exchange", "--url", &url, "--scope", scope, "--ttl", "1h"], fresh.as_bytes());
    assert_eq!(long.code, 1, "{}", long.stderr);
    assert!(long.stderr.contains("invalid_request"), "{}\n{}", long.stderr, server_out(&lines));

    // `--output`: the token in a private file, not on stdout (out of the job's log).
    let fresh = issuer.mint("tokenward", 300, &main);
    let to_file =
        cli.run_stdin(&["exchange", "--url", &url, "--scope", scope, "--output", "tok"], fresh.as_bytes());
    assert_eq!(to_file.code, 0, "{}", to_file.stderr);
    assert!(to_file.stdout.is_empty());
    let written = std::fs::read_to_string(cli.path("tok")).unwrap();
    assert!(written.starts_with("acme_"));
    assert_eq!(std::fs::metadata(cli.path("tok")).unwrap().permissions().mode() & 0o777, 0o600);

    // After its TTL the token is dead.
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert_eq!(get(&base, &format!("/authorize/{scope}"), &token).await, 401, "expired");

    // SIGTERM stops the server cleanly.
    std::process::Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    let stop = Instant::now() + Duration::from_secs(20);
    while server.0.try_wait().unwrap().is_none() && Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server.0.try_wait().unwrap();
    if status.is_none() {
        let _ = server.0.kill();
    }
    assert!(status.is_some_and(|s| s.success()), "serve stops after SIGTERM: {status:?}");
    std::thread::sleep(Duration::from_millis(100));
    let out: Vec<String> = lines.try_iter().collect();
    let out = out.join("\n");
    assert!(out.contains("stopping"), "{out}");
    // No token in the server's output, the CLI's, or the audit log.
    let audit = std::fs::read_to_string(cli.path("tokenward.audit.jsonl")).or_else(|_| {
        let found = std::fs::read_dir(cli.dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().contains("audit"))
            .unwrap();
        std::fs::read_to_string(found.path())
    });
    let audit = audit.unwrap();
    assert!(audit.contains("\"exchange\""), "exchanges are audited");
    let transcript = cli.transcript.borrow();
    for secret in [oidc.as_str(), wrong_aud.as_str()] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!out.contains(signature) && !audit.contains(signature) && !transcript.contains(signature));
    }
    assert!(!out.contains(&token) && !audit.contains(&token), "the issued token only on the job's stdout");
    assert_eq!(transcript.matches(&token).count(), 1);
}

/// Stops `server` with SIGTERM, within 20 s.
fn stop(mut server: Server) {
    std::process::Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A job's token bound to its key (an EdDSA DPoP proof at the endpoint) leaks beside a bearer
/// token: the posture report counts one of each; `scan --validate` reports the bound one a
/// level lower and says why, the bearer one not; `scan --revoke` revokes both all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_bound_token_is_reported_lower_and_revoked_all_the_same() {
    let cli = Cli::new();
    let issuer = TestIssuer::new(ISSUER, "ci-key-1", [0x31; 32]);
    std::fs::write(cli.path("jwks.json"), issuer.jwks()).unwrap();
    std::fs::write(cli.path("policy.toml"), policy(&cli.path("jwks.json"))).unwrap();
    cli.run(&["init", "--prefix", "acme", "--policy", "policy.toml"]).ok();
    let (server, base, _lines) = serve(&cli);

    // The job exchanges its OIDC token with a DPoP proof: its token is bound to the key.
    let key = DpopKey::ed25519_from_seed([0x51; 32]);
    let main = serde_json::json!({"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api", "ref": "refs/heads/main"});
    let form = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token={}\
         &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&scope=deploy%3Aservice%2Fapi%2Fv2%3Arelease",
        issuer.mint("tokenward", 300, &main)
    );
    let client = token_http::HttpClient::builder(&base).build().unwrap();
    let r = client
        .send(
            token_http::Request::post("/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("dpop", key.proof_now("POST", &format!("{base}/token"), None))
                .body(form.into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let answer = r.json().unwrap();
    assert_eq!(answer["token_type"], "DPoP");
    let bound = answer["access_token"].as_str().unwrap().to_owned();
    stop(server);
    let (bearer, bearer_id) = cli.issue("ci-deployer", "manual", "deploy:service/api/v1:release", "10m");

    // The posture report counts them, in every format.
    let report: serde_json::Value =
        serde_json::from_str(&cli.run(&["report", "--format", "json"]).stdout).unwrap();
    assert_eq!(report["binding"], serde_json::json!({"bound": 1, "bearer": 1}), "{report}");
    let text = cli.run(&["report"]).stdout;
    assert!(text.contains("active tokens: 1 bound to a key (DPoP), 1 bearer"), "{text}");
    cli.run(&["report", "--html", "report.html"]);
    let html = std::fs::read_to_string(cli.path("report.html")).unwrap();
    assert!(html.contains("<b>1 / 1</b>active bound to a key / bearer"), "{html}");

    // Both leak into a tree.
    std::fs::create_dir_all(cli.path("tree")).unwrap();
    std::fs::write(cli.path("tree/bound.env"), format!("DEPLOY_TOKEN={bound}\n")).unwrap();
    std::fs::write(cli.path("tree/bearer.env"), format!("DEPLOY_TOKEN={bearer}\n")).unwrap();
    let sarif = cli.run(&["scan", "tree", "--validate", "--no-generic", "--format", "sarif"]);
    assert_eq!(sarif.code, 1, "{}", sarif.stderr);
    let log: serde_json::Value = serde_json::from_str(&sarif.stdout).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    let of = |file: &str| {
        results
            .iter()
            .find(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == file)
            .unwrap_or_else(|| panic!("{file} in {results:?}"))
    };
    let thumbprint = key.thumbprint();
    assert_eq!(of("bearer.env")["level"], "error");
    assert!(of("bearer.env")["properties"].get("mitigation").is_none());
    assert_eq!(of("bound.env")["level"], "warning", "one level lower");
    assert_eq!(of("bound.env")["properties"]["validity"], "valid", "live all the same");
    let why = of("bound.env")["properties"]["mitigation"].as_str().unwrap();
    assert!(why.contains("bound to a key") && why.contains(&thumbprint), "{why}");
    let text = cli.run(&["scan", "tree", "--validate", "--no-generic"]);
    let line = |file: &str| text.stdout.lines().find(|l| l.contains(file)).unwrap_or_default().to_owned();
    assert!(
        line("bound.env").contains("valid") && line("bound.env").contains("lower severity: bound to a key")
    );
    assert!(line("bearer.env").contains("valid") && !line("bearer.env").contains("lower severity"));

    // --revoke: both revoked; the bound one said to be bound.
    let revoked = cli.run(&["scan", "tree", "--revoke", "--no-generic"]);
    assert_eq!(revoked.code, 1, "{}", revoked.stderr);
    let said = |file: &str| revoked.stderr.lines().find(|l| l.contains(file)).unwrap_or_default().to_owned();
    assert!(
        said("bound.env").contains("revoked") && said("bound.env").contains("bound to a key"),
        "{}",
        revoked.stderr
    );
    assert!(said("bearer.env").contains(&format!("token {bearer_id} revoked")), "{}", revoked.stderr);
    assert!(!said("bearer.env").contains("bound to a key"), "{}", revoked.stderr);
    let after: serde_json::Value =
        serde_json::from_str(&cli.run(&["report", "--format", "json"]).stdout).unwrap();
    assert_eq!(after["binding"], serde_json::json!({"bound": 0, "bearer": 0}), "both revoked: {after}");
    assert_eq!(after["tokens"]["revoked"], 2, "{after}");
    let audit = std::fs::read_to_string(cli.path("tokenward.audit.jsonl")).unwrap();
    assert!(audit.contains(&thumbprint), "the finding's audit entry names the key");
    // The bound token was printed by no command, and is in no log.
    let secret = &bound[bound.len() - 30..bound.len() - 6];
    assert!(!cli.transcript.borrow().contains(secret) && !audit.contains(secret));
}
