#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test and doctest, and the quickstart.
# Usage: scripts/test.sh            (what CI runs, through .ci/run)
#
# Tests that need real servers (PostgreSQL, OpenBao) get them from scripts/services.sh, which
# starts them on loopback ports for the length of this script and exports their addresses.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets --all-features -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "public surface: at most 30 reachable names at each crate root"
scripts/surface.sh --max 30

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --all-features --quiet

step "start real servers"
# shellcheck source=scripts/services.sh
source scripts/services.sh
ensure_git
ensure_chromium
ensure_moto
start_postgres
start_openbao
start_openbao_tls

step "cargo test --workspace --all-features (unit, integration, property and doc tests)"
cargo test --workspace --all-features

step "quickstart"
cargo run --quiet --example quickstart
