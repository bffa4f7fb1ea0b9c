"""Headless Chromium for the tests, driven over W3C WebDriver by the system's chromedriver.

Only Debian's ``chromium`` and ``chromium-driver`` packages are used: nothing downloads a
browser or a driver, and no Python package is needed (the WebDriver protocol is plain JSON
over HTTP to a ``chromedriver`` on 127.0.0.1, spoken here with the standard library).

    with Browser() as browser:
        browser.open(f"{url}/?token=abc")
        rows = browser.wait_for("#events [data-event-id]")
        assert rows[0].text
        browser.screenshot(tmp_path / "page.png")
        assert browser.console_errors() == []
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Debian's /usr/bin/chromium is a shell wrapper that adds flags of its own (extensions,
# GPU rasterisation) from /etc/chromium.d; the tests start the real executable behind it.
CHROMIUM_EXECUTABLE = Path("/usr/lib/chromium/chromium")

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # needed as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

# The W3C WebDriver key of the element references in answers.
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"

T = TypeVar("T")


def browser_available() -> str | None:
    """``None`` when the system Chromium and chromedriver are installed, else why not."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        return f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
    return None


class WebDriverError(RuntimeError):
    """An error answered by chromedriver; ``error`` is the W3C error code."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


class Element:
    """One element of the page (the equivalent of Selenium's ``WebElement``)."""

    def __init__(self, browser: Browser, element_id: str) -> None:
        self.browser = browser
        self.element_id = element_id

    def _get(self, what: str) -> Any:
        return self.browser.command("GET", f"/element/{self.element_id}/{what}")

    @property
    def text(self) -> str:
        """The rendered text (as a user sees it: hidden parts left out)."""
        return str(self._get("text"))

    def get_attribute(self, name: str) -> str | None:
        """The attribute ``name`` as written in the DOM, ``None`` when absent."""
        value = self._get(f"attribute/{name}")
        return None if value is None else str(value)

    def get_property(self, name: str) -> Any:
        """The DOM property ``name`` (``naturalWidth``, ``checked``, ``value``...)."""
        return self._get(f"property/{name}")

    def is_displayed(self) -> bool:
        """Whether the element is visible."""
        return bool(self._get("displayed"))

    def click(self) -> None:
        """Click the element."""
        self.browser.command("POST", f"/element/{self.element_id}/click", {})

    def send_keys(self, text: str) -> None:
        """Type ``text`` into the element."""
        self.browser.command("POST", f"/element/{self.element_id}/value", {"text": text})

    def __repr__(self) -> str:
        return f"Element({self.element_id!r})"


class Browser:
    """A headless Chromium with a fresh profile, for one test; a context manager.

    ``timeout`` is the default wait of :meth:`wait_for`, :meth:`text` and :meth:`attribute`.
    """

    def __init__(self, width: int = 1440, height: int = 900, timeout: float = 20.0) -> None:
        self.width = width
        self.height = height
        self.timeout = timeout
        self.session_id: str | None = None
        self._port = 0
        self._driver: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._console: list[str] = []

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- life cycle ---

    def start(self) -> None:
        """Start chromedriver on a free loopback port and a browser session through it."""
        reason = browser_available()
        if reason:
            raise RuntimeError(reason)
        self._workdir = Path(tempfile.mkdtemp(prefix="streamer-browser-"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self._port = probe.getsockname()[1]
        log = (self._workdir / "chromedriver.log").open("wb")
        self._driver = subprocess.Popen(
            [str(CHROMEDRIVER), f"--port={self._port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        try:
            self._wait_for_driver()
            binary = CHROMIUM_EXECUTABLE if CHROMIUM_EXECUTABLE.exists() else CHROMIUM
            args = [*FLAGS, f"--user-data-dir={self._workdir / 'profile'}"]
            args.append(f"--window-size={self.width},{self.height}")
            options = {"binary": str(binary), "args": args}
            capabilities = {
                "browserName": "chrome",
                "goog:chromeOptions": options,
                "goog:loggingPrefs": {"browser": "ALL"},
            }
            answer = self._request(
                "POST", "/session", {"capabilities": {"alwaysMatch": capabilities}}
            )
            self.session_id = str(answer["sessionId"])
            # Headless windows keep room for browser chrome: make the page exactly that size.
            metrics = {"width": self.width, "height": self.height, "deviceScaleFactor": 1}
            self.cdp("Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False})
        except BaseException:
            self.close()
            raise

    def _wait_for_driver(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self._driver is not None
            if self._driver.poll() is not None:
                raise RuntimeError(f"chromedriver exited: {self.driver_log()}")
            try:
                if self._request("GET", "/status").get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromedriver not ready in {timeout} s: {self.driver_log()}")
            time.sleep(0.05)

    def driver_log(self) -> str:
        """The end of chromedriver's own output (for error messages)."""
        if self._workdir is None:
            return ""
        path = self._workdir / "chromedriver.log"
        return path.read_text("utf-8", "replace")[-2000:] if path.exists() else ""

    def close(self) -> None:
        """End the session, stop chromedriver and delete the profile. Safe to call twice."""
        if self.session_id is not None:
            with contextlib.suppress(OSError, WebDriverError):
                self._request("DELETE", f"/session/{self.session_id}", timeout=15)
            self.session_id = None
        if self._driver is not None:
            self._driver.terminate()
            try:
                self._driver.wait(10)
            except subprocess.TimeoutExpired:
                self._driver.kill()
                self._driver.wait(10)
            self._driver = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # --- protocol ---

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 60
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self._port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                answer = json.loads(error.read())
            except ValueError:
                raise WebDriverError("http error", f"{error.code} {error.reason}") from None
        value = answer.get("value") if isinstance(answer, dict) else None
        if isinstance(value, dict) and "error" in value:
            raise WebDriverError(str(value["error"]), str(value.get("message", "")))
        return value

    def command(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one WebDriver command of this session (``path`` after ``/session/<id>``)."""
        if self.session_id is None:
            raise RuntimeError("the browser is not started (use it as a context manager)")
        return self._request(method, f"/session/{self.session_id}{path}", body)

    def cdp(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call a Chrome DevTools Protocol ``method`` through chromedriver."""
        return self.command("POST", "/goog/cdp/execute", {"cmd": method, "params": params or {}})

    # --- the page ---

    def open(self, url: str) -> None:
        """Load ``url`` and wait for its ``load`` event."""
        self.command("POST", "/url", {"url": url})

    def find(self, css: str) -> list[Element]:
        """The elements matching ``css`` now (maybe none)."""
        found = self.command("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, str(item[ELEMENT_KEY])) for item in found]

    def wait_for(self, css: str, timeout: float | None = None) -> list[Element]:
        """Wait until at least one element matches ``css``; return the matches."""
        return self.wait_until(lambda: self.find(css), timeout, f"no element matches {css!r}")

    def wait_until(
        self, check: Callable[[], T | None], timeout: float | None = None, what: str = "condition"
    ) -> T:
        """Call ``check`` every 0.1 s until it returns something truthy, and return that.

        A stale element (the page replaced it meanwhile) counts as not yet.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                result = check()
            except WebDriverError as error:
                if error.error != "stale element reference":
                    raise
            else:
                if result:
                    return result
            if time.monotonic() > deadline:
                try:
                    errors = self.console_errors()
                except (OSError, WebDriverError) as error:
                    errors = [f"(browser log unreadable: {error})"]
                raise TimeoutError(f"{what} after {timeout or self.timeout} s; JS errors: {errors}")
            time.sleep(0.1)

    def _first(self, css: str, read: Callable[[Element], T]) -> T:
        def check() -> tuple[T] | None:
            found = self.find(css)
            return (read(found[0]),) if found else None

        return self.wait_until(check, None, f"no element matches {css!r}")[0]

    def text(self, css: str) -> str:
        """The text of the first element matching ``css`` (waits for it)."""
        return self._first(css, lambda element: element.text)

    def attribute(self, css: str, name: str) -> str | None:
        """Attribute ``name`` of the first element matching ``css`` (waits for the element)."""
        return self._first(css, lambda element: element.get_attribute(name))

    def execute(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body: use ``return`` and ``arguments[i]``) in the page."""
        return self.command("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the page's viewport (``width`` x ``height`` pixels) to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.command("GET", "/screenshot")))

    def console_errors(self) -> list[str]:
        """Every SEVERE browser log entry so far: JS errors, ``console.error``, failed loads."""
        entries = self.command("POST", "/se/log", {"type": "browser"}) or []
        self._console += [str(e["message"]) for e in entries if e.get("level") == "SEVERE"]
        return list(self._console)
