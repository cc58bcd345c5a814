"""The restricted reader of torch files, attacked as a crafted checkpoint from a mirror would: a pickle that runs code
in every pickle position of both serializations, BUILD onto allowed globals, lying sizes and offsets."""

import collections
import io
import os
import pickle
import pickletools
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import RunsCode

from darts_hub import unpickling
from darts_hub.convert import convert_checkpoint
from darts_hub.unpickling import UnsafePickleError, load_torch_file


def touch_payload(marker: Path) -> bytes:
    return pickle.dumps(RunsCode(os.system, f"touch {marker}"), protocol=2)


def legacy_pickles(path: Path) -> tuple[list[bytes], bytes]:
    """The five pickles of a legacy torch file and the storage bytes after them, split without unpickling."""
    data = path.read_bytes()
    stream = io.BytesIO(data)
    pickles = []
    for _ in range(5):
        start = stream.tell()
        for _ in pickletools.genops(stream):  # walks the opcodes to STOP; runs nothing
            pass
        pickles.append(data[start : stream.tell()])
    return pickles, data[stream.tell() :]


def small_state() -> dict:
    return collections.OrderedDict(weight=torch.arange(6, dtype=torch.float32).view(2, 3), bias=torch.ones(2))


@pytest.fixture
def legacy_checkpoint(tmp_path) -> Path:
    path = tmp_path / "legacy.pt"
    torch.save(small_state(), path, _use_new_zipfile_serialization=False)
    return path


def test_both_serializations_read_exactly_what_torch_wrote(tmp_path):
    state = small_state()
    state["view"] = state["weight"][1]  # shares the storage
    state["transposed"] = torch.randn(3, 4).t()
    state["half"] = torch.randn(5).half()
    state["steps"] = torch.tensor(7)
    state["parameter"] = torch.nn.Parameter(torch.randn(2))
    state._metadata = {"": {"version": 1}}
    for legacy in (True, False):
        path = tmp_path / f"state{legacy}.pt"
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
        loaded = load_torch_file(path)
        assert list(loaded) == list(state) and loaded._metadata == state._metadata
        for key, tensor in state.items():
            assert torch.equal(loaded[key], tensor) and loaded[key].dtype == tensor.dtype, key
            assert loaded[key].stride() == tensor.stride(), key
        assert loaded["view"].untyped_storage().data_ptr() == loaded["weight"].untyped_storage().data_ptr()
        assert isinstance(loaded["parameter"], torch.nn.Parameter)


def crafted_files(folder: Path, legacy_checkpoint: Path, marker: Path) -> dict[str, Path]:
    """One file per pickle position that runs `touch marker` when unpickled by an unrestricted reader."""
    pickles, storages = legacy_pickles(legacy_checkpoint)
    files = {}
    for position, name in enumerate(unpickling.LEGACY_PICKLES):
        crafted = list(pickles)
        crafted[position] = touch_payload(marker)
        files[f"legacy, {name}"] = folder / f"legacy{position}.pt"
        files[f"legacy, {name}"].write_bytes(b"".join(crafted) + storages)
    # The object pickle with the code inside a real state dict, in both serializations.
    inside = {**small_state(), "evil": RunsCode(os.system, f"touch {marker}")}
    for legacy in (True, False):
        files[f"{'legacy' if legacy else 'zip'}, inside the state dict"] = folder / f"inside{legacy}.pt"
        torch.save(inside, folder / f"inside{legacy}.pt", _use_new_zipfile_serialization=not legacy)
    # The zip's data.pkl replaced whole.
    zipped = folder / "zip.pt"
    torch.save(small_state(), zipped)
    with zipfile.ZipFile(zipped) as source, zipfile.ZipFile(folder / "zip_crafted.pt", "w") as target:
        for info in source.infolist():
            data = touch_payload(marker) if info.filename.endswith("data.pkl") else source.read(info)
            target.writestr(info, data)
    files["zip, data.pkl"] = folder / "zip_crafted.pt"
    return files


def test_every_pickle_position_of_both_formats_is_refused_before_it_runs(tmp_path, legacy_checkpoint):
    marker = tmp_path / "ran"
    files = crafted_files(tmp_path, legacy_checkpoint, marker)
    assert len(files) == 8
    for where, path in files.items():
        with pytest.raises(UnsafePickleError) as error:
            load_torch_file(path)
        message = str(error.value)
        assert str(path) in message and "posix.system" in message and "Nothing was run" in message, where
        assert not marker.exists(), where
    # The negative control: an unrestricted reader does run them (so the files really are what they claim).
    with open(files["legacy, the protocol version"], "rb") as file:
        pickle.load(file)
        assert not marker.exists()
        pickle.load(file)
    assert marker.exists()


