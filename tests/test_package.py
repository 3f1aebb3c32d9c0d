"""genlab as a package (pyproject.toml): the wheel built from a copy of the repository
holds genlab's modules and data files and nothing else (no checkpoints/, tests/, pages/,
benchmarks/), its metadata names the `genlab` command and the dependencies requirements.txt
pins, and, installed by pip into a folder of its own, `import genlab` and `genlab train |
eval | sample | resume | ship` work from outside the checkout. No network: the build uses
this environment's setuptools (requirements-dev.txt; --no-build-isolation), the install
takes no dependencies."""
from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import genlab

REPO = Path(__file__).resolve().parents[1]
BIG = 1_000_000  # bytes: the shipped weights are left out of the copy (their folders stay)


def _files() -> list[str]:
    """The repository's files as git sees them (tracked and new), else every file."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout
        return [f for f in out.splitlines() if (REPO / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()
                and not {".git", ".venv", "__pycache__"} & set(p.parts)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel` builds from a copy of the repository (so the build's own
    folders never land in the checkout)."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for f in _files():
        if (REPO / f).stat().st_size < BIG:
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, src / f)
    assert (src / "checkpoints").is_dir() and (src / "tests").is_dir() and (src / "pages").is_dir()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--no-index", "--wheel-dir", str(dist), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (whl,) = dist.glob("genlab-*.whl")
    return whl


def _dist_info(z: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in z.namelist() if re.fullmatch(rf"genlab-[^/]+\.dist-info/{name}", n)]
    return z.read(path).decode()


def test_the_wheel_holds_genlab_and_its_data_files_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    tops = {n.split("/")[0] for n in names}
    assert tops == {"genlab", f"genlab-{genlab.__version__}.dist-info"}, tops
    package = {f for f in _files() if f.startswith("genlab/")}
    modules = {f for f in package if f.endswith(".py")}
    assert len(modules) > 30 and "genlab/models/vae.py" in modules
    assert modules <= names, modules - names
    data = package - modules  # files genlab reads itself, should it hold any
    assert data <= names, data - names
    assert {n for n in names if n.startswith("genlab/")} == package  # no stray build files
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)


def _requirements() -> dict[str, str]:
    """requirements.txt as {name: the whole line}, comments dropped."""
    out = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            out[re.split(r"[=<>!~ ;\[]", line)[0].lower()] = line.replace(" ", "")
    return out


def _requires_dist(metadata: str) -> dict[str | None, set[str]]:
    """Requires-Dist lines by extra (None: the package's own dependencies)."""
    out: dict[str | None, set[str]] = {}
    for line in re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.M):
        req, _, marker = line.partition(";")
        extra = re.search(r"extra == \"([^\"]+)\"", marker)
        out.setdefault(extra.group(1) if extra else None, set()).add(req.replace(" ", ""))
    return out


def test_the_metadata_names_the_command_and_requirements_txt_pins(wheel):
    with zipfile.ZipFile(wheel) as z:
        metadata, entry_points = _dist_info(z, "METADATA"), _dist_info(z, "entry_points.txt")
    assert re.search(r"^Name: genlab$", metadata, re.M)
    assert re.search(rf"^Version: {re.escape(genlab.__version__)}$", metadata, re.M)
    assert re.search(r"^Requires-Python: >=3\.\d+$", metadata, re.M)
    assert re.search(r"^\[console_scripts\]\ngenlab = genlab\.cli:main$", entry_points, re.M)
    deps, req = _requires_dist(metadata), _requirements()
    listed = [d for group in deps.values() for d in group]
    assert sorted(listed) == sorted(req.values())  # every pin, the same, once
    assert req["torch"] in deps[None] and req["torchvision"] in deps[None]
    assert deps["app"] == {req["streamlit"]} and deps["test"] == {req["pytest"]}  # not genlab's own


def test_every_library_genlab_imports_is_a_dependency_or_one_of_theirs(wheel):
    """A third-party import in genlab/ whose distribution the wheel does not require (or one
    of its requirements: scikit-learn brings threadpoolctl) would fail after pip install."""
    with zipfile.ZipFile(wheel) as z:
        deps = _requires_dist(_dist_info(z, "METADATA"))[None]
    names = {re.split(r"[=<>!~]", d)[0].lower() for d in deps}
    brought = set(names)
    for n in names:
        for r in importlib.metadata.requires(n) or []:
            if "extra ==" not in r:
                brought.add(re.split(r"[=<>!~ ;\[(]", r)[0].lower())
    dist_of = importlib.metadata.packages_distributions()
    missing = set()
    for path in (REPO / "genlab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for mod in mods:
                top = mod.split(".")[0]
                if top in sys.stdlib_module_names or top == "genlab":
                    continue
                if not {d.lower() for d in dist_of.get(top, [top])} & brought:
                    missing.add(f"{top} ({path.relative_to(REPO)})")
    assert not missing, missing


def test_pip_installs_it_and_the_command_works_outside_the_checkout(wheel, data_root, tmp_path):
    """`pip install` of the wheel into a folder of its own (the dependencies are this
    environment's), then `import genlab` and each command from a folder outside the repo."""
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                        "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    exe = target / "bin" / "genlab"
    assert exe.exists()
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1", "GENLAB_DATA": str(data_root)}

    def run(*argv: str) -> str:
        p = subprocess.run([str(exe), *argv], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"genlab {' '.join(argv)}\n{p.stderr[-3000:]}"
        return p.stdout

    where = subprocess.run([sys.executable, "-c", "import genlab; print(genlab.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=120).stdout.strip()
    assert Path(where).is_relative_to(target), where  # the installed copy, not the checkout's
    run("train", "--model", "vae", "--latent-dim", "2", "--hidden", "16", "--epochs", "1",
        "--limit", "200", "--runs-dir", "runs", "--name", "v", "--device", "cpu", "--quiet")
    run("resume", "runs/v", "--epochs", "2", "--quiet")
    run("eval", "runs/v", "--limit", "50", "--fid-n", "0", "--exact-n", "0", "--device", "cpu", "--quiet")
    run("sample", "runs/v", "--n", "4", "--out", "grid.png", "--device", "cpu")
    run("ship", "runs/v", "shipped/v")
    assert (work / "runs" / "v" / "eval.json").exists() and (work / "grid.png").stat().st_size > 0
    assert (work / "shipped" / "v" / "checkpoint.pt").exists()
    assert '"epoch": 2' in (work / "runs" / "v" / "status.json").read_text()
