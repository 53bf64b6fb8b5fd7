"""The hidden tests' seeds of one course offering, derived from a secret (course staff only).

The repository is public, so the seeds written in rubric.toml for the hidden tests are only
development seeds. The seeds that grade students come from a secret the instructor keeps (the
`--secret` option, or the VMLAB_SECRET environment variable): HMAC-SHA256 of the secret and the
test's id. The same secret always gives the same seeds, so a TA's `vmlab grade --secret S`, a
batch and Gradescope's run of the autograder built with S give the same scores; without the
secret nobody can tell which examples the hidden tests will draw.

    seed_for(secret, test_id)  one hidden test's seed
    apply(rubric, secret)      the rubric with its hidden tests' seeds derived
    secret_from(option)        the option, else $VMLAB_SECRET, else None
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os

from .errors import UsageError
from .rubric import Rubric

ENV = "VMLAB_SECRET"
SEED_BITS = 32  # hypothesis takes any integer; 32 bits keep the rubric readable
DEVELOPMENT = "development"  # rubric.toml's hidden_seeds: the public seeds written in it
OFFERING = "offering"  # derived from a secret (an autograder's rubric, or --secret)


def secret_from(option: str | None) -> str | None:
    """The secret given on the command line, else in the environment, else None."""
    secret = option if option is not None else os.environ.get(ENV)
    if secret is not None and not secret.strip():
        raise UsageError(f"the secret is empty: give --secret a passphrase, or set {ENV} to "
                         "one (the same for the whole course offering).")
    return secret


def seed_for(secret: str, test_id: str) -> int:
    """The seed of hidden test `test_id` in the offering whose secret is `secret`."""
    digest = hmac.new(secret.encode("utf-8"), test_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:SEED_BITS // 8], "big")


def apply(rubric: Rubric, secret: str) -> Rubric:
    """`rubric` with every hidden test's seed derived from `secret`; visible tests keep theirs
    (students run them with `vmlab check`)."""
    tests = tuple(t if t.visible else dataclasses.replace(t, seed=seed_for(secret, t.id))
                  for t in rubric.tests)
    return dataclasses.replace(rubric, tests=tests, hidden_seeds=OFFERING)


def development_note(rubric: Rubric, tests: list) -> str:
    """What to tell course staff who grade hidden tests on the public development seeds, or ""."""
    if rubric.hidden_seeds != DEVELOPMENT or all(t.visible for t in tests):
        return ""
    return (f"Note: the hidden tests ran on their development seeds (no --secret, no {ENV}): "
            "their scores may differ from Gradescope's. Give the course offering's secret to "
            "grade them as the autograder does.")