@pytest.mark.parametrize("kind", ["cifar10", "imagenet", "ptb"])
def test_the_converter_refuses_crafted_files_of_every_kind_and_writes_nothing(tmp_path, legacy_checkpoint, kind):
    marker = tmp_path / "ran"
    for where, path in crafted_files(tmp_path, legacy_checkpoint, marker).items():
        output_dir = tmp_path / f"out-{path.stem}"
        with pytest.raises((UnsafePickleError, ValueError), match="posix.system") as error:
            convert_checkpoint(path, kind, output_dir)
        assert str(path) in str(error.value), where
        assert not output_dir.exists() and not marker.exists(), where


def test_the_converter_script_exits_nonzero_naming_file_and_global_before_creating_a_repository(
    tmp_path, legacy_checkpoint, run_script, monkeypatch, capsys
):
    import darts_hub.hub

    created = []
    monkeypatch.setattr(darts_hub.hub, "create_repo", lambda *args, **kwargs: created.append(args))
    marker = tmp_path / "ran"
    path = crafted_files(tmp_path, legacy_checkpoint, marker)["legacy, the system information"]
    with pytest.raises(SystemExit) as exit_:
        run_script(
            "convert_original_checkpoint",
            *("--checkpoint", path, "--kind", "ptb", "--output_dir", tmp_path / "out"),
            *("--push_to_hub", "--hub_model_id", "someone/darts"),
        )
    assert exit_.value.code == 1
    error = capsys.readouterr().err
    assert str(path) in error and "posix.system" in error and "the system information" in error
    assert not created and not (tmp_path / "out").exists() and not marker.exists()


def build_onto(target_global: bytes, state: bytes) -> bytes:
    """A protocol-2 pickle that pushes a global and BUILDs `state` onto it (setattr through the slot-state form)."""
    return b"\x80\x02c" + target_global + b"\nN" + state + b"\x86b."


def test_build_cannot_set_attributes_of_allowed_globals(tmp_path):
    defaults = unpickling._rebuild_tensor.__defaults__
    torch_defaults = torch._utils._rebuild_tensor_v2.__defaults__
    slot_state = b"}X\x0c\x00\x00\x00__defaults__K\x01\x85s"  # {'__defaults__': (1,)}
    for target in (b"torch._utils\n_rebuild_tensor_v2", b"collections\nOrderedDict", b"torch\nSize"):
        path = tmp_path / "build.pt"
        pickles, storages = legacy_pickles(_legacy(tmp_path))
        pickles[3] = build_onto(target, slot_state)
        path.write_bytes(b"".join(pickles) + storages)
        with pytest.raises(UnsafePickleError, match="refusing to set the state of"):
            load_torch_file(path)
    assert unpickling._rebuild_tensor.__defaults__ == defaults
    assert torch._utils._rebuild_tensor_v2.__defaults__ == torch_defaults
    # Nor of a placeholder class (only of its instances).
    pickles[3] = build_onto(b"model\nRNNModel", b"}")
    path.write_bytes(b"".join(pickles) + storages)
    with pytest.raises(UnsafePickleError, match="refusing to set the state of"):
        load_torch_file(path, stand_ins={("model", "RNNModel")})


def _legacy(folder: Path) -> Path:
    path = folder / "plain.pt"
    torch.save(small_state(), path, _use_new_zipfile_serialization=False)
    return path


def test_lying_sizes_and_offsets_are_refused_without_allocating(tmp_path, legacy_checkpoint):
    # A storage declared far larger than the file.
    huge = tmp_path / "huge.pt"
    torch.save(torch.zeros(4), huge, _use_new_zipfile_serialization=False)
    pickles, storages = legacy_pickles(huge)
    pickles[3] = pickles[3].replace(pickle.dumps(4, protocol=2)[2:-1], b"J\x00\x00\x00\x40")  # numel 2**30
    huge.write_bytes(b"".join(pickles) + storages)
    with pytest.raises(UnsafePickleError, match="the file holds at most"):
        load_torch_file(huge)
    # A tensor viewing past the end of its storage.
    outside = tmp_path / "outside.pt"
    torch.save(torch.zeros(4), outside, _use_new_zipfile_serialization=False)
    pickles, storages = legacy_pickles(outside)
    pickles[3] = pickles[3].replace(b"K\x04\x85", b"K\x09\x85", 1)  # size (4,) -> (9,)
    outside.write_bytes(b"".join(pickles) + storages)
    with pytest.raises(UnsafePickleError, match="outside its storage"):
        load_torch_file(outside)
    # Truncated storage bytes.
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(legacy_checkpoint.read_bytes()[:-3])
    with pytest.raises(UnsafePickleError, match="truncated"):
        load_torch_file(truncated)
    # Not a torch file at all.
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(UnsafePickleError, match="not a readable torch checkpoint"):
        load_torch_file(tmp_path / "text.pt")
