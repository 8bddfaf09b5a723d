"""Message texts (zh-CN first): the least health data that lets the person act.

No reading values and no names: the rule's meaning and what to do now. Family and patient
texts say what to do (CLINICAL table (a): G1 → 15 g fast sugar and re-test in 15 minutes;
P1 not answered → call 120).
"""

from __future__ import annotations

from typing import Final

from jinja2 import Environment, StrictUndefined

from alerts.advice import NO_ANSWER, RULE_ADVICE

# Plain text for SMS/voice/WeChat, never HTML: there is nothing to escape.
_ENV = Environment(undefined=StrictUndefined, autoescape=False)  # noqa: S701

# The words come from alerts.advice, the one source the portal's "what to do now" box uses.
ACTIONS: Final[dict[str, str]] = {rule: words["zh-CN"] for rule, words in RULE_ADVICE.items()}
P1_NO_ANSWER: Final = NO_ANSWER["family"]["zh-CN"]

_TEMPLATE = _ENV.from_string(
    "【VitalGate】{{ patient_label }}有一条{{ tier }}提醒（{{ rule_id }}）。"
    "{% if action %}{{ action }}{% endif %}"
    "{% if p1 and audience in ('family', 'duty_doctor') %}{{ no_answer }}{% endif %}"
    "请在应用中查看并确认。"
)
_TIERS: Final = {"P1": "紧急", "P2": "当日处理", "P3": "随访", "P4": "复查", "SYS": "设备/数据"}


def render(*, rule_id: str, severity: str, audience: str) -> str:
    """The text for ``audience`` (patient, family, doctor, duty_doctor …) of a rule's alert."""
    patient_label = "您" if audience == "patient" else "您关注的患者"
    return _TEMPLATE.render(
        patient_label=patient_label,
        tier=_TIERS.get(severity, severity),
        rule_id=rule_id,
        action=ACTIONS.get(rule_id, "") if audience in ("patient", "family") else "",
        p1=severity == "P1",
        audience=audience,
        no_answer=P1_NO_ANSWER,
    )
