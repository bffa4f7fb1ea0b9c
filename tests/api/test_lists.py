"""The plate lists over HTTP, on a running daemon."""

from __future__ import annotations

from pathlib import Path

import requests

from streamer.reading.ocr import OcrEngine
from streamer.vision.detect import YoloDetector

from support.daemon import ServiceThread, make_config


def test_the_api_manages_lists(tmp_path: Path, detector: YoloDetector, engine: OcrEngine) -> None:
    banned = tmp_path / "banned.csv"
    banned.write_text("plate\nMH12XY7395\n")
    config = make_config(
        tmp_path,
        lists={"residents": {"description": "Who lives here"}, "banned": {"file": str(banned)}},
        http={"enabled": True, "port": 0},
        cameras=[{"name": "cam", "source": str(tmp_path / "none.mp4"), "enabled": False}],
    )
    with ServiceThread(config, detector, engine, serve_only=True) as daemon:
        url = f"{daemon.url}/api/lists"
        put = requests.put(f"{url}/residents/ka01ab1234", json={"note": "flat 4"}, timeout=10)
        assert put.status_code == 200, put.text
        assert put.json()["plate_number"] == "KA01AB1234"
        assert requests.get(url, timeout=10).json() == {
            "lists": [
                {"name": "residents", "description": "Who lives here", "entries": 1, "file": None},
                {"name": "banned", "description": "", "entries": 1, "file": str(banned)},
            ]
        }
        (entry,) = requests.get(f"{url}/residents", timeout=10).json()["entries"]
        assert (entry["plate_number"], entry["note"], entry["expires"]) == (
            "KA01AB1234",
            "flat 4",
            None,
        )
        until = requests.put(
            f"{url}/residents/KA01AB1234", json={"expires": "2020-01-01"}, timeout=10
        )
        assert until.json()["expired"] is True
        for method, path, body, status in [
            ("put", "/visitors/KA01AB1234", {}, 404),
            ("put", "/banned/KA01AB1234", {}, 409),
            ("delete", "/banned/MH12XY7395", None, 409),
            ("put", "/residents/KA01AB1234", {"expires": "soon"}, 400),
            ("put", "/residents/KA01AB1234", {"colour": "red"}, 400),
            ("put", "/residents/KA01AB1234", {"note": 5}, 400),
            ("put", "/residents/%E2%80%94", {}, 400),
        ]:
            answer = requests.request(method, url + path, json=body, timeout=10)
            assert answer.status_code == status, (path, body, answer.text)
            assert answer.json()["error"]
        assert requests.delete(f"{url}/residents/KA01AB1234", timeout=10).status_code == 204
        assert requests.delete(f"{url}/residents/KA01AB1234", timeout=10).status_code == 404
