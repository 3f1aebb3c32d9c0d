"""genlab.data: splits of the real datasets, preprocessing, and clear errors for
missing or damaged files (issue 2)."""
from __future__ import annotations

import os
import shutil
import socket
import stat
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from genlab import data as gdata
from genlab.data import DATASETS, DatasetError, load_split, prepare, preprocess


# -- real MNIST / Fashion-MNIST ------------------------------------------------------
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_split_sizes_and_dtype(data_root, name):
    sizes = {"train": 55_000, "val": 5_000, "test": 10_000}
    for split, n in sizes.items():
        d = load_split(name, split, data_root, download=False)
        assert d.x.dtype == torch.uint8 and d.x.shape == (n, 1, 28, 28), (split, d.x.shape)
        assert d.y.dtype == torch.int64 and d.y.shape == (n,)
        assert 0 <= int(d.y.min()) and int(d.y.max()) == 9
        assert d.x.is_contiguous()
    info = DATASETS[name]  # what the app's time estimates count an epoch as
    assert info.train_size() == sizes["train"] and info.train_size(1000) == 1000
    assert info.train_images == sizes["train"] + sizes["val"]


def test_val_is_a_fixed_partition_of_torchvision_train(data_root):
    import torchvision

    full = torchvision.datasets.MNIST(str(data_root), train=True, download=False)
    train = load_split("mnist", "train", data_root, download=False)
    val = load_split("mnist", "val", data_root, download=False)

    def rows(x, y):  # one hashable item per (image, label)
        return Counter(zip(map(bytes, x.reshape(len(x), -1).numpy()), y.tolist()))

    # train + val is exactly torchvision's training split, as a multiset: a partition
    assert rows(train.x, train.y) + rows(val.x, val.y) == rows(full.data, full.targets)
    # fixed: independent of the global RNG and of the call
    torch.manual_seed(12345)
    again = load_split("mnist", "val", data_root, download=False)
    assert torch.equal(val.x, again.x) and torch.equal(val.y, again.y)
    test = load_split("mnist", "test", data_root, download=False)
    tv_test = torchvision.datasets.MNIST(str(data_root), train=False, download=False)
    assert torch.equal(test.x[:, 0], tv_test.data)  # test split untouched, in order


def test_limit_keeps_the_first_images(data_root):
    full = load_split("mnist", "train", data_root, download=False)
    part = load_split("mnist", "train", data_root, download=False, limit=300)
    assert len(part) == 300 and torch.equal(part.x, full.x[:300]) and torch.equal(part.y, full.y[:300])


# -- preprocessing --------------------------------------------------------------------
def test_dynamic_binarisation_is_fresh_and_unbiased(mnist_small):
    x = mnist_small[0].x[:16]  # (16, 1, 28, 28) uint8
    a, b = preprocess(x, "dynamic"), preprocess(x, "dynamic")
    assert set(a.unique().tolist()) <= {0.0, 1.0} and a.shape == x.shape
    assert not torch.equal(a, b), "two calls gave the same draw"
    assert torch.all(a[x == 0] == 0) and torch.all(a[x == 255] == 1)
    g = torch.Generator().manual_seed(0)
    draws = preprocess(x.expand(4000, *x.shape), "dynamic", generator=g)  # (4000, 16, 1, 28, 28)
    mean = draws.mean(0)
    # Bernoulli(p): the mean of 4000 draws has sd <= 0.008; 0.045 is over 5 sd
    assert (mean - x.float() / 255).abs().max() < 0.045


def test_static_binarisation_is_fixed(mnist_small):
    d = mnist_small[0]
    s1 = prepare(d, "static")
    torch.manual_seed(99)
    s2 = prepare(d, "static")
    assert torch.equal(s1.x, s2.x)
    assert set(s1.x.unique().tolist()) <= {0, 255}
    xs = preprocess(s1.x, "static")
    assert set(xs.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(preprocess(s1.x, "static"), xs)  # same images every call
    # the fixed draw is still a Bernoulli(x/255) draw: means agree over the split
    assert abs(float(xs.mean()) - float(d.x.float().mean() / 255)) < 0.01
    assert torch.all(xs[d.x == 0] == 0) and torch.all(xs[d.x == 255] == 1)


def test_dequantisation_stays_below_one_and_inverts():
    x = torch.arange(256, dtype=torch.uint8).repeat(40_000)  # ~10M pixels, every level
    y = preprocess(x, "dequantize", generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) < 1.0
    assert torch.equal((y * 256).floor().to(torch.uint8), x)
    # within each level the noise is uniform: mean offset 1/2, variance 1/12
    u = y * 256 - x.float()
    assert abs(float(u.mean()) - 0.5) < 1e-3 and abs(float(u.var()) - 1 / 12) < 1e-3


def test_unknown_preprocessing_is_refused():
    with pytest.raises(ValueError, match="dequantize"):
        preprocess(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), "logit")


# -- missing or damaged files ---------------------------------------------------------
def _assert_one_line_naming(err: DatasetError, *words: str) -> None:
    msg = str(err)
    assert "\n" not in msg and "Traceback" not in msg and "urlopen" not in msg, msg
    for w in words:
        assert str(w) in msg, (w, msg)
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


