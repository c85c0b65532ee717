from plivo.utils.signature_v3 import construct_post_url, construct_get_url, get_signature_v3, validate_v3_signature
token = "sim-token"
nonce = "12345678901234567890"
cases = [
  ("POST", "http://127.0.0.1:8080/answer?b=2&a=x%20y", {"CallUUID": "c-1", "From": "+14155550100", "To": "+14155550101", "Digits": "12#", "Text": "héllo wörld"}),
  ("POST", "https://app.example.com/cb/dial", {"DialStatus": "completed", "CallUUID": "c-2"}),
  ("POST", "https://app.example.com/empty", {}),
  ("GET", "https://app.example.com/status?Status=delivered&MessageUUID=m-1&To=%2B14155550101", {}),
]
for method, uri, params in cases:
    base = (construct_get_url(uri, dict(params)) if method == "GET" else construct_post_url(uri, dict(params))).decode()
    sig = get_signature_v3(token.encode(), base, nonce.encode()).decode()
    assert validate_v3_signature(method, uri, nonce, token, sig, dict(params))
    print(repr(method), repr(uri), params, repr(base), repr(sig))
