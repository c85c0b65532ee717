"""Drives a PHLO runner with Plivo's official Python SDK (plivo 4.63.0), unchanged.

Run by services/phlo/tests/it/sdk.rs. Every call prints one JSON line `{"step": ..., ...}`:
either `"response"` (the SDK's response object as plain data) or `"exception"` + `"message"` for the
error paths. Anything unexpected raises, so the script exits non-zero with a traceback.

Environment: PHLO_BASE (e.g. http://127.0.0.1:8080, without /v1), PHLO_AUTH_ID, PHLO_AUTH_TOKEN,
PHLO_ID, PHLO_MPC_NODE_ID, PHLO_UNKNOWN_ID.
"""

import json
import os
import sys

import plivo
import plivo.exceptions
import plivo.version
from plivo.base import ResponseObject

BASE = os.environ["PHLO_BASE"]
AUTH_ID = os.environ["PHLO_AUTH_ID"]
AUTH_TOKEN = os.environ["PHLO_AUTH_TOKEN"]
PHLO_ID = os.environ["PHLO_ID"]
MPC_NODE_ID = os.environ["PHLO_MPC_NODE_ID"]
UNKNOWN_ID = os.environ["PHLO_UNKNOWN_ID"]


def plain(value):
    """The SDK's response objects (ResponseObject and its resources) as JSON-able data."""
    if isinstance(value, ResponseObject):
        return {
            k: plain(v)
            for k, v in value.__dict__.items()
            if k != "client" and not k.startswith("_")
        }
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def respond(step, response):
    emit(step, type=type(response).__name__, response=plain(response))


def expect_error(step, exception_type, call):
    try:
        response = call()
    except exception_type as e:
        emit(step, exception=type(e).__name__, message=str(e))
        return
    raise AssertionError(
        "%s: expected %s, got a response: %r" % (step, exception_type.__name__, response)
    )


def client_for(token):
    client = plivo.phlo.RestClient(auth_id=AUTH_ID, auth_token=token)
    # The documented way to point the SDK at another host: the value must include /v1.
    client.phlo_base_uri = BASE + "/v1"
    return client


def main():
    emit("sdk", version=plivo.version.__version__)
    client = client_for(AUTH_TOKEN)

    # GET /v1/phlo/{id}/
    phlo = client.phlo.get(PHLO_ID)
    respond("get", phlo)

    # POST /v1/account/{auth_id}/phlo/{id}/ with body {} (run() without arguments sends {}).
    respond("run_no_args", phlo.run())
    # Explicitly empty keyword arguments: also {}.
    respond("run_empty_kwargs", phlo.run(**{}))
    # The payload: `from_` loses its trailing underscore, nesting is kept.
    respond(
        "run_payload",
        phlo.run(from_="+14155550100", item="pizza", nested={"k": 1}),
    )
    # The SDK's own session with no body at all (what Ruby's run() and Go's Run(nil) send).
    respond(
        "run_no_body",
        client.request("POST", ("account", AUTH_ID, "phlo", PHLO_ID), None),
    )

    # GET /v1/phlo/{id}/multi_party_call/{node_id}/
    mpc = phlo.multi_party_call(MPC_NODE_ID)
    respond("multi_party_call", mpc)
    # The generic node getter with the right type, and with the wrong one (404).
    respond("node", phlo.node("multi_party_call", MPC_NODE_ID))
    expect_error(
        "node_wrong_type",
        plivo.exceptions.ResourceNotFoundError,
        lambda: phlo.node("conference_bridge", MPC_NODE_ID),
    )

    # Errors: the `error` field of our body becomes the exception's message.
    expect_error(
        "get_unknown",
        plivo.exceptions.ResourceNotFoundError,
        lambda: client.phlo.get(UNKNOWN_ID),
    )
    expect_error(
        "wrong_token",
        plivo.exceptions.AuthenticationError,
        lambda: client_for(AUTH_TOKEN + "x").phlo.get(PHLO_ID),
    )
    expect_error(
        "run_list_payload",
        plivo.exceptions.ValidationError,
        lambda: client.request("POST", ("account", AUTH_ID, "phlo", PHLO_ID), [1, 2]),
    )
    expect_error(
        "wrong_method",
        plivo.exceptions.InvalidRequestError,
        lambda: client.request("DELETE", ("phlo", PHLO_ID)),
    )
    other = "MA" + "Z" * 18 if AUTH_ID != "MA" + "Z" * 18 else "MA" + "Y" * 18
    expect_error(
        "run_other_account",
        plivo.exceptions.PlivoRestError,
        lambda: client.request("POST", ("account", other, "phlo", PHLO_ID), {}),
    )
    emit("done")


if __name__ == "__main__":
    main()
    sys.exit(0)
