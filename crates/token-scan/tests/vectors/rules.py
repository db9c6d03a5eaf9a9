#!/usr/bin/env python3
"""Writes rules.json: a positive and a negative vector for every built-in rule of token-scan.

Independent of token-scan: the values are drawn here (seeded, so the file is reproducible), their
checksums computed with Python's zlib (GitHub's and npm's base62 CRC-32, Grafana's little-endian
hex CRC-32) and PyPI's macaroon built field by field. Every value is random and marked fake where
its alphabet allows (`FAKE`, `fake`): none is a real credential.

    python3 crates/token-scan/tests/vectors/rules.py > crates/token-scan/tests/vectors/rules.json
"""
import base64, json, random, zlib

rng = random.Random(20261206)
UP = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LO = "abcdefghijklmnopqrstuvwxyz"
DIG = "0123456789"
ALNUM = DIG + UP + LO
HEX = "0123456789abcdef"
B64 = UP + LO + DIG + "+/"
B64URL = UP + LO + DIG + "-_"


def r(alpha, n):
    """n random characters of alpha, starting with a fake marker where the alphabet allows."""
    mark = ""
    if n >= 12:
        if all(c in alpha for c in "FAKE"):
            mark = "FAKE"
        elif all(c in alpha for c in "fake"):
            mark = "fake"
    body = mark + "".join(rng.choice(alpha) for _ in range(n - len(mark)))
    # Base64url values end with a `-` (not a word character: the hard case for a regex's end).
    if "-" in alpha and n >= 12:
        body = body[:-1] + "-"
    return body


def mixed(alpha, n):
    while True:
        v = r(alpha, n)
        if any(c.islower() for c in v) and any(c.isupper() for c in v) and any(not c.isalpha() for c in v):
            return v


def b62(n, width=6):
    s = ""
    while n:
        s = ALNUM[n % 62] + s
        n //= 62
    return s.rjust(width, "0")


def gh(prefix):
    rnd = r(ALNUM, 30)
    return prefix + rnd + b62(zlib.crc32(rnd.encode()))


def bad_last(t):
    return t[:-1] + ("A" if t[-1] != "A" else "B")


def bad_hex(t):
    return t[:-1] + ("0" if t[-1] != "0" else "1")


def grafana():
    head = "glsa_" + r(ALNUM, 32)
    return head + "_" + zlib.crc32(head.encode()).to_bytes(4, "little").hex()


def field(kind, data):
    return bytes([kind, len(data)]) + data


