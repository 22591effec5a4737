"""Write README.md from the executed nbs/index.ipynb, the way `nbdev_readme` does where Quarto is installed.

Markdown cells are copied, code cells become fenced Python, and saved outputs follow them: text in
fences, Markdown as is, HTML tables as HTML and figures as PNG files under README_files/. Cells marked
`#| hide` are left out, and so is the code of `#| echo: false` cells. Run it after executing index.ipynb:  .venv/bin/python tools/readme.py
"""
import base64
import json
import re
import shutil
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb = json.loads((root / "nbs" / "index.ipynb").read_text())
figures = root / "README_files"
shutil.rmtree(figures, ignore_errors=True)

def text(x): return "".join(x) if isinstance(x, list) else x

parts, n_fig = [], 0
for cell in nb["cells"]:
    src = text(cell["source"]).strip()
    if cell["cell_type"] == "markdown":
        parts.append(src); continue
    if src.startswith("#| hide") or not src: continue
    code = "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip()
    if "#| echo: false" not in src and code: parts.append("```python\n" + code + "\n```")
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append("```\n" + text(out["text"]).rstrip() + "\n```")
            continue
        data = out.get("data", {})
        if "image/png" in data:
            n_fig += 1
            figures.mkdir(exist_ok=True)
            (figures / f"figure-{n_fig}.png").write_bytes(base64.b64decode(text(data["image/png"])))
            parts.append(f"![](README_files/figure-{n_fig}.png)")
        elif "text/markdown" in data:
            parts.append(text(data["text/markdown"]).strip())
        elif "text/html" in data:
            parts.append(re.sub(r"<style.*?</style>", "", text(data["text/html"]), flags=re.S).strip())
        elif "text/plain" in data:
            parts.append("```\n" + text(data["text/plain"]).rstrip() + "\n```")

header = "<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n"
(root / "README.md").write_text(header + "\n\n".join(parts) + "\n")
print(f"README.md written ({n_fig} figures)")
