"""The offline deck: every script, stylesheet and module a deck loads is a local file under its _assets folder, at a
version whose tarball must match the SHA-512 hash pinned in slides.py. The assets are fetched once, at build time;
where the registry cannot be reached the test skips and says so. tests/test_browser.py opens the decks in Chromium with
the network blocked."""
import base64
import hashlib
import io
import re
from pathlib import Path

import pytest

from mqa_edu.authoring import slides

ROOT = Path(__file__).resolve().parents[1]
LOADS = [re.compile(p) for p in (r'<script[^>]*\bsrc="([^"]+)"', r'<link[^>]*\bhref="([^"]+)"',
                                  r"import \w+ from '([^']+)'", r'"(_assets/[^"]+\.js)"')]


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    try:
        paths = [slides.deck(ROOT / "notebooks" / name, out) for name in
                 ("01_attention_in_numpy.ipynb", "07_decode_speed.ipynb")]
    except RuntimeError as e:
        if "could not fetch" in str(e):
            pytest.skip(str(e))
        raise
    return out, paths


def test_every_loaded_file_is_local_and_present(decks):
    out, paths = decks
    for path in paths:
        html = path.read_text()
        loaded = [m for pattern in LOADS for m in pattern.findall(html) if not m.startswith("#")]
        assert len(loaded) >= 7, loaded
        for ref in loaded:
            assert not re.match(r"(https?:)?//", ref), f"{path.name} loads {ref} from the network"
            if ref.startswith("data:"):  # the mermaid stub, inlined
                continue
            assert (out / ref.split("?")[0].removeprefix("./")).is_file(), f"{path.name}: {ref} is missing"
        assert "_assets/wrap.css" in html and html.count("<section") > 3
    for css in (out / "_assets").rglob("*.css"):  # stylesheets may import more: fonts, other sheets
        imports = re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]*)", css.read_text(errors="replace"))
        assert not imports, f"{css.relative_to(out)} loads from the network: {imports}"


def test_the_assets_are_pinned_and_the_lecturer_presents_the_full_versions():
    assert set(slides.INTEGRITY) == set(slides.ASSETS)  # every asset's hash is written in the code
    for name, (package, version, keep) in slides.ASSETS.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version) and keep, name
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", slides.INTEGRITY[name]), name
        assert slides.tarball_url(package, version).endswith(f"/-/{package.split('/')[-1]}-{version}.tgz")
    assert slides.tarball_url("@jupyter-widgets/html-manager", "1.0.13") == \
        "https://registry.npmjs.org/@jupyter-widgets/html-manager/-/html-manager-1.0.13.tgz"
    decks = slides.lecture_notebooks()
    assert [p.stem for p in decks] == [p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    if (ROOT / "solutions" / "lectures").is_dir():
        assert decks[1].parent.name == "lectures"  # 01 comes from its full version


def test_a_changed_tarball_is_refused(tmp_path, monkeypatch):
    """The hash is pinned in the code, not fetched next to the tarball: a tarball with other bytes is refused before
    anything is unpacked."""
    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(slides.urllib.request, "urlopen", lambda url, timeout: Response(b"not the pinned tarball"))
    with pytest.raises(RuntimeError, match="does not match the sha512 hash pinned"):
        slides.fetch_assets(tmp_path)
    assert not any(tmp_path.rglob("*.js"))
    good = b"the pinned bytes"
    monkeypatch.setitem(slides.INTEGRITY, "reveal.js",
                        "sha512-" + base64.b64encode(hashlib.sha512(good).digest()).decode())
    slides.check_integrity("reveal.js", good)  # the same bytes as pinned pass
