"""README.md and docs/*.md: their tables of figures are what docs/generate.py makes from the
files that hold the figures, their links and images exist, their prose types no figures,
and the README's two quickstarts run as written."""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
GENERATOR = REPO / "docs" / "generate.py"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", GENERATOR)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


# -- generated tables -----------------------------------------------------------------------
def test_the_committed_tables_and_plots_are_what_the_generator_makes():
    r = subprocess.run([sys.executable, str(GENERATOR), "--check"], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"docs/generate.py --check:\n{r.stderr}{r.stdout}"


def test_a_hand_edited_figure_is_named_as_stale():
    gen = _generator()
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- generated: families -->\n(.*?)<!-- /generated -->", text, re.S)
    assert block, "README.md has no generated families table"
    figure = re.search(r"\d+\.\d+ nats", block.group(1)).group(0)
    edited = text.replace(figure, figure.replace(".", ".9", 1), 1)
    assert edited != text
    new, changed, errors = gen.regenerate(edited, "README.md")
    assert changed == ["families"] and not errors
    assert new == text  # regenerating puts the file's figure back


def test_an_unknown_block_name_is_an_error():
    gen = _generator()
    _, changed, errors = gen.regenerate("<!-- generated: no-such-table -->\n<!-- /generated -->\n",
                                        "x.md")
    assert not changed and len(errors) == 1 and "no-such-table" in errors[0]


def test_a_plot_drawn_from_other_figures_is_stale(tmp_path):
    """The digest in a PNG's metadata is what --check compares; a PNG without it (or with
    another) does not pass."""
    from PIL import Image, PngImagePlugin

    gen = _generator()
    name = next(iter(gen.PLOTS))
    assert gen.png_digest(gen.FIGURES / name) == gen.plot_digest(name)
    info = PngImagePlugin.PngInfo()
    info.add_text(gen.DIGEST_KEY, "0" * 16)
    Image.new("RGB", (4, 4)).save(tmp_path / name, pnginfo=info)
    assert gen.png_digest(tmp_path / name) != gen.plot_digest(name)


# -- links, images, prose -------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|(?:src|href)=\"([^\"]+)\"")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", s).replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def _outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_relative_link_and_image_exists(doc):
    broken = []
    for m in LINK.finditer(_outside_code(doc.read_text())):
        target = m.group(1) or m.group(2)
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target} (no {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {_rel(dest)})")
    assert not broken, f"{_rel(doc)}: broken links: {', '.join(broken)}"


def test_the_link_check_sees_a_missing_file(tmp_path):
    doc = tmp_path / "page.md"
    doc.write_text("See [there](missing.md) and ![a plot](figures/none.png).\n")
    targets = [m.group(1) for m in LINK.finditer(doc.read_text())]
    assert targets == ["missing.md", "figures/none.png"]
    assert not any((doc.parent / t).exists() for t in targets)


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_no_issue_or_report_numbers(doc):
    hits = re.findall(r"\b(?:issues? #?\d+|reports? 0\d\d)\b", doc.read_text(), flags=re.I)
    assert not hits, f"{_rel(doc)} cites {hits}: cite papers by author, title and year"


def _prose(text: str) -> str:
    """The text outside generated tables, code blocks and inline code."""
    text = re.sub(r"<!-- generated: [a-z0-9-]+ -->.*?<!-- /generated -->", "", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", "", _outside_code(text))


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_prose_types_no_decimal_figures(doc):
    """Figures live in generated tables; prose cites the table."""
    hits = re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", _prose(doc.read_text()))
    assert not hits, f"{_rel(doc)}: decimal figures typed into prose: {hits}"


def test_the_prose_check_sees_a_typed_figure():
    assert re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", _prose("The VAE reaches 87.86 nats.\n")) == ["87.86"]
    assert not _prose("<!-- generated: x -->\n| 87.86 |\n<!-- /generated -->\n").strip()


def test_the_readme_is_at_most_2000_words():
    words = len((REPO / "README.md").read_text().split())
    assert words <= 2000, f"README.md has {words} words"


# -- the README's quickstarts ---------------------------------------------------------------
def _block(heading: str, lang: str) -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(rf"## {re.escape(heading)}\n.*?```{lang}\n(.*?)```", text, re.S)
    assert m, f"README.md: no {lang} block under '## {heading}'"
    return m.group(1)


def test_the_python_quickstart_runs_as_written():
    code = _block("Quickstart: Python", "python")
    assert len(code.strip().splitlines()) == 5
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert re.search(r"tensor\(\[\s*-\d", r.stdout), r.stdout  # log p(x) values, nats


# what the test adds to the CLI quickstart's commands so they take seconds, not minutes
SMALL = {"train": ["--limit", "500"], "eval": ["--limit", "200", "--fid-n", "200"]}


def test_the_cli_quickstart_runs_as_written_on_fewer_images(data_root, tmp_path):
    lines = [ln.split("#")[0].strip() for ln in _block("Quickstart: command line", "bash").splitlines()]
    lines = [ln for ln in lines if ln]
    assert len(lines) == 5
    env = {**os.environ, "GENLAB_DATA": str(data_root), "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1"}
    for line in lines:
        argv = shlex.split(line)
        assert argv[:3] == ["python", "-m", "genlab"], line
        cmd = [sys.executable, *argv[1:]]
        if "--help" not in argv:
            cmd += SMALL.get(argv[3], [])
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
        assert r.returncode == 0, f"{line}\n{r.stderr[-2000:]}"
    run = tmp_path / "runs" / "my-vae"
    assert (run / "eval.json").exists() and (tmp_path / "my-vae.png").exists()
