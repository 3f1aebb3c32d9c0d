"""FID with genlab's own feature networks: the Fréchet distance against closed forms,
and the shipped networks' behaviour on real MNIST / Fashion-MNIST test images."""
from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import scipy.linalg
import torch
import torchvision.transforms.functional as TF
from torch import nn

from genlab.data import dataset_present, load_split
from genlab.evaluation import fid as F

D64 = torch.float64


# -- the Fréchet distance against closed forms ---------------------------------------
def exact_samples(mu: torch.Tensor, cov: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n draws from N(mu, cov) (torch.distributions), then whitened and recoloured so
    their sample mean and unbiased covariance are exactly mu and cov."""
    torch.manual_seed(seed)
    eye = torch.eye(len(mu), dtype=D64)
    z = torch.distributions.MultivariateNormal(torch.zeros_like(mu), eye).sample((n,))  # (n, d)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T  # sample cov = I
    return mu + z @ torch.linalg.cholesky(cov).T  # (n, d)


def random_spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=D64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=D64)


def test_one_dimensional_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2
    g = torch.Generator().manual_seed(0)
    a = 2 + 3 * torch.randn(500, generator=g, dtype=D64)
    b = -1 + 0.5 * torch.randn(700, generator=g, dtype=D64)
    expected = float((a.mean() - b.mean()) ** 2 + (a.std() - b.std()) ** 2)
    assert F.fid_from_features(a[:, None], b[:, None]) == pytest.approx(expected, rel=1e-12)
    assert F.fid_from_features(a, b) == pytest.approx(expected, rel=1e-12)  # 1-D input


def test_two_gaussians_known_moments_2d():
    # for 2x2 PSD s1 s2: tr (s1 s2)^{1/2} = sqrt(tr(s1 s2) + 2 sqrt(det s1 det s2))
    mu1, mu2 = torch.tensor([1.0, -2.0], dtype=D64), torch.tensor([0.5, 0.5], dtype=D64)
    s1 = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=D64)
    s2 = torch.tensor([[0.5, -0.3], [-0.3, 1.5]], dtype=D64)
    cross = math.sqrt(float((s1 @ s2).trace()) + 2 * math.sqrt(float(s1.det() * s2.det())))
    expected = float((mu1 - mu2).square().sum() + s1.trace() + s2.trace()) - 2 * cross
    f1, f2 = exact_samples(mu1, s1, 400, seed=1), exact_samples(mu2, s2, 600, seed=2)
    assert F.fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-9)
    assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)


def test_multivariate_against_scipy_sqrtm_and_diagonal_form():
    d = 12
    mu1, mu2 = torch.randn(d, dtype=D64), torch.randn(d, dtype=D64)
    s1, s2 = random_spd(d, 3), random_spd(d, 4)
    ref = (np.sum((mu1 - mu2).numpy() ** 2) + np.trace(s1.numpy()) + np.trace(s2.numpy())
           - 2 * np.trace(scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real))
    assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)
    f1, f2 = exact_samples(mu1, s1, 300, seed=5), exact_samples(mu2, s2, 300, seed=6)
    assert F.fid_from_features(f1, f2) == pytest.approx(ref, rel=1e-8)
    # commuting (diagonal) covariances: sum_j (sqrt a_j - sqrt b_j)^2
    a, b = torch.rand(d, dtype=D64) + 0.1, torch.rand(d, dtype=D64) + 0.1
    diag = float((mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum())
    assert F.frechet_distance(mu1, a.diag(), mu2, b.diag()) == pytest.approx(diag, rel=1e-12)


def test_identity_translation_symmetry_and_singular_covariances():
    f = torch.randn(300, 16, dtype=D64) @ torch.randn(16, 16, dtype=D64)
    f[:, :4] = 0.0  # dead units: a singular covariance, as a ReLU layer gives
    _, s = F.gaussian_stats(f)
    assert F.fid_from_features(f, f) <= 1e-9 * float(s.trace())
    c = torch.arange(16, dtype=D64) / 10
    assert F.fid_from_features(f + c, f) == pytest.approx(float(c.square().sum()), rel=1e-6)
    g = torch.rand(200, 16, dtype=D64)
    assert F.fid_from_features(f, g) == pytest.approx(F.fid_from_features(g, f), rel=1e-9)


@pytest.mark.parametrize("n,d", [(2, 30), (5, 12), (12, 12), (40, 12)])
def test_distance_to_stats_of_few_samples_equals_the_full_form(n, d):
    """fid_to_stats takes the cross term from an N x N matrix when N <= F (a low-rank
    sample covariance): the same distance as the F x F form."""
    g = torch.Generator().manual_seed(n * d)
    f = torch.randn(n, d, generator=g, dtype=D64) * torch.rand(d, generator=g, dtype=D64)
    mu, s = F.gaussian_stats(exact_samples(torch.randn(d, generator=g, dtype=D64),
                                           random_spd(d, n), 300, seed=d))
    full = F.frechet_distance(*F.gaussian_stats(f), mu, s)
    assert F.fid_to_stats(f, mu, s) == pytest.approx(full, rel=1e-6)
    assert F.fid_to_stats(f.float(), mu, s) == pytest.approx(full, rel=1e-5)


# -- the shipped feature networks on real data ---------------------------------------
def _need(dataset: str, root) -> None:
    if not F.net_paths(dataset)[0].exists():
        pytest.fail(f"shipped feature network for {dataset} missing: run benchmarks/train_fid_nets.py")
    if not dataset_present(dataset, root):
        msg = f"{dataset} data not found under {root}"
        pytest.fail(msg) if os.environ.get("CI") else pytest.skip(msg)


@pytest.fixture(scope="module")
def mnist_test(data_root):
    """The MNIST test split and features of two disjoint random sets of 2,000 images."""
    _need("mnist", data_root)
    test = load_split("mnist", "test", data_root, download=False)
    torch.set_num_threads(2)
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    a, b = perm[:2000], perm[2000:4000]
    return test, a, b, F.features(test.x[a], "mnist"), F.features(test.x[b], "mnist")


@pytest.mark.parametrize("dataset,floor", [("mnist", 0.98), ("fashion-mnist", 0.88)])
def test_shipped_net_accuracy(data_root, dataset, floor):
    _need(dataset, data_root)
    info = F.net_info(dataset)
    net = F.feature_net(dataset)
    assert info["test_accuracy"] >= floor and info["n_test"] == 10000
    assert info["feature_dim"] == net.feature_dim == 128
    assert F.net_paths(dataset)[0].stat().st_size < 2e6
    test = load_split(dataset, "test", data_root, download=False, limit=2000)
    again = F.accuracy(net, test)  # the shipped (batch-norm fused) net on 2,000 test images
    assert abs(again - info["test_accuracy_first_2000"]) <= 1 / 2000  # same weights, same result
    # a 2,000-image subset estimates the full accuracy to about +-0.6% (1 s.e., Fashion-MNIST)
    assert abs(again - info["test_accuracy"]) <= 0.01


def test_fused_net_matches_training_net():
    net = F.FeatureNet()
    for m in net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        ref, out = net.eval()(x), net.fused()(x)
    assert torch.allclose(ref, out, atol=1e-5, rtol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.fused().modules())


def test_self_distance_and_real_floor(mnist_test):
    test, a, _, fa, fb = mnist_test
    _, s = F.gaussian_stats(fa)
    assert F.fid_from_features(fa, fa) < 1e-6 * float(s.trace())
    floor = F.fid_from_features(fa, fb)
    assert 0 < floor < 0.02 * float(s.trace())
    # uint8 and [0, 1] float inputs give the same features
    x = test.x[a[:100]]
    assert torch.allclose(F.features(x, "mnist"), fa[:100])
    assert torch.allclose(F.features(x.float() / 255, "mnist"), fa[:100])


def _corrupt(x: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    x = x.float() / 255  # (N, 1, 28, 28)
    if kind == "noise":
        g = torch.Generator().manual_seed(1)
        return (x + level * torch.randn(x.shape, generator=g)).clamp(0, 1)
    if kind == "blur":
        return TF.gaussian_blur(x, kernel_size=9, sigma=level)
    return torch.roll(x, shifts=int(level), dims=-1)  # "shift": translate right, wrapping


@pytest.mark.parametrize("kind,levels", [("noise", (0.1, 0.2, 0.4)), ("blur", (0.7, 1.2, 2.0)),
                                         ("shift", (1, 2, 4))])
def test_fid_grows_with_corruption(mnist_test, kind, levels):
    test, _, b, fa, fb = mnist_test
    xb = test.x[b[:1000]]  # corrupted copies of 1,000 images vs 2,000 clean others
    scores = [F.fid_from_features(fa, fb[:1000])]  # level 0
    scores += [F.fid_from_features(fa, F.features(_corrupt(xb, kind, lv), "mnist")) for lv in levels]
    assert all(s0 < s1 for s0, s1 in zip(scores, scores[1:])), scores
    assert scores[-1] > 5 * scores[0], scores


class Replay(nn.Module):
    """A 'model' that samples real images: its FID should sit near the real floor."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.register_buffer("x", x)
        self.dummy = nn.Parameter(torch.zeros(()))

    def sample(self, n: int) -> torch.Tensor:
        return self.x[torch.randint(len(self.x), (n,))].float() / 255


class RandomGenerator(nn.Module):
    """An untrained decoder sigmoid(W z + c): far from the data."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 784), nn.Sigmoid())

    def sample(self, n: int) -> torch.Tensor:
        return self.net(torch.randn(n, 16)).view(n, 1, 28, 28)


def test_fid_model(mnist_test):
    test, a, b, fa, fb = mnist_test
    real = type(test)(test.x[a[:1000]], test.y[a[:1000]], "mnist", "test")
    state = torch.get_rng_state()
    good = F.fid_model(Replay(test.x[b]), real, n=1000, batch_size=300)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is untouched
    bad = F.fid_model(RandomGenerator(), real, n=1000)
    assert 0 < good < 0.05 * bad
    gen = RandomGenerator()
    assert torch.equal(F.sample_features(gen, 50, "mnist", seed=3),
                       F.sample_features(gen, 50, "mnist", seed=3))  # seeded
    assert F.reference_stats(real, "mnist") is F.reference_stats(real, "mnist")  # cached
    with pytest.raises(ValueError, match="dataset"):
        F.fid_model(Replay(test.x[b]), real.x, n=10)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(F.FeatureNetError, match="train_fid_nets"):
        F.load_feature_net(tmp_path / "mnist.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(F.FeatureNetError, match="corrupt"):
        F.load_feature_net(bad)
    buf = io.BytesIO()
    torch.save({"model": {}, "config": {"feature_dim": 128}}, buf)
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # truncated
    with pytest.raises(F.FeatureNetError, match="corrupt"):
        F.load_feature_net(bad)
    torch.save({"model": {}, "config": {"feature_dim": 128}}, bad)  # missing weights
    with pytest.raises(F.FeatureNetError, match="corrupt"):
        F.load_feature_net(bad)
    torch.save({"model": RandomGenerator(), "config": {}}, bad)  # pickled code: refused
    with pytest.raises(F.FeatureNetError, match="corrupt"):
        F.load_feature_net(bad)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        F.as_unit_images(torch.full((1, 1, 28, 28), 2.0))


# -- Inception-v3 features (random weights here: the real ones cannot be downloaded) ----------
INCEPTION_TINY = ["--model", "vae", "--latent-dim", "4", "--hidden", "16", "--limit", "200",
                  "--batch-size", "50", "--n-samples", "4", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    """A torch home whose hub cache holds a randomly initialised torchvision Inception-v3
    state dict under the real weights' file name (what torchvision's download leaves)."""
    from torchvision.models import Inception3

    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(0)
    net = Inception3(aux_logits=True, transform_input=False, init_weights=False)
    path = home / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    return home, path


@pytest.fixture
def torch_home(monkeypatch, tmp_path):
    """Point torch's hub cache at a folder of the test's (empty unless filled), and forget
    any Inception loaded before and after."""
    def use(home):
        monkeypatch.setenv("TORCH_HOME", str(home))
        F.inception_net.cache_clear()
    use(tmp_path / "empty_torch_home")
    yield use
    F.inception_net.cache_clear()


def _no_downloads(monkeypatch):
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_inception_preprocessing_is_pytorch_fids_and_what_torchvisions_weights_see():
    from torchvision.models import Inception3

    g = torch.Generator().manual_seed(0)
    grey = torch.rand(3, 1, 28, 28, generator=g)
    out = F.InceptionFeatures.preprocess(grey)
    # pytorch-fid's InceptionV3: resize_input then normalize_input, on the image repeated to RGB
    ref = 2 * torch.nn.functional.interpolate(grey.repeat(1, 3, 1, 1), size=(299, 299),
                                              mode="bilinear", align_corners=False) - 1
    assert out.shape == (3, 3, 299, 299) and torch.equal(out, ref)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    const = F.InceptionFeatures.preprocess(torch.full((1, 1, 28, 28), 0.25))
    assert torch.allclose(const, torch.full_like(const, -0.5))
    rgb = torch.rand(2, 3, 32, 32, generator=g)
    rgb[:, 1] = 0  # the channels keep their order
    assert torch.all(F.InceptionFeatures.preprocess(rgb)[:, 1] == -1)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        F.InceptionFeatures.preprocess(torch.rand(1, 2, 28, 28))
    # torchvision's weights are used with transform_input=True on ImageNet-normalised pixels,
    # which that transform maps to exactly 2u - 1: the range fed here without it
    u = torch.rand(2, 3, 8, 8, generator=g)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    net = Inception3(aux_logits=False, transform_input=True, init_weights=False)
    seen = net._transform_input((u - mean[:, None, None]) / std[:, None, None])
    assert torch.allclose(seen, 2 * u - 1, atol=1e-6)


def test_inception_features_are_torchvisions_pool3(random_inception, torch_home):
    """Against torchvision's own full model with the same (random) weights: our features
    are its average-pool output (pool3, 2048-d), before dropout and the classifier."""
    from torchvision.models import inception_v3

    home, path = random_inception
    torch_home(home)
    assert F.inception_weights_path() == path  # torch.hub.get_dir()/checkpoints/<torchvision's name>
    net = F.inception_net()
    assert net is F.inception_net() and isinstance(net, F.InceptionFeatures)
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ours = F.features(x, net)  # (1, 2048), float64
    ref_net = inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    ref_net.load_state_dict(torch.load(path, weights_only=True))
    pooled = []
    ref_net.avgpool.register_forward_hook(lambda m, i, o: pooled.append(o.flatten(1)))
    with torch.no_grad():
        logits = ref_net(2 * torch.nn.functional.interpolate(
            x.repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear", align_corners=False) - 1)
    assert ours.shape == (1, 2048) and ours.dtype == D64 and logits.shape == (1, 1000)
    assert torch.allclose(ours.float(), pooled[0], rtol=1e-4, atol=1e-6 * float(pooled[0].abs().max()))


def test_eval_with_inception_features_records_them_and_the_app_labels_them(
        random_inception, torch_home, data_root, tmp_path, capsys, monkeypatch):
    from genlab.cli import main
    from genlab.figures import tables
    from genlab.runs import store
    from genlab.runs.status import RunSummary, summarize

    torch_home(random_inception[0])
    _no_downloads(monkeypatch)
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--data-root", str(data_root), "--epochs", "1",
                 *INCEPTION_TINY]) == 0
    assert main(["eval", str(run), "--limit", "100", "--fid-n", "100", "--quiet"]) == 0
    genlab_ev = store.read_json(run / store.EVAL)
    assert genlab_ev["fid_features"] == "genlab-mnist" and "fid_note" not in genlab_ev
    capsys.readouterr()
    code = main(["eval", str(run), "--fid-features", "inception", "--limit", "2", "--fid-n", "2",
                 "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    ev = store.read_json(run / store.EVAL)
    assert ev["fid_features"] == F.INCEPTION_ID == "inception-v3-torchvision"
    assert "torchvision" in ev["fid_note"] and "approximately" in ev["fid_note"]
    assert ev["fid_n"] == 2 and math.isfinite(ev["fid"]) and ev["fid"] >= 0
    assert "inception" in ev["command"]
    # the app tells the two apart; an eval.json from before the field is genlab's
    assert "(genlab features, not Inception)" in tables.eval_line(genlab_ev)
    assert "(genlab features, not Inception)" in tables.eval_line({"fid": 3.0, "fid_n": 10})
    assert "(Inception-v3, torchvision weights" in tables.eval_line(ev)
    assert [r["features"] for r in tables.fid_rows([summarize(run)])] == [tables.FID_NOTE_INCEPTION]
    gan = RunSummary(run, "g", model="gan", eval={"d_loss": 1.3, "fid": 12.25, "fid_n": 500})
    assert tables.headline(gan) == "FID 12.2"
    gan.eval["fid_features"] = F.INCEPTION_ID
    assert tables.headline(gan) == "Inception FID 12.2"
    assert [r["features"] for r in tables.fid_rows([gan])] == [tables.FID_NOTE_INCEPTION]


def test_missing_or_corrupt_inception_weights_one_line_and_no_download(torch_home, tmp_path,
                                                                      capsys, monkeypatch):
    from genlab.cli import main

    _no_downloads(monkeypatch)
    want = tmp_path / "empty_torch_home" / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    assert F.inception_weights_path() == want
    with pytest.raises(F.InceptionWeightsMissing) as e:
        F.inception_net()
    assert isinstance(e.value, OSError) and isinstance(e.value, F.FeatureNetError)
    # eval says it before it loads anything (here the run folder is not even a run)
    code = main(["eval", str(tmp_path), "--fid-features", "inception"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(want) in err and "inception_v3(weights='IMAGENET1K_V1')" in err
    assert main(["eval", str(tmp_path), "--fid-features", "inception", "--fid-n", "0"]) == 1
    assert "not a genlab run" in capsys.readouterr().err  # no FID asked for: no weights needed
    want.parent.mkdir(parents=True)
    want.write_bytes(b"half a download")
    code = main(["eval", str(tmp_path), "--fid-features", "inception"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "not a torchvision Inception-v3 state dict" in err
    with pytest.raises(ValueError, match="unknown FID features"):
        F.check_features("inceptoin")
    with pytest.raises(SystemExit):  # argparse's choices: usage error
        main(["eval", str(tmp_path), "--fid-features", "inceptoin"])
