"""`sftkit launch`: `accelerate launch` that keeps the training's exit code.

`accelerate launch` turns any failure of its processes into exit code 1 and prints torch elastic's
`ChildFailedError` traceback under the run's own `error: ...` line, so a requeue script cannot tell a pre-empted
run (75), a user error (2) or a diverged run (3) from a crash, and a user error ends in a traceback. This command
takes exactly `accelerate launch`'s arguments and runs Accelerate's own launcher in this process (nothing of its
setup is re-implemented); when a process fails it prints one line naming the process that failed first and exits
with that process's code (128 + N for a process killed by signal N). The other processes' codes are the
launcher's own follow-up (it stops them once one has failed).
"""

from __future__ import annotations

import subprocess
import sys


def exit_code(code: int) -> int:
    """A process's exit status as a shell shows it: a signal N as 128 + N."""
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    parser = launch_command_parser()
    parser.prog = "sftkit launch"
    parser.description = (__doc__ or "").split("\n\n")[1].replace("\n", " ")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.quiet = False  # the failures are raised to us, not printed and turned into 1
    try:
        launch_command(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = exit_code(failure.exitcode)
        print(f"sftkit launch: process {rank} stopped first, with exit code {code} (its message is above)",
              file=sys.stderr, flush=True)  # fmt: skip
        return code
    except subprocess.CalledProcessError as exc:  # one process, no torchrun (Accelerate's simple launcher)
        return exit_code(exc.returncode)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
