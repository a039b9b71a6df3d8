"""Run flamepy in a subprocess of its own.

flamepy reads its configuration (FLAME_CACHE_ENDPOINT, FLAME_CACHE_STORAGE)
once per process and keeps a per-process object cache, so a test that needs
a second, independent client, or flamepy pointed at another server or in
local-storage mode, calls `run_flamepy(...)`: it runs one function of this
module in a fresh interpreter with exactly the environment given, and
returns what the function returned (pickled through a file, so flamepy's
logging on stdout/stderr cannot get in the way).

The functions below are the "scripts"; they only use flamepy's public API.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import yaml

from tests.server import clean_env

REPO = Path(__file__).resolve().parent.parent


def run_flamepy(
    endpoint: str | None,
    home: Path,
    script: str,
    *args: Any,
    storage: Path | None = None,
    timeout: float = 60.0,
) -> Any:
    """`script(*args)` in a new process whose flamepy is configured only by
    FLAME_CACHE_ENDPOINT (and FLAME_CACHE_STORAGE when `storage` is given);
    with `endpoint` None, only by `home`'s ~/.flame/flame.yaml (`flame_yaml`)."""
    env = {} if endpoint is None else {"FLAME_CACHE_ENDPOINT": endpoint}
    if storage is not None:
        env["FLAME_CACHE_STORAGE"] = str(storage)
    return run_flamepy_with(env, home, script, *args, timeout=timeout)


def run_flamepy_with(env: dict[str, str], home: Path, script: str, *args: Any, timeout: float = 60.0) -> Any:
    """`script(*args)` in a new process with HOME=`home` (whose
    ~/.flame/flame.yaml, if any, flamepy reads) and only the FLAME_* variables
    in `env`."""
    home.mkdir(parents=True, exist_ok=True)
    request, result = home / f"{script}.in.pkl", home / f"{script}.out.pkl"
    request.write_bytes(cloudpickle.dumps(args))
    result.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.flamepy_scripts", script, str(request), str(result)],
        cwd=REPO,
        env=clean_env(HOME=str(home), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"flamepy subprocess {script}{args!r} failed ({proc.returncode}):\n{proc.stderr}")
    return cloudpickle.loads(result.read_bytes())


def flame_yaml(home: Path, cache_endpoint: str) -> Path:
    """A ~/.flame/flame.yaml as Flame's Helm chart writes it for clients
    (one context, its cache endpoint); flamepy reads it when no
    FLAME_CACHE_ENDPOINT is set."""
    path = home / ".flame" / "flame.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    context = {"name": "flame", "cluster": {"endpoint": "http://127.0.0.1:8080"}, "cache": {"endpoint": cache_endpoint}}
    path.write_text(yaml.safe_dump({"current-context": "flame", "contexts": [context]}))
    return path


# -- deserializers (importable, so they work in any process) ----------------


def add_all(base: Any, deltas: list[Any]) -> Any:
    """base + delta + delta ... (lists concatenate, numbers sum)."""
    for delta in deltas:
        base = base + delta
    return base


def base_and_deltas(base: Any, deltas: list[Any]) -> Any:
    return {"base": base, "deltas": list(deltas)}


# -- scripts ------------------------------------------------------------------


def put_objects(namespace: str, objects: list[Any]) -> list[Any]:
    from flamepy.core import cache

    return [cache.put_object(namespace, obj) for obj in objects]


def patch_object(ref: Any, deltas: list[Any]) -> list[Any]:
    """Apply each delta in turn; the refs returned, one per patch."""
    from flamepy.core import cache

    return [cache.patch_object(ref, delta) for delta in deltas]


def get_objects(refs: list[Any], with_deltas: bool) -> list[Any]:
    from flamepy.core import cache

    return [cache.get_object(ref, base_and_deltas if with_deltas else None) for ref in refs]


