"""The customer's page behind a signed link (what a utility embeds in its e-BOK): per meter its facts, readings
with their type, daily / monthly / hourly use, incidents, CSV downloads and a self-read form; errors as pages
in the customer's language. The numbers come from dashboards.customer (monthly m3 = billing's own figure)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, ParamSpec
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import polars as pl
import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import get_db
from api.pages import i18n
from api.pages.auth import as_of_allowed, customer_from_request, customer_session_cookie
from api.routes.dashboards import parse_now, render
from dashboards import customer as cust
from dashboards import customer_figures as cf
from meterflow.config import Settings
from meterflow.periods import add_months, next_month
from meterflow.spreadsheet import safe_frame
from storage import customer_queries as cq
from storage.alerts import customer_incidents
from storage.interruptions import street_interruption
from storage.manual_reads import ManualReadError, add_manual_read, manual_window
from storage.tenancy import customer_tenancies

router = APIRouter(tags=["customer"])
P = ParamSpec("P")
PAGE_SIZE = 25


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated where it is shown."""
    return message


#: incident kinds (alerts.kind, storage.alerts.CUSTOMER_KINDS) as a customer reads them; leaks raise the banner
KINDS: dict[str, tuple[str, bool]] = {
    "continuous_flow": (N_("Continuous flow (possible leak)"), True),
    "night_flow": (N_("Night-time flow (possible leak)"), True),
    "burst": (N_("Burst: very high flow"), True),
    "leak": (N_("Leak"), True),
    "meter_alarm:leak": (N_("Leak reported by the meter"), True),
    "meter_alarm:burst": (N_("Burst reported by the meter"), True),
}
METER_ALARM = N_("Meter alarm")
READ_TYPES = {"remote": N_("remote"), "estimated": N_("estimated"), "self_read": N_("self-read"),
              "imported": N_("imported")}
STATUSES = {"active": N_("active"), "removed": N_("removed")}
ROLES = {"main": N_("main meter"), "garden": N_("garden sub-meter"), "inlet": N_("inlet meter")}
QUALITY = {"ACTUAL": N_("actual"), "ESTIMATED": N_("estimated"), "EDITED": N_("corrected")}


class PageError(Exception):
    """A customer-facing error: shown as a page in the customer's language with this status."""

    def __init__(self, status_code: int, title: str, message: str, **values: Any) -> None:
        super().__init__(title)
        self.status_code, self.title, self.message, self.values = status_code, title, message, values


BAD_LINK = (N_("This link is not valid"),
            N_("The link is incomplete, was changed or has expired. Open the page again from your customer "
               "account, or ask us for a new link."))


def as_page(handler: Callable[P, Response]) -> Callable[P, Response]:
    """Turn PageError and HTTP errors of a customer route into an error page (never raw JSON)."""

    @functools.wraps(handler)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs["request"]
        assert isinstance(request, Request)
        try:
            return handler(*args, **kwargs)
        except PageError as exc:
            return _error_page(request, exc)
        except HTTPException as exc:
            title, message = BAD_LINK if exc.status_code == 403 else (N_("Something is wrong with this address"),
                                                                       N_("Check the address or open the page again "
                                                                          "from your customer account."))
            return _error_page(request, PageError(exc.status_code, title, message))

    return wrapped


