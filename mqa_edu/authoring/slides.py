"""Lecture slides that work without a network: every notebook as a reveal.js deck whose scripts, styles and fonts are
local files.

    python -m mqa_edu.authoring.slides notebooks/01_attention_in_numpy.ipynb --out slides/      # one deck
    python -m mqa_edu.authoring.slides --all --out slides/ --execute                   # every lecture, with outputs

nbconvert's deck template loads reveal.js, jQuery, require.js, Font Awesome, MathJax, the widget renderer and
mermaid from public CDNs. Here each comes from the npm registry at build time instead, at a pinned version whose
tarball is checked against the SHA-512 hash written in this file (:data:`INTEGRITY`), and is unpacked next to the decks
(``<out>/_assets``). mermaid is replaced by a one-line stub inlined as a data: URL (a browser refuses to import a
module from a file:// page; no notebook of the course draws a mermaid diagram), and the reveal.js themes' web-font
imports (Google Fonts) are removed, so the text falls back to local fonts. A stylesheet wraps long code lines instead
of cutting them at the slide's edge, and ``fit.js`` splits every slide taller than the stage into sub-slides (a
cell that is itself too tall into its parts; a part still too tall is scaled down). tests/test_browser.py opens the
decks in Chromium with the network blocked and checks every slide against the stage on all four sides.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "https://registry.npmjs.org"
# name -> (npm package, version, files or folders of the package to keep)
ASSETS = {
    "reveal.js": ("reveal.js", "4.6.1", ("dist", "plugin/notes")),
    "jquery": ("jquery", "3.7.1", ("dist/jquery.min.js",)),
    "requirejs": ("requirejs", "2.3.7", ("require.js",)),
    "font-awesome": ("font-awesome", "4.7.0", ("css", "fonts")),
    "html-manager": ("@jupyter-widgets/html-manager", "1.0.13", ("dist",)),
    "mathjax": ("mathjax", "2.7.9", ("MathJax.js", "config", "jax/input/TeX", "jax/output/CommonHTML", "jax/element",
                                     "extensions", "fonts/HTML-CSS/TeX/woff", "localization/en")),
}
# name -> the tarball's SHA-512, as the npm registry published it (``dist.integrity``) when the version was pinned.
# Written here, not fetched with the tarball: a tarball that changes (a compromised mirror, a re-published version)
# is refused. A new version needs its hash here too (``npm view <package>@<version> dist.integrity``).
INTEGRITY = {
    "reveal.js": "sha512-1CW0auaXNPmwmvQ7TwpszwVxMi2Xr5cTS3J3EBC/HHgbPF32Dn7aiu/LKWDOGjMbaDwKQiGmfqcoGQ74HUHCMw==",
    "jquery": "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
    "requirejs": "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
    "font-awesome":
        "sha512-U6kGnykA/6bFmg1M/oT9EkFeIYv7JlX3bozwQJWiiLz6L0w3F5vBVPxHlwyX/vtNq1ckcpRKOB9f2Qal/VtFpg==",
    "html-manager":
        "sha512-NxJezzmgD+4aqYyEODuTtrNC6L7mA9JYPo5FOO0pWSkrLXgsadl342fdcCN5f0ZuI/OdzmRvz3QKxgk+vr0/7A==",
    "mathjax": "sha512-NOGEDTIM9+MrsqnjPEjVGNx4q0GQxqm61yQwSK+/5S59i26wId5IC5gNu9/bu8+CCVl5p9G2IHcAl/wJa+5+BQ==",
}
WRAP_CSS = """/* long code lines wrap instead of running off the slide */
.reveal pre, .reveal pre code, .reveal .jp-InputArea-editor pre, .reveal .jp-OutputArea-output pre {
  white-space: pre-wrap; word-break: break-word; overflow-x: hidden; }
