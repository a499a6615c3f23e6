from mulsupcon.cli import main

raise SystemExit(main())
