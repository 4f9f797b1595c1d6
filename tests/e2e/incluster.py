"""Runs inside the e2e suite's client pod (the API image: Python, pymongo), fed a JSON plan on stdin, so the
suite's traffic goes pod -> Service as a user's would, on kind and on the local node alike. Standard library
only, apart from pymongo for seeding the legacy MongoDB and minio for the S3 store. Prints one JSON document
(the loop also prints progress lines before it, each starting with '#').

Plans:
  {"requests": [{"method", "url", "json"? or "form"?, "headers"?}, ...]}  -> [{"status", "body", "error"?}, ...]
  {"loop": {"url", "stop_file", "max_requests", "max_seconds", "headers"?}}
      -> {"ok", "failed", "errors", "stopped", "failures_s": [first, last] seconds after the start, or null}
  {"mongo": {"uri", "database", "collections": {name: extended-JSON documents}}} -> {"inserted": {...}}
  {"s3": {"endpoint", "access_key", "secret_key", "bucket", "make_bucket"?, "get"?: key, "put"?: [key, base64]}}
      -> {"objects": {key: size}, "got"?: base64} or {"error"} if unreachable   (get: an object's bytes; put: writes
         one)
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def request(
    method: str,
    url: str,
    body: object = None,
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> dict[str, object]:
    if form is not None:
        data, content_type = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    else:
        data, content_type = (None if body is None else json.dumps(body).encode()), "application/json"
    all_headers = {"content-type": content_type, "connection": "close", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 (http only)
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except OSError as error:  # refused, reset, timed out: no HTTP status at all
        return {"status": None, "body": None, "error": repr(error)}
    try:
        parsed: object = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return {"status": status, "body": parsed}


def loop(
    url: str, stop_file: str, max_requests: int, max_seconds: float, headers: dict[str, str] | None = None
) -> dict[str, object]:
    """GET `url` on a new connection each time until `stop_file` exists; bounded in count and time."""
    ok, failed, errors, failures_s = 0, 0, [], None
    started = time.monotonic()
    deadline = started + max_seconds
    for n in range(max_requests):
        if os.path.exists(stop_file) or time.monotonic() > deadline:
            break
        answer = request("GET", url, headers=headers)
        if answer["status"] == 200:
            ok += 1
        else:  # refused, reset, timed out, or an HTTP error: a failed request for the user
            failed += 1
            errors = [*errors[-9:], str(answer.get("error") or f"HTTP {answer['status']}")]
            at = round(time.monotonic() - started, 2)
            failures_s = [failures_s[0] if failures_s else at, at]
        if n % 50 == 0:
            print(f"# {ok} {failed}", flush=True)
        time.sleep(0.01)
    return {
        "ok": ok,
        "failed": failed,
        "errors": errors,
        "stopped": os.path.exists(stop_file),
        "failures_s": failures_s,
    }


def seed_mongo(uri: str, database: str, collections: dict[str, str]) -> dict[str, object]:
    from bson import json_util
    from pymongo import MongoClient

    inserted = {}
    with MongoClient(uri, serverSelectionTimeoutMS=30000) as client:
        for name, documents in collections.items():
            docs = json_util.loads(documents)
            client[database][name].insert_many(docs)
            inserted[name] = client[database][name].count_documents({})
    return {"inserted": inserted}


def s3(endpoint: str, access_key: str, secret_key: str, bucket: str, make_bucket: bool = False,
       get: str | None = None, put: list[str] | None = None) -> dict[str, object]:  # fmt: skip
    """An answer, or {"error"} when the store cannot be reached yet (a Service a moment after its pod is Ready:
    connects time out until kube-proxy has its rules), quickly: no retries, a short connect timeout."""
    import base64
    import io

    import urllib3
    from minio import Minio
    from minio.error import MinioException

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=3, read=60), retries=False)
    client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=False, http_client=http)
    try:
        if make_bucket and not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        answer: dict[str, object] = {}
        if get:
            response = client.get_object(bucket, get)
            answer["got"] = base64.b64encode(response.read()).decode()
            response.close()
        if put:
            key, data = put[0], base64.b64decode(put[1])
            client.put_object(bucket, key, io.BytesIO(data), length=len(data))
        answer["objects"] = {o.object_name: o.size for o in client.list_objects(bucket, recursive=True)}
        return answer
    except (urllib3.exceptions.HTTPError, OSError, MinioException) as error:
        return {"error": repr(error)}


def main() -> None:
    plan = json.load(sys.stdin)
    if "requests" in plan:
        result: object = [
            request(r["method"], r["url"], r.get("json"), r.get("headers"), r.get("form")) for r in plan["requests"]
        ]
    elif "loop" in plan:
        result = loop(**plan["loop"])
    elif "s3" in plan:
        result = s3(**plan["s3"])
    else:
        result = seed_mongo(**plan["mongo"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
