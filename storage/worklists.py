"""The lists a dispatcher works from: open incidents, no-reads, zero-reads, stuck and backflow, verification
expiring, dead letters by reason. One table of list specs (title, columns, SQL); `fetch` applies the same
filters (district, street, gateway), sorting and paging to every list, and `fetch(..., limit=None)` gives
all rows for the CSV export.

Every list takes an explicit "as of" time (`now`) so simulated data can be shown, and `days` (N of
"not heard for N days" and the like). Removed meters never appear; "heard" means heard BY RADIO
(meter_last_heard is fed by radio readings only: a manual or imported read credits no gateway).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from meterflow.messages import N_

# a meter in service on the day `today`
_ACTIVE = ("(m.removal_date IS NULL OR m.removal_date > %(today)s)"
           " AND (m.install_date IS NULL OR m.install_date <= %(today)s)")
_ADDRESS = "concat_ws(' ', m.street, m.house_number) || coalesce(', ' || m.city, '')"
_LOST = """coalesce(a.volume_m3, a.rate_l_h * extract(epoch FROM (least(a.last_seen, %(now)s) - a.first_seen))
                     / 3600.0 / 1000.0)"""
_METER = f"m.meter_id, m.customer_ref, m.district, m.street, {_ADDRESS} AS address, h.gateway_id"
STUCK_KINDS = ("stuck", "backflow")
NOT_INCIDENTS = (*STUCK_KINDS, "silent")  # silent meters are the no-read list's business


def _alerts_sql(where: str) -> str:
    return f"""SELECT a.id, a.meter_id, a.kind, a.severity, m.customer_ref, m.district, m.street,
                      {_ADDRESS} AS address, h.gateway_id, a.first_seen, a.last_seen, a.rate_l_h,
                      {_LOST} AS lost_m3, a.acknowledged_by, a.assigned_to, NULL::int AS meters_out,
                      NULL::text AS cause
               FROM alerts a LEFT JOIN meters m USING (meter_id) LEFT JOIN meter_last_heard h USING (meter_id)
               WHERE a.state = 'open' AND a.first_seen <= %(now)s AND {where}"""


# supply interruptions (area-level, their own table) beside the per-meter incidents, when that table exists;
# `meters_out` and `cause` let a page word the address column in its own language
_INTERRUPTIONS = """SELECT NULL::bigint AS id, NULL::text AS meter_id, 'interruption' AS kind,
                           CASE WHEN i.kind = 'supply' THEN 'critical' ELSE 'warning' END AS severity,
                           NULL::text AS customer_ref, i.district, i.street,
                           coalesce(i.street, 'whole district') || ' (' || cardinality(i.meters) || ' meters, '
                             || i.cause || ')' AS address,
                           NULL::text AS gateway_id, i.start_at AS first_seen, coalesce(i.end_at, %(now)s) AS last_seen,
                           NULL::double precision AS rate_l_h, NULL::double precision AS lost_m3,
                           NULL::text AS acknowledged_by, NULL::text AS assigned_to,
                           cardinality(i.meters) AS meters_out, i.cause
                    FROM interruptions i WHERE i.state = 'open' AND i.start_at <= %(now)s"""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | meter | alert | time | date | num | m3 | kind | severity | code


@dataclass(frozen=True)
class WorkList:
    name: str
    title: str
    what: str  # one line under the title
    columns: tuple[Column, ...]
    sql: str  # named columns include district, street and gateway_id (the filters)
    sort: str  # default sort column
    descending: bool
    days: int | None = None  # default N, None: the list takes no N
    days_label: str = ""


_METER_COLS = (Column("customer_ref", N_("Customer")), Column("district", N_("District")),
               Column("address", N_("Address")), Column("gateway_id", N_("Gateway")))
_ALERT_COLS = (Column("id", N_("Alert"), "alert"), Column("meter_id", N_("Meter"), "meter"),
               Column("kind", N_("Kind"), "kind"), Column("severity", N_("Severity"), "severity"), *_METER_COLS,
               Column("first_seen", N_("Since"), "time"),
               Column("last_seen", N_("Last seen"), "time"), Column("rate_l_h", N_("Rate (L/h)"), "num"),
               Column("lost_m3", N_("Est. lost (m³)"), "m3"), Column("acknowledged_by", N_("Acknowledged by")),
               Column("assigned_to", N_("Assigned to")))

LISTS: dict[str, WorkList] = {w.name: w for w in (
    WorkList(
        "incidents", N_("Open incidents"), N_("Leaks, bursts, meter alarms and supply interruptions still open, the "
                                              "most water lost first."),
        _ALERT_COLS, _alerts_sql(f"a.kind NOT IN {NOT_INCIDENTS!r}"), "lost_m3", True),
    WorkList(
        "no-reads", N_("No-reads"), N_("Meters in service not heard by radio for N days or more (never heard "
                                       "included)."),
        (Column("meter_id", N_("Meter"), "meter"), *_METER_COLS,
         Column("last_heard", N_("Last heard by radio"), "time"), Column("days_silent", N_("Days silent"), "num")),
        f"""SELECT {_METER}, h.last_heard, extract(epoch FROM %(now)s - h.last_heard) / 86400.0 AS days_silent
            FROM meters m LEFT JOIN meter_last_heard h USING (meter_id)
            WHERE {_ACTIVE} AND (h.last_heard IS NULL OR h.last_heard < %(now)s - make_interval(days => %(days)s))""",
        "days_silent", True, 2, N_("not heard for (days)")),
    WorkList(
        "zero-reads", N_("Zero-reads"), N_("Meters in service read every day of the last N complete days with no "
                                           "consumption at all (stopped meter, empty premise, bypass)."),
        (Column("meter_id", N_("Meter"), "meter"), *_METER_COLS, Column("index_m3", N_("Index (m³)"), "m3"),
         Column("days_read", N_("Days read"), "num")),
        f"""SELECT {_METER}, z.index_m3, z.days_read
            FROM (SELECT meter_id, max(max_m3) AS index_m3, count(*)::int AS days_read FROM consumption_daily
                  WHERE bucket >= %(day_lo)s AND bucket < %(day_hi)s GROUP BY meter_id
                  HAVING count(*) >= %(days)s AND max(max_m3) - min(min_m3) < 0.0005) z
            JOIN meters m USING (meter_id) LEFT JOIN meter_last_heard h USING (meter_id)
            WHERE {_ACTIVE} AND m.role <> 'inlet'""",
        "meter_id", False, 7, N_("no consumption for (days)")),
    WorkList(
        "stuck", N_("Stuck and backflow"), N_("Open stuck-register and reverse-flow alerts."),
        _ALERT_COLS, _alerts_sql(f"a.kind IN {STUCK_KINDS!r}"), "first_seen", False),
    WorkList(
        "verification", N_("Verification expiring"), N_("Meters in service whose verification expires within N "
                                                      "days (or has expired)."),
        (Column("meter_id", N_("Meter"), "meter"), *_METER_COLS,
         Column("verification_expiry", N_("Expires"), "date"), Column("days_left", N_("Days left"), "num")),
        f"""SELECT {_METER}, m.verification_expiry, (m.verification_expiry - %(today)s) AS days_left
            FROM meters m LEFT JOIN meter_last_heard h USING (meter_id)
            WHERE {_ACTIVE} AND m.verification_expiry < %(today)s + %(days)s""",
        "verification_expiry", False, 90, N_("expiring within (days)")),
    WorkList(
        "dead-letters", N_("Dead letters by reason"), N_("Frames that did not decode, unresolved, per reason, "
                                                      "gateway and district."),
        (Column("error_code", N_("Reason"), "code"), Column("gateway_id", N_("Gateway")),
         Column("district", N_("District")),
         Column("frames", N_("Frames"), "num"), Column("meters", N_("Meters"), "num"),
         Column("example_meter", N_("Example meter")),
         Column("last_at", N_("Last"), "time")),
        """SELECT d.error_code, d.gateway_id, m.district, NULL::text AS street, count(*)::int AS frames,
                  count(DISTINCT d.meter_id)::int AS meters, min(d.meter_id) AS example_meter,
                  max(d.received_at) AS last_at
           FROM dead_letters d LEFT JOIN meters m USING (meter_id)
           WHERE d.resolved_at IS NULL AND d.received_at <= %(now)s
           GROUP BY d.error_code, d.gateway_id, m.district""",
        "frames", True),
)}


@dataclass(frozen=True)
class Query:
    district: str | None = None
    street: str | None = None
    gateway: str | None = None
    sort: str | None = None
    descending: bool | None = None
    page: int = 1
    per_page: int = 50
    days: int | None = None


@dataclass
class Page:
    spec: WorkList
    rows: list[dict[str, Any]]
    total: int
    query: Query
    sort: str
    descending: bool
    days: int | None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


def _params(spec: WorkList, query: Query, now: datetime, tz: str) -> dict[str, Any]:
    days = query.days if query.days is not None else spec.days
    today = now.astimezone(ZoneInfo(tz)).date()
    zone = ZoneInfo(tz)
    day_hi = datetime(today.year, today.month, today.day, tzinfo=zone)
    lo_day = today - timedelta(days=days or 0)
    return {"now": now, "today": today, "days": days or 0, "day_hi": day_hi,
            "day_lo": datetime(lo_day.year, lo_day.month, lo_day.day, tzinfo=zone),
            "district": query.district or None, "street": query.street or None, "gateway": query.gateway or None}


def fetch(conn: psycopg.Connection, name: str, query: Query, now: datetime, tz: str,
          limit: int | None = 0) -> Page:
    """One page of a list (limit=0: query.per_page rows of query.page; None: every row, for exports)."""
    spec = LISTS[name]
    if name == "incidents" and _has_table(conn, "interruptions"):
        spec = replace(spec, sql=f"{spec.sql} UNION ALL {_INTERRUPTIONS}")
    keys = {c.key for c in spec.columns}
    sort = query.sort if query.sort in keys else spec.sort
    if query.descending is not None and query.sort in keys:
        descending = query.descending
    else:  # the list's own order, or ascending by the column asked for
        descending = spec.descending if sort == spec.sort else False
    params = _params(spec, query, now, tz)
    where = """WHERE (%(district)s::text IS NULL OR t.district = %(district)s)
                 AND (%(street)s::text IS NULL OR t.street ILIKE %(street)s || '%%')
                 AND (%(gateway)s::text IS NULL OR t.gateway_id = %(gateway)s)"""
    order = f"ORDER BY t.{sort} {'DESC' if descending else 'ASC'} NULLS LAST, t.{spec.columns[0].key}"
    if limit is None:
        paging = ""
    else:
        params["limit"] = query.per_page if limit == 0 else limit
        params["offset"] = (max(query.page, 1) - 1) * query.per_page if limit == 0 else 0
        paging = "LIMIT %(limit)s OFFSET %(offset)s"
    # the total rides along (a window count is taken before LIMIT): one pass over the list, not two
    cur = conn.execute(f"SELECT t.*, count(*) OVER () AS total_rows_ FROM ({spec.sql}) t {where} {order} {paging}",
                       params)
    names = [d.name for d in cur.description or []]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    total = int(rows[0]["total_rows_"]) if rows else 0
    for row in rows:
        del row["total_rows_"]
    if not rows and limit is not None and query.page > 1:  # a page past the end still says how many there are
        count = conn.execute(f"SELECT count(*) FROM ({spec.sql}) t {where}", params).fetchone()
        total = int(count[0]) if count else 0
    return Page(spec, rows, total, query, sort, descending, params["days"] if spec.days is not None else None)


def _has_table(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def filter_options(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The values the filters offer: districts, streets and gateways of the registry."""
    districts = [r[0] for r in conn.execute("SELECT DISTINCT district FROM meters WHERE district IS NOT NULL"
                                            " ORDER BY 1")]
    streets = [r[0] for r in conn.execute("SELECT DISTINCT street FROM meters WHERE street IS NOT NULL ORDER BY 1"
                                          " LIMIT 2000")]
    gateways = [r[0] for r in conn.execute("SELECT DISTINCT gateway_id FROM meter_last_heard"
                                           " WHERE gateway_id IS NOT NULL ORDER BY 1")]
    return {"district": districts, "street": streets, "gateway": gateways}


