"""One multiparty-call action through Plivo's official Python SDK (plivo 4.63.0), unchanged.

Run by services/phlo/tests/it/voice_mpc.rs, once per action:
  python_mpc.py call|warm_transfer|cold_transfer TRIGGER_SOURCE TO [ROLE]
  python_mpc.py hold|unhold|hangup|resume_call|abort_transfer|voicemail_drop|mute|unmute MEMBER_ADDRESS
Prints one JSON line {"step": action, "response": {...}}; an SDK exception exits non-zero.

Environment: PHLO_BASE (without /v1), PHLO_AUTH_ID, PHLO_AUTH_TOKEN, PHLO_ID, PHLO_MPC_NODE_ID.
"""

import json
import os
import sys

import plivo

client = plivo.phlo.RestClient(auth_id=os.environ["PHLO_AUTH_ID"], auth_token=os.environ["PHLO_AUTH_TOKEN"])
client.phlo_base_uri = os.environ["PHLO_BASE"] + "/v1"
mpc = client.phlo.get(os.environ["PHLO_ID"]).multi_party_call(os.environ["PHLO_MPC_NODE_ID"])

action = sys.argv[1]
if action in ("call", "warm_transfer", "cold_transfer"):
    trigger_source, to = sys.argv[2], sys.argv[3]
    role = sys.argv[4] if len(sys.argv) > 4 else "agent"
    response = getattr(mpc, action)(trigger_source, to, role)
else:
    response = getattr(mpc.member(sys.argv[2]), action)()

print(json.dumps({"step": action, "response": {k: v for k, v in response.__dict__.items() if not k.startswith("_") and k != "client"}}))
