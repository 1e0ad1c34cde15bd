"""Checks of an MLflow tracking URI before a command uses it: well formed, and reachable within seconds.

MLflow itself retries an unreachable HTTP server for minutes (its default: 7 retries with back-off, 120 s
timeout); a launch or a report must not start and then hang there. Accepted forms (MLflow's tracking URIs):

- ``sqlite:///relative/or/absolute.db`` -- the folder must be writable (a launch creates the file), or, with
  ``must_exist``, the file must exist (a report reads it);
- ``file:///folder`` or a plain folder path (MLflow's file store);
- ``http://host[:port]`` / ``https://...`` -- one ``GET /health`` (MLflow's server answers ``OK``) within
  :data:`REACHABLE_TIMEOUT_S` seconds;
- ``postgresql://``, ``mysql://``, ``mssql://`` (SQLAlchemy database URIs) and ``databricks`` -- form only.

Errors are :class:`rnc.errors.TrackingError` naming the option, the URI, what is wrong and what to do.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from rnc.errors import TrackingError

#: Seconds an HTTP tracking server has to answer the reachability check.
REACHABLE_TIMEOUT_S = 3.0

_DB_SCHEMES = ("postgresql", "mysql", "mssql", "sqlite")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HINT = "use sqlite:///path/mlflow.db, a folder, or http://host:port of an MLflow server"


def check_tracking_uri(uri: str, what: str, *, must_exist: bool = False, reach: bool = True) -> str:
    """``uri`` unchanged after checking its form and, for ``http(s)``, that the server answers (``reach``)."""
    text = uri.strip()
    if not text:
        raise TrackingError(f"{what}: the tracking URI is empty; {_HINT}")
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if len(scheme) == 1:  # a Windows drive letter, C:\\...
        scheme = ""
    if scheme in ("http", "https"):
        _check_http(text, what, reach=reach)
    elif scheme == "sqlite" or (scheme.split("+")[0] in _DB_SCHEMES):
        if scheme == "sqlite":
            _check_sqlite(text, what, must_exist=must_exist)
        elif "://" not in text:
            raise TrackingError(f"{what} {uri!r}: malformed database URI; expected {scheme}://user@host/db")
    elif scheme == "file":
        path = urllib.parse.urlparse(text).path
        if must_exist and not Path(path).is_dir():
            raise TrackingError(f"{what} {uri!r}: no MLflow file store at {path!r}; run `rnc-platform launch` first")
    elif scheme == "databricks":
        pass
    elif scheme:
        raise TrackingError(f"{what} {uri!r}: unknown tracking URI scheme {scheme!r}; {_HINT}")
    elif must_exist and not Path(text).expanduser().is_dir():
        raise TrackingError(f"{what} {uri!r}: no MLflow store at this path; run `rnc-platform launch` first")
    return uri


def _check_http(uri: str, what: str, *, reach: bool) -> None:
    parsed = urllib.parse.urlparse(uri)
    try:
        port = parsed.port
    except ValueError:
        raise TrackingError(f"{what} {uri!r}: malformed port; expected http://host:port") from None
    if not parsed.hostname or not uri.lower().startswith(("http://", "https://")):
        raise TrackingError(f"{what} {uri!r}: malformed URL (no host); expected http://host:port")
    if not reach:
        return
    url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=REACHABLE_TIMEOUT_S) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        raise TrackingError(
            f"{what} {uri!r}: the server answered {exc.code} to GET /health; is it an MLflow tracking server?"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"{what} {uri!r}: no MLflow server answers at {parsed.hostname}:{port or ''} within "
            f"{REACHABLE_TIMEOUT_S:.0f} s ({reason}); start it (`mlflow server --port {port or 5000}`) or fix the URI"
        ) from None


def _check_sqlite(uri: str, what: str, *, must_exist: bool) -> None:
    if not uri.startswith("sqlite:///"):
        raise TrackingError(f"{what} {uri!r}: malformed SQLite URI; expected sqlite:///path/to/mlflow.db")
    path = Path(uri.removeprefix("sqlite:///")).expanduser()
    if not path.name or path.is_dir():
        raise TrackingError(f"{what} {uri!r}: the SQLite path must name a file, e.g. sqlite:///rnc-runs/mlflow.db")
    if must_exist and not path.is_file():
        raise TrackingError(
            f"{what} {uri!r}: no tracking store at {str(path)!r}; run `rnc-platform launch` first or give the URI "
            "of an existing store"
        )
    if path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(16)
        if head and not head.startswith(b"SQLite format 3"):
            raise TrackingError(f"{what} {uri!r}: {str(path)!r} is not an SQLite database; point to mlflow.db")
