"""Masking the secrets that config values carry in URLs: passwords, query values, tokens."""

from __future__ import annotations

import time

import pytest

from streamer.config import mask_url


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("rtsp://admin:s3cret@10.0.0.7:554/stream1", "rtsp://admin:***@10.0.0.7:554/stream1"),
        (
            "cannot open http://u:p%40ss@cam.local/mjpg and rtsp://x:y@h/z",
            "cannot open http://u:***@cam.local/mjpg and rtsp://x:***@h/z",
        ),
        ("rtsp://10.0.0.7/stream1", "rtsp://10.0.0.7/stream1"),
        ("recordings/demo.mp4", "recordings/demo.mp4"),
        # Passwords that a regex over the URL's grammar got wrong: '@' and '/' in them.
        ("rtsp://admin:p@ssw0rd@10.0.0.7/s", "rtsp://admin:***@10.0.0.7/s"),
        ("rtsp://admin:pa/ss:w@10.0.0.7:554/s", "rtsp://admin:***@10.0.0.7:554/s"),
        ("rtsp://admin@10.0.0.7/s", "rtsp://admin@10.0.0.7/s"),  # no password
        ("no frame from rtsp://a:b/c@h/x for 2 s", "no frame from rtsp://a:***@h/x for 2 s"),
        # Every query value, and the fragment.
        (
            "http://relay.lan/rpc?id=0&on=true&key=k3y#t0k",
            "http://relay.lan/rpc?id=***&on=***&key=***#***",
        ),
        ("https://u:p@h/x?token=abc&flag", "https://u:***@h/x?token=***&flag"),
        # Path segments that look like secrets: webhook tokens, hex keys, UUIDs, bot tokens.
        (
            "https://hooks.slack.com/services/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",
            "https://hooks.slack.com/services/T0AB12CDE/B0AB12CDE/***",
        ),
        ("http://h/api/9f86d081884c7d659a2feaa0c55ad015", "http://h/api/***"),
        ("http://h/e/550e8400-e29b-41d4-a716-446655440000/open", "http://h/e/***/open"),
        (
            "https://api.telegram.org/bot123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11/sendMessage",
            "https://api.telegram.org/***/sendMessage",
        ),
        # ...but not the names of a camera's or a relay's paths, nor numbers.
        ("rtsp://cam/h264Preview_01_main", "rtsp://cam/h264Preview_01_main"),
        (
            "rtsp://cam:554/Streaming/Channels/101/relay/0",
            "rtsp://cam:554/Streaming/Channels/101/relay/0",
        ),
        ("http://h/webhooks/123456789012345678/x", "http://h/webhooks/123456789012345678/x"),
        # Quotes and brackets around a URL in an error message stay.
        ("url='http://h/x?key=abc')", "url='http://h/x?key=***')"),
        ("InvalidURL(http://u:secret@[::1)", "InvalidURL(http://u:***@[::1)"),
    ],
)
def test_mask_url(text: str, masked: str) -> None:
    assert mask_url(text) == masked
    assert mask_url(masked) == masked  # masking again changes nothing


def test_masking_a_long_text_without_urls_is_fast() -> None:
    started = time.perf_counter()
    assert mask_url("x" * 1_000_000) == "x" * 1_000_000
    assert mask_url("a" * 100_000 + "://u:p@h") == "a" * 100_000 + "://u:***@h"
    assert time.perf_counter() - started < 1
