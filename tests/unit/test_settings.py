import pytest

from streams.settings import DEFAULT_LEAD_PHONE_REGEX, SettingsError, load_settings


def test_defaults_follow_rocket_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "OMNIHOOKS_WEBHOOK_URL", "OMNIHOOKS_RETRY_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.compat == "rocketchat-2023"  # the seed's era
    assert (settings.retries, settings.retry_delay, settings.retry_rule_in_force) == (
        10,
        10.0,
        "documented",
    )
    assert settings.http_timeout_ms == 5000
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.topic_prefix == "omnichannel."
    assert not settings.delivery_enabled
    assert settings.lead_phone_regex == DEFAULT_LEAD_PHONE_REGEX


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHOOKS_WEBHOOK_URL", "https://crm.example.com/hook")
    monkeypatch.setenv("OMNIHOOKS_SEND_ON_CLOSE", "true")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    settings = load_settings()
    assert settings.delivery_enabled
    assert settings.send_on_close
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHOOKS_HTTP_TIMEOUT_MS", "soon")
    with pytest.raises(SettingsError, match="OMNIHOOKS_HTTP_TIMEOUT_MS"):
        load_settings()


def test_secret_token_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHOOKS_SECRET_TOKEN", "s3cr3t-value")
    settings = load_settings()
    assert "s3cr3t-value" not in repr(settings)
    assert settings.secret_token.get_secret_value() == "s3cr3t-value"


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.webhook_url = "http://x"  # type: ignore[misc]
