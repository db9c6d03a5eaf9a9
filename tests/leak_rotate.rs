//! Leak → rotate (issue 26): a credential this deployment manages that is not one of its tokens —
//! an AWS IAM access key, an OpenBao token — found by a scan is revoked and replaced in its
//! declared emergency order, and the old one is refused by its provider; a key the deployment does
//! not manage, found in the same scan, is never touched. Against a local AWS API (moto, signatures
//! and IAM on) and OpenBao; skipped without them.
//!
//! The risk window (found → old key refused by the API) over 20 drills is a benchmark:
//! `cargo bench -p tokenward-bench --bench leak`.

#![cfg(all(feature = "scan", feature = "s3", feature = "aws"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use tokenward::audit::{AuditQuery, FileLog, LogStorage};
use tokenward::policy::PolicyFile;
use tokenward::rotate::aws::{AwsAccessKeyTarget, AwsClient, AwsCredentials};
use tokenward::scan::{GitOptions, Report, S3Options, Scanner};
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::store::SecretName;
use tokenward::{EmergencyOrder, LeakOutcome, Tokenward};
use tokenward_test_support::Moto;

use common::*;

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// moto with an admin allowed everything, an IAM user `billing` whose key the deployment manages
/// (declared, revoke first), and the deployment with its first key current. No deletion grace: moto
/// accepts a deactivated key (it checks only that the key exists and the signature), so the old
/// key is refused once it is deleted — at its revocation, with `deletion_grace = "0s"`.
struct Aws {
    moto: Moto,
    admin: AwsClient,
    admin_id: String,
    admin_secret: String,
    tw: Tokenward,
    name: SecretName,
    target: std::sync::Arc<dyn tokenward::rotate::RotationTarget>,
}

