"""`sftkit.train` with a test situation set up first, for multi-process tests (run by torchrun as a script):

    torchrun ... tests/patched_train.py SITUATION [sftkit train arguments...]

- `rank_cwd`: each rank works in its own folder `node<RANK>` (nodes that share no file system).
- `accuracy_stub`: generation answers problem #i right when i % 3 == 0 (see test_accuracy.STUB).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

situation, args = sys.argv[1], sys.argv[2:]
if situation == "rank_cwd":
    os.chdir(f"node{os.environ['RANK']}")
elif situation == "accuracy_stub":
    from test_accuracy import STUB

    exec(STUB, {})
else:
    raise SystemExit(f"unknown situation {situation!r}")

from sftkit.train import main  # noqa: E402

sys.exit(main(args))
