"""The README stays true: its guide tables are what the engine prints, its commands exist."""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        return handle.read()


def test_readme_guide_tables_are_current():
    printed = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "guide-tables.py")],
                             capture_output=True, text=True, check=True).stdout
    block = re.search(r"<!-- guide-tables:begin -->\n(.*)<!-- guide-tables:end -->", read("README.md"), re.S)
    assert block, "README lost its guide-tables markers"
    assert block.group(1) == printed, "README tables are stale: run scripts/guide-tables.py and paste its output"


def test_first_screen_commands_exist_and_ci_runs_the_test_command():
    first_screen = "\n".join(read("README.md").splitlines()[:40])
    commands = re.findall(r"```sh\n(.+?)\n```", first_screen)
    assert commands[:2] == ["scripts/main.sh", "scripts/test.sh"]
    for command in commands[:2]:
        assert os.access(os.path.join(REPO, command), os.X_OK)
    assert "scripts/test.sh" in read(".ci/run")
