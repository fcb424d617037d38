"""The audit log over HTTP: search and export for `compliance:audit`; public keys for anyone.

Proofs and checkpoints are what an outside verifier needs; the public keys (C2SP verifier keys
with their ids and validity) are public so that anyone holding a checkpoint can check it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from rampart.access.api import requires
from rampart.access.domain import Permission, Principal
from rampart.audit.domain import canonical_json
from rampart.audit.service import AuditReader, SearchQuery
from rampart.platform.http.access import public
from rampart.platform.http.inputs import MAX_INT64, Text
from rampart.platform.http.problems import problem_responses
from rampart.platform.http.services import ServiceSlot

router = APIRouter(prefix="/audit", tags=["audit"])
Compliance = Annotated[Principal, Depends(requires(Permission.COMPLIANCE_AUDIT))]
CSV_COLUMNS = (
    "seq",
    "ts_ns",
    "actor",
    "action",
    "outcome",
    "subject",
    "request_id",
    "client_ip",
    "details",
)


#: Search, proofs, checkpoints and verification of the audit log.
audit_reader_slot: ServiceSlot[AuditReader] = ServiceSlot("audit reader")
Reader = Annotated[AuditReader, Depends(audit_reader_slot)]


def search_query(
    since_ns: Annotated[
        int | None, Query(ge=0, le=MAX_INT64, description="From this time (ns, inclusive)")
    ] = None,
    until_ns: Annotated[
        int | None, Query(ge=0, le=MAX_INT64, description="Before this time (ns)")
    ] = None,
    actor: Annotated[Text | None, Query(max_length=200)] = None,
    subject: Annotated[Text | None, Query(max_length=200)] = None,
    action: Annotated[Text | None, Query(max_length=100)] = None,
    after: Annotated[
        int | None, Query(ge=-1, le=MAX_INT64, description="Cursor: the last seq seen")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> SearchQuery:
    return SearchQuery(since_ns, until_ns, actor, subject, action, after, limit)


Search = Annotated[SearchQuery, Depends(search_query)]
Seq = Annotated[int, Path(ge=0, le=MAX_INT64)]
TreeSize = Annotated[int, Query(ge=1, le=MAX_INT64)]
MaybeTreeSize = Annotated[int | None, Query(ge=1, le=MAX_INT64)]


@router.get("/entries")
def search_entries(_: Compliance, audit: Reader, query: Search) -> dict[str, Any]:
    """Entries matching every given filter, oldest first; follow `next` for the next page."""
    entries, next_cursor = audit.search(query)
    return {"entries": entries, "next": next_cursor}


@router.get(
    "/entries.csv",
    response_class=StreamingResponse,
    responses={
        200: {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
def export_csv(_: Compliance, audit: Reader, query: Search) -> StreamingResponse:
    """The same page as CSV (details as canonical JSON in one column)."""
    entries, next_cursor = audit.search(query)

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for entry in entries:
            values = [
                entry[c] if c != "details" else canonical_json(entry[c]).decode()
                for c in CSV_COLUMNS
            ]
            # Cells starting with = + - @ are read as formulas by spreadsheets: neutralise them.
            writer.writerow(
                ["'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v for v in values]
            )
        yield buffer.getvalue()

    headers = {"content-disposition": 'attachment; filename="audit.csv"'}
    if next_cursor is not None:
        headers["x-next-cursor"] = str(next_cursor)
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/entries/{seq}")
def get_entry(seq: Seq, _: Compliance, audit: Reader) -> dict[str, Any]:
    return audit.entry(seq)


@router.get("/entries/{seq}/inclusion", responses=problem_responses(409))
def inclusion(
    seq: Seq,
    _: Compliance,
    audit: Reader,
    tree_size: MaybeTreeSize = None,
) -> dict[str, Any]:
    """Inclusion proof of entry `seq` (default: in the newest signed checkpoint's tree)."""
    return audit.inclusion(seq, tree_size)


@router.get("/consistency", responses=problem_responses(409))
def consistency(
    _: Compliance,
    audit: Reader,
    old_size: TreeSize,
    new_size: MaybeTreeSize = None,
) -> dict[str, Any]:
    """Consistency proof between two tree sizes (default new size: newest checkpoint)."""
    return audit.consistency(old_size, new_size)


@router.get("/checkpoints")
def checkpoints(
    _: Compliance,
    audit: Reader,
    before_size: MaybeTreeSize = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Signed checkpoints, newest first."""
    return {"checkpoints": audit.checkpoints(before_size=before_size, limit=limit)}


@router.get("/checkpoints/latest")
def latest_checkpoint(_: Compliance, audit: Reader) -> dict[str, Any]:
    return audit.latest_checkpoint()


@router.get("/keys", dependencies=[Depends(public)])
def signing_keys(audit: Reader) -> dict[str, Any]:
    """The log's public keys (C2SP verifier keys), current and retired, with their validity."""
    return {"origin": audit.origin, "keys": audit.signing_keys()}
