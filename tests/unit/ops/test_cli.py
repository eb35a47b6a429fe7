import pytest

from streams.ops.cli import main


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["nonsense"])
    assert exit_.value.code == 2


def test_bad_setting_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIHOOKS_RETRY_DELAY_S", "-1")
    assert main(["topics", "list"]) == 2
    assert "OMNIHOOKS_RETRY_DELAY_S" in capsys.readouterr().err


def test_topics_list_prints_the_prefixed_catalogue(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIHOOKS_TOPIC_PREFIX", "acme.")
    assert main(["topics", "list"]) == 0
    out = capsys.readouterr().out
    assert "acme.webhook-jobs" in out
    assert "acme.crm-data" in out and "compact" in out


def test_unreachable_broker_is_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 (discard) on loopback: nothing answers Kafka there.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setattr("streams.ops.topic_admin.DEFAULT_TIMEOUT_S", 2.0)
    assert main(["topics", "apply"]) == 1
    assert "cannot reach Kafka" in capsys.readouterr().err


def test_a_dev_tool_missing_from_the_image_says_so_with_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The container image ships streams/ and topics/ only (deploy/Dockerfile).
    import sys

    monkeypatch.setitem(sys.modules, "streams.dev.local_kafka", None)
    assert main(["kafka", "status"]) == 1
    assert "developer tool" in capsys.readouterr().err


def test_worker_help_names_the_compatibility_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["worker", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "OMNIHOOKS_COMPAT" in text and "rocketchat-2023" in text and "rocketchat-7" in text


def test_an_unknown_profile_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIHOOKS_COMPAT", "rocketchat-1999")
    assert main(["topics", "list"]) == 2
    assert "compat" in capsys.readouterr().err.lower()


def test_a_console_reachable_from_other_machines_needs_a_token_and_bad_tokens_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OMNIHOOKS_CONSOLE_TOKEN", raising=False)
    assert main(["console", "--host", "0.0.0.0"]) == 2
    assert "OMNIHOOKS_CONSOLE_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("OMNIHOOKS_CONSOLE_TOKEN", "ops:short")
    assert main(["console"]) == 2
    assert "shorter than 16" in capsys.readouterr().err
    monkeypatch.setenv("OMNIHOOKS_CONSOLE_TOKEN", "ops:" + "a" * 16)
    assert main(["console", "--worker", "127.0.0.1:6066"]) == 2
    assert "http://" in capsys.readouterr().err
