//! IAM access-key rotation against a real AWS API on loopback: PyPI's `moto` in server mode with
//! signature checks and IAM policies on after the setup calls. The target passes the conformance
//! kit; keys of unknown origin are refused; and a consumer listing an S3 bucket with the current
//! key from several tasks sees no failed call through 20 rotations.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use token_audit::{AuditWriter, Auditor, FailureMode, MemoryLog, WriterConfig};
use token_core::chrono::TimeDelta;
use token_core::{clocks::Clock as _, clocks::SystemClock};
use token_rotate::aws::{AwsAccessKeyTarget, AwsClient, AwsCredentials, SecretsManagerDestination};
use token_rotate::secrecy::{ExposeSecret, SecretString};
use token_rotate::testing::{Harness, run_target_suite};
use token_rotate::*;
use token_store::secrecy::SecretBox;
use token_store::*;
use token_store::{Label, SqliteBackend};
use tokenward_test_support::Moto;

static N: AtomicUsize = AtomicUsize::new(0);

/// moto, with an admin user (allowed everything) made in the unsigned setup window.
async fn aws() -> Option<(Moto, AwsClient)> {
    let moto = Moto::start(3)?;
    let admin = moto.client(moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await);
    // From here on every call is signed and checked.
    assert!(admin.caller_arn().await.unwrap().ends_with(":user/admin"));
    Some((moto, admin))
}

/// A new IAM user allowed to list buckets (what the consumer does with its key).
async fn user(admin: &AwsClient, name: &str) {
    let v = "2010-05-08";
    admin.query("iam", v, "CreateUser", &[("UserName", name.into())]).await.unwrap();
    let list = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:ListBucket","s3:GetObject"],"Resource":"*"}]}"#;
    admin
        .query(
            "iam",
            v,
            "PutUserPolicy",
            &[("UserName", name.into()), ("PolicyName", "list".into()), ("PolicyDocument", list.into())],
        )
        .await
        .unwrap();
}

async fn secrets() -> Arc<SecretStore> {
    let backend = Arc::new(MemoryBackend::new()) as Arc<dyn Backend>;
    let kek = Arc::new(LocalKek::from_key("kek", SecretBox::new(Box::new([5u8; 32]))).unwrap());
    Arc::new(SecretStore::open(backend, kek).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_user_access_key_passes_the_kit() {
    let Some((_moto, admin)) = aws().await else { return };
    run_target_suite(async || {
        let name = format!("kit-{}", N.fetch_add(1, Ordering::Relaxed));
        user(&admin, &name).await;
        let target = AwsAccessKeyTarget::new(admin.clone(), &name)
            .deletion_grace(TimeDelta::zero())
            .test_patience(Duration::from_secs(2));
        Harness {
            rotator: Rotator::new(secrets().await, TimeDelta::zero(), Arc::new(SystemClock)),
            target: Arc::new(target),
            name: SecretName::new(&format!("aws/{name}")).unwrap(),
        }
    })
    .await;
}

/// The user's keys as (id, active).
async fn key_states(admin: &AwsClient, user: &str) -> Vec<(String, bool)> {
    AwsAccessKeyTarget::new(admin.clone(), user)
        .keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.id, k.active))
        .collect()
}

/// The user's tag keys.
async fn user_tags(admin: &AwsClient, user: &str) -> Vec<String> {
    let x = admin.query("iam", "2010-05-08", "ListUserTags", &[("UserName", user.into())]).await.unwrap();
    token_http::aws::xml::blocks(&x, "member")
        .into_iter()
        .filter_map(|m| token_http::aws::xml::tag(m, "Key"))
        .collect()
}

async fn hand_made_key(admin: &AwsClient, user: &str) -> String {
    let k = admin.query("iam", "2010-05-08", "CreateAccessKey", &[("UserName", user.into())]).await.unwrap();
    token_http::aws::xml::tag(&k, "AccessKeyId").unwrap()
}

