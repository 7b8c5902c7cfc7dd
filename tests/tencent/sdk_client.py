#!/usr/bin/python3
"""Calls Tessera's Tencent Cloud API 3.0 dialect with the official Python SDK, exactly as a customer would.

Usage: sdk_client.py ENDPOINT SECRET_ID SECRET_KEY ACTION PARAMS_JSON [--skew SECONDS] [--product live|cme]

ENDPOINT is host:port (e.g. 127.0.0.1:8080), spoken to over plain http. ACTION is a Live (2018-08-01) action such as
CreateCommonMixStream (or, with --product cme, a CME 2019-10-29 action such as CreateProject); PARAMS_JSON its
request parameters. --skew shifts the clock the SDK signs with by SECONDS
(negative: in the past), to provoke AuthFailure.SignatureExpire.

Prints one line of JSON on stdout and exits 0:
  {"ok": <the response model, as the SDK deserialised it>}
  {"error": {"code": ..., "message": ..., "request_id": ...}}    (a TencentCloudSDKException)
Any other failure is a crash: traceback on stderr, non-zero exit.

Needs the SDK on PYTHONPATH: scripts/setup installs the pinned version into .deps/python.
"""

import json
import os
import sys
import time
import types

from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cme.v20191029 import cme_client, models as cme_models
from tencentcloud.live.v20180801 import live_client, models as live_models

USAGE = "usage: sdk_client.py ENDPOINT SECRET_ID SECRET_KEY ACTION PARAMS_JSON [--skew SECONDS] [--product live|cme]"


def main(argv):
    args = argv[1:]
    skew = 0
    product = "live"
    while len(args) > 5:
        if len(args) >= 7 and args[-2] == "--skew":
            skew = int(args[-1])
        elif len(args) >= 7 and args[-2] == "--product":
            product = args[-1]
        else:
            break
        args = args[:-2]
    if len(args) != 5:
        print(USAGE, file=sys.stderr)
        return 2
    endpoint, secret_id, secret_key, action, params_json = args

    # The endpoint is always a local test server: an HTTP(S)_PROXY of the environment must not be used for it (the
    # SDK reads those variables itself, and so does requests).
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(name, None)

    if skew:
        # The SDK takes X-TC-Timestamp (and from it the credential scope's date) from time.time() of its
        # abstract_client module, and uses that module's `time` for nothing else: give it a shifted clock.
        abstract_client.time = types.SimpleNamespace(time=lambda: time.time() + skew)

    cred = credential.Credential(secret_id, secret_key)
    http_profile = HttpProfile(protocol="http", endpoint=endpoint)
    client_profile = ClientProfile(httpProfile=http_profile)
    if product == "cme":
        client = cme_client.CmeClient(cred, "", client_profile)
        models = cme_models
    else:
        client = live_client.LiveClient(cred, "ap-guangzhou", client_profile)
        models = live_models

    req = getattr(models, action + "Request")()
    req.from_json_string(params_json)
    try:
        resp = getattr(client, action)(req)
    except TencentCloudSDKException as e:
        message = e.get_message()
        if isinstance(message, bytes):
            # A non-200 answer: the SDK raises ServerNetworkError with the raw response body as its message.
            message = message.decode("utf-8", "replace")
        out = {"error": {"code": e.get_code(), "message": message, "request_id": e.get_request_id()}}
    else:
        out = {"ok": json.loads(resp.to_json_string())}
    print(json.dumps(out, ensure_ascii=False))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
