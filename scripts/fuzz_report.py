#!/usr/bin/env python3
"""The verdict of `make fuzz` (scripts/fuzz.sh): reads each schemathesis
run's events (NDJSON, target/fuzz/<run>.ndjson), counts the answers by
status class, and lists every 5xx. A 503 whose operation documents 503
(the database or a service it depends on is unavailable: say so and retry)
is accepted; any other 5xx fails the run, and so does a run that did not
finish or met errors (a request that got no answer, a schema it could not
read). Exit status 0 when nothing failed.

Usage: fuzz_report.py DIR RUN...
"""

import base64
import collections
import json
import os
import sys


def body_text(content):
    if isinstance(content, dict) and "$base64" in content:
        return base64.b64decode(content["$base64"]).decode("utf-8", "replace")
    return content if isinstance(content, str) else ""


def documented_statuses(schema_path):
    """{"METHOD /path": {"200", "503", ...}} from the run's OpenAPI document."""
    with open(schema_path) as f:
        doc = json.load(f)
    out = {}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                out[f"{method.upper()} {path}"] = set(op.get("responses", {}))
    return out


def read_run(directory, run):
    """Answers by (label, status), 5xx samples, errors, and whether it finished."""
    statuses = collections.Counter()
    samples = {}
    errors = []
    finished = False
    path = os.path.join(directory, f"{run}.ndjson")
    if not os.path.exists(path):
        return statuses, samples, [f"no events written ({path})"], False
    with open(path) as f:
        for line in f:
            event = json.loads(line)
            (kind, data), = event.items()
            if kind == "EngineFinished":
                finished = True
            elif kind in ("NonFatalError", "FatalError"):
                errors.append(json.dumps(data.get("value", data))[:400])
            elif kind == "ScenarioFinished":
                recorder = data.get("recorder", {})
                label = recorder.get("label", "?")
                for case_id, interaction in recorder.get("interactions", {}).items():
                    response = interaction.get("response")
                    if response is None:
                        errors.append(f"{label}: no answer ({case_id})")
                        continue
                    status = response["status_code"]
                    statuses[(label, status)] += 1
                    if status >= 500 and (label, status) not in samples:
                        request = interaction["request"]
                        samples[(label, status)] = (
                            request["method"],
                            request["uri"],
                            body_text(request.get("body"))[:300],
                            body_text(response.get("content"))[:300],
                        )
    return statuses, samples, errors, finished


def main():
    directory, runs = sys.argv[1], sys.argv[2:]
    failed = False
    total = collections.Counter()
    print(f"{'run':<24} {'requests':>8} {'2xx':>6} {'3xx':>6} {'4xx':>6} {'5xx':>5}  verdict")
    details = []
    for run in runs:
        statuses, samples, errors, finished = read_run(directory, run)
        documented = documented_statuses(os.path.join(directory, f"{run}.openapi.json"))
        classes = collections.Counter()
        for (_, status), n in statuses.items():
            classes[status // 100] += n
        total.update(classes)
        bad = []
        for (label, status), n in sorted(statuses.items()):
            if status < 500:
                continue
            accepted = status == 503 and "503" in documented.get(label, set())
            method, uri, request_body, response_body = samples[(label, status)]
            details.append(
                f"  {'accepted' if accepted else 'FAILED  '} {run}: {label} -> {status} x{n}\n"
                f"           e.g. {method} {uri} {request_body!r}\n"
                f"           answered {response_body!r}"
            )
            if not accepted:
                bad.append(f"{label} {status}")
        verdict = "ok"
        if bad:
            verdict = "5xx: " + ", ".join(bad)
        if errors:
            verdict += f"; {len(errors)} errors"
            details.extend(f"  ERROR    {run}: {e}" for e in errors[:10])
        if not finished:
            verdict += "; did not finish"
        if bad or errors or not finished:
            failed = True
        requests = sum(classes.values())
        print(
            f"{run:<24} {requests:>8} {classes[2]:>6} {classes[3]:>6} {classes[4]:>6} {classes[5]:>5}  {verdict}"
        )
    print(
        f"{'all':<24} {sum(total.values()):>8} {total[2]:>6} {total[3]:>6} {total[4]:>6} {total[5]:>5}"
    )
    if details:
        print("\n5xx answers and errors:")
        print("\n".join(details))
    print()
    print("FAILED: a 5xx other than a documented 503, or an error" if failed else "passed: no 5xx but documented 503s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
