"""Read files written by `torch.save` (legacy and zip serialization) without running anything they contain.

A `.pt` file is one or more pickles plus raw storage bytes. Unpickling runs whatever the pickle names, so a file from a
mirror could run any code. Here every pickle of the file goes through one `RestrictedUnpickler`:

- a global is resolved only if it is on a short allowlist: torch's tensor and parameter rebuilding (replaced by our
  own functions, which check their arguments and ignore hooks), the storage types (as inert dtype tags), a few plain
  containers, and the class paths the caller names (`stand_ins`), which become inert placeholders that only record
  their arguments and state. Anything else (`os.system`, `builtins.eval`, ...) is refused before it runs.
- BUILD (setting an object's state) only fills placeholders and ordered dicts created by this same load, never a class,
  a function or any other object, so a pickle cannot rebind an attribute of an allowed class for the process.
- storage bytes are read, never unpickled; their declared sizes are checked against the file before anything is
  allocated, and every tensor view is bounds-checked before `Tensor.set_` (which would grow the storage to fit).

The legacy format is five pickles in a row (magic number, protocol version, system information, the object, the
storage keys) followed by the storages' bytes (each an int64 element count then the data); the zip format is an
archive holding `data.pkl` and one file per storage under `data/`.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch


LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
LEGACY_PICKLES = (
    "the magic number",
    "the protocol version",
    "the system information",
    "the object",
    "the storage keys",
)


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks for something the restricted unpickler does not allow; nothing from it was run."""


class Recorded:
    """Stands in for a class of the file while unpickling: it records its arguments and state, and has no behaviour
    of its own."""

    def __new__(cls, *args, **kwargs):
        # Pickle builds objects with cls.__new__(cls, *args) (a namedtuple's fields, NEWOBJ) or cls(*args) (REDUCE).
        instance = super().__new__(cls)
        instance.args, instance.kwargs, instance.state = args, kwargs, {}
        return instance

    def __init__(self, *args, **kwargs):
        pass

    def record_state(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}


class StorageType:
    """What a storage class (`torch.FloatStorage`, ...) becomes while unpickling: a dtype tag, not callable."""

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"StorageType({self.name})"


class LoadedStorage:
    """The bytes of one storage of the file, as the tensors built over it see them."""

    def __init__(self, untyped: torch.UntypedStorage, dtype: torch.dtype):
        self.untyped, self.dtype = untyped, dtype


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


def _is_int_sequence(value, allow_empty: bool = True) -> bool:
    return (
        isinstance(value, (tuple, list, torch.Size))
        and (allow_empty or len(value) > 0)
        and all(type(item) is int and item >= 0 for item in value)
    )


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """torch's `_rebuild_tensor(_v2)`, checked: a view of a storage of this file, no hooks, no metadata."""
    if not isinstance(storage, LoadedStorage):
        raise UnsafePickleError(f"a tensor must view a storage of the file, not a {type(storage).__name__}")
    if type(storage_offset) is not int or storage_offset < 0 or not _is_int_sequence(size):
        raise UnsafePickleError(f"a tensor has an invalid offset {storage_offset!r} or size {size!r}")
    if not _is_int_sequence(stride) or len(stride) != len(size):
        raise UnsafePickleError(f"a tensor has an invalid stride {stride!r} for its size {tuple(size)}")
    if backward_hooks or metadata:
        raise UnsafePickleError("a tensor carries backward hooks or metadata; checkpoints of weights have neither")
    # Checked here: `Tensor.set_` would silently grow a resizable storage to fit.
    last = storage_offset + sum((length - 1) * step for length, step in zip(size, stride)) if all(size) else -1
    elements = storage.untyped.nbytes() // storage.dtype.itemsize
    if last >= elements:
        raise UnsafePickleError(
            f"a tensor of size {tuple(size)} at offset {storage_offset} lies outside its storage of {elements} elements"
        )
    tensor = torch.empty(0, dtype=storage.dtype).set_(storage.untyped, storage_offset, tuple(size), tuple(stride))
    tensor.requires_grad_(bool(requires_grad) and tensor.is_floating_point())
    return tensor


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, *unused):
    """torch's `_rebuild_parameter` and PyTorch 0.3's `Parameter(data, requires_grad)`, without hooks."""
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"a parameter must hold a tensor, not a {type(data).__name__}")
    if backward_hooks:
        raise UnsafePickleError("a parameter carries backward hooks; checkpoints of weights have none")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


