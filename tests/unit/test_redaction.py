"""Connection strings in log lines and start-up errors never show a password."""

import string

from hypothesis import assume, given
from hypothesis import strategies as st

from huleedu_service_libs.redaction import redact_servers, redact_url

names = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12)
hosts = st.sampled_from(["127.0.0.1:6379", "redis.internal:6380", "[::1]:5432", "pg", "h1,h2"])
paths = st.sampled_from(["", "/0", "/bcs", "/db?sslmode=require"])
# Anything at all, `@`, `/`, `:` and `?` included: a password written into a URL unencoded.
passwords = st.text(min_size=1, max_size=30)


@given(
    scheme=st.sampled_from(["redis", "rediss", "postgresql"]),
    user=names | st.just(""),
    host=hosts,
    path=paths,
    password=passwords,
)
def test_a_password_in_the_user_info_is_hidden_and_the_rest_shown(
    scheme: str, user: str, host: str, path: str, password: str
) -> None:
    url = f"{scheme}://{user}:{password}@{host}{path}"

    assert redact_url(url) == f"{scheme}://{user}:***@{host}{path}"


@given(
    host=hosts,
    path=st.sampled_from(["/db", ""]),
    user=names,
    password=st.text(st.characters(exclude_characters="&#@"), min_size=1, max_size=30),
)
def test_a_password_in_the_query_is_hidden(host: str, path: str, user: str, password: str) -> None:
    url = f"postgresql://{host}{path}?user={user}&password={password}&sslmode=require"
    redacted = redact_url(url)

    assert redacted == f"postgresql://{host}{path}?user={user}&password=***&sslmode=require"


@given(password=passwords, after=st.text(string.ascii_letters, max_size=5))
def test_an_at_sign_past_the_host_hides_everything_before_it(password: str, after: str) -> None:
    # Malformed (an unencoded `@` in a query's password): shown less, never the password.
    url = f"postgresql://h/db?password=ab{password}@{after}"
    assume(password not in f"postgresql://***@{after}")

    assert password not in redact_url(url)


def test_urls_without_a_password_are_shown_whole() -> None:
    for url in (
        "redis://localhost:6379",
        "redis://127.0.0.1:6379/3",
        "unix:///run/redis.sock?db=2",
        "postgresql://bcs@pg:5432/bcs",
        "postgresql://pg/bcs?sslmode=require",
    ):
        assert redact_url(url) == url


def test_bootstrap_servers_are_redacted_one_by_one() -> None:
    assert redact_servers("k1:9092,k2:9092") == "k1:9092,k2:9092"
    assert redact_servers("u:pw@k1:9092,k2:9092") == "u:***@k1:9092,k2:9092"