SEARCH_COLUMNS = ("meter_id", "customer_ref", "premise_ref", "address", "district", "role", "removal_date")


def search(conn: psycopg.Connection, text: str, limit: int = 50) -> list[dict[str, Any]]:
    """Meters whose number, customer, premise or address starts with (or, for addresses, contains) the text;
    exact meter numbers first."""
    term = " ".join(text.split()).lower()
    if not term:
        return []
    cur = conn.execute(
        f"""SELECT m.meter_id, m.customer_ref, m.premise_ref, {_ADDRESS} AS address, m.district, m.role,
                   m.removal_date
            FROM meters m
            WHERE lower(m.meter_id) LIKE %(prefix)s OR lower(m.customer_ref) LIKE %(prefix)s
               OR lower(m.premise_ref) LIKE %(prefix)s OR lower(m.street) LIKE %(prefix)s
               OR lower(concat_ws(' ', m.street, m.house_number, m.postcode, m.city)) LIKE %(anywhere)s
            ORDER BY (lower(m.meter_id) = %(term)s) DESC, (lower(m.customer_ref) = %(term)s) DESC,
                     m.removal_date IS NOT NULL, m.meter_id
            LIMIT %(limit)s""",
        {"term": term, "prefix": _like(term) + "%", "anywhere": "%" + _like(term) + "%", "limit": limit},
    )
    return [dict(zip(SEARCH_COLUMNS, r, strict=True)) for r in cur.fetchall()]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
