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
                anchors[h] |= {(re.search(r"\{#([\w-]+)\}", m) or [None, None])[1] or slug(m) for m in re.findall(r"^#+ (.+)$", src, re.M)}
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


def test_nbdevs_docs_processor_renders_every_notebook(tmp_path):
    "What `nbdev_docs` runs before Quarto (`nbdev_proc_nbs`): each notebook's exports and `show_doc` cells executed in page order. A signature that names a type defined further down the page fails here, and on the site."
    from nbdev.processors import FilterDefaults
    from nbdev.serve_drv import exec_nb
    for path in NOTEBOOKS:
        exec_nb(path, tmp_path / path.name, FilterDefaults)


LATENCY = re.compile(r"(?<![\w.–-])\d[\d,]*(?:\.\d+)?\s?(?:µs|ms)\b(?!\s*[–-]\s*\d)")   # a latency figure, not the end of a range
SPREAD = re.compile(r"\d\s?(?:µs|ms)?\s?[–-]\s?\d|±")                                   # a range or a ± beside it
NOT_MEASURED = re.compile(r"(?:≤|<|>|limit\w*|under|over|within|at most|budget)\s*[\w`:=]*\s*$")   # a limit or threshold, not a measurement


def prose_latencies_without_spread(text):
    "Latency figures in `text` with no range or ± before the next figure (and within 80 characters)."
    found, bad = list(LATENCY.finditer(text)), []
    for i, m in enumerate(found):
        if NOT_MEASURED.search(text[max(0, m.start() - 25):m.start()]): continue
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        if not SPREAD.search(text[m.end():min(end, m.end() + 80)]): bad.append(text[max(0, m.start() - 60):m.end() + 30].replace("\n", " "))
    return bad


def test_the_spread_check_catches_a_bare_latency():
    assert prose_latencies_without_spread("runs one image in 380 µs on PyTorch eager.")
    assert not prose_latencies_without_spread("runs one image in 380 µs (350–420) on PyTorch eager; 2.1 ms (1.9–2.4) a batch.")
    assert not prose_latencies_without_spread("a latency limit ≤ 0.5 ms; 24 µs ± 2")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_latency_in_prose_has_its_spread(path):
    "A median latency alone can flip between runs: every one a reader sees in prose (Markdown cells, computed Markdown, printed lines) has its spread beside it."
    bad = []
    for c in json.loads(path.read_text())["cells"]:
        texts = ["".join(c["source"])] if c["cell_type"] == "markdown" else []
        for o in c.get("outputs", []):
            texts.append("".join(o.get("data", {}).get("text/markdown", [])))
            if o.get("output_type") == "stream" and o.get("name") == "stdout": texts.append("".join(o.get("text", [])))
        bad += [b for t in texts for b in prose_latencies_without_spread(t)]
    assert not bad, "\n".join(bad)


def test_every_citation_of_the_design_document_links_to_its_page():
    "The design document is cited across the pages; each citation in prose links to the page that lists its claims and checks them."
    bare = []
    for path in [p for p in NOTEBOOKS if p.name != "design_document.ipynb"]:   # the page itself
        prose = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"][1:]   # the title cell is the page's description
        bare += [f"{path.name}: ...{m.group(0)}" for c in prose for m in re.finditer(r".{0,30}(?<!\[)design document(?!\]\().{0,10}", source(c))]
    assert not bare, "\n".join(bare)
    assert (NBS / "analyses" / "design_document.ipynb").exists()


def test_figure_text_is_at_least_9_pt_and_figures_fit_the_page():
    "Legends, titles and ticks at 9 pt or more, and figures at most 8.5 inches wide (850 px: the page's width, so nothing is shrunk)."
    code = [(p.name, source(c)) for p in NOTEBOOKS for c in cells(p)] + [(p.name, p.read_text()) for p in (NBS.parent / "edge_opt").glob("*.py")]
    small = [f"{name}: {m}" for name, s in code for m in re.findall(r"\b(?:title_)?fontsize=(?:[0-8](?:\.\d+)?)\b", s)]
    wide = [f"{name}: {m}" for name, s in code for m in re.findall(r"figsize=\((\d+(?:\.\d+)?),", s) if float(m) > 8.5]
    assert not small and not wide, small + wide


