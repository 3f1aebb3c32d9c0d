"""The floor of genlab's FID: real test images against real test images.

    GENLAB_DATA=../shared/datasets python benchmarks/fid_floor.py [--splits 1000] [--seed 0]

For each dataset with a shipped feature network, the test split's features once, then the
FID between its two halves: --splits random halves (seeded permutations) and the first
5,000 images against the last 5,000 (MNIST's test split puts different writers in its two
halves, so that pair is not a random split). The floor is given as quantiles of the random
halves (5 %, 50 %, 95 %) beside their range: with 20 halves the extremes moved from one
draw to the next (0.50-1.11 and 0.44-1.81 on MNIST), so the default is 1,000 halves (under
20 CPU seconds a dataset), and --seed draws another set to check that the quantiles hold.
A model's FID of 10,000 samples against the test split can be read against this: no model
scores below what the data scores against itself. Output: benchmarks/results/fid_floor.json
and a line per dataset.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from genlab.data import load_split  # noqa: E402
from genlab.evaluation.fid import FeatureNetError, features, fid_from_features  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUANTILES = (0.05, 0.5, 0.95)


def floor(dataset: str, splits: int, root: str | None, seed: int = 0) -> dict:
    t0 = time.process_time()
    f = features(load_split(dataset, "test", root, download=False), dataset)
    n = len(f) // 2
    g = torch.Generator().manual_seed(seed)
    random = []
    for _ in range(splits):
        perm = torch.randperm(len(f), generator=g)
        random.append(fid_from_features(f[perm[:n]], f[perm[n:2 * n]]))
    return {"dataset": dataset, "n_images": len(f), "half": n, "splits": splits, "seed": seed,
            "random_halves": random, "random_min": min(random),
            "random_median": statistics.median(random), "random_max": max(random),
            "quantiles": {f"{q:g}": torch.tensor(random, dtype=torch.float64).quantile(q).item()
                          for q in QUANTILES},
            "first_vs_second_half": fid_from_features(f[:n], f[n:2 * n]),
            "cpu_seconds": round(time.process_time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist,fashion-mnist")
    p.add_argument("--splits", type=int, default=1000, help="random halves per dataset [default: 1000]")
    p.add_argument("--seed", type=int, default=0, help="seed of the random halves [default: 0]")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(RESULTS / "fid_floor.json"))
    ns = p.parse_args(argv)
    if ns.splits < 2:
        p.error(f"--splits must be >= 2 (got {ns.splits})")
    rows = []
    for ds in ns.datasets.split(","):
        try:
            r = floor(ds, ns.splits, ns.data_root, ns.seed)
        except (FeatureNetError, OSError, RuntimeError) as e:
            print(f"{ds}: skipped ({e})", file=sys.stderr)
            continue
        rows.append(r)
        q = r["quantiles"]
        print(f"{ds}: random halves 5-95 % {q['0.05']:.2f}-{q['0.95']:.2f}, median {q['0.5']:.2f}, "
              f"range {r['random_min']:.2f}-{r['random_max']:.2f} ({ns.splits} splits of "
              f"{r['half']} against {r['half']}, seed {ns.seed}); first half against second "
              f"{r['first_vs_second_half']:.2f}; {r['cpu_seconds']} CPU s")
    out = {"command": "python benchmarks/fid_floor.py " + " ".join(argv or sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}
    Path(ns.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