def say(lang: i18n.Lang, message: str, values: dict[str, Any]) -> str:
    """A catalogue message in the customer's language with its values in the customer's formats."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return lang.num(v, 3)
        if isinstance(v, datetime):
            return lang.when(v)
        if isinstance(v, date):
            return lang.day(v)
        return str(v)

    return lang.gettext(message).format(**{k: fmt(v) for k, v in values.items()})


def _error_page(request: Request, exc: PageError) -> HTMLResponse:
    lang = _lang(request)
    return render(request, "customer_error.html", {
        "title": lang.gettext(exc.title), "heading": lang.gettext(exc.title), "status_code": exc.status_code,
        "message": say(lang, exc.message, exc.values), "charts": {}, "at": None,
        "contrast": request.query_params.get("contrast") == "high"}, status_code=exc.status_code)


# --------------------------------------------------------------------------------------------- access


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _lang(request: Request) -> i18n.Lang:
    settings = _settings(request)
    return i18n.for_locale(i18n.request_locale(request, settings.api.locale), settings.timezone)


def authorise(request: Request, conn: psycopg.Connection, customer_ref: str, sig: str | None) -> list[dict[str, Any]]:
    """The customer's meters, if the link (or the customer session it left) is for this customer and the
    customer exists; each meter carries `visible_from`, the customer's move-in (storage.tenancy). `?now=` is
    for analysts and demos only."""
    try:
        customer_from_request(request)  # the path's customer with a valid ?sig=, or its signed session
    except HTTPException as exc:
        raise PageError(status.HTTP_403_FORBIDDEN, *BAD_LINK) from exc
    if request.query_params.get("now") and not as_of_allowed(request):
        raise PageError(status.HTTP_403_FORBIDDEN, *BAD_LINK)
    tenancy = customer_tenancies(conn, customer_ref, datetime.now(UTC))
    meters = [{**m, "visible_from": tenancy[m["meter_id"]][0]} for m in cq.customer_meters(conn, customer_ref)
              if m["meter_id"] in tenancy]
    if not meters:
        raise PageError(status.HTTP_404_NOT_FOUND, N_("Customer not found"),
                        N_("We have no meters for customer {customer}. If the number is right, please contact us."),
                        customer=customer_ref)
    return meters


def _point(meters: list[dict[str, Any]], meter_id: str | None) -> tuple[list[cust.SupplyPoint], cust.SupplyPoint]:
    points = cust.supply_points(meters)
    if meter_id is None:
        return points, points[0]
    for p in points:
        if meter_id in p.meter_ids:
            return points, p
    raise PageError(status.HTTP_403_FORBIDDEN, N_("This meter is not on your account"),
                    N_("Meter {meter} does not belong to this customer account."), meter=meter_id)


def _keep(request: Request, **extra: Any) -> str:
    """Query string of a link on the page: the signature, as-of time, language and contrast carried along."""
    keep = [(k, v) for k, v in request.query_params.multi_items() if k in ("sig", "now", "lang", "contrast")]
    return urlencode([*[(k, v) for k, v in keep if k not in extra], *[(k, v) for k, v in extra.items()
                                                                      if v is not None]])


# --------------------------------------------------------------------------------------------- page


def _months(this_month: date, n: int = 12) -> list[date]:
    return [add_months(this_month, -i) for i in range(n - 1, -1, -1)]


def _monthly_grid(monthly: pl.DataFrame, months: list[date]) -> pl.DataFrame:
    grid = pl.DataFrame({"month": months}, schema={"month": pl.Date})
    return grid.join(monthly, on="month", how="left").with_columns(pl.col("complete").fill_null(False))


def _page_context(request: Request, conn: psycopg.Connection, customer_ref: str, meters: list[dict[str, Any]],
                  meter_id: str | None, now: str | None, page: int) -> dict[str, Any]:
    settings = _settings(request)
    lang = _lang(request)
    tz = settings.timezone
    points, point = _point(meters, meter_id)
    at = parse_now(now, tz)
    today = at.astimezone(ZoneInfo(tz)).date()
    end = today + timedelta(days=1)
    daily = cust.daily_litres(conn, point, end - timedelta(days=30), end, tz)
    daily_ly = cust.daily_litres(conn, point, end - timedelta(days=30 + 364), end - timedelta(days=364), tz)
    hour_end = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    hourly = cust.hourly_litres(conn, point, hour_end - timedelta(hours=168), hour_end, tz)
    months = _months(date(today.year, today.month, 1))
    monthly = _monthly_grid(cust.monthly_m3(conn, settings, point, months[0], next_month(months[-1]), today, at),
                            months)
    ly_months = [add_months(m, -12) for m in months]
    last_year = _monthly_grid(cust.monthly_m3(conn, settings, point, ly_months[0], next_month(ly_months[-1]),
                                              today, at), ly_months)
    # leak incidents of all the customer's meters (a leak behind the garden meter shows on the main page too):
    # open ones and those closed in the last 12 months
    since = min((m["visible_from"] for m in meters if m.get("visible_from")), default=None)
    incidents = [i for i in customer_incidents(conn, [m["meter_id"] for m in meters], at, days=365)
                 if since is None or i.get("last_seen") is None or i["last_seen"].date() >= since]
    readings, total = cq.readings_page(conn, point.meter_ids, at, PAGE_SIZE, (page - 1) * PAGE_SIZE, tz,
                                       since=point.visible_from)
    cards = []
    for m in reversed(point.meters):
        last = cq.last_read(conn, m["meter_id"], at)
        cards.append({**m, "status": cust.meter_status(m, today), "verification": cust.verification(m, today),
                      "last_read": last})
    last_year = last_year.with_columns(pl.when(pl.col("full") & pl.col("complete")).then(pl.col("consumption_m3"))
                                       .alias("consumption_m3"))
    ly_by_month = dict(zip(last_year["month"].to_list(), last_year["consumption_m3"].to_list(), strict=True))
    avg_now = cust.average_l_per_day(daily.filter(pl.col("day") < today))  # today is not over yet
    charts = {
        "daily": cf.daily_figure(daily, point.exchanges, lang, daily_ly, avg_now),
        "monthly": cf.monthly_figure(monthly, last_year, lang, point.exchanges),
        "hourly": cf.hourly_figure(hourly, lang),
    }
    incident_rows = []
    for r in incidents:
        label, leak = KINDS.get(r["kind"], (METER_ALARM, False))
        incident_rows.append({**r, "label": label, "leak": leak or "leak" in r["kind"]})
    recent = daily.filter(pl.col("litres").is_not_null() & (pl.col("day") >= today - timedelta(days=2)))
    base = f"/c/{quote(customer_ref, safe='')}/meters/{quote(point.current['meter_id'], safe='')}"
    return {
        "title": lang.gettext("Your water use"),
        "customer": customer_ref,
        "at": at,
        "now_raw": now,
        "points": points,
        "point": point,
        "cards": cards,
        "active_meters": [m for p in points for m in reversed(p.meters) if cust.meter_status(m, today) == "active"],
        "charts": {k: cf.figure_json(v) for k, v in charts.items()},
        "avg_now": avg_now,
        "avg_last_year": cust.average_l_per_day(daily_ly.filter(pl.col("day") < today - timedelta(days=364))),
        "missing_days": int(daily["missing"].sum()),
        "month_so_far": monthly["consumption_m3"][-1],
        "monthly": [{**r, "last_year": ly_by_month.get(add_months(r["month"], -12)),
                     "exchange": any(d.replace(day=1) == r["month"] for d in point.exchanges)}
                    for r in monthly.iter_rows(named=True)],
        "daily_rows": daily.filter(pl.col("in_service")).to_dicts(),
        "incidents": incident_rows,
        "interruption": street_interruption(conn, customer_ref),
        "open_leaks": [r for r in incident_rows if r["leak"] and r["state"] == "open"],
        "recent_leaks": [r for r in incident_rows if r["leak"] and r["state"] != "open"
                         and (r["resolved_at"] or r["last_seen"]) >= at - timedelta(days=30)],
        "recent_data": not recent.is_empty(),
        "readings": readings.to_dicts(),
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "total_readings": total,
        "base": base,
        "keep": lambda **kw: _keep(request, **kw),
        "kinds": KINDS, "read_types": READ_TYPES, "statuses": STATUSES, "roles": ROLES, "quality": QUALITY,
        "contrast": request.query_params.get("contrast") == "high",
        "form_time": at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M") if now
        else datetime.now(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M"),
        "saved": request.query_params.get("saved"),
        "form": None,
    }


@router.get("/c/{customer_ref}", response_class=HTMLResponse, summary="Customer page (signed link)")
@router.get("/c/{customer_ref}/meters/{meter_id}", response_class=HTMLResponse,
            summary="Customer page of one of the customer's meters (and the meters it replaced)")
@as_page
def customer_page(
    request: Request,
    customer_ref: str,
    meter_id: str | None = None,
    sig: str | None = Query(None, description="HMAC from `meterflow serve link --customer`"),
    now: str | None = Query(None, description="as-of time (ISO) for simulated data"),
    page: str = Query("1", description="page of the readings table (1 = newest)"),
    conn: psycopg.Connection = Depends(get_db),
) -> Response:
    meters = authorise(request, conn, customer_ref, sig)
    number = int(page) if page.isdigit() and 0 < int(page) <= 100_000 else 1  # no JSON error for a bad page
    response = render(request, "customer.html", _page_context(request, conn, customer_ref, meters, meter_id, now,
                                                              number))
    response.headers.append("set-cookie", customer_session_cookie(request, customer_ref))
    return response


# --------------------------------------------------------------------------------------------- self-read


def parse_index(text: str) -> float | None:
    """An index as a customer types it: decimal comma or point, spaces between thousands."""
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        return None


#: storage.manual_reads' refusal codes -> what the customer reads (the checks themselves live there, once)
SELF_READ_REFUSALS = {
    "negative_index": N_("The index cannot be negative."),
    "beyond_register": N_("The index {index} m\u00b3 is larger than this meter can show."),
    "time_in_future": N_("The time {time} is in the future. Give the time when you read the meter."),
    "time_out_of_window": N_("The date {time} is too far in the past."),
    "before_install": N_("This meter was installed on {day}; the reading is dated before that."),
    "after_removal": N_("This meter was removed on {day}; please read your new meter."),
    "below_last": N_("The index {index} m\u00b3 is below the last reading, {last} m\u00b3 on {last_time}. "
                     "Check the digits (only the black ones count)."),
    "conflict": N_("A different reading is already stored for this meter at that time. Choose the exact time you "
                   "read the meter."),
}


def _not_saved(message: str, status_code: int = status.HTTP_422_UNPROCESSABLE_CONTENT, **values: Any) -> PageError:
    return PageError(status_code, N_("Your reading was not saved"), message, **values)


def parse_self_read(settings: Settings, time_text: str, index_text: str) -> tuple[datetime, float]:
    """The form's time (local when it has no offset) and index, or a PageError (422) saying what to fix; the
    reading rules are storage.manual_reads' (add_manual_read)."""
    value = parse_index(index_text)
    if value is None:
        raise _not_saved(N_("The index \u201c{text}\u201d is not a number. Type the black digits on the meter, "
                            "e.g. 123,456."), text=index_text)
    try:
        when = datetime.fromisoformat(time_text.strip())
    except ValueError as exc:
        raise _not_saved(N_("Give the date and time when you read the meter.")) from exc
    return (when if when.tzinfo else when.replace(tzinfo=ZoneInfo(settings.timezone))), value