async fn aws(dir: &Path) -> Option<Aws> {
    let moto = Moto::start(3)?;
    let creds = moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await;
    let (admin_id, admin_secret) =
        (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let admin = moto.client(creds);
    admin.query("iam", "2010-05-08", "CreateUser", &[("UserName", "billing".into())]).await.unwrap();
    let tw = builder(dir).open().await.unwrap();
    tw.seal_current(&SecretName::new("aws/admin-secret").unwrap(), admin_secret.as_bytes()).await.unwrap();
    let file = PolicyFile::parse(&format!(
        "[[credential]]\nname = \"aws/billing-key\"\nemergency = \"revoke-first\"\n\
         target = {{ kind = \"aws-iam-access-key\", user = \"billing\", endpoint = \"{e}\", \
         admin_access_key_id = \"{admin_id}\", admin_secret_key_secret = \"aws/admin-secret\", \
         deletion_grace = \"0s\" }}\n",
        e = moto.endpoint()
    ))
    .unwrap();
    let names = tw.manage_declared(&file, false).await.unwrap();
    let name = names[0].clone();
    let target = tw.declared_target(&file, &file.credentials[0]).await.unwrap();
    let _ = tw.rotate(&name, target.clone()).await.unwrap();
    Some(Aws { moto, admin, admin_id, admin_secret, tw, name, target })
}

impl Aws {
    /// The current key: (id, secret key).
    async fn current(&self) -> (String, String) {
        let c = self.tw.current_credential(&self.name).await.unwrap().unwrap();
        (c.handle.clone(), c.secret.expose_secret().to_owned())
    }

    /// Whether AWS accepts the key (STS GetCallerIdentity, signed with it).
    async fn accepted(&self, (id, secret): &(String, String)) -> bool {
        let client = self.moto.client(AwsCredentials::new(id, SecretString::from(secret.clone())));
        client.caller_arn().await.is_ok()
    }

    /// Polls until AWS refuses the key; how long that took from `since` (`None`: still accepted
    /// after 10 s).
    async fn refused_after(&self, key: &(String, String), since: Instant) -> Option<Duration> {
        self.prober(key, since).await.unwrap()
    }

    /// A task polling AWS with the key (every 2 ms) until AWS refuses it.
    fn prober(
        &self,
        (id, secret): &(String, String),
        since: Instant,
    ) -> tokio::task::JoinHandle<Option<Duration>> {
        let client = self.moto.client(AwsCredentials::new(id, SecretString::from(secret.clone())));
        tokio::spawn(async move {
            while since.elapsed() < Duration::from_secs(10) {
                if client.caller_arn().await.is_err() {
                    return Some(since.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            None
        })
    }
}

fn env_file(id: &str, secret: &str) -> String {
    format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\nAWS_REGION=us-east-1\n")
}

async fn scan_git(repo: &Path) -> Report {
    let repo = repo.to_owned();
    tokio::task::spawn_blocking(move || Scanner::new().unwrap().scan_git(&repo, &GitOptions::default()))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_key_leaked_in_git_history_and_a_bucket_is_rotated_and_refused_and_others_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let Some(aws) = aws(dir.path()).await else { return };
    let leaked = aws.current().await;
    assert!(aws.accepted(&leaked).await, "the managed key works before the leak");

    // A key the deployment does not manage (another user's, made by hand), leaked beside it.
    let v = "2010-05-08";
    aws.admin.query("iam", v, "CreateUser", &[("UserName", "bystander".into())]).await.unwrap();
    let k = aws.admin.query("iam", v, "CreateAccessKey", &[("UserName", "bystander".into())]).await.unwrap();
    let tag = |t: &str| k.split(&format!("<{t}>")).nth(1).unwrap().split('<').next().unwrap().to_owned();
    let other = (tag("AccessKeyId"), tag("SecretAccessKey"));
    assert!(aws.accepted(&other).await);

    // In git history: added by one commit, deleted by the next (only the history holds it).
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join(".env"), env_file(&leaked.0, &leaked.1)).unwrap();
    git(&repo, &["add", ".env"]);
    git(&repo, &["commit", "-q", "-m", "config"]);
    git(&repo, &["rm", "-q", ".env"]);
    git(&repo, &["commit", "-q", "-m", "oops"]);
    assert!(!repo.join(".env").exists());

    // In a bucket, beside the other key.
    let (status, _) = aws.admin.rest_put("s3", "/leaks", Vec::new()).await.unwrap();
    assert_eq!(status, 200);
    // Far enough apart that each key id is paired with its own secret key.
    let object =
        format!("{}# {}\n{}", env_file(&leaked.0, &leaked.1), "-".repeat(400), env_file(&other.0, &other.1));
    let (status, _) = aws.admin.rest_put("s3", "/leaks/deploy/app.env", object.into_bytes()).await.unwrap();
    assert_eq!(status, 200);

    let mut report = scan_git(&repo).await;
    assert!(!report.findings.is_empty(), "found in the history");
    let options = S3Options::new(
        aws.moto.endpoint(),
        "us-east-1",
        &aws.admin_id,
        SecretString::from(aws.admin_secret.clone()),
    );
    let s3 = tokio::task::spawn_blocking(move || Scanner::new().unwrap().scan_s3("leaks", &options))
        .await
        .unwrap()
        .unwrap();
    assert!(s3.findings.len() >= 2, "both keys found in the bucket: {:?}", s3.findings);
    report.merge(s3);
    let found = Instant::now();

    let response = aws.tw.respond_to_leaks(&report).await.unwrap();
    let refused = aws.refused_after(&leaked, found).await.expect("the leaked key is refused by STS");
    let name = aws.name.clone();
    let count = |f: &dyn Fn(&LeakOutcome) -> bool| response.actions.iter().filter(|a| f(&a.outcome)).count();
    assert_eq!(response.revoked(), 1, "{:?}", response.actions);
    assert_eq!(
        count(
            &|o| matches!(o, LeakOutcome::CredentialReplaced { name: n, handle, order: EmergencyOrder::RevokeFirst }
            if *n == name && *handle == leaked.0)
        ),
        1,
        "{:?}",
        response.actions
    );
    assert!(
        count(&|o| matches!(o, LeakOutcome::AlreadyAnswered { handle, .. } if *handle == leaked.0)) >= 1,
        "the same key found again is replaced once: {:?}",
        response.actions
    );
    let in_git = response.actions.iter().find(|a| !a.location.starts_with("s3://")).unwrap();
    assert!(in_git.outcome.revoked(), "the history's copy is answered first: {:?}", in_git.outcome);
    assert!(
        response.actions.iter().any(
            |a| a.location.starts_with("s3://leaks/deploy/app.env:") && a.outcome == LeakOutcome::NotOurs
        ),
        "another's key is not ours: {:?}",
        response.actions
    );
    let window = response.actions.iter().find_map(|a| a.time_to_revoke).unwrap();
    eprintln!(
        "risk window: revoked at IAM {window:?} after the response started; refused by STS {refused:?} after"
    );

    // The old key is dead, the replacement works, the other key is untouched.
    assert!(!aws.accepted(&leaked).await);
    let fresh = aws.current().await;
    assert_ne!(fresh.0, leaked.0);
    assert!(aws.accepted(&fresh).await, "the replacement works");
    assert!(aws.accepted(&other).await, "the key it does not manage still works");
    let bystander = AwsAccessKeyTarget::new(aws.admin.clone(), "bystander").keys().await.unwrap();
    assert!(bystander.iter().all(|k| k.active), "never touched");
    let billing = AwsAccessKeyTarget::new(aws.admin.clone(), "billing").keys().await.unwrap();
    assert!(billing.iter().all(|k| k.id != leaked.0), "the leaked key is gone: {billing:?}");

    // Again: nothing more (the leaked key is neither current nor previous any more).
    let again = aws.tw.respond_to_leaks(&report).await.unwrap();
    assert_eq!(again.revoked(), 0, "{:?}", again.actions);
    assert_eq!(aws.current().await.0, fresh.0);
    aws.tw.shutdown().await.unwrap();

    // Audited with the outcome, the credential and its id; never a secret key.
    let log = FileLog::open(dir.path().join("audit.jsonl")).unwrap();
    let entries = log.query(&AuditQuery::new().action("scan_finding")).await.unwrap();
    assert_eq!(entries.len(), response.actions.len() + again.actions.len());
    let raw = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(raw.contains("\"outcome\":\"replaced\"") && raw.contains("\"credential\":\"aws/billing-key\""));
    for secret in [&leaked.1, &other.1, &fresh.1, &aws.admin_secret] {
        assert!(!raw.contains(secret.as_str()), "no secret key in the audit log");
    }
}

/// A previous key still alive in its overlap, found: revoked at once; the current one untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_previous_key_in_its_overlap_is_revoked_early() {
    let dir = tempfile::tempdir().unwrap();
    let Some(aws) = aws(dir.path()).await else { return };
    let old = aws.current().await;
    // A long overlap: the previous key would live for an hour.
    aws.tw.rotator().set_overlap(&aws.name, Some(tokenward::core::chrono::TimeDelta::hours(1)));
    tokio::time::sleep(Duration::from_millis(300)).await; // the first promotion's overlap (100 ms)
    let r = aws.tw.rotate(&aws.name, aws.target.clone()).await.unwrap();
    assert!(matches!(r, tokenward::rotate::Rotation::Promoted { .. }), "{r:?}");
    let current = aws.current().await;
    assert_ne!(current.0, old.0);
    assert!(aws.accepted(&old).await, "alive in its overlap");
    let report = Scanner::new().unwrap().scan_bytes("ci.log", env_file(&old.0, &old.1).as_bytes());
    let response = aws.tw.respond_to_leaks(&report).await.unwrap();
    assert!(
        matches!(&response.actions[0].outcome, LeakOutcome::PreviousRevoked { handle, .. } if *handle == old.0),
        "{:?}",
        response.actions
    );
    assert!(aws.refused_after(&old, Instant::now()).await.is_some(), "the previous key is refused");
    assert_eq!(aws.current().await.0, current.0, "the current key is untouched");
    assert!(aws.accepted(&current).await);
    aws.tw.shutdown().await.unwrap();
}

/// An OpenBao token the deployment rotates, leaked in a file: replaced, the old one refused by
/// `lookup-self`.
#[cfg(feature = "vault")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_openbao_token_leaked_in_a_file_is_replaced_and_refused() {
    use tokenward::rotate::openbao::OpenBao;
    let (Ok(addr), Ok(root)) = (std::env::var("TOKENWARD_BAO_ADDR"), std::env::var("TOKENWARD_BAO_TOKEN"))
    else {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true but no OpenBao");
        eprintln!(
            "\n*** SKIPPED: OpenBao leak test (no TOKENWARD_BAO_ADDR; scripts/services.sh start_openbao) ***\n"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    tw.seal_current(&SecretName::new("openbao/admin").unwrap(), root.as_bytes()).await.unwrap();
    let file = PolicyFile::parse(&format!(
        "[[credential]]\nname = \"bao/ci-token\"\nemergency = \"replace-first\"\n\
         target = {{ kind = \"openbao-token\", address = \"{addr}\", token_secret = \"openbao/admin\", \
         policies = [\"default\"], ttl = \"1h\", display_name = \"ci\" }}\n"
    ))
    .unwrap();
    let name = tw.manage_declared(&file, false).await.unwrap().remove(0);
    let target = tw.declared_target(&file, &file.credentials[0]).await.unwrap();
    let _ = tw.rotate(&name, target).await.unwrap();
    let leaked = tw.current_credential(&name).await.unwrap().unwrap();
    let token = leaked.secret.expose_secret().to_owned();
    let works = |t: String| {
        let addr = addr.clone();
        async move { OpenBao::new(&addr, SecretString::from(t)).unwrap().lookup_self().await.is_ok() }
    };
    assert!(works(token.clone()).await);

    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(
        tree.join("deploy.sh"),
        format!("export VAULT_TOKEN=\"{token}\"\nbao kv get secret/app\n"),
    )
    .unwrap();
    let scanner =
        Scanner::builder().rules(tokenward::scan::RuleSet::builtin().with_generic(true)).build().unwrap();
    let report = scanner.scan_tree(&tree, &tokenward::scan::TreeOptions::default()).unwrap();
    assert!(!report.findings.is_empty(), "the token is found");
    let response = tw.respond_to_leaks(&report).await.unwrap();
    assert!(
        response.actions.iter().any(|a| matches!(&a.outcome,
            LeakOutcome::CredentialReplaced { name: n, handle, order: EmergencyOrder::ReplaceFirst } if *n == name && *handle == leaked.handle)),
        "{:?}",
        response.actions
    );
    assert!(!works(token.clone()).await, "the leaked token is refused by lookup-self");
    let fresh = tw.current_credential(&name).await.unwrap().unwrap();
    assert_ne!(fresh.handle, leaked.handle);
    assert!(works(fresh.secret.expose_secret().to_owned()).await, "the replacement works");
    tw.shutdown().await.unwrap();
    let raw = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(!raw.contains(&token) && !raw.contains(&root), "no token in the audit log");
}
