"""One router per area; api.app includes each router listed in ROUTERS."""

ROUTERS: list[str] = [
    "api.routes.health:router",
    "api.routes.billing:router",
    "api.routes.readings:router",
    "api.routes.static:router",
    "api.routes.dashboards:router",
    "api.routes.customer:router",
    "api.routes.console:router",
    "api.routes.alerts:router",
    "api.routes.interruptions:router",
]
