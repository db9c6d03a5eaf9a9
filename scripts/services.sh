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
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
    TOKENWARD_SERVICES_CLEANUP+=("${as[*]} $bin/pg_ctl -D $dir/data -m immediate stop >/dev/null 2>&1; rm -rf $dir")
    export TOKENWARD_PG_URL="host=127.0.0.1 port=$port user=tokenward dbname=postgres"
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}
