"""Internal TLS trusts the operator's CA (ASVS 12.3.4): `RAMPART_TLS_CA_BUNDLE` names the PEM
bundle that signs the database's, Redis's and the audit witness's certificates, and each of those
connections verifies against it; production refuses a bundle it cannot load.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url

from rampart.audit.checkpoints import HttpWitnessSink, build_sink
from rampart.config import Settings
from rampart.platform.preflight import _ca_problems


def _internal_ca(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rampart internal CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_the_database_url_verifies_against_the_internal_ca(tmp_path: Path) -> None:
    ca = _internal_ca(tmp_path / "ca.pem")
    settings = Settings(
        database_url="postgresql+psycopg://app:pw@db.internal/rampart?sslmode=verify-full",
        tls_ca_bundle=ca,
    )
    url = make_url(settings.effective_database_url)
    assert url.query["sslrootcert"] == str(ca)
    assert url.query["sslmode"] == "verify-full"
    assert url.password == "pw"
    # A CA named in the URL itself wins; without a bundle the URL is left as given.
    own = "postgresql+psycopg://app:pw@db.internal/rampart?sslrootcert=/etc/own.pem"
    assert Settings(database_url=own, tls_ca_bundle=ca).effective_database_url == own
    assert Settings(database_url=own).effective_database_url == own


def test_redis_over_tls_verifies_against_the_internal_ca(tmp_path: Path) -> None:
    ca = _internal_ca(tmp_path / "ca.pem")
    settings = Settings(redis_url="rediss://u:pw@cache.internal:6380/0", tls_ca_bundle=ca)
    assert settings.effective_redis_url is not None
    client = redis.Redis.from_url(settings.effective_redis_url)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == str(ca)
    client.close()
    # Plain redis:// on loopback has no TLS to configure.
    plain = Settings(redis_url="redis://u:pw@127.0.0.1:6379/0", tls_ca_bundle=ca)
    assert plain.effective_redis_url == "redis://u:pw@127.0.0.1:6379/0"


def test_the_witness_trusts_the_internal_ca_instead_of_the_public_roots(tmp_path: Path) -> None:
    ca = _internal_ca(tmp_path / "ca.pem")
    settings = Settings(audit={"checkpoint_sink": "https://witness.internal/log"}, tls_ca_bundle=ca)
    sink = build_sink(settings)
    assert isinstance(sink, HttpWitnessSink)
    trusted = sink._verify
    assert not isinstance(trusted, bool)
    subjects = [dict(x[0] for x in c["subject"]) for c in trusted.get_ca_certs()]
    assert subjects == [{"commonName": "Rampart internal CA"}]
    assert HttpWitnessSink("https://witness.example.net/log")._verify is True


def test_production_refuses_a_bundle_it_cannot_load(tmp_path: Path) -> None:
    ca = _internal_ca(tmp_path / "ca.pem")
    assert _ca_problems(Settings(tls_ca_bundle=ca)) == []
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    (problem,) = _ca_problems(Settings(tls_ca_bundle=garbage))
    assert "RAMPART_TLS_CA_BUNDLE" in problem
    (missing,) = _ca_problems(Settings(tls_ca_bundle=tmp_path / "absent.pem"))
    assert "cannot be read" in missing


@pytest.mark.parametrize("password", ["", "postgres", "rampart", "short-one"])
def test_a_weak_database_credential_is_refused_in_production(password: str) -> None:
    from rampart.platform.preflight import _credential_problems

    auth = f"app:{password}@" if password else "app@"
    settings = Settings(database_url=f"postgresql+psycopg://{auth}127.0.0.1/rampart")
    (problem,) = _credential_problems(settings)
    assert problem.startswith("database: RAMPART_DATABASE_URL")
    strong = Settings(database_url="postgresql+psycopg://app:k3Yq9-long-random-pw@127.0.0.1/r")
    assert _credential_problems(strong) == []
    # A client certificate is a credential of its own.
    cert = Settings(database_url="postgresql+psycopg://app@db/r?sslcert=/c.pem&sslkey=/k.pem")
    assert _credential_problems(cert) == []