class _NumpyArrayType:
    """What `numpy.ndarray` becomes while unpickling: a tag for `_numpy_array`, not a callable class."""


def _numpy_array(subtype, shape, typecode):
    """numpy's `_reconstruct`: an empty array that BUILD then fills (how a random generator's state is pickled)."""
    if not isinstance(subtype, _NumpyArrayType):
        raise UnsafePickleError(f"refusing to reconstruct an array of {subtype!r}")
    return np.ndarray(shape=(0,), dtype=np.uint8)


def _numpy_dtype(name, align=False, copy=False):
    """`numpy.dtype(name, align, copy)`, always a new object (BUILD must not alter numpy's shared dtypes)."""
    if not isinstance(name, str):
        raise UnsafePickleError(f"refusing a numpy dtype made from a {type(name).__name__}")
    return np.dtype(name, bool(align), True)


def _latin1_bytes(text, encoding="latin1"):
    """`_codecs.encode(text, "latin1")`: how protocol-2 pickles carry bytes."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError("refusing a codecs call other than encoding text as latin1")
    return text.encode("latin1")


# Globals allowed as they are (or as the checked equivalent given): they only rebuild data.
SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.nn.parameter", "Parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch.Size,
    **{
        (module, builtin.__name__): builtin
        for module in ("builtins", "__builtin__")
        for builtin in (set, frozenset, range)
    },
    ("__builtin__", "xrange"): range,  # how pickle protocol 2 names range in Python 2 files
    # The numpy random state in Accelerate's checkpoints (random_states_N.pkl).
    ("numpy._core.multiarray", "_reconstruct"): _numpy_array,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_array,
    ("numpy", "ndarray"): _NumpyArrayType(),
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that resolves only `SAFE_GLOBALS`, storage types and the caller's `stand_ins` (class paths that
    become recording placeholders), and applies BUILD only to objects it created. Built on the pure-Python
    unpickler because the C one does not let a subclass intercept BUILD."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, stand_ins=frozenset(), persistent_load=None):
        super().__init__(file, encoding="utf-8")
        self.stand_ins = frozenset(stand_ins)
        self.stand_in_classes = {}
        self.storage_loader = persistent_load

    def find_class(self, module: str, name: str):
        if (module, name) in self.stand_ins:
            if (module, name) not in self.stand_in_classes:
                self.stand_in_classes[module, name] = type(
                    name, (Recorded,), {"__module__": module, "__qualname__": name}
                )
            return self.stand_in_classes[module, name]
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[module, name]
        if module in ("torch", "torch.storage", "torch.cuda") and name in _STORAGE_DTYPES:
            return StorageType(name, _STORAGE_DTYPES[name])  # a GPU-saved storage is read onto the CPU
        raise UnsafePickleError(f"refusing to load the global {module}.{name}")

    def persistent_load(self, saved_id):
        if self.storage_loader is None:
            raise UnsafePickleError("a persistent id where none is expected")
        return self.storage_loader(saved_id)

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, Recorded):
            target.record_state(state)
        elif type(target) is np.ndarray or isinstance(target, np.dtype):
            # Arrays and dtypes made by `_numpy_array` / `_numpy_dtype` in this load; no Python objects inside.
            if type(target) is np.ndarray and not (
                isinstance(state, tuple)
                and len(state) == 5
                and isinstance(state[2], np.dtype)
                and not state[2].hasobject
            ):
                raise UnsafePickleError("refusing an array state that is not plain numbers")
            target.__setstate__(state)
        elif type(target) is collections.OrderedDict and isinstance(state, dict):
            # A state dict's `_metadata`: plain attributes of a dict built by this load.
            if not all(isinstance(key, str) and not key.startswith("__") for key in state):
                raise UnsafePickleError(f"refusing to set the attributes {list(state)} of an ordered dict")
            target.__dict__.update(state)
        else:
            raise UnsafePickleError(f"refusing to set the state of {target!r} (BUILD onto a {type(target).__name__})")

    dispatch[pickle.BUILD[0]] = load_build


class _StorageReader:
    """The persistent-id handler of one file: builds each storage once, its size checked against the file."""

    def __init__(self, available_bytes: int, read_bytes=None):
        self.available_bytes, self.read_bytes = available_bytes, read_bytes
        self.storages: dict[str, LoadedStorage] = {}
        self.views: dict[str, LoadedStorage] = {}

    def __call__(self, saved_id):
        if not isinstance(saved_id, tuple) or not saved_id:
            raise UnsafePickleError(f"unexpected persistent id {saved_id!r}")
        kind, data = saved_id[0], saved_id[1:]
        kind = kind.decode("ascii") if isinstance(kind, bytes) else kind
        if kind == "module":  # a module class with its source (old whole-model pickles); the source is ignored
            if not data or not (isinstance(data[0], type) and issubclass(data[0], Recorded)):
                raise UnsafePickleError(f"a module persistent id names {data[:1]!r}, which is not an allowed class")
            return data[0]
        if kind != "storage" or len(data) not in (4, 5):
            raise UnsafePickleError(f"unexpected persistent id {saved_id!r}")
        storage_type, key, _location, numel = data[:4]
        if not isinstance(storage_type, StorageType) or type(numel) is not int or numel < 0:
            raise UnsafePickleError(f"invalid storage description {saved_id!r}")
        key = str(key)
        if key not in self.storages:
            nbytes = numel * storage_type.dtype.itemsize
            if nbytes > self.available_bytes:
                raise UnsafePickleError(
                    f"a storage of {nbytes:,} bytes is declared but the file holds at most {self.available_bytes:,}"
                )
            self.available_bytes -= nbytes
            untyped = (
                torch.UntypedStorage(nbytes)
                if self.read_bytes is None
                else torch.frombuffer(bytearray(self.read_bytes(key, nbytes)), dtype=torch.uint8).untyped_storage()
            )
            self.storages[key] = LoadedStorage(untyped, storage_type.dtype)
        storage = self.storages[key]
        view = data[4] if len(data) == 5 else None
        if view is None:
            return storage
        # PyTorch 0.3 storage views: (view key, offset, size) in elements of the root storage.
        view_key, offset, size = view
        if not (type(offset) is int and type(size) is int):
            raise UnsafePickleError(f"invalid storage view {view!r}")
        start, stop = offset * storage.dtype.itemsize, (offset + size) * storage.dtype.itemsize
        if not (0 <= start <= stop <= storage.untyped.nbytes()):
            raise UnsafePickleError(f"a storage view {view!r} lies outside its storage")
        if str(view_key) not in self.views:
            self.views[str(view_key)] = LoadedStorage(storage.untyped[start:stop], storage.dtype)
        return self.views[str(view_key)]


def _restricted_load(file, stand_ins=frozenset(), persistent_load=None):
    return RestrictedUnpickler(file, stand_ins, persistent_load).load()


def _load_legacy(path: Path, stand_ins) -> object:
    size = path.stat().st_size
    with open(path, "rb") as file:
        position = 0
        try:
            magic = _restricted_load(file)
            if magic != LEGACY_MAGIC_NUMBER:
                raise UnsafePickleError("it does not start with torch's magic number: not a torch checkpoint")
            position = 1
            if _restricted_load(file) != LEGACY_PROTOCOL_VERSION:
                raise UnsafePickleError("its protocol version is not the one torch writes")
            position = 2
            system = _restricted_load(file)
            if not isinstance(system, dict) or not system.get("little_endian", False):
                raise UnsafePickleError("it was not written on a little-endian machine (or does not say so)")
            position = 3
            reader = _StorageReader(size)
            result = _restricted_load(file, stand_ins, reader)
            position = 4
            keys = _restricted_load(file)
            if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(reader.storages):
                raise UnsafePickleError("its storage keys do not match the storages its tensors use")
        except UnsafePickleError as error:
            raise UnsafePickleError(f"{path}: {error} (in {LEGACY_PICKLES[position]}). Nothing was run.") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as error:
            raise UnsafePickleError(
                f"{path} is not a readable torch checkpoint ({LEGACY_PICKLES[position]}: {error})."
            ) from None
        for key in map(str, keys):
            storage = reader.storages[key]
            header = file.read(8)
            count = struct.unpack("<q", header)[0] if len(header) == 8 else -1
            expected = storage.untyped.nbytes() // storage.dtype.itemsize
            if count != expected:
                raise UnsafePickleError(
                    f"{path}: storage {key} holds {count} elements where its tensors expect {expected} "
                    "(the file is truncated or corrupt)."
                )
            data = file.read(storage.untyped.nbytes())
            if len(data) != storage.untyped.nbytes():
                raise UnsafePickleError(f"{path} is truncated: storage {key} is incomplete.")
            torch.empty(0, dtype=torch.uint8).set_(storage.untyped).copy_(
                torch.frombuffer(bytearray(data), dtype=torch.uint8)
            )
    return result


def _load_zip(path: Path, stand_ins) -> object:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise UnsafePickleError(f"{path} is not a readable torch checkpoint ({error}).") from None
    with archive:
        pickles = [name for name in archive.namelist() if name.endswith("data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise UnsafePickleError(f"{path} is a zip archive but not a torch checkpoint (no single */data.pkl).")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise UnsafePickleError(f"{path} was written on a big-endian machine; only little-endian is supported.")

        def read_bytes(key: str, nbytes: int) -> bytes:
            try:
                info = archive.getinfo(f"{prefix}data/{key}")
            except KeyError:
                raise UnsafePickleError(f"storage {key} is missing from the archive") from None
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != nbytes:
                raise UnsafePickleError(
                    f"storage {key} holds {info.file_size:,} bytes where its tensors expect {nbytes:,}"
                )
            return archive.read(info)

        reader = _StorageReader(path.stat().st_size, read_bytes)
        try:
            return _restricted_load(io.BytesIO(archive.read(pickles[0])), stand_ins, reader)
        except UnsafePickleError as error:
            raise UnsafePickleError(f"{path}: {error} (in {pickles[0]}). Nothing was run.") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as error:
            raise UnsafePickleError(f"{path} is not a readable torch checkpoint ({pickles[0]}: {error}).") from None


def load_torch_file(path: str | os.PathLike, stand_ins=frozenset()) -> object:
    """The object saved in `path` by `torch.save` (zip or legacy serialization), with every pickle of the file read
    by `RestrictedUnpickler`. `stand_ins` are the `(module, name)` class paths that may appear, read as `Recorded`
    placeholders. Raises `UnsafePickleError` (naming the file, the pickle and the refused global) if the file asks
    for anything else; nothing from the file is run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    with open(path, "rb") as file:
        is_zip = file.read(4) == b"PK\x03\x04"  # how torch tells the formats apart
    return _load_zip(path, stand_ins) if is_zip else _load_legacy(path, stand_ins)


__all__ = ["LoadedStorage", "Recorded", "RestrictedUnpickler", "UnsafePickleError", "load_torch_file"]