async fn set_status(admin: &AwsClient, user: &str, id: &str, status: &str) {
    admin
        .query(
            "iam",
            "2010-05-08",
            "UpdateAccessKey",
            &[("UserName", user.into()), ("AccessKeyId", id.into()), ("Status", status.into())],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_unknown_origin_are_refused_and_never_touched() {
    let Some((_moto, admin)) = aws().await else { return };
    user(&admin, "legacy").await;
    let v = "2010-05-08";
    let params = [("UserName", "legacy".to_owned())];
    let first = admin.query("iam", v, "CreateAccessKey", &params).await.unwrap();
    let first = token_http::aws::xml::tag(&first, "AccessKeyId").unwrap();
    let target = AwsAccessKeyTarget::new(admin.clone(), "legacy");
    // One key of unknown origin, active, then inactive: refused both times, named, untouched.
    let e = target.create(1, None).await.unwrap_err().to_string();
    assert!(e.contains(&first) && e.contains("(active)") && e.contains("did not create"), "{e}");
    set_status(&admin, "legacy", &first, "Inactive").await;
    let e = target.create(1, None).await.unwrap_err().to_string();
    assert!(e.contains(&first) && e.contains("(inactive)"), "{e}");
    assert_eq!(key_states(&admin, "legacy").await, vec![(first.clone(), false)], "never deleted");
    // Its owner deletes it: a key is made, attributed to Tokenward, and the marker is gone.
    admin
        .query("iam", v, "DeleteAccessKey", &[("UserName", "legacy".into()), ("AccessKeyId", first)])
        .await
        .unwrap();
    let made = target.create(1, None).await.unwrap();
    assert_eq!(user_tags(&admin, "legacy").await, vec![format!("tokenward:key:{}", made.handle)]);
    target.test(&made).await.unwrap();
    // Its test used it (STS): GetAccessKeyLastUsed says so, for the posture report.
    let used = target.last_used(&made.handle).await.unwrap().expect("a use is recorded");
    assert!((token_core::chrono::Utc::now() - used).num_seconds().abs() < 120, "{used}");
    // A wrong secret for the right key id fails the test (STS refuses the signature).
    let forged = Credential::new(made.handle.clone(), SecretString::from("y".repeat(40)), made.expires_at);
    assert!(target.test(&forged).await.is_err());
    assert!(!format!("{target:?} {made:?}").contains(made.secret.expose_secret()), "no secret in Debug");
}

/// Issue 24 §6: the `tokenward:creating` tag stayed on the user after a successful rotation, so a
/// key made by hand afterwards was taken for a half-made key of ours and deleted (without being
/// deactivated first) by the next rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_by_hand_after_a_rotation_is_never_deleted_and_stops_the_next_one() {
    let Some((_moto, admin)) = aws().await else { return };
    user(&admin, "manual").await;
    let target = AwsAccessKeyTarget::new(admin.clone(), "manual")
        .deletion_grace(TimeDelta::zero())
        .test_patience(Duration::from_secs(2));
    let rotator = Rotator::new(secrets().await, TimeDelta::zero(), Arc::new(SystemClock));
    let name = SecretName::new("aws/manual").unwrap();
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let ours = rotator.current(&name).await.unwrap().unwrap().handle;
    let tags = user_tags(&admin, "manual").await;
    assert!(!tags.iter().any(|t| t == "tokenward:creating"), "the creating marker is cleared: {tags:?}");

    let manual = hand_made_key(&admin, "manual").await;
    for status in ["Active", "Inactive"] {
        set_status(&admin, "manual", &manual, status).await;
        match rotator.rotate(&name, &target).await.unwrap() {
            Rotation::RolledBack { reason, .. } => {
                assert!(reason.contains(&manual) && reason.contains("did not create"), "{reason}")
            }
            other => panic!("a rotation beside a key of unknown origin: {other:?}"),
        }
        let keys = key_states(&admin, "manual").await;
        assert!(
            keys.contains(&(manual.clone(), status == "Active")),
            "the hand-made key is untouched: {keys:?}"
        );
        assert!(keys.contains(&(ours.clone(), true)), "the current key is untouched: {keys:?}");
        assert_eq!(rotator.current(&name).await.unwrap().unwrap().handle, ours);
    }
    // Gone by its owner's hand: the rotation goes on.
    admin
        .query(
            "iam",
            "2010-05-08",
            "DeleteAccessKey",
            &[("UserName", "manual".into()), ("AccessKeyId", manual)],
        )
        .await
        .unwrap();
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    assert!(rotator.revoke_previous_if_due(&name, &target).await.unwrap());
    let keys = key_states(&admin, "manual").await;
    let now = rotator.current(&name).await.unwrap().unwrap().handle;
    assert_eq!(keys, vec![(now, true)], "our previous key is deleted after its (zero) grace");
}

/// The orphan of a create that crashed between `CreateAccessKey` and tagging it (the marker set,
/// the key untagged, never used) is recognised, deactivated and deleted; a key made by hand long
/// after a crashed create's marker is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_creates_orphan_is_deleted_but_a_later_hand_made_key_is_not() {
    let Some((_moto, admin)) = aws().await else { return };
    user(&admin, "orphaned").await;
    let target = AwsAccessKeyTarget::new(admin.clone(), "orphaned").deletion_grace(TimeDelta::zero());
    let rotator = Rotator::new(secrets().await, TimeDelta::zero(), Arc::new(SystemClock));
    let name = SecretName::new("aws/orphaned").unwrap();
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let ours = rotator.current(&name).await.unwrap().unwrap().handle;
    let marker = |ms: i64| {
        let admin = admin.clone();
        async move {
            admin
                .query(
                    "iam",
                    "2010-05-08",
                    "TagUser",
                    &[
                        ("UserName", "orphaned".into()),
                        ("Tags.member.1.Key", "tokenward:creating".into()),
                        ("Tags.member.1.Value", format!("9:{ms}")),
                    ],
                )
                .await
                .unwrap();
        }
    };
    // A crash: the marker, then the key, never tagged.
    marker(token_core::chrono::Utc::now().timestamp_millis()).await;
    let orphan = hand_made_key(&admin, "orphaned").await;
    let made = target.create(10, rotator.current(&name).await.unwrap().as_ref()).await.unwrap();
    let keys: Vec<String> = key_states(&admin, "orphaned").await.into_iter().map(|k| k.0).collect();
    assert!(!keys.contains(&orphan), "the orphan is deleted: {keys:?}");
    assert!(keys.contains(&ours) && keys.contains(&made.handle));
    // Ours, revoked: deactivated, and deleted once its (zero) grace has passed.
    target.revoke(&made).await.unwrap();
    assert_eq!(key_states(&admin, "orphaned").await, vec![(ours.clone(), true)]);
    // A marker ten minutes old and a key made now: not an orphan of that create.
    marker(token_core::chrono::Utc::now().timestamp_millis() - 600_000).await;
    let late = hand_made_key(&admin, "orphaned").await;
    let e = target.create(12, rotator.current(&name).await.unwrap().as_ref()).await.unwrap_err().to_string();
    assert!(e.contains(&late) && e.contains("did not create"), "{e}");
    assert!(key_states(&admin, "orphaned").await.contains(&(late, true)), "the late key is untouched");
}

