#!/usr/bin/env bash
# Build time and crate count each remote feature adds to token-rotate, from a cold target
# directory (dependencies compiled as in the dev profile). Usage: scripts/feature-cost.sh
# Prints one line per feature set; quote the medians of a few runs, the machine is noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/tokenward-feature-cost.XXXXXX)
trap 'rm -rf "$dir"' EXIT
for features in "" "vault" "aws" "vault,aws"; do
    crates=$(cargo tree -q -p token-rotate -e normal --prefix none ${features:+--features "$features"} | sed 's/ (\*)//' | sort -u | wc -l)
    rm -rf "$dir/target"
    start=$(date +%s.%N)
    CARGO_TARGET_DIR="$dir/target" cargo build -q -p token-rotate ${features:+--features "$features"}
    end=$(date +%s.%N)
    printf 'token-rotate %-10s %4d crates  %6.1f s cold build\n' "${features:-(none)}" "$crates" "$(echo "$end - $start" | bc)"
done