def pypi(location=b"pypi.org"):
    ident = ("FAKE-" + r(HEX, 32)).encode()
    caveat = b'{"version": 1, "permissions": "user"}'
    mac = b"\x02" + field(1, location) + field(2, ident) + b"\x00" + field(2, caveat) + b"\x00" + b"\x00"
    mac += field(6, bytes(rng.randrange(256) for _ in range(32)))
    return "pypi-" + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def uuid():
    h = r(HEX, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def b64json(obj):
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def b64url_json(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def jwt(payload):
    return b64url_json({"alg": "RS256", "typ": "JWT"}) + "." + b64url_json(payload) + "." + r(B64URL, 43)


V = []


def v(rule, positive, secret, negative):
    assert secret in positive, rule
    V.append({"rule": rule, "positive": positive, "secret": secret, "negative": negative})


def simple(rule, fmt, make, negative):
    s = make()
    v(rule, fmt.format(s), s, negative)


# Source hosting and CI
t = gh("ghp_"); v("github-classic", f"GITHUB_TOKEN={t}", t, f'GITHUB_TOKEN="{bad_last(gh("ghp_"))}"')
t = "github_pat_" + r(ALNUM, 22) + "_" + r(ALNUM, 59)
v("github-fine-grained", f"token: {t}", t, "token: github_pat_" + r(ALNUM, 22) + "_" + r(ALNUM, 40))
t = "glpat-" + r(ALNUM, 20); v("gitlab-pat", f"CI_TOKEN='{t}'", t, "CI_TOKEN='glpat-" + r(ALNUM, 12) + "'")
t = "gldt-" + r(ALNUM, 20); v("gitlab-deploy-token", f"deploy_token: {t}", t, "deploy_token: gldt-" + r(ALNUM, 10))
t = "glrt-" + r(ALNUM, 20); v("gitlab-runner-token", f'token = "{t}"', t, 'token = "glrt-' + r(ALNUM, 8) + '"')
t = "GR1348941" + r(ALNUM, 20); v("gitlab-runner-registration-token", f"--registration-token {t}", t, "--registration-token GR1348941" + r(ALNUM, 12))
t = "glcbt-64_" + r(ALNUM, 20); v("gitlab-ci-job-token", f"CI_JOB_TOKEN={t}", t, "CI_JOB_TOKEN=glcbt-" + r(ALNUM, 9))
t = "gloas-" + r(HEX, 64); v("gitlab-oauth-app-secret", f"secret: {t}", t, "secret: gloas-" + r(HEX, 40))
t = "glft-" + r(ALNUM, 20); v("gitlab-feed-token", f"https://gitlab.example.com/dashboard/issues.atom?feed_token={t}", t, "feed_token=glft-" + r(ALNUM, 10))
t = "glimt-" + r(ALNUM, 25); v("gitlab-incoming-email-token", f"incoming+{t}@gitlab.example.com".replace("@", " @"), t, "incoming+glimt-" + r(ALNUM, 12))
t = "glagent-" + r(ALNUM, 50); v("gitlab-agent-token", f"--set config.token={t}", t, "--set config.token=glagent-" + r(ALNUM, 30))
t = "glsoat-" + r(ALNUM, 20); v("gitlab-scim-token", f"scim_token: {t}", t, "scim_token: glsoat-" + r(ALNUM, 10))
t = "glffct-" + r(ALNUM, 20); v("gitlab-feature-flags-token", f"UNLEASH_INSTANCE_ID={t}", t, "UNLEASH_INSTANCE_ID=glffct-" + r(ALNUM, 10))
t = "glptt-" + r(HEX, 40); v("gitlab-trigger-token", f"curl -F token={t} -F ref=main", t, "curl -F token=glptt-" + r(HEX, 30) + " -F ref=main")
t = "CCIPAT_" + r(ALNUM, 22) + "_" + r(HEX, 40); v("circleci-token", f"CIRCLE_TOKEN={t}", t, "CIRCLE_TOKEN=CCIPAT_" + r(ALNUM, 22))
t = "bkua_" + r(HEX, 40); v("buildkite-api-token", f"BUILDKITE_API_TOKEN={t}", t, "BUILDKITE_API_TOKEN=bkua_" + r(HEX, 20))
t = r(DIG + LO, 50); v("buildkite-agent-token", f"BUILDKITE_AGENT_TOKEN={t}", t, "AGENT_NAME=" + r(DIG + LO, 50))
t = "squ_" + r(HEX, 40); v("sonarqube-token", f"SONAR_TOKEN={t}", t, "SONAR_TOKEN=squ_" + r(HEX, 20))
t = "AKCp" + r(ALNUM, 69); v("jfrog-api-key", f"ARTIFACTORY_API_KEY={t}", t, "ARTIFACTORY_API_KEY=AKCp" + r(ALNUM, 30))
t = "cmVmdGtuOjAxOj" + r(ALNUM, 50); v("jfrog-reference-token", f"JFROG_ACCESS_TOKEN={t}", t, "JFROG_ACCESS_TOKEN=cmVmdGtuOjAxOj" + r(ALNUM, 20))
t = "ATBB" + r(ALNUM, 32); v("bitbucket-app-password", f"BITBUCKET_APP_PASSWORD={t}", t, "BITBUCKET_APP_PASSWORD=ATBB" + r(ALNUM, 12))

# Package registries
t = gh("npm_"); v("npm-token", f"//registry.npmjs.org/:_authToken={t}", t, f'NPM_TOKEN="{bad_last(gh("npm_"))}"')
t = pypi(); v("pypi-token", f"TWINE_PASSWORD={t}", t, "password = " + pypi()[:-6])
t = "rubygems_" + r(HEX, 48); v("rubygems-api-key", f":rubygems_api_key: {t}", t, ":rubygems_api_key: rubygems_" + r(HEX, 30))
t = "cio" + r(ALNUM, 32); v("crates-io-token", f'CARGO_REGISTRY_TOKEN="{t}"', t, 'precious = "cio' + r(ALNUM, 20) + '"')
t = "packagist_out_" + r(HEX, 68); v("packagist-token", f"COMPOSER_AUTH_TOKEN={t}", t, "COMPOSER_AUTH_TOKEN=packagist_out_" + r(HEX, 60))
t = "dckr_pat_" + r(ALNUM, 27); v("docker-hub-token", f"DOCKERHUB_TOKEN={t}", t, "DOCKERHUB_TOKEN=dckr_pat_" + r(ALNUM, 12))
t = "oy2" + r(DIG + LO, 43); v("nuget-api-key", f"dotnet nuget push pkg.nupkg --api-key {t}", t, "--api-key oy2" + r(DIG + LO, 20))

# Chat and webhooks
t = "xoxb-" + r(DIG, 12) + "-" + r(DIG, 13) + "-" + r(ALNUM, 24); v("slack-token", f'slack = "{t}"', t, 'slack = "xoxb-your-token-here"')
t = "xapp-1-A" + r(DIG + UP, 10) + "-" + r(DIG, 13) + "-" + r(HEX, 64); v("slack-app-token", f"SLACK_APP_TOKEN={t}", t, "SLACK_APP_TOKEN=xapp-1-" + r(HEX, 20))
t = "xoxe.xoxp-1-" + r(ALNUM, 140); v("slack-config-token", f"SLACK_CONFIG_TOKEN={t}", t, "SLACK_CONFIG_TOKEN=xoxe.xoxp-1-" + r(ALNUM, 40))
t = "https://hooks.slack.com/services/T" + r(DIG + UP, 8) + "/B" + r(DIG + UP, 10) + "/" + r(ALNUM, 24)
v("slack-webhook", f"webhook: {t}", t, "webhook: https://hooks.slack.com/services/T000/B000/xxx")
t = "https://hooks.slack.com/triggers/T" + r(DIG + UP, 8) + "/" + r(DIG, 13) + "/" + r(HEX, 32)
v("slack-workflow-webhook", f"SLACK_WORKFLOW_URL={t}", t, "SLACK_WORKFLOW_URL=https://hooks.slack.com/triggers/T0/123/abc")
t = "https://discord.com/api/webhooks/" + r(DIG, 18) + "/" + r(B64URL, 68)
v("discord-webhook", f"DISCORD_WEBHOOK={t}", t, "DISCORD_WEBHOOK=https://discord.com/api/webhooks/{id}/{token}")
t = f"https://contoso.webhook.office.com/webhookb2/{uuid()}@{uuid()}/IncomingWebhook/{r(HEX, 32)}/{uuid()}"
v("microsoft-teams-webhook", f"teams_url: {t}", t, "teams_url: https://contoso.webhook.office.com/webhookb2/<group>@<tenant>/IncomingWebhook/")
t = r(DIG, 10) + ":AA" + r(B64URL, 33); v("telegram-bot-token", f"TELEGRAM_BOT_TOKEN={t}", t, "TELEGRAM_BOT_TOKEN=123:AA" + r(ALNUM, 10))

# Payments and commerce
t = "sk_live_" + r(ALNUM, 24); v("stripe-live-key", f"Stripe.api_key = '{t}'", t, "stripe_key = sk_test_" + r(ALNUM, 24))
t = "whsec_" + r(ALNUM, 32); v("stripe-webhook-secret", f"STRIPE_WEBHOOK_SECRET={t}", t, "STRIPE_WEBHOOK_SECRET=whsec_" + r(ALNUM, 16))
t = "shpat_" + r(HEX, 32); v("shopify-access-token", f"SHOPIFY_ACCESS_TOKEN={t}", t, "SHOPIFY_ACCESS_TOKEN=shpat_" + r(HEX, 20))
t = "shpca_" + r(HEX, 32); v("shopify-custom-app-token", f"token: {t}", t, "token: shpca_" + r(HEX, 20))
t = "shppa_" + r(HEX, 32); v("shopify-private-app-token", f"token: {t}", t, "token: shppa_" + r(HEX, 20))
t = "shpss_" + r(HEX, 32); v("shopify-shared-secret", f"SHOPIFY_API_SECRET={t}", t, "SHOPIFY_API_SECRET=shpss_" + r(HEX, 20))
t = "EAAA" + r(B64URL, 60); v("square-access-token", f"SQUARE_ACCESS_TOKEN={t}", t, "SQUARE_ACCESS_TOKEN=EAAA" + r(ALNUM, 30))
t = "sq0csp-" + r(B64URL, 43); v("square-oauth-secret", f"SQUARE_APP_SECRET={t}", t, "SQUARE_APP_SECRET=sq0csp-" + r(ALNUM, 20))
t = "access_token$production$" + r(DIG + LO, 16) + "$" + r(HEX, 32); v("braintree-access-token", f"BRAINTREE_TOKEN={t}", t, "BRAINTREE_TOKEN=access_token$sandbox$" + r(DIG + LO, 16) + "$" + r(HEX, 32))

# Secret stores and infrastructure as code
t = "hvs." + r(ALNUM, 24); v("vault-token", f"export VAULT_TOKEN={t}", t, "VAULT_TOKEN=hvs.xxxxxxxxxxxxxxxxxxxxxxxxxxxx")
t = "s." + r(ALNUM, 24); v("vault-token-legacy", f"export VAULT_TOKEN={t}", t, "export VAULT_TOKEN=s.notatoken")
t = r(ALNUM, 14) + ".atlasv1." + r(ALNUM, 67); v("terraform-cloud-token", f'credentials "app.terraform.io" {{ token = "{t}" }}', t, 'token = "' + r(ALNUM, 14) + '.atlasv1.short"')
t = r(B64URL.replace("-", "").replace("_", ""), 64); v("hcp-client-secret", f"HCP_CLIENT_SECRET={t}", t, "HCP_CLIENT_ID=" + r(ALNUM, 32))
t = "pul-" + r(HEX, 40); v("pulumi-access-token", f"PULUMI_ACCESS_TOKEN={t}", t, "PULUMI_ACCESS_TOKEN=pul-" + r(HEX, 20))
t = "dp.st.prd." + r(ALNUM, 40); v("doppler-token", f"DOPPLER_TOKEN={t}", t, "DOPPLER_TOKEN=dp.st." + r(ALNUM, 20))
t = "st." + r(HEX, 24) + "." + r(HEX, 32) + "." + r(HEX, 32); v("infisical-service-token", f"INFISICAL_TOKEN={t}", t, "TOKEN=st." + r(HEX, 24) + "." + r(HEX, 32) + "." + r(HEX, 32))
t = r(HEX, 64); v("infisical-client-secret", f"INFISICAL_CLIENT_SECRET={t}", t, "INFISICAL_CLIENT_ID=" + uuid())
t = "ops_" + b64json({"signInAddress": "my.1password.com", "userAuth": {"method": "SRPg-4096", "alg": "PBES2g-HS256", "iterations": 650000, "salt": r(B64URL, 22)}, "email": "fake@example.invalid", "srpX": r(HEX, 64), "muk": {"alg": "A256GCM", "ext": True, "k": r(B64URL, 43), "key_ops": ["encrypt", "decrypt"], "kty": "oct", "kid": "mp"}, "secretKey": "A3-FAKE00-" + r(DIG + UP, 6), "throttleSecret": {"seed": r(HEX, 64), "deviceUuid": r(DIG + LO, 26)}, "deviceUuid": r(DIG + LO, 26)})
v("1password-service-account-token", f"OP_SERVICE_ACCOUNT_TOKEN={t}", t, "OP_SERVICE_ACCOUNT_TOKEN=ops_eyJ" + r(ALNUM, 20))
t = "A3-" + r(DIG + UP, 6) + "-" + r(DIG + UP, 6) + "-" + "-".join(r(DIG + UP, 5) for _ in range(4)); v("1password-secret-key", f"secret key: {t}", t, "secret key: A3-" + r(DIG + UP, 6) + "-" + r(DIG + UP, 6))
t = "AGE-SECRET-KEY-1" + r("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L".upper(), 58); v("age-secret-key", f"{t}", t, "# public key: age1" + r("qpzry9x8gf2tvdw0s3jn54khce6mua7l", 58))

# AWS
kid = "AKIA" + r("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16); sec = mixed(ALNUM + "/+", 40)
v("aws-access-key", f"aws_access_key_id = {kid}\naws_secret_access_key = {sec}", sec, "aws_access_key_id = AKIA" + r("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16) + " (no secret here)")
t = "IQoJb3JpZ2luX2VjE" + r(ALNUM + "/+", 300); v("aws-session-token", f"aws_session_token = {t}", t, "session_token = " + r(ALNUM, 300))
t = "amzn.mws." + uuid(); v("aws-mws-auth-token", f"MWS_AUTH_TOKEN={t}", t, "MWS_AUTH_TOKEN=amzn.mws.1234")

# Google Cloud
t = r(HEX, 40); v("gcp-service-account", f'{{"type": "service_account", "project_id": "p", "private_key_id": "{t}"}}', t, '{"type": "service_account", "private_key_id": "' + r(HEX, 20) + '"}')
t = "AIza" + r(B64URL, 35); v("gcp-api-key", f'GOOGLE_API_KEY="{t}"', t, 'GOOGLE_API_KEY="AIza' + r(ALNUM, 20) + '"')
t = "GOCSPX-" + r(B64URL, 28); v("gcp-oauth-client-secret", f'"client_secret": "{t}"', t, '"client_secret": "GOCSPX-' + r(ALNUM, 10) + '"')
t = "1//0" + r(B64URL, 99); v("gcp-oauth-refresh-token", f'"refresh_token": "{t}"', t, 'path = "a/1//0' + r(ALNUM, 8) + '"')
t = "ya29." + r(B64URL, 150); v("gcp-oauth-access-token", f"Authorization: Bearer {t}", t, "Authorization: Bearer ya29.short")
t = "AAAA" + r(B64URL, 7) + ":APA91b" + r(B64URL, 134); v("firebase-fcm-server-key", f"FCM_SERVER_KEY={t}", t, "FCM_SERVER_KEY=AAAA" + r(ALNUM, 7) + ":APA91b" + r(ALNUM, 40))

# Azure
t = r(B64, 86) + "=="; v("azure-storage-connection-string", f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={t};EndpointSuffix=core.windows.net", t, "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + r(B64, 40) + "==;")
t = r(B64, 86) + "=="; v("azure-storage-key", f'AZURE_STORAGE_KEY="{t}"', t, 'STORAGE_KEY="' + r(B64, 86) + '=="')
t = r(B64, 42) + "A="; v("azure-shared-access-key", f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={t}", t, "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=" + r(B64, 20) + "=")
sec = r(ALNUM, 3) + "8Q~" + r(ALNUM + "_~", 34); cid = uuid()
v("azure-ad-client-secret", f"AZURE_CLIENT_SECRET={sec}\nAZURE_CLIENT_ID={cid}", sec, "AZURE_CLIENT_SECRET=" + r(ALNUM, 3) + "8Q~" + r(ALNUM, 34))
sig = r(ALNUM + "%", 43) + "%3D"; t = sig
v("azure-sas-token", f"https://acct.blob.core.windows.net/c/b.txt?sp=r&st=2026-01-01T00:00:00Z&se=2026-12-31T00:00:00Z&spr=https&sv=2022-11-02&sr=b&sig={sig}", sig, "https://acct.blob.core.windows.net/c/b.txt?sp=r&sr=b&sig=" + r(ALNUM, 43) + "%3D")
t = r(LO + "234567", 52); v("azure-devops-pat", f"AZURE_DEVOPS_EXT_PAT={t}", t, "AZURE_DEVOPS_ORG=" + r(LO + "234567", 52))

# Other clouds and platforms
t = "dop_v1_" + r(HEX, 64); v("digitalocean-pat", f"DIGITALOCEAN_TOKEN={t}", t, "DIGITALOCEAN_TOKEN=dop_v1_" + r(HEX, 63))
t = "doo_v1_" + r(HEX, 64); v("digitalocean-oauth-token", f"token: {t}", t, "token: doo_v1_" + r(HEX, 40))
t = "dor_v1_" + r(HEX, 64); v("digitalocean-refresh-token", f"refresh: {t}", t, "refresh: dor_v1_" + r(HEX, 40))
t = r(HEX, 64); v("linode-token", f"LINODE_TOKEN={t}", t, "COMMIT_SHA256=" + r(HEX, 64))
t = r(ALNUM, 64); v("hetzner-cloud-token", f"HCLOUD_TOKEN={t}", t, "HCLOUD_TOKEN=" + r(ALNUM, 63))
t = uuid(); v("scaleway-secret-key", f"SCW_SECRET_KEY={t}", t, "SCW_DEFAULT_PROJECT_ID=" + uuid())
t = r(ALNUM, 32); v("ovh-application-secret", f"OVH_APPLICATION_SECRET={t}", t, "OVH_ENDPOINT=ovh-eu " + r(ALNUM, 32))
t = r(ALNUM + "+#", 20); v("oracle-oci-secret", f"OCI_CLI_AUTH_TOKEN='{t}'", t, "OCI_CLI_REGION='" + r(ALNUM, 20) + "'")
kid = "LTAI" + r(ALNUM, 20); sec = mixed(ALNUM, 30)
v("alibaba-access-key", f"ALIBABA_CLOUD_ACCESS_KEY_SECRET={sec}\nALIBABA_CLOUD_ACCESS_KEY_ID={kid}", sec, "ALIBABA_CLOUD_ACCESS_KEY_ID=LTAI" + r(ALNUM, 20))
kid = "AKID" + r(ALNUM, 32); sec = mixed(ALNUM, 32)
v("tencent-secret-key", f"TENCENTCLOUD_SECRET_KEY={sec}\nTENCENTCLOUD_SECRET_ID={kid}", sec, "TENCENTCLOUD_SECRET_ID=AKID" + r(ALNUM, 32))
t = r(B64URL, 44); v("ibm-cloud-api-key", f"IBMCLOUD_API_KEY={t}", t, "IBMCLOUD_REGION=" + r(B64URL, 44))
t = r(B64URL, 40); v("cloudflare-api-token", f"CLOUDFLARE_API_TOKEN={t}", t, "CLOUDFLARE_ZONE_ID=" + r(B64URL, 40))
t = r(HEX, 37); v("cloudflare-global-api-key", f"CLOUDFLARE_API_KEY={t}", t, "CLOUDFLARE_EMAIL=fake@example.invalid " + r(HEX, 37))
t = "v1.0-" + r(HEX, 24) + "-" + r(HEX, 146); v("cloudflare-origin-ca-key", f"CF_ORIGIN_CA_KEY={t}", t, "version v1.0-" + r(HEX, 24))
t = r(B64URL, 32); v("fastly-api-token", f"FASTLY_API_TOKEN={t}", t, "FASTLY_SERVICE_ID=" + r(B64URL, 32))
t = "HRKU-" + r(B64URL, 60); v("heroku-api-key", f"HEROKU_API_KEY={t}", t, "HEROKU_API_KEY=HRKU-" + r(ALNUM, 30))
t = uuid(); v("heroku-api-key-legacy", f"HEROKU_API_KEY={t}", t, "HEROKU_APP_ID=" + uuid())
t = "FlyV1 fm2_" + r(B64, 300); v("fly-access-token", f'FLY_API_TOKEN="{t}"', t, 'FLY_API_TOKEN="FlyV1 fm2_' + r(ALNUM, 30) + '"')
t = r(ALNUM, 24); v("vercel-token", f"VERCEL_TOKEN={t}", t, "VERCEL_ORG_ID=" + r(ALNUM, 24))
t = "nfp_" + r(ALNUM, 36); v("netlify-pat", f"NETLIFY_AUTH_TOKEN={t}", t, "NETLIFY_AUTH_TOKEN=nfp_" + r(ALNUM, 20))
t = "rnd_" + r(ALNUM, 32); v("render-api-key", f"RENDER_API_KEY={t}", t, "RENDER_API_KEY=rnd_" + r(ALNUM, 20))
t = "sbp_" + r(HEX, 40); v("supabase-access-token", f"SUPABASE_ACCESS_TOKEN={t}", t, "SUPABASE_ACCESS_TOKEN=sbp_" + r(HEX, 20))
t = "pscale_tkn_" + r(ALNUM, 43); v("planetscale-token", f"PLANETSCALE_SERVICE_TOKEN={t}", t, "PLANETSCALE_SERVICE_TOKEN=pscale_tkn_" + r(ALNUM, 20))
t = "tskey-auth-k" + r(ALNUM, 11) + "CNTRL-" + r(ALNUM, 33); v("tailscale-key", f"TS_AUTHKEY={t}", t, "TS_AUTHKEY=tskey-auth-" + r(ALNUM, 12))
t = "dt0c01." + r(DIG + UP, 24) + "." + r(DIG + UP, 64); v("dynatrace-token", f"DT_API_TOKEN={t}", t, "DT_API_TOKEN=dt0c01." + r(DIG + UP, 24))
t = "pnu_" + r(ALNUM, 36); v("prefect-api-key", f"PREFECT_API_KEY={t}", t, "PREFECT_API_KEY=pnu_" + r(ALNUM, 20))
t = "pat." + r(B64URL, 22) + "." + r(HEX, 24) + "." + r(ALNUM, 20); v("harness-pat", f"HARNESS_API_KEY={t}", t, "HARNESS_API_KEY=pat." + r(ALNUM, 22))

# Kubernetes
t = jwt({"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": "default", "kubernetes.io/serviceaccount/secret.name": "fake-token", "sub": "system:serviceaccount:default:fake"})
v("kubernetes-service-account-token", f"token: {t}", t, "token: eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Ii")
t = r(ALNUM, 64); v("kubeconfig-token", f"  user:\n    token: {t}", t, "users:\n- name: admin\n  user:\n    exec:\n      command: aws")
t = base64.b64encode(("-----BEGIN RSA PRIVATE KEY-----\n" + r(B64, 64) + "\n-----END RSA PRIVATE KEY-----\n").encode()).decode()
v("kubeconfig-client-key", f"    client-key-data: {t}", t, "    client-certificate-data: " + base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode())

# AI providers
t = "sk-proj-" + r(B64URL, 74) + "T3BlbkFJ" + r(B64URL, 74); v("openai-api-key", f"OPENAI_API_KEY={t}", t, "OPENAI_API_KEY=sk-proj-" + r(ALNUM, 40))
t = "sk-ant-api03-" + r(B64URL, 93) + "AA"; v("anthropic-api-key", f"ANTHROPIC_API_KEY={t}", t, "ANTHROPIC_API_KEY=sk-ant-api03-" + r(ALNUM, 40))
t = "sk-ant-admin01-" + r(B64URL, 93) + "AA"; v("anthropic-admin-key", f"ANTHROPIC_ADMIN_KEY={t}", t, "ANTHROPIC_ADMIN_KEY=sk-ant-admin01-" + r(ALNUM, 40))
t = "hf_" + r(UP + LO, 34); v("huggingface-token", f"HF_TOKEN={t}", t, "HF_TOKEN=hf_" + r(UP + LO, 20))
t = "gsk_" + r(ALNUM, 52); v("groq-api-key", f"GROQ_API_KEY={t}", t, "GROQ_API_KEY=gsk_" + r(ALNUM, 30))
t = "pplx-" + r(ALNUM, 48); v("perplexity-api-key", f"PERPLEXITY_API_KEY={t}", t, "PERPLEXITY_API_KEY=pplx-" + r(ALNUM, 30))
t = "r8_" + r(ALNUM, 37); v("replicate-api-token", f"REPLICATE_API_TOKEN={t}", t, "REPLICATE_API_TOKEN=r8_" + r(ALNUM, 20))
t = "xai-" + r(ALNUM, 80); v("xai-api-key", f"XAI_API_KEY={t}", t, "XAI_API_KEY=xai-" + r(ALNUM, 40))
t = "sk-or-v1-" + r(HEX, 64); v("openrouter-api-key", f"OPENROUTER_API_KEY={t}", t, "OPENROUTER_API_KEY=sk-or-v1-" + r(HEX, 40))
t = "lsv2_pt_" + r(HEX, 32) + "_" + r(HEX, 10); v("langsmith-api-key", f"LANGSMITH_API_KEY={t}", t, "LANGSMITH_API_KEY=lsv2_pt_" + r(HEX, 32))
t = "pcsk_" + r(ALNUM, 5) + "_" + r(ALNUM, 65); v("pinecone-api-key", f"PINECONE_API_KEY={t}", t, "PINECONE_API_KEY=pcsk_" + r(ALNUM, 5) + "_" + r(ALNUM, 20))

# Communications and e-mail
tok = r(HEX, 32); sid = "AC" + r(HEX, 32)
v("twilio-auth-token", f"TWILIO_AUTH_TOKEN={tok}\nTWILIO_ACCOUNT_SID={sid}", tok, f"TWILIO_ACCOUNT_SID=AC{r(HEX, 32)}")
t = "SG." + r(B64URL, 22) + "." + r(B64URL, 43); v("sendgrid-api-key", f"SENDGRID_API_KEY={t}", t, "msg.send(" + r(ALNUM, 22) + ")")
t = "key-" + r(HEX, 32); v("mailgun-api-key", f"MAILGUN_API_KEY={t}", t, "api-key-" + r(ALNUM, 32))
t = r(HEX, 32) + "-us21"; v("mailchimp-api-key", f"MAILCHIMP_API_KEY={t}", t, "class=\"nav-user nav-us21\"")
t = "xkeysib-" + r(HEX, 64) + "-" + r(ALNUM, 16); v("brevo-api-key", f"BREVO_API_KEY={t}", t, "BREVO_API_KEY=xkeysib-" + r(HEX, 40))
t = uuid(); v("postmark-server-token", f"POSTMARK_SERVER_TOKEN={t}", t, "POSTMARK_MESSAGE_ID=" + uuid())

# Observability
t = r(HEX, 32); v("datadog-api-key", f"DD_API_KEY={t}", t, "DD_SITE=datadoghq.eu " + r(HEX, 32))
t = r(HEX, 40); v("datadog-app-key", f"DD_APP_KEY={t}", t, "DD_SERVICE=" + r(HEX, 40))
t = "NRAK-" + r(DIG + UP, 27); v("newrelic-user-api-key", f"NEW_RELIC_API_KEY={t}", t, "NEW_RELIC_API_KEY=NRAK-" + r(DIG + UP, 12))
t = r(HEX, 36) + "NRAL"; v("newrelic-license-key", f"NEW_RELIC_LICENSE_KEY={t}", t, "NEW_RELIC_LICENSE_KEY=" + r(HEX, 20) + "NRAL")
t = "NRII-" + r(B64URL, 32); v("newrelic-insert-key", f"NEW_RELIC_INSERT_KEY={t}", t, "NEW_RELIC_INSERT_KEY=NRII-" + r(ALNUM, 12))
t = "sntrys_" + b64json({"iat": 1767225600.0, "url": "https://sentry.io", "region_url": "https://us.sentry.io", "org": "fake-org"}) + "_" + r(ALNUM + "+/", 43)
v("sentry-org-token", f"SENTRY_AUTH_TOKEN={t}", t, "SENTRY_AUTH_TOKEN=sntrys_eyJ" + r(ALNUM, 20))
t = "sntryu_" + r(HEX, 64); v("sentry-user-token", f"SENTRY_AUTH_TOKEN={t}", t, "SENTRY_AUTH_TOKEN=sntryu_" + r(HEX, 40))
t = grafana(); v("grafana-service-account-token", f"GRAFANA_TOKEN={t}", t, 'GRAFANA_TOKEN="' + bad_hex(grafana()) + '"')
t = "glc_" + b64json({"o": r(DIG, 6), "n": "fake-policy", "k": r(ALNUM, 24), "m": {"r": "prod-us-east-0"}}); v("grafana-cloud-token", f"GRAFANA_CLOUD_TOKEN={t}", t, "GRAFANA_CLOUD_TOKEN=glc_eyJ" + r(ALNUM, 12))
t = b64json({"k": r(ALNUM, 32), "n": "fake-key", "id": 1}); v("grafana-api-key", f"GRAFANA_API_KEY={t}", t, "GRAFANA_API_KEY=eyJrIjoi" + r(ALNUM, 12))
t = "hcaik_" + r(DIG + LO, 58); v("honeycomb-api-key", f"HONEYCOMB_API_KEY={t}", t, "HONEYCOMB_API_KEY=hcaik_" + r(DIG + LO, 30))

# Collaboration and developer tools
t = "ATATT3xFfGF0" + r(B64URL, 170) + "=" + r(HEX.upper(), 8); v("atlassian-api-token", f"JIRA_API_TOKEN={t}", t, "JIRA_API_TOKEN=ATATT" + r(ALNUM, 20))
t = "PMAK-" + r(HEX, 24) + "-" + r(HEX, 34); v("postman-api-key", f"POSTMAN_API_KEY={t}", t, "POSTMAN_API_KEY=PMAK-" + r(HEX, 24))
t = "dapi" + r(HEX, 32); v("databricks-token", f"DATABRICKS_TOKEN={t}", t, "DATABRICKS_TOKEN=dapi" + r(HEX, 20))
t = "lin_api_" + r(ALNUM, 40); v("linear-api-key", f"LINEAR_API_KEY={t}", t, "LINEAR_API_KEY=lin_api_" + r(ALNUM, 20))
t = "ntn_" + r(ALNUM, 46); v("notion-token", f"NOTION_TOKEN={t}", t, "NOTION_TOKEN=ntn_" + r(ALNUM, 20))
t = "pat" + r(ALNUM, 14) + "." + r(HEX, 64); v("airtable-pat", f"AIRTABLE_API_KEY={t}", t, "patch" + r(ALNUM, 12) + "." + r(HEX, 64))
t = "figd_" + r(B64URL, 40); v("figma-pat", f"FIGMA_TOKEN={t}", t, "FIGMA_TOKEN=figd_" + r(ALNUM, 20))
t = "pat-na1-" + uuid(); v("hubspot-private-app-token", f"HUBSPOT_ACCESS_TOKEN={t}", t, "HUBSPOT_ACCESS_TOKEN=pat-na1-1234")
t = "CFPAT-" + r(B64URL, 43); v("contentful-pat", f"CONTENTFUL_MANAGEMENT_TOKEN={t}", t, "CONTENTFUL_MANAGEMENT_TOKEN=CFPAT-" + r(ALNUM, 20))
t = "sk." + b64url_json({"u": "fake", "a": r(DIG + LO, 25)}) + "." + r(B64URL, 22); v("mapbox-secret-token", f"MAPBOX_SECRET_TOKEN={t}", t, "MAPBOX_PUBLIC_TOKEN=pk." + b64url_json({"u": "fake", "a": r(DIG + LO, 25)}) + "." + r(B64URL, 22))
t = r(B64URL, 42); v("okta-api-token", f"Authorization: SSWS {t}", t, "Authorization: SSWS ${OKTA_API_TOKEN}")
t = r(HEX, 32); v("algolia-admin-key", f"ALGOLIA_ADMIN_KEY={t}", t, "ALGOLIA_APP_ID=" + r(HEX, 32))

# Tokens by structure
t = jwt({"sub": "fake-user", "name": "Fake User", "iat": 1767225600}); v("jwt", f"Authorization: Bearer {t}", t, "token = eyJhbGciOiJIUzI1NiJ9.e30")

# Private keys and connection strings
body = "\n".join(r(B64, 64) for _ in range(12)) + "\n"
v("private-key", f"-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----", body, "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----")
body = "\n".join(r(B64, 64) for _ in range(10)) + "\n=" + r(ALNUM, 4) + "\n"
v("pgp-private-key", f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{body}-----END PGP PRIVATE KEY BLOCK-----", body, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBF" + r(B64, 40) + "\n-----END PGP PUBLIC KEY BLOCK-----")
body = "\n".join(r(B64, 64) for _ in range(14)) + "\n"
v("putty-private-key", f"PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\nComment: fake-key\nPublic-Lines: 2\n{r(B64, 64)}\n{r(B64, 20)}\nPrivate-Lines: 14\n{body}Private-MAC: {r(HEX, 64)}", body, "PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\nComment: fake-key\nPublic-Lines: 2\n" + r(B64, 64))
pw = r(ALNUM, 18); v("database-url", f"DATABASE_URL=postgres://app:{pw}@db.internal:5432/app", pw, "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app")
pw = r(ALNUM, 16); v("jdbc-password", f"spring.datasource.url=jdbc:mysql://db.internal:3306/app?user=app&password={pw}", pw, "spring.datasource.url=jdbc:mysql://db.internal:3306/app?user=app")
pw = r(ALNUM, 16); v("sqlserver-connection-string", f'"ConnectionStrings": {{ "Db": "Server=tcp:fake.database.windows.net,1433;Initial Catalog=app;User ID=app;Password={pw};Encrypt=True;" }}', pw, '"Db": "Server=tcp:fake.database.windows.net,1433;Initial Catalog=app;Integrated Security=true;"')

# Forms found beside kingfisher on a real history (benches/benches/scan.rs, `repo`): each also a
# documented or long-deployed format of the rule's provider.
t = "xoxb-" + r(DIG, 12) + "-" + r(ALNUM, 24); v("slack-token", f"SLACK_BOT_TOKEN={t}", t, "SLACK_BOT_TOKEN=xoxb-" + r(DIG, 12) + "-" + r(ALNUM, 19)[:15])
t = "xoxs-" + r(DIG, 10) + "-" + r(DIG, 10) + "-" + r(DIG, 10) + "-" + r(HEX, 64); v("slack-token", f'"token": "{t}"', t, '"token": "xoxs-' + r(DIG, 6) + '"')
t = "xoxe.xoxb-1-" + r(ALNUM, 160); v("slack-config-token", f"SLACK_BOT_TOKEN={t}", t, "SLACK_BOT_TOKEN=xoxe.xoxb-1-" + r(ALNUM, 40))
t = "http://hooks.slack.com/services/T" + r(DIG + UP, 8) + "/B" + r(DIG + UP, 8) + "/" + r(ALNUM, 24)
v("slack-webhook", f"url = {t}", t, "url = http://hooks.slack.com/services/" + "a" * 44)
t = "https://hooks.slack.com/workflows/T" + r(DIG + UP, 10) + "/A" + r(DIG + UP, 10) + "/" + r(DIG, 18) + "/" + r(ALNUM, 24)
v("slack-workflow-webhook", f"SLACK_WORKFLOW_URL={t}", t, "SLACK_WORKFLOW_URL=https://hooks.slack.com/workflows/T0/A0/1/xxx")
t = "api_org_" + r(UP + LO, 34); v("huggingface-token", f"use_auth_token='{t}'", t, "use_auth_token='api_org_" + r(UP + LO, 20) + "'")
body = "".join(r(B64, 64) + "\\\\n" for _ in range(12))
# (The armor's text, escapes and all, as with a JSON string's single `\\n`.)
v("private-key", f'Secret: "-----BEGIN PRIVATE KEY-----\\\\n{body}-----END PRIVATE KEY-----",', "\\\\n" + body, 'Secret: "-----BEGIN PRIVATE KEY-----",')

t = "xoxe-" + r(DIG, 13) + "-" + r(DIG, 13) + "-" + r(DIG, 13) + "-" + r(HEX, 32)
v("slack-token", f'"url_private": "https://files.slack.com/files-pri/T0FAKE-F0FAKE/image.png?t={t}"', t, '"url_private": "https://files.slack.com/files-pri/T0FAKE-F0FAKE/image.png?t=xoxe-1"')
t = "xoxb-" + r(DIG, 12) + "-" + r(ALNUM, 23); v("slack-token", f'"bot_token": "{t}"', t, '"bot_token": "xoxb-' + r(DIG, 12) + "-" + r(ALNUM, 12) + '"')
t = r(HEX, 37); v("cloudflare-global-api-key", f'cloudflare: "{t}"', t, 'cloudflare_zone: "' + r(HEX, 37) + '"')
# An EC key in a C or shell string continued over lines (` \n\` ending each line).
lines = [r(B64, 64) for _ in range(3)] + [r(B64, 22) + "=="]
body = "".join(f"{l} \\n\\\n" for l in lines)
v("private-key", f"const char *key = \"-----BEGIN EC PRIVATE KEY----- \\n\\\n{body}-----END EC PRIVATE KEY-----\";", "\\n\\\n" + body, "const char *key = \"-----BEGIN EC PRIVATE KEY----- \\n\\\n...\";")
# RFC 1421 headers and the blank line after them (an encrypted traditional RSA key).
body = "\n".join(r(B64, 64) for _ in range(12)) + "\n"
head = f"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{r(HEX, 32).upper()}\n\n"
v("private-key", f"-----BEGIN RSA PRIVATE KEY-----\n{head}{body}-----END RSA PRIVATE KEY-----", head + body, "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n-----END RSA PUBLIC KEY-----")
# Sigstore's (cosign's) encrypted key: base64 of its JSON envelope (scrypt, nacl/secretbox).
body = "\n".join(r(B64, 64) for _ in range(10)) + "\n"
v("private-key", f"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{body}-----END ENCRYPTED SIGSTORE PRIVATE KEY-----", body, "-----BEGIN SIGSTORE PUBLIC KEY-----\n" + r(B64, 64) + "\n-----END SIGSTORE PUBLIC KEY-----")

print(json.dumps({"source": "tests/vectors/rules.py (seeded Python: random values marked FAKE/fake where the alphabet allows, checksums by zlib, macaroons built field by field; not token-scan)", "vectors": V}, indent=1))
