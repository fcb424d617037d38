"""The identity services the HTTP routes and console pages take as dependencies (see
`rampart.platform.http.services`; `rampart.web.wiring` binds them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from rampart.identity.flows import FlowServices
from rampart.identity.mfa.service import MfaService
from rampart.identity.service import IdentityService
from rampart.platform.http.services import ServiceSlot

#: Accounts, sign-in, sessions, tokens and devices.
identity_slot: ServiceSlot[IdentityService] = ServiceSlot("identity service")
#: Second factors and step-up.
mfa_slot: ServiceSlot[MfaService] = ServiceSlot("mfa service")
#: What the multi-step flows (`rampart.identity.flows`) use.
flow_services_slot: ServiceSlot[FlowServices] = ServiceSlot("identity flows")

IdentityDep = Annotated[IdentityService, Depends(identity_slot)]
MfaDep = Annotated[MfaService, Depends(mfa_slot)]
FlowsDep = Annotated[FlowServices, Depends(flow_services_slot)]