HANG_S = 120  # a load that has not ended by then hangs (offline it fails in well under a second)


def _load_within(seconds: float, *args, **kwargs) -> BaseException | None:
    """load_split(*args, **kwargs) in a thread: what it raised (None if it returned); a
    test failure if it is still going after ``seconds``."""
    import threading

    out = []

    def work():
        try:
            load_split(*args, **kwargs)
            out.append(None)
        except BaseException as e:  # noqa: BLE001
            out.append(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"load_split{args} still going after {seconds:g} s: a hang"
    return out[0]


@pytest.mark.parametrize("download", [False, True])
def test_missing_dataset_offline_is_one_clear_error(tmp_path, download):
    err = _load_within(HANG_S, "mnist", "train", tmp_path, download=download)
    assert isinstance(err, DatasetError), repr(err)
    _assert_one_line_naming(err, "mnist is not in", tmp_path / "MNIST" / "raw",
                            *DATASETS["mnist"].files)


def test_stalled_download_times_out(tmp_path, monkeypatch):
    """A server that accepts the connection and never answers must not hang the load."""
    import torchvision

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # the kernel completes handshakes; nobody ever replies
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
        monkeypatch.setattr(gdata, "DOWNLOAD_TIMEOUT_S", 0.5)
        err = _load_within(HANG_S, "mnist", "test", tmp_path, download=True)  # without the
        # timeout it would wait on the silent server for ever
        assert isinstance(err, DatasetError), repr(err)
        assert socket.getdefaulttimeout() is None  # the timeout does not leak out
        _assert_one_line_naming(err, "mnist is not in", "the download failed (TimeoutError)")
    finally:
        server.close()


def test_damaged_mnist_file_is_reported(data_root, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data_root / "MNIST" / "raw", raw)
    victim = raw / "train-images-idx3-ubyte"
    os.chmod(victim, stat.S_IRUSR | stat.S_IWUSR)
    with open(victim, "r+b") as f:
        f.truncate(10_000)
    with pytest.raises(DatasetError) as ei:
        load_split("mnist", "train", tmp_path, download=False)
    _assert_one_line_naming(ei.value, "'mnist'", "damaged", raw)
    assert len(load_split("mnist", "test", tmp_path, download=False)) == 10_000  # other files fine


# -- SVHN through a synthetic .mat in torchvision's format --------------------------
def _write_svhn(root, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # (H, W, C, N) as in SVHN
    y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # labels 1..10, 10 = digit 0
    name = "train_32x32.mat" if seed == 0 else "test_32x32.mat"
    scipy.io.savemat(root / name, {"X": X, "y": y})
    return X, y[:, 0]


def test_svhn_synthetic_mat_loads(tmp_path, monkeypatch):
    X_tr, y_tr = _write_svhn(tmp_path, 30, seed=0)
    X_te, y_te = _write_svhn(tmp_path, 20, seed=1)
    # torchvision's own SVHN checks the md5 of the real files even with download=False
    import torchvision

    with pytest.raises(RuntimeError, match="corrupted"):
        torchvision.datasets.SVHN(str(tmp_path), split="test", download=False)

    test = load_split("svhn", "test", tmp_path, download=False)
    assert test.x.dtype == torch.uint8 and test.x.shape == (20, 3, 32, 32)
    assert test.y.tolist() == [int(v) % 10 for v in y_te]  # 10 -> 0, the rest unchanged
    n, c, h, w = 7, 2, 5, 11
    assert int(test.x[n, c, h, w]) == int(X_te[h, w, c, n])  # (H, W, C, N) -> (N, C, H, W)
    assert torch.equal(test.x, torch.from_numpy(X_te).permute(3, 2, 0, 1))

    # train/val: a fixed partition of the .mat (val_size shrunk to fit 30 images)
    monkeypatch.setitem(DATASETS, "svhn", replace(DATASETS["svhn"], val_size=10))
    train = load_split("svhn", "train", tmp_path, download=True)  # present: no download
    val = load_split("svhn", "val", tmp_path, download=False)
    assert train.x.shape == (20, 3, 32, 32) and val.x.shape == (10, 3, 32, 32)
    full = torch.from_numpy(X_tr).permute(3, 2, 0, 1)
    got = sorted(map(bytes, torch.cat([train.x, val.x]).reshape(30, -1).numpy()))
    assert got == sorted(map(bytes, full.reshape(30, -1).numpy()))
    assert sorted(torch.cat([train.y, val.y]).tolist()) == sorted(int(v) % 10 for v in y_tr)


def test_svhn_missing_and_damaged(tmp_path):
    with pytest.raises(DatasetError) as ei:
        load_split("svhn", "test", tmp_path, download=False)
    _assert_one_line_naming(ei.value, "svhn is not in", "train_32x32.mat", "test_32x32.mat")
    _write_svhn(tmp_path, 4, seed=0)
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 but cut short")
    with pytest.raises(DatasetError) as ei:
        load_split("svhn", "test", tmp_path, download=False)
    _assert_one_line_naming(ei.value, "'svhn'", "damaged")