def refusal_page_error(exc: ManualReadError) -> PageError:
    """A refused self-read in the customer's words; a refusal without its own words gets the general one."""
    message = SELF_READ_REFUSALS.get(exc.code, N_("This reading cannot be accepted. Please check it and try again."))
    code = status.HTTP_409_CONFLICT if exc.code == "conflict" else status.HTTP_422_UNPROCESSABLE_CONTENT
    return _not_saved(message, code, **exc.values)


@router.post("/c/{customer_ref}/meters/{meter_id}/self-read", response_class=HTMLResponse,
             summary="Store a customer's self-read of one of their meters")
@as_page
def self_read(
    request: Request,
    customer_ref: str,
    meter_id: str,
    sig: str | None = Query(None),
    now: str | None = Query(None),
    time: str = Form("", description="when the meter was read (local date-time)"),
    index: str = Form("", description="the index in m3; decimal comma accepted"),
    conn: psycopg.Connection = Depends(get_db),
) -> Response:
    settings = _settings(request)
    meters = authorise(request, conn, customer_ref, sig)
    meter = next((m for m in meters if m["meter_id"] == meter_id), None)
    if meter is None:
        _point(meters, meter_id)  # raises: not this customer's meter
        raise AssertionError
    try:
        when, value = parse_self_read(settings, time, index)
        try:
            add_manual_read(conn, meter_id, when, value,
                            window=manual_window(settings.plausibility, settings.vee.future_tolerance_s),
                            note=f"self-read by customer {customer_ref} (customer page)",
                            entered_by=f"customer:{customer_ref}")
        except ManualReadError as refused:
            raise refusal_page_error(refused) from refused
    except PageError as exc:
        conn.rollback()
        context = _page_context(request, conn, customer_ref, meters, meter_id, now, 1)
        context["form"] = {"meter_id": meter_id, "time": time, "index": index,
                           "error": say(_lang(request), exc.message, exc.values)}
        return render(request, "customer.html", context, status_code=exc.status_code)
    target = f"/c/{quote(customer_ref, safe='')}/meters/{quote(meter_id, safe='')}?{_keep(request, saved=meter_id)}"
    return RedirectResponse(target + "#readings", status_code=status.HTTP_303_SEE_OTHER)


