from click.testing import CliRunner

from convotrail.cli import main


def test_help_lists_the_verbs() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for verb in ("stack", "topics", "demo"):
        assert f"  {verb}" in result.output


def test_stack_help_lists_its_verbs() -> None:
    result = CliRunner().invoke(main, ["stack", "--help"])
    assert result.exit_code == 0
    for verb in ("fetch", "start", "stop", "status"):
        assert f"  {verb}" in result.output


def test_stack_commands_do_nothing_for_an_external_cluster() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "broker:9092", "SCHEMA_REGISTRY_URL": "http://r"}
    result = CliRunner().invoke(main, ["stack", "start"], env=env)
    assert result.exit_code == 0
    assert "nothing local to manage" in result.output


def test_half_configured_cluster_is_one_line_error() -> None:
    result = CliRunner().invoke(main, ["topics", "list"], env={"KAFKA_BOOTSTRAP_SERVERS": "b:1"})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: SCHEMA_REGISTRY_URL is not set: set both KAFKA_BOOTSTRAP_SERVERS and "
        "SCHEMA_REGISTRY_URL to use an external cluster, or neither for the local stack"
    ]
