"""Stand-in for ansible-test's pip bootstrap script (get-pip.py), which it downloads from a host not reachable here.

ansible-test runs it inside each fresh sanity venv with get-pip's arguments (pip options, 'pip==X', --no-setuptools,
--no-wheel). This installs the interpreter's bundled pip with ensurepip, then the requested pip from the package
index through that pip. Copied to ~/.ansible/test/cache/get_pip_<version>.py by scripts/sanity.sh.
"""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
