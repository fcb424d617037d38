"""The dev mailbox page: what the platform "sent", read as a person reads their inbox.

Mounted in the dev profile only (`mount_pages`): in production nothing is written there and the
page does not exist. Each request checks the profile again, so that mounting this router by
mistake elsewhere still shows nobody's links and codes.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from rampart.kernel.errors import NotFoundError
from rampart.notifications.mailbox import Mailbox
from rampart.platform.http.access import public
from rampart.platform.http.inputs import Id
from rampart.web.pages.templating import render
from rampart.web.wiring import container_of

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])


def _mailbox(request: Request) -> Mailbox:
    settings = container_of(request).settings
    if settings.profile != "dev":
        raise NotFoundError("Not found.")
    return Mailbox(settings.data_dir / "outbox")


@router.get("/dev/mailbox", response_class=HTMLResponse)
async def mailbox(request: Request) -> HTMLResponse:
    box = _mailbox(request)
    messages = await run_in_threadpool(box.messages, limit=200)
    return render(request, "mailbox.html", {"messages": messages, "directory": str(box.directory)})


@router.get("/dev/mailbox/{message_id:id}", response_class=HTMLResponse)
async def mailbox_message(message_id: Id, request: Request) -> HTMLResponse:
    message = await run_in_threadpool(_mailbox(request).get, message_id)
    if message is None:
        raise NotFoundError("No such message.")
    return render(request, "mailbox_message.html", {"message": message})
