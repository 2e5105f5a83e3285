"""Read a PyTorch state dict (legacy, pre-1.6 `torch.save` format) into NumPy arrays, without PyTorch and safely.

A `.pth` file is a pickle, and unpickling runs whatever callables the file names: loading an untrusted one with
`pickle.load` or `torch.load` can execute arbitrary code. Here the unpickler resolves only the few globals a
tensor state dict needs (an OrderedDict, the tensor-rebuild function, the storage types) to inert stand-ins,
and refuses every other global with `UnsafeWeightsError` before anything is called. The sha256 of the file is
checked against the expected digest first, so a swapped file never reaches the unpickler at all.

Legacy layout: five pickles and raw bytes in a row: magic number, protocol version, system info, the state
dict (tensors refer to storages by persistent id), the list of storage keys; then for each key an int64
element count followed by the storage's little-endian data.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glassware.checksum import sha256_file
from glassware.errors import GlasswareError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage type -> NumPy dtype (little-endian), for the storage types a state dict of weights holds.
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": None,
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


class UnsafeWeightsError(GlasswareError):
    """The weights file is not what it should be: wrong digest, or a pickle that names a forbidden global."""


@dataclass(frozen=True)
class _StorageType:
    name: str


class _Storage:
    def __init__(self, dtype: str, numel: int):
        self.dtype, self.numel, self.data = np.dtype(dtype), numel, None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise UnsafeWeightsError("a tensor refers to a storage whose data is not in the file")
        count = int(np.prod(self.shape)) if self.shape else 1
        if count == 0:
            return np.zeros(self.shape, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
        if self.offset < 0 or last >= len(data) or any(s < 0 for s in self.stride):
            raise UnsafeWeightsError(f"a tensor of shape {self.shape} reaches outside its storage")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.shape,
                                               [s * data.itemsize for s in self.stride], writeable=False)
        return np.array(view)  # a copy: contiguous, writeable, owns its memory


def _rebuild_tensor(storage, offset, shape, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise UnsafeWeightsError("a tensor is built from something that is not a storage")
    return _TensorRef(storage, int(offset), tuple(int(n) for n in shape), tuple(int(s) for s in stride))


def _rebuild_parameter(tensor, requires_grad=False, hooks=None):
    return tensor


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name, dtype in STORAGE_DTYPES.items() if dtype},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED` globals; every other one is refused before it is looked up, let alone called."""

    def __init__(self, file, storages: dict[str, _Storage] | None = None):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(f"refusing to load: the pickle asks for {module}.{name}, which a tensor "
                                     "state dict never needs (a tampered or wrong file?)") from None

    def persistent_load(self, pid):
        if self.storages is None or not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafeWeightsError(f"unexpected persistent id in the pickle: {str(pid)[:80]}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise UnsafeWeightsError(f"malformed storage reference {str(pid)[:80]}")
        if key not in self.storages:
            self.storages[key] = _Storage(STORAGE_DTYPES[storage_type.name], numel)
        return self.storages[key]


def load_state_dict(path: str | Path, sha256: str | None) -> dict[str, np.ndarray]:
    """{name: array} from a legacy-format `.pth` state dict. `sha256`: the expected digest (hex), checked
    before anything is unpickled; None skips the check (a user's own file, named on the command line)."""
    path = Path(path)
    if not path.is_file():
        raise GlasswareError(f"weights file not found: {path}")
    if sha256 is not None and (actual := sha256_file(path)) != sha256.lower():
        raise UnsafeWeightsError(f"{path}: sha256 {actual[:16]}... is not the expected {sha256[:16]}...; "
                                 "refusing to load (reinstall the package that ships it)")
    raw = path.read_bytes()
    try:
        return _parse_legacy(io.BytesIO(raw), path)
    except UnsafeWeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, KeyError, AttributeError) as e:
        raise UnsafeWeightsError(f"{path}: not a readable legacy PyTorch state dict ({type(e).__name__}: {e})") from e


def _parse_legacy(f: io.BytesIO, path: Path) -> dict[str, np.ndarray]:
    if f.getbuffer()[:2] == b"PK":
        raise UnsafeWeightsError(f"{path}: a zip-format (PyTorch >= 1.6) file; only the legacy format is read")
    header = _RestrictedUnpickler(f)
    if header.load() != LEGACY_MAGIC:
        raise UnsafeWeightsError(f"{path}: not a legacy PyTorch file (bad magic number)")
    if header.load() != LEGACY_PROTOCOL:
        raise UnsafeWeightsError(f"{path}: unsupported PyTorch file protocol")
    header.load()  # system info: endianness and type sizes, little-endian on every platform that wrote these
    storages: dict[str, _Storage] = {}
    state = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f).load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise UnsafeWeightsError(f"{path}: not a state dict")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise UnsafeWeightsError(f"{path}: storage {key!r} listed but never used")
        (numel,) = struct.unpack("<q", f.read(8))
        nbytes = numel * storage.dtype.itemsize
        if numel != storage.numel or nbytes > len(f.getbuffer()) - f.tell():
            raise UnsafeWeightsError(f"{path}: storage {key!r} is truncated or its size disagrees")
        storage.data = np.frombuffer(f.read(nbytes), storage.dtype)
    out = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise UnsafeWeightsError(f"{path}: entry {str(name)[:60]!r} is not a tensor")
        out[name] = value.to_numpy()
    return out
