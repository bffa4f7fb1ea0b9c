"""/api/dues: set, read and clear dues; a change reaches the next event."""

from __future__ import annotations

from streamer.sources.demo import DemoManifest

from support.client import call
from support.daemon import ServiceThread, eventually


def test_dues_api(server: ServiceThread) -> None:
    url = f"{server.url}/api/dues/ka-01-ab-9999"
    assert call("GET", url)[0] == 404
    status, body = call("PUT", url, json_body={"amount": 40.5})
    assert (status, body) == (
        200,
        {
            "plate_number": "KA01AB9999",
            "found": True,
            "dues_pending": True,
            "amount": 40.5,
            "message": "Dues pending",
        },
    )
    assert call("GET", url)[1]["amount"] == 40.5
    assert call("DELETE", url)[0] == 204
    assert call("DELETE", url)[0] == 404
    assert (
        call("POST", f"{server.url}/check_dues", json_body={"plate_number": "KA01AB9999"})[1][
            "found"
        ]
        is False
    )


def test_dues_changed_at_run_time_reach_the_next_event(
    live_daemon: ServiceThread, short_clip: DemoManifest
) -> None:
    first, second = (v.plate for v in short_clip.vehicles)
    url = live_daemon.url
    eventually(
        lambda: call("GET", f"{url}/api/events", headers={})[1]["total"] == 1, 30, "the first event"
    )
    assert (
        call(
            "PUT",
            f"{url}/api/dues/{second}",
            json_body={"amount": 99, "message": "Toll"},
            headers={},
        )[0]
        == 200
    )
    events = eventually(
        lambda: (
            (body := call("GET", f"{url}/api/events", headers={})[1])["total"] == 2
            and body["events"]
        ),
        30,
        "the second event",
    )
    assert [e["plate_number"] for e in events] == [second, first]  # newest first
    assert events[0]["dues_result"] == {
        "found": True,
        "dues_pending": True,
        "amount": 99.0,
        "message": "Toll",
    }
    assert events[1]["dues_result"]["found"] is False
    _status, dues_only = call("GET", f"{url}/api/events?dues_pending=true", headers={})
    assert [e["plate_number"] for e in dues_only["events"]] == [second]
    _, by_plate = call("GET", f"{url}/api/events?plate={first[:4]}&camera=gate&limit=1", headers={})
    assert (by_plate["total"], by_plate["events"][0]["plate_number"]) == (1, first)
    crop = call("GET", url + events[0]["crop_url"], headers={})
    assert crop[0] == 200
    _, metrics = call("GET", f"{url}/metrics", headers={})
    assert 'streamer_events_total{camera="gate",dues_pending="true"} 1.0' in metrics
    assert 'streamer_events_total{camera="gate",dues_pending="false"} 1.0' in metrics
