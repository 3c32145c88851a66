"""Print the installed versions of synthxray[dev]'s whole requirement tree as a pip constraints file.

    python .ci/constraints.py > constraints.txt   # after a green CI run: record the last known-good set
"""

from __future__ import annotations

import datetime
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_dependencies import project_requirements, requirement_closure  # noqa: E402  (one walker for test and lock)

versions, problems = requirement_closure(project_requirements())
if problems:
    sys.exit("not writing constraints from a broken environment:\n" + "\n".join(problems))
print(f"# synthxray[dev]'s requirement tree as CI last passed with it ({datetime.date.today()}, "
      f"Python {platform.python_version()}, {platform.system()} {platform.machine()}).")
print('# Reproduce it: pip install -e ".[dev]" -c constraints.txt   Regenerate: python .ci/constraints.py > constraints.txt')
for name in sorted(versions):
    print(f"{name}=={versions[name]}")
