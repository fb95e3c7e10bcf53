"""The web page in a real browser: Debian's Chromium, headless, driven by playwright's Python API.

Chromium's fake camera plays a video made from fixture photos (obama, then biden). Set
``FACESEARCH_SCREENSHOTS=docs/screenshots`` to keep a screenshot of each page there.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import QUERIES

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)"),
]

PAIR = QUERIES / "obama_and_biden.jpg"
LIN = QUERIES / "lin-manuel-miranda.png"
#: Seconds a page may take to show what the server says (the first answers wait for the models).
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 640x480 Y4M video: obama1.jpg for 3 s, then biden (cut from obama_and_biden.jpg) for 3 s."""
    from clips import write_y4m
    from facesearch.imaging.decode import load_image

    both = load_image(PAIR)
    biden = both[250:750, 600:1050]
    return write_y4m(tmp_path_factory.mktemp("clip") / "clip.y4m",
                     [(load_image(QUERIES / "obama1.jpg"), 15), (biden, 15)], fps=5)


@pytest.fixture(scope="module")
def browser(clip):
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root (CI containers)
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def screenshot(page, name: str, tmp_path: Path, *, keep: bool = True) -> None:
    """A PNG of the page in the test's folder, and in $FACESEARCH_SCREENSHOTS when set and ``keep``."""
    page.screenshot(path=tmp_path / f"{name}.png")
    folder = os.environ.get("FACESEARCH_SCREENSHOTS")
    if folder and keep:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=Path(folder) / f"{name}.png")


def names_on(page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def test_the_identify_page_names_the_people_in_a_photo(server, page, tmp_path):
    url, _ = server
    page.goto(url + "/")
    page.set_input_files("#picker", str(PAIR))
    page.wait_for_function("document.querySelectorAll('#faces .face-name').length === 3")
    assert names_on(page, "#faces .face-name") == ["obama", "biden", "Unknown"]
    assert "obama_and_biden.jpg: 3 faces" in page.inner_text("#status")
    screenshot(page, "identify", tmp_path)

    page.fill("#threshold", "0.95")
    page.dispatch_event("#threshold", "change")
    page.wait_for_function("[...document.querySelectorAll('#faces .face-name')].every(e => e.textContent === 'Unknown')")


def test_enrolling_through_the_page_puts_them_in_the_gallery(server, page, tmp_path):
    url, gallery = server
    page.goto(url + "/gallery")
    page.wait_for_selector(".person[data-name='obama']")
    assert names_on(page, ".person .name") == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]

    page.fill("#new-name", "lin_manuel")
    page.set_input_files("#new-picker", str(LIN))
    card = page.locator(".person[data-name='lin_manuel']")
    card.wait_for()
    assert card.locator(".counts").inner_text() == "1 face · 1 photo"
    assert "Enrolled 1 face of lin_manuel" in page.inner_text("#notice")
    assert {"name": "lin_manuel", "faces": 1, "images": 1} in gallery.identities()
    page.wait_for_function("[...document.querySelectorAll('.person img.thumb')].every(i => i.src.startsWith('blob:'))")
    screenshot(page, "gallery", tmp_path)

    # The new person is named on the identify page.
    page.goto(url + "/")
    page.set_input_files("#picker", str(LIN))
    page.wait_for_selector("#faces .face-name")
    assert names_on(page, "#faces .face-name") == ["lin_manuel"]

    # Rename, then remove (a second click confirms), through the page.
    page.goto(url + "/gallery")
    card = page.locator(".person[data-name='lin_manuel']")
    card.locator(".rename-button").click()
    card.locator(".rename input").fill("lin_miranda")
    card.locator(".rename button").click()
    page.locator(".person[data-name='lin_miranda']").wait_for()
    card = page.locator(".person[data-name='lin_miranda']")
    card.locator(".remove").click()
    card.locator(".remove").click()
    page.wait_for_function("!document.querySelector(\".person[data-name='lin_miranda']\")")
    assert "lin_miranda" not in [r["name"] for r in gallery.identities()]


def test_the_page_asks_for_a_key_once_keys_exist(server, page):
    url, gallery = server
    key = gallery.create_key("read")["key"]
    page.goto(url + "/gallery")
    page.locator("#keybar").wait_for(state="visible")
    # The bar shows on the 401 itself, the reason once its body is read: wait for that too.
    page.wait_for_function("document.getElementById('error').innerText.includes('API key is needed')")
    page.fill("#keybar input", key)
    page.click("#keybar button")
    page.wait_for_selector(".person[data-name='obama']")


def test_the_live_page_names_who_the_camera_sees(server, page, tmp_path):
    url, _ = server
    page.goto(url + "/live")
    page.click("#start")
    page.wait_for_function("document.querySelector('#present').innerText.includes('obama')")
    screenshot(page, "live-obama", tmp_path, keep=False)
    page.wait_for_function("document.querySelector('#present').innerText.includes('biden')")
    screenshot(page, "live", tmp_path)
    assert int(page.inner_text("#sent")) >= 2
    page.click("#stop")


def test_the_people_page_names_splits_rejects_and_undoes(known_gallery, page, tmp_path):
    from conftest import CELEB, wait_ready
    from facesearch.server.app import create_app
    from facesearch.server.serving import BackgroundServer

    known_gallery.scan([CELEB / "train"], recursive=True)
    first = known_gallery.people.list()["clusters"][0]
    with BackgroundServer(create_app(known_gallery)) as url:
        wait_ready(url)
        page.goto(url + "/people")
        card = page.locator(f".cluster[data-cluster='{first['id']}']")
        card.wait_for()
        assert f"{first['faces']} faces" in card.locator(".title").inner_text()
        page.wait_for_function("[...document.querySelectorAll('.cluster img')].every(i => i.src.startsWith('blob:'))")
        screenshot(page, "people", tmp_path)

        figures = card.locator("figure")
        figures.nth(0).click()
        figures.nth(1).click()
        card.locator(".split-button").click()
        page.wait_for_function("document.querySelector('#notice').textContent.startsWith('Moved 2 faces')")
        assert len(known_gallery.people.show(first["id"])["faces"]) == first["faces"] - 2
        page.click("#undo")
        page.wait_for_function("document.querySelector('#notice').textContent.startsWith('Undone: split')")
        assert len(known_gallery.people.show(first["id"])["faces"]) == first["faces"]

        card = page.locator(f".cluster[data-cluster='{first['id']}']")
        card.locator(".person-name").fill("star")
        card.locator(".name-button").click()
        named = page.locator(".named[data-name='star']")
        named.wait_for()
        assert "star" in known_gallery.names()
        named.locator("figure button").first.click()
        page.wait_for_function("document.querySelector('#notice').textContent.includes('is not star')")
        assert len(known_gallery.people.photos("star")["photos"]) == first["faces"] - 1
        page.click("#undo")
        page.wait_for_function("document.querySelector('#notice').textContent.startsWith('Undone: face')")
        assert len(known_gallery.people.photos("star")["photos"]) == first["faces"]

        page.set_input_files("#scan-picker", str(QUERIES / "multiface.jpg"))
        page.wait_for_function("document.querySelector('#notice').textContent.startsWith('Scanned 1 photo: 6 faces')")
        assert known_gallery.people.list()["photos"] == 94
