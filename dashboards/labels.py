"""Human labels for the identifiers pages show: alert kinds, severities, states, close reasons, workflow actions,
meter roles. English by default (CLI, JSON API); `Labels(gettext)` gives them in a page's language."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from meterflow.messages import N_
from storage.alert_workflow import CLOSE_REASONS

__all__ = ["ACTION_LABELS", "ALARM_LABELS", "KIND_LABELS", "N_", "Labels", "kind_label"]

KIND_LABELS: dict[str, str] = {
    "leak": N_("Leak"),
    "continuous_flow": N_("Continuous flow (leak)"),
    "night_flow": N_("Night flow (leak)"),
    "burst": N_("Burst"),
    "backflow": N_("Backflow (reverse flow)"),
    "stuck": N_("Stuck register"),
    "silent": N_("Silent meter (no reading)"),
    "interruption": N_("Supply interruption"),
}
ALARM_LABELS: dict[str, str] = {
    "leak": N_("leak"), "burst": N_("burst"), "tamper": N_("tamper"), "dry": N_("dry pipe"),
    "reverse": N_("reverse flow"), "low_battery": N_("low battery"), "magnetic": N_("magnetic tampering"),
    "error": N_("error"),
}
ACTION_LABELS: dict[str, str] = {
    "acknowledge": N_("acknowledged"), "assign": N_("assigned"), "comment": N_("commented"), "close": N_("closed"),
    "reopen": N_("reopened"),
}
SEVERITY_LABELS: dict[str, str] = {"critical": N_("critical"), "warning": N_("warning"), "info": N_("info")}
STATE_LABELS: dict[str, str] = {"open": N_("open"), "resolved": N_("closed"), "closed": N_("closed")}
#: why an alert was closed: the detector's reasons (analytics.leaks) and the dispatcher's (alert_workflow)
REASON_LABELS: dict[str, str] = {
    "flow_stopped": N_("flow stopped"), "flowing_again": N_("flowing again"), "reporting_again": N_("reporting again"),
    "alarm_cleared": N_("alarm cleared"), "resolved": N_("resolved"), **CLOSE_REASONS,
}
ROLE_LABELS: dict[str, str] = {"main": N_("main meter"), "garden": N_("garden sub-meter"), "inlet": N_("inlet meter")}
CAUSE_LABELS: dict[str, str] = {"standstill": N_("meters stand still"), "dry_alarm": N_("dry pipe alarms"),
                                 "silence": N_("meters silent"), "planned": N_("planned works")}
QUALITY_LABELS: dict[str, str] = {"ACTUAL": N_("actual"), "ESTIMATED": N_("estimated"), "EDITED": N_("corrected")}


def _same(message: str) -> str:
    return message


def kind_label(kind: str | None, gettext: Callable[[str], str] = _same) -> str:
    """`continuous_flow` -> "Continuous flow (leak)"; `meter_alarm:tamper` -> "Meter alarm: tamper"."""
    if not kind:
        return "—"
    if kind in KIND_LABELS:
        return gettext(KIND_LABELS[kind])
    if kind.startswith("meter_alarm:"):
        word = kind.split(":", 1)[1]
        alarm = gettext(ALARM_LABELS[word]) if word in ALARM_LABELS else word.replace("_", " ")
        return gettext(N_("Meter alarm: %(alarm)s")) % {"alarm": alarm}
    return kind.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Labels:
    """The labels in one language (`gettext` of the page); an unknown code is shown as it is, `_` as a space."""

    gettext: Callable[[str], str] = _same

    def _pick(self, table: dict[str, str], code: str | None) -> str:
        if code is None or code == "":
            return "—"
        return self.gettext(table[code]) if code in table else code.replace("_", " ")

    def kind(self, kind: str | None) -> str:
        return kind_label(kind, self.gettext)

    def severity(self, code: str | None) -> str:
        return self._pick(SEVERITY_LABELS, code)

    def state(self, code: str | None) -> str:
        return self._pick(STATE_LABELS, code)

    def reason(self, code: str | None) -> str:
        return self._pick(REASON_LABELS, code)

    def action(self, code: str | None) -> str:
        return self._pick(ACTION_LABELS, code)

    def role(self, code: str | None) -> str:
        return self._pick(ROLE_LABELS, code)

    def quality(self, code: str | None) -> str:
        return self._pick(QUALITY_LABELS, code)

    def cause(self, code: str | None) -> str:
        return self._pick(CAUSE_LABELS, code)
