"""Connection strings as a log line or an error message may show them: every password hidden.

A URL's password sits between the user's name and the last `@` before the host (a password may
hold an `@` or a `/` of its own), or in a query parameter (`?password=`, as redis-py and libpq
read it). Both are replaced by `***`; the user's name, the hosts, the database and the rest stay,
since they are what an operator needs to see which store is meant.
"""

_HIDDEN = "***"


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by `***`; works on `host:port` too."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, location = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        shown = f"{user}:{_HIDDEN}" if colon else user
        # An `@` past the host (in a query's password, say): hide all before it.
        rest = f"{_HIDDEN if any(c in user for c in '/?#') else shown}@{location}"
    base, question, query = rest.partition("?")
    if question:
        rest = f"{base}?{_redact_query(query)}"
    return f"{scheme}{sep}{rest}"


def redact_servers(servers: str) -> str:
    """A comma-separated list of servers (Kafka's bootstrap servers), each redacted."""
    return ",".join(redact_url(server) for server in servers.split(","))


def _redact_query(query: str) -> str:
    parameters = []
    for parameter in query.split("&"):
        name, equals, _ = parameter.partition("=")
        secret = "pass" in name.lower() or "secret" in name.lower()
        parameters.append(f"{name}={_HIDDEN}" if equals and secret else parameter)
    return "&".join(parameters)
