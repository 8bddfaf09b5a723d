"""What to do now, in plain words, per rule (and per reported symptom): the one source.

The SMS and inbox texts (:mod:`alerts.notify.texts`) take the zh-CN words from here, and
the portal's "what to do now" box shows the same words in the reader's language, so a
patient never reads two versions of the same advice (CLINICAL table (a): G1 → 15 g of fast
sugar and re-test in 15 minutes; a P1 nobody answers → call 120).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

Words = Mapping[str, str]
"""One text per language: ``zh-CN`` and ``en``."""

RULE_ADVICE: Final[Mapping[str, Words]] = {
    # ADA Standards of Care §6 "rule of 15": 15 g of fast carbohydrate, re-test in 15 min.
    "G1": {
        "zh-CN": "请立即吃 15 克快速升糖食物（如 3-4 块方糖或半杯果汁），15 分钟后复测血糖。",
        "en": "Eat 15 g of fast sugar now (3–4 sugar cubes or half a glass of juice) "
        "and test your glucose again in 15 minutes.",
    },
    "G2": {
        "zh-CN": "请吃 15 克快速升糖食物，15 分钟后复测血糖。",
        "en": "Eat 15 g of fast sugar and test your glucose again in 15 minutes.",
    },
    "G3": {
        "zh-CN": "血糖偏高：请多喝水，按医嘱检测酮体，2 小时后复测。",
        "en": "Glucose is high: drink water, test ketones as your doctor told you, "
        "and test again in 2 hours.",
    },
    # ADA/EASD crises consensus: confusion or drowsiness with very high glucose is HHS/DKA.
    "G4": {
        "zh-CN": "血糖极高：请立即复测；如有口渴、乏力、意识不清，请拨打 120。",
        "en": "Glucose is very high: test again now; if you are very thirsty, weak or "
        "confused, call 120.",
    },
    "G6": {
        "zh-CN": "预测血糖将偏低：请现在吃少量快速升糖食物并留意症状。",
        "en": "Your glucose is heading low: eat a little fast sugar now and watch for symptoms.",
    },
    # 国家基本公共卫生服务规范(第三版) hypertension danger signs call for urgent referral.
    "B1": {
        "zh-CN": "血压很高：请坐下安静休息 5 分钟后复测；如有剧烈头痛、胸闷、气短、视物模糊或"
        "说话不清，请立即拨打 120。",
        "en": "Blood pressure is very high: sit quietly for 5 minutes and measure again; "
        "with a severe headache, chest tightness, breathlessness, blurred vision or "
        "slurred speech, call 120 now.",
    },
    "B3": {
        "zh-CN": "血压偏低：请慢慢坐下或躺下，喝些水后复测；如头晕加重或晕倒，请拨打 120。",
        "en": "Blood pressure is low: sit or lie down slowly, drink some water and measure "
        "again; if you get dizzier or faint, call 120.",
    },
    # BTS 2017: low SpO₂ with breathlessness or blue lips is an emergency.
    "O1": {
        "zh-CN": "血氧偏低：请坐直休息后复测，按医嘱吸氧；如嘴唇发紫、气短加重或说话困难，"
        "请立即拨打 120。",
        "en": "Oxygen is low: sit up, rest and measure again; use oxygen as prescribed. "
        "If your lips turn blue, breathing gets harder or you cannot speak, call 120 now.",
    },
    "O2": {
        "zh-CN": "血氧偏低：请坐直休息后复测，按医嘱吸氧；如嘴唇发紫、气短加重或说话困难，"
        "请立即拨打 120。",
        "en": "Oxygen is low: sit up, rest and measure again; use oxygen as prescribed. "
        "If your lips turn blue, breathing gets harder or you cannot speak, call 120 now.",
    },
    "R1": {
        "zh-CN": "心率异常：请坐下休息 5 分钟后复测；如胸闷、气短或晕倒，请拨打 120。",
        "en": "Your heart rate is unusual: sit and rest for 5 minutes, then measure again; "
        "with chest tightness, breathlessness or fainting, call 120.",
    },
    "T1": {
        "zh-CN": "体温异常：请多喝水，30 分钟后复测体温；如意识不清或气短，请拨打 120。",
        "en": "Your temperature is abnormal: drink water and measure again in 30 minutes; "
        "if confused or breathless, call 120.",
    },
    # ESC HFA heartfailurematters.org: fast weight gain is fluid; breathlessness lying flat
    # is decompensation.
    "H1": {
        "zh-CN": "体重增长过快：请按医嘱服药、少盐少水；如气短加重或不能平卧，请拨打 120。",
        "en": "Your weight rose fast: take your medicines as prescribed, less salt and "
        "fluid; if breathing gets harder or you cannot lie flat, call 120.",
    },
}
"""Advice per rule id for the patient and family (rules without advice have none)."""

SYMPTOM_ADVICE: Final[Mapping[str, Words]] = {
    # Chest pain or tightness may be a heart attack: AHA/中国胸痛中心 advise calling the
    # emergency number at once rather than waiting or driving oneself.
    "chest_tightness": {
        "zh-CN": "胸闷或胸痛：请立即停止活动、坐下休息；如持续超过 5 分钟或伴出汗、气短，"
        "请立即拨打 120。",
        "en": "Chest tightness or pain: stop, sit down and rest; if it lasts more than "
        "5 minutes or comes with sweating or breathlessness, call 120 now.",
    },
    "shortness_of_breath": {
        "zh-CN": "气短：请坐起休息；如喘憋不能平卧、嘴唇发紫或说话困难，请立即拨打 120。",
        "en": "Short of breath: sit up and rest; if you cannot lie flat, your lips turn "
        "blue or you cannot speak, call 120 now.",
    },
    "palpitations": {
        "zh-CN": "心慌：请坐下休息并测一次血压和心率；如伴胸闷、晕倒，请拨打 120。",
        "en": "Palpitations: sit down and measure your blood pressure and pulse; with "
        "chest tightness or fainting, call 120.",
    },
    "dizziness": {
        "zh-CN": "头晕：请坐下或躺下休息，测一次血压和血糖；如说话不清或一侧手脚无力，请拨打 120。",
        "en": "Dizziness: sit or lie down and measure your blood pressure and glucose; with "
        "slurred speech or weakness on one side, call 120.",
    },
    "leg_swelling": {
        "zh-CN": "脚肿：请称一次体重；如 3 天内增加超过 2 公斤或气短，请尽快联系医生。",
        "en": "Swollen feet: weigh yourself; if you gained more than 2 kg in 3 days or "
        "are short of breath, contact your doctor soon.",
    },
    "other": {
        "zh-CN": "医生会查看您描述的情况；如情况突然加重，请拨打 120。",
        "en": "Your doctor will read what you wrote; if you suddenly feel much worse, call 120.",
    },
}
"""Advice per reported symptom (:mod:`alerts.symptoms`)."""

NO_ANSWER: Final[Mapping[str, Words]] = {
    "patient": {
        "zh-CN": "如果情况不好，或联系不上医生，请立即拨打 120。",
        "en": "If you feel unwell or cannot reach your doctor, call 120 now.",
    },
    "family": {
        "zh-CN": "如联系不上患者或患者情况不好，请立即拨打 120。",
        "en": "If you cannot reach the patient or they are unwell, call 120 now.",
    },
}
"""Said with every P1 (an emergency without an answer: call 120)."""


def advice_key(rule_id: str, symptom: str | None = None) -> str | None:
    """The key of the advice for an alert of ``rule_id`` (of a reported ``symptom``)."""
    if symptom is not None and symptom in SYMPTOM_ADVICE:
        return f"symptom.{symptom}"
    return rule_id if rule_id in RULE_ADVICE else None


def advice_words(key: str) -> Words:
    """The advice of :func:`advice_key`'s ``key``, per language.

    Raises:
        KeyError: no such advice.
    """
    if key.startswith("symptom."):
        return SYMPTOM_ADVICE[key.removeprefix("symptom.")]
    return RULE_ADVICE[key]
