"""Runs and helpers for the Latent explorer, Clusters and Interpolation page tests.

Next to the shared fixture's trained 2-D VAE (runs_fixture.GOOD): an autoencoder + GMM
trained for one epoch (its mixture fitted by fit()), an untrained GAN and RealNVP saved as
checkpoints (the pages only need weights that decode), and a VAE whose checkpoint is
garbage. The fixtures that make and serve them (explore_root, explore_runs) are
conftest.py's."""
from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from genlab.config import from_dict, to_dict
from genlab.models import build_model, model_entry
from genlab.runs import store
from genlab.training.train import TrainConfig, train_run

AE_GMM, GAN, FLOW, CORRUPT = "ae-gmm-tiny", "gan-tiny", "realnvp-tiny", "vae-corrupt"


def _train_cfg(data_root: Path, **kw) -> TrainConfig:
    return TrainConfig(dataset="mnist", batch_size=100, log_every=1, n_samples=4,
                       data_root=str(data_root), device="cpu", **kw)


def save_untrained(root: Path, name: str, model: str, config: dict, data_root: Path) -> Path:
    """A run folder holding an untrained model's checkpoint, as fit() would write it."""
    run = store.new_run_dir(root, name)
    cfg = from_dict(model_entry(model)[1], config)
    store.write_config(run, model, cfg, _train_cfg(data_root, epochs=1))
    net = build_model(model, to_dict(cfg))
    store.save_checkpoint(run / store.CHECKPOINT, {"kind": model, "model": net.state_dict(),
                                                 "config": to_dict(cfg), "epoch": 1})
    return run


def make_explore_runs(root: Path, data_root: Path) -> Path:
    from genlab.models.ae_gmm import AEGMMConfig

    run = store.new_run_dir(root, AE_GMM)
    store.write_config(run, "ae-gmm", AEGMMConfig(latent_dim=2, hidden=(32,), n_components=4),
                      _train_cfg(data_root, epochs=1, limit=300))
    train_run(run)
    save_untrained(root, GAN, "gan", {"latent_dim": 8, "hidden": [32, 64]}, data_root)
    save_untrained(root, FLOW, "realnvp", {"scales": 1, "couplings": 1, "width": 8}, data_root)
    bad = save_untrained(root, CORRUPT, "vae", {"latent_dim": 2, "hidden": [16]}, data_root)
    (bad / store.CHECKPOINT).write_bytes(b"PK\x03\x04 not a zip archive")
    return root


def image_by_caption(at: AppTest, start: str) -> str:
    """The URL of the one image whose caption starts with ``start`` (a content hash: the
    same pixels give the same URL)."""
    found = [url for im in at.image for url, cap in zip(im.value, im.captions) if cap.startswith(start)]
    assert len(found) == 1, [c for im in at.image for c in im.captions]
    return found[0]


def decoded(v):
    """Plotly figure JSON with its typed arrays ({dtype, bdata[, shape]}: what plotly sends
    numpy arrays as) turned into numpy arrays, the rest as it is."""
    import base64

    import numpy as np

    if isinstance(v, dict):
        if "bdata" in v and "dtype" in v:
            a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
            return a.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else a
        return {k: decoded(x) for k, x in v.items()}
    return [decoded(x) for x in v] if isinstance(v, list) else v


def figures(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as the JSON the browser receives (typed arrays
    decoded: :func:`decoded`)."""
    return [decoded(json.loads(el.proto.spec)) for el in at.get("plotly_chart")]
