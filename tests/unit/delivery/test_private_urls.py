import pytest

from streams.delivery.webhook_client import private_address


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest",
     "http://[::1]/hook", "http://192.168.0.10/x", "http://localhost:9/hook"],
)  # fmt: skip
async def test_non_public_addresses_are_named(url: str) -> None:
    reason = await private_address(url)
    assert reason is not None and "non-public address" in reason


async def test_a_public_address_passes() -> None:
    assert await private_address("http://93.184.215.14/hook") is None
