"""Drives the iapeer dashboard in a real headless Chromium (Selenium with
Debian's chromedriver), for tests/dashboard.rs and `cargo bench -- dashboard`.

    dashboard.py URL ARTIFACT_DIR

Reads one JSON command per line on stdin and answers each with one JSON
line on stdout ({"ok": true, ...} or {"ok": false, "error": "..."}):

    {"op": "login", "token": T}                  open URL, give the token it asks for
                                                 ("expect_error": the form's complaint)
    {"op": "script", "js": JS}                   run JS in the page, its value
    {"op": "load"}                               open URL, wait for the table
    {"op": "wait_state", "identity": I, "state": S, "timeout": T}
    {"op": "click", "identity": I, "verb": V}    press a row's button
    {"op": "keys", "identity": I, "keys": K}     focus a row, type keys
    {"op": "send", "identity": I, "message": M}  use the send box
    {"op": "text", "id": ID}                     an element's text
    {"op": "stats"}                              window.iapeerStats
    {"op": "console"}                            the browser's console errors
    {"op": "screenshot", "name": N}              ARTIFACT_DIR/N.png
    {"op": "quit"}
"""

import json
import os
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def find(name, candidates):
    for c in candidates:
        path = shutil.which(c)
        if path:
            return path
    raise SystemExit(f"no {name} found (tried {', '.join(candidates)})")


def browser():
    options = Options()
    options.binary_location = os.environ.get("IAPEER_CHROMIUM") or find(
        "chromium", ["chromium", "chromium-browser", "google-chrome"]
    )
    for arg in [
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
    ]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=os.environ.get("IAPEER_CHROMEDRIVER")
        or find("chromedriver", ["chromedriver"])
    )
    return webdriver.Chrome(options=options, service=service)


def row_selector(identity):
    return f'#rows tr[data-identity="{identity}"]'


class Driver:
    def __init__(self, url, artifacts):
        self.url = url
        self.artifacts = artifacts
        self.console = []
        self.d = browser()

    def drain_console(self):
        for entry in self.d.get_log("browser"):
            self.console.append(entry)

    def until(self, what, timeout, check):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.005)

    def op_login(self, c):
        """Opens the page, which asks for the token; gives it."""
        self.d.get(self.url)
        box = self.until(
            "the token form",
            10,
            lambda: [b for b in self.d.find_elements(By.ID, "token") if b.is_displayed()],
        )[0]
        if c.get("screenshot"):
            self.op_screenshot({"name": c["screenshot"]})
        box.clear()
        box.send_keys(c["token"])
        box.submit()
        if c.get("expect_error"):
            text = self.until(
                "the token form's error",
                10,
                lambda: self.d.find_element(By.ID, "token-error").text,
            )
            return {"error_text": text}
        self.until(
            "the fleet table",
            10,
            lambda: self.d.execute_script("return window.iapeerStats.firstFleetMs"),
        )
        return {}

    def op_script(self, c):
        """Runs `js` in the page; its return value."""
        return {"value": self.d.execute_script(c["js"])}

    def op_load(self, c):
        self.d.get(self.url)
        self.until(
            "the fleet table",
            c.get("timeout", 30),
            lambda: self.d.execute_script(
                "return window.iapeerStats && window.iapeerStats.firstFleetMs"
            ),
        )
        stats = self.d.execute_script("return window.iapeerStats")
        rows = len(self.d.find_elements(By.CSS_SELECTOR, "#rows tr"))
        return {"first_fleet_ms": stats["firstFleetMs"], "rows": rows}

    def state_of(self, identity):
        return self.d.execute_script(
            "const tr = document.querySelector(arguments[0]);"
            "return tr ? tr.dataset.state : null;",
            row_selector(identity),
        )

    def op_wait_state(self, c):
        identity, state = c["identity"], c["state"]
        self.until(
            f"{identity} to show {state}",
            c.get("timeout", 10),
            lambda: self.state_of(identity) == state,
        )
        cell = self.d.find_element(By.CSS_SELECTOR, row_selector(identity) + " td.state")
        stats = self.d.execute_script("return window.iapeerStats")
        at = next(
            (ch["at"] for ch in reversed(stats["changes"])
             if ch["identity"] == identity and ch["to"] == state),
            None,
        )
        event = next(
            (e for e in reversed(stats["events"]) if e["identity"] == identity),
            None,
        )
        return {"text": cell.text, "at": at, "event": event, "now": time.time() * 1000}

    def op_click(self, c):
        button = self.d.find_element(
            By.CSS_SELECTOR, row_selector(c["identity"]) + f' button[data-verb="{c["verb"]}"]'
        )
        button.click()
        return {}

    def op_keys(self, c):
        row = self.d.find_element(By.CSS_SELECTOR, row_selector(c["identity"]))
        row.click()
        row.send_keys(c["keys"])
        return {}

    def op_send(self, c):
        self.d.find_element(By.CSS_SELECTOR, row_selector(c["identity"]) + " td.peer").click()
        box = self.d.find_element(By.ID, "message")
        box.clear()
        box.send_keys(c["message"])
        self.d.find_element(By.ID, "send-button").click()
        status = self.until(
            "the send to finish",
            c.get("timeout", 60),
            lambda: (lambda t: t if t and not t.endswith("…") else None)(
                self.d.find_element(By.ID, "status").text
            ),
        )
        return {"status": status}

    def op_text(self, c):
        return {"text": self.d.find_element(By.ID, c["id"]).text}

    def op_stats(self, c):
        return {"stats": self.d.execute_script("return window.iapeerStats")}

    def op_console(self, c):
        self.drain_console()
        errors = [e for e in self.console if e.get("level") in ("SEVERE", "ERROR")]
        return {"errors": errors, "all": len(self.console)}

    def op_screenshot(self, c):
        os.makedirs(self.artifacts, exist_ok=True)
        path = os.path.join(self.artifacts, c["name"] + ".png")
        self.d.save_screenshot(path)
        return {"path": path}


def main():
    url, artifacts = sys.argv[1], sys.argv[2]
    driver = Driver(url, artifacts)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            c = json.loads(line)
            if c["op"] == "quit":
                print(json.dumps({"ok": True}), flush=True)
                break
            try:
                out = getattr(driver, "op_" + c["op"])(c)
                out["ok"] = True
            except Exception as e:  # reported to the test, which fails
                out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                try:  # what the page showed then, as an artifact
                    driver.op_screenshot({"name": "failed-" + c["op"]})
                    out["page"] = driver.d.find_element(By.TAG_NAME, "body").text[:600]
                    out["url"] = driver.d.current_url
                except Exception:
                    pass
            print(json.dumps(out), flush=True)
    finally:
        driver.d.quit()


if __name__ == "__main__":
    main()
