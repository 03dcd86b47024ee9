#!/usr/bin/env bash
# Decrypt throughput on this machine: RSA chat-key unwraps/s and messages/s of the `decrypt`
# transform (one core and all cores), next to OpenSSL's own RSA-2048 private-key rate.
#
#   benches/decrypt.sh            # dev profile (dependencies, i.e. aws-lc, are built at opt-level 2)
#   PROFILE=release benches/decrypt.sh
#
# RSA dominates: each chat costs one RSA-2048 private-key operation, each message only an
# HMAC-SHA1 and a few AES blocks. `openssl speed rsa2048` runs one core; compare its
# "sign/s" (the private-key operation; newer OpenSSL also prints "decrypt/s") with our
# per-core RSA unwraps/s.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-dev}"

echo "=== pipe decrypt (cargo bench --profile $profile)"
cargo bench --quiet --profile "$profile" -p pipe-plugin-decrypt --bench throughput

echo
echo "=== openssl speed -seconds 3 rsa2048 (one core)"
if command -v openssl >/dev/null; then
  openssl version
  openssl speed -seconds 3 rsa2048 2>/dev/null | grep -E "^ *(sign|rsa)" || true
else
  echo "openssl not installed"
fi