def put_get_missing(namespace: str, obj: Any) -> dict[str, Any]:
    """A put, a get of what was put (its version 0: fetched, not from
    flamepy's own cache) and a get of a key never put."""
    from flamepy.core import cache

    ref = cache.put_object(namespace, obj)
    got = cache.get_object(cache.ObjectRef(ref.endpoint, ref.key, 0))
    try:
        cache.get_object(cache.ObjectRef(ref.endpoint, f"{namespace}/never-put", 0))
        missing = None
    except KeyError as exc:
        missing = str(exc)
    return {"ref": ref, "got": got, "missing": missing}


def get_or_error(refs: list[Any]) -> list[Any]:
    """Each object, or ("error", exception type, message) where the get fails."""
    from flamepy.core import cache

    answers = []
    for ref in refs:
        try:
            answers.append(cache.get_object(ref))
        except Exception as exc:  # what flamepy raises for the server's NOT_FOUND
            answers.append(("error", type(exc).__name__, str(exc)))
    return answers


def update_object(ref: Any, new_obj: Any) -> Any:
    from flamepy.core import cache

    return cache.update_object(ref, new_obj)


def put_patch_update(namespace: str) -> dict[str, Any]:
    """A few objects with histories (and one deleted), for the restart test."""
    import pyarrow as pa
    from flamepy.core import cache

    patched = cache.put_object(namespace, {"step": 0})
    for step in (1, 2):
        patched = cache.patch_object(patched, {"step": step})
    updated = cache.put_object(namespace, ["old base"])
    updated = cache.update_object(updated, ["new base"])
    updated = cache.patch_object(updated, ["patch"])
    table = cache.put_object(namespace, pa.table({"n": [1, 2, 3], "s": ["a", "b", "c"]}))
    deleted = cache.patch_object(cache.put_object(namespace, "deleted"), "patch")
    cache.delete_objects(deleted.key)
    return {
        "refs": {"patched": patched, "updated": updated, "table": table},
        "deleted": deleted,
        "seen": {
            "patched": cache.get_object(patched, base_and_deltas),
            "updated": cache.get_object(updated, base_and_deltas),
            "table": cache.get_object(table),
        },
    }


def get_error(ref: Any) -> dict[str, Any]:
    """What flamepy's get_object raises for `ref` (None if it returns)."""
    from flamepy.core import cache

    try:
        cache.get_object(ref)
    except Exception as exc:  # noqa: BLE001 - the error is the answer
        return {"type": type(exc).__name__, "key_error": isinstance(exc, KeyError), "message": str(exc)}
    return {"type": None, "key_error": False, "message": ""}


def every_flow(namespace: str, upload: str) -> dict[str, Any]:
    """put, get, update, patch, upload, delete: what each answered (flamepy
    0.6.0's download_object fails on any server: it reads a FlightStreamChunk
    as a batch, so the caller reads the upload back itself)."""
    from flamepy.core import cache

    ref = cache.put_object(namespace, {"step": 0})
    seen = {"put": ref, "get": cache.get_object(ref)}
    ref = cache.update_object(ref, {"step": 1})
    ref = cache.patch_object(ref, {"step": 2})
    seen["update_patch"] = (ref, cache.get_object(ref, base_and_deltas))
    seen["upload"] = cache.upload_object(f"{namespace}/blob.bin", upload)
    cache.delete_objects(ref.key)
    try:
        cache.get_object(cache.ObjectRef(ref.endpoint, ref.key, 0))
        seen["deleted"] = False
    except KeyError:
        seen["deleted"] = True
    return seen


def error_of(script: str, *args: Any) -> dict[str, Any]:
    """What another script raised: its type and message (None if it returned)."""
    try:
        globals()[script](*args)
    except Exception as exc:  # noqa: BLE001 - the error is the answer
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": None, "message": ""}


def _main() -> None:
    script, request, result = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    args = cloudpickle.loads(request.read_bytes())
    value = globals()[script](*args)
    result.write_bytes(cloudpickle.dumps(value))


if __name__ == "__main__":
    _main()
