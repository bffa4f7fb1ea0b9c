"""The dashboard in a real headless Chromium (Debian's), against the real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.reading.ocr import OcrEngine
from streamer.sources.demo import DemoManifest, DemoVehicle, render_video
from streamer.stores.dues import SqlDues
from streamer.stores.lists import SqlLists
from streamer.vision.detect import YoloDetector

from support.browser import Browser
from support.daemon import ServiceThread, make_config
from support.rtsp import free_port

TOKEN = "dash-t0ken"


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """Two vehicles after 4 s of empty road: the page is open before the first arrives
    (an early event comes within a second of it)."""
    vehicles = (DemoVehicle("MH12DE1433", 0.0, ""), DemoVehicle("TN09BC5678", 250.0, "Toll"))
    path = tmp_path_factory.mktemp("dashboard") / "clip.mp4"
    return render_video(path, vehicles, seconds_per_vehicle=2.5, gap_seconds=4.0, seed=7)


@pytest.fixture
def daemon(
    tmp_path: Path, short_clip: DemoManifest, detector: YoloDetector, engine: OcrEngine
) -> Iterator[ServiceThread]:
    """A token-protected daemon replaying the clip in real time; the second vehicle has
    dues. A standby camera that never connects keeps the daemon up after the clip."""
    SqlDues(tmp_path / "dues.sqlite").set(short_clip.vehicles[1].plate, 250, "Toll unpaid")
    lists = SqlLists(tmp_path / "dues.sqlite", {"residents": None})
    lists.add("residents", short_clip.vehicles[0].plate, "flat 4")
    config = make_config(
        tmp_path,
        lists={"residents": None},
        cameras=[
            {"name": "gate", "source": str(short_clip.path), "realtime": True},
            {"name": "standby", "source": f"rtsp://127.0.0.1:{free_port()}/none"},
        ],
        http={"enabled": True, "port": 0, "token": TOKEN},
    )
    with ServiceThread(config, detector, engine) as running:
        yield running


def test_new_events_appear_on_the_open_page(
    daemon: ServiceThread, short_clip: DemoManifest, tmp_path: Path
) -> None:
    first, second = (v.plate for v in short_clip.vehicles)
    with Browser() as browser:
        browser.open(f"{daemon.url}/?token={TOKEN}")
        assert browser.text("#stream-state") == "connected"
        assert browser.find("#events [data-event-id]") == []  # opened before any event
        browser.wait_for(f'#events [data-plate="{first}"]', timeout=30)
        row = browser.wait_for(f'#events [data-plate="{second}"]', timeout=30)[0]
        assert "dues" in (row.get_attribute("class") or "").split()
        assert "250" in row.text
        assert "Toll unpaid" in row.text
        plain = browser.find(f'#events [data-plate="{first}"]')[0]
        assert "dues" not in (plain.get_attribute("class") or "").split()
        # The lists each plate is on.
        tags = browser.find(f'#events [data-plate="{first}"] .list-tag')
        assert [tag.text.lower() for tag in tags] == ["residents"]
        assert browser.find(f'#events [data-plate="{second}"] .list-tag') == []
        # One row per vehicle, its early event replaced in place by its final one.
        browser.wait_for(f'#events [data-plate="{second}"][data-phase="final"]', timeout=30)
        rows = browser.find("#events [data-plate]")
        assert [(e.get_attribute("data-plate"), e.get_attribute("data-phase")) for e in rows] == [
            (second, "final"),  # newest on top
            (first, "final"),
        ]
        # Thumbnails load through the token.
        assert browser.execute(
            "return [...document.querySelectorAll('#events img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        # Camera cards reflect each camera's state.
        browser.wait_until(
            lambda: (
                browser.attribute('[data-camera="standby"]', "data-status")
                in {"offline", "reconnecting"}
            ),
            timeout=10,
        )
        browser.screenshot(tmp_path / "dashboard.png")
        assert browser.console_errors() == []


def test_the_page_needs_the_token(daemon: ServiceThread) -> None:
    with Browser() as browser:
        browser.open(f"{daemon.url}/")
        assert "missing or wrong token" in browser.text("body")  # 401 for the page itself
