"""Human labels for the identifiers pages show: alert kinds, close reasons, workflow actions."""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark a label for the translation catalogue (api/locales); pages translate it with `_()` when shown."""
    return message


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
    "leak": "leak", "burst": "burst", "tamper": "tamper", "dry": "dry pipe", "reverse": "reverse flow",
    "low_battery": "low battery", "magnetic": "magnetic tampering", "error": "error",
}
ACTION_LABELS: dict[str, str] = {
    "acknowledge": "acknowledged", "assign": "assigned", "comment": "commented", "close": "closed",
    "reopen": "reopened",
}


def kind_label(kind: str | None) -> str:
    """`continuous_flow` -> "Continuous flow (leak)"; `meter_alarm:tamper` -> "Meter alarm: tamper"."""
    if not kind:
        return "—"
    if kind in KIND_LABELS:
        return KIND_LABELS[kind]
    if kind.startswith("meter_alarm:"):
        word = kind.split(":", 1)[1]
        return f"Meter alarm: {ALARM_LABELS.get(word, word.replace('_', ' '))}"
    return kind.replace("_", " ").capitalize()
