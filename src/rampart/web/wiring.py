"""Binds every router's service slots to the container's instances: the one place that knows
both (see docs/decisions/0001-services-not-container.md).

A router names the services it uses by slot and type (`rampart.platform.http.services`); which
instance fills each slot is chosen here, once, when the app is built.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from rampart.access import api as access_api
from rampart.access import routes as access_routes
from rampart.apikeys import api as apikeys_api
from rampart.audit import api as audit_api
from rampart.bootstrap import Container
from rampart.identity import deps as identity_deps
from rampart.identity.flows import FlowServices
from rampart.platform.http import deps
from rampart.platform.http.services import BoundServices
from rampart.ratelimit import api as ratelimit_api
from rampart.risk import api as risk_api
from rampart.trading import api as trading_api
from rampart.web import health


def bound_services(container: Container) -> BoundServices:
    """Each slot the routers and pages use, bound to the container's instance."""
    services = BoundServices()
    # The platform.
    services.bind(deps.settings_slot, container.settings)
    services.bind(deps.clock_slot, container.clock)
    services.bind(deps.database_slot, container.db)
    services.bind(deps.unit_of_work_slot, container.uow)
    services.bind(health.redis_slot, container.redis)
    # Access: who is asking, and the record of every permission check.
    services.bind(access_api.authenticators_slot, container.authenticators)
    services.bind(access_api.decision_recorder_slot, container.access_recorder)
    services.bind(access_api.enrolled_factors_slot, container.mfa)
    services.bind(access_routes.access_slot, container.access)
    services.bind(ratelimit_api.rate_limits_slot, container.ratelimits)
    services.bind(audit_api.audit_reader_slot, container.audit)
    # The domains.
    services.bind(identity_deps.identity_slot, container.identity)
    services.bind(identity_deps.mfa_slot, container.mfa)
    services.bind(
        identity_deps.flow_services_slot,
        FlowServices(
            identity=container.identity,
            db=container.db,
            uow=container.uow,
            clock=container.clock,
            reauthentication_minutes=container.settings.identity.reauthentication_minutes,
            has_mfa=container.mfa.has_mfa,
            audit_log=container.audit_log,
        ),
    )
    services.bind(apikeys_api.apikeys_slot, container.apikeys)
    services.bind(trading_api.orders_slot, container.orders)
    services.bind(risk_api.risk_service_slot, container.risk)
    services.bind(risk_api.risk_gate_slot, container.risk_gate)
    return services


def container_of(conn: HTTPConnection) -> Container:
    """The container, for the console pages (the web layer sits above the bootstrap; the
    domains' routers see only their slots)."""
    container: Container = conn.app.state.container
    return container
