"""The installed `pvdm` command: the library's commands (pvdm.cli) plus the orchestration ones from pipelines/.

pvdm never imports pipelines (an import-linter contract says so); this module is the one place that joins both.
"""

from __future__ import annotations

from pipelines.compare_cli import compare
from pipelines.import_cli import import_
from pipelines.serve_cli import serve
from pvdm.cli import main

main.add_command(serve)
main.add_command(compare)
main.add_command(import_)  # the library's `import` plus --register (MLflow)

if __name__ == "__main__":
    main()
