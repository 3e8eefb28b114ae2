"""`sftkit launch`: `accelerate launch` that keeps the training's exit code.

`accelerate launch` turns any failure of its processes into exit code 1 and prints torch elastic's
`ChildFailedError` traceback under the run's own `error: ...` line, and a SIGTERM to it (scancel, a pre-emption)
kills the workers and exits 143: a requeue script cannot tell a pre-empted run (75), a user error (2) or a diverged
run (3) from a crash. This command takes exactly `accelerate launch`'s arguments and runs Accelerate's own launcher
(nothing of its setup is re-implemented) in a child process supervised by sftkit/supervise.py: stop signals become
the stop file, so every rank saves and exits 75; when a process fails, one line names the process that failed first
and its exit code is this command's (128 + N for a process killed by signal N).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sftkit import resources
from sftkit.errors import SftkitError
from sftkit.supervise import SUPERVISED, exit_status, run_training


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get(SUPERVISED) or any(a in ("-h", "--help") for a in argv):
        return accelerate_launch(argv)
    stop = Path(tempfile.gettempdir()) / f"sftkit-launch-{os.getpid()}.stop"
    return run_training([sys.executable, "-m", "sftkit.launch", *argv], stop)


def accelerate_launch(argv: list[str]) -> int:
    """Accelerate's launcher in this process; the exit code of the process that failed first."""
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    parser = launch_command_parser()
    parser.prog = "sftkit launch"
    parser.description = (__doc__ or "").split("\n\n")[1].replace("\n", " ")
    args = parser.parse_args(argv)
    try:
        args.config_file = config_file(args.config_file)
    except SftkitError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    args.quiet = False  # the failures are raised to us, not printed and turned into 1
    try:
        launch_command(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = exit_status(failure.exitcode)
        print(f"sftkit launch: process {rank} stopped first, with exit code {code} (its message is above)",
              file=sys.stderr, flush=True)  # fmt: skip
        return code
    except subprocess.CalledProcessError as exc:  # one process, no torchrun (Accelerate's simple launcher)
        return exit_status(exc.returncode)
    return 0


def config_file(name: str | None) -> str | None:
    """--config_file: a path, or the name of a shipped config (fsdp4, cpu_ddp, ...)."""
    if name is None or Path(name).is_file():
        return name
    shipped = resources.accelerate_config(Path(name).stem)
    if shipped.is_file() and "/" not in name:
        return str(shipped)
    names = sorted(p.stem for p in resources.accelerate_configs().glob("*.yaml"))
    raise SftkitError(f"--config_file {name}: no such file, nor a shipped accelerate config ({', '.join(names)})")


if __name__ == "__main__":
    raise SystemExit(main())
