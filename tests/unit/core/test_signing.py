import base64
import hashlib
import hmac

from streams.core.signing import sign, signing_key, verify


def test_signature_is_standard_webhooks_v1() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    key = signing_key(secret)
    assert key == b"0123456789abcdef0123456789abcdef"
    body = b'{"type":"Message"}'
    header = sign(key, "msg_1", 1700000000, body)
    expected = hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert header == "v1," + base64.b64encode(expected).decode()
    assert verify(key, "msg_1", 1700000000, body, header)
    assert not verify(key, "msg_1", 1700000000, body + b" ", header)


def test_plain_secret_is_used_as_utf8() -> None:
    assert signing_key("shared") == b"shared"
