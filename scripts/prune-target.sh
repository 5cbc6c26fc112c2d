#!/usr/bin/env bash
# Keep the shared cargo target folder from filling the disk. Every clean clone builds the
# workspace crates again under new hashes, so test executables and incremental caches of
# earlier clones pile up (tens of GB after a day of CI runs; a full disk makes the linker
# die with SIGBUS). When less than HEIMDEX_MIN_FREE_GB (default 25) is free, this removes
# what cargo rebuilds or relinks on demand: incremental caches, release artifacts, and test
# and bench executables older than two hours. Libraries (.rlib/.rmeta) and build-script
# outputs stay, so the next build is still warm.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$HOME/.cache/heimdex-target}"
min_gb="${HEIMDEX_MIN_FREE_GB:-25}"
[ -d "$target" ] || exit 0
free_gb() { df -Pk "$target" | awk 'NR==2 {print int($4 / 1048576)}'; }
before=$(free_gb)
if [ "$before" -ge "$min_gb" ]; then
  echo "prune-target: ${before} GB free in $(dirname "$target"), nothing to do"
  exit 0
fi
rm -rf "$target/debug/incremental" "$target/release/incremental" "$target/release"
for d in "$target/debug/deps" "$target/debug/examples"; do
  [ -d "$d" ] || continue
  find "$d" -maxdepth 1 -type f -perm -u+x ! -name '*.so' ! -name '*.rlib' ! -name '*.rmeta' \
    ! -name '*.d' -mmin +120 -delete
done
echo "prune-target: ${before} GB free before, $(free_gb) GB after"
