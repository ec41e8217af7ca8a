"""The interruptions map without any tile server (utility networks are often offline): premises and
interrupted streets drawn from the registry's coordinates as a plotly scatter on a plain lon/lat plane,
and the same facts as GeoJSON for the utility's GIS."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import plotly.graph_objects as go

from dashboards.figures import ENGLISH, FONT, GREY, ORANGE, RED, Texts

BLUE_OK = "#1f6fb2"


def _streets(points: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        out[(p["district"] or "", p["street"] or "")].append(p)
    return out


def map_figure(points: list[dict[str, Any]], public: bool = False, lang: Texts = ENGLISH) -> go.Figure:
    """Premises (grey: supplied, red: in an open interruption, orange: open meter alert - dispatchers only)
    and a label on each interrupted street. Public: no meter ids, no alerts."""
    _ = lang.gettext
    fig = go.Figure()
    groups = (("supplied", lambda p: p["interruption_id"] is None and (public or not p["open_alerts"]), GREY),
              ("open alert", lambda p: not public and p["interruption_id"] is None and p["open_alerts"], ORANGE),
              ("no water", lambda p: p["interruption_id"] is not None, RED))
    names = {"supplied": _("supplied"), "open alert": _("open alert"), "no water": _("no water")}
    for group, keep, colour in groups:
        sel = [p for p in points if keep(p)]
        if not sel and group == "open alert":
            continue
        name = names[group]
        text = [f"{p['street'] or ''} {p['house_number'] or ''}".strip() + ("" if public else f" · {p['meter_id']}")
                for p in sel]
        fig.add_trace(go.Scatter(x=[p["lon"] for p in sel], y=[p["lat"] for p in sel], mode="markers", name=name,
                                 text=text, hoverinfo="text",
                                 marker={"size": 9 if group == "no water" else 7, "color": colour,
                                         "line": {"width": 0.5, "color": "white"}}))
    cut = [(k, v) for k, v in _streets(points).items() if any(p["interruption_id"] is not None for p in v)]
    if cut:
        fig.add_trace(go.Scatter(
            x=[sum(p["lon"] for p in v) / len(v) for _k, v in cut], y=[max(p["lat"] for p in v) for _k, v in cut],
            mode="text", text=[_("no water: %(street)s") % {"street": k[1]} for k, _v in cut],
            textposition="top center", name="streets",
            textfont={"color": RED, "size": 12}, hoverinfo="skip", showlegend=False))
    lat0 = sum(p["lat"] for p in points) / len(points) if points else 0.0
    fig.update_layout(template="plotly_white", font={"family": FONT, "size": 12}, height=560,
                      margin={"l": 40, "r": 20, "t": 40, "b": 40},
                      title={"text": _("Water supply: interrupted streets") if public
                             else _("Water supply: interrupted streets and meter alerts"), "x": 0.01},
                      separators=lang.patterns["separators"],
                      legend={"orientation": "h", "y": 1.02, "x": 1.0, "xanchor": "right"})
    # an equirectangular plane: one degree of longitude is cos(latitude) of one of latitude
    fig.update_yaxes(scaleanchor="x", scaleratio=1 / max(math.cos(math.radians(lat0)), 0.1), title=_("latitude"))
    fig.update_xaxes(title=_("longitude"))
    return fig


def geojson(points: list[dict[str, Any]], interruptions: list[dict[str, Any]], public: bool = False) -> dict[str, Any]:
    """A FeatureCollection: one Point per premise (public: only those without water, no meter id) and one
    MultiPoint per open interruption with its street or district, times and kind."""
    feats: list[dict[str, Any]] = []
    for p in points:
        if public and p["interruption_id"] is None:
            continue
        props: dict[str, Any] = {"type": "premise", "street": p["street"], "house_number": p["house_number"],
                                 "district": p["district"], "no_water": p["interruption_id"] is not None}
        if not public:
            props.update(meter_id=p["meter_id"], open_alerts=p["open_alerts"], interruption_id=p["interruption_id"])
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
                      "properties": props})
    for i in interruptions:
        coords = [[p["lon"], p["lat"]] for p in points if p["interruption_id"] == i["id"]]
        props = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in i.items()
                 if k in ("id", "kind", "cause", "district", "street", "state", "start_at", "end_at", "expected_end",
                          "planned_note")}
        props["type"] = "interruption"
        props["planned"] = i.get("planned_id") is not None
        feats.append({"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": coords} if coords
                      else None, "properties": props})
    return {"type": "FeatureCollection", "features": feats}
