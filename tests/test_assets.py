"""Assets are verified on every load, the MNIST pickle is read safely, idx files load."""
from __future__ import annotations

import gzip
import io
import os
import pickle

import numpy as np
import pytest
import torch

from advex.data import assets
from advex.data.assets import AssetError, asset_path
from advex.data.mnist import MNIST_CLASSES, load_mnist, load_mnist_idx, read_idx


@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    """An empty ADVEX_HOME, so that nothing here touches the real data folder."""
    monkeypatch.setenv("ADVEX_HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def test_missing_asset_names_file_and_fix(fake_home):
    with pytest.raises(AssetError) as info:
        asset_path("mnist")
    message = str(info.value)
    assert "mnist.npz" in message and "missing" in message
    assert "python -m advex.data.assets fetch" in message


def test_corrupted_asset_names_both_hashes_and_fix(fake_home):
    (fake_home / "imagenet_class_names.json").write_text('["not", "the", "real", "list"]')
    with pytest.raises(AssetError) as info:
        asset_path("imagenet_classes")
    message = str(info.value)
    actual = assets.sha256_file(fake_home / "imagenet_class_names.json")
    assert "imagenet_class_names.json" in message and "corrupted" in message
    assert actual in message and assets.ASSETS["imagenet_classes"].sha256 in message
    assert "python -m advex.data.assets fetch" in message
    assert issubclass(AssetError, RuntimeError)


def test_verification_notices_a_changed_file(fake_home, monkeypatch):
    path = fake_home / "imagenet_class_names.json"
    path.write_bytes(b"good")
    good = assets.sha256_file(path)
    monkeypatch.setitem(assets.ASSETS, "imagenet_classes", assets.ASSETS["imagenet_classes"].__class__(
        **{**assets.ASSETS["imagenet_classes"].__dict__, "sha256": good}))
    assert asset_path("imagenet_classes") == path
    path.write_bytes(b"bad!!")  # new size -> new cache key -> hashed again
    with pytest.raises(AssetError, match="corrupted"):
        asset_path("imagenet_classes")


def test_unknown_asset_name():
    with pytest.raises(ValueError, match="name must be one of"):
        asset_path("cifar10")


def test_check_reports_missing(fake_home, capsys):
    assert assets.main(["check"]) == 1
    assert "missing" in capsys.readouterr().out


def test_fetch_skips_valid_assets(monkeypatch):
    """With the real data present, fetch downloads nothing (idempotent)."""
    for name in assets.ASSETS:
        asset_path(name)
    monkeypatch.setattr(assets, "_download_wheels", lambda *a, **k: pytest.fail("downloaded again"))
    paths = assets.fetch(quiet=True)
    assert set(paths) == set(assets.ASSETS)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps((np.zeros(3), _Evil(marker)), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        assets.numpy_only_loads(payload)
    assert not marker.exists()


def test_restricted_unpickler_reads_arrays():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    loaded = assets.numpy_only_loads(pickle.dumps(arrays, protocol=4))  # protocol 2 needs _codecs in Python 3
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, loaded))


def test_npz_bytes_reproducible_and_plain():
    arrays = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.arange(3, dtype=np.int64)}
    first = assets.npz_bytes(arrays)
    assert first == assets.npz_bytes(arrays)
    with np.load(io.BytesIO(first), allow_pickle=False) as loaded:
        assert np.array_equal(loaded["x"], arrays["x"]) and loaded["y"].dtype == np.int64


# ----------------------------------------------------------------------------- MNIST

@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_mnist_shapes_counts_range(split, n):
    x, y = load_mnist(split)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert y.shape == (n,) and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert torch.equal(torch.round(x * 255), x * 255)  # exactly uint8 / 255
    assert tuple(torch.bincount(y, minlength=10).tolist()) == assets.MNIST_COUNTS[split]
    assert MNIST_CLASSES == tuple("0123456789")


def test_mnist_bad_split():
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("val")


def _idx(magic: int, shape: tuple, data: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + data.astype(np.uint8).tobytes()


def _write(path, data: bytes, gz: bool) -> None:
    """Write ``data`` (gzipped if ``gz``) and close the file: an unclosed GzipFile may not have written
    its last block yet when the file is read back (Python 3.12 buffers writes)."""
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as handle:
        handle.write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if gz else ""
    _write(tmp_path / f"t10k-images-idx3-ubyte{suffix}", _idx(0x803, images.shape, images), gz)
    _write(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", _idx(0x801, labels.shape, labels), gz)
    x, y = load_mnist_idx(tmp_path, "test")
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(images).float().unsqueeze(1) / 255)
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()


def test_idx_errors(tmp_path):
    labels = np.zeros(2, dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(0x801, (2,), labels))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(0x801, (2, 28, 28), np.zeros((2, 28, 28))))
    with pytest.raises(ValueError, match="magic number 0x00000801"):
        load_mnist_idx(tmp_path, "train")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(0x803, (2, 28, 28), np.zeros((2, 28, 20))))
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "train-images-idx3-ubyte", "images")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(0x803, (2, 27, 27), np.zeros((2, 27, 27))))
    with pytest.raises(ValueError, match="expected 28×28"):
        load_mnist_idx(tmp_path, "train")
    with pytest.raises(ValueError, match="no t10k-images"):
        load_mnist_idx(tmp_path, "test")
    with pytest.raises(ValueError, match="folder must be"):
        load_mnist_idx(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="split must be"):
        load_mnist_idx(tmp_path, "validation")


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_closes_the_files_it_opens(tmp_path, monkeypatch, gz):
    from advex.data import mnist

    path = tmp_path / ("labels.gz" if gz else "labels")
    _write(path, _idx(0x801, (3,), np.array([1, 2, 3])), gz)
    (tmp_path / "bad").write_bytes(b"<html>")
    opened = []

    def tracking(opener):
        def open_and_track(*args, **kwargs):
            opened.append(opener(*args, **kwargs))
            return opened[-1]
        return open_and_track

    monkeypatch.setattr(mnist.gzip, "open", tracking(gzip.open))
    monkeypatch.setattr(mnist, "open", tracking(open), raising=False)  # shadows the builtin inside mnist only
    assert read_idx(path, "labels").tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="too short"):
        read_idx(tmp_path / "bad", "labels")
    assert len(opened) == 2 and all(handle.closed for handle in opened)