/* reveal.js gives <pre> the full width plus padding, which ran past the code cell's clipped edge */
.reveal pre { box-sizing: border-box; max-width: 100%; }
/* wide tables (notebook 09's results) shrink and wrap their cells instead of scrolling sideways off the slide */
.reveal .jp-RenderedHTMLCommon table { max-width: 100%; font-size: 0.7em; table-layout: auto; }
.reveal .jp-RenderedHTMLCommon td, .reveal .jp-RenderedHTMLCommon th { white-space: normal; padding: 0.2em 0.4em; }
.reveal .jp-Cell { max-width: 100%; }
/* the line that heads a slide fit.js split off a long one */
.reveal .mqa-continued { font-size: 0.5em; color: #888; margin: 0 0 0.3em 0; text-align: left; }
"""
HIDE_INPUT = "hide-input"  # the tag of a plotting cell whose deck slide shows the figure, not the code
FIT_JS = Path(__file__).resolve().parent / "fit.js"  # splits slides taller than the stage (read it for how)
MERMAID_STUB = "data:text/javascript,export default {initialize() {}};"  # the course draws no mermaid diagrams
WEB_FONT = re.compile(r"@import url\((['\"]?)https?://[^)]*\1\);?\n?")


def tarball_url(package: str, version: str) -> str:
    """Where the npm registry keeps a version's tarball (``@scope/name`` -> ``@scope/name/-/name-<version>.tgz``)."""
    return f"{REGISTRY}/{package}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"


def check_integrity(name: str, data: bytes) -> None:
    """Refuse a tarball whose hash is not the one pinned in :data:`INTEGRITY`."""
    algo, expected = INTEGRITY[name].split("-", 1)
    if base64.b64encode(hashlib.new(algo, data).digest()).decode() != expected:
        package, version, _ = ASSETS[name]
        raise RuntimeError(f"{package}@{version}: the downloaded tarball does not match the {algo} hash pinned in "
                           "mqa_edu/authoring/slides.py (INTEGRITY); refusing to use it")


def fetch_assets(folder: Path) -> Path:
    """Download (once) and unpack every asset into ``folder``; returns it. Raises with a clear message offline."""
    folder = Path(folder)
    for name, (package, version, keep) in ASSETS.items():
        target = folder / name
        stamp = target / ".version"
        if stamp.is_file() and stamp.read_text() == f"{version} local fonts":
            continue
        try:
            with urllib.request.urlopen(tarball_url(package, version), timeout=120) as r:
                data = r.read()
        except OSError as e:
            raise RuntimeError(f"could not fetch {package}@{version} from {REGISTRY} ({e}): the deck's assets are "
                               "fetched once, at build time; build where the npm registry is reachable, then the "
                               "decks work offline") from None
        check_integrity(name, data)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
                if not member.isfile() or not any(rel == k or rel.startswith(k + "/") for k in keep):
                    continue
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
        for css in target.rglob("*.css"):  # reveal.js's themes import web fonts from Google: not in a lecture hall
            text = css.read_text(encoding="utf-8")
            if WEB_FONT.search(text):
                css.write_text(WEB_FONT.sub("", text), encoding="utf-8")
        stamp.write_text(f"{version} local fonts")
    (folder / "wrap.css").write_text(WRAP_CSS)
    (folder / "fit.js").write_text(FIT_JS.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def deck(notebook: Path, out: Path, execute: bool = False, timeout: int = 600) -> Path:
    """Write ``<out>/<name>.slides.html`` for ``notebook``, pointing at ``<out>/_assets``."""
    import nbformat
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    out = Path(out)
    fetch_assets(out / "_assets")
    nb = nbformat.read(notebook, as_version=4)
    if execute:
        from nbclient import NotebookClient

        # figures inline, as in JupyterLab, whatever MPLBACKEND says here (a test run sets Agg, which shows nothing)
        saved = os.environ.get("MPLBACKEND")
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(Path(notebook).parent)}}).execute()
        finally:
            if saved is None:
                os.environ.pop("MPLBACKEND", None)
            else:
                os.environ["MPLBACKEND"] = saved
    rel = "_assets"
    # a plotting cell tagged hide-input shows its figure and not its code (the notebook keeps the code)
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = {HIDE_INPUT}
    exporter = SlidesExporter(
        config=config,
        reveal_url_prefix=f"{rel}/reveal.js", jquery_url=f"{rel}/jquery/dist/jquery.min.js",
        require_js_url=f"{rel}/requirejs/require.js", font_awesome_url=f"{rel}/font-awesome/css/font-awesome.min.css",
        mathjax_url=f"{rel}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
        widget_renderer_url=f"{rel}/html-manager/dist/embed-amd.js", jupyter_widgets_base_url=f"{rel}/",
        mermaid_js_url=MERMAID_STUB, mermaid_layout_elk_js_url=MERMAID_STUB)
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": Path(notebook).stem}})
    html = html.replace("</head>", f'<link rel="stylesheet" href="{rel}/wrap.css">\n<script src="{rel}/fit.js">'
                                   '</script>\n</head>', 1)
    # every slide fits the stage: fit.js splits the tall ones once reveal.js is ready (nbconvert's template calls
    # Reveal.initialize inside a require.js callback, so the call goes right after its own listener there)
    hook = "Reveal.addEventListener('slidechanged', update);"
    if hook not in html:
        raise RuntimeError("nbconvert's slide template changed: cannot find where to start fit.js")
    html = html.replace(hook, hook + "\n        mqaFit(Reveal);", 1)
    path = out / f"{Path(notebook).stem}.slides.html"
    path.write_text(html, encoding="utf-8")
    return path


def lecture_notebooks() -> list[Path]:
    """What a lecturer presents: the full versions of 01-10 where they exist, the notebooks themselves otherwise."""
    full = {p.name: p for p in (ROOT / "solutions" / "lectures").glob("*.ipynb")}
    return [full.get(p.name, p) for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mqa_edu.authoring.slides",
                                 description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks to render")
    ap.add_argument("--all", action="store_true", help="every lecture (full versions of 01-10)")
    ap.add_argument("--out", type=Path, default=Path("slides"), help="folder for the decks and their assets")
    ap.add_argument("--execute", action="store_true", help="run each notebook first, so the deck has its outputs")
    a = ap.parse_args(argv)
    paths = lecture_notebooks() if a.all else a.notebooks
    if not paths:
        ap.error("name notebooks, or pass --all")
    for p in paths:
        print(f"wrote {deck(p, a.out, a.execute)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
