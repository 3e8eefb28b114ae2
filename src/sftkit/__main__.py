from sftkit.cli import main

raise SystemExit(main())
