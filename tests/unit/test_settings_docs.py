"""`.env.example` and docs/configuration.md's settings table are what `config.SETTINGS` gives,
so a setting added (by any branch) is documented by `make settings-docs` and this test fails
until it is; and both files, read back, name and accept every setting."""

from __future__ import annotations

import difflib
import re

from cities.ops import config, settings_docs
from cities.ops.config import Flag, Setting


def drift(path, wanted: str) -> str:
    return "".join(difflib.unified_diff(
        path.read_text().splitlines(keepends=True), wanted.splitlines(keepends=True),
        str(path.relative_to(settings_docs.REPO)), "what SETTINGS gives"))


def test_env_example_is_what_settings_give():
    diff = drift(settings_docs.ENV_EXAMPLE, settings_docs.env_example())
    assert not diff, f".env.example is out of date: run `make settings-docs`\n{diff}"


def test_the_configuration_table_is_what_settings_give():
    page = settings_docs.CONFIGURATION.read_text()
    diff = drift(settings_docs.CONFIGURATION, settings_docs.configuration_page(page))
    assert not diff, f"docs/configuration.md is out of date: run `make settings-docs`\n{diff}"


def test_a_new_setting_is_drift_until_regenerated():
    added = Setting("CITIES_NEW_FLAG", Flag(), False, "a setting another branch adds")
    settings = (*config.SETTINGS, added)
    assert "`CITIES_NEW_FLAG`" in settings_docs.markdown_table(settings)
    assert "\nCITIES_NEW_FLAG=\n" in settings_docs.env_example(settings)
    page = settings_docs.CONFIGURATION.read_text()
    assert settings_docs.configuration_page(page, settings) != page


def test_the_example_file_sets_each_setting_blank_and_reads_without_a_problem():
    text = settings_docs.ENV_EXAMPLE.read_text()
    assigned = dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.MULTILINE))
    assert list(assigned) == [s.name for s in config.SETTINGS]
    values, problems = config.read(assigned)
    assert problems == [] and values == {s.name: s.default for s in config.SETTINGS}


def test_every_example_value_is_in_range():
    for setting in config.SETTINGS:
        if setting.example:
            setting.kind.parse(setting.example)  # raises Invalid when out of range


def test_the_commands_print_what_they_would_write(capsys):
    assert settings_docs.main(["--env-example"]) == 0
    assert capsys.readouterr().out == settings_docs.env_example()
    assert settings_docs.main(["--markdown"]) == 0
    assert capsys.readouterr().out == settings_docs.markdown_table() + "\n"