CLAIM_SENTENCE = re.compile(r"(FP16 1\.5–2|INT8 2–4)× faster, on ([^:<\n]+): [\d.]+× at batch \d+ \(rounds allow [\d.]+–[\d.]+\): "
                            r"(met|not met|exceeded|inconclusive)")


def output_text(output):
    "The text of a cell output: its stream text and every text-like representation."
    parts = [output.get("text", "")] + [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join("".join(p) if isinstance(p, list) else p for p in parts)


def claim_verdicts(text):
    "Every design-document speed verdict a text states: {(claim, runtime): {verdicts}}."
    found = {}
    for claim, runtime, verdict in CLAIM_SENTENCE.findall(text):
        found.setdefault((claim, runtime.strip()), set()).add(verdict)
    return found


def test_the_claim_check_catches_two_verdicts():
    two = ("INT8 2–4× faster, on PyTorch eager: 2.72× at batch 128 (rounds allow 1.99–3.97): inconclusive. "
           "INT8 2–4× faster, on PyTorch eager: 2.72× at batch 128 (rounds allow 2.10–3.20): met.")
    assert claim_verdicts(two) == {("INT8 2–4", "PyTorch eager"): {"inconclusive", "met"}}


def test_every_page_gives_a_speed_claim_one_verdict():
    "The pages quote `reporting.speed_claims`: each claim and runtime has one verdict across every page, and each page that judges the claims states them."
    seen, pages = {}, {}
    for path in PAGES:
        text = "\n".join(output_text(o) for c in cells(path) for o in c.get("outputs", []))
        for key, verdicts in claim_verdicts(text).items():
            seen.setdefault(key, set()).update(verdicts); pages.setdefault(path.stem, set()).add(key)
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}
    judged = {k for k in seen}
    assert {"design_document", "precision_tradeoffs", "runtimes"} <= set(pages), sorted(pages)
    for page in ("design_document", "precision_tradeoffs", "runtimes"):
        assert pages[page] == judged, (page, judged - pages[page])


def signature_comments(src):
    "The comments nbdev shows inside a signature block: those on a def's header lines and on a class's annotated fields."
    import io, tokenize
    body = "\n".join("" if l.startswith("#|") else l for l in src.split("\n"))
    tree, lines = ast.parse(body), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines.update(range(node.lineno, max(node.lineno, node.body[0].lineno - 1) + 1))
        if isinstance(node, ast.ClassDef):
            lines.update(n for st in node.body if isinstance(st, ast.AnnAssign) for n in range(st.lineno, st.end_lineno + 1))
    return [t.string for t in tokenize.generate_tokens(io.StringIO(body).readline) if t.type == tokenize.COMMENT and t.start[0] in lines]


def test_the_signature_check_catches_a_link():
    assert signature_comments("def f(x:int, # see `g`\n      ):\n    'doc'\n    return x  # `fine`") == ["# see `g`"]


def test_no_markdown_in_signature_blocks():
    "nbdev renders a signature and its comments in a code block and turns a backticked name into a Markdown link there, which shows as raw text."
    bad = [(p.name, c) for p in NOTEBOOKS for cell in cells(p) if re.match(r"#\|\s*export", source(cell))
           for c in signature_comments(source(cell)) if "`" in c or "](" in c]
    assert bad == []


def test_navbar_and_sidebar_list_pages_in_one_order():
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    navbar = [item["href"] for menu in config["website"]["navbar"]["left"] if "menu" in menu for item in menu["menu"]]
    sidebar = [p for entry in yaml.safe_load((NBS / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
               if isinstance(entry, dict) for p in entry["contents"]]
    assert [p for p in sidebar if p in navbar] == navbar
