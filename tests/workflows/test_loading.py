"""Declarations are read bounded: size caps, no YAML anchors or aliases, no duplicate keys, short errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_provider_motherduck.exceptions import EXCERPT_CHARS, excerpt
from airflow_provider_motherduck.workflows.loading import MAX_DECLARATION_BYTES, load_declaration

EXAMPLE = Path(__file__).parents[2] / "example_dags" / "motherduck_organisation.yaml"

#: The classic "billion laughs": about 300 bytes that expand to 9**8 strings when aliases are followed.
ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""

#: An error message stays about this short whatever the input (field, excerpt, problem, allowed).
SHORT = 400


def refusal(source: object, **kwargs: int) -> str:
    with pytest.raises(ValueError, match=" is invalid: ") as caught:
        load_declaration(source, "desired", **kwargs)
    message = str(caught.value)
    assert message.startswith("desired"), message
    assert len(message) < SHORT, message
    return message


def bytes_read() -> int:
    """Bytes this process has read through ``read()`` calls so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_the_example_declaration_loads_as_yaml_reads_it() -> None:
    assert load_declaration(EXAMPLE) == yaml.safe_load(EXAMPLE.read_text())
    assert load_declaration(str(EXAMPLE)) == load_declaration(EXAMPLE.read_text())


@pytest.mark.parametrize("data", [{"service_accounts": []}, [{"username": "etl_loader"}]])
def test_data_is_returned_as_it_is(data: object) -> None:
    assert load_declaration(data) is data


def test_json_text_is_read_as_json() -> None:
    assert load_declaration('{"service_accounts": [{"username": "etl_loader"}]}') == {
        "service_accounts": [{"username": "etl_loader"}]
    }


def test_the_alias_bomb_is_refused_at_its_first_anchor() -> None:
    message = refusal(ALIAS_BOMB)
    assert "anchors and aliases" in message
    assert "(line 1, column 4)" in message


def test_an_alias_alone_is_refused_too() -> None:
    # No anchor before it: the alias itself is refused, not reported as an unknown one.
    with pytest.raises(ValueError, match="anchors and aliases"):
        load_declaration("service_accounts: *accounts\n")


def test_a_50_mb_file_is_refused_without_being_read(tmp_path: Path) -> None:
    big = tmp_path / "organisation.yaml"
    with big.open("wb") as file:
        file.truncate(50 * 1024 * 1024)  # sparse: costs no disk, reads as zeros
    before = bytes_read()
    message = refusal(big)
    assert bytes_read() - before < MAX_DECLARATION_BYTES
    assert f"52428800 bytes, more than max_bytes={MAX_DECLARATION_BYTES}" in message
    assert big.name in message  # a long path is cut in its middle


def test_the_cap_is_configurable(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    message = refusal(text, max_bytes=100)
    assert "more than max_bytes=100" in message
    (tmp_path / "small.yaml").write_text(text)
    assert "more than max_bytes=100" in refusal(tmp_path / "small.yaml", max_bytes=100)
    assert load_declaration(text, max_bytes=len(text.encode())) == yaml.safe_load(text)


def test_text_over_the_cap_is_refused_before_parsing() -> None:
    message = refusal("service_accounts: [" + "{username: a}, " * 100_000 + "]")
    assert "more than max_bytes" in message


def test_max_bytes_must_be_a_positive_integer() -> None:
    with pytest.raises(ValueError, match=r"max_bytes=0 is invalid"):
        load_declaration({}, max_bytes=0)


def test_a_duplicate_key_is_named_with_its_lines() -> None:
    text = "service_accounts:\n  - username: etl_loader\nservice_accounts: []\n"
    message = refusal(text)
    assert "duplicate key 'service_accounts' at line 3 (first at line 1)" in message


def test_a_nested_duplicate_key_is_found() -> None:
    text = "service_accounts:\n  - username: a\n    tokens: []\n    username: b\n"
    assert "duplicate key 'username' at line 4 (first at line 2)" in refusal(text)


def test_a_duplicate_key_in_json_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "organisation.json"
    path.write_text('{\n  "service_accounts": [],\n  "service_accounts": [{"username": "x"}]\n}\n')
    assert "duplicate key 'service_accounts' at line 3 (first at line 2)" in refusal(path)


def test_a_missing_file_names_the_field_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ValueError, match=" is invalid: ") as caught:
        load_declaration(str(path), "declaration")
    message = str(caught.value)
    assert message.startswith("declaration='")
    assert "nowhere.yaml' is invalid: cannot be read (No such file" in message


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("service_accounts: [{username: caf\xe9}]".encode("latin-1"))
    assert "not UTF-8 text" in refusal(path)


def test_bad_json_in_a_json_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "organisation.json"
    path.write_text("service_accounts: []\n")
    assert "not JSON" in refusal(path)


def test_errors_show_an_excerpt_of_a_long_text() -> None:
    long_line = "service_accounts: [" + "x" * 50_000 + "\n"  # unclosed: a parse error on a long line
    message = refusal(long_line)
    assert "neither JSON nor YAML" in message
    assert "x" * (EXCERPT_CHARS + 1) not in message


def test_an_excerpt_is_short_whatever_the_value() -> None:
    nested: list[object] = ["lol"] * 9
    for _ in range(8):
        nested = [nested] * 9  # shared references, as an alias bomb builds
    for value in ("x" * 10_000, nested, {str(i): i for i in range(10_000)}):
        assert len(excerpt(value)) <= EXCERPT_CHARS
    assert excerpt("etl_loader") == "'etl_loader'"