# --------------------------------------------------------------------------------------------- downloads


def _csv(request: Request, df: pl.DataFrame, filename: str) -> Response:
    """CSV as a spreadsheet of the page's language opens it: `;` and decimal comma in Polish."""
    polish = _lang(request).code == "pl"
    text = safe_frame(df).write_csv(separator=";" if polish else ",", decimal_comma=polish)
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _readings_table(conn: psycopg.Connection, settings: Settings, point: cust.SupplyPoint,
                    at: datetime) -> pl.DataFrame:
    rows, _total = cq.readings_page(conn, point.meter_ids, at, 10_000_000, 0, settings.timezone,
                                    since=point.visible_from)
    return rows.select(
        "meter_id",
        pl.col("time").dt.convert_time_zone(settings.timezone).dt.strftime("%Y-%m-%dT%H:%M:%S%:z").alias("time"),
        "index_m3", "consumption_m3", "read_type")


def _monthly_table(conn: psycopg.Connection, settings: Settings, point: cust.SupplyPoint,
                   at: datetime) -> pl.DataFrame:
    today = at.astimezone(ZoneInfo(settings.timezone)).date()
    months = _months(date(today.year, today.month, 1), 24)
    monthly = _monthly_grid(cust.monthly_m3(conn, settings, point, months[0], next_month(months[-1]), today, at),
                            months)
    return monthly.select(pl.col("month").dt.strftime("%Y-%m"), "consumption_m3", "quality", "complete")


DOWNLOADS = {"readings": _readings_table, "monthly": _monthly_table}


@router.get("/c/{customer_ref}/meters/{meter_id}/{table}.csv",
            summary="A customer's readings (table=readings) or monthly consumption (table=monthly) as CSV")
@as_page
def download_csv(request: Request, customer_ref: str, meter_id: str, table: str, sig: str | None = Query(None),
                 now: str | None = Query(None), conn: psycopg.Connection = Depends(get_db)) -> Response:
    settings = _settings(request)
    _, point = _point(authorise(request, conn, customer_ref, sig), meter_id)
    if table not in DOWNLOADS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such download")
    return _csv(request, DOWNLOADS[table](conn, settings, point, parse_now(now, settings.timezone)),
                f"{table}-{meter_id}.csv")
