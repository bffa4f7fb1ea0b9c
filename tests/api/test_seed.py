"""The seed endpoints: /detect, /ocr, /process and /check_dues on real frames."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import cv2
import numpy as np

from streamer.sources.demo import DemoManifest

from support.client import AUTH, call, png, upload
from support.daemon import ServiceThread, frame_at


def test_detect(server: ServiceThread, close_frame: bytes) -> None:
    status, body = call("POST", f"{server.url}/detect", data=upload(close_frame))
    assert status == 200
    # The seed's fields are the most confident plate's; every plate is in `plates`.
    assert set(body) == {"found", "confidence", "box_xyxy", "plate_jpg_hex", "vehicle", "plates"}
    assert [{key: body[key] for key in plate} for plate in body["plates"]] == body["plates"]
    assert body["found"] is True
    assert body["confidence"] > 0.4
    x1, y1, x2, y2 = body["box_xyxy"]
    assert 0 <= x1 < x2 <= 1280
    assert 0 <= y1 < y2 <= 720
    crop = cv2.imdecode(
        np.frombuffer(bytes.fromhex(body["plate_jpg_hex"]), np.uint8), cv2.IMREAD_COLOR
    )
    assert crop is not None
    assert crop.shape[1] > 2 * crop.shape[0]


def test_detect_on_an_empty_road(server: ServiceThread, demo_video: DemoManifest) -> None:
    road = png(frame_at(demo_video.path, 0.5))  # before the first vehicle
    assert call("POST", f"{server.url}/detect", data=upload(road)) == (
        200,
        {
            "found": False,
            "confidence": 0.0,
            "box_xyxy": None,
            "plate_jpg_hex": None,
            "vehicle": None,
            "plates": [],
        },
    )


def test_ocr_reads_the_crop_detect_returned(
    server: ServiceThread, close_frame: bytes, demo_video: DemoManifest
) -> None:
    _, detected = call("POST", f"{server.url}/detect", data=upload(close_frame))
    crop = bytes.fromhex(detected["plate_jpg_hex"])
    assert call("POST", f"{server.url}/ocr", data=upload(crop, "plate.jpg")) == (
        200,
        {"success": True, "text": demo_video.vehicles[1].plate},
    )


def test_process_and_dues(
    server: ServiceThread, close_frame: bytes, demo_video: DemoManifest
) -> None:
    plate = demo_video.vehicles[1].plate
    status, body = call(
        "PUT",
        f"{server.url}/api/dues/{plate}",
        json_body={"amount": 1500, "message": "Unpaid parking"},
    )
    assert (status, body["dues_pending"]) == (200, True)
    status, body = call("POST", f"{server.url}/process", data=upload(close_frame))
    assert status == 200
    assert set(body) >= {"success", "plate_number", "detector_confidence", "bbox", "dues_result"}
    assert body["success"] is True
    assert body["plate_number"] == plate
    assert body["dues_result"] == {
        "found": True,
        "dues_pending": True,
        "amount": 1500.0,
        "message": "Unpaid parking",
    }
    assert call("POST", f"{server.url}/check_dues", json_body={"plate_number": plate}) == (
        200,
        {
            "plate_number": plate,
            "found": True,
            "dues_pending": True,
            "amount": 1500.0,
            "message": "Unpaid parking",
        },
    )


def test_fifty_concurrent_process_requests(
    server: ServiceThread, close_frame: bytes, demo_video: DemoManifest
) -> None:
    busy = 0

    async def one(session: aiohttp.ClientSession) -> dict[str, Any]:
        nonlocal busy
        while True:  # past http.max_concurrent_images: 503, and retry after the time given
            async with session.post(
                f"{server.url}/process", data=upload(close_frame), headers=AUTH
            ) as response:
                if response.status == 503:
                    busy += 1
                    await asyncio.sleep(float(response.headers["Retry-After"]) / 10)
                    continue
                assert response.status == 200
                result: dict[str, Any] = await response.json()
                return result

    async def all_of_them() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(one(session) for _ in range(50)))

    results = asyncio.run(all_of_them())
    assert [r["plate_number"] for r in results] == [demo_video.vehicles[1].plate] * 50
    assert busy > 0  # 50 at once is past the bound of 8
