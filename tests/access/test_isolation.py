"""Data isolation: every object route tried as another user of every role (generated from the
route table, so it covers each domain's routes as they land), each intruder a real account signed
in with a real bearer token; row-level security on PostgreSQL; and the start-up refusal of
undeclared routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from rampart.access.domain import Role
from rampart.bootstrap import Container
from rampart.kernel.ids import new_id
from rampart.platform.http.access import UndeclaredAccessError, route_table
from tests.access.support import ACCOUNT_PASSWORD, email_of, new_account, new_user
from tests.support.staff import enrol_security_key, sign_in_with_key

STAFF_PREFIXES = ("admin:", "compliance:", "support:")


def _make_apikey(container: Container, owner: str) -> str:
    from rampart.access.domain import Principal

    with container.db.read() as session:
        perms = container.access.permissions_of(session, owner, container.clock.now())
    principal = Principal(actor=f"user:{owner}", user_id=owner, permissions=perms, method="session")
    with container.uow() as uow:
        created = container.apikeys.create(uow, principal, algorithm="hmac-sha256", scopes=["read"])
        uow.commit()
    return created.key.id


#: Path parameter -> a factory making an object of that kind owned by the given user. Domains
#: add theirs here; a parameter without a factory is tried with a random id (must be 404 too).
OBJECT_FACTORIES: dict[str, Callable[[Container, str], str]] = {
    "key_id": _make_apikey,
    # The user whose grants/roles a staff route manages: the owner themself.
    "user_id": lambda _container, owner: owner,
}


@pytest.fixture
def iso_client(container: Container) -> Any:
    from rampart.web.app import create_app

    with TestClient(create_app(container), base_url="https://testserver") as client:
        yield client


def _bearer_of(client: TestClient, container: Container, user_id: str) -> dict[str, str]:
    """Sign the account in through the API, as its owner would, and use the access token."""
    response = client.post(
        "/v1/auth/login",
        json={"email": email_of(container, user_id), "password": ACCOUNT_PASSWORD},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "complete"
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def test_every_object_route_refuses_other_users_of_every_role(
    iso_client: TestClient, container: Container
) -> None:
    owner = new_account(container, Role.TRADER)
    objects: dict[str, str] = {}
    routes = [
        (methods, path, decl)
        for methods, path, decl in route_table(iso_client.app)  # type: ignore[arg-type]
        # Object routes: a path parameter naming an object by id (`{order_id}`, `{key_id}`).
        if methods != "WEBSOCKET" and any(p.endswith("_id") for p in _params(path))
    ]
    assert any("{key_id}" in path for _, path, _ in routes)
    tried = 0
    for role in (Role.TRADER, Role.ADMIN, Role.COMPLIANCE, Role.SUPPORT):
        intruder = new_account(container, role)
        if role == Role.TRADER:
            credentials = _bearer_of(iso_client, container, intruder)
        else:
            # Staff sign in with their security key: their staff permissions count, and the
            # routes they open are tried for what they must still refuse.
            key = enrol_security_key(container, intruder)
            tokens = sign_in_with_key(
                iso_client, email_of(container, intruder), ACCOUNT_PASSWORD, key
            )
            credentials = {"Authorization": f"Bearer {tokens['access_token']}"}
        me = iso_client.get("/v1/me", headers=credentials).json()
        assert me["roles"] == [role]
        held = set(me["permissions"])
        for methods, path, declarations in routes:
            # A declaration names the permission, with `+step-up` for a sensitive action.
            permissions = [d.split("+", 1)[0] for d in declarations]
            if any(p in held and p.startswith(STAFF_PREFIXES) for p in permissions):
                continue  # a staff route the intruder's role is meant to use on other users
            url = path
            for name in _params(path):
                if name not in objects:
                    factory = OBJECT_FACTORIES.get(name)
                    objects[name] = factory(container, owner) if factory else new_id()
                url = url.replace("{" + name + "}", objects[name]).replace(
                    "{" + name + ":path}", objects[name]
                )
            for method in methods.split(","):
                if method in ("HEAD", "OPTIONS"):
                    continue
                response = iso_client.request(
                    method,
                    url,
                    headers=credentials,
                    json={} if method != "GET" else None,
                    follow_redirects=False,
                )
                tried += 1
                assert response.status_code < 500, (role, method, path, response.text)
                assert not 200 <= response.status_code < 300, (role, method, path, response.text)
                if response.status_code == 403:
                    assert response.json()["type"] == "urn:rampart:problem:permission-denied"
                elif response.status_code not in (303, 401, 404, 405, 409, 422):
                    pytest.fail(f"{role} {method} {path}: {response.status_code}")
    assert tried > 0
    # The owner still reaches the object: the refusals above were about ownership.
    key_id = objects["key_id"]
    owner_credentials = _bearer_of(iso_client, container, owner)
    assert iso_client.get(f"/api/v1/apikeys/{key_id}", headers=owner_credentials).status_code == 200


def test_row_level_security_is_a_second_wall(container: Container) -> None:
    if not container.db.is_postgres:
        pytest.skip("row-level security is a PostgreSQL feature; SQLite relies on the services")
    alice, bob = new_user(container), new_user(container)
    _make_apikey(container, alice)
    _make_apikey(container, bob)
    # A connection of its own: the service's connections start as system work (all rows) until
    # a service narrows the transaction (rampart.access.rls.system_by_default); any other client
    # of the role starts with neither setting, which is what is checked first below.
    engine = create_engine(container.db.url)
    with engine.connect() as conn:
        # The tests connect as a superuser, whom RLS never binds: act as an application role.
        conn.execute(
            text(
                "DO $$ BEGIN CREATE ROLE rampart_rls_probe NOLOGIN NOSUPERUSER NOBYPASSRLS; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        )
        conn.execute(text("GRANT SELECT, UPDATE ON apikey TO rampart_rls_probe"))
        conn.commit()

        def owners(*settings: tuple[str, str]) -> list[str]:
            with conn.begin() as tx:
                conn.execute(text("SET LOCAL ROLE rampart_rls_probe"))
                for name, value in settings:
                    conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
                # No WHERE clause: the policy alone decides what is visible.
                rows = [r[0] for r in conn.execute(text("SELECT user_id FROM apikey"))]
                tx.rollback()
            return sorted(rows)

        assert owners() == []
        assert owners(("rampart.user_id", alice)) == [alice]
        assert owners(("rampart.user_id", bob)) == [bob]
        assert owners(("rampart.system", "on")) == sorted([alice, bob])
        with conn.begin() as tx:
            conn.execute(text("SET LOCAL ROLE rampart_rls_probe"))
            conn.execute(text("SELECT set_config('rampart.user_id', :v, true)"), {"v": alice})
            changed = conn.execute(
                text("UPDATE apikey SET label = 'hijacked' WHERE user_id = :b"), {"b": bob}
            ).rowcount
            tx.rollback()
        assert changed == 0
    engine.dispose()


def test_the_app_refuses_to_start_with_an_undeclared_route(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rampart.web.app as web_app

    forgotten = APIRouter()

    @forgotten.get("/api/v1/forgotten/{thing_id}")
    def leak(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    original = web_app.domain_routers
    monkeypatch.setattr(web_app, "domain_routers", lambda c: [*original(c), forgotten])
    with pytest.raises(UndeclaredAccessError) as refused:
        web_app.create_app(container)
    assert "GET /api/v1/forgotten/{thing_id}" in refused.value.routes
    assert isinstance(FastAPI, type)