/// The policy's overlap and deletion grace, honoured (issue 24 §6), on an injected clock: the
/// previous key keeps working through the overlap; revoked, it is deactivated and kept (never
/// deleted in the same call, nor by the next rotation, which waits and says until when, starting
/// nothing); the target's upkeep deletes it once the grace has passed, not a minute before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deletion_grace_is_honoured_and_a_rotation_waits_for_it() {
    let Some((_moto, admin)) = aws().await else { return };
    user(&admin, "graceful").await;
    let clock = Arc::new(token_core::clocks::ManualClock::new(token_core::chrono::Utc::now()));
    let target = AwsAccessKeyTarget::new(admin.clone(), "graceful")
        .deletion_grace(TimeDelta::hours(1))
        .test_patience(Duration::from_secs(2))
        .clock(clock.clone());
    let rotator = Rotator::new(secrets().await, TimeDelta::minutes(10), clock.clone());
    let name = SecretName::new("aws/graceful").unwrap();
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let first = rotator.current(&name).await.unwrap().unwrap();
    clock.advance(TimeDelta::minutes(11)); // (the bootstrap's own overlap, with no previous key)
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let second = rotator.current(&name).await.unwrap().unwrap().handle;

    // The overlap: the previous key stays active and signs until it ends; nothing is started.
    match rotator.rotate(&name, &target).await.unwrap() {
        Rotation::InOverlap { until } => assert_eq!(until, clock.now() + TimeDelta::minutes(10)),
        other => panic!("during the overlap: {other:?}"),
    }
    target.test(&first).await.expect("the previous key works during its overlap");

    // After it: the previous key is deactivated, and the rotation waits for its grace.
    clock.advance(TimeDelta::minutes(10) + TimeDelta::seconds(1));
    let deactivated_at = clock.now();
    let rotation_before = rotator.record(&name).await.unwrap().rotation;
    match rotator.rotate(&name, &target).await.unwrap() {
        Rotation::Waiting { until, reason } => {
            assert_eq!(until, deactivated_at + TimeDelta::hours(1), "{reason}");
            assert!(reason.contains(&first.handle) && reason.contains("not deleted early"), "{reason}");
        }
        other => panic!("with a key in its grace holding the second slot: {other:?}"),
    }
    let rec = rotator.record(&name).await.unwrap();
    assert_eq!((rec.rotation, rec.step), (rotation_before, Step::Idle), "nothing started");
    assert!(!rotator.secrets().labels(&name).await.unwrap().contains_key(&Label::Pending));
    let both = vec![(first.handle.clone(), false), (second.clone(), true)];
    let sorted = |mut v: Vec<(String, bool)>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(key_states(&admin, "graceful").await),
        sorted(both.clone()),
        "deactivated, not deleted"
    );
    // A direct create refuses too (the backstop), touching nothing.
    let current = rotator.current(&name).await.unwrap();
    let e = target.create(99, current.as_ref()).await.unwrap_err().to_string();
    assert!(e.contains(&first.handle) && e.contains("deletion grace"), "{e}");
    assert_eq!(sorted(key_states(&admin, "graceful").await), sorted(both.clone()));

    // The upkeep: nothing before the grace ends (asked again within a minute) …
    let next = target.upkeep().await.unwrap().expect("asked again");
    assert!(next > clock.now() && next <= clock.now() + TimeDelta::minutes(1), "{next}");
    clock.advance(TimeDelta::minutes(59) + TimeDelta::seconds(30));
    let next = target.upkeep().await.unwrap().expect("asked again");
    assert_eq!(next, deactivated_at + TimeDelta::hours(1), "asked again when the grace ends");
    assert_eq!(sorted(key_states(&admin, "graceful").await), sorted(both), "30 s left: kept");
    // … and the key deleted (its tag too) once it has.
    clock.set(deactivated_at + TimeDelta::hours(1));
    target.upkeep().await.unwrap();
    assert_eq!(key_states(&admin, "graceful").await, vec![(second.clone(), true)]);
    assert!(!user_tags(&admin, "graceful").await.contains(&format!("tokenward:key:{}", first.handle)));
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
}

