"""HTTP digest authentication for SIP (RFC 2617 / RFC 7616, MD5 and SHA-256, qop=auth).

A trunk answers REGISTER or INVITE with 401 (``WWW-Authenticate``) or 407
(``Proxy-Authenticate``); the request is sent again with ``Authorization`` /
``Proxy-Authorization`` computed here from the challenge and the trunk credentials.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from frontdesk.transports.sip.message import SipParseError

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``Digest`` challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> Challenge:
    """Parse a ``WWW-Authenticate``/``Proxy-Authenticate`` value; only Digest is supported."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported authentication scheme {scheme[:20]!r}")
    params = {m.group(1).lower(): m.group(2).strip('"') for m in _PARAM.finditer(rest)}
    if "realm" not in params or "nonce" not in params:
        raise SipParseError("digest challenge without realm or nonce")
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in _HASHES:
        raise SipParseError(f"unsupported digest algorithm {algorithm[:20]!r}")
    qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def digest_response(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization`` header value answering ``challenge`` for one request."""
    if challenge.qop and "auth" not in challenge.qop:
        raise SipParseError(f"digest qop {','.join(challenge.qop)} not supported (want auth)")
    hasher = _HASHES[challenge.algorithm]

    def h(text: str) -> str:
        return hasher(text.encode("utf-8")).hexdigest()

    ha1 = h(f"{username}:{challenge.realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    fields = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
    ]
    if challenge.qop:
        cnonce = cnonce or secrets.token_hex(8)
        count = f"{nc:08x}"
        response = h(f"{ha1}:{challenge.nonce}:{count}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{h(f"{ha1}:{challenge.nonce}:{ha2}")}"')
    fields.append(f"algorithm={challenge.algorithm}")
    if challenge.opaque is not None:
        fields.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(fields)
