"The docs site's integrity: what nbdev's processors and Quarto need from the notebooks."
import ast
import json
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
NOTEBOOKS = sorted(p for p in NBS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
PAGES = [p for p in NOTEBOOKS if p.parent.name in ("analyses", "tutorials") or p.name == "index.ipynb"]


def cells(path, kind="code"):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == kind]


def source(cell):
    return "".join(cell["source"])


def test_quarto_config_is_linked_from_nbs():
    link = NBS / "_quarto.yml"
    assert link.is_symlink() and os.readlink(link) == "../_quarto.yml"
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert config["project"]["type"] == "website"
    assert "sidebar.yml" in config["metadata-files"]


def test_sidebar_lists_every_notebook_in_sections():
    sidebar = yaml.safe_load((NBS / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    listed, sections = [], []
    for entry in sidebar:
        if isinstance(entry, dict):
            sections.append(entry["section"]); listed += entry["contents"]
        else:
            listed.append(entry)
    assert sections == ["Tutorials", "Analyses", "API"]
    assert sorted(listed) == sorted(str(p.relative_to(NBS)) for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_mixes_imports_with_other_code(path):
    "nbdev's docs processor runs every import cell of a module page on its own: imports must stand alone."
    for cell in cells(path):
        src = source(cell)
        if src.startswith(("#| export", "#| hide")) or "nbdev_export()" in src:
            continue
        tree = ast.parse("\n".join(l for l in src.splitlines() if not l.startswith("#|")))
        nodes = list(ast.walk(tree))
        has_import = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes)
        has_code = any(isinstance(n, (ast.Expr, ast.Assign)) for n in nodes)
        assert not (has_import and has_code), f"{path.name}: split the imports out of\n{src}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_pages_are_committed_executed(path):
    code = [c for c in cells(path) if not source(c).startswith("#| hide")]
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert outputs, f"{path.name} has no saved outputs: execute it before committing"
    assert not [o for o in outputs if o["output_type"] == "error"]
    if path.parent.name == "analyses":
        assert any("image/png" in o.get("data", {}) for o in outputs), "an analysis page shows figures"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_hold_no_local_paths(path):
    for cell in cells(path):
        for out in cell.get("outputs", []):
            text = json.dumps({k: v for k, v in out.get("data", {}).items() if k != "image/png"}) + json.dumps(out.get("text", ""))
            for local in ("/tmp/", "/work/", "/root/", "/home/"):
                assert local not in text, f"{path.name}: output mentions {local}"
