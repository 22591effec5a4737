"""Execute notebooks in place (as the committed pages are made) and check every figure they draw.

    .venv/bin/python tools/execute_pages.py nbs/analyses/*.ipynb nbs/tutorials/*.ipynb nbs/index.ipynb

Each notebook runs in its own Jupyter kernel (`jupyter nbconvert --execute --inplace`, the venv's bin first on
PATH). An IPython start-up file in a scratch IPYTHONDIR wraps matplotlib's `Figure.draw`, so every figure a page
shows is passed once to `edge_opt.reporting.figure_overlaps`: texts that overlap and legends that cover data
are listed per page, and the exit status is 1 when there is any.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOOK = '''
import json, os
import matplotlib.figure as _mf
_draw = _mf.Figure.draw
def _checked_draw(self, renderer):
    _draw(self, renderer)
    if getattr(self, "_edge_opt_checked", False): return
    self._edge_opt_checked = True
    from edge_opt.reporting import figure_overlaps
    title = next((t.get_text() for a in self.axes for t in (a.title,) if t.get_text()), "") or (self._suptitle.get_text() if self._suptitle else "")
    with open(os.environ["EDGE_OPT_FIGURE_LOG"], "a") as f:
        f.write(json.dumps(dict(page=os.environ.get("EDGE_OPT_FIGURE_PAGE"), figure=title, problems=figure_overlaps(self))) + "\\n")
_mf.Figure.draw = _checked_draw
'''


def main(paths: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PATH": f"{root / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as ipython_dir:
        startup = Path(ipython_dir) / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-figure-overlaps.py").write_text(HOOK)
        log = Path(ipython_dir) / "figures.jsonl"
        env.update(IPYTHONDIR=ipython_dir, EDGE_OPT_FIGURE_LOG=str(log))
        for path in paths:
            start = time.time()
            env["EDGE_OPT_FIGURE_PAGE"] = path
            res = subprocess.run(["jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace", "--ExecutePreprocessor.timeout=1800", path], env=env,
                                 capture_output=True, text=True)
            print(f"{path}: {'executed' if res.returncode == 0 else 'FAILED'} in {time.time() - start:.0f} s", flush=True)
            if res.returncode: print(res.stderr[-3000:], file=sys.stderr); return 1
        figures = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    bad = [f for f in figures if f["problems"]]
    for f in bad: print(f"{f['page']}: figure {f['figure']!r}: " + "; ".join(f["problems"]))
    print(f"{len(figures)} figures drawn, {len(bad)} with overlapping texts or a legend over data")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
