"""The handlers of a bucket's access configuration: its policy (Put/Get/DeleteBucketPolicy,
GetBucketPolicyStatus), its public access block, and the account's block (s3control's
``/v20180820/configuration/publicAccessBlock``).

Only the owner's account may use them (an IAM user of it with the permission): a bucket
policy cannot hand them to other accounts, which get AccessDenied.
"""

from __future__ import annotations

from karri import policy
from karri.api.s3 import bucket_policy, public_access, xml
from karri.api.s3.authorize import block_in_force
from karri.api.s3.bucket_policy import check_document
from karri.api.s3.context import Reply, Request
from karri.api.s3.documents import read_document
from karri.walrus import BucketInfo, S3Error, access_denied, acls

S3CONTROL_PREFIX = "v20180820"
S3CONTROL_KEY = "configuration/publicAccessBlock"


def no_such_policy() -> S3Error:
    return S3Error("NoSuchBucketPolicy", "The bucket policy does not exist", 404)


def no_such_block() -> S3Error:
    return S3Error(
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
        404,
    )


async def _owned(api, request: Request) -> BucketInfo:
    bucket = await api.run(request.walrus.get_bucket, request.bucket)
    if not request.principal or request.principal != bucket.owner:
        raise access_denied()
    return bucket


async def get_bucket_policy(api, request: Request) -> Reply:
    bucket = await _owned(api, request)
    text = bucket.config(bucket_policy.CONFIG)
    if not text:
        raise no_such_policy()
    return Reply(body=text.encode(), content_type="application/json")


async def put_bucket_policy(api, request: Request) -> Reply:
    bucket = await _owned(api, request)
    body = await read_document(request)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bucket_policy.malformed("This policy contains invalid Json") from None
    compiled = check_document(text, bucket.name)
    block = await api.run(block_in_force, request.walrus, bucket)
    if block.BlockPublicPolicy and policy.is_public(compiled):
        raise access_denied()
    await api.run(request.walrus.configure_bucket, bucket.name, bucket_policy.CONFIG, text)
    return Reply(204)


async def delete_bucket_policy(api, request: Request) -> Reply:
    bucket = await _owned(api, request)
    await api.run(request.walrus.configure_bucket, bucket.name, bucket_policy.CONFIG, None)
    return Reply(204)


async def get_bucket_policy_status(api, request: Request) -> Reply:
    """``IsPublic``: the policy is public, or the bucket's ACL is (unless ignored)."""
    bucket = await _owned(api, request)
    compiled = bucket_policy.stored(bucket)
    if compiled is None:
        raise no_such_policy()
    block = await api.run(block_in_force, request.walrus, bucket)
    public = policy.is_public(compiled) or (
        acls.is_public(bucket.acl) and not block.IgnorePublicAcls
    )
    return Reply(body=xml.document("PolicyStatus", [xml.el("IsPublic", public)]))


async def get_public_access_block(api, request: Request) -> Reply:
    bucket = await _owned(api, request)
    stored = bucket.config(public_access.CONFIG)
    if stored is None:
        raise no_such_block()
    return Reply(body=public_access.PublicAccessBlock.of(stored).to_xml())


async def put_public_access_block(api, request: Request) -> Reply:
    bucket = await _owned(api, request)
    block = public_access.parse(await read_document(request))
    config = public_access.CONFIG
    await api.run(request.walrus.configure_bucket, bucket.name, config, block.stored())
    return Reply()


async def delete_public_access_block(api, request: Request) -> Reply:
    bucket = await _owned(api, request)
    await api.run(request.walrus.configure_bucket, bucket.name, public_access.CONFIG, None)
    return Reply(204)


# -- the account's block (s3control) ----------------------------------------------------


def s3control_path(request: Request) -> str | None:
    """What an s3control call names after ``/v20180820/`` (path-style, or under the
    account's host name, whose label is then parsed as the bucket), when the request
    carries the ``x-amz-account-id`` header every s3control request has; else None."""
    account = request.header.get("x-amz-account-id")
    if account is None:
        return None
    path = f"{request.bucket}/{request.key}"
    for prefix in (f"{S3CONTROL_PREFIX}/", f"{account}/{S3CONTROL_PREFIX}/"):
        if path.startswith(prefix):
            return path.removeprefix(prefix)
    return None


def _account(request: Request) -> str:
    """The account named by ``x-amz-account-id``: only the caller's own."""
    account = request.header.get("x-amz-account-id", "")
    if not request.principal or account != request.principal:
        raise access_denied()
    return account


async def get_account_public_access_block(api, request: Request) -> Reply:
    account = _account(request)
    stored = await api.run(request.walrus.account_config, account, public_access.CONFIG)
    if stored is None:
        raise no_such_block()
    block = public_access.PublicAccessBlock.of(stored)
    return Reply(body=block.to_xml(s3control=True))


async def put_account_public_access_block(api, request: Request) -> Reply:
    account = _account(request)
    block = public_access.parse(await read_document(request))
    config = public_access.CONFIG
    await api.run(request.walrus.configure_account, account, config, block.stored())
    return Reply()


async def delete_account_public_access_block(api, request: Request) -> Reply:
    account = _account(request)
    await api.run(request.walrus.configure_account, account, public_access.CONFIG, None)
    return Reply(204)


ACCOUNT_ROUTES = {
    "GET": get_account_public_access_block,
    "PUT": put_account_public_access_block,
    "DELETE": delete_account_public_access_block,
}