/// A leak outweighs a deletion grace: with IAM's second slot held by a key of ours in its grace,
/// an emergency replacement (replace first, the order that keeps the leaked key until the
/// replacement is current) deletes that deactivated key early instead of leaving the leaked one
/// alive for the rest of the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_is_never_held_up_by_a_deletion_grace() {
    let Some((_moto, admin)) = aws().await else { return };
    user(&admin, "urgent").await;
    let clock = Arc::new(token_core::clocks::ManualClock::new(token_core::chrono::Utc::now()));
    let target = AwsAccessKeyTarget::new(admin.clone(), "urgent")
        .deletion_grace(TimeDelta::days(7))
        .test_patience(Duration::from_secs(2))
        .clock(clock.clone());
    let rotator = Rotator::new(secrets().await, TimeDelta::minutes(10), clock.clone());
    let name = SecretName::new("aws/urgent").unwrap();
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let first = rotator.current(&name).await.unwrap().unwrap().handle;
    clock.advance(TimeDelta::minutes(11));
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let leaked = rotator.current(&name).await.unwrap().unwrap().handle;
    clock.advance(TimeDelta::minutes(11));
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Waiting { .. }));

    let report = rotator.revoke_and_replace_with(&name, &target, EmergencyOrder::ReplaceFirst).await.unwrap();
    assert_eq!(report.revoked, leaked);
    let fresh = rotator.current(&name).await.unwrap().unwrap().handle;
    let mut keys = key_states(&admin, "urgent").await;
    keys.sort();
    let mut want = vec![(fresh, true), (leaked, false)];
    want.sort();
    assert_eq!(
        keys, want,
        "the leaked key deactivated, the replacement active, {first} (ours, in its grace) gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_sees_no_failed_call_through_twenty_rotations() {
    let Some((_moto, admin)) = aws().await else { return };
    user(&admin, "billing").await;
    put_bucket(&admin, "billing-data").await;

    let log = Arc::new(MemoryLog::new());
    let writer = Arc::new(AuditWriter::start(log.clone(), WriterConfig::default()).unwrap());
    let secrets = secrets().await;
    let rotator = Arc::new(
        Rotator::new(secrets.clone(), TimeDelta::milliseconds(800), Arc::new(SystemClock))
            .with_audit(Auditor::new(writer.clone(), FailureMode::FailClosed)),
    );
    let target = Arc::new(
        AwsAccessKeyTarget::new(admin.clone(), "billing").deletion_grace(TimeDelta::milliseconds(200)),
    );
    let name = SecretName::new("aws/billing").unwrap();
    assert!(matches!(rotator.rotate(&name, target.as_ref()).await.unwrap(), Rotation::Promoted { .. }));

    let current = Arc::new(
        CurrentCredential::follow(
            secrets.clone(),
            name.clone(),
            Some(rotator.subscribe()),
            Duration::from_millis(200),
        )
        .await
        .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut consumers = Vec::new();
    for _ in 0..3 {
        let (current, stop, calls, failures, admin) =
            (current.clone(), stop.clone(), calls.clone(), failures.clone(), admin.clone());
        consumers.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                let c = current.get();
                let client = admin.with_credentials(AwsCredentials::new(c.handle.clone(), c.secret.clone()));
                match client.rest_get("s3", "/billing-data", &[("list-type", "2".into())]).await {
                    Ok((200, _)) => {}
                    other => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("consumer call failed with key {}: {other:?}", c.handle);
                    }
                }
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let started = std::time::Instant::now();
    let mut previous = Vec::new();
    for _ in 0..20 {
        previous.push(rotator.current(&name).await.unwrap().unwrap().handle);
        loop {
            match rotator.rotate(&name, target.as_ref()).await.unwrap() {
                Rotation::Promoted { .. } => break,
                Rotation::InOverlap { .. } => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = rotator.revoke_previous_if_due(&name, target.as_ref()).await.unwrap();
                }
                // The previous key, deactivated, keeps IAM's second slot for its 200 ms grace.
                Rotation::Waiting { until, .. } => {
                    let wait = (until - token_core::chrono::Utc::now()).to_std().unwrap_or_default();
                    assert!(wait <= Duration::from_millis(250), "{wait:?}");
                    tokio::time::sleep(wait + Duration::from_millis(5)).await;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    let _ = rotator.revoke_previous_if_due(&name, target.as_ref()).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (calls, failures) = (calls.load(Ordering::Relaxed), failures.load(Ordering::Relaxed));
    eprintln!("20 rotations in {elapsed:?}: {calls} consumer calls, {failures} failed");
    assert_eq!(failures, 0, "no consumer call failed");
    assert!(calls > 100, "the consumers kept calling ({calls})");
    // Every old key: deactivated after its overlap, deleted after the grace.
    tokio::time::sleep(Duration::from_millis(250)).await;
    target.purge_inactive().await.unwrap();
    let keys = target.keys().await.unwrap();
    let now = rotator.current(&name).await.unwrap().unwrap().handle;
    assert_eq!(
        keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&now),
        "only the current key is left"
    );
    assert!(previous.iter().all(|p| *p != now));
    // The audit chain holds every step and verifies.
    writer.flush().await.unwrap();
    let entries = token_audit::LogStorage::read(log.as_ref(), 0, 100_000).await.unwrap();
    token_audit::chains::verify(token_audit::chains::ChainHead::EMPTY, entries.iter()).unwrap();
    let promotions =
        entries.iter().filter(|e| e.event.action == token_audit::Action::Rotate("promote".into())).count();
    assert!(promotions >= 21, "{promotions} promotions audited");
    assert!(entries.iter().all(|e| !format!("{:?}", e.event).contains("SecretAccessKey")));
}

async fn put_bucket(admin: &AwsClient, bucket: &str) {
    let r = admin.rest_put("s3", &format!("/{bucket}"), Vec::new()).await.unwrap();
    assert!(r.0 == 200, "{r:?}");
}

/// What Secrets Manager holds for `secret`: (the value under AWSCURRENT, under AWSPREVIOUS, the
/// number of AWSPENDING versions).
async fn sm(admin: &AwsClient, secret: &str) -> (Option<String>, Option<String>, usize) {
    let get = |stage: &'static str| {
        let admin = admin.clone();
        let secret = secret.to_owned();
        async move {
            admin
                .json(
                    "secretsmanager",
                    "secretsmanager.GetSecretValue",
                    &serde_json::json!({"SecretId": secret, "VersionStage": stage}),
                )
                .await
                .ok()
                .and_then(|v| v["SecretString"].as_str().map(str::to_owned))
        }
    };
    let d = admin
        .json("secretsmanager", "secretsmanager.DescribeSecret", &serde_json::json!({"SecretId": secret}))
        .await
        .unwrap();
    let pending = d["VersionIdsToStages"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| s.as_array().unwrap().iter().any(|x| x == "AWSPENDING"))
        .count();
    (get("AWSCURRENT").await, get("AWSPREVIOUS").await, pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_deploy_into_secrets_manager_with_awspending_and_a_failed_deploy_rolls_back_everywhere() {
    let Some((_moto, admin)) = aws().await else { return };
    user(&admin, "deployed").await;
    let key_target: Arc<dyn RotationTarget> =
        Arc::new(AwsAccessKeyTarget::new(admin.clone(), "deployed").deletion_grace(TimeDelta::zero()));
    let sm_dest: Arc<dyn Destination> = Arc::new(SecretsManagerDestination::new(
        admin.clone(),
        "billing/aws-key",
        ValueFormat::aws_access_key(),
    ));
    let target = Deployed::new(key_target.clone(), vec![sm_dest.clone()]);
    let rotator = Rotator::new(secrets().await, TimeDelta::zero(), Arc::new(SystemClock));
    let name = SecretName::new("aws/deployed").unwrap();
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let first = rotator.current(&name).await.unwrap().unwrap();
    let (current, _, pending) = sm(&admin, "billing/aws-key").await;
    let v: serde_json::Value = serde_json::from_str(&current.unwrap()).unwrap();
    assert_eq!(v["AccessKeyId"], first.handle.as_str());
    assert_eq!(v["SecretAccessKey"], first.secret.expose_secret());
    assert_eq!(pending, 0);
    // A rotation: AWSCURRENT moves to the new key, the old one is AWSPREVIOUS, nothing pending.
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let second = rotator.current(&name).await.unwrap().unwrap();
    let (current, previous, pending) = sm(&admin, "billing/aws-key").await;
    assert!(current.unwrap().contains(&second.handle));
    assert!(previous.unwrap().contains(&first.handle));
    assert_eq!(pending, 0);
    assert!(rotator.revoke_previous_if_due(&name, &target).await.unwrap());
    // An emergency, replace first: Secrets Manager ends on the replacement.
    let report = rotator.revoke_and_replace_with(&name, &target, EmergencyOrder::ReplaceFirst).await.unwrap();
    assert_eq!(report.revoked, second.handle);
    let replacement = rotator.current(&name).await.unwrap().unwrap();
    let (current, _, pending) = sm(&admin, "billing/aws-key").await;
    assert!(
        current.as_deref().unwrap_or_default().contains(&replacement.handle),
        "{current:?} vs {}",
        replacement.handle
    );
    assert_eq!(pending, 0);
    let second = replacement;

    // Two destinations, the second refused (a client whose key IAM does not know): the first's
    // AWSPENDING is withdrawn, the new key revoked, the current untouched everywhere — and since
    // the second cannot even be read, the rollback is reported unfinished until it can.
    let stranger = admin
        .with_credentials(AwsCredentials::new("AKIANOBODY0000000000", SecretString::from("z".repeat(40))));
    let broken: Arc<dyn Destination> = Arc::new(SecretsManagerDestination::new(
        stranger,
        "billing/aws-key-copy",
        ValueFormat::aws_access_key(),
    ));
    let both = Deployed::new(key_target.clone(), vec![sm_dest.clone(), broken]);
    match rotator.rotate(&name, &both).await.unwrap() {
        Rotation::RollbackIncomplete { reason, left, .. } => {
            assert!(
                reason.contains(
                    "aws-secretsmanager:billing/aws-key-copy: PutSecretValue failed (InvalidClientTokenId)"
                ),
                "{reason}"
            );
            assert!(
                left.contains("aws-secretsmanager:billing/aws-key-copy: DescribeSecret failed"),
                "{left}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (current, _, pending) = sm(&admin, "billing/aws-key").await;
    assert!(current.unwrap().contains(&second.handle), "the current is untouched");
    assert_eq!(pending, 0, "the staged version was withdrawn");
    let keys = AwsAccessKeyTarget::new(admin.clone(), "deployed").keys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.active).count(), 1, "the withdrawn key is revoked: {keys:?}");
    assert_eq!(rotator.current(&name).await.unwrap().unwrap().handle, second.handle);
    // The broken destination removed from the declaration: the next run finishes the rollback.
    let one = Deployed::new(key_target.clone(), vec![sm_dest.clone()]);
    assert!(matches!(rotator.rotate(&name, &one).await.unwrap(), Rotation::RolledBack { .. }));
    assert_eq!(rotator.current(&name).await.unwrap().unwrap().handle, second.handle);
}

const AWS_CHILD_ENV: &str = "TOKENWARD_AWS_CRASH_CHILD";

/// The rotation world of the SIGKILL test: an embedded store, a rotator, the IAM target.
async fn crash_world(
    db: &std::path::Path,
    endpoint: &str,
    id: &str,
    secret: &str,
) -> (Rotator, AwsAccessKeyTarget) {
    let backend = Arc::new(SqliteBackend::open(db).unwrap()) as Arc<dyn Backend>;
    let kek = Arc::new(LocalKek::from_key("kek", SecretBox::new(Box::new([7u8; 32]))).unwrap());
    let secrets = Arc::new(SecretStore::open(backend, kek).await.unwrap());
    let admin = AwsClient::new("us-east-1", AwsCredentials::new(id, SecretString::from(secret.to_owned())))
        .endpoint(endpoint);
    (
        Rotator::new(secrets, TimeDelta::zero(), Arc::new(SystemClock)),
        AwsAccessKeyTarget::new(admin, "crashy")
            .deletion_grace(TimeDelta::zero())
            .test_patience(Duration::from_secs(2)),
    )
}

/// The child: rotates the IAM user's key until killed, acknowledging each promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_crash_child() {
    let Ok(spec) = std::env::var(AWS_CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let (rotator, target) = crash_world(std::path::Path::new(parts[0]), parts[1], parts[2], parts[3]).await;
    let name = SecretName::new("aws/crashy").unwrap();
    loop {
        if let Rotation::Promoted { version, .. } = rotator.rotate(&name, &target).await.unwrap() {
            println!("ACK {version}");
        }
        let _ = rotator.revoke_previous_if_due(&name, &target).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_aws_rotations_never_leaves_more_than_two_keys_or_none_working() {
    let Some((moto, admin)) = aws().await else { return };
    user(&admin, "crashy").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aws.db");
    let admin_secret = {
        // The admin's secret for the child: from a key made for this test.
        let k = admin
            .query("iam", "2010-05-08", "CreateAccessKey", &[("UserName", "admin".into())])
            .await
            .unwrap();
        (
            token_http::aws::xml::tag(&k, "AccessKeyId").unwrap(),
            token_http::aws::xml::tag(&k, "SecretAccessKey").unwrap(),
        )
    };
    let spec = format!("{}|{}|{}|{}", db.display(), moto.endpoint(), admin_secret.0, admin_secret.1);
    let name = SecretName::new("aws/crashy").unwrap();
    let (mut acked, rounds) = (0, 10);
    for round in 0..rounds {
        let acks = tokenward_test_support::kill_child_at_random(
            "aws_crash_child",
            &[(AWS_CHILD_ENV, std::ffi::OsStr::new(&spec))],
            300,
            500,
        );
        acked += acks.len();
        let (rotator, target) = crash_world(&db, moto.endpoint(), &admin_secret.0, &admin_secret.1).await;
        let keys = target.keys().await.unwrap();
        assert!(keys.len() <= 2, "round {round}: the user holds {} keys", keys.len());
        if let Some(current) = rotator.current(&name).await.unwrap() {
            assert!(
                keys.iter().any(|k| k.id == current.handle && k.active),
                "round {round}: the current key is not active"
            );
        }
        // Resume: whatever the kill interrupted completes or rolls back, and the current works.
        match rotator.rotate(&name, &target).await.unwrap() {
            Rotation::Promoted { .. } | Rotation::RolledBack { .. } => {}
            other => panic!("round {round}: {other:?}"),
        }
        assert!(rotator.revoke_previous_if_due(&name, &target).await.unwrap());
        let current = rotator.current(&name).await.unwrap().unwrap();
        target
            .test(&current)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the current key does not work: {e}"));
        let keys = target.keys().await.unwrap();
        assert_eq!(keys.iter().filter(|k| k.active).count(), 1, "round {round}: {keys:?}");
        assert!(keys.len() <= 2);
    }
    eprintln!(
        "{rounds} SIGKILLs during IAM key rotations: {acked} promotions acknowledged; every round ended with one working key"
    );
    assert!(acked >= rounds, "the child made progress between kills");
}

/// An IAM user allowed everything but `deny` (an action), and a client acting as it.
async fn user_denied(admin: &AwsClient, name: &str, deny: &str) -> AwsClient {
    let v = "2010-05-08";
    admin.query("iam", v, "CreateUser", &[("UserName", name.into())]).await.unwrap();
    let put = |policy: &'static str, doc: String| {
        let admin = admin.clone();
        let name = name.to_owned();
        async move {
            admin
                .query(
                    "iam",
                    "2010-05-08",
                    "PutUserPolicy",
                    &[("UserName", name), ("PolicyName", policy.into()), ("PolicyDocument", doc)],
                )
                .await
                .unwrap();
        }
    };
    put("allow", tokenward_test_support::ALLOW_ALL.into()).await;
    put(
        "deny",
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Action":"{deny}","Resource":"*"}}]}}"#
        ),
    )
    .await;
    let k = admin.query("iam", v, "CreateAccessKey", &[("UserName", name.into())]).await.unwrap();
    admin.with_credentials(AwsCredentials::new(
        token_http::aws::xml::tag(&k, "AccessKeyId").unwrap(),
        SecretString::from(token_http::aws::xml::tag(&k, "SecretAccessKey").unwrap()),
    ))
}

/// A withdrawal that cannot read the secret is not "nothing staged": only a secret that does not
/// exist is. With `secretsmanager:DescribeSecret` denied, `withdraw` fails (the AWSPENDING stays,
/// and the rollback reports itself unfinished), naming the call and the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_that_cannot_describe_the_secret_fails_and_only_a_missing_secret_is_nothing_to_do() {
    let Some((_moto, admin)) = aws().await else { return };
    let format = ValueFormat::aws_access_key;
    let own = SecretsManagerDestination::new(admin.clone(), "app/withdraw", format());
    let expires = token_core::chrono::Utc::now() + TimeDelta::hours(1);
    let first = Credential::new("AKIAFIRST00000000000", SecretString::from("a".repeat(40)), expires);
    let second = Credential::new("AKIASECOND0000000000", SecretString::from("b".repeat(40)), expires);
    own.stage(&first).await.unwrap(); // creates the secret, current at once
    own.stage(&second).await.unwrap(); // AWSPENDING
    assert_eq!(sm(&admin, "app/withdraw").await.2, 1);

    let blind = user_denied(&admin, "withdrawer", "secretsmanager:DescribeSecret").await;
    let denied = SecretsManagerDestination::new(blind, "app/withdraw", format());
    let e = denied.withdraw(&second).await.unwrap_err();
    assert_eq!(e.step, "revoke");
    assert!(e.detail.contains("DescribeSecret failed") && e.detail.contains("AccessDenied"), "{e}");
    assert!(std::error::Error::source(&e).is_some(), "the provider's error is its source");
    assert_eq!(sm(&admin, "app/withdraw").await.2, 1, "still pending: the failure was not hidden");

    own.withdraw(&second).await.unwrap();
    assert_eq!(sm(&admin, "app/withdraw").await.2, 0);
    // No such secret: nothing was staged there.
    SecretsManagerDestination::new(admin.clone(), "app/never-made", format())
        .withdraw(&second)
        .await
        .unwrap();
}

/// The audit entries of `step` as (success, reason).
async fn audited(writer: &AuditWriter, log: &MemoryLog, step: &str) -> Vec<(bool, String)> {
    writer.flush().await.unwrap();
    let entries = token_audit::LogStorage::read(log, 0, 100_000).await.unwrap();
    entries
        .iter()
        .filter(|e| e.event.action == token_audit::Action::Rotate(step.into()))
        .map(|e| match &e.event.outcome {
            token_audit::Outcome::Failure(why) => (false, why.clone()),
            _ => (true, String::new()),
        })
        .collect()
}

/// Issue 24 §6: with `secretsmanager:UpdateSecretVersionStage` denied, a rotation said "promoted"
/// and audited `promote` as a success while Secrets Manager kept AWSCURRENT on the old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_secrets_manager_refuses_is_partial_audited_retried_and_blocks_the_revocation() {
    let Some((_moto, admin)) = aws().await else { return };
    user(&admin, "partial").await;
    let deployer = user_denied(&admin, "deployer", "secretsmanager:UpdateSecretVersionStage").await;
    let log = Arc::new(MemoryLog::new());
    let writer = Arc::new(AuditWriter::start(log.clone(), WriterConfig::default()).unwrap());
    let rotator = Rotator::new(secrets().await, TimeDelta::zero(), Arc::new(SystemClock))
        .with_audit(Auditor::new(writer.clone(), FailureMode::FailClosed));
    let keys: Arc<dyn RotationTarget> =
        Arc::new(AwsAccessKeyTarget::new(admin.clone(), "partial").deletion_grace(TimeDelta::zero()));
    let dest: Arc<dyn Destination> =
        Arc::new(SecretsManagerDestination::new(deployer, "app/partial", ValueFormat::aws_access_key()));
    let target = Deployed::new(keys, vec![dest]);
    let name = SecretName::new("aws/partial").unwrap();
    // The first version creates the secret (current at once): no stage to move.
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let first = rotator.current(&name).await.unwrap().unwrap();
    let second = match rotator.rotate(&name, &target).await.unwrap() {
        Rotation::Partial { left, version, .. } => {
            assert!(
                left.contains("aws-secretsmanager:app/partial")
                    && left.contains("UpdateSecretVersionStage")
                    && left.contains("AccessDenied"),
                "{left}"
            );
            version
        }
        other => panic!("a refused promotion reported as {other:?}"),
    };
    assert_eq!(rotator.secrets().labels(&name).await.unwrap().get(&Label::Current), Some(&second));
    let (current, _, pending) = sm(&admin, "app/partial").await;
    assert!(current.unwrap().contains(&first.handle), "Secrets Manager still serves the old key");
    assert_eq!(pending, 1);
    let promote = audited(&writer, &log, "promote").await;
    assert!(
        promote.last().is_some_and(|(ok, why)| !ok && why.contains("AccessDenied")),
        "promote audited as failed: {promote:?}"
    );
    // Retried (and audited) by the next run, which says the same; the previous key is kept.
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Partial { .. }));
    assert!(!rotator.revoke_previous_if_due(&name, &target).await.unwrap());
    assert!(key_states(&admin, "partial").await.contains(&(first.handle.clone(), true)), "the old key works");
    let retries = audited(&writer, &log, "promote_retry").await;
    assert!(retries.len() >= 2 && retries.iter().all(|(ok, _)| !ok), "{retries:?}");
    // Allowed again: the promotion finishes, then the previous key goes.
    admin
        .query(
            "iam",
            "2010-05-08",
            "DeleteUserPolicy",
            &[("UserName", "deployer".into()), ("PolicyName", "deny".into())],
        )
        .await
        .unwrap();
    assert!(rotator.revoke_previous_if_due(&name, &target).await.unwrap());
    let (current, _, pending) = sm(&admin, "app/partial").await;
    let now = rotator.current(&name).await.unwrap().unwrap();
    assert!(current.unwrap().contains(&now.handle));
    assert_eq!(pending, 0);
    assert!(
        !key_states(&admin, "partial").await.iter().any(|k| k.0 == first.handle),
        "the previous key is gone"
    );
    assert!(audited(&writer, &log, "promote_retry").await.last().is_some_and(|(ok, _)| *ok));
}

/// A loopback TCP proxy to `upstream` that holds every request naming one of the `frozen`
/// actions for `hold` before passing it on (the answer then goes to a client that gave up): a
/// frozen API whose calls are carried out late.
struct Freezer {
    endpoint: String,
    frozen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Freezer {
    async fn start(upstream: &str, hold: Duration) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let frozen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let f = frozen.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let f = f.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let held =
                            f.lock().unwrap().iter().any(|a| text.contains(&format!("secretsmanager.{a}")));
                        if held {
                            tokio::time::sleep(hold).await;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { endpoint, frozen }
    }

    fn freeze(&self, actions: &[&str]) {
        *self.frozen.lock().unwrap() = actions.iter().map(|a| (*a).to_owned()).collect();
    }
}

/// Issue 24 §6: with the AWS API frozen during deploy, a rotation said "rolled back" while the
/// late `PutSecretValue` left a dangling AWSPENDING (and the next run finished the rotation);
/// frozen during promotion, it said "promoted" with AWSCURRENT and AWSPENDING on one version.
/// Now: the rollback is reported incomplete until it is done (the next run finishes the rollback,
/// never the rotation), and the promotion partial until it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_api_is_never_reported_as_a_rollback_or_promotion_that_did_not_happen() {
    let Some((moto, admin)) = aws().await else { return };
    user(&admin, "frozen").await;
    let freezer = Freezer::start(moto.endpoint(), Duration::from_millis(3000)).await;
    let through = admin.clone().endpoint(freezer.endpoint.clone()).timeout(Duration::from_millis(1500));
    // (moto loads a service on its first call, which may take longer than the timeout.)
    let _ = admin.json("secretsmanager", "secretsmanager.ListSecrets", &serde_json::json!({})).await;
    let log = Arc::new(MemoryLog::new());
    let writer = Arc::new(AuditWriter::start(log.clone(), WriterConfig::default()).unwrap());
    let rotator = Rotator::new(secrets().await, TimeDelta::zero(), Arc::new(SystemClock))
        .with_audit(Auditor::new(writer.clone(), FailureMode::FailClosed));
    let keys: Arc<dyn RotationTarget> = Arc::new(
        AwsAccessKeyTarget::new(admin.clone(), "frozen")
            .deletion_grace(TimeDelta::zero())
            .test_patience(Duration::from_secs(2)),
    );
    let dest: Arc<dyn Destination> =
        Arc::new(SecretsManagerDestination::new(through, "app/frozen", ValueFormat::aws_access_key()));
    let target = Deployed::new(keys, vec![dest]);
    let name = SecretName::new("aws/frozen").unwrap();
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
    let first = rotator.current(&name).await.unwrap().unwrap();

    assert!(rotator.revoke_previous_if_due(&name, &target).await.unwrap());
    // Frozen during deploy: the stage and every withdrawal time out.
    freezer.freeze(&["PutSecretValue", "DescribeSecret"]);
    let pending_key = match rotator.rotate(&name, &target).await.unwrap() {
        Rotation::RollbackIncomplete { left, .. } => {
            assert!(left.contains("DescribeSecret failed") && left.contains("no answer within"), "{left}");
            left
        }
        other => panic!("a frozen deploy reported as {other:?}"),
    };
    freezer.freeze(&[]);
    assert_eq!(rotator.current(&name).await.unwrap().unwrap().handle, first.handle);
    // The pending key is revoked at IAM (reachable), whatever Secrets Manager did.
    let keys_now = key_states(&admin, "frozen").await;
    assert_eq!(keys_now.iter().filter(|k| k.1).count(), 1, "only the current key is active: {keys_now:?}");
    assert!(pending_key.contains("withdraw and revoke"));
    // The late PutSecretValue lands: a dangling AWSPENDING, which the next run withdraws.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sm(&admin, "app/frozen").await.2 == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sm(&admin, "app/frozen").await.2, 1, "the late PutSecretValue staged a version");
    match rotator.rotate(&name, &target).await.unwrap() {
        Rotation::RolledBack { .. } => {}
        other => panic!("the next run must finish the rollback, not the rotation: {other:?}"),
    }
    let (current, _, pending) = sm(&admin, "app/frozen").await;
    assert!(current.unwrap().contains(&first.handle));
    assert_eq!(pending, 0, "the dangling AWSPENDING is withdrawn");
    assert_eq!(rotator.current(&name).await.unwrap().unwrap().handle, first.handle);
    let deploys = audited(&writer, &log, "deploy").await;
    assert!(deploys.iter().any(|(ok, why)| !ok && why.contains("PutSecretValue")), "{deploys:?}");
    let withdrawals = audited(&writer, &log, "revoke_pending").await;
    assert!(withdrawals.iter().any(|(ok, _)| !ok), "the failed withdrawal is audited: {withdrawals:?}");

    // Frozen during promotion: partial, then finished by the next run (one stage per version).
    freezer.freeze(&["UpdateSecretVersionStage"]);
    match rotator.rotate(&name, &target).await.unwrap() {
        Rotation::Partial { left, .. } => assert!(left.contains("no answer within"), "{left}"),
        other => panic!("a frozen promotion reported as {other:?}"),
    }
    freezer.freeze(&[]);
    tokio::time::sleep(Duration::from_millis(3500)).await; // the late calls land
    assert!(rotator.revoke_previous_if_due(&name, &target).await.unwrap());
    let now = rotator.current(&name).await.unwrap().unwrap();
    let (current, _, pending) = sm(&admin, "app/frozen").await;
    assert!(current.unwrap().contains(&now.handle));
    assert_eq!(pending, 0, "no version keeps AWSPENDING");
}
