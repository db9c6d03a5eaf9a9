//! The built-in rule table. Tokenward tokens are found by their own detector (any prefix, CRC-32
//! validated), not by a rule here.

use crate::rule::{Confidence, Rule, Validator};

/// The id of the generic assignment rule (off by default).
pub(crate) const GENERIC_RULE: &str = "generic-assignment";

struct Spec {
    id: &'static str,
    description: &'static str,
    anchors: &'static [&'static str],
    regex: &'static str,
    secret_group: usize,
    confidence: Confidence,
    validator: Validator,
    before: usize,
    after: usize,
}

const fn spec(
    id: &'static str,
    description: &'static str,
    anchors: &'static [&'static str],
    regex: &'static str,
    confidence: Confidence,
) -> Spec {
    Spec {
        id,
        description,
        anchors,
        regex,
        secret_group: 0,
        confidence,
        validator: Validator::None,
        before: 8,
        after: 160,
    }
}

const TABLE: &[Spec] = &[
    Spec {
        validator: Validator::GithubCrc32,
        ..spec(
            "github-classic",
            "GitHub classic token (ghp_, gho_, ghu_, ghs_, ghr_), CRC-32 validated",
            &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
            r"\bgh[pousr]_[0-9A-Za-z]{36}\b",
            Confidence::Certain,
        )
    },
    spec(
        "github-fine-grained",
        "GitHub fine-grained personal access token",
        &["github_pat_"],
        r"\bgithub_pat_[0-9A-Za-z]{22}_[0-9A-Za-z]{59}\b",
        Confidence::High,
    ),
    spec(
        "gitlab-pat",
        "GitLab personal access token",
        &["glpat-"],
        r"\bglpat-[0-9A-Za-z_-]{20}(?:[0-9A-Za-z_.-]{0,40})\b",
        Confidence::High,
    ),
    spec(
        "slack-token",
        "Slack token (bot, app, user, refresh)",
        &["xoxb-", "xoxa-", "xoxp-", "xoxr-"],
        r"\bxox[abpr]-[0-9]{8,13}-[0-9]{8,13}(?:-[0-9A-Za-z]{8,32}){1,2}\b",
        Confidence::High,
    ),
    spec(
        "slack-webhook",
        "Slack incoming webhook URL",
        &["hooks.slack.com/services/"],
        r"https://hooks\.slack\.com/services/T[0-9A-Z]{6,12}/B[0-9A-Z]{6,12}/[0-9A-Za-z]{24}",
        Confidence::High,
    ),
    spec(
        "stripe-live-key",
        "Stripe live secret or restricted key",
        &["sk_live_", "rk_live_"],
        r"\b[rs]k_live_[0-9A-Za-z]{24,99}\b",
        Confidence::High,
    ),
    spec(
        "vault-token",
        "OpenBao / Vault token (service, batch, recovery)",
        &["hvs.", "hvb.", "hvr."],
        r"\bhv[sbr]\.[0-9A-Za-z_-]{24,255}",
        Confidence::High,
    ),
    Spec {
        validator: Validator::AwsSecretNearby,
        before: 320,
        after: 320,
        ..spec(
            "aws-access-key",
            "AWS access key id with its 40-character secret access key nearby",
            &["AKIA", "ASIA"],
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            Confidence::High,
        )
    },
    Spec {
        secret_group: 1,
        before: 16,
        after: 200,
        ..spec(
            "gcp-service-account",
            "Google Cloud service-account key (JSON)",
            &["private_key_id"],
            r#""private_key_id"\s*:\s*"([0-9a-f]{40})""#,
            Confidence::High,
        )
    },
    Spec {
        secret_group: 1,
        before: 200,
        after: 120,
        ..spec(
            "azure-storage-connection-string",
            "Azure storage account key in a connection string",
            &["AccountKey="],
            r"AccountKey=([0-9A-Za-z+/]{86}==)",
            Confidence::High,
        )
    },
    Spec {
        secret_group: 1,
        before: 64,
        after: 140,
        ..spec(
            "azure-storage-key",
            "Azure storage account key assigned to an Azure-named variable",
            &["azure"],
            r#"(?i)azure[a-z0-9_.-]{0,40}(?:key|secret)[a-z0-9_.-]{0,20}["']?\s*[:=]\s*["']?([0-9A-Za-z+/]{86}==)"#,
            Confidence::High,
        )
    },
    Spec {
        secret_group: 2,
        before: 0,
        after: 8192,
        ..spec(
            "private-key",
            "Private key (PEM: RSA, EC, DSA, OpenSSH, PKCS#8, encrypted)",
            &["-----BEGIN "],
            r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY)-----\s*((?:[0-9A-Za-z+/=]+\s*|(?:\\n|\\r)+|[A-Za-z-]+: [^\n]*\n)+?)-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----",
            Confidence::High,
        )
    },
    Spec {
        secret_group: 2,
        before: 0,
        after: 300,
        ..spec(
            "database-url",
            "Database URL with a password (PostgreSQL, MySQL, MongoDB, Redis, AMQP)",
            &[
                "postgres://",
                "postgresql://",
                "mysql://",
                "mongodb://",
                "mongodb+srv://",
                "redis://",
                "rediss://",
                "amqp://",
                "amqps://",
            ],
            r"\b(?:postgres(?:ql)?|mysql|mongodb(?:\+srv)?|rediss?|amqps?)://([^:@/\s]{0,64}):([^@/\s'\x22`]{3,128})@[0-9A-Za-z.-]+",
            Confidence::High,
        )
    },
    Spec {
        secret_group: 2,
        before: 48,
        after: 200,
        validator: Validator::Entropy { min_bits: 3.5 },
        ..spec(
            GENERIC_RULE,
            "Generic high-entropy assignment to a key/token/secret/password name (low confidence)",
            &["key", "token", "secret", "passw", "pwd"],
            r#"(?i)\b([a-z0-9_.-]{0,32}(?:api[_-]?key|access[_-]?key|secret|token|passw(?:or)?d|pwd)[a-z0-9_.-]{0,16})["']?\s*(?::=|=>|[:=])\s*["']([^\s"'`]{16,128})["']"#,
            Confidence::Low,
        )
    },
];

pub(crate) fn builtin() -> Vec<Rule> {
    TABLE
        .iter()
        .map(|s| Rule {
            id: s.id.to_owned(),
            description: s.description.to_owned(),
            anchors: s.anchors.iter().map(|a| (*a).to_owned()).collect(),
            regex: s.regex.to_owned(),
            secret_group: s.secret_group,
            confidence: s.confidence,
            validator: s.validator,
            before: s.before,
            after: s.after,
            enabled: s.id != GENERIC_RULE,
        })
        .collect()
}
