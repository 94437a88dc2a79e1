"""The spend kill switch: set the API function's reserved concurrency to 0, and back.

Deployed as it is, inline (deploy/kill_switch.yml), as the function the kill switch's SNS topic
invokes when the monthly budget is exceeded or the request alarm fires: every later invocation
of the API is throttled (callers get a 503 from API Gateway), so neither Lambda nor the database
is billed for it. boto3 comes with the Lambda runtime; the role may only change this one
function's concurrency. `make unfreeze STAGE=...` runs `main` to restore it.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def freeze(client: Any, function: str) -> None:
    """No invocation of `function` runs until `unfreeze`: reserved concurrency 0."""
    client.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)


def unfreeze(client: Any, function: str, concurrency: int | None = None) -> None:
    """Back to the account's unreserved pool (the template reserves none), or to `concurrency`
    when the function had a reservation of its own before it was frozen."""
    if concurrency is None:
        client.delete_function_concurrency(FunctionName=function)
    else:
        client.put_function_concurrency(FunctionName=function,
                                        ReservedConcurrentExecutions=concurrency)


def handler(event: dict, context: Any) -> dict:
    """SNS delivery from the budget or the request alarm: freeze, and log why (the message)."""
    import boto3

    function = os.environ["API_FUNCTION"]
    subjects = [r.get("Sns", {}).get("Subject") for r in event.get("Records", [])]
    print(json.dumps({"event": "kill_switch", "function": function, "subjects": subjects}))
    freeze(boto3.client("lambda"), function)
    return {"frozen": function}


def main(argv: list[str] | None = None) -> int:
    """`make unfreeze STAGE=dev`: restore the stage's API function after the switch fired."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "eu-west-1"))
    parser.add_argument("--concurrency", type=int, default=None,
                        help="reserve this many instead of removing the reservation")
    args = parser.parse_args(argv)
    import boto3

    client = boto3.client("lambda", region_name=args.region)
    function = f"cities-{args.stage}-api"
    before = client.get_function_concurrency(FunctionName=function)
    unfreeze(client, function, args.concurrency)
    print(f"{function}: reserved concurrency {before.get('ReservedConcurrentExecutions')} -> "
          f"{'none (unreserved)' if args.concurrency is None else args.concurrency}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
