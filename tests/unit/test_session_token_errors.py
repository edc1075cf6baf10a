"""Temporary credentials refused in each service's words: an expired session is IAM's and
STS's ``ExpiredToken`` (403), EC2's ``RequestExpired``, S3's ``ExpiredToken`` (400); a token
that is not the key's is ``InvalidClientTokenId``, EC2's ``AuthFailure``, S3's
``InvalidToken``."""

from __future__ import annotations

import pytest

from karri.api.auth.errors import AuthError, ExpiredToken, InvalidToken
from karri.api.ec2.app import auth_error as ec2_words
from karri.api.iam.errors import auth_error as iam_words
from karri.api.s3.auth import error_for


@pytest.mark.parametrize(
    ("error", "iam", "ec2", "s3"),
    [
        (ExpiredToken("x"), ("ExpiredToken", 403), ("RequestExpired", 400), ("ExpiredToken", 400)),
        (
            InvalidToken("x"),
            ("InvalidClientTokenId", 403),
            ("AuthFailure", 401),
            ("InvalidToken", 400),
        ),
    ],
)
def test_each_service_says_it_its_way(
    error: AuthError, iam: tuple[str, int], ec2: tuple[str, int], s3: tuple[str, int]
) -> None:
    assert (iam_words(error).code, iam_words(error).status) == iam
    assert (ec2_words(error).code, ec2_words(error).status) == ec2
    refusal = error_for(error, presigned=False)
    assert (refusal.code, refusal.status) == s3
