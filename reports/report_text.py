"""The report's words in zh-CN and en: one table, looked up by key.

Kept apart from the template so a translator edits one file and a test can check that
both languages have every key.
"""

from __future__ import annotations

from typing import Final, Literal

Lang = Literal["zh", "en"]
LANGS: Final[tuple[Lang, ...]] = ("zh", "en")

TEXT: Final[dict[str, dict[Lang, str]]] = {
    "title": {"zh": "居家监测报告", "en": "Home monitoring report"},
    "patient": {"zh": "患者", "en": "Patient"},
    "period": {"zh": "时段", "en": "Period"},
    "days": {"zh": "天", "en": "days"},
    "generated": {"zh": "生成时间", "en": "Generated"},
    "sufficiency": {"zh": "数据充分性", "en": "Data sufficiency"},
    "sufficient": {"zh": "充分", "en": "sufficient"},
    "insufficient": {"zh": "不足", "en": "insufficient"},
    "no_data": {
        "zh": "本时段没有任何读数，无法生成评估。",
        "en": "There are no readings in this period; nothing can be assessed.",
    },
    "not_enough": {"zh": "数据不足", "en": "Not enough data"},
    "have_need": {"zh": "现有 {have}，至少需要 {need}", "en": "have {have}, need {need}"},
    "no_chart": {
        "zh": "数据不足，不绘制图表，以免误导。",
        "en": "Too little data: charts are not drawn, so as not to mislead.",
    },
    "metric": {"zh": "指标", "en": "Metric"},
    "value": {"zh": "数值", "en": "Value"},
    "goal": {"zh": "目标", "en": "Goal"},
    "cgm": {"zh": "持续葡萄糖监测 (CGM)", "en": "Continuous glucose monitoring (CGM)"},
    "cgm_active": {"zh": "CGM 佩戴时间", "en": "CGM active time"},
    "mean_glucose": {"zh": "平均葡萄糖", "en": "Mean glucose"},
    "gmi": {"zh": "葡萄糖管理指标 (GMI)", "en": "Glucose management indicator (GMI)"},
    "cv": {"zh": "葡萄糖变异系数 (CV)", "en": "Glucose variability (CV)"},
    "tir": {"zh": "目标范围内时间 3.9–10.0", "en": "Time in range 3.9–10.0"},
    "tbr1": {"zh": "低于 3.9 的时间", "en": "Time below 3.9"},
    "tbr2": {"zh": "低于 3.0 的时间", "en": "Time below 3.0"},
    "tar1": {"zh": "高于 10.0 的时间", "en": "Time above 10.0"},
    "tar2": {"zh": "高于 13.9 的时间", "en": "Time above 13.9"},
    "very_low": {"zh": "极低 <3.0", "en": "Very low <3.0"},
    "low": {"zh": "低 3.0–3.9", "en": "Low 3.0–3.9"},
    "target": {"zh": "目标 3.9–10.0", "en": "Target 3.9–10.0"},
    "high": {"zh": "高 10.0–13.9", "en": "High 10.0–13.9"},
    "very_high": {"zh": "极高 >13.9", "en": "Very high >13.9"},
    "tir_bar": {"zh": "各范围时间", "en": "Time in ranges"},
    "band_chart": {
        "zh": "按一天中时间的葡萄糖分布（中位数、25–75%、5–95%；绿色为目标范围，mmol/L）",
        "en": "Glucose by time of day (median, 25–75 %, 5–95 %; green: target range, mmol/L)",
    },
    "meter": {"zh": "指尖血糖", "en": "Meter (fingerstick) glucose"},
    "readings": {"zh": "读数", "en": "Readings"},
    "per_day": {"zh": "每天读数", "en": "Readings per day"},
    "sd": {"zh": "标准差", "en": "Standard deviation"},
    "in_target": {"zh": "在目标范围内", "en": "In target range"},
    "min_max": {"zh": "最低 / 最高", "en": "Lowest / highest"},
    "hypo_events": {
        "zh": "低血糖事件 <3.9 / <3.0",
        "en": "Hypoglycaemia events <3.9 / <3.0",
    },
    "meal": {"zh": "进餐情况", "en": "Meal context"},
    "fasting": {"zh": "空腹", "en": "fasting"},
    "preprandial": {"zh": "餐前", "en": "before meal"},
    "postprandial": {"zh": "餐后", "en": "after meal"},
    "bedtime": {"zh": "睡前", "en": "bedtime"},
    "casual": {"zh": "随机", "en": "casual"},
    "unspecified": {"zh": "未注明", "en": "unspecified"},
    "bp": {"zh": "家庭血压", "en": "Home blood pressure"},
    "home_mean": {"zh": "7 天家庭血压均值", "en": "7-day home mean"},
    "morning": {"zh": "早晨均值", "en": "Morning mean"},
    "evening": {"zh": "晚间均值", "en": "Evening mean"},
    "above_target": {"zh": "高于目标的读数", "en": "Readings above target"},
    "weight": {"zh": "体重", "en": "Weight"},
    "latest": {"zh": "最近体重", "en": "Latest"},
    "change_3d": {"zh": "3 天变化", "en": "3-day change"},
    "change_7d": {"zh": "7 天变化", "en": "7-day change"},
    "trend": {"zh": "趋势", "en": "Trend"},
    "vitals": {"zh": "血氧与心率", "en": "SpO₂ and heart rate"},
    "spo2": {"zh": "血氧饱和度均值", "en": "Mean SpO₂"},
    "spo2_below": {"zh": "低于目标的血氧读数", "en": "SpO₂ readings below target"},
    "heart_rate": {"zh": "心率均值", "en": "Mean heart rate"},
    "alerts": {"zh": "本时段告警", "en": "Alerts in this period"},
    "no_alerts": {"zh": "无", "en": "none"},
    "daily_profiles": {
        "zh": "每日葡萄糖曲线（00–24 时；绿色为目标范围 3.9–10.0 mmol/L）",
        "en": "Daily glucose profiles (00–24 h; green: target range 3.9–10.0 mmol/L)",
    },
    "daily_last": {
        "zh": "仅显示本时段最后 {shown} 天（共 {total} 天）",
        "en": "only the last {shown} of {total} days are shown",
    },
    "no_data_day": {"zh": "无数据", "en": "no data"},
    "visits": {"zh": "本时段随访", "en": "Visits in this period"},
    "no_visits": {"zh": "无", "en": "none"},
    "visit_kind_home_visit": {"zh": "入户随访", "en": "home visit"},
    "visit_kind_phone": {"zh": "电话随访", "en": "phone call"},
    "visit_kind_clinic": {"zh": "门诊随访", "en": "clinic visit"},
    "visit_status_requested": {"zh": "待安排", "en": "requested"},
    "visit_status_scheduled": {"zh": "已预约", "en": "scheduled"},
    "visit_status_completed": {"zh": "已完成", "en": "completed"},
    "visit_status_cancelled": {"zh": "已取消", "en": "cancelled"},
    "visit_status_missed": {"zh": "未见到患者", "en": "missed"},
    "visit_class_controlled": {"zh": "控制满意", "en": "controlled"},
    "visit_class_not_controlled": {"zh": "控制不满意", "en": "not controlled"},
    "visit_prog_hypertension": {"zh": "高血压", "en": "hypertension"},
    "visit_prog_diabetes_type2": {"zh": "2型糖尿病", "en": "type 2 diabetes"},
    "visit_no_class": {"zh": "未分类", "en": "no classification"},
    "visit_due_by": {"zh": "截止 {date}", "en": "due by {date}"},
    "footer": {
        "zh": "由 VitalGate 根据居家设备读数生成；指标定义见国际 TIR 共识 (2019)。"
        "仅供医生参考，不构成诊断。",
        "en": "Generated by VitalGate from home-device readings; metric definitions follow "
        "the International Consensus on Time in Range (2019). For clinician review; "
        "not a diagnosis.",
    },
}
"""Every word on the page, in both languages."""


def text(key: str, lang: Lang) -> str:
    """The text of ``key`` in ``lang`` (a missing key is a programming error)."""
    return TEXT[key][lang]
