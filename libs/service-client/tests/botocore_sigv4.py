"""Independent SigV4 signer for the service-client tests: botocore's SigV4Auth.

Reads one request as JSON on stdin and prints the Authorization header botocore computes
for it at the given time. Used to check the Rust client's signature byte for byte.
"""
import datetime
import json
import sys
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

d = json.load(sys.stdin)
req = AWSRequest(method=d["method"], url=d["url"], data=d["body"].encode(), headers=dict(d["headers"]))
creds = Credentials(d["access_key"], d["secret_key"], d.get("token"))
when = datetime.datetime.strptime(d["time"], "%Y-%m-%dT%H:%M:%SZ")
with mock.patch("botocore.auth.get_current_datetime", return_value=when):
    SigV4Auth(creds, "execute-api", d["region"]).add_auth(req)
print(json.dumps({"authorization": req.headers["Authorization"], "x-amz-date": req.headers["X-Amz-Date"]}))
