"""The web app's assets: served same-origin under the strict CSP, and shipped in the wheel."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from dashboard_api.app import SECURITY_HEADERS
from dashboard_api.web import STATIC_DIR
from tests.web.conftest import WebServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_shell_and_assets_are_served_with_the_csp(web_server: WebServer) -> None:
    with httpx.Client(base_url=web_server.base_url) as client:
        for path in ("/", "/login/sms"):
            answer = client.get(path)
            assert answer.status_code == 200
            assert (
                answer.headers["content-security-policy"]
                == (SECURITY_HEADERS["Content-Security-Policy"])
            )
            assert '<script type="module" src="/static/app.js">' in answer.text
        script = client.get("/static/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert client.get("/static/i18n/zh-CN.json").json()["kind.glucose"] == "血糖"
        assert client.get("/static/../app.py").status_code == 404


def test_no_inline_script_style_or_handler_and_no_foreign_url() -> None:
    for path in STATIC_DIR.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
            assert not re.search(r"\son[a-z]+=|\sstyle=|<style", text), path
        if path.suffix == ".js":
            assert ".innerHTML" not in text, path
            assert "eval(" not in text, path


def test_catalogues_have_the_same_keys_and_every_used_key() -> None:
    zh = json.loads((STATIC_DIR / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    en = json.loads((STATIC_DIR / "i18n" / "en.json").read_text(encoding="utf-8"))
    # English has singular forms ("1 alert": ``key.one``, used by t() when n is 1); Chinese
    # has no plural. Every other key is in both, and a singular only beside its plural.
    singulars = {key for key in en if key.endswith(".one") and key[:-4] in en}
    assert set(zh) == set(en) - singulars
    assert singulars, "the English catalogue has no singular forms"
    used = set()
    for script in STATIC_DIR.glob("*.js"):
        used |= set(re.findall(r"\bt\(\"([a-z_]+\.[a-z0-9_.-]+)\"", script.read_text("utf-8")))
    assert used, "no catalogue key found in the scripts"
    assert not used - set(zh), f"keys missing from the catalogues: {sorted(used - set(zh))}"


@pytest.mark.slow
def test_the_wheel_carries_the_web_app(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(PROJECT_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"dashboard_api/static/{path.relative_to(STATIC_DIR).as_posix()}"
        for path in STATIC_DIR.rglob("*")
        if path.is_file()
    }
    assert shipped <= names, sorted(shipped - names)
