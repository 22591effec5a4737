"The docs site's integrity: what nbdev's processors and Quarto need from the notebooks."
import ast
import json
import os
import re
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


def test_no_table_cell_is_cut_short():
    "pandas cuts a cell's text at 50 characters with '...' unless told not to: no page shows a cut explanation."
    cut = []
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            for out in cell.get("outputs", []):
                html = "".join(out.get("data", {}).get("text/html", []))
                cut += [f"{path.name}: {m}" for m in re.findall(r"<td>[^<]{40,}\.\.\.</td>", html)]
    assert not cut, "\n".join(cut[:10])


def test_every_page_has_its_own_title_and_the_navbar_reaches_every_page():
    "Two pages with one title cannot be told apart in the sidebar or search; every tutorial and analysis is one click from the navbar."
    titles = {}
    for path in NOTEBOOKS:
        first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
        titles.setdefault("".join(first["source"]).splitlines()[0], []).append(path.name)
    assert not {t: ps for t, ps in titles.items() if len(ps) > 1}
    navbar = yaml.safe_load((NBS / "_quarto.yml").read_text())["website"]["navbar"]["left"]
    linked = {item["href"] for entry in navbar for item in entry.get("menu", [entry])}
    assert {str(p.relative_to(NBS)) for p in PAGES} <= linked, sorted({str(p.relative_to(NBS)) for p in PAGES} - linked)


def test_every_link_and_anchor_resolves():
    "Markdown links between pages point to a page and a heading or documented name on it; a backticked `Class.method` (which nbdev links to the method's anchor) is documented with `show_doc` on its page."
    from edge_opt._modidx import d
    html = lambda p: str(p.relative_to(NBS).with_name(re.sub(r"^\d+[a-z]?_", "", p.stem) + ".html"))
    pages = {html(p): p for p in NOTEBOOKS}
    slug = lambda h: re.sub(r"[^a-z0-9_\- ]", "", h.strip().lower()).replace(" ", "-")
    anchors, methods, shown, texts = {h: set() for h in pages}, {}, set(), []
    for mod, entries in d["syms"].items():
        for name, (url, _) in entries.items():
            page, _, anchor = url.partition("#")
            if name.count(".") == 2 and page in anchors: anchors[page].add(anchor)   # module.function, module.Class
            if name.count(".") == 3: methods[".".join(name.split(".")[2:])] = url     # module.Class.method
    for h, p in pages.items():
        for c in json.loads(p.read_text())["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] == "markdown":
                anchors[h] |= {slug(m) for m in re.findall(r"^#+ (.+)$", src, re.M)}
                texts.append((p, src))
            else: shown |= set(re.findall(r"show_doc\(([A-Za-z_]+\.[A-Za-z_]+)", src))
            texts += [(p, "".join(o.get("data", {}).get("text/markdown", []))) for o in c.get("outputs", [])]
    texts += [(p, p.read_text()) for p in (NBS.parent / "edge_opt").glob("*.py") if p.name != "_modidx.py"]   # docstrings render too
    bad = []
    for p, text in texts:
        here = p.relative_to(NBS).parent if p.suffix == ".ipynb" else Path("api")
        for target, anchor in re.findall(r"\]\(([^)\s:]+?\.html)(?:#([^)\s]+))?\)", text):
            full = os.path.normpath(here / target)
            if full not in pages: bad.append(f"{p.name}: {target} (no such page)")
            elif anchor and anchor not in anchors[full]: bad.append(f"{p.name}: {target}#{anchor} (no such anchor)")
        bad += [f"{p.name}: `{ref}` links to {methods[ref]}, which no show_doc renders"
                for ref in re.findall(r"`([A-Za-z_]+\.[a-z_]+)`", text) if ref in methods and ref not in shown]
    assert not bad, "\n".join(bad)
