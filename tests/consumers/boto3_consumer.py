#!/usr/bin/env python3
"""An independent consumer of a rotated AWS access key, written with boto3 (not Tokenward).

It reads the current key from Secrets Manager (the secret's AWSCURRENT version, JSON with
AccessKeyId and SecretAccessKey) every --reread seconds, or uses one pinned key for ever (--pinned:
a consumer that never switches), and calls STS GetCallerIdentity with the key every --every
seconds until the file --stop exists. It then prints one JSON object: the number of calls, every
failed call (key id, error code, time), and for each key id its first and last successful use
(Unix seconds). Its own reader credentials come from READER_ACCESS_KEY_ID/READER_SECRET_ACCESS_KEY,
a pinned key from PINNED_ACCESS_KEY_ID/PINNED_SECRET_ACCESS_KEY (never from argv).
"""

import argparse
import json
import os
import time

import boto3
import botocore.config
import botocore.exceptions


def client(service, endpoint, key_id, secret):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--secret-id")
    p.add_argument("--pinned", action="store_true")
    p.add_argument("--stop", required=True)
    p.add_argument("--every", type=float, default=0.05)
    p.add_argument("--reread", type=float, default=0.5)
    p.add_argument("--ready")
    a = p.parse_args()

    sm = None
    if a.pinned:
        key = (os.environ["PINNED_ACCESS_KEY_ID"], os.environ["PINNED_SECRET_ACCESS_KEY"])
    else:
        sm = client("secretsmanager", a.endpoint, os.environ["READER_ACCESS_KEY_ID"], os.environ["READER_SECRET_ACCESS_KEY"])
        key = None
    sts = None
    read_at = 0.0
    calls, failures, uses = 0, [], {}
    while not os.path.exists(a.stop):
        now = time.time()
        if sm is not None and now - read_at >= a.reread:
            value = json.loads(sm.get_secret_value(SecretId=a.secret_id, VersionStage="AWSCURRENT")["SecretString"])
            fresh = (value["AccessKeyId"], value["SecretAccessKey"])
            read_at = now
            if fresh != key:
                key, sts = fresh, None
        if sts is None:
            sts = client("sts", a.endpoint, key[0], key[1])
        calls += 1
        try:
            sts.get_caller_identity()
            t = time.time()
            u = uses.setdefault(key[0], {"first": t, "last": t})
            u["last"] = t
        except botocore.exceptions.ClientError as e:
            failures.append({"key": key[0], "code": e.response["Error"]["Code"], "at": time.time()})
        if a.ready and calls == 1:
            open(a.ready, "w").close()
        time.sleep(a.every)
    print(json.dumps({"calls": calls, "failures": failures, "uses": uses}))


if __name__ == "__main__":
    main()
