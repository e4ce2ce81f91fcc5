"""ALTCHA solutions for tests: real challenges signed with the test key, made easy to solve."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from altcha import v1 as altcha_v1

from tests.conftest import SECRET

EASY = 50  # the server checks the hash and the signature, not how hard the challenge was


def encode(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def solved_proof(secret: str = SECRET) -> str:
    """The ``altcha`` field as the page's JavaScript fills it, for a fresh challenge."""
    challenge = altcha_v1.create_challenge(
        altcha_v1.ChallengeOptions(
            hmac_key=secret, max_number=EASY, expires=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
        )
    )
    solution = altcha_v1.solve_challenge(challenge.challenge, challenge.salt, challenge.algorithm, EASY)
    assert solution is not None
    return encode(
        {
            "algorithm": challenge.algorithm,
            "challenge": challenge.challenge,
            "number": solution.number,
            "salt": challenge.salt,
            "signature": challenge.signature,
        }
    )
