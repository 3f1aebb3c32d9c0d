"""genlab: deep generative models on small image datasets, and honest numbers about them.

The package is in layers, lowest first; a module imports only from its own part (its
subpackage) and from the layers listed before its own (``LAYERS`` below;
tests/test_layers.py checks every import, those inside functions too, and that there is
no cycle):

1. the ground floor, at the top of the folder: ``data`` (datasets), ``device``,
   ``errors`` (one-line messages), ``config`` (the dataclass options), ``nn`` (network
   blocks), ``flows`` (bijections) and ``distributed`` (torchrun processes, which training and evaluation both run on);
2. ``models``: one file per family, the contract (``models.base``) and the registry;
3. ``runs``: what lives on disk: run folders (``runs.store``), their status, the jobs the
   app starts, and which runs each view can show (``runs.views``);
4. ``evaluation``: metrics, FID, exact likelihoods by quadrature (``posterior``), OOD,
   comparison, the latent explorer's codes, the browser decoder's export;
5. ``training``: the loop, optimisers and schedules, a run from start to checkpoint,
   its TensorBoard export, the expected time per epoch;
   ``figures``: chart options and the tables' formatting (besides training: neither of
   the two imports the other);
6. ``cli`` (``genlab train|resume|eval|sample|ship``), which may import everything, and
   ``__main__`` (``python -m genlab``) above it.

``lab`` (the 2-D lab) sits beside evaluation: it imports the ground floor and ``models``.
Two parts of one layer never import each other, except on the ground floor (``config``
reads ``data`` and ``device``, ``flows`` reads ``nn``, ``distributed`` reads ``data``).
"""
__version__ = "0.1.0"

LAYERS = (
    ("data", "device", "errors", "config", "nn", "flows", "distributed"),
    ("models",),
    ("runs",),
    ("evaluation", "lab"),
    ("training", "figures"),
    ("cli",),
    ("__main__",),
)
"""genlab's modules and subpackages, lowest layer first."""
