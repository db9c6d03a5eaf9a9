//! The validator: which check judges which finding, and the bounds on what it sends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Validation, Validity};
use crate::error::ScanError;
use crate::finding::{Finding, Report};

/// One provider's way of asking whether a found credential works. Implement it in one file and
/// register it with [`LiveValidatorBuilder::check`].
///
/// A check sends the credential (or a signature made with it) only to the provider it was
/// configured with, and its [`Validation`] never holds the secret.
#[async_trait::async_trait]
pub trait LiveCheck: Send + Sync {
    /// Its short name, given as [`Validation::by`].
    fn name(&self) -> &str;

    /// Whether it can judge this finding (by its rule, and its shape: a pair's public id).
    fn judges(&self, finding: &Finding) -> bool;

    /// Whether it answers without the network (a store of our own): then its checks are not
    /// requests — neither the rate nor the request cap applies to them, only the time budget and
    /// the timeout. `false` unless overridden.
    fn is_local(&self) -> bool {
        false
    }

    /// Asks the provider. Anything but a clear acceptance or refusal is [`Validity::Unknown`].
    async fn check(&self, finding: &Finding) -> Validation;
}

/// The most requests a second a validator may be set to make.
const MAX_RATE: u32 = 50;
/// The longest total time budget a validator may be given.
const MAX_BUDGET: Duration = Duration::from_secs(3600);
/// The longest timeout per request.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks providers about a report's findings, within bounds (see the [module](super)).
pub struct LiveValidator {
    checks: Vec<Arc<dyn LiveCheck>>,
    rate: u32,
    budget: Duration,
    request_timeout: Duration,
    max_requests: usize,
}

impl std::fmt::Debug for LiveValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveValidator")
            .field("checks", &self.checks.iter().map(|c| c.name().to_owned()).collect::<Vec<_>>())
            .field("rate", &self.rate)
            .field("budget", &self.budget)
            .field("request_timeout", &self.request_timeout)
            .field("max_requests", &self.max_requests)
            .finish()
    }
}

/// Settings of a [`LiveValidator`]. Defaults: 5 requests a second, 5 s per request, 60 s in all,
/// at most 200 requests.
#[derive(Clone, Default)]
pub struct LiveValidatorBuilder {
    checks: Vec<Arc<dyn LiveCheck>>,
    rate: Option<u32>,
    budget: Option<Duration>,
    request_timeout: Option<Duration>,
    max_requests: Option<usize>,
}

impl LiveValidatorBuilder {
    /// Adds a check. The first registered that judges a finding answers for it.
    pub fn check(mut self, check: Arc<dyn LiveCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// At most `n` requests a second (1 to 50).
    pub fn rate_per_second(mut self, n: u32) -> Self {
        self.rate = Some(n);
        self
    }

    /// The total time validation may take (up to an hour); what is left then is unknown.
    pub fn budget(mut self, d: Duration) -> Self {
        self.budget = Some(d);
        self
    }

    /// Each request's timeout (up to 60 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// At most `n` requests in all.
    pub fn max_requests(mut self, n: usize) -> Self {
        self.max_requests = Some(n);
        self
    }

    /// The validator; [`ScanError::Validation`] for a bound out of its range.
    pub fn build(self) -> Result<LiveValidator, ScanError> {
        let rate = self.rate.unwrap_or(5);
        let budget = self.budget.unwrap_or(Duration::from_secs(60));
        let request_timeout = self.request_timeout.unwrap_or(Duration::from_secs(5));
        if rate == 0 || rate > MAX_RATE {
            return Err(ScanError::Validation(format!("rate {rate}/s is not within 1 to {MAX_RATE}")));
        }
        if budget.is_zero() || budget > MAX_BUDGET {
            return Err(ScanError::Validation(format!("budget {budget:?} is not within (0, 1 h]")));
        }
        if request_timeout.is_zero() || request_timeout > MAX_REQUEST_TIMEOUT {
            return Err(ScanError::Validation(format!(
                "request timeout {request_timeout:?} is not within (0, 60 s]"
            )));
        }
        Ok(LiveValidator {
            checks: self.checks,
            rate,
            budget,
            request_timeout,
            max_requests: self.max_requests.unwrap_or(200),
        })
    }
}

/// What a validation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ValidationSummary {
    /// Findings the provider accepts.
    pub valid: usize,
    /// Findings the provider refuses.
    pub invalid: usize,
    /// Findings left unknown.
    pub unknown: usize,
    /// Requests sent over the network (one per distinct credential a check judges; a local
    /// check's are not requests).
    pub requests: usize,
}

impl LiveValidator {
    /// A builder with no check.
    pub fn builder() -> LiveValidatorBuilder {
        LiveValidatorBuilder::default()
    }

    /// Asks about every finding of `report` and records the answer in its
    /// [`Finding::validation`]. A credential found several times is asked about once.
    pub async fn validate(&self, report: &mut Report) -> ValidationSummary {
        let start = Instant::now();
        let mut bounds = Bounds {
            deadline: start + self.budget,
            interval: Duration::from_secs(1) / self.rate,
            next_slot: start,
            requests: 0,
        };
        let mut summary = ValidationSummary::default();
        // (the check, fingerprint, public id) → its answer: a copy of a credential is not asked
        // twice, and a copy under a rule no check judges does not stand for a judged one.
        let mut answered: HashMap<(usize, String, Option<String>), Validation> = HashMap::new();
        for f in &mut report.findings {
            let validation = match self.checks.iter().position(|c| c.judges(f)) {
                None => Validation::unknown("none", "no provider check for this kind"),
                Some(c) => {
                    let key = (c, f.fingerprint.as_str().to_owned(), f.public_id.clone());
                    match answered.get(&key) {
                        Some(v) => v.clone(),
                        None => {
                            let v = self.ask(self.checks[c].as_ref(), f, &mut bounds).await;
                            answered.insert(key, v.clone());
                            v
                        }
                    }
                }
            };
            match validation.validity {
                Validity::Valid => summary.valid += 1,
                Validity::Invalid => summary.invalid += 1,
                Validity::Unknown => summary.unknown += 1,
            }
            f.validation = Some(validation);
        }
        summary.requests = bounds.requests;
        summary
    }

    /// One check's answer, within the bounds: once the budget's deadline has passed, `Unknown`
    /// at once, without waiting or asking.
    async fn ask(&self, check: &dyn LiveCheck, f: &Finding, bounds: &mut Bounds) -> Validation {
        let spent = || Validation::unknown(check.name(), "not asked: the time budget was spent");
        let mut now = Instant::now();
        if now >= bounds.deadline {
            return spent();
        }
        if !check.is_local() {
            if bounds.requests >= self.max_requests {
                return Validation::unknown(
                    check.name(),
                    format!("not asked: the cap of {} requests", self.max_requests),
                );
            }
            // The rate: one request per interval, the first at once.
            if bounds.next_slot > now {
                if bounds.next_slot >= bounds.deadline {
                    return spent();
                }
                tokio::time::sleep_until(bounds.next_slot).await;
                now = Instant::now();
                if now >= bounds.deadline {
                    return spent();
                }
            }
            bounds.next_slot = now + bounds.interval;
            bounds.requests += 1;
        }
        let limit = self.request_timeout.min(bounds.deadline - now);
        match tokio::time::timeout(limit, check.check(f)).await {
            Ok(v) => v,
            Err(_) => Validation::unknown(check.name(), format!("no answer within {limit:?}")),
        }
    }
}

/// Where a validation stands against its bounds.
struct Bounds {
    deadline: Instant,
    interval: Duration,
    next_slot: Instant,
    requests: usize,
}
