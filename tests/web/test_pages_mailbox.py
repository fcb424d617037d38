"""The dev mailbox page exists in the dev profile only: in production it is never mounted, and
the page refuses to show anything even if it were."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tests.identity.support import register

from rampart.bootstrap import Container
from rampart.platform.http.access import route_table


def _paths(app: object) -> set[str]:
    return {path for _methods, path, _decl in route_table(app)}  # type: ignore[arg-type]


def test_dev_profile_shows_what_was_sent(client: TestClient, container: Container) -> None:
    assert "/dev/mailbox" in _paths(client.app)
    register(client, "pat@example.com")
    container.outbox_worker.drain()
    page = client.get("/dev/mailbox")
    assert page.status_code == 200
    assert "pat@example.com" in page.text


def test_production_never_mounts_it(container: Container) -> None:
    from rampart.web.app import create_app

    container.settings = container.settings.model_copy(update={"profile": "production"})
    app = create_app(container)
    assert not any(path.startswith("/dev/") for path in _paths(app))
    with TestClient(app, base_url="https://testserver") as client:
        assert client.get("/dev/mailbox").status_code == 404
        assert client.get("/dev/mailbox/01900000-0000-7000-8000-000000000001").status_code == 404
        assert "/dev/mailbox" not in client.get("/login").text


def test_the_page_refuses_outside_dev_even_if_mounted(container: Container) -> None:
    from rampart.web.app import create_app
    from rampart.web.pages import mailbox

    with TestClient(create_app(container), base_url="https://testserver") as client:
        register(client, "pat@example.com")
        container.outbox_worker.drain()
        assert client.get("/dev/mailbox").status_code == 200
        # The same app, its settings now those of production (the router stays mounted).
        container.settings = container.settings.model_copy(update={"profile": "production"})
        refused = client.get("/dev/mailbox")
        assert refused.status_code == 404
        assert "pat@example.com" not in refused.text
    assert mailbox.router.routes
