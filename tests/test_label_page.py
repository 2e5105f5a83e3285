"""The label page: the store (class folders, rejected, undo, restarts, two labellers, bad input), the server's
refusals, and the page itself in headless Chromium driven by the keyboard."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from glassware.edge_runtime.bundle import Bundle
from glassware.edge_runtime.classifier import Prediction
from glassware.edge_runtime.collect import FrameCollector

bottle = pytest.importorskip("bottle")

from glassware.labelling.server import make_label_server  # noqa: E402
from glassware.labelling.store import REJECTED, STATE_FILE, LabelError, LabelStore  # noqa: E402

FRAMES = 6


@pytest.fixture(scope="module")
def class_names(tiny_bundle) -> list[str]:
    return Bundle.load(tiny_bundle).class_names


@pytest.fixture
def collected(tiny_data, class_names, tmp_path) -> Path:
    """FRAMES frames kept by the collector (model guesses cycling over three classes), a corrupt JPEG with
    its sidecar and a sidecar that is not JSON."""
    out = tmp_path / "collected"
    images = sorted(tiny_data.stress.rglob("*.jpg"))[:FRAMES]
    with FrameCollector(out, max_rate_hz=0, duplicate_bits=-1, queue_size=FRAMES) as collector:
        for i, path in enumerate(images):
            scores = np.full(len(class_names), 0.05, np.float32)
            scores[i % 3] = 0.5
            p = Prediction("unknown", i % 3, 0.5, False, scores, 1.0, 1.0)
            collector.offer(cv2.imread(str(path)), p, class_names, encoding="bgr8", stamp_s=float(i), frame_index=i)
    (out / "20260101-000000-000000-0001.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (out / "20260101-000000-000000-0001.json").write_text("{}")
    (out / "20260101-000000-000000-0002.json").write_text("{oops")
    return out


def names(store: LabelStore) -> list[str]:
    return sorted(store.frames)


def copies(out: Path) -> dict[str, list[str]]:
    """{class: frame stems} of the class folders."""
    return {d.name: sorted(p.stem for p in d.glob("*.jpg")) for d in sorted(out.iterdir()) if d.is_dir()
            and any(d.glob("*.jpg"))} if out.is_dir() else {}


def test_store_writes_class_folders_records_rejects_and_undoes(collected, class_names, tmp_path):
    out = tmp_path / "labelled"
    store = LabelStore(collected, out, class_names)
    a, b, c, d = names(store)[:4]
    assert len(store.frames) == FRAMES
    assert {p["path"] for p in store.problems} == {"20260101-000000-000000-0001.jpg",
                                                  "20260101-000000-000000-0002.json"}
    assert store.assign([a, b], class_names[0], client="me") == 2
    assert store.assign([b], "background", client="me") == 1  # relabelled: moved
    assert store.assign([c], REJECTED, client="me") == 1
    assert copies(out) == {class_names[0]: [a], "background": [b]}
    assert (out / class_names[0] / f"{a}.jpg").read_bytes() == (collected / f"{a}.jpg").read_bytes()
    assert json.loads((collected / STATE_FILE).read_text())["labels"] == {a: class_names[0], b: "background",
                                                                          c: REJECTED}
    assert store.undo(client="someone else") == []
    assert store.undo(client="me") == [c] and store.undo(client="me") == [b]
    assert copies(out) == {class_names[0]: [a, b]}

    with pytest.raises(LabelError, match="not a class"):
        store.assign([d], "teapot")
    with pytest.raises(LabelError, match="no collected frame"):
        store.assign(["../../etc/passwd"], class_names[0])
    with pytest.raises(LabelError, match="no collected frame"):
        store.image("20260101-000000-000000-0001")  # the corrupt one


def test_store_restart_keeps_labels_and_repairs_the_folders(collected, class_names, tmp_path):
    out = tmp_path / "labelled"
    store = LabelStore(collected, out, class_names)
    a, b = names(store)[:2]
    store.assign([a, b], class_names[1])
    (out / class_names[1] / f"{a}.jpg").unlink()  # as if it crashed between the state and the copy
    (out / class_names[2]).mkdir()
    shutil.copy(collected / f"{b}.jpg", out / class_names[2] / f"{b}.jpg")  # a stale copy
    again = LabelStore(collected, out, class_names)
    assert again.snapshot()["progress"] == {"frames": FRAMES, "labelled": 2, "rejected": 0}
    assert copies(out) == {class_names[1]: [a, b]}

    (collected / STATE_FILE).write_text("{broken")
    with pytest.raises(LabelError, match="unreadable"):
        LabelStore(collected, out, class_names)


def test_two_labellers_at_once_lose_no_label(collected, class_names, tmp_path):
    out = tmp_path / "labelled"
    first, second = LabelStore(collected, out, class_names), LabelStore(collected, out, class_names)
    frames = names(first)

    def label(store: LabelStore, mine: list[str], class_name: str) -> None:
        for name in mine:
            store.assign([name], class_name, client=class_name)

    threads = [threading.Thread(target=label, args=(first, frames[::2], class_names[0])),
               threading.Thread(target=label, args=(second, frames[1::2], class_names[1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert copies(out) == {class_names[0]: frames[::2], class_names[1]: frames[1::2]}
    assert second.undo(client=class_names[1]) == [frames[1::2][-1]]  # its own last action, not the other's


@contextmanager
def serving(store: LabelStore, port: int = 0):
    server = make_label_server(store, "127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def status(url: str, data: bytes | None = None, content_type: str = "application/json") -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_server_serves_only_the_collected_frames_and_its_assets(collected, class_names, tmp_path):
    (collected / "labelled").mkdir()
    (collected / "secret.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    with serving(LabelStore(collected, tmp_path / "labelled", class_names)) as (url, _):
        frame = sorted(p.name for p in collected.glob("2*.jpg"))[-1]
        assert status(f"{url}/frames/{frame}") == 200
        for path in ("/frames/secret.jpg", "/frames/..%2Fsecret.jpg", "/frames/..%2F..%2Fetc%2Fpasswd.jpg",
                     "/static/..%2Fstore.py", "/static/../store.py"):
            assert status(url + path) in (403, 404), path
        assert status(f"{url}/static/app.js") == 200
        assert status(f"{url}/api/label", b'{"frames": [], "label": "A"}', "text/plain") == 415
        assert status(f"{url}/api/label", b'{"frames": ["x"], "label": "A"}') == 400


def chromium():
    """Headless Chromium through Debian's chromedriver (setup.sh installs both)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("chromium and chromium-driver are not installed (bash setup.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_page_labels_with_the_keyboard_keeps_progress_and_undoes(collected, class_names, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    out = tmp_path / "labelled"
    browser = chromium()
    wait = WebDriverWait(browser, 60)  # a generous bound for 2 busy cores: the waits end on the condition

    def labels() -> dict[str, str]:
        return {f.get_attribute("data-name"): f.get_attribute("data-label")
                for f in browser.find_elements(By.CSS_SELECTOR, "figure")}

    def press(*keys: str) -> None:
        browser.find_element(By.TAG_NAME, "body").send_keys(*keys)

    def state() -> dict:
        path = collected / STATE_FILE
        return json.loads(path.read_text())["labels"] if path.exists() else {}

    try:
        with serving(LabelStore(collected, out, class_names)) as (url, port):
            browser.get(url)
            wait.until(lambda _: len(labels()) == FRAMES)
            assert "1 " + class_names[0] in browser.find_element(By.ID, "keys").text.replace("\n", " ")
            shown = list(labels())  # in the page's order: grouped by the model's guess
            press("1")  # the frame under the cursor
            wait.until(lambda _: labels()[shown[0]] == class_names[0])
            press(Keys.SPACE, Keys.ARROW_RIGHT, Keys.SPACE, "b")  # cursor moved on to shown[1]: select 1 and 2
            wait.until(lambda _: labels()[shown[2]] == "background")
            press("x")  # then the next unlabelled one is rejected
            wait.until(lambda _: labels()[shown[3]] == REJECTED)
            assert copies(out) == {"background": sorted(shown[1:3]), class_names[0]: [shown[0]]}
            assert state()[shown[3]] == REJECTED and "4 of 6 frames labelled (1 rejected)" in browser.page_source

        with serving(LabelStore(collected, out, class_names), port):  # a restart: the same labels come back
            browser.refresh()
            wait.until(lambda _: len(labels()) == FRAMES)
            assert [labels()[n] for n in shown[:4]] == [class_names[0], "background", "background", REJECTED]
            press("u")  # this browser's last action: the rejection
            wait.until(lambda _: labels()[shown[3]] == "")
            press("u")
            wait.until(lambda _: labels()[shown[1]] == "")
            assert state() == {shown[0]: class_names[0]} and copies(out) == {class_names[0]: [shown[0]]}
            assert "cannot be labelled" in browser.page_source  # the corrupt JPEG and the broken sidecar
    finally:
        browser.quit()


def test_label_command_explains_a_missing_folder(tiny_bundle, tmp_path, capsys):
    from glassware.cli import main

    assert main(["label", str(tmp_path / "nothing"), "--bundle", str(tiny_bundle)]) == 2
    assert "no such folder of collected frames" in capsys.readouterr().err
