"""The compliance console's audit pages: search the audit log, read an entry, check its proof.

`/compliance/audit` (signed in, `compliance:audit`, which as a staff permission counts only for a
sign-in that proved a security key) searches by action, actor, subject, outcome and time range,
oldest first, paged by a sequence cursor with a bounded page size. `/compliance/audit/{seq}` shows
every field of one entry and its Merkle inclusion proof in the tree of the newest signed
checkpoint, checked here by the log's own verifiers (`verify_inclusion`, `verify_checkpoint`)
against the public signing keys, with every value shown so that anyone can check it again.
`/compliance/audit/export.jsonl` downloads the filtered search as JSON lines, bounded like a page.

Everything is read through `AuditReader`, as the audit API reads it; nothing here writes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rampart.access.api import requires
from rampart.access.domain import Permission
from rampart.audit.merkle import verify_inclusion
from rampart.audit.notes import parse_verifier_key, verify_checkpoint
from rampart.audit.proofs import ProofUnavailableError
from rampart.audit.service import AuditReader, SearchQuery
from rampart.kernel.errors import ValidationError
from rampart.platform.http.inputs import MAX_INT64
from rampart.web.pages.account import page_user
from rampart.web.pages.templating import render

router = APIRouter(include_in_schema=False)

read_audit = requires(Permission.COMPLIANCE_AUDIT)

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
#: Rows one export may hold; the response names the cursor of the rest (`x-next-cursor`).
EXPORT_LIMIT = 10_000
#: The outcomes the log records (`AuditEvent.outcome`); "any" filters on none.
OUTCOMES = ("any", "success", "failure", "denied", "approved")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


class UnknownAuditFilterError(ValidationError):
    title = "The audit search filter is not valid"


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """The search form as typed: kept as text so that the form shows it back unchanged."""

    action: str = ""
    actor: str = ""
    subject: str = ""
    outcome: str = "any"
    since: str = ""
    until: str = ""
    size: int = DEFAULT_PAGE_SIZE
    after: int | None = None

    def query(self, limit: int) -> SearchQuery:
        return SearchQuery(
            since_ns=_ns_of(self.since, "From"),
            until_ns=_ns_of(self.until, "Until"),
            actor=self.actor or None,
            subject=self.subject or None,
            action=self.action or None,
            after_seq=self.after,
            limit=limit,
            outcome=None if self.outcome == "any" else self.outcome,
        )

    def params(self, **changes: Any) -> str:
        """The query string of these filters (with `changes`), for paging and export links."""
        values = {
            "action": self.action,
            "actor": self.actor,
            "subject": self.subject,
            "outcome": self.outcome,
            "since": self.since,
            "until": self.until,
            "size": str(self.size),
            "after": "" if self.after is None else str(self.after),
        }
        values.update({k: "" if v is None else str(v) for k, v in changes.items()})
        return urlencode({k: v for k, v in values.items() if v and v != "any"})


def _ns_of(text: str, label: str) -> int | None:
    """A UTC time typed in the form (a `datetime-local` value, or a date) in nanoseconds."""
    if not text:
        return None
    for pattern in _TIME_FORMATS:
        try:
            moment = datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
        return int(moment.timestamp()) * 1_000_000_000
    raise UnknownAuditFilterError(f"{label}: give a UTC time as YYYY-MM-DDTHH:MM.")


def audit_filters(
    action: str = Query("", max_length=100),
    actor: str = Query("", max_length=200),
    subject: str = Query("", max_length=200),
    outcome: str = Query("any", max_length=20),
    since: str = Query("", max_length=32),
    until: str = Query("", max_length=32),
    size: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=10_000),
    after: int | None = Query(None, ge=-1, le=MAX_INT64),
) -> AuditFilters:
    if outcome not in OUTCOMES:
        raise UnknownAuditFilterError(f"Outcome: one of {', '.join(OUTCOMES)}.")
    # The page size is bounded: a request cannot make the page read an unbounded log.
    bounded = min(max(size, PAGE_SIZES[0]), PAGE_SIZES[-1])
    return AuditFilters(
        action.strip(), actor.strip(), subject.strip(), outcome, since, until, bounded, after
    )


def _reader(request: Request) -> AuditReader:
    reader: AuditReader = request.app.state.container.audit
    return reader


def when(ts_ns: str | int) -> str:
    """An entry's time as people read it, to the microsecond, in UTC."""
    moment = datetime.fromtimestamp(int(ts_ns) / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


@router.get("/compliance/audit", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def audit_search_page(
    request: Request,
    _: Any = Depends(read_audit),
    filters: AuditFilters = Depends(audit_filters),
) -> HTMLResponse:
    """Audit entries matching every filter given, oldest first, one bounded page at a time."""
    reader = _reader(request)
    query = filters.query(min(filters.size, reader.max_page_size))
    entries, next_cursor = await run_in_threadpool(reader.search, query)
    for entry in entries:
        entry["when"] = when(entry["ts_ns"])
    return render(
        request,
        "compliance_audit.html",
        {
            "entries": entries,
            "filters": filters,
            "outcomes": OUTCOMES,
            "page_sizes": PAGE_SIZES,
            "next_link": None if next_cursor is None else filters.params(after=next_cursor),
            "first_link": filters.params(after=None) if filters.after is not None else None,
            "export_link": filters.params(after=None, size=None),
            "export_limit": EXPORT_LIMIT,
        },
    )


@router.get("/compliance/audit/export.jsonl", dependencies=[Depends(page_user)])
def audit_export(
    request: Request,
    _: Any = Depends(read_audit),
    filters: AuditFilters = Depends(audit_filters),
) -> StreamingResponse:
    """The filtered search as JSON lines (one entry a line, as the audit API shows it), at most
    `EXPORT_LIMIT` entries read in pages; `x-next-cursor` names where the rest begins."""
    reader = _reader(request)
    entries: list[dict[str, Any]] = []
    query = replace(filters.query(reader.max_page_size), after_seq=filters.after)
    next_cursor: int | None = None
    while len(entries) < EXPORT_LIMIT:
        wanted = min(reader.max_page_size, EXPORT_LIMIT - len(entries))
        page, next_cursor = reader.search(replace(query, limit=wanted))
        entries.extend(page)
        if next_cursor is None:
            break
        query = replace(query, after_seq=next_cursor)

    def lines() -> Iterator[bytes]:
        for entry in entries:
            yield json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    headers = {"content-disposition": 'attachment; filename="audit.jsonl"'}
    if next_cursor is not None:
        headers["x-next-cursor"] = str(next_cursor)
    return StreamingResponse(lines(), media_type="application/jsonl", headers=headers)


@dataclass(frozen=True, slots=True)
class ProofCheck:
    """What the page shows of an entry's inclusion proof, and what checking it found."""

    proof: dict[str, Any] | None
    unavailable: str | None = None
    path_ok: bool = False
    leaf_matches: bool = False
    signature_ok: bool = False
    signed_by: str | None = None

    @property
    def verified(self) -> bool:
        return self.path_ok and self.leaf_matches and self.signature_ok


def check_proof(reader: AuditReader, entry: dict[str, Any]) -> ProofCheck:
    """The entry's inclusion proof in the newest signed checkpoint's tree, checked as an outside
    verifier would: the audit path from the entry's leaf hash must lead to the root, and that
    root and size must be what a log signing key signed for the log's origin."""
    seq = int(entry["seq"])
    try:
        proof = reader.inclusion(seq)
    except ProofUnavailableError as exc:
        return ProofCheck(None, unavailable=exc.detail)
    b64 = base64.b64decode
    path_ok = verify_inclusion(
        b64(proof["leaf_hash"]),
        seq,
        int(proof["tree_size"]),
        [b64(p) for p in proof["proof"]],
        b64(proof["root"]),
    )
    note = proof.get("checkpoint")
    signature_ok = False
    signed_by = None
    if note:
        for key in reader.signing_keys():
            trusted = [parse_verifier_key(key["verifier_key"])]
            checkpoint = verify_checkpoint(note, trusted, reader.origin)
            if checkpoint is None:
                continue
            signed_by = str(key["verifier_key"])
            signature_ok = checkpoint.size == proof["tree_size"] and checkpoint.root == b64(
                proof["root"]
            )
            break
    return ProofCheck(
        proof,
        path_ok=path_ok,
        leaf_matches=proof["leaf_hash"] == entry["leaf_hash"],
        signature_ok=signature_ok,
        signed_by=signed_by,
    )


def _entry_with_proof(reader: AuditReader, seq: int) -> tuple[dict[str, Any], ProofCheck]:
    entry = reader.entry(seq)
    return entry, check_proof(reader, entry)


@router.get(
    "/compliance/audit/{seq}", response_class=HTMLResponse, dependencies=[Depends(page_user)]
)
async def audit_entry_page(
    request: Request,
    seq: int = Path(ge=0, le=MAX_INT64),
    _: Any = Depends(read_audit),
) -> HTMLResponse:
    """Every field of one entry, its details as JSON, and its checked inclusion proof."""
    reader = _reader(request)
    entry, check = await run_in_threadpool(_entry_with_proof, reader, seq)
    return render(
        request,
        "compliance_audit_entry.html",
        {
            "entry": entry,
            "when": when(entry["ts_ns"]),
            "details_json": json.dumps(entry["details"], indent=2, sort_keys=True),
            "check": check,
            "origin": reader.origin,
        },
    )


__all__ = ["router"]
