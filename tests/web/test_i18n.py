"""The catalogue lookup in the browser: English singulars, Chinese without plural forms."""

from __future__ import annotations

import pytest

from tests.web.conftest import Watched, WebServer

pytestmark = pytest.mark.browser

LOOKUP = """async ([language, n]) => {
    localStorage.setItem("vg.lang", language);
    const i18n = await import("/static/i18n.js");
    await i18n.loadLanguage();
    return i18n.t("inbox.count", { n });
}"""


def test_english_says_1_alert_and_2_alerts_chinese_the_same_word(
    watched: Watched, web_server: WebServer
) -> None:
    page = watched.page
    page.goto(web_server.base_url + "/")
    assert page.evaluate(LOOKUP, ["en", 1]) == "1 alert"
    assert page.evaluate(LOOKUP, ["en", 2]) == "2 alerts"
    assert page.evaluate(LOOKUP, ["en", 0]) == "0 alerts"
    assert page.evaluate(LOOKUP, ["zh-CN", 1]) == "共 1 条"
    assert page.evaluate(LOOKUP, ["zh-CN", 2]) == "共 2 条"
